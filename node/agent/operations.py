"""The operations the HTTP API asks of the agent.

How this works: changes are fed to the core through the pump
(node.agent.pump) and awaited: a job write until it is durable
(node.agent.persistence), a drain flag until the core took it, a key change
until every member answered or the TCP timeout passed.  Reads take the
core's read-only view (node.core.view) and render their whole answer with no
`await` in between, so each answer is one consistent snapshot; the ones the
API serves as blocking queries come with the agent-local index of their
resource (node.api.blocking).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from auction.spec import JobSpec
from node.agent.config import HostPort
from node.agent.tuning import tuning_json
from node.agent import fault_clock
from node.agent.errors import JobNotFound
from node.agent.safe_defaults import insecure_warning
from node.api import views
from node.core.history import version_id, version_of
from node.core.inputs import SendToMembers, SetDrained
from node.core.jobstore import Entry
from node.core.view import CoreView

if TYPE_CHECKING:
    from node.agent.agent import Agent

log = logging.getLogger("shoal.agent")


class Operations:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    # ---- jobs
    async def submit_job(self, spec: JobSpec, *, why: str = "submit", by: str = "", ref: str = "",
                         promote: bool = False) -> dict[str, Any]:
        """Write spec as the job's next version (node.core.history).  The
        canary promotion (`promoted`, a container hash) carries over to a
        version with the same container hash, and `promote` sets it."""
        a = self.agent
        current = a.view.job(spec.name)
        old = a.view.spec_of(current)
        if why == "submit" and spec.restart_nonce is None and old is not None and old.restart_nonce is not None:
            # A file never holds the nonce `shoal job restart` set: keep it,
            # or submitting the same file again would replace every replica.
            spec = dataclasses.replace(spec, restart_nonce=old.restart_nonce)
        if why == "submit" and current is not None and current.spec == spec.canonical_json():
            # The spec that runs already: no new version, so deploying the
            # same file again and again does not push real versions out of
            # the job's history.
            return self._written(current, why, changed=False)
        promoted = ""
        if promote:
            promoted = spec.container_hash()
        elif current is not None and current.meta is not None and old is not None \
                and old.container_hash() == spec.container_hash():
            promoted = current.meta.promoted
        entry = await a.persistence.write_job(spec.name, spec.canonical_json(), why=why, by=by, ref=ref,
                                              promoted=promoted)
        return self._written(entry, why, changed=True)

    def _written(self, entry: Entry, why: str, *, changed: bool) -> dict[str, Any]:
        a = self.agent
        records = a.view.history(entry.name)
        return {"name": entry.name, "index": a.indexes.get("jobs"), "durable": a.config.state_dir is not None,
                "version": [entry.stamp.wall_ms, entry.stamp.counter, entry.stamp.node],
                "job_version": version_id(entry, records) if entry in records else str(version_of(entry)),
                "why": why, "changed": changed}

    def current_spec(self, name: str) -> JobSpec:
        """The job's spec now; raises JobNotFound."""
        spec = self.agent.view.spec_of(self.agent.view.job(name))
        if spec is None:
            raise JobNotFound(name)
        return spec

    async def stop_job(self, name: str) -> dict[str, Any]:
        a = self.agent
        entry = a.view.job(name)
        if entry is None or entry.deleted:
            raise JobNotFound(name)
        await a.persistence.write_job(name, None)
        return {"name": name, "stopped": True, "index": a.indexes.get("jobs")}

    # ---- this node
    async def set_drained(self, drained: bool) -> dict[str, Any]:
        """Drain (or undrain) this node: its replicas move elsewhere and it
        takes no new ones.  Kept in the state dir across restarts."""
        a = self.agent
        await a.persistence.state.write_node_state(drained=drained)
        await a.pump.feed(SetDrained(drained))
        log.info("node %s", "drained" if drained else "undrained")
        view = views.one_node_view(a.view, a.name, trio.current_time())
        assert view is not None  # we always know ourselves
        return view

    # ---- reads
    def read(self, resource: str, fn: Callable[[CoreView, float], Any]) -> tuple[int, Any]:
        """(index of resource, fn(view, now)), read in one go."""
        a = self.agent
        return a.indexes.get(resource), fn(a.view, trio.current_time())

    def members(self) -> list[dict[str, Any]]:
        now = trio.current_time()
        return [views.member_view(m, now) for m in self.agent.view.members()]

    def self_info(self) -> dict[str, Any]:
        a = self.agent
        view = a.view
        now = trio.current_time()
        me = view.member(a.name)
        status = view.status
        runtime_stats = getattr(a.runtime, "stats", None)
        assert a.advertise is not None
        return {
            "name": a.name,
            "addr": a.advertise.host,
            "port": a.advertise.port,
            "bind": str(HostPort(a.config.bind.host, a.gossip_port or 0)),
            "api": a.api_url,
            "profile": a.gossip_config.profile,
            "settings": tuning_json(view.cluster_config, view.placement_config),  # [cluster], [placement] in effect
            "containers": a.config.containers.to_dict(),  # [containers]: what jobs may ask here
            "label": a.config.label,
            "encrypted": a.keys.enabled,
            "health_score": view.health_score(),
            "member": views.member_view(me, now) if me else None,
            "capacity": views.resources_json(status.capacity),
            "allocated": views.resources_json(status.allocated),
            "free": views.resources_json(status.free),
            "labels": dict(sorted(status.labels.items())),
            "drained": status.drained,
            "healthy": status.healthy,
            "unhealthy_reason": status.unhealthy_reason or None,
            # gossip knowingly unencrypted off loopback (node.agent.safe_defaults)
            "insecure_no_encryption": insecure_warning(a.config) is not None,
            "agent_version": status.agent_version,
            "jobs": view.live_job_count,
            "history_bytes": view.history_bytes,  # spec bytes of the job versions kept (node.core.history)
            "state_dir": str(a.config.state_dir) if a.config.state_dir else None,
            "state_problems": list(a.persistence.problems),
            "runtime": runtime_stats() if callable(runtime_stats) else {"kind": a.config.runtime},
            "stats": view.gossip_stats(),
            "core_counters": dict(view.counters),
            "transport": a.transport.statistics() if a.transport else {},
            "pid": os.getpid(),
            "uptime_s": round(time.time() - a.started_at, 3),
            # its wall clock (what stamps its writes), and how far a fault hook set it off
            "clock": fault_clock.clock_json(),
            # how far that clock is from its peers', and the problem when far off (node.core.cluster_clock)
            "cluster_clock": view.cluster_clock(),
        }

    def render_metrics(self) -> bytes:
        a = self.agent
        view = a.view
        a.cluster_metrics.observe(view)
        a.metrics.observe_members([m.state for m in view.members()], view.health_score())
        return a.metrics.render()

    # ---- encryption keys
    async def key_operation(self, action: str, key: bytes, *, cluster: bool = True) -> dict[str, Any]:
        """Apply locally, then (cluster) send to every alive member over TCP."""
        a = self.agent
        sent: tuple[str, ...] = ()
        outcomes: dict[int, tuple[Any, str | None]] = {}
        if not cluster:
            a.keys.apply(action, key)  # raises KeyOpError
        else:
            message = a.keys.issue(action, key)  # applied here under a new epoch; raises KeyOpError
            sent, tracker = await a.pump.feed_tracked(SendToMembers(message))
            if sent:
                await tracker.wait(a.gossip_config.tcp_timeout_s + 1.0)
            outcomes = tracker.outcomes
        failed = {str(addr): err for addr, err in outcomes.values() if err is not None}
        return {
            "action": action,
            "local": "ok",
            "members": len(sent) + 1,
            "delivered": len(outcomes) - len(failed) + 1,
            "failed": failed,
            "unanswered": len(sent) - len(outcomes),
            **a.keys.listing(),
        }
