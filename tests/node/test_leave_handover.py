"""A leaving agent hands its replicas over before it exits (node.agent.handover).

In-process agents (tests/node/inproc_agent.py: the `local` profile, the fake
runtime).  What a user would notice: after `shoal leave` (POST
/v1/agent/leave) on a node that runs replicas, every replica runs once,
on the nodes that stay, and none is left behind on the node that left;
with nowhere else to go, a replica stays where it ran.
"""

from __future__ import annotations

import httpx
import pytest
import trio

from inproc_agent import CAPACITY_2CPU_2GIB, agent_starter  # same directory

DEADLINE_S = 15.0
# The quickstart's demo job (examples/web.toml), scaled to 4 on its three racks.
SPEC = {"name": "web", "image": "busybox", "cpu": 0.25, "memory": "32MiB", "replicas": 4, "spread": "rack",
        "max_per_node": 2}


@pytest.fixture
def start_agent(nursery, tmp_path):
    return agent_starter(nursery, tmp_path, **CAPACITY_2CPU_2GIB)


async def until(predicate, what: str, timeout_s: float = DEADLINE_S) -> None:
    with trio.move_on_after(timeout_s):
        while not predicate():
            await trio.sleep(0.05)
        return
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


async def three_with_a_job(start_agent, spec: dict):
    a = await start_agent("a", labels=("rack=a",))
    b = await start_agent("b", labels=("rack=b",), join=[str(a.advertise)])
    c = await start_agent("c", labels=("rack=c",), join=[str(a.advertise)])
    agents = (a, b, c)
    await until(lambda: all(len([m for m in x.view.members() if m.state.name == "ALIVE"]) == 3 for x in agents),
                "three alive members everywhere")
    async with httpx.AsyncClient(base_url=a.api_url, timeout=30.0) as client:
        assert (await client.post("/v1/jobs", json=spec)).status_code == 201
    await until(lambda: sum(len(x.runtime.running) for x in agents) == spec.get("replicas", len(agents)),
                "the job running")
    return agents


async def test_a_leaving_agent_exits_once_its_replicas_run_elsewhere(start_agent):
    agents = await three_with_a_job(start_agent, SPEC)
    # The node with the fewest replicas: the others have room for them (max_per_node 2).
    leaver = min((x for x in agents if x.runtime.running), key=lambda x: (len(x.runtime.running), x.name))
    stay = [x for x in agents if x is not leaver]
    async with httpx.AsyncClient(base_url=leaver.api_url, timeout=30.0) as client:
        r = await client.post("/v1/agent/leave")
    assert r.status_code == 200 and r.json()["handed_over"] is True, r.text
    # Nothing of the job is left on the node that left, and each slot runs once on those that stay.
    assert leaver.runtime.running == {}
    slots = sorted(s for x in stay for s in x.runtime.running)
    assert slots == ["web/0", "web/1", "web/2", "web/3"]
    await until(lambda: leaver.finished.is_set(), "the agent that left to exit")


async def test_a_replica_with_nowhere_else_to_go_stays_when_its_node_leaves(start_agent):
    # One replica per node at most, on three nodes: the leaver's has no other place.
    spec = {k: v for k, v in SPEC.items() if k != "spread"}
    agents = await three_with_a_job(start_agent, {**spec, "replicas": 3, "max_per_node": 1})
    leaver = agents[2]
    before = dict(leaver.runtime.running)
    assert len(before) == 1
    async with httpx.AsyncClient(base_url=leaver.api_url, timeout=60.0) as client:
        r = await client.post("/v1/agent/leave")
    assert r.status_code == 200 and r.json()["handed_over"] is False, r.text
    assert leaver.runtime.running == before


async def test_a_leaving_node_stops_its_copy_of_a_global_job_and_the_others_keep_theirs(start_agent):
    agents = await three_with_a_job(start_agent, {"name": "agent", "image": "busybox", "cpu": 0.1,
                                                  "memory": "16MiB", "mode": "global"})
    a, b, c = agents
    assert all(len(x.runtime.running) == 1 for x in agents)
    async with httpx.AsyncClient(base_url=b.api_url, timeout=30.0) as client:
        r = await client.post("/v1/agent/leave")
    assert r.status_code == 200 and r.json()["handed_over"] is True, r.text
    assert b.runtime.running == {}                              # nothing left behind on the node that left
    assert len(a.runtime.running) == len(c.runtime.running) == 1
    await until(lambda: b.finished.is_set(), "the agent that left to exit")
    # Nobody took b's copy over: a global job runs one per member.
    assert sum(len(x.runtime.running) for x in (a, c)) == 2


class StubRuntime:
    def __init__(self, slots: dict[str, tuple[str, str]]) -> None:
        self.slots = slots

    def slot_states(self) -> dict[str, tuple[str, str]]:
        return dict(self.slots)

    async def ps(self) -> list[dict]:
        return [{"slot": s} for s in self.slots]


async def test_hand_over_ends_when_nothing_is_left_nobody_is_left_or_time_is_up() -> None:
    from node.agent.handover import hand_over

    rt = StubRuntime({"web/0": ("running", "")})
    # Every other member gone too (a whole site stopped at once): no wait.
    with trio.fail_after(1):
        assert await hand_over(rt, lambda: False, lambda slot: True, timeout_s=30) is None
    # Our copy stops a little later: done.

    async def stop_after(delay_s: float) -> None:
        await trio.sleep(delay_s)
        rt.slots.clear()

    async with trio.open_nursery() as n:
        n.start_soon(stop_after, 0.3)
        with trio.fail_after(2):
            assert await hand_over(rt, lambda: True, lambda slot: True, timeout_s=30) is True
    # Nothing moves: given up after the bound, the replica stays.
    rt.slots["web/1"] = ("running", "")
    start = trio.current_time()
    assert await hand_over(rt, lambda: True, lambda slot: True, timeout_s=0.5) is False
    assert 0.5 <= trio.current_time() - start < 1.5 and rt.slots
    # ... and soon when no other node has room for what is still here (NOWHERE_S on end) ...
    from node.agent.handover import NOWHERE_S

    start = trio.current_time()
    with trio.fail_after(NOWHERE_S + 1):
        assert await hand_over(rt, lambda: True, lambda slot: False, timeout_s=30) is False
    assert trio.current_time() - start >= NOWHERE_S
    # ... but not on one look that finds nowhere to go (a peer suspect for a moment).
    looks = iter([False, False, True, True, True])
    async with trio.open_nursery() as n:
        n.start_soon(stop_after, 1.0)
        with trio.fail_after(5):
            assert await hand_over(rt, lambda: True, lambda slot: next(looks, True), timeout_s=30) is True


def test_a_slot_already_placed_elsewhere_is_waited_for_even_at_max_per_node():
    """Its replacement's node counts it already: 'room for one more' says no
    at max_per_node, yet the replacement is about to run.  The agent used to
    stop waiting then and exit with its copy still running (a CI flake of
    the scene above under load)."""
    from auction.claims import Ballot, Claim
    from auction.resources import Resources
    from auction.spec import validate
    from node.agent.handover import room_elsewhere

    spec = validate({**SPEC, "replicas": 4})
    gb = 1 << 30

    class Status:
        def __init__(self, name):
            self.name, self.capacity, self.allocated = name, Resources(2000, 2 * gb, 0), Resources(500, gb // 16, 0)
            self.labels, self.eligible = {"rack": name}, True

    def claim(slot, node):
        return Claim(slot, Ballot(2, node), node, False, spec.container_hash(), spec.demand())

    class View:
        name = "b"
        winners = {"web/1": claim("web/1", "c"), "web/3": claim("web/3", "b")}

        def job(self, name): return name
        def spec_of(self, entry): return spec
        def winning_claim(self, slot): return self.winners.get(slot)
        def alive_names(self): return {"a", "b", "c"}
        def held_by_node(self, spec): return {"a": 2, "c": 2}       # c counts web/1's replacement
        def live_statuses(self): return {n: Status(n) for n in ("a", "b", "c")}

    movable = room_elsewhere(View())
    assert movable("web/1")             # placed on c: wait for it to run
    assert not movable("web/3")         # still ours, and a and c are at max_per_node: nowhere to go
