"""`shoal job history | rollback | scale | restart | promote | plan` and the diff
`job run` shows, through click's runner against an in-process agent (fake
runtime, real API); the runner runs in a thread so the agent keeps
answering.  `job plan`'s text and JSON are golden files
(tests/node/golden/plan.*); regenerate with SHOAL_PRINT_GOLDEN=1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import trio
from click.testing import CliRunner

from node.cli.main import cli
from node.cli.versions import format_plan
from test_api_jobs import client, start_agent  # noqa: F401 -- start_agent is a fixture

GOLDEN = Path(__file__).parent / "golden"
V1 = '''name = "web"
image = "busybox:1"
cpu = 0.5
memory = "64MiB"
replicas = 2
env = { MODE = "blue" }
'''
V2 = V1.replace('"busybox:1"', '"busybox:2"').replace("replicas = 2", "replicas = 5").replace(
    '"blue"', '"green", DEBUG = "1"')


async def shoal(*args: str, env: dict[str, str] | None = None):
    return await trio.to_thread.run_sync(
        lambda: CliRunner().invoke(cli, list(args), env={"SHOAL_CLIENT": "alice@laptop", **(env or {})}))


def golden(name: str, text: str) -> str:
    path = GOLDEN / name
    if os.environ.get("SHOAL_PRINT_GOLDEN"):
        path.write_text(text)
    return path.read_text()


async def test_plan_history_and_the_commands(start_agent, tmp_path):  # noqa: F811 -- the imported fixture
    a = await start_agent("a")
    addr = ("--address", a.api_url)
    (tmp_path / "v1.toml").write_text(V1)
    (tmp_path / "v2.toml").write_text(V2)
    r = await shoal("job", "plan", str(tmp_path / "v1.toml"), *addr)
    assert r.exit_code == 0 and r.output.startswith("Job web is new: 2 replica(s) to place.\n"), r.output
    r = await shoal("job", "run", str(tmp_path / "v1.toml"), "--detach", *addr)
    assert r.exit_code == 0 and r.output == "web\n", r.output
    with trio.move_on_after(10):
        while a.view.status.allocated.cpu_millis < 1000:  # both replicas committed here
            await trio.sleep(0.05)
    r = await shoal("job", "plan", str(tmp_path / "v2.toml"), *addr)
    assert r.exit_code == 0, r.output
    assert r.output == golden("plan.txt", r.output)
    r = await shoal("job", "plan", str(tmp_path / "v2.toml"), "--json", *addr)
    assert r.exit_code == 0
    assert json.loads(r.output) == json.loads(golden("plan.json", r.output))
    assert len(a.view.history("web")) == 1  # plan wrote nothing
    # `job run` of a changed spec shows the same diff first (on stderr).
    runner = CliRunner()
    r = await trio.to_thread.run_sync(lambda: runner.invoke(
        cli, ["job", "run", str(tmp_path / "v2.toml"), "--detach", *addr], env={"SHOAL_CLIENT": "bob@ci"}))
    assert r.exit_code == 0 and r.stdout == "web\n"
    assert r.stderr.startswith("Job web: changes from version 1:\n") and "busybox:1  ->  busybox:2" in r.stderr
    r = await shoal("job", "scale", "web", "3", *addr)
    assert r.output == "web: scaled to 3 (now version 3)\n"
    r = await shoal("job", "rollback", "web", "1", *addr)
    assert r.output == "web: rolled back to version 1 (now version 4)\n"
    r = await shoal("job", "rollback", "web", "7", *addr)
    assert r.exit_code == 1 and "no version 7" in r.output
    r = await shoal("job", "restart", "web", *addr)
    assert r.output == "web: restarting (now version 5)\n"
    r = await shoal("job", "promote", "web", *addr)
    assert r.output == "web: promoted (now version 6)\n"
    r = await shoal("job", "promote", "web", *addr)
    assert r.output.startswith("web: nothing to do (")
    r = await shoal("job", "history", "web", *addr)
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].split() == ["VERSION", "WHEN", "(UTC)", "BY", "WHY", "IMAGE", "CHANGES"]
    cells = [line.split("  ") for line in lines[1:-1]]
    rows = [[c.strip() for c in row if c.strip()] for row in cells]
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
        ("1", "alice@laptop via a", "submit", "busybox:1"),
        ("2", "bob@ci via a", "submit", "busybox:2"),
        ("3", "alice@laptop via a", "scale", "busybox:2"),
        ("4", "alice@laptop via a", "rollback to 1", "busybox:1"),
        ("5", "alice@laptop via a", "restart", "busybox:1"),
        ("6 *", "alice@laptop via a", "promote", "busybox:1")]
    assert rows[1][5] == "env.DEBUG, env.MODE, image, +1 more (replaces containers)"
    assert rows[2][5] == "replicas" and rows[5][5] == "no change" and lines[-1] == "* current version"
    r = await shoal("job", "history", "web", "--json", *addr)
    assert [v["why"] for v in json.loads(r.output)["versions"]] == [
        "submit", "submit", "scale", "rollback", "restart", "promote"]
    r = await shoal("job", "history", "nope", *addr)
    assert r.exit_code == 1 and "no job named 'nope'" in r.output


def test_plan_text_names_what_cannot_be_placed_and_moves():
    p = {"name": "db", "exists": True, "current": "5@node-b", "replicas": {"old": 3, "new": 2}, "placed": 3,
         "changes": [{"field": "cpu", "old": 1.0, "new": 4.0}], "replaces_containers": True,
         "replaced": [0], "moved": [1], "started": [1], "stopped": [2], "fits_on": {},
         "unplaceable": {"1": "needs 4.0 cpu, 1.0 GiB; largest free is 2.0 cpu on n1"}}
    assert format_plan(p) == (
        "Job db: changes from version 5@node-b:\n"
        "  cpu  1.0  ->  4.0\n"
        "Running containers are replaced (the container changes).\n"
        "Replicas: 3 -> 2 (3 placed now)\n"
        "  replaced in place:  1 (db/0)\n"
        "  moved elsewhere:    1 (db/1)\n"
        "  started:            1 (db/1)\n"
        "  stopped:            1 (db/2)\n"
        "Cannot be placed now:\n"
        "  db/1: needs 4.0 cpu, 1.0 GiB; largest free is 2.0 cpu on n1\n"
        "Nothing was changed (plan only).\n")


def test_plan_text_says_which_slots_a_canary_rollout_replaces_first():
    p = {"name": "web", "exists": True, "current": "7", "replicas": {"old": 3, "new": 3}, "placed": 3,
         "changes": [{"field": "image", "old": "app:1", "new": "app:2"}], "replaces_containers": True,
         "replaced": [0, 1, 2], "moved": [], "started": [], "stopped": [], "fits_on": {}, "unplaceable": {},
         "spec": {"update": {"canary": 1, "auto_promote": False}}}
    assert "  stopped:            0\nCanaries first: 1 (web/0); the rest wait for `shoal job promote web`.\n" \
        in format_plan(p)
    p["spec"] = {"update": {"canary": 2, "auto_promote": True}}
    assert "Canaries first: 2 (web/0, web/1); the rest follow once they are healthy (auto_promote).\n" \
        in format_plan(p)
    p["spec"] = {"update": {"canary": 0}}
    assert "Canaries" not in format_plan(p)


def test_monitor_says_which_version_a_job_event_wrote_and_why():
    from node.cli.monitor import describe

    ev = {"event": "job_updated", "name": "web", "version": [1, 0, "a"], "job_version": 4, "why": "rollback",
          "ref": "1", "by": "alice@laptop"}
    assert describe(ev, "a") == ("job", "web submitted/updated (by a): version 4, rollback to 1, alice@laptop")
    ev = {"event": "rollout_replacing", "job": "web", "target": "791aca743845", "slot": "web/0",
          "detail": "stop-first"}
    assert describe(ev, "a") == ("rollout", "web: replacing web/0 stop-first (to 791aca743845)")
    ev = {"event": "rollout_started", "job": "web", "target": "791aca743845", "slot": "", "detail": "max_parallel 1"}
    assert describe(ev, "a") == ("rollout", "web: started max_parallel 1 (to 791aca743845)")
    ev = {"event": "rebalance_moving", "job": "web", "slot": "web/3", "detail": "from n1 to n2"}
    assert describe(ev, "a") == ("rebalance", "web: moving web/3 from n1 to n2")
    old = {"event": "job_updated", "name": "web", "version": [1, 0, "a"]}  # from an older agent
    assert describe(old, "a") == ("job", "web submitted/updated (by a)")
