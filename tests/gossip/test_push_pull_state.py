"""A push/pull always carries the member table as it is now.

The node list of a push/pull is encoded once per change of the table and
reused (gossip.members.MemberTable.node_states); these tests change members
by every path the protocol has (a new member, a refuted and a confirmed
suspicion, a death, a leave, new meta, a re-addressed name, a reaped one) and
check that the next push/pull says what a freshly built one would, in table
order, as a peer reading it would see.
"""

from __future__ import annotations

import random

from gossip.config import LAN
from gossip.events import Address, MemberState
from gossip.messages import Alive, Dead, NodeStateCode, Suspect
from gossip.packet import StreamDecoder
from gossip.swim import Swim

VSN = (1, 5, 2, 2, 5, 4)
CODE = {MemberState.ALIVE: 0, MemberState.SUSPECT: 1, MemberState.DEAD: 2, MemberState.LEFT: 3}


def _node_states(core: Swim) -> dict[str, tuple]:
    """The push/pull's node list, as a peer decodes it."""
    dec = StreamDecoder(label=b"", keyring=None, expect_label_header=False)
    msg = dec.feed(core._local_push_pull(join=False)) or dec.feed_eof()
    return {st.name: (st.addr, st.port, st.meta, st.incarnation, int(st.state)) for st in msg.nodes}


def _fresh(core: Swim) -> dict[str, tuple]:
    """The node list a push/pull should carry, from the members' fields."""
    return {m.name: (m.addr_bytes, m.port, m.meta, m.incarnation, CODE[m.state])
            for m in core._members.by_name.values()}


def _steps(core: Swim, clock: list[float]) -> list:
    """Changes by every path, each at clock[0] when it runs."""
    return [
        lambda: core._on_alive(Alive(1, "b", bytes([10, 0, 0, 2]), 7946, b"", VSN), clock[0]),
        lambda: core._on_alive(Alive(1, "c", bytes([10, 0, 0, 3]), 7946, b"m1", VSN), clock[0]),
        lambda: core._on_suspect(Suspect(1, "b", "c"), clock[0]),
        lambda: core._on_alive(Alive(2, "b", bytes([10, 0, 0, 2]), 7946, b"", VSN), clock[0]),  # refuted
        lambda: core._on_alive(Alive(3, "c", bytes([10, 0, 0, 3]), 7946, b"m2", VSN), clock[0]),  # new meta
        lambda: core._members.remove({"c"}),  # reaped
        lambda: core._on_alive(Alive(4, "c", bytes([10, 0, 0, 3]), 7946, b"m3", VSN), clock[0]),  # and back
        lambda: core._on_suspect(Suspect(4, "c", "b"), clock[0]),
        lambda: core._suspicion_expired("c", clock[0]),  # declared dead
        lambda: core._on_dead(Dead(2, "b", "b"), clock[0]),  # b left
        lambda: core._on_alive(Alive(1, "b", bytes([10, 0, 0, 9]), 7946, b"", VSN), clock[0]),  # b's name, new address
        lambda: core._on_suspect(Suspect(1, "a", "b"), clock[0]),  # we refute
        lambda: core.set_meta(b"ours", clock[0]),
    ]


def test_every_change_to_a_member_is_in_the_next_push_pull():
    core = Swim(name="a", addr=Address("10.0.0.1", 7946), config=LAN, rng=random.Random(1), now=0.0)
    clock = [1.0]
    seen = [_node_states(core)]
    for step in _steps(core, clock):
        step()
        clock[0] += 1.0
        got = _node_states(core)
        assert got == _fresh(core)
        assert list(got) == list(_fresh(core))  # in table order too
        seen.append(got)
    # The steps did change what a peer is told, every time.
    assert all(x != y for x, y in zip(seen, seen[1:]))
    assert got["b"][0] == bytes([10, 0, 0, 9]) and got["c"][4] == int(NodeStateCode.DEAD)
    assert got["a"][2] == b"ours" and got["a"][3] == 3


def test_the_first_push_pull_after_many_changes_carries_them_all():
    # The encodings are kept only from the first push/pull on
    # (MemberTable.node_states): changes made before it are in it too.
    core = Swim(name="a", addr=Address("10.0.0.1", 7946), config=LAN, rng=random.Random(1), now=0.0)
    clock = [1.0]
    for step in _steps(core, clock):
        step()
        clock[0] += 1.0
    got = _node_states(core)
    assert got == _fresh(core) and list(got) == list(_fresh(core))
    assert got["b"][0] == bytes([10, 0, 0, 9]) and got["a"][2] == b"ours"
