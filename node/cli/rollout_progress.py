"""Where one job stands while `shoal job run` watches it: running, rolling out, done, failed, reverted.

How this works: `phase(detail, target)` reads one `GET /v1/jobs/NAME`
answer (node/api/views.py: every slot with the container hash of its claim
and what its holder's runtime says; `rollout`: the rollout as the agent
sees it, auction.rollout.describe) against `target`, the container hash
the watcher saw right after its submission, and says

    DONE       every slot runs the target version, and no rollout is in
               progress there (a rollout ends once every slot has run the
               new version for its `min_healthy_s`: then it is healthy);
    WAITING    the canaries are healthy and the rest wait for
               `shoal job promote NAME` (nothing more happens without one);
    FAILING    the rollout failed and the job has `auto_revert`: its revert
               is on its way (not final: the watcher waits for it);
    FAILED     the rollout failed, no automatic revert;
    CHANGED    the job's current version is no longer the target (reverted,
               or another write came after ours): `changed_line` says which;
    GOING      anything else (slots pending, starting, on the old version).

Pure: the watcher (node.cli.progress) does the requests and the printing.
"""

from __future__ import annotations

from typing import Any

DONE, WAITING, FAILING, FAILED, CHANGED, GOING = "done", "waiting", "failing", "failed", "changed", "going"
FINAL = (DONE, WAITING, FAILED, CHANGED)
NEW_STATES = ("new-healthy", "new-pending")


def short(h: str | None) -> str:
    return (h or "")[:12]


def on_target(slot: dict[str, Any], target: str) -> bool:
    """The slot's claim is for the target version (a pending slot will be)."""
    h = slot.get("container_hash")
    return h is None or short(h) == short(target)


def phase(detail: dict[str, Any], target: str) -> str:
    if short(detail.get("container_hash")) != short(target):
        return CHANGED
    rollout = detail.get("rollout")
    if rollout:
        if rollout.get("failed"):
            spec = detail.get("spec") or {}
            return FAILING if (spec.get("update") or {}).get("auto_revert") else FAILED
        if rollout.get("waiting_promotion"):
            return WAITING
        return GOING
    slots = detail.get("slots") or []
    if all(s.get("state") == "placed" and s.get("runtime") == "running" and on_target(s, target) for s in slots):
        return DONE
    return GOING


def healthy_count(detail: dict[str, Any], target: str) -> int:
    """Slots that run the target version and count as healthy (progress)."""
    rollout = detail.get("rollout")
    slots = detail.get("slots") or []
    if rollout:
        return sum(1 for s in rollout.get("slots") or [] if s == "new-healthy")
    return sum(1 for s in slots if s.get("runtime") == "running" and on_target(s, target))


def slot_note(detail: dict[str, Any], index: int, target: str) -> str:
    """What a rollout adds to a slot's line ("" when no rollout is in progress)."""
    rollout = detail.get("rollout")
    slots = detail.get("slots") or []
    slot = slots[index] if index < len(slots) else {}
    if not on_target(slot, target):
        return f" (old version {short(slot.get('container_hash'))})"
    states = (rollout or {}).get("slots") or []
    if not rollout or index >= len(states):
        return ""
    if states[index] == "new-healthy":
        return " (new version, healthy)"
    if slot.get("runtime") == "running":   # the rollout's states may lag the claims by a pass
        return " (new version, not yet healthy)"
    return ""


def rollout_line(name: str, detail: dict[str, Any]) -> str | None:
    """One summary line of a rollout in progress; None when there is none."""
    rollout = detail.get("rollout")
    if not rollout:
        return None
    states = rollout.get("slots") or []
    total = len(states)
    new = sum(1 for s in states if s in NEW_STATES)
    healthy = sum(1 for s in states if s == "new-healthy")
    failed = sum(1 for s in detail.get("slots") or [] if s.get("runtime") in ("failed", "exited"))
    line = (f"{name}: rollout to {short(rollout.get('target'))}: {new}/{total} on the new version, "
            f"{healthy}/{total} healthy, {failed} failed")
    if rollout.get("failed"):
        line += f"; the rollout failed: {rollout['failed']}"
    elif rollout.get("waiting_promotion"):
        line += f"; canaries healthy, the rest wait for `shoal job promote {name}`"
    return line


def changed_line(name: str, history: dict[str, Any] | None, target: str) -> str:
    """Why the job's current version is no longer the one we submitted."""
    versions = (history or {}).get("versions") or []
    current = next((v for v in versions if v.get("current")), None)
    if current is None:
        return f"{name}: its current version is no longer the one submitted (see `shoal job history {name}`)"
    if current.get("why") == "revert":
        return (f"{name}: the rollout to {short(target)} failed and was reverted: version {current['version']} "
                f"(revert from {current.get('ref') or '?'}) runs {current.get('image') or '?'} again "
                f"(see `shoal job history {name}`)")
    return (f"{name}: replaced meanwhile by version {current['version']} ({current.get('why') or 'submit'}"
            f" by {current.get('by') or current.get('agent') or '?'}); stopped watching")
