"""Which peer a receiver fetches an image from (node/runtime/spread_rule.py),
and what that does to one source and four receivers: a tree, not a star."""

from __future__ import annotations

import random

from node.runtime.spread_rule import MAX_LOADER_WAIT_S, PeerState, choose, may_serve

RNG = random.Random(1)


def test_a_free_holder_that_sent_fewest_copies_is_chosen_and_busy_ones_never():
    peers = [PeerState("src", True, serving=0, served=3), PeerState("new", True, served=0),
             PeerState("busy", True, serving=1), PeerState("full", True, busy_total=True)]
    assert {choose(peers, 0.0, random.Random(i)).node for i in range(20)} == {"new"}
    assert choose([PeerState("busy", True, serving=1)], 0.0, RNG) is None     # wait for it
    assert may_serve(0, 1, 2) and not may_serve(1, 1, 2) and not may_serve(0, 2, 2) and not may_serve(0, 0, 0)


def test_a_peer_loading_its_copy_is_waited_for_rather_than_the_source_asked_again_but_not_for_ever():
    peers = [PeerState("src", True, served=1), PeerState("r1", False)]
    assert choose(peers, 0.0, RNG) is None
    assert choose(peers, MAX_LOADER_WAIT_S, RNG).node == "src"
    # A holder that sent nothing yet is taken at once, loading peers or not.
    assert choose([PeerState("src", True), PeerState("r1", False)], 0.0, RNG).node == "src"


def spread(receivers: int, transfer_s: float, load_s: float, poll_s: float = 1.0) -> tuple[dict, float]:
    """A discrete-time run: each receiver asks every poll_s until it got a
    copy; a copy takes transfer_s to send, then load_s to load, after which
    the receiver holds it.  Returns copies sent per node and when all had it."""
    t, dt = 0.0, 0.25
    holds = {"src": 0.0}            # node -> since when it holds the image
    sending: dict[str, list[tuple[str, float]]] = {"src": []}   # holder -> [(receiver, done at)]
    loading: dict[str, float] = {}  # receiver -> holds at
    sent: dict[str, int] = {}
    waited = {f"r{i}": 0.0 for i in range(1, receivers + 1)}
    next_ask = {r: 0.0 for r in waited}
    rng = random.Random(4)
    while len(holds) < receivers + 1:
        assert t < 1000, holds
        for jobs in sending.values():
            for r, done in [j for j in jobs if j[1] <= t]:
                jobs.remove((r, done))
                loading[r] = t + load_s
        for r, at in list(loading.items()):
            if at <= t:
                del loading[r]
                holds[r], sending[r] = t, []
        for r in sorted(next_ask):
            if r in holds or r in loading or any(r == x for jobs in sending.values() for x, _ in jobs):
                continue
            if next_ask[r] > t:
                continue
            peers = [PeerState(h, True, serving=len(sending[h]), served=sent.get(h, 0)) for h in sorted(holds)]
            peers += [PeerState(x, False) for x in sorted(loading)]
            pick = choose(peers, waited[r], rng)
            if pick is None:
                if loading:
                    waited[r] += poll_s
                next_ask[r] = t + poll_s
                continue
            sent[pick.node] = sent.get(pick.node, 0) + 1
            sending[pick.node].append((r, t + transfer_s))
        t += dt
    return sent, max(holds.values())


def test_one_source_and_four_receivers_spread_as_a_tree():
    sent, took = spread(4, transfer_s=4.0, load_s=2.0)
    assert sum(sent.values()) == 4
    # Without waiting for loaders the source sent 3-4 of the 4 (the benchmark's star).
    assert sent["src"] <= 2 and len(sent) >= 2, sent
    assert took <= 3 * (4.0 + 2.0) + 3, took
