"""Capacity probing: declared amounts replace the measurement, the host
reserve is subtracted and never drives an amount below zero."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from auction.resources import GiB, MiB, Resources, UnitError
from node.agent import probe
from node.agent.probe import arch, capacity, default_reserve, measure

MACHINE = Resources(8000, 32 * GiB, 500 * GiB)


def test_measure_reads_the_os(monkeypatch, tmp_path):
    monkeypatch.setattr(probe.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(probe, "_memory_total", lambda: 64 * GiB)
    seen = []

    def disk_usage(path):
        seen.append(path)
        return SimpleNamespace(total=2000 * GiB)

    monkeypatch.setattr(probe.shutil, "disk_usage", disk_usage)
    monkeypatch.setattr(probe.os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    # Only 4 of the 16 cores are ours (cpuset / taskset).
    assert measure(tmp_path / "not" / "yet") == Resources(4000, 64 * GiB, 2000 * GiB)
    assert seen == [str(tmp_path)]  # the nearest existing directory
    assert measure(None).disk_bytes == 0


def test_measure_without_affinity_or_core_count(monkeypatch):
    monkeypatch.setattr(probe.os, "cpu_count", lambda: None)
    monkeypatch.delattr(probe.os, "sched_getaffinity", raising=False)  # as on macOS
    assert measure().cpu_millis == 1000


def test_measure_on_this_machine_is_positive(tmp_path):
    m = measure(tmp_path)
    assert m.cpu_millis >= 1000 and m.cpu_millis % 1000 == 0
    assert m.memory_bytes > 0 and m.disk_bytes > 0
    import psutil  # the reference, in this test only
    assert m.memory_bytes == psutil.virtual_memory().total


def test_default_reserve_follows_the_documented_rule():
    assert default_reserve(MACHINE) == Resources(400, 256 * MiB, 1 * GiB)
    small = Resources(1000, 1 * GiB, 5 * GiB)
    assert default_reserve(small) == Resources(100, GiB // 10, GiB // 2)  # 100m floor, 10%
    assert default_reserve(Resources.ZERO) == Resources(100, 0, 0)


def test_capacity_is_the_machine_minus_the_reserve():
    assert capacity(measured=MACHINE) == Resources(7600, 32 * GiB - 256 * MiB, 499 * GiB)
    mine = Resources(1000, 2 * GiB, 0)
    assert capacity(measured=MACHINE, reserve=mine) == Resources(7000, 30 * GiB, 500 * GiB)
    assert capacity(measured=MACHINE, reserve=Resources.ZERO) == MACHINE


def test_declared_amounts_replace_the_measurement():
    # Declarations may exceed the host: several agents on one machine.
    got = capacity(measured=MACHINE, cpus=16, memory_bytes="64GiB", reserve=Resources.ZERO)
    assert got == Resources(16000, 64 * GiB, 500 * GiB)
    got = capacity(measured=MACHINE, cpus="500m", memory_bytes=GiB, disk_bytes="10G",
                   reserve=Resources.ZERO)
    assert got == Resources(500, GiB, 10 * GiB)
    # The default reserve is computed from the declared machine.
    assert capacity(measured=MACHINE, cpus=1.5, memory_bytes="2GiB") == Resources(
        1400, 2 * GiB - 2 * GiB // 10, 499 * GiB)


def test_fully_declared_capacity_does_not_measure(monkeypatch):
    def boom(state_dir=None):
        raise AssertionError("measured although everything was declared")

    monkeypatch.setattr(probe, "measure", boom)
    assert capacity(cpus=2, memory_bytes=GiB, disk_bytes=GiB, reserve=Resources.ZERO) == Resources(
        2000, GiB, GiB)


def test_the_reserve_never_drives_capacity_below_zero():
    assert capacity(measured=MACHINE, cpus="50m", memory_bytes="100MiB",
                    reserve=Resources(100, 256 * MiB, 600 * GiB)) == Resources.ZERO
    assert capacity(measured=Resources(1000, 0, 0)) == Resources(900, 0, 0)


def test_malformed_declarations_are_errors():
    with pytest.raises(UnitError):
        capacity(measured=MACHINE, cpus="lots")
    with pytest.raises(UnitError):
        capacity(measured=MACHINE, memory_bytes="8 parsecs")


@pytest.mark.parametrize("machine, label", [
    ("x86_64", "amd64"), ("AMD64", "amd64"), ("aarch64", "arm64"), ("arm64", "arm64"),
    ("armv7l", "arm"), ("i686", "386"), ("ppc64le", "ppc64le"), ("mips64", "mips64"), ("", "unknown"),
])
def test_arch_uses_dockers_names(machine, label):
    assert arch(machine) == label


def test_arch_of_this_machine_is_a_plain_label():
    label = arch()
    assert label and label == label.lower() and " " not in label
