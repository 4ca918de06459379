"""Between the container runtime and the node core.

How this works: `make_runtime` builds the runtime the config names (the fake
one, or Docker with callbacks that feed `ReplicaGaveUp` to the core and report
the engine's health to node.agent.health; bridge replicas' ports are published
on the node's publish address, see `docker_settings`).  `watch_runtime` polls the
runtime's non-blocking snapshots every `RUNTIME_POLL_S` (or the runtime's own
`poll_s`; None: never, FakeRuntime's reports move only with its event; at
rest, every slot running and no pull under way, its `idle_poll_s`: the
Docker runtime's 5 s, since its passes set the event when they move what it
reports, and an idle agent then wakes for it 0.2 times a second, not 2), and at
once when the runtime says its slot states moved (its `states_changed` event,
if it has one: a slot that just turned running is not left waiting for the
next poll), and feeds the core what changed: the local images (`ImageInventory`: a bid for a missing
image carries a pull cost; pulls are published as `image_pull` events)
and each slot's state (`RuntimeSlots`: published in our status record,
so any agent can say whether a placed replica runs), publishing each
slot's change as a `container_state` event, and how far the image pulls
and peer fetches under way are (`ImagePulls`, from the puller's paced
progress: at most one change per image a second; also in our status record,
for `shoal job run` and `/ui`).  `watch_claims_replayed`
tells the runtime once our claims agree with our live peers', after which it
may remove containers nobody wants.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import trio

from node.agent.config import AgentConfig, ConfigError, advertise_address, publish_address
from node.agent.health import RUNTIME
from node.core.inputs import ImageInventory, ImagePulls, ReplicaGaveUp, RuntimeSlots
from node.runtime.fake import FakeRuntime

if TYPE_CHECKING:
    from node.agent.agent import Agent

log = logging.getLogger("shoal.agent")

CLAIMS_REPLAYED_POLL_S = 0.5
CLAIMS_REPLAYED_MAX_POLL_S = 5.0
RUNTIME_POLL_S = 0.5


def make_runtime(agent: Agent) -> Any:
    cfg = agent.config
    if cfg.runtime == "fake":
        return FakeRuntime()
    from node.runtime.config import DockerRuntimeConfig, reached_without_tls

    rt_cfg = DockerRuntimeConfig(**docker_settings(cfg))
    try:
        # Optional: the docker client library may not be installed.
        if reached_without_tls(rt_cfg.docker_host):
            # The SDK without ssl (node.api.lean_imports.docker_sdk; the runtime's own import finds it loaded).
            from node.api import lean_imports

            lean_imports.import_docker_sdk_without_tls()
        from node.agent.image_share import ImageShare  # with the docker SDK (httpx at its first fetch)
        from node.runtime.docker import DockerRuntime
    except ImportError as e:
        raise ConfigError("runtime", f"the docker runtime cannot be loaded: {e}") from None

    def gave_up(slot: str, reason: str) -> Awaitable[Any]:
        log.warning("runtime gave up on %s here: %s", slot, reason)
        return agent.pump.feed(ReplicaGaveUp(slot, reason))

    def health(healthy: bool, reason: str) -> Awaitable[Any]:
        return agent.health.report(RUNTIME, None if healthy else reason or "unhealthy")

    def pulled(event: dict[str, Any]) -> None:
        # Progress of an image pull (node/runtime/pulls.py): no credentials in it.
        agent.events.publish("image_pull", node=agent.name, **event)

    rt = DockerRuntime(agent.name, rt_cfg, on_give_up=gave_up, on_health=health,
                       policy=agent.config.containers, auth_for=cfg.images.auth_for, on_pull=pulled)
    # Images this node cannot pull come from peers that have them, and this
    # node serves its own (node/agent/image_share.py).
    rt.image_share = ImageShare(agent, rt, timeout_s=cfg.images.pull_timeout_s,
                                max_serves=cfg.images.max_peer_serves)
    rt.puller.fallback = rt.image_share.fetch
    return rt


def docker_settings(cfg: AgentConfig) -> dict[str, Any]:
    """The agent's settings for the Docker runtime (DockerRuntimeConfig's
    keyword arguments).  Ports are published on the node's publish address
    (`--publish-address`, default the host the node advertises), never on
    every interface unless the operator says so.  The containers' DNS
    settings stay Docker's default here.  The runtime is made before the
    gossip socket is bound; the advertise host does not depend on its port."""
    kw: dict[str, Any] = {"publish_address": publish_address(cfg, advertise_address(cfg, 0)),
                          # Missing images are pulled as each job's `pull` says ([images] table).
                          "pull_images": True, "max_concurrent_pulls": cfg.images.max_concurrent_pulls,
                          "pull_timeout_s": cfg.images.pull_timeout_s}
    if cfg.docker_host:
        kw["docker_host"] = cfg.docker_host
    if cfg.state_dir is not None:   # jobs' files (node.runtime.files) kept beside the agent's state
        kw["files_dir"] = str(cfg.state_dir / "files")
    return kw


async def watch_claims_replayed(agent: Agent) -> None:
    """Tell the runtime once our claims match our live peers' (after the
    first placement pass replayed our own): containers it finds and that
    nobody wants may go from then on."""
    await trio.sleep(agent.view.placement_interval_s * 1.5)
    poll_s = CLAIMS_REPLAYED_POLL_S
    while not agent.view.claims_replayed():  # never, while this node is alone: ask less and less often
        await trio.sleep(poll_s)
        poll_s = min(poll_s * 2, CLAIMS_REPLAYED_MAX_POLL_S)
    log.info("claims replayed and in agreement with peers: runtime may remove undesired containers")
    agent.runtime.desired_complete()


async def watch_runtime(agent: Agent) -> None:
    """Every RUNTIME_POLL_S, or as soon as the runtime's `states_changed`
    is set, feed the core what the runtime reports when it changed.  Both
    reads are non-blocking snapshots the runtime keeps up to date in its
    own passes."""
    images_fn = getattr(agent.runtime, "images", None)
    slots_fn = getattr(agent.runtime, "slot_states", None)
    rounds_fn = getattr(agent.runtime, "slot_rounds", None)
    pulls_fn = getattr(getattr(agent.runtime, "puller", None), "progress", None)
    poll_s = getattr(agent.runtime, "poll_s", RUNTIME_POLL_S)
    # At rest (every slot running, no pull under way) a runtime that sets
    # states_changed whenever its reports move may be read less often.
    idle_poll_s = getattr(agent.runtime, "idle_poll_s", poll_s)
    wait_s = poll_s
    last_images: object = ()  # never equal to a report: the first one goes through
    last_slots: dict[str, tuple[str, str]] | None = None
    last_rounds: dict[str, int] | None = None
    last_pulls: tuple[Any, ...] = ()
    while True:
        # Taken before the reads: a move while they run still wakes the wait.
        moved = getattr(agent.runtime, "states_changed", None)
        if callable(images_fn):
            try:
                images = images_fn()
            except Exception:  # a runtime bug must not stop the reports
                log.exception("runtime images() failed")
                images = None
            if images != last_images:
                await agent.pump.feed(ImageInventory(images))
                log.info("runtime images: %s", "unknown (nothing declined)" if images is None else
                         ", ".join(sorted(i for i in images if not i.startswith("sha256:"))) or "none")
                last_images = images
        if callable(slots_fn):
            try:
                slots = dict(slots_fn())
                # Read with the states, no await between: about the same claims.
                rounds = dict(rounds_fn()) if callable(rounds_fn) else None
            except Exception:
                log.exception("runtime slot_states() failed")
                slots, rounds = last_slots or {}, last_rounds
            if slots != last_slots or rounds != last_rounds:
                await agent.pump.feed(RuntimeSlots(slots, rounds))
                last_rounds = rounds
                # After the core has them: a blocking query woken by this
                # bump (the service catalog's) reads the new states.
                _container_events(agent, last_slots or {}, slots)
                last_slots = slots
        if callable(pulls_fn):
            try:
                pulls = tuple(pulls_fn())
            except Exception:
                log.exception("runtime pull progress failed")
                pulls = last_pulls
            if pulls != last_pulls:
                await agent.pump.feed(ImagePulls(pulls))
                last_pulls = pulls
        if moved is not None and poll_s is not None:
            at_rest = not last_pulls and all(state == "running" for state, _ in (last_slots or {}).values())
            wait_s = idle_poll_s if at_rest else poll_s
        with trio.move_on_after(math.inf if poll_s is None and moved is not None else wait_s or RUNTIME_POLL_S):
            await (moved.wait() if moved is not None else trio.sleep_forever())


def _container_events(agent: Agent, old: dict[str, tuple[str, str]], new: dict[str, tuple[str, str]]) -> None:
    changed = False
    for slot, (state, reason) in sorted(new.items()):
        if old.get(slot) != (state, reason):
            changed = True
            agent.events.publish("container_state", node=agent.name, slot=slot, state=state, reason=reason)
            log.log(logging.WARNING if state == "failed" else logging.INFO, "slot %s here: %s%s",
                    slot, state, f" ({reason})" if reason else "")
    for slot in sorted(set(old) - set(new)):
        changed = True
        agent.events.publish("container_state", node=agent.name, slot=slot, state="gone", reason="")
    if changed:
        agent.indexes.bump("jobs")
