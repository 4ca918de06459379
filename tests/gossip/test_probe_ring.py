"""The probe ring (gossip.members, "The probe ring"): who probes whom.

With one view of the members everywhere, the probers of a probe slot cover
every member exactly once, so a dead member waits for its first probe only
while its prober of the moment is dead too; each node still reaches every
member once in n - 1 slots, and a node whose slots are stretched steps on
instead of skipping members.
"""

from __future__ import annotations

import random

from gossip.events import MemberState
from gossip.members import Member, MemberTable

NAMES = [f"rack-a-{i:02d}" for i in range(40)]  # consecutive names, as a rack's machines


def _table(local: str, names=NAMES, seed: int = 1) -> MemberTable:
    table = MemberTable(random.Random(seed), local)
    for i, name in enumerate(names):
        table.add(Member(name, bytes([10, 0, 0, i + 1]), 7946, b"", (1, 5, 2, 2, 5, 4), 1, MemberState.ALIVE, 0.0))
    return table


def test_in_each_slot_every_member_has_exactly_one_prober():
    tables = {name: _table(name, seed=i) for i, name in enumerate(NAMES)}
    for slot in (0, 1, 7, 38, 39, 1234):
        probed = [tables[name].next_probe_target(slot).name for name in NAMES]
        assert sorted(probed) == sorted(NAMES), slot


def test_a_node_reaches_every_other_member_once_in_n_minus_1_slots():
    table = _table(NAMES[5])
    probed = [table.next_probe_target(slot).name for slot in range(100, 100 + len(NAMES) - 1)]
    assert sorted(probed) == sorted(set(NAMES) - {NAMES[5]})


def test_a_stretched_node_steps_on_and_still_reaches_everyone():
    # Health score above 0: its slots last longer than the clock's, so it
    # asks with None and walks on from its last position.
    table = _table(NAMES[0])
    first = table.next_probe_target(500)
    probed = [first.name] + [table.next_probe_target(None).name for _ in range(len(NAMES) - 2)]
    assert sorted(probed) == sorted(set(NAMES) - {NAMES[0]})
    # The same slot asked twice (a probe deferred past its tick) steps on too.
    again = _table(NAMES[0])
    assert again.next_probe_target(9).name != again.next_probe_target(9).name


def test_a_rack_of_consecutive_names_is_scattered_over_the_ring():
    # The ring is ordered by a hash of the name: ten machines of one rack
    # that fail together are not ten neighbours, whose victims would wait
    # for the first live prober behind the whole rack.
    table = _table(NAMES[39])
    ring = [name for _, name in table._ring]
    positions = sorted(ring.index(f"rack-a-{i:02d}") for i in range(10))
    longest_run = max(len(run) for run in _runs(positions))
    assert longest_run <= 3


def test_dead_and_left_members_leave_the_ring_and_come_back_alive():
    table = _table(NAMES[0])
    gone = table.get(NAMES[1])
    table.set_state(gone, MemberState.DEAD, 1.0)
    assert all(table.next_probe_target(slot).name != NAMES[1] for slot in range(3 * len(NAMES)))
    suspect = table.get(NAMES[2])
    table.set_state(suspect, MemberState.SUSPECT, 1.0)  # a suspect is probed (the buddy system)
    assert NAMES[2] in {table.next_probe_target(slot).name for slot in range(len(NAMES))}
    table.set_state(gone, MemberState.ALIVE, 2.0)
    assert NAMES[1] in {table.next_probe_target(slot).name for slot in range(len(NAMES))}
    table.remove({NAMES[1]})
    assert NAMES[1] not in {table.next_probe_target(slot).name for slot in range(len(NAMES))}


def test_alone_there_is_nobody_to_probe():
    table = _table("solo", names=["solo"])
    assert table.next_probe_target(3) is None
    assert table.next_probe_target(None) is None


def _runs(positions: list[int]) -> list[list[int]]:
    runs: list[list[int]] = [[positions[0]]]
    for p in positions[1:]:
        if p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def test_members_added_at_once_probe_as_members_added_one_by_one():
    # MemberTable.add_all (a formed cluster's start) sorts the ring once.
    def member(i: int, name: str, state: MemberState) -> Member:
        return Member(name, bytes([10, 0, 0, i + 1]), 7946, b"", (1, 5, 2, 2, 5, 4), 1, state, 0.0)

    states = [MemberState.DEAD if i % 7 == 3 else MemberState.ALIVE for i in range(len(NAMES))]
    one_by_one = MemberTable(random.Random(1), NAMES[4])
    at_once = MemberTable(random.Random(1), NAMES[4])
    for i, name in enumerate(NAMES):
        one_by_one.add(member(i, name, states[i]))
    at_once.add(member(4, NAMES[4], MemberState.ALIVE))
    at_once.add_all([member(i, name, states[i]) for i, name in enumerate(NAMES) if i != 4])
    assert at_once.live_count() == one_by_one.live_count() == len(NAMES) - states.count(MemberState.DEAD)
    assert at_once.counts == one_by_one.counts
    assert [at_once.next_probe_target(slot).name for slot in range(80)] == \
        [one_by_one.next_probe_target(slot).name for slot in range(80)]
    assert at_once.node_states()[0] == len(NAMES)
