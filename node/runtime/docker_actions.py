"""The Docker runtime's actions: the engine calls that start, restart, stop and remove a replica.

How this works: a reconcile pass (node.runtime.docker, `DockerRuntime.reconcile_once`)
decides what each slot needs (node.runtime.decision) and runs each action
as a background task; these are those tasks.  Each checks first that the
slot still wants what the action was for (`rt._desired`: a start() or
stop() may have replaced it meanwhile), and gives the slot up here, with the
reason, when Docker refuses for a reason this node cannot mend (a host port
held by something else, an image that cannot be had, the container policy,
files for an engine on another machine: placement then moves the slot).
The job's files are written (node.runtime.files) before each create,
start and restart of a container.  A name taken by a leftover container gets
a suffix.  Every engine call is bounded (node.runtime.engine).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from node.runtime.containers import Desired, PolicyRefused, container_name, create_kwargs, name_suffix
from node.runtime.decision import ObservedContainer, SlotBook, count_restart, give_up
from node.runtime.engine import RuntimeProblem, engine_message, is_conflict, is_not_found
from node.runtime.files import files_refusal
from node.runtime.network import missing_ports, start_refusal
from node.telemetry import slot_trace

if TYPE_CHECKING:
    from node.runtime.docker import DockerRuntime

log = logging.getLogger("shoal.runtime")


async def stop_call(rt: DockerRuntime, c: ObservedContainer) -> None:
    grace = rt.cfg.stop_timeout_s if c.stop_grace_s is None else c.stop_grace_s  # the job's (its label)
    await rt.engine.call("stop", rt.engine.api.stop, c.id, timeout=grace,
                         timeout_s=rt.cfg.call_timeout_s + grace)


async def remove(rt: DockerRuntime, c: ObservedContainer, why: str) -> None:
    rt._note(f"remove {c.name} ({c.slot}): {why}")
    if c.running:
        try:
            await stop_call(rt, c)
        except RuntimeProblem as e:
            if not is_not_found(e):
                log.debug("%s", e)
    try:
        await rt.engine.call("rm", rt.engine.api.remove_container, c.id, v=True, force=True)
    except RuntimeProblem as e:
        if not is_not_found(e):
            raise


async def stop(rt: DockerRuntime, c: ObservedContainer, why: str) -> None:
    rt._note(f"stop {c.name}: {why}")
    await stop_call(rt, c)


async def restart(rt: DockerRuntime, slot: str, want: Desired, book: SlotBook, c: ObservedContainer,
                  counts: bool) -> None:
    if rt._desired.get(slot) is not want:
        return
    try:
        await write_files(rt, want)     # a start binds them again: their names must exist
        if c.state == "running":    # unhealthy
            grace = rt.cfg.stop_timeout_s if c.stop_grace_s is None else c.stop_grace_s
            await rt.engine.call("restart", rt.engine.api.restart, c.id, timeout=grace,
                                 timeout_s=rt.cfg.call_timeout_s + grace)
        else:
            await rt.engine.call("start", rt.engine.api.start, c.id)
    except RuntimeProblem as e:
        if not gave_up_on_refusal(rt, slot, want, book, e):
            raise
        return
    if counts:
        # Counted only once it worked: a failed call is retried as the same restart.
        counted = count_restart(book, trio.current_time())
        rt._update_book(slot, book, counted)
        rt._note(f"restarted {c.name} (restart {counted.restarts})")


async def start(rt: DockerRuntime, slot: str, want: Desired, book: SlotBook) -> None:
    if rt._desired.get(slot) is not want:
        return
    refused = (rt.policy.refusal(want.spec, rt.node) or missing_ports(want.spec, want.claim)
               or files_refusal(want.spec, rt.cfg.docker_host))
    if refused is not None:
        rt._update_book(slot, book, give_up(book, refused))
        rt._tell_give_up(slot, refused)
        return
    problem = await rt.image_ready(want.spec)
    if rt._desired.get(slot) is not want:
        return      # stopped or replaced while the image was pulled
    if problem is not None:
        rt._update_book(slot, book, give_up(book, problem))
        rt._tell_give_up(slot, problem)
        return
    cid = await create(rt, slot, want)
    slot_trace.step(slot, "created", rt.node)
    rt._note(f"started {slot} ({cid[:12]})")
    try:
        await rt.engine.call("start", rt.engine.api.start, cid)
    except RuntimeProblem as e:
        if not gave_up_on_refusal(rt, slot, want, book, e):
            raise
        # Never started: it holds nothing, and its ports may be had later.
        await remove_quietly(rt, cid)
        return
    slot_trace.step(slot, "started", rt.node)


def gave_up_on_refusal(rt: DockerRuntime, slot: str, want: Desired, book: SlotBook, e: RuntimeProblem) -> bool:
    """If Docker refused a start for a reason this node cannot mend (a host
    port held by something else, no such network), give up on the slot
    here (placement moves it) and say True."""
    reason = start_refusal(engine_message(e), rt.node, want.spec, want.claim, rt.cfg.publish_address)
    if reason is None:
        return False
    if rt._desired.get(slot) is want:
        rt._update_book(slot, book, give_up(book, reason))
        rt._tell_give_up(slot, reason)
    return True


async def remove_quietly(rt: DockerRuntime, cid: str) -> None:
    try:
        await rt.engine.call("rm", rt.engine.api.remove_container, cid, v=True, force=True)
    except RuntimeProblem as e:
        log.debug("%s", e)


async def write_files(rt: DockerRuntime, want: Desired) -> list[dict[str, Any]]:
    """The job's files written on this node (node.runtime.files), as bind mounts."""
    if not want.spec.files:
        return []
    try:
        return await trio.to_thread.run_sync(rt.files.mounts, want.spec.files)
    except OSError as e:
        raise RuntimeProblem(f"cannot write the job's files under {rt.files.directory}: {e}") from None


async def create(rt: DockerRuntime, slot: str, want: Desired) -> str:
    api = rt.engine.api
    file_mounts = await write_files(rt, want)
    try:
        kwargs = create_kwargs(rt.node, slot, want.claim, want.spec, want.spec_hash, rt.cfg,
                               api.create_host_config, rt.policy, file_mounts)
    except PolicyRefused as e:   # checked in start(); never create what the policy refuses
        raise RuntimeProblem(str(e)) from None
    name = container_name(slot, want.claim.ballot.round)
    try:
        made = await rt.engine.call("create", api.create_container, want.spec.image, name=name, **kwargs)
    except RuntimeProblem as e:
        if not is_conflict(e):
            raise
        suffix = name_suffix(rt.node, want.ballot, want.spec_hash)
        made = await rt.engine.call("create", api.create_container, want.spec.image,
                                    name=f"{name}-{suffix}", **kwargs)
    return made["Id"]
