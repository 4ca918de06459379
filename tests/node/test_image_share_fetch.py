"""How ImageShare.fetch retries (node/agent/image_share.py): a refused
transfer counts against MAX_ATTEMPTS, a busy holder does not (until the
fetch's time is up), and holders are asked again before each transfer."""

from __future__ import annotations

from types import SimpleNamespace

from node.agent.image_share import MAX_ATTEMPTS, ImageShare, listing_entry


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


def test_the_least_busy_holder_is_chosen_at_random_among_equals():
    import random

    from node.agent.image_share import choose_holder
    holders = [{"node": "h0", "serving": 2}, {"node": "h1", "serving": 0}, {"node": "h2", "serving": 0},
               {"node": "h3", "serving": 1}]
    rng = random.Random(7)
    picked = {choose_holder(holders, rng)["node"] for _ in range(50)}
    assert picked == {"h1", "h2"}


class Swarm:
    """N nodes that need one image held by h0; each transfer takes
    TRANSFER_S and a holder serves at most MAX_SERVES at once (busy beyond),
    as ImageShare.serve does.  Who sent how many copies, and when each
    node had the image."""

    TRANSFER_S = 10.0
    MAX_SERVES = 2

    def __init__(self, receivers: int) -> None:
        self.has = {"h0"}
        self.serving: dict[str, int] = {"h0": 0}
        self.sent: dict[str, int] = {}
        self.got_at: dict[str, float] = {}
        self.names = [f"n{i}" for i in range(1, receivers + 1)]

    def share(self, me: str):
        import trio
        share, _, _ = share_with([])

        async def holders_of(ref):
            return [{"node": h, "url": "http://x", "id": "sha256:1", "size": 1, "serving": self.serving[h]}
                    for h in sorted(self.has)]

        async def fetch_from(image, ref, holder):
            h = holder["node"]
            if self.serving[h] >= self.MAX_SERVES:
                return "busy: serves 2 already"
            self.serving[h] += 1
            await trio.sleep(self.TRANSFER_S)
            self.serving[h] -= 1
            self.sent[h] = self.sent.get(h, 0) + 1
            self.has.add(me)
            self.serving[me] = 0
            self.got_at[me] = trio.current_time()
            return None

        share.holders = holders_of
        share._fetch_from = fetch_from
        return share


async def test_nodes_that_got_the_image_serve_it_next_so_spreading_is_a_tree_not_a_queue(autojump_clock):
    import random

    import trio
    random.seed(3)
    swarm = Swarm(receivers=12)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for name in swarm.names:
            nursery.start_soon(swarm.share(name).fetch, "app:1")
    assert set(swarm.got_at) == set(swarm.names)
    # From h0 alone 12 copies take 6 transfer times or more; with one copy
    # of the image per holder at a time the holders double about every
    # transfer time: 1, 2, 4, 8, 13 (node/runtime/spread_rule.py).
    took = max(swarm.got_at.values()) - start
    assert took <= 4 * Swarm.TRANSFER_S + 5, (took, swarm.sent)
    assert swarm.sent["h0"] <= 5 and sum(swarm.sent.values()) == 12, swarm.sent
    assert len(swarm.sent) >= 4, swarm.sent      # copies came from several nodes


def test_a_peers_listing_is_read_field_by_field_and_a_malformed_one_holds_nothing():
    ref = "busybox:2"
    good = {"max_serves": 2, "serving": 2, "images": [{"ref": ref, "id": "sha256:ab", "size": 10, "served": 1}],
            "loading": []}
    assert listing_entry(good, ref) == {"id": "sha256:ab", "size": 10, "serving": 0, "served": 1,
                                        "busy_total": True, "holds": True}
    assert listing_entry({"max_serves": 2, "images": [], "loading": [ref]}, ref) == {"holds": False}
    assert listing_entry({**good, "max_serves": 0}, ref) is None     # serves no images to peers
    for bad in (None, [], "x", {"images": 5, "loading": 7}, {"images": "busybox:2", "loading": {"busybox:2": 1}},
                {"images": [{"ref": ref, "id": "md5:1"}]}, {"images": [{"ref": ref, "id": "sha256:1", "size": -4,
                                                                        "served": True}]}):
        entry = listing_entry(bad, ref)
        assert entry is None or entry == {"id": "sha256:1", "size": 0, "serving": 0, "served": 0,
                                          "busy_total": False, "holds": True}, (bad, entry)
