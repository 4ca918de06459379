"""The status page (node/ui.py): render() on a made-up state, and the real
page of a 3-agent cluster loaded in headless Chromium.

The Chromium test starts three real agents on loopback (`--profile local`,
fake runtime, ephemeral ports, declared capacity, rack labels), submits a
job of 4 replicas, and loads `/ui` with Debian's `chromium --headless
--dump-dom`, then checks what the browser shows: 3 members alive and the job
placed 4/4.  It also takes a screenshot (`--screenshot`), copied to
`docs/ui.png` when SHOAL_UPDATE_SCREENSHOT=1.  The agents are
killed by PID in teardown.  Chromium is installed with apt-get when missing
and we are root; only when it is missing and we are not root is the test
skipped (`scripts/test` installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from node.api import ui

REPO = Path(__file__).resolve().parents[2]
GiB = 1 << 30


def _node(name: str, rack: str, cpu_alloc: int, mem_alloc: int, status: str = "alive") -> dict:
    res = lambda c, m: {"cpu_millis": c, "memory_bytes": m, "disk_bytes": 0, "text": ""}  # noqa: E731
    return {"name": name, "status": status, "status_known": True, "capacity": res(2000, 2 * GiB),
            "allocated": res(cpu_alloc, mem_alloc), "labels": {"rack": rack, "arch": "amd64"},
            "drained": False, "healthy": True, "health": "passing"}


def _slot(index: int, node: str | None, reason: str | None = None) -> dict:
    return {"index": index, "node": node, "state": "placed" if reason is None else "pending", "reason": reason}


STATE = {
    "agent": {"name": "a1", "api": "http://127.0.0.1:7980", "runtime": "fake"},
    "now": 1_700_000_000.0,
    "members": [
        {"name": "a1", "addr": "127.0.0.1", "port": 7946, "status": "alive", "health": "passing", "since_s": 30},
        {"name": "a2", "addr": "127.0.0.1", "port": 7947, "status": "alive", "health": "passing", "since_s": 29},
        {"name": "a3", "addr": "127.0.0.1", "port": 7948, "status": "suspect", "health": "warning", "since_s": 1},
        {"name": "<b>x</b>", "addr": "10.0.0.9", "port": 7946, "status": "failed", "health": "critical",
         "since_s": 4000},
    ],
    "nodes": [_node("a1", "r1", 1000, GiB), _node("a2", "r2", 500, GiB // 2), _node("a3", "r1", 0, 0, "suspect")],
    "jobs": [
        {"name": "web", "valid": True, "image": "busybox:1.36", "replicas": 3, "placed": 3, "pending": 0,
         "slots": [_slot(0, "a1"), _slot(1, "a2"), _slot(2, "a1")]},
        {"name": "db", "valid": True, "image": "postgres:16", "replicas": 2, "placed": 1, "pending": 1,
         "slots": [_slot(0, "a2"), _slot(1, None, "needs 4.0 cpu; largest free is 1.5 cpu on a2")]},
    ],
    "jobs_omitted": 0,
    "running_here": {"web": 2},
    "events": [{"seq": 1, "time": 1_700_000_000.0, "event": "member_joined",
                "member": {"name": "a2", "addr": "127.0.0.1", "port": 7947, "status": "alive"}},
               {"seq": 2, "time": 1_700_000_001.0, "event": "job_updated", "name": "web<script>"}],
}


class _Page(HTMLParser):
    """Text by element id, rows by data-* attribute, and every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.rows: dict[str, dict[str, dict[str, str]]] = {}
        self.tags: list[tuple[str, dict[str, str]]] = []
        self._open: list[tuple[str, str | None]] = []
        self._text: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        for key in ("data-member", "data-job", "data-node", "data-rack"):
            if key in a:
                self.rows.setdefault(key, {})[a[key]] = a
        ident = a.get("id") or (f"{self._current_job}:{a['data-field']}" if "data-field" in a else None)
        if tag == "tr" and "data-job" in a:
            self._current_job = a["data-job"]
        if ident:
            self._text[ident] = []
        if tag not in ("meta", "br", "img", "input", "link"):
            self._open.append((tag, ident))

    _current_job = ""

    def handle_endtag(self, tag):
        while self._open:
            t, ident = self._open.pop()
            if ident:
                self.by_id[ident] = "".join(self._text.pop(ident)).strip()
            if t == tag:
                break

    def handle_data(self, data):
        for ident in self._text:
            self._text[ident].append(data)


def parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    return p


def test_render_counts_and_sections():
    page = ui.render(STATE)
    p = parse(page)
    assert p.by_id["members-alive"] == "2" and p.by_id["members-total"] == "4"
    assert p.by_id["jobs-total"] == "2"
    assert p.by_id["replicas-placed"] == "4" and p.by_id["replicas-desired"] == "5"
    assert p.by_id["web:placed"] == "3/3" and p.by_id["db:placed"] == "1/2"
    statuses = {name: a["data-status"] for name, a in p.rows["data-member"].items()}
    assert statuses == {"a1": "alive", "a2": "alive", "a3": "suspect", "<b>x</b>": "failed"}
    assert "needs 4.0 cpu; largest free is 1.5 cpu on a2" in page
    # Capacity bars: a1 has 1 of 2 cpu and 1 of 2 GiB allocated.
    assert 'style="width:50.0%"' in page and "1 / 2 cpu" in page and "1 GiB / 2 GiB" in page
    # Placements by node and by rack.
    by_node, by_rack = ui.placements(STATE)
    assert by_node == {"a1": ["web/0", "web/2"], "a2": ["web/1", "db/0"], "a3": []}
    assert by_rack == {"r1": {"web": 2}, "r2": {"web": 1, "db": 1}}
    assert set(p.rows["data-rack"]) == {"r1", "r2"}
    assert p.by_id["rack:r1"] == "2" and p.by_id["rack:r2"] == "2"
    # Events, newest first; member events in words.
    assert page.index("job_updated") < page.index("member_joined")
    assert "a2 (127.0.0.1:7947) is alive" in page


def test_render_marks_a_global_job():
    import copy

    state = copy.deepcopy(STATE)
    state["jobs"][0]["mode"] = "global"
    page = ui.render(state)
    name = state["jobs"][0]["name"]
    assert f'<td>{name} <span class="muted">global</span></td>' in page
    assert '<span class="muted">global</span>' not in ui.render(STATE)


def test_render_is_self_contained_and_escapes_everything():
    page = ui.render(STATE)
    p = parse(page)
    assert ("meta", {"http-equiv": "refresh", "content": "5"}) in p.tags
    csp = [a["content"] for t, a in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]
    assert not [t for t, _ in p.tags if t in ("script", "link", "img", "iframe")]
    assert not re.search(r"(src|href)=", page)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<script>" not in page


def _vslot(index: int, node: str, h: str) -> dict:
    return {**_slot(index, node), "container_hash": h}


def test_render_shows_the_version_each_replica_runs_and_the_rollout():
    new, old = "b" * 12, "a" * 12
    job = {"name": "api", "valid": True, "image": "app:3", "replicas": 3, "placed": 3, "pending": 0,
           "container_hash": new, "job_version": "3", "version_of": {new: "3", old: "2"},
           "slots": [_vslot(0, "a1", new), _vslot(1, "a2", old), _vslot(2, "a1", old)],
           "rollout": {"target": new + "c" * 52, "slots": ["new-healthy", "old-serving", "old-serving"],
                       "failed": None, "waiting_promotion": True, "promoted": False}}
    state = {**STATE, "jobs": [job]}
    p = parse(ui.render(state))
    assert p.by_id["api:version"] == "v3 × 1, v2 × 2"
    assert "rolling out v3: 1/3 new, 1 healthy" in p.by_id["api:rollout"]
    assert "waiting for shoal job promote api" in p.by_id["api:rollout"]
    by_node, _ = ui.placements(state)
    assert by_node["a1"] == ["api/0 v3", "api/2 v2"] and by_node["a2"] == ["api/1 v2"]
    # A failed rollout says why; a hash not in the history shows as itself.
    job = {**job, "version_of": {new: "3"},
           "rollout": {**job["rollout"], "failed": "slot 0 not healthy within 8 s", "waiting_promotion": False}}
    p = parse(ui.render({**STATE, "jobs": [job]}))
    assert p.by_id["api:version"] == "v3 × 1, #aaaaaaaa × 2"
    assert "rollout to v3 failed" in p.by_id["api:rollout"] and "not healthy within 8 s" in p.by_id["api:rollout"]
    # No rollout: no rollout pill.
    p = parse(ui.render({**STATE, "jobs": [{**job, "rollout": None}]}))
    assert "api:rollout" not in p.by_id


def test_render_empty_state():
    page = ui.render({})
    p = parse(page)
    assert p.by_id["members-alive"] == "0" and p.by_id["jobs-total"] == "0"
    assert "no members known" in page and "no jobs" in page and "no events yet" in page


# ---- the real page in Chromium ---------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_binary() -> str:
    """The chromium command; installed with apt-get when missing and we are root."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and we are not root to install it (apt-get install chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                       capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=600)
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                           capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
    found = shutil.which("chromium")
    assert found, f"apt-get install chromium failed:\n{r.stdout}\n{r.stderr}"
    return found


def run_chromium(binary: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="shoal-chromium-") as profile:
        return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                              env={**os.environ, "HOME": profile})


class Agents:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, name: str, rack: str, join: str | None) -> tuple[str, str]:
        state = self.tmp / name
        log_path = self.tmp / f"{name}.log"
        argv = [sys.executable, "-m", "node.cli", "agent", "--name", name, "--bind", "127.0.0.1:0",
                "--api", "127.0.0.1:0", "--profile", "local", "--runtime", "fake", "--state-dir", str(state),
                "--cpus", "2", "--memory", "2GiB", "--reserve-cpus", "0", "--reserve-memory", "0",
                "--label", f"rack={rack}", *(["--join", join] if join else [])]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.procs.append((name, proc, log_path))
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}\n{self.report()}")
            try:
                info = json.loads((state / "agent.json").read_text())
                return info["gossip"], info["api"]
            except (OSError, ValueError, KeyError):
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} did not start\n{self.report()}")
                time.sleep(0.05)

    def report(self) -> str:
        out = []
        for name, proc, log_path in self.procs:
            lines = log_path.read_text(errors="replace").splitlines()[-30:] if log_path.exists() else []
            out.append(f"--- {name} (pid {proc.pid}, rc {proc.poll()}) ---\n" + "\n".join(lines))
        return "\n".join(out)

    def kill_all(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def wait_for(predicate, timeout_s: float, what: str, report=lambda: ""):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except httpx.HTTPError as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})\n{report()}")


@pytest.fixture
def agents(tmp_path):
    a = Agents(tmp_path)
    try:
        yield a
    finally:
        a.kill_all()


@pytest.mark.real
def test_status_page_in_chromium(agents):
    binary = chromium_binary()
    seed, api = agents.start("a1", "r1", None)
    agents.start("a2", "r2", seed)
    agents.start("a3", "r1", seed)
    wait_for(lambda: [m["status"] for m in httpx.get(f"{api}/v1/members", timeout=2).json()]
             == ["alive"] * 3, 20, "3 members alive", agents.report)
    job = {"name": "web", "image": "busybox:1.36", "command": ["sleep", "3600"], "cpu": 0.5,
           "memory": "256MiB", "replicas": 4, "spread": "rack"}
    r = httpx.post(f"{api}/v1/jobs", json=job, timeout=10)
    assert r.status_code == 201, r.text
    wait_for(lambda: [j["placed"] for j in httpx.get(f"{api}/v1/jobs", timeout=2).json()] == [4], 30,
             "web placed 4/4", agents.report)

    r = httpx.get(f"{api}/ui", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]

    out = run_chromium(binary, "--dump-dom", f"{api}/ui")
    assert out.returncode == 0, out.stderr[-2000:]
    p = parse(out.stdout)
    assert p.by_id.get("members-alive") == "3" and p.by_id.get("members-total") == "3", out.stdout[:3000]
    assert {n: a["data-status"] for n, a in p.rows["data-member"].items()} == {
        "a1": "alive", "a2": "alive", "a3": "alive"}
    assert p.by_id.get("web:placed") == "4/4", out.stdout[:3000]
    assert p.by_id.get("replicas-placed") == "4"
    # Every node in the by-node table, and the by-rack table counts the 4 replicas.
    # (Which racks they land on is the auction's business, not the page's.)
    assert set(p.rows["data-node"]) == {"a1", "a2", "a3"}
    assert set(p.rows["data-rack"]) <= {"r1", "r2"}
    rack_total = sum(int(p.by_id[f"rack:{r}"]) for r in p.rows["data-rack"])
    assert rack_total == 4, out.stdout[:3000]
    assert p.by_id.get("web:version") == "v1 × 4" and "web:rollout" not in p.by_id

    # A new version with one canary: it stops, waiting for a promote (a state
    # that holds still), and the page shows who runs what.
    v2 = {**job, "image": "busybox:1.37", "update": {"canary": 1, "min_healthy_s": 0.2}}
    assert httpx.post(f"{api}/v1/jobs", json=v2, timeout=10).status_code == 201
    wait_for(lambda: (httpx.get(f"{api}/v1/jobs/web", timeout=2).json().get("rollout") or {})
             .get("waiting_promotion"), 30, "the canary to wait for a promote", agents.report)
    out = run_chromium(binary, "--dump-dom", f"{api}/ui")
    p = parse(out.stdout)
    assert p.by_id.get("web:version") == "v2 × 1, v1 × 3", out.stdout[:3000]
    assert "rolling out v2: 1/4 new, 1 healthy" in p.by_id.get("web:rollout", ""), out.stdout[:3000]
    assert "waiting for shoal job promote web" in p.by_id["web:rollout"]
    assert "web/0 v2" in out.stdout and "web/1 v1" in out.stdout    # placements by node, each with its version

    # The screenshot goes to the test's directory; SHOAL_UPDATE_SCREENSHOT=1 also
    # copies it to docs/ui.png (committed), so a test run leaves the tree clean.
    shot = agents.tmp / "ui.png"
    out = run_chromium(binary, f"--screenshot={shot}", "--window-size=1280,900", "--hide-scrollbars",
                       f"{api}/ui")
    assert out.returncode == 0, out.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("SHOAL_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "ui.png")


def test_a_rebalancing_move_shows_with_its_reason():
    ev = {"seq": 9, "time": 1_700_000_100.0, "event": "rebalance_moving", "job": "web", "slot": "web/2",
          "detail": "from node-1 to c (rack: a 2, b 1, c 0)"}
    page = ui.render({**STATE, "events": [*STATE["events"], ev]})
    assert "rebalance_moving" in page
    assert "from node-1 to c (rack: a 2, b 1, c 0)" in page
