"""A secret file's text never appears in what the API shows of a job (auction.files.redact).

One in-process agent (fake runtime).  The job as submitted keeps its text
(the runtime gets it); its detail, its history and a plan show a size and
digest instead.
"""

from __future__ import annotations

import httpx
import pytest

from inproc_agent import CAPACITY_2CPU_2GIB, agent_starter  # same directory

SECRET = "hunter2-very-secret"
SPEC = {"name": "db", "image": "busybox", "cpu": 0.1, "memory": "32MiB",
        "files": {"pw": {"target": "/run/secrets/pw", "content": SECRET, "secret": True},
                  "conf": {"target": "/etc/db.conf", "content": "port = 5432"}}}


@pytest.fixture
def start_agent(nursery, tmp_path):
    return agent_starter(nursery, tmp_path, **CAPACITY_2CPU_2GIB)


async def test_the_api_shows_a_secret_files_size_and_digest_not_its_text(start_agent):
    a = await start_agent("a")
    async with httpx.AsyncClient(base_url=a.api_url, timeout=30.0) as c:
        assert (await c.post("/v1/jobs", json=SPEC)).status_code == 201
        changed = {**SPEC, "files": {**SPEC["files"], "pw": {**SPEC["files"]["pw"], "content": SECRET + "-2"}}}
        plan = (await c.post("/v1/jobs/plan", json=changed)).text
        assert (await c.post("/v1/jobs", json=changed)).status_code == 201
        detail = (await c.get("/v1/jobs/db")).json()
        history = (await c.get("/v1/jobs/db/history")).text
    assert detail["spec"]["files"]["conf"]["content"] == "port = 5432"
    assert detail["spec"]["files"]["pw"]["content"].startswith("(secret: 21 bytes, sha256 ")
    for shown in (str(detail), plan, history):
        assert SECRET not in shown
    assert "files.pw.content" in plan and "files.pw.content" in history     # the change is still named
    held = a.view.spec_of(a.view.job("db"))
    assert [f.content for f in held.files if f.name == "pw"] == [SECRET + "-2"]     # what the runtime gets
