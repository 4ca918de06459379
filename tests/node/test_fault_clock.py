"""The agent's test-only clock offset (chaos testing): read only with the fault hook on."""

from __future__ import annotations

from node.agent.agent import fault_clock_offset_s
from node.agent.config import AgentConfig


def test_the_offset_needs_the_fault_hook_and_a_sane_value(monkeypatch):
    monkeypatch.setenv("SHOAL_FAULT_CLOCK_OFFSET_S", "1.5")
    assert fault_clock_offset_s(AgentConfig(enable_fault_hook=True)) == 1.5
    assert fault_clock_offset_s(AgentConfig()) == 0.0  # a production agent ignores it
    for bad in ("soon", "-3", "1e9"):
        monkeypatch.setenv("SHOAL_FAULT_CLOCK_OFFSET_S", bad)
        assert fault_clock_offset_s(AgentConfig(enable_fault_hook=True)) == 0.0
