"""A Compose service's update, rollback and stop settings as a job's `[update]`, `stop_signal`, `stop_grace_s`.

How this works: `UpdateConverter(...).convert(body, deploy)` reads, for one
service, `deploy.update_config`, `deploy.rollback_config`,
`stop_grace_period` and `stop_signal` into the job spec dict being built
(docs/jobspec.md, *Updates*; auction.rollout applies them).  Swarm's
defaults fill what `update_config` leaves out (parallelism 1, delay 0s,
failure_action pause, monitor 5s, order stop-first, max_failure_ratio 0);
without `update_config` the job keeps shoal's own defaults.

    update_config.parallelism       max_parallel (0, "all at once": 1000, the
                                    most shoal allows)
    update_config.monitor + delay   min_healthy_s: a new replica counts once it
                                    ran (healthy) this long, and the next batch
                                    starts then.  Swarm watches a batch for
                                    `monitor`, then waits `delay` before the
                                    next: shoal waits their sum.  The deadlines
                                    are raised to fit it (healthy_deadline_s at
                                    least min_healthy_s + 60, progress_deadline_s
                                    at least that)
    update_config.failure_action    pause -> auto_revert false; rollback ->
                                    auto_revert true; continue is an error (a
                                    shoal rollout stops at its first failure)
    update_config.order             order (start-first, stop-first)
    update_config.max_failure_ratio 0 only (anything else is an error, as above)
    rollback_config                 a revert is written as a new version and
                                    rolls out with the `[update]` of the version
                                    it goes back to: there is one set of
                                    settings for both directions.  Keys equal
                                    to the update's effective values are
                                    accepted; a different value is an error
                                    naming the key (failure_action pause is
                                    what a failed revert does anyway;
                                    continue is an error)
    stop_grace_period               stop_grace_s (Compose default 10s; shoal's
                                    is 5 s when absent)
    stop_signal                     stop_signal (SIGTERM, TERM, ...: the job
                                    validator names the ones allowed)
"""

from __future__ import annotations

from typing import Any, Callable

from auction.jobspec import DEFAULT_HEALTHY_DEADLINE_S, DEFAULT_PROGRESS_DEADLINE_S
from node.cli.compose_report import Report, ServicePart, got, join_path

UPDATE_KEYS = ("parallelism", "delay", "failure_action", "monitor", "order", "max_failure_ratio")
SWARM_DEFAULTS: dict[str, Any] = {"parallelism": 1, "delay": 0.0, "failure_action": "pause", "monitor": 5.0,
                                  "order": "stop-first", "max_failure_ratio": 0}
ALL_AT_ONCE = 1000                  # auction.jobspec's bound on max_parallel
ORDERS = ("start-first", "stop-first")
DEADLINE_MARGIN_S = 60.0            # a new replica has this long beyond min_healthy_s to get there


class UpdateConverter(ServicePart):
    """Writes `update`, `stop_signal`, `stop_grace_s` into `spec`, with the
    Compose path of each field in `origin` and refused paths in `failed` (as
    node.cli.compose_service keeps them); `duration` parses Go durations."""

    def __init__(self, report: Report, service_path: str, spec: dict[str, Any], origin: dict[str, str],
                 failed: set[str], duration: Callable[[Any, str], float | None]) -> None:
        super().__init__(report, service_path, spec, origin, failed)
        self.duration = duration

    def convert(self, body: dict[str, Any], deploy: dict[str, Any]) -> None:
        if "stop_grace_period" in body:
            where = join_path(self.path, "stop_grace_period")
            seconds = self.duration(body["stop_grace_period"], where)
            if seconds is not None:
                self.spec["stop_grace_s"] = seconds
                self.origin["stop_grace_s"] = where
        if "stop_signal" in body:
            where = join_path(self.path, "stop_signal")
            if isinstance(body["stop_signal"], (list, dict)):
                self.error(where, "must be a signal name like SIGTERM, got " + got(body["stop_signal"]))
            else:
                self.spec["stop_signal"] = body["stop_signal"]
                self.origin["stop_signal"] = where
        dpath = join_path(self.path, "deploy")
        update = self._settings(deploy.get("update_config"), join_path(dpath, "update_config"))
        if update is not None:
            self._write(update, join_path(dpath, "update_config"))
        if "rollback_config" in deploy:
            self._rollback(deploy["rollback_config"], join_path(dpath, "rollback_config"), update)

    def _settings(self, value: Any, path: str) -> dict[str, Any] | None:
        """Swarm's settings of one config, its defaults filled in; None if absent or refused."""
        if value is None:
            return None
        if not isinstance(value, dict):
            self.error(path, "must be a mapping, got " + got(value))
            return None
        self.r.unknown_keys(value, UPDATE_KEYS, path)
        out = dict(SWARM_DEFAULTS)
        for key in ("delay", "monitor"):
            if key in value:
                seconds = self.duration(value[key], join_path(path, key))
                if seconds is None:
                    return None
                out[key] = seconds
        for key in ("parallelism", "failure_action", "order", "max_failure_ratio"):
            if key in value:
                out[key] = value[key]
        where = join_path(path, "parallelism")
        n = out["parallelism"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            self.error(where, "must be a whole number, 0 (all at once) or more, got " + got(n))
            return None
        if out["order"] not in ORDERS:
            self.error(join_path(path, "order"), "must be start-first or stop-first, got " + got(out["order"]))
            return None
        ratio = out["max_failure_ratio"]
        if ratio != 0 or isinstance(ratio, bool):
            self.error(join_path(path, "max_failure_ratio"),
                       "only 0 is supported: a shoal rollout stops at the first replica that is not healthy "
                       "within update.healthy_deadline_s, got " + got(ratio))
            return None
        return {**out, "given": set(value)}

    def _write(self, s: dict[str, Any], path: str) -> None:
        action = s["failure_action"]
        if action not in ("pause", "rollback"):
            hint = (" (a shoal rollout stops at its first failure: use pause, or rollback to go back)"
                    if action == "continue" else "")
            self.error(join_path(path, "failure_action"), "must be pause or rollback, got " + got(action) + hint)
            return
        min_healthy_s = s["monitor"] + s["delay"]
        healthy_deadline_s = max(DEFAULT_HEALTHY_DEADLINE_S, min_healthy_s + DEADLINE_MARGIN_S)
        self.spec["update"] = {
            "max_parallel": s["parallelism"] or ALL_AT_ONCE,
            "min_healthy_s": min_healthy_s,
            "healthy_deadline_s": healthy_deadline_s,
            "progress_deadline_s": max(DEFAULT_PROGRESS_DEADLINE_S, healthy_deadline_s),
            "order": s["order"],
            "auto_revert": action == "rollback",
        }
        self.origin["update"] = path
        self.origin["update.max_parallel"] = join_path(path, "parallelism")
        self.origin["update.min_healthy_s"] = join_path(path, "monitor" if "monitor" in s["given"] else "delay")
        self.origin["update.order"] = join_path(path, "order")
        self.origin["update.auto_revert"] = join_path(path, "failure_action")

    def _rollback(self, value: Any, path: str, update: dict[str, Any] | None) -> None:
        s = self._settings(value, path)
        if s is None:
            return
        effective = update or dict(SWARM_DEFAULTS)
        if update is None:
            # shoal's own defaults apply: what they are, in Swarm's terms.
            effective = {**effective, "parallelism": 1, "delay": 0.0, "monitor": 10.0, "order": "start-first"}
        given = s["given"]
        for key in ("parallelism", "order", "failure_action"):
            if key not in given:
                continue
            where = join_path(path, key)
            if key == "failure_action":
                if s[key] != "pause":
                    self.error(where, "only pause is supported: a revert that fails stops where it is, got "
                               + got(s[key]))
            elif s[key] != effective[key]:
                self.error(where, f"must match update_config ({_shown(effective[key])}), got {_shown(s[key])}: "
                                  "a shoal revert rolls out with the update settings of the version it goes back to")
        if given & {"delay", "monitor"}:
            mine, theirs = s["delay"] + s["monitor"], effective["delay"] + effective["monitor"]
            if abs(mine - theirs) > 1e-9:
                key = "monitor" if "monitor" in given else "delay"
                self.error(join_path(path, key),
                           f"delay + monitor must add up to update_config's ({_shown(theirs)}, shoal's "
                           f"update.min_healthy_s), got {_shown(mine)}: a shoal revert rolls out with the update "
                           "settings of the version it goes back to")


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}s"
    return got(value) if isinstance(value, str) else str(value)
