"""Jobs and placement across real `shoal agent` processes on loopback.

Each agent is `python -m node.cli.main agent --bind 127.0.0.1:0 --api 127.0.0.1:0
--profile local` with its own state dir (kept across restarts: a restarted
agent reuses it and gets new ports, read from `<state-dir>/agent.json`),
a declared capacity of 2 cpu and 2 GiB with no host reserve, and the fake
runtime.  Every wait polls the API against a deadline.  The fixture kills
every process it started, by PID, in teardown (also when the test fails)
and prints the agents' logs on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.real

START_DEADLINE_S = 15.0
CONVERGE_DEADLINE_S = 20.0
# A graceful leave (SIGTERM) waits up to node.agent.handover.HANDOVER_S (20 s)
# for the agent's replicas to run elsewhere before it exits.
STOP_DEADLINE_S = 45.0
REPO = Path(__file__).resolve().parents[2]
CAPACITY = ("--cpus", "2", "--memory", "2GiB", "--reserve-cpus", "0", "--reserve-memory", "0")

WEB_TOML = """
name = "web"
image = "busybox"
command = ["sleep", "3600"]
cpu = 0.5
memory = "128MiB"
replicas = 6
"""


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen
    state_dir: Path
    log_path: Path
    gossip: str = ""
    api: str = ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def wait_until(predicate, timeout_s: float, what: str, report=lambda: "", interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})\n{report()}")


class Cluster:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.procs: list[Proc] = []  # every process started, restarts included
        self.current: dict[str, Proc] = {}

    def start(self, name: str, *extra: str, join: list[Proc] = ()) -> Proc:
        state = self.tmp / name
        state.mkdir(exist_ok=True)
        run = sum(1 for p in self.procs if p.name == name)
        log_path = self.tmp / f"{name}.{run}.log"
        argv = [sys.executable, "-m", "node.cli", "agent", "--name", name,
                "--bind", "127.0.0.1:0", "--api", "127.0.0.1:0", "--profile", "local",
                "--state-dir", str(state), "--log-level", "DEBUG", *CAPACITY, *extra]
        for seed in join:
            argv += ["--join", seed.gossip]
        info_file = state / "agent.json"
        info_file.unlink(missing_ok=True)  # left behind by a kill -9
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        p = Proc(name, proc, state, log_path)
        self.procs.append(p)
        self.current[name] = p
        info = wait_until(lambda: self._info(p), START_DEADLINE_S, f"{name} to start", self.report)
        p.gossip, p.api = info["gossip"], info["api"]
        return p

    def _info(self, p: Proc) -> dict | None:
        if not p.alive():
            pytest.fail(f"{p.name} exited with {p.proc.returncode}\n{p.log()}")
        try:
            info = json.loads((p.state_dir / "agent.json").read_text())
        except (OSError, ValueError):
            return None
        return info if info.get("pid") == p.proc.pid else None

    def get(self, p: Proc, path: str):
        try:
            r = httpx.get(f"{p.api}{path}", timeout=5.0)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def job_names(self, p: Proc) -> set[str] | None:
        jobs = self.get(p, "/v1/jobs")
        return None if jobs is None else {j["name"] for j in jobs}

    def all_alive(self, p: Proc, names: set[str]) -> bool:
        members = self.get(p, "/v1/members") or []
        return names <= {m["name"] for m in members if m["status"] == "alive"}

    def stop(self, p: Proc, sig: int = signal.SIGTERM) -> int:
        os.kill(p.proc.pid, sig)
        return p.proc.wait(timeout=STOP_DEADLINE_S)

    def report(self) -> str:
        out = []
        for p in self.procs:
            tail = "\n".join(p.log().splitlines()[-60:])
            out.append(f"--- {p.log_path.name} (pid {p.proc.pid}, rc {p.proc.poll()}) ---\n{tail}")
        return "\n".join(out)

    def kill_all(self) -> None:
        for p in self.procs:
            if p.alive():
                try:
                    os.kill(p.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.kill_all()
        print(c.report())  # shown only when the test failed


def shoal(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)


def three(cluster: Cluster, *extra_for: tuple[str, ...]) -> tuple[Proc, Proc, Proc]:
    extra = list(extra_for) + [()] * (3 - len(extra_for))
    a1 = cluster.start("a1", *extra[0])
    a2 = cluster.start("a2", *extra[1], join=[a1])
    a3 = cluster.start("a3", *extra[2], join=[a1, a2])
    names = {"a1", "a2", "a3"}
    for p in (a1, a2, a3):
        wait_until(lambda p=p: cluster.all_alive(p, names), CONVERGE_DEADLINE_S, f"{p.name} to see all alive",
                   cluster.report)
    return a1, a2, a3


def spec(name: str, **fields) -> dict:
    return {"name": name, "image": "busybox", "cpu": 0.25, "memory": "64MiB", "replicas": 1, **fields}


def test_a_job_submitted_to_one_agent_is_readable_from_another_within_a_second(cluster, tmp_path):
    a1, a2, a3 = three(cluster)
    spent = []
    for i in range(3):
        name = f"fast-{i}"
        r = httpx.post(f"{a1.api}/v1/jobs", json=spec(name), timeout=10)
        assert r.status_code == 201, r.text
        t0 = time.monotonic()  # acknowledged (durable on a1): the clock starts
        wait_until(lambda: httpx.get(f"{a3.api}/v1/jobs/{name}", timeout=5).status_code == 200, 5.0,
                   f"{name} on a3", cluster.report, interval_s=0.005)
        spent.append(time.monotonic() - t0)
    print(f"submission to a1 readable on a3 after {', '.join(f'{s * 1000:.0f} ms' for s in spent)}")
    assert max(spent) < 1.0, spent
    # and through the CLI, on the third agent
    toml = tmp_path / "web.toml"
    toml.write_text(WEB_TOML)
    out = shoal("job", "run", str(toml), "--address", a1.api)
    assert out.returncode == 0 and out.stdout.strip() == "web", out.stderr
    t0 = time.monotonic()
    wait_until(lambda: shoal("job", "status", "web", "--json", "--address", a3.api).returncode == 0, 5.0,
               "web on a3 through the CLI", cluster.report)
    print(f"CLI: web readable on a3 after {time.monotonic() - t0:.2f} s (including CLI start-up)")
    data = json.loads(shoal("job", "status", "web", "--json", "--address", a3.api).stdout)
    assert data["spec"]["command"] == ["sleep", "3600"] and data["replicas"] == 6


def test_malformed_specs_get_field_level_errors(cluster, tmp_path):
    a1 = cluster.start("a1")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "Bad_Name"\nimage = "busybox"\nreplicas = -1\ncpu = "lots"\nreplica = 3\n'
                   'constraints = ["rack = a"]\n[env]\n1BAD = "x"\n')
    out = shoal("job", "run", str(bad), "--address", a1.api)
    assert out.returncode == 1, out
    for path in ("name:", "replicas:", "cpu:", "replica:", "constraints[0]:", "env"):
        assert f"\n  {path}" in out.stderr, (path, out.stderr)
    assert "did you mean 'replicas'" in out.stderr
    syntax = tmp_path / "syntax.toml"
    syntax.write_text("name = \n")
    out = shoal("job", "run", str(syntax), "--address", a1.api)
    assert out.returncode == 1 and "TOML syntax error" in out.stderr
    out = shoal("job", "run", str(tmp_path / "missing.toml"), "--address", a1.api)
    assert out.returncode == 1 and "cannot read" in out.stderr
    # the API, for clients that skip the CLI's own check
    r = httpx.post(f"{a1.api}/v1/jobs", json={"name": "ok", "image": "busybox", "replicas": "two",
                                             "memory": "12 parsecs"}, timeout=10)
    assert r.status_code == 400
    assert {p["path"] for p in r.json()["problems"]} == {"replicas", "memory"}
    # an error answer from the agent is printed with its problems: exit 1
    out = shoal("job", "stop", "nothing-here", "--address", a1.api)
    assert out.returncode == 1 and "no job named 'nothing-here'" in out.stderr
    assert cluster.job_names(a1) == set()


def test_restart_every_agent_then_kill_all_but_one(cluster):
    a1, a2, a3 = three(cluster)
    names = set()
    for i, p in enumerate((a1, a2, a3) * 2):
        name = f"job-{i}"
        assert httpx.post(f"{p.api}/v1/jobs", json=spec(name, replicas=2), timeout=10).status_code == 201
        names.add(name)
    assert httpx.delete(f"{a2.api}/v1/jobs/job-5", timeout=10).status_code == 200
    names.discard("job-5")
    for p in (a1, a2, a3):
        wait_until(lambda p=p: cluster.job_names(p) == names, CONVERGE_DEADLINE_S, f"{p.name} to hold every job",
                   cluster.report)

    # stop every agent (SIGTERM: a graceful leave), then start each alone on
    # its state dir: each holds every job before it has talked to anyone
    for p in (a1, a2, a3):
        assert cluster.stop(p) == 0, cluster.report()
    restarted = [cluster.start(p.name) for p in (a1, a2, a3)]
    for p in restarted:
        assert cluster.job_names(p) == names, cluster.report()
        assert "0 jobs" not in p.log()
    b1, b2, b3 = restarted
    for p in (b2, b3):
        out = shoal("join", b1.gossip, "--address", p.api)
        assert out.returncode == 0, out.stderr
    for p in restarted:
        wait_until(lambda p=p: cluster.all_alive(p, {"a1", "a2", "a3"}), CONVERGE_DEADLINE_S,
                   f"{p.name} to see all alive again", cluster.report)

    # kill -9 all but one: the survivor still lists every job, deletes included
    for p in (b1, b2):
        cluster.stop(p, signal.SIGKILL)
    assert cluster.job_names(b3) == names
    out = shoal("job", "status", "--address", b3.api)
    assert out.returncode == 0 and sorted(ln.split()[0] for ln in out.stdout.splitlines()[1:]) == sorted(names)
    listed = shoal("job", "ls", "--address", b3.api)                            # as `docker service ls`
    assert sorted(ln.split()[0] for ln in listed.stdout.splitlines()[1:]) == sorted(names), listed
    listed = shoal("node", "ls", "--address", b3.api)                           # as `docker node ls`
    rows = listed.stdout.splitlines()
    assert listed.returncode == 0 and rows[0].split()[:2] == ["Name", "Status"], listed
    assert any(r.split()[:2] == [b3.name, "alive"] for r in rows[1:]), listed.stdout
    assert httpx.get(f"{b3.api}/v1/jobs/job-5", timeout=5).status_code == 404


def test_a_corrupt_state_file_is_reported_and_healed_from_peers(cluster):
    a1, a2, a3 = three(cluster)
    assert httpx.post(f"{a1.api}/v1/jobs", json=spec("precious"), timeout=10).status_code == 201
    wait_until(lambda: cluster.job_names(a2) == {"precious"}, CONVERGE_DEADLINE_S, "a2 to hold the job",
               cluster.report)
    assert cluster.stop(a2) == 0
    jobs_db = a2.state_dir / "jobs.db"
    jobs_db.write_bytes(os.urandom(8192))  # garbage where the job store was
    b2 = cluster.start("a2", join=[a1, a3])
    errors = [ln for ln in b2.log().splitlines() if " ERROR " in ln]
    assert any("jobs.db is unusable" in ln and "moved aside" in ln for ln in errors), b2.log()
    assert (a2.state_dir / "jobs.db.corrupt-1").exists()
    metrics = httpx.get(f"{b2.api}/v1/metrics", timeout=5).text
    assert 'shoal_state_problems_total{store="jobs"} 1.0' in metrics
    me = cluster.get(b2, "/v1/agent/self")
    assert any("jobs.db" in p for p in me["state_problems"])
    # healed by anti-entropy from the peers, then durable again here
    t0 = time.monotonic()
    wait_until(lambda: cluster.job_names(b2) == {"precious"}, CONVERGE_DEADLINE_S, "the job back on a2",
               cluster.report)
    print(f"a2 healed its job store from peers {time.monotonic() - t0:.2f} s after its API answered")
    assert cluster.stop(b2) == 0
    c2 = cluster.start("a2")  # alone: only its own disk
    assert cluster.job_names(c2) == {"precious"}
    assert 'shoal_state_problems_total{store="jobs"} 0.0' in httpx.get(f"{c2.api}/v1/metrics", timeout=5).text


def slots(cluster: Cluster, p: Proc, job: str) -> list[dict] | None:
    data = cluster.get(p, f"/v1/jobs/{job}")
    return None if data is None else data["slots"]


def running(cluster: Cluster, p: Proc) -> dict[str, list]:
    me = cluster.get(p, "/v1/agent/self") or {}
    return {slot: r["ballot"] for slot, r in (me.get("runtime") or {}).get("running", {}).items()}


def test_fake_runtime_places_every_slot_moves_them_off_a_drained_node_and_explains_pending(cluster, tmp_path):
    a1, a2, a3 = three(cluster, ("--label", "rack=r1"), ("--label", "rack=r2"), ("--label", "rack=r3"))
    procs = {"a1": a1, "a2": a2, "a3": a3}
    toml = tmp_path / "web.toml"
    toml.write_text(WEB_TOML)
    out = shoal("job", "run", str(toml), "--address", a2.api)
    assert out.returncode == 0 and out.stdout.strip() == "web", out.stderr

    def all_placed(p: Proc, avoid: str | None = None):
        s = slots(cluster, p, "web")
        if not s or any(x["state"] != "placed" or x["node"] == avoid for x in s):
            return None
        # the runtimes agree with the claims: each slot runs once, where its claim says
        run = {n: running(cluster, q) for n, q in procs.items() if q.alive()}
        where = {slot: n for n, r in run.items() for slot in r}
        if sum(len(r) for r in run.values()) != 6 or where != {x["slot"]: x["node"] for x in s}:
            return None
        return s

    placed = wait_until(lambda: all_placed(a3), CONVERGE_DEADLINE_S, "6 slots placed", cluster.report)
    assert [x["index"] for x in placed] == list(range(6))
    assert all(x["node"] in procs and x["ballot"]["round"] >= 1 and x["ballot"]["coordinator"] in procs
               for x in placed)
    out = shoal("job", "status", "web", "--address", a1.api)
    assert out.returncode == 0
    rows = out.stdout.splitlines()
    assert "6 placed, 0 pending" in rows[0] and rows[1].split() == ["Index", "Node", "Ballot", "State"]
    # a placed slot shows what its holder's runtime says: the fake one runs it at once
    assert len(rows) == 8 and all(r.split()[3] in ("running", "starting") for r in rows[2:]), out.stdout
    listing = json.loads(shoal("job", "status", "--json", "--address", a1.api).stdout)
    assert [(j["name"], j["replicas"], j["placed"]) for j in listing] == [("web", 6, 6)]

    # drain the busiest node, asking another agent (the request is forwarded)
    counts = {n: sum(1 for x in placed if x["node"] == n) for n in procs}
    victim = max(counts, key=lambda n: (counts[n], n))
    other = next(p for n, p in procs.items() if n != victim)
    out = shoal("node", "drain", victim, "--address", other.api)
    assert out.returncode == 0 and f"{victim} drained" in out.stdout, out.stderr
    moved = wait_until(lambda: all_placed(a1, avoid=victim), CONVERGE_DEADLINE_S,
                       f"every slot off {victim}", cluster.report)
    for before, after in zip(placed, moved):
        if before["node"] == victim:
            assert after["ballot"]["round"] > before["ballot"]["round"], (before, after)
    assert running(cluster, procs[victim]) == {}
    status = json.loads(shoal("node", "status", victim, "--json", "--address", other.api).stdout)
    assert status["drained"] is True and status["eligible"] is False
    out = shoal("node", "status", "--address", other.api)
    assert out.returncode == 0 and any(ln.split()[:4] == [victim, "alive", "passing", "drained"]
                                       for ln in out.stdout.splitlines())

    # a job that fits nowhere: pending, and the status says why
    out = httpx.post(f"{a1.api}/v1/jobs", json=spec("huge", cpu=3, replicas=2), timeout=10)
    assert out.status_code == 201

    def pending_with_reason():
        s = slots(cluster, a2, "huge")
        return s if s and all(x["state"] == "pending" and "needs 3.0 cpu" in x["reason"]
                              and "largest free is" in x["reason"] for x in s) else None

    wait_until(pending_with_reason, CONVERGE_DEADLINE_S, "huge pending with a reason", cluster.report)
    out = shoal("job", "status", "huge", "--address", a3.api)
    assert out.returncode == 0 and "0 placed, 2 pending" in out.stdout
    assert out.stdout.count("pending: ") == 2 and "1 drained" in out.stdout, out.stdout
    out = shoal("node", "undrain", victim, "--address", procs[victim].api)
    assert out.returncode == 0 and f"{victim} undrained" in out.stdout

    # claims are durable too: kill -9 everyone, restart one agent alone; it
    # restarts the replicas it held, under the ballots it held them with
    final = wait_until(lambda: all_placed(a1), CONVERGE_DEADLINE_S, "web settled", cluster.report)
    keeper = next(n for n in ("a1", "a2", "a3") if any(x["node"] == n for x in final))
    held = {x["slot"]: [x["ballot"]["round"], x["ballot"]["coordinator_run"]] for x in final if x["node"] == keeper}
    for p in (a1, a2, a3):
        cluster.stop(p, signal.SIGKILL)
    alone = cluster.start(keeper)
    wait_until(lambda: set(held) <= set(running(cluster, alone)), CONVERGE_DEADLINE_S,
               f"{keeper} to restart its replicas", cluster.report)
    now_running = running(cluster, alone)
    assert {slot: now_running[slot] for slot in held} == held
