"""Compose update_config, rollback_config, stop_grace_period and stop_signal
as the job's [update] and stop settings (node.cli.compose_update)."""

from __future__ import annotations

import pytest

from auction.jobspec import DEFAULT_MIN_HEALTHY_S, DEFAULT_STOP_GRACE_S, UpdateOrder
from node.cli.compose import ComposeError, load


def service(extra: str, deploy: str = "") -> str:
    text = "services:\n  web:\n    image: app:1\n" + "".join(f"    {line}\n" for line in extra.splitlines() if line)
    if deploy:
        text += "    deploy:\n" + "".join(f"      {line}\n" for line in deploy.splitlines() if line)
    return text


def job(extra: str = "", deploy: str = ""):
    st = load(service(extra, deploy), "shop")
    assert not [w for w in st.warnings if "update" in w.path or "rollback" in w.path or "stop" in w.path], \
        st.warnings
    return st.jobs[0]


def errors(extra: str = "", deploy: str = "") -> dict[str, str]:
    with pytest.raises(ComposeError) as e:
        load(service(extra, deploy), "shop")
    return {p.path: p.message for p in e.value.problems}


def test_update_config_maps_onto_the_update_table():
    web = job(deploy="""
replicas: 6
update_config:
  parallelism: 2
  delay: 10s
  monitor: 20s
  failure_action: rollback
  order: start-first
""")
    u = web.update
    assert u.max_parallel == 2
    assert u.min_healthy_s == 30.0                     # monitor + delay: the next batch waits for both
    assert u.order is UpdateOrder.START_FIRST and u.auto_revert is True
    assert u.healthy_deadline_s > u.min_healthy_s and u.progress_deadline_s >= u.healthy_deadline_s


def test_swarm_defaults_fill_what_update_config_leaves_out_and_shoal_defaults_without_it():
    u = job(deploy="update_config: {}").update
    assert (u.max_parallel, u.min_healthy_s, u.order, u.auto_revert) == (1, 5.0, UpdateOrder.STOP_FIRST, False)
    plain = job().update
    assert (plain.min_healthy_s, plain.order) == (DEFAULT_MIN_HEALTHY_S, UpdateOrder.START_FIRST)
    # parallelism 0 is Swarm's "all at once"; a monitor of an hour raises the deadlines to fit.
    u = job(deploy="update_config: {parallelism: 0, monitor: 1h}").update
    assert u.max_parallel == 1000 and u.min_healthy_s == 3600 and u.healthy_deadline_s > 3600


def test_stop_grace_period_and_stop_signal():
    web = job("stop_grace_period: 1m30s\nstop_signal: SIGQUIT")
    assert web.stop_grace_s == 90.0 and web.stop_signal == "SIGQUIT"
    assert job("stop_signal: INT").stop_signal == "SIGINT"
    assert job().stop_grace_s == DEFAULT_STOP_GRACE_S


def test_rollback_config_that_matches_the_update_is_accepted():
    web = job(deploy="""
update_config: {parallelism: 2, monitor: 10s, failure_action: rollback, order: start-first}
rollback_config: {parallelism: 2, monitor: 10s, failure_action: pause, order: start-first}
""")
    assert web.update.max_parallel == 2 and web.update.auto_revert


@pytest.mark.parametrize("extra, deploy, path, words", [
    ("", "update_config: {failure_action: continue}", "services.web.deploy.update_config.failure_action",
     "stops at its first failure"),
    ("", "update_config: {order: sideways}", "services.web.deploy.update_config.order", "start-first or stop-first"),
    ("", "update_config: {parallelism: -1}", "services.web.deploy.update_config.parallelism", "whole number"),
    ("", "update_config: {max_failure_ratio: 0.2}", "services.web.deploy.update_config.max_failure_ratio",
     "only 0 is supported"),
    ("", "update_config: {delay: soon}", "services.web.deploy.update_config.delay", "duration"),
    ("", "update_config: [1]", "services.web.deploy.update_config", "mapping"),
    ("", "update_config: {parallelism: 2}\nrollback_config: {parallelism: 0}",
     "services.web.deploy.rollback_config.parallelism", "must match update_config (2), got 0"),
    ("", "update_config: {monitor: 10s}\nrollback_config: {monitor: 1s}",
     "services.web.deploy.rollback_config.monitor", "add up to update_config's (10s"),
    ("", "rollback_config: {failure_action: continue}", "services.web.deploy.rollback_config.failure_action",
     "only pause"),
    ("stop_grace_period: 2h", "", "services.web.stop_grace_period", "between 0 and 600 seconds"),
    ("stop_signal: SIGSEGV", "", "services.web.stop_signal", "must be one of"),
])
def test_unsupported_values_are_errors_naming_the_field(extra, deploy, path, words):
    found = errors(extra, deploy)
    assert path in found, found
    assert words in found[path] or words in path, found[path]
