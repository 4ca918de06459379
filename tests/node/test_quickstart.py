"""scripts/quickstart end to end: up (twice), the demo job in real containers, down.

Root only (skipped otherwise): quickstart may install Docker and start
dockerd.  It runs from this repository with its state in a temp dir, node
names of its own (qt<pid>-1..3, so the shoal.node labels, and the
containers, are ours alone on a shared engine), ports the kernel picks and
host port ranges of its own (from PORT_BASE), so it does not meet a
developer's own quickstart cluster.

What a user sees is asserted: the demo web service answers through each
replica's published port with the page naming its slot and node, both in the
quickstart's output and when fetched here, and the agents' DNS answers the
SRV query with those ports; the same service deployed from
examples/compose.yml answers through its ports too.

Teardown, pass or fail: `scripts/quickstart down` with the same settings,
then SIGKILL for any agent still alive (by the PIDs in its pid files), then
`docker rm -f` of any container with our node labels, and scripts/docker-down
if this test itself started the engine to look after a `down` that stopped
quickstart's own.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import pytest

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "scripts" / "quickstart"
SOCK = "/var/run/docker.sock"
PORT_BASE = 26000          # the three agents' host port ranges: 26000-26999, 27000-27999, 28000-28999

pytestmark = [pytest.mark.real,
              pytest.mark.skipif(os.geteuid() != 0, reason="quickstart may install and start Docker: needs root")]


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "-H", f"unix://{SOCK}", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def engine_answers() -> bool:
    try:
        return docker("info", timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Quickstart:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "qs"
        self.prefix = f"qt{os.getpid()}"
        self.nodes = [f"{self.prefix}-{i}" for i in (1, 2, 3)]
        self.env = {**os.environ, "SHOAL_QUICKSTART_DIR": str(self.dir), "SHOAL_QUICKSTART_PREFIX": self.prefix,
                    "SHOAL_QUICKSTART_ANY_PORTS": "1", "SHOAL_QUICKSTART_PORT_BASE": str(PORT_BASE),
                    "PYTHONUNBUFFERED": "1"}
        self.env.pop("SHOAL_ADDR", None)
        self.pids_seen: set[int] = set()
        self.test_started_engine = False

    def run(self, *args: str, timeout: float = 480) -> subprocess.CompletedProcess:
        out = subprocess.run([str(QUICKSTART), *args], capture_output=True, text=True, env=self.env,
                             timeout=timeout, stdin=subprocess.DEVNULL, cwd=REPO)
        self.note_pids()
        return out

    def note_pids(self) -> None:
        for n in self.nodes:
            try:
                self.pids_seen.add(int((self.dir / n / "agent.pid").read_text()))
            except (OSError, ValueError):
                pass

    def alive_agents(self) -> list[int]:
        out = []
        for pid in sorted(self.pids_seen):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(self.dir) in cmdline:
                out.append(pid)
        return out

    def containers(self) -> list[dict]:
        rows = []
        for n in self.nodes:
            r = docker("ps", "-a", "--filter", f"label=shoal.node={n}", "--format", "{{json .}}")
            assert r.returncode == 0, r.stderr
            rows += [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        return rows

    def api(self, i: int = 0) -> str:
        ports = (self.dir / "ports").read_text().split()
        return f"http://127.0.0.1:{ports[3 + i]}"

    def dns_port(self, i: int = 0) -> int:
        return int((self.dir / "ports").read_text().split()[6 + i])

    def port_range(self, node: str) -> range:
        lo = PORT_BASE + 1000 * self.nodes.index(node)
        return range(lo, lo + 1000)

    def cleanup(self) -> None:
        try:
            self.run("down", timeout=120)
        except Exception as e:  # noqa: BLE001 -- the rest still runs
            print(f"quickstart down in teardown failed: {e}")
        for pid in self.alive_agents():
            print(f"agent pid {pid} still alive after down: SIGKILL")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if engine_answers():
            for c in self.containers():
                docker("rm", "-f", c["ID"])
        if self.test_started_engine:
            subprocess.run([str(REPO / "scripts" / "docker-down")], capture_output=True, timeout=120,
                           stdin=subprocess.DEVNULL)

    def report(self) -> str:
        out = []
        for n in self.nodes:
            try:
                tail = (self.dir / n / "agent.log").read_text(errors="replace").splitlines()[-40:]
            except OSError:
                tail = ["(no log)"]
            out.append(f"--- {n} ---\n" + "\n".join(tail))
        return "\n".join(out)


@pytest.fixture
def qs(tmp_path):
    q = Quickstart(tmp_path)
    try:
        yield q
    finally:
        print(q.report())
        q.cleanup()


@pytest.mark.timeout(900)
def exec_in_terminal(argv: list[str], keys: bytes) -> bytes:
    """Run argv on a new pseudo-terminal, type keys once it shows something
    (a prompt), return what it showed once it exits (0)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([master], [], [], left)[0]:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:      # EIO: the terminal's last holder closed it
                break
            if not chunk:
                break
            if not seen:
                os.write(master, keys)
            seen += chunk
        assert proc.wait(timeout=30) == 0, seen
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return seen


def test_quickstart_runs_the_demo_job_in_real_containers_and_down_leaves_nothing(qs):
    engine_before = engine_answers()
    t0 = time.monotonic()
    out = qs.run()
    print(f"quickstart up took {time.monotonic() - t0:.1f} s\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "all 3 replicas of web running" in out.stderr
    assert "3 replicas, 3 placed, 0 pending, 3 running" in out.stdout      # shoal job status web
    assert "scripts/quickstart down" in out.stdout
    started_engine = (qs.dir / "docker-started").exists()
    assert started_engine == (not engine_before), "quickstart owns the engine exactly when it started it"

    # real containers, one per node (spread over racks a, b, c), with shoal's labels and the spec's limits
    running = [c for c in qs.containers() if c["State"] == "running"]
    assert len(running) == 3, running
    labels = [dict(kv.split("=", 1) for kv in c["Labels"].split(",")) for c in running]
    assert sorted(lb["shoal.node"] for lb in labels) == qs.nodes
    assert sorted(lb["shoal.slot"] for lb in labels) == ["web/0", "web/1", "web/2"]
    assert all(lb["shoal.job"] == "web" and lb["shoal.ballot"] and lb["shoal.spec_hash"] for lb in labels)
    inspect = json.loads(docker("inspect", *[c["ID"] for c in running]).stdout)
    assert all(i["HostConfig"]["NanoCpus"] == 250_000_000 and i["HostConfig"]["Memory"] == 32 << 20
               for i in inspect)
    ids = sorted(c["ID"] for c in running)
    # and the output shows them: shoal ps lists each container under its node
    ps_table = out.stdout.split("== containers: shoal ps", 1)[1]
    for c, lb in zip(running, labels):
        assert any(ln.split()[:3] == [lb["shoal.node"], lb["shoal.slot"], c["Names"]]
                   for ln in ps_table.splitlines()), ps_table

    # the web service: each replica publishes its port 8080 on 127.0.0.1, in its node's own range
    published = {}                                            # slot index -> (node, host port)
    for c in inspect:
        lb = c["Config"]["Labels"]
        (binding,) = c["NetworkSettings"]["Ports"]["8080/tcp"]
        assert binding["HostIp"] == "127.0.0.1", binding
        assert int(binding["HostPort"]) in qs.port_range(lb["shoal.node"]), (binding, lb)
        published[int(lb["shoal.slot"].split("/")[1])] = (lb["shoal.node"], int(binding["HostPort"]))
    assert sorted(published) == [0, 1, 2]
    # ... the quickstart fetched each page through it and printed what answered
    pages = out.stdout.split("== each replica's page, through its published port", 1)[1].split("\n== ", 1)[0]
    for slot, (node, port) in published.items():
        url, page = f"http://127.0.0.1:{port}/", f"hello from web slot {slot} on {node}"
        assert any(ln.split()[:3] == [f"web/{slot}", node, url] and ln.endswith(page)
                   for ln in pages.splitlines()), (slot, node, url, pages)
        # ... and so does a user, with curl or anything else
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.read().decode().strip() == page
    # ... the catalog lists every replica with that port, and the DNS answer the quickstart printed lists the ports
    catalog = out.stdout.split("== the service catalog: shoal service show web", 1)[1].split("\n== ", 1)[0]
    assert all(f"http={port}" in catalog for _, port in published.values()), catalog
    srv = out.stdout.split("== DNS: _http._tcp.web.service.shoal SRV", 1)[1]
    srv_ports = {int(m.group(1)) for m in re.finditer(r"_http\._tcp\.web\.service\.shoal\. \d+ IN SRV \d+ \d+ (\d+) ",
                                                       srv)}
    assert srv_ports == {port for _, port in published.values()}, srv
    assert f"dig @127.0.0.1 -p {qs.dns_port(0)} _http._tcp.web.service.shoal SRV" in out.stdout
    assert "curl http://127.0.0.1:" in out.stdout
    # ... and every agent's DNS answers the same, for the whole cluster
    for k in range(3):
        deadline = time.monotonic() + 10     # (another agent's catalog may be a gossip round behind)
        while True:
            q = dns.message.make_query("_http._tcp.web.service.shoal.", "SRV")
            answer = dns.query.udp(q, "127.0.0.1", port=qs.dns_port(k), timeout=5)
            got = {rd.port for rrset in answer.answer for rd in rrset}
            if got == srv_ports or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert got == srv_ports, (k, answer.to_text())

    # the same service as a Compose file (examples/compose.yml, ports in the long syntax) deploys and answers
    shoal = str(REPO / ".venv" / "bin" / "shoal")
    r = subprocess.run([shoal, "stack", "deploy", str(REPO / "examples" / "compose.yml"), "--timeout", "60",
                        "--address", qs.api(1)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    deadline = time.monotonic() + 30
    while True:
        r = subprocess.run([shoal, "service", "show", "demo-web", "--json", "--address", qs.api(2)],
                           capture_output=True, text=True, timeout=60)
        instances = json.loads(r.stdout)["instances"] if r.returncode == 0 else []
        if len(instances) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert len(instances) == 2, r
    for inst in instances:
        assert inst["ports"]["http"] in qs.port_range(inst["node"]), inst
        with urllib.request.urlopen(f"http://{inst['address']}:{inst['ports']['http']}/", timeout=10) as page:
            assert page.read().decode().strip() == f"hello from demo-web slot {inst['slot']} on {inst['node']}"
    r = subprocess.run([shoal, "stack", "rm", "demo", "--address", qs.api(0)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr

    # logs from any agent (forwarded to the holder), and a job whose image no node has: declined, saying so
    for i in range(3):
        deadline = time.monotonic() + 20   # (a replica moved by a late rebalance has a new container)
        while True:
            r = subprocess.run([shoal, "logs", "web", str(i), "--tail", "5", "--address", qs.api(0)],
                               capture_output=True, text=True, timeout=60)
            if (r.returncode == 0 and f"hello from web slot {i} on " in r.stdout) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert r.returncode == 0 and f"hello from web slot {i} on " in r.stdout, (i, r.stdout, r.stderr)
    # the last hour's, each line with the engine's time (forwarded by node-1 with the holder's clock)
    r = subprocess.run([shoal, "logs", "web", "1", "--since", "1h", "--timestamps", "--address", qs.api(0)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout, (r.stdout, r.stderr)
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ", ln) for ln in r.stdout.splitlines()), r.stdout
    # every replica's output at once, each line prefixed with its slot and node (as docker service logs)
    r = subprocess.run([shoal, "logs", "web", "--tail", "5", "--address", qs.api(1)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for i in range(3):
        assert any(ln.startswith(f"web/{i}@") and f"| hello from web slot {i} on " in ln
                   for ln in r.stdout.splitlines()), (i, r.stdout)
    # a command in each replica's container, asked of node-1 (forwarded to the holder): output and exit code
    for i in range(3):
        r = subprocess.run([shoal, "exec", "web", str(i), "--address", qs.api(0), "--",
                            "sh", "-c", "echo $SHOAL_SLOT on $SHOAL_NODE; exit 7"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 7 and r.stdout.strip() in {f"{i} on {n}" for n in qs.nodes}, (i, r.stdout, r.stderr)
    # ... and by node: the replica that node runs (one each here: the demo spreads over the racks)
    node = qs.nodes[2]
    r = subprocess.run([shoal, "exec", "web", "--node", node, "--address", qs.api(0), "--", "sh", "-c",
                        "echo $SHOAL_NODE"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == node, (r.stdout, r.stderr)
    # with stdin (-i) and with a terminal (-it), relayed by node-1 to the holder: as `docker exec -it`
    r = subprocess.run([shoal, "exec", "-i", "web", "2", "--address", qs.api(0), "--", "sh", "-c",
                        "tr a-z A-Z; exit 3"], input="piped in\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and r.stdout == "PIPED IN\n", (r.stdout, r.stderr)
    assert b"\r\n42\r\n" in exec_in_terminal([shoal, "exec", "-it", "web", "1", "--address", qs.api(0), "--", "sh"],
                                         b"echo $((6*7)); exit\r")
    r = subprocess.run([shoal, "logs", "web", "--node", node, "--tail", "5", "--address", qs.api(0)],
                       capture_output=True, text=True, timeout=60)
    prefixes = {ln.partition(" | ")[0].strip() for ln in r.stdout.splitlines()}
    assert r.returncode == 0 and len(prefixes) == 1 and prefixes.pop().endswith(f"@{node}"), (r.stdout, r.stderr)
    noimg = qs.dir / "noimg.toml"
    noimg.write_text('name = "noimg"\nimage = "shoal-absent:1"\npull = "never"\ncpu = 0.1\nmemory = "16MiB"\n')
    r = subprocess.run([shoal, "job", "run", str(noimg), "--timeout", "6", "--address", qs.api(1)],
                       capture_output=True, text=True, timeout=60)
    print(r.stderr)
    assert r.returncode == 2, r.stderr
    assert "image shoal-absent:1 is not on" in r.stderr.split("not all replicas run", 1)[1]
    assert subprocess.run([shoal, "job", "stop", "noimg", "--address", qs.api(2)], capture_output=True,
                          timeout=60).returncode == 0

    # a second run reuses the cluster and leaves the containers alone
    out = qs.run()
    assert out.returncode == 0, out.stderr[-3000:]
    assert "the quickstart cluster is already running" in out.stderr
    assert "all 3 replicas of web running" in out.stderr
    assert sorted(c["ID"] for c in qs.containers() if c["State"] == "running") == ids

    agents = qs.alive_agents()
    assert len(agents) == 3
    out = qs.run("down", timeout=180)
    print(out.stderr)
    assert out.returncode == 0, out.stderr
    assert qs.alive_agents() == []
    assert not (qs.dir / "docker-started").exists()
    if started_engine:
        # quickstart stopped the dockerd it started; start one to see what is left on disk
        assert not engine_answers()
        r = subprocess.run([str(REPO / "scripts" / "docker-up")], capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        qs.test_started_engine = True
    else:
        assert engine_answers(), "down stopped a dockerd quickstart did not start"
    assert qs.containers() == []
