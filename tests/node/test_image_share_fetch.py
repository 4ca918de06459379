"""How ImageShare.fetch retries (node/agent/image_share.py): a refused
transfer counts against MAX_ATTEMPTS, a busy holder does not (until the
fetch's time is up), and holders are asked again before each transfer."""

from __future__ import annotations

from types import SimpleNamespace

from node.agent.image_share import MAX_ATTEMPTS, ImageShare


def share_with(answers: list[str | None], holders=({"node": "h1"},), timeout_s: float = 60.0):
    agent = SimpleNamespace(name="me", config=SimpleNamespace(enable_fault_hook=False, state_dir=None),
                            events=SimpleNamespace(publish=lambda *a, **k: None))
    share = ImageShare(agent, runtime=None, timeout_s=timeout_s)
    asked, tried = [], []
    script = iter(answers)

    async def holders_of(ref):
        asked.append(ref)
        return [dict(h, url="http://x", id="sha256:1", size=1) for h in holders]

    async def fetch_from(image, ref, holder):
        tried.append(holder["node"])
        return next(script)

    share.holders = holders_of
    share._fetch_from = fetch_from
    return share, asked, tried


async def test_busy_holders_cost_no_attempt_and_refusals_do(autojump_clock):
    share, asked, tried = share_with(["busy: serves 2", "busy: serves 2", "refused: bad config", None])
    assert await share.fetch("app:1") is None
    assert len(tried) == 4 and len(asked) == 4       # asked again before each transfer
    assert share.fetching == set()


async def test_refusals_end_the_fetch_after_max_attempts_saying_each(autojump_clock):
    share, _, tried = share_with([f"refused: {i}" for i in range(10)])
    reason = await share.fetch("app:1")
    assert len(tried) == MAX_ATTEMPTS and reason == "; ".join(f"h1: refused: {i}" for i in range(MAX_ATTEMPTS))


async def test_a_holder_busy_past_the_timeout_fails_the_fetch(autojump_clock):
    share, _, tried = share_with(["busy: serves 2"] * 1000, timeout_s=10.0)
    reason = await share.fetch("app:1")
    # Past its time, each busy answer counts as a failed attempt.
    assert reason == "; ".join(["h1: busy: serves 2"] * MAX_ATTEMPTS) and MAX_ATTEMPTS + 3 <= len(tried) < 20


async def test_no_holder_says_so(autojump_clock):
    share, _, tried = share_with([], holders=())
    assert await share.fetch("app:1") == "no peer has it" and tried == []
