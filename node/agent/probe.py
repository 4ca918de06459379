"""What this machine offers to jobs: measured capacity, declared overrides, host reserve.

How this works: `measure` asks the OS (Python's `os` and `shutil`: psutil
was a tenth of an agent's import time for three numbers) for the machine's
CPU cores (as millicores), total memory and the size of the filesystem
holding the state dir.  `capacity` builds what the agent publishes in its status record:

    capacity = (declared amount if given, else measured) - host reserve

clamped at zero in every component.  A declared amount (`--cpus`,
`--memory`, a disk size) replaces the measurement rather than capping it,
so several agents on one host can each act as a machine of the size they
were told; nothing checks that the declarations add up to the host.

The host reserve keeps room for the OS, Docker and the agent itself, so
placing jobs up to "full" does not starve the host.  Unless one is given,
it is computed from the machine as the agent sees it (declared or measured):

    cpu     5% of the cores, at least 100m      (4 cores -> 200m, 1 core -> 100m)
    memory  10% of the memory, at most 256 MiB  (16 GiB -> 256 MiB, 1 GiB -> ~102 MiB)
    disk    10% of the disk, at most 1 GiB

Pass `reserve=Resources.ZERO` to publish a declared capacity exactly.

Limits of the measurement: the OS reports the host, not a container's cgroup
limits.  CPU counts only the cores this process may run on (its affinity,
which follows cpusets and `taskset`), but a CPU quota or a memory limit is
invisible; inside a limited container, declare the capacity instead.

`arch` gives the default `arch` label in Docker's spelling (`amd64`,
`arm64`), so a constraint `arch == amd64` matches the image platforms
people already write.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

from auction.resources import GiB, MILLIS_PER_CORE, MiB, Resources, parse_cpu, parse_memory

# Percentages, applied in integer arithmetic (rounding down) so the result is
# exact; see the module doc.
RESERVE_CPU_PERCENT = 5
RESERVE_CPU_MIN_MILLIS = 100
RESERVE_MEMORY_PERCENT = 10
RESERVE_MEMORY_MAX_BYTES = 256 * MiB
RESERVE_DISK_PERCENT = 10
RESERVE_DISK_MAX_BYTES = 1 * GiB

# platform.machine() spellings -> the GOARCH names Docker uses for platforms.
_ARCH_ALIASES = {
    "x86_64": "amd64", "amd64": "amd64", "x64": "amd64",
    "aarch64": "arm64", "arm64": "arm64", "armv8l": "arm64", "aarch64_be": "arm64",
    "armv7l": "arm", "armv7": "arm", "armv6l": "arm", "arm": "arm",
    "i386": "386", "i486": "386", "i586": "386", "i686": "386", "x86": "386",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}


def _cores() -> int:
    cores = os.cpu_count() or 1  # None when it cannot be told
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity API (macOS)
        usable = 0
    return min(cores, usable) if usable else cores


def _memory_total() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _disk_total(state_dir: Path) -> int:
    # The state dir may not exist yet: measure the filesystem it will be on.
    path = Path(state_dir).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(str(path)).total


def measure(state_dir: Path | None = None) -> Resources:
    """The machine as the OS reports it.  Disk is that of the filesystem
    holding state_dir, or 0 without a state dir (nothing to measure)."""
    disk = _disk_total(state_dir) if state_dir is not None else 0
    return Resources(_cores() * MILLIS_PER_CORE, _memory_total(), disk)


def default_reserve(machine: Resources) -> Resources:
    """The host reserve for a machine of this size (see the module doc)."""
    cpu = max(RESERVE_CPU_MIN_MILLIS, machine.cpu_millis * RESERVE_CPU_PERCENT // 100)
    memory = min(RESERVE_MEMORY_MAX_BYTES, machine.memory_bytes * RESERVE_MEMORY_PERCENT // 100)
    disk = min(RESERVE_DISK_MAX_BYTES, machine.disk_bytes * RESERVE_DISK_PERCENT // 100)
    return Resources(cpu, memory, disk)


def capacity(state_dir: Path | None = None, *, cpus: int | float | str | None = None,
             memory_bytes: int | str | None = None, disk_bytes: int | str | None = None,
             reserve: Resources | None = None, measured: Resources | None = None) -> Resources:
    """What this agent offers to jobs.

    `cpus` is in cores as `--cpus` takes it (2, 1.5, "1.5", "500m");
    `memory_bytes` and `disk_bytes` are byte counts or strings with units
    ("8GiB"); each replaces the measurement when given.  `reserve` defaults
    to `default_reserve` of the resulting machine.  `measured` skips measuring
    (the caller measured already).  Raises auction.resources.UnitError on a
    malformed amount."""
    declared_cpu = parse_cpu(cpus) if cpus is not None else None
    declared_memory = parse_memory(memory_bytes) if memory_bytes is not None else None
    declared_disk = parse_memory(disk_bytes) if disk_bytes is not None else None
    if measured is None and None in (declared_cpu, declared_memory, declared_disk):
        measured = measure(state_dir)
    machine = Resources(
        declared_cpu if declared_cpu is not None else measured.cpu_millis,
        declared_memory if declared_memory is not None else measured.memory_bytes,
        declared_disk if declared_disk is not None else measured.disk_bytes,
    )
    if reserve is None:
        reserve = default_reserve(machine)
    left = machine - reserve
    # A reserve larger than the machine leaves nothing, not a negative offer.
    return Resources(max(0, left.cpu_millis), max(0, left.memory_bytes), max(0, left.disk_bytes))


def arch(machine: str | None = None) -> str:
    """The default `arch` label: platform.machine() in Docker's spelling
    (x86_64 -> amd64, aarch64 -> arm64); unknown names pass through
    lowercased, an empty one becomes "unknown"."""
    raw = (platform.machine() if machine is None else machine).strip().lower()
    return _ARCH_ALIASES.get(raw, raw or "unknown")
