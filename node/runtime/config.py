"""The Docker runtime's settings (`DockerRuntimeConfig`) and where the engine is."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from node.runtime.decision import Rules

# The Engine API version we speak (1.41 = dockerd 20.10).
API_VERSION = "1.41"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def default_docker_host() -> str:
    """$SHOAL_DOCKER_HOST if set (the testbed gives each agent its own
    dockerd this way), else Docker's default socket."""
    return os.environ.get("SHOAL_DOCKER_HOST") or DEFAULT_DOCKER_HOST


def reached_without_tls(docker_host: str) -> bool:
    """Whether the runtime reaches this engine without TLS: a unix socket,
    or tcp:// and http:// (its client is made without `tls`, so tcp:// is
    plain HTTP).  https:// is TLS; ssh:// and anything else are counted as
    TLS too, so the SDK keeps ssl for them."""
    return docker_host.partition("://")[0] in ("unix", "tcp", "http")


@dataclass(frozen=True, slots=True)
class DockerRuntimeConfig:
    docker_host: str = field(default_factory=default_docker_host)
    api_version: str = API_VERSION
    # Each call, from the awaiting side: the base, which grows with the kind
    # of call and the engine's load (node/runtime/stall.py).
    call_timeout_s: float = 10.0
    pull_timeout_s: float = 600.0       # one pull, whatever its size (node/runtime/pulls.py)
    max_concurrent_pulls: int = 2       # per node; more wait their turn
    concurrency: int = 8                # worker threads for docker calls ...
    listing_concurrency: int = 2        # ... and for listings (ps, images), apart (node/runtime/engine.py)
    stream_concurrency: int = 16        # worker threads for log streams
    resync_interval_s: float = 5.0      # periodic full pass
    # The image list at most this often in those passes (None: 6 x the
    # above): image events (node/runtime/events.py) list it again at once,
    # for our pulls and for images loaded or removed by hand.
    images_resync_interval_s: float | None = None
    kick_debounce_s: float = 0.02       # coalesce bursts of events into one pass
    adopt_grace_s: float = 10.0         # never remove undesired containers this soon after start
    stop_timeout_s: int = 5             # SIGTERM grace before Docker sends SIGKILL
    failure_threshold: int = 3          # engine failures in a row ...
    stall_unhealthy_after_s: float = 30.0   # ... spanning this long with no answer -> unhealthy
    healthy_after_s: float = 5.0        # answering steadily this long -> healthy again
    start_backoff_min_s: float = 0.5    # a failed start waits this before the next, doubling ...
    start_backoff_max_s: float = 30.0   # ... up to this
    crash_loop_failures: int = 5        # this many failures ...
    crash_loop_window_s: float = 120.0  # ... within this window -> give up on this node
    stable_after_s: float = 30.0        # up this long: backoff starts over
    pull_images: bool = False           # the agent sets it; tests that must not reach a registry do not
    # Where bridge replicas' ports are published (the node's advertise host,
    # as the agent sets it); 0.0.0.0 only if the operator says so.
    publish_address: str = "127.0.0.1"
    # The containers' resolvers and search domains (bridge replicas only);
    # empty: Docker's default (the host's resolv.conf).
    dns_servers: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    # Where stacks' names live in DNS ("stack.shoal"): a stack job's containers
    # search STACK.<this> first (node.core.stack_names); empty: not at all.
    dns_stack_domain: str = ""
    log_max_size: str = "10m"
    log_max_files: int = 2
    # Where jobs' files are written (node.runtime.files); None: a private temporary directory.
    files_dir: str | None = None

    def images_interval_s(self) -> float:
        return self.images_resync_interval_s if self.images_resync_interval_s is not None \
            else 6 * self.resync_interval_s

    def rules(self) -> Rules:
        """The thresholds the pure decision (node/runtime/decision.py) applies."""
        return Rules(adopt_grace_s=self.adopt_grace_s, crash_loop_failures=self.crash_loop_failures,
                     crash_loop_window_s=self.crash_loop_window_s, stable_after_s=self.stable_after_s,
                     start_backoff_min_s=self.start_backoff_min_s, start_backoff_max_s=self.start_backoff_max_s)
