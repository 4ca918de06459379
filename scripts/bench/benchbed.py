"""What the testbed benchmarks share: a 5-node scripts/testbed driven from
Python, the source it runs, and one run's lifecycle.

How this works: a benchmark opens `bench_run(...)`, which exports the git
revision to run (or takes the working tree), makes a work directory and
turns SIGTERM/SIGHUP into KeyboardInterrupt; inside, it builds `Bed`s
(subclasses add what one benchmark needs) and registers each with
`run.track(bed)`.  However the body ends -- done, a timeout, a signal, a
failed testbed command -- every tracked bed is taken down, the raw figures
go to --json, and the work directory is removed; `run.rc` is then 0 or 1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
N = 5
API_VERSION = "1.41"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def median(xs):
    return statistics.median(xs) if xs else None


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()


def export_source(rev: str, dest: Path) -> tuple[Path, str]:
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit],
                             capture_output=True, timeout=120, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True, timeout=120)
    return dest, f"commit {commit[:12]} ({git('log', '-1', '--format=%s', commit)[:60]})"


def wait(pred, timeout: float, what: str, every: float = 0.1) -> float:
    """Poll pred until true; return the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ok = pred()
        except OSError:
            ok = False
        if ok:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class Bed:
    """scripts/testbed of the source under test, with its own prefix, subnet
    and state dir; after `up`, each node's status, a Docker client per node
    and the cluster's API token."""

    def __init__(self, src: Path, workdir: Path, prefix: str, subnet: str) -> None:
        self.src = src
        self.env = dict(os.environ, SHOAL_TESTBED_PREFIX=prefix, SHOAL_TESTBED_SUBNET=subnet,
                        SHOAL_TESTBED_DIR=str(workdir / "testbed"), SHOAL_TESTBED_PYTHON=sys.executable)
        self.nodes: dict[int, dict] = {}
        self.docker: dict = {}
        self.token = ""

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        out = subprocess.run([str(self.src / "scripts" / "testbed"), *args], env=self.env, capture_output=True,
                             text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and out.returncode != 0:
            raise RuntimeError(f"scripts/testbed {' '.join(args)} exited {out.returncode}:\n{out.stderr}")
        return out

    def status(self) -> dict:
        return json.loads(self.run("status", "--json").stdout)

    def up(self, *args: str) -> None:
        """`scripts/testbed up N ARGS...`, then the nodes, clients and token."""
        import docker

        self.run("up", str(N), *args)
        st = self.status()
        self.token = st["token"] or ""
        self.nodes = {n["index"]: n for n in st["nodes"]}
        self.docker = {i: docker.APIClient(base_url=n["docker_host"], version=API_VERSION, timeout=60)
                       for i, n in self.nodes.items()}

    def down(self) -> None:
        for c in self.docker.values():
            c.close()
        self.docker = {}
        out = self.run("down", check=False)
        if out.returncode != 0:
            log(f"testbed down: {out.stderr.strip()}")

    def api(self, i: int, method: str, path: str, body=None, timeout: float = 10, headers_out: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.nodes[i]["api"] + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            if headers_out is not None:
                headers_out.update(r.headers)
            raw = r.read()
            return json.loads(raw) if raw else None


def keep_logs(bed: Bed, dest: Path) -> list[str]:
    """Copy each node's agent log into `dest` (before the testbed goes down)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for n in bed.nodes.values():
        p = Path(n["state_dir"]) / "agent.log"
        if p.exists():
            shutil.copy(p, dest / f"{n['name']}-agent.log")
            out.append(str(dest / f"{n['name']}-agent.log"))
    return out


@dataclass
class Run:
    workdir: Path
    src: Path = REPO
    rc: int = 0
    beds: list[Bed] = field(default_factory=list)

    def track(self, bed: Bed) -> Bed:
        self.beds.append(bed)
        return bed


@contextmanager
def bench_run(tag: str, results: dict, src_rev: str, json_path: str | None) -> Iterator[Run]:
    """One benchmark run: see the module's docstring."""
    def on_signal(signum, _frame):
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)  # one stop is enough: let the clean-up finish
        raise KeyboardInterrupt(f"signal {signum}")
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    run = Run(Path(tempfile.mkdtemp(prefix=f"shoal-{tag}-")))
    try:
        if src_rev == "worktree":
            run.src, desc = REPO, "the working tree at " + git("rev-parse", "--short=12", "HEAD")
        else:
            run.src, desc = export_source(src_rev, run.workdir / "src")
        results["src"] = desc
        log(f"running {desc}")
        yield run
    except (KeyboardInterrupt, TimeoutError, RuntimeError) as e:
        log(f"stopped: {e}")
        run.rc = 1
    finally:
        for bed in run.beds:
            bed.down()
        if json_path:
            Path(json_path).write_text(json.dumps(results, indent=2))
        shutil.rmtree(run.workdir, ignore_errors=True)
