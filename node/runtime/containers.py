"""How a replica becomes a Docker container, and how a listing becomes observations.

How this works
--------------
A replica's container is named `shoal-<job>-<index>-<round>` (a suffix is
added if that name is taken, e.g. by a concurrent ballot of another node on a
shared engine) and labelled `shoal.job`, `shoal.slot`, `shoal.ballot`
("round/coordinator"), `shoal.node`, `shoal.spec_hash` (the spec's
`container_hash()`): the labels are how a later pass, or an agent that
restarted, tells whose container it is.  HostConfig: the spec's network
mode with its published ports and DNS settings (node/runtime/network.py),
`nano_cpus` and `mem_limit` from the spec, Docker's own restart policy `no`
(the runtime restarts), the json-file log driver capped at `log_max_files` x
`log_max_size`; the spec's health command becomes Docker's healthcheck, else
the image's HEALTHCHECK applies.  The environment is the spec's `env` plus
the `SHOAL_*` variables that tell the replica its job, slot, node and ports.

Hardening (auction/container_policy.py has the rule): every container gets
`no-new-privileges`, the spec's `pids_limit`, and its capabilities made from
scratch: `cap_drop ALL` plus `cap_add` of exactly the set the node's policy
gives this spec (`ContainerPolicy.capabilities`); the spec's `user`,
`read_only` and `devices` are passed as asked, and its volumes as mounts
(auction.volumes: a Docker volume per slot, tmpfs, an allowed host path),
its files too (auction.files: read-only binds of what node.runtime.files wrote),
and its container options (auction.container_options: working_dir, init,
shm_size, ulimits, extra_hosts, container_labels, sysctls, hostname) as
Docker's own.
`create_kwargs` refuses
(`PolicyRefused`) a spec the node's policy does not allow: the runtime's
second line of defence after the bidder's decline.

The engine's container and image listings are read back into
`decision.ObservedContainer`s and sets of local image references.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from auction.claims import Claim, ballot_label
from auction.container_options import hostname_for
from auction.container_policy import NO_NEW_PRIVILEGES, ContainerPolicy
from auction.placement import normalize_image
from auction.spec import MAX_STOP_GRACE_S, JobSpec
from auction.volumes import docker_mounts
from node.runtime.config import DockerRuntimeConfig
from node.runtime.decision import DesiredReplica, ObservedContainer, SlotBook
from node.runtime.network import environment, exposed_ports, host_config_network

LABEL_JOB = "shoal.job"
LABEL_SLOT = "shoal.slot"
LABEL_BALLOT = "shoal.ballot"
LABEL_NODE = "shoal.node"
LABEL_SPEC = "shoal.spec_hash"
LABEL_STOP_GRACE = "shoal.stop_grace_s"     # the job's stop grace, so a stop honours it after any restart
NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True, eq=False)
class Desired:
    """What the runtime's start() was told for a slot; compared by identity,
    so an action launched for one start() is dropped once a later start() or
    stop() came."""

    claim: Claim
    spec: JobSpec
    replica: DesiredReplica

    @property
    def ballot(self) -> str:
        return self.replica.ballot

    @property
    def spec_hash(self) -> str:
        return self.replica.spec_hash


def container_name(slot: str, round_: int) -> str:
    job, _, index = slot.rpartition("/")
    return f"shoal-{job}-{index}-{round_}"


def node_filter(node: str) -> dict[str, str]:
    """The engine-side filter for this node's containers."""
    return {"label": f"{LABEL_NODE}={node}"}


def health_config(spec: JobSpec) -> dict[str, Any] | None:
    """Docker's healthcheck for the spec's probe (None: keep the image's)."""
    h = spec.health
    if h is None:
        return None
    return {"test": ["CMD", *h.command], "interval": int(h.interval_s * NS_PER_S),
            "timeout": int(h.timeout_s * NS_PER_S), "retries": int(h.retries),
            "start_period": int(h.start_period_s * NS_PER_S)}


class PolicyRefused(ValueError):
    """The node's container policy does not allow the spec; str() says why."""


def process_options(spec: JobSpec) -> dict[str, Any]:
    """The container options' part of `create_host_config`'s arguments
    (auction.container_options: each only when the job sets it)."""
    o, kw = spec.options, {}
    if o.init:
        kw["init"] = True
    if o.shm_size_bytes is not None:
        kw["shm_size"] = o.shm_size_bytes
    if o.ulimits:
        kw["ulimits"] = [{"Name": name, "Soft": soft, "Hard": hard} for name, soft, hard in o.ulimits]
    if o.extra_hosts:
        kw["extra_hosts"] = [f"{host}:{address}" for host, address in o.extra_hosts]
    if o.sysctls:
        kw["sysctls"] = dict(o.sysctls)
    return kw


def security_options(spec: JobSpec, policy: ContainerPolicy) -> dict[str, Any]:
    """The hardening part of `create_host_config`'s arguments for `spec`."""
    return {"cap_drop": ["ALL"], "cap_add": list(policy.capabilities(spec)),
            "security_opt": [NO_NEW_PRIVILEGES], "pids_limit": spec.pids_limit,
            "read_only": spec.read_only, "devices": list(spec.devices) or None}


def create_kwargs(node: str, slot: str, claim: Claim, spec: JobSpec, spec_hash: str,
                  cfg: DockerRuntimeConfig, create_host_config: Callable[..., Any],
                  policy: ContainerPolicy, file_mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The keyword arguments of `APIClient.create_container` (after the image
    and the name) for replica `slot`; `create_host_config` is the SDK's;
    `file_mounts` bind the job's files (node.runtime.files).
    Raises PolicyRefused if `policy` does not allow what `spec` asks."""
    refused = policy.refusal(spec, node)
    if refused is not None:
        raise PolicyRefused(refused)
    # The job's own labels first: ours (shoal.*, which it may not set) say whose container it is.
    labels = {**dict(spec.options.container_labels), LABEL_JOB: claim.job, LABEL_SLOT: slot,
              LABEL_BALLOT: ballot_label(claim), LABEL_NODE: node, LABEL_SPEC: spec_hash,
              LABEL_STOP_GRACE: str(stop_grace_s(spec))}
    host_config = create_host_config(
        **host_config_network(spec, claim, cfg.publish_address, cfg.dns_servers, cfg.dns_search,
                              cfg.dns_stack_domain),
        nano_cpus=spec.cpu_millis * 1_000_000,
        mem_limit=spec.memory_bytes,
        restart_policy={"Name": "no"},
        log_config={"Type": "json-file", "Config": {"max-size": cfg.log_max_size,
                                                    "max-file": str(cfg.log_max_files)}},
        **security_options(spec, policy),
        **process_options(spec),
        # Docker volumes (one per slot and name), tmpfs and allowed host paths
        # (auction.volumes), then the job's files (auction.files).
        mounts=docker_mounts(spec.volumes, claim.job, claim.index,
                             {LABEL_JOB: claim.job, LABEL_SLOT: slot, LABEL_NODE: node})
        + list(file_mounts or ()) or None,
    )
    kw = {"command": list(spec.command) if spec.command is not None else None,
          "environment": environment(node, slot, claim, spec, cfg.publish_address), "labels": labels,
          "host_config": host_config, "ports": exposed_ports(spec), "healthcheck": health_config(spec),
          "user": spec.user, "detach": True,
          # The job's stop settings (`docker stop` without a timeout, and a
          # stop by the engine itself, use these).
          "stop_timeout": stop_grace_s(spec)}
    if spec.stop_signal:  # else the engine takes the image's STOPSIGNAL, as `docker run` does
        kw["stop_signal"] = spec.stop_signal
    if spec.entrypoint is not None:     # the engine then leaves the image's CMD out, as `docker run` does
        kw["entrypoint"] = list(spec.entrypoint)
    if spec.options.working_dir is not None:
        kw["working_dir"] = spec.options.working_dir
    if spec.options.hostname is not None:
        kw["hostname"] = hostname_for(spec.options.hostname, claim.job, claim.index, node)
    return kw


def stop_grace_s(spec: JobSpec) -> int:
    """The job's stop grace in whole seconds (Docker's unit), never shorter."""
    return math.ceil(spec.stop_grace_s)


def name_suffix(node: str, ballot: str, spec_hash: str) -> str:
    """Told apart from a container of another node or ballot that took the name."""
    return hashlib.blake2b(f"{node}|{ballot}|{spec_hash}".encode(), digest_size=4).hexdigest()


def observed(raw: Iterable[dict[str, Any]]) -> list[ObservedContainer]:
    """`APIClient.containers(all=True)` rows as observations."""
    out = []
    for c in raw:
        labels = c.get("Labels") or {}
        names = c.get("Names") or ["/?"]
        out.append(ObservedContainer(
            id=c["Id"], name=names[0].lstrip("/"), slot=labels.get(LABEL_SLOT, ""),
            ballot=labels.get(LABEL_BALLOT, ""), spec_hash=labels.get(LABEL_SPEC, ""),
            state=c.get("State", ""), status=c.get("Status", ""),
            created=int(c.get("Created") or 0), image=c.get("Image", ""),
            stop_grace_s=_grace_label(labels.get(LABEL_STOP_GRACE))))
    return out


def _grace_label(text: object) -> int | None:
    """The stop grace a container's label says (None: absent or not a sane number)."""
    if isinstance(text, str) and text.isdigit() and int(text) <= MAX_STOP_GRACE_S:
        return int(text)
    return None


def local_images(raw: Iterable[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """`APIClient.images()` rows as (normalized tags and digests, image ids)."""
    tags, ids = set(), set()
    for img in raw:
        ids.add(img.get("Id", ""))
        for t in img.get("RepoTags") or ():
            tags.add(normalize_image(t))
        for d in img.get("RepoDigests") or ():
            tags.add(d)
    return tags, ids


def ps_row(node: str, c: ObservedContainer, want: Desired | None, book: SlotBook | None) -> dict[str, Any]:
    """One container as `shoal ps` and the API list it: its role says whether
    it is the slot's current replica, an older spec of it, or stale."""
    role = ("desired" if want and want.ballot == c.ballot and want.spec_hash == c.spec_hash
            else "old-spec" if want and want.ballot == c.ballot else "stale")
    return {"slot": c.slot, "id": c.id[:12], "name": c.name, "node": node,
            "state": c.state, "status": c.status, "health": c.health, "image": c.image,
            "ballot": c.ballot, "spec_hash": c.spec_hash[:12], "role": role,
            "ports": dict(want.claim.ports) if want and role == "desired" else {},
            "restarts": book.restarts if book else 0,
            "gave_up": book.gave_up if book else None, "done": book.done if book else None}
