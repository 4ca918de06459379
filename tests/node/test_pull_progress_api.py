"""A pull's progress reaches every way people watch it: the job's JSON, the
node's JSON, `shoal job run`'s live lines and `/ui` (an in-process agent
whose fake runtime says its replica starts while it pulls the image)."""

from __future__ import annotations

from types import SimpleNamespace

import trio

from node.agent.agent import Agent
from node.agent.config import load_config
from node.cli.progress import EXIT_NOT_RUNNING, follow_progress
from node.core.image_progress import ImageProgress
from node.runtime.fake import FakeRuntime
from tests.node.test_api_jobs import client, wait_for

MIB = 1 << 20
LINE = "pulling busybox:2 on a: 3/5 layers, 12.1/48.0 MiB"


class PullingRuntime(FakeRuntime):
    """Every replica waits for its image, which is being pulled."""

    poll_s = 0.5  # its pulls move outside start() and stop(): the agent polls them

    def __init__(self) -> None:
        super().__init__()
        self.pulls: tuple[ImageProgress, ...] = ()
        self.puller = SimpleNamespace(progress=lambda: self.pulls)

    def slot_states(self) -> dict[str, tuple[str, str]]:
        return {slot: ("starting", "pulling busybox:2: 3/5 layers") for slot in self.running}


async def test_a_pulls_progress_shows_in_the_job_the_node_the_live_output_and_the_ui(nursery):
    rt = PullingRuntime()
    a = Agent(load_config(None, {"name": "a", "bind": "127.0.0.1:0", "api": "127.0.0.1:0", "profile": "local",
                                 "cpus": "1", "memory": "1GiB"}), runtime=rt)
    await nursery.start(lambda task_status: a.run(handle_signals=False, task_status=task_status))
    async with client(a) as c:
        r = await c.post("/v1/jobs", json={"name": "web", "image": "busybox:2", "cpu": 0.1, "memory": "16MiB"})
        assert r.status_code == 201, r.text
        rt.pulls = (ImageProgress("busybox:2", "", 3, 5, int(12.1 * MIB), 48 * MIB),)

        async def shown() -> bool:
            detail = (await c.get("/v1/jobs/web")).json()
            return [s.get("runtime_reason") for s in detail["slots"]] == [LINE]
        await wait_for(shown, "the slot's reason to be the pull's progress")
        detail = (await c.get("/v1/jobs/web")).json()
        assert [p["text"] for p in detail["pulls"]] == [LINE]
        node = (await c.get("/v1/nodes/a")).json()
        assert [(p["image"], p["bytes_total"]) for p in node["pulls"]] == [("busybox:2", 48 * MIB)]
        assert LINE in (await c.get("/ui")).text

    lines: list[str] = []
    code = await trio.to_thread.run_sync(lambda: follow_progress(
        SimpleNamespace(address=a.api_url, headers={}), ["web"], 0.5, out=lines.append))
    assert code == EXIT_NOT_RUNNING
    assert any(line.endswith(f"web  {LINE}") for line in lines), lines
    assert any(line.endswith(f"web/0  placed on a, starting ({LINE})") for line in lines), lines
