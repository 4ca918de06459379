"""node/runtime/decision.py: the runtime's rules, one table row per rule, no Docker.

Each row: what is desired, what the engine listed, the slots' bookkeeping and
the time -> the actions a pass takes (and, where the rule is about it, the
bookkeeping it leaves).  The real-engine tests (test_docker_runtime.py) show
that the driver carries these actions out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from auction.spec import RestartMode, RestartPolicy
from node.runtime.decision import (
    FAILURE_MEMORY, RESTART_MEMORY, Adopt, DesiredReplica, GiveUp, ObservedContainer,
    Remove, Replace, Restart, Rules, SlotBook, Start, Stop, count_restart, decide, slot_state, start_backoff_s,
    start_failed,
)

NOW = 1000.0
ALWAYS = RestartPolicy(RestartMode.ALWAYS, backoff_s=1.0, max_backoff_s=30.0)
ON_FAILURE = RestartPolicy(RestartMode.ON_FAILURE, max_attempts=3, backoff_s=1.0, max_backoff_s=30.0)
NEVER = RestartPolicy(RestartMode.NEVER)


def want(ballot: str = "1/c1", spec_hash: str = "h1", policy: RestartPolicy = ALWAYS,
         job: str = "web") -> DesiredReplica:
    return DesiredReplica(job, ballot, spec_hash, policy)


def ctr(cid: str, slot: str = "web/0", *, ballot: str = "1/c1", spec_hash: str = "h1", state: str = "running",
        status: str = "Up 5 seconds", created: int = 1) -> ObservedContainer:
    return ObservedContainer(cid, f"shoal-{cid}", slot, ballot, spec_hash, state, status, created, "img:1")


UP = ctr("a")
ADOPT_ONLY = DesiredReplica("web", "1/c1", "h1", ALWAYS, adopt_only=True)
UNHEALTHY = ctr("a", status="Up 1 minute (unhealthy)")
EXITED_1 = ctr("a", state="exited", status="Exited (1) 2 seconds ago")
EXITED_0 = ctr("a", state="exited", status="Exited (0) 2 seconds ago")
# The marker the failure of EXITED_1 is counted under (at 0 restarts): seen before.
HANDLED_1 = "a:Exited:1:False:0"


@dataclass
class Row:
    id: str
    desired: dict[str, DesiredReplica]
    observed: list[ObservedContainer]
    actions: tuple
    books: dict[str, SlotBook] = field(default_factory=dict)
    now: float = NOW
    kw: dict[str, Any] = field(default_factory=dict)
    book: dict[str, Any] | None = None      # expected fields of web/0's bookkeeping afterwards
    wakeups: tuple[float, ...] | None = None


ROWS = [
    # -- starting ---------------------------------------------------------------------------
    Row("fresh slot is started", {"web/0": want()}, [], (Start("web/0"),)),
    Row("backoff not yet elapsed: no start, look again when it ends",
        {"web/0": want()}, [], (), books={"web/0": SlotBook(not_before=NOW + 5)}, wakeups=(NOW + 5,)),
    Row("backoff elapsed: start", {"web/0": want()}, [], (Start("web/0"),),
        books={"web/0": SlotBook(not_before=NOW - 0.1)}),
    Row("created but never started: start it, not counted as a restart",
        {"web/0": want()}, [ctr("a", state="created", status="Created")],
        (Restart("web/0", ctr("a", state="created", status="Created"), counts=False),)),
    Row("restarting or paused: wait", {"web/0": want(), "web/1": want()},
        [ctr("a", state="restarting", status="Restarting (1) 1 second ago"),
         ctr("b", "web/1", state="paused", status="Up 1 minute (Paused)")], ()),
    Row("busy slot (a call in flight) is left for the next pass",
        {"web/0": want()}, [], (), kw={"busy": {"slot:web/0"}}),

    # -- adoption and running ----------------------------------------------------------------
    Row("adopt a running container with the desired ballot and spec hash",
        {"web/0": want()}, [UP], (Adopt("web/0", UP),), book={"running_since": NOW}),
    Row("adopted before: nothing to do", {"web/0": want()}, [UP], (),
        books={"web/0": SlotBook(running_since=NOW - 1, consecutive=2)}, book={"consecutive": 2}),
    Row("up stable_after_s: the backoff starts over", {"web/0": want()}, [UP], (),
        books={"web/0": SlotBook(running_since=NOW - 30, consecutive=2)}, book={"consecutive": 0}),
    Row("healthy by its probe counts as running", {"web/0": want()}, [ctr("a", status="Up 1 minute (healthy)")],
        (Adopt("web/0", ctr("a", status="Up 1 minute (healthy)")),)),
    Row("a duplicate of the slot's container is removed; the running one is kept",
        {"web/0": want()}, [ctr("b", state="exited", status="Exited (0) 1 second ago", created=9), UP],
        (Remove(ctr("b", state="exited", status="Exited (0) 1 second ago", created=9), "duplicate"),
         Adopt("web/0", UP))),

    # -- containers nobody wants ------------------------------------------------------------------
    Row("a container of ours no desired slot explains is removed",
        {}, [ctr("x", "gone/3")], (Remove(ctr("x", "gone/3"), "not desired here"),)),
    Row("... or one without a slot label", {}, [ctr("x", "")], (Remove(ctr("x", ""), "not desired here"),)),
    Row("... but not during the adoption grace after the runtime started",
        {}, [ctr("x", "gone/3")], (), kw={"started_at": NOW - 5, "rules": Rules(adopt_grace_s=10)}),
    Row("... which ends when the agent replayed its claims",
        {}, [ctr("x", "gone/3")], (Remove(ctr("x", "gone/3"), "not desired here"),),
        kw={"started_at": NOW - 5, "synced": True, "rules": Rules(adopt_grace_s=10)}),
    Row("... or after adopt_grace_s", {}, [ctr("x", "gone/3")], (Remove(ctr("x", "gone/3"), "not desired here"),),
        kw={"started_at": NOW - 10, "rules": Rules(adopt_grace_s=10)}),
    Row("a container with a call in flight is not acted on twice",
        {}, [ctr("x", "gone/3")], (), kw={"busy": {"ctr:x"}}),
    Row("stale ballot: removed at once (even in the grace); the new one waits until it stops",
        {"web/0": want("2/c2")}, [UP], (Remove(UP, "stale ballot 1/c1 (now 2/c2)"),),
        kw={"started_at": NOW - 1}),
    Row("... and waits while its removal is in flight (it would take the same host ports)",
        {"web/0": want("2/c2")}, [UP], (), kw={"busy": {"ctr:a"}}),
    Row("... then the slot starts afresh: the stale one stopped, its removal still going",
        {"web/0": want("2/c2")}, [EXITED_0], (Start("web/0"),), kw={"busy": {"ctr:a"}}),
    Row("... or it is gone",
        {"web/0": want("2/c2")}, [], (Start("web/0"),)),
    Row("a stale container of another slot holds nothing back",
        {"web/0": want("2/c2"), "web/1": want("2/c2")}, [UP],
        (Remove(UP, "stale ballot 1/c1 (now 2/c2)"), Start("web/1"))),

    # -- rolling replacement ------------------------------------------------------------------------
    Row("new spec: the slot starts its new container while the old one runs",
        {"web/0": want(spec_hash="h2")}, [UP], (Replace("web/0", ("a",)),)),
    Row("replace only one slot at a time (lowest index first); fresh slots are not held back",
        {"web/0": want(spec_hash="h2"), "web/1": want(spec_hash="h2"), "web/2": want(spec_hash="h2")},
        [ctr("b", "web/1"), ctr("a", "web/0")], (Replace("web/0", ("a",)), Start("web/2"))),
    Row("while one slot's new container is not up yet, the next slot waits",
        {"web/0": want(spec_hash="h2"), "web/1": want(spec_hash="h2")},
        [UP, ctr("n", state="created", status="Created", spec_hash="h2"), ctr("b", "web/1")],
        (Restart("web/0", ctr("n", state="created", status="Created", spec_hash="h2"), counts=False),)),
    Row("... as it does while the new container is being created (slot busy)",
        {"web/0": want(spec_hash="h2"), "web/1": want(spec_hash="h2")}, [UP, ctr("b", "web/1")], (),
        kw={"busy": {"slot:web/0"}}),
    Row("the new container runs: the old one goes",
        {"web/0": want(spec_hash="h2")}, [UP, ctr("n", spec_hash="h2", created=2)],
        (Remove(UP, "replaced by the new spec"), Adopt("web/0", ctr("n", spec_hash="h2", created=2)))),
    Row("the new container is up but its health check has not passed yet: the old one stays",
        {"web/0": want(spec_hash="h2")}, [UP, ctr("n", spec_hash="h2", created=2, status="Up 1 second "
                                                                                  "(health: starting)")],
        (Adopt("web/0", ctr("n", spec_hash="h2", created=2, status="Up 1 second (health: starting)")),)),
    Row("... and goes once it is healthy",
        {"web/0": want(spec_hash="h2")}, [UP, ctr("n", spec_hash="h2", created=2, status="Up 3 seconds (healthy)")],
        (Remove(UP, "replaced by the new spec"),),
        books={"web/0": SlotBook(running_since=NOW - 2)}),
    Row("replacements are per job: another job's slot is not held back",
        {"web/0": want(spec_hash="h2"), "db/0": want(spec_hash="h2", job="db")},
        [UP, ctr("n", spec_hash="h2", state="created", status="Created"), ctr("d", "db/0")],
        (Restart("web/0", ctr("n", spec_hash="h2", state="created", status="Created"), counts=False),
         Replace("db/0", ("d",)))),

    # -- restart policy ---------------------------------------------------------------------------
    Row("always: a failure is counted once and waits its backoff",
        {"web/0": want()}, [EXITED_1], (), wakeups=(NOW + 1,),
        book={"consecutive": 1, "not_before": NOW + 1, "last_exit": "exited 1", "failures": (NOW,),
              "handled": HANDLED_1, "restarts": 0}),
    Row("always: the backoff elapsed: restart",
        {"web/0": want()}, [EXITED_1], (Restart("web/0", EXITED_1),),
        books={"web/0": SlotBook(consecutive=1, not_before=NOW - 0.5, handled=HANDLED_1, failures=(NOW - 1,))},
        book={"consecutive": 1, "failures": (NOW - 1,)}),
    Row("the backoff doubles with each failure since the last stable run",
        {"web/0": want()}, [EXITED_1], (), books={"web/0": SlotBook(consecutive=3, restarts=0)},
        book={"not_before": NOW + 8, "consecutive": 4}),
    Row("... up to max_backoff_s", {"web/0": want()}, [EXITED_1], (),
        books={"web/0": SlotBook(consecutive=10)}, book={"not_before": NOW + 30}),
    Row("always: exit 0 restarts too, without counting a failure",
        {"web/0": want()}, [EXITED_0], (), book={"failures": (), "last_exit": "exited 0", "not_before": NOW + 1}),
    Row("always: unhealthy is a failure; the running container is restarted after its backoff",
        {"web/0": want()}, [UNHEALTHY], (Restart("web/0", UNHEALTHY),),
        books={"web/0": SlotBook(handled="a:Up:None:True:0", not_before=NOW - 1)}),
    Row("... and the first sight of it counts it", {"web/0": want()}, [UNHEALTHY], (),
        book={"last_exit": "unhealthy", "failures": (NOW,)}),
    Row("a dead container without an exit code has failed",
        {"web/0": want()}, [ctr("a", state="dead", status="Dead")], (), book={"last_exit": "Dead", "failures": (NOW,)}),
    Row("on-failure: restarted while attempts remain",
        {"web/0": want(policy=ON_FAILURE)}, [EXITED_1], (), books={"web/0": SlotBook(restarts=2)},
        book={"not_before": NOW + 1}),
    Row("on-failure: max attempts reached -> give up here",
        {"web/0": want(policy=ON_FAILURE)}, [EXITED_1],
        (GiveUp("web/0", "exited 1; restart attempts exhausted (3 of 3)"),),
        books={"web/0": SlotBook(restarts=3)},
        book={"gave_up": "exited 1; restart attempts exhausted (3 of 3)"}),
    Row("on-failure: exit 0 is done, not restarted",
        {"web/0": want(policy=ON_FAILURE)}, [EXITED_0], (),
        book={"done": "exited 0 (policy on-failure: not restarted)"}),
    Row("never: an exited container is left alone",
        {"web/0": want(policy=NEVER)}, [EXITED_1], (), book={"done": "exited 1 (policy never: not restarted)"}),
    Row("never: an unhealthy container is stopped and left",
        {"web/0": want(policy=NEVER)}, [UNHEALTHY], (Stop(UNHEALTHY, "unhealthy, not restarted"),),
        book={"done": "unhealthy (policy never: not restarted)"}),
    Row("crash loop: crash_loop_failures within the window -> give up, whatever the policy",
        {"web/0": want()}, [EXITED_1],
        (GiveUp("web/0", "crash loop: 3 failures within 60 s (last: exited 1)"),),
        books={"web/0": SlotBook(failures=(NOW - 50, NOW - 20))},
        kw={"rules": Rules(crash_loop_failures=3, crash_loop_window_s=60)}),
    Row("... failures older than the window do not count",
        {"web/0": want()}, [EXITED_1], (), books={"web/0": SlotBook(failures=(NOW - 61, NOW - 20))},
        kw={"rules": Rules(crash_loop_failures=3, crash_loop_window_s=60)}, book={"gave_up": None}),
    Row("gave up: left alone until the core stops or re-awards the slot",
        {"web/0": want()}, [EXITED_1], (), books={"web/0": SlotBook(gave_up="image x is not on node n1")}),
    Row("gave up without a container: not started again",
        {"web/0": want()}, [], (), books={"web/0": SlotBook(gave_up="crash loop")}),
    Row("done: left alone", {"web/0": want(policy=NEVER)}, [EXITED_1], (),
        books={"web/0": SlotBook(done="exited 1 (policy never: not restarted)")}),

    # -- adopt-only: a claim read from disk that peers have not confirmed (node.core.replay) ----
    Row("adopt-only: a container of the claim that still runs is kept (an agent restart, no reboot)",
        {"web/0": ADOPT_ONLY}, [UP], (Adopt("web/0", UP),), book={"running_since": NOW}),
    Row("adopt-only: the container that died with the machine is not restarted, its exit not counted",
        {"web/0": ADOPT_ONLY}, [EXITED_1], (), book={"failures": (), "handled": None, "not_before": 0.0},
        wakeups=()),
    Row("adopt-only: no container, none started", {"web/0": ADOPT_ONLY}, [], ()),
    Row("adopt-only: a container of another ballot is stale as ever",
        {"web/0": ADOPT_ONLY}, [ctr("o", ballot="0/c0", state="exited", status="Exited (255) 1 minute ago")],
        (Remove(ctr("o", ballot="0/c0", state="exited", status="Exited (255) 1 minute ago"),
                "stale ballot 0/c0 (now 1/c1)"),)),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_decide(row: Row):
    d = decide(row.desired, row.observed, row.books, row.now, **row.kw)
    assert d.actions == row.actions
    if row.book is not None:
        got = d.books["web/0"]
        assert {k: getattr(got, k) for k in row.book} == row.book
    if row.wakeups is not None:
        assert d.wakeups == row.wakeups


def test_a_restart_that_did_not_happen_is_retried_not_counted_again():
    """The driver counts a restart only once the engine call worked: the same
    exited container seen again is the same failure."""
    desired = {"web/0": want()}
    first = decide(desired, [EXITED_1], {}, NOW)
    assert first.actions == ()
    later = decide(desired, [EXITED_1], first.books, NOW + 1)
    assert later.actions == (Restart("web/0", EXITED_1),)
    assert later.books["web/0"].failures == (NOW,)
    # it worked, and the container exited again: a new failure, backoff doubled
    counted = {"web/0": count_restart(later.books["web/0"], NOW + 1)}
    again = decide(desired, [EXITED_1], counted, NOW + 2)
    assert again.actions == ()
    assert again.books["web/0"].failures == (NOW, NOW + 2)
    assert again.books["web/0"].not_before == NOW + 2 + 2


def test_notes_say_what_was_decided():
    d = decide({"web/0": want()}, [EXITED_1], {}, NOW)
    assert d.notes == ("web/0: exited 1; restart 1 in 1 s",)


def test_books_of_other_slots_pass_through_and_inputs_are_not_changed():
    books = {"web/0": SlotBook(restarts=2), "web/9": SlotBook(restarts=7)}
    d = decide({"web/0": want()}, [EXITED_1], books, NOW)
    assert d.books["web/9"] is books["web/9"]
    assert books["web/0"] == SlotBook(restarts=2)
    assert d.books["web/0"].last_exit == "exited 1"


def test_bounded_memories():
    st = SlotBook()
    for i in range(RESTART_MEMORY + 5):
        st = count_restart(st, float(i))
    assert st.restarts == RESTART_MEMORY + 5
    assert st.restart_times[0] == 5.0 and len(st.restart_times) == RESTART_MEMORY
    # a slot that keeps failing remembers only the last FAILURE_MEMORY failures
    books = {"web/0": SlotBook(failures=tuple(float(i) for i in range(FAILURE_MEMORY)))}
    d = decide({"web/0": want()}, [EXITED_1], books, NOW, rules=Rules(crash_loop_failures=10**6))
    assert len(d.books["web/0"].failures) == FAILURE_MEMORY and d.books["web/0"].failures[-1] == NOW


# ---- a start the engine failed backs off -------------------------------------------------


def test_a_start_the_engine_keeps_failing_is_retried_with_bounded_exponential_backoff():
    # Seen: with docker0 missing every start failed and was retried every
    # pass (~60 ms).  Each failure now waits 0.5, 1, 2, ... s, at most 30 s.
    rules = Rules()
    st, now, tries = SlotBook(), NOW, []
    for _ in range(20):
        d = decide({"web/0": want()}, [], {"web/0": st}, now, rules=rules)
        if d.actions:
            assert d.actions == (Start("web/0"),)
            tries.append(now)
            st = start_failed(d.books["web/0"], now, rules)      # the driver reports the failure
        else:
            assert d.wakeups == (st.not_before,)                 # it looks again when the wait ends
            now = st.not_before
    gaps = [b - a for a, b in zip(tries, tries[1:], strict=False)]
    assert gaps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_created_container_whose_start_failed_waits_too_and_the_count_ends_once_it_runs():
    rules = Rules()
    st = start_failed(start_failed(SlotBook(), NOW, rules), NOW, rules)
    created = ctr("a", state="created", status="Created")
    d = decide({"web/0": want()}, [created], {"web/0": st}, NOW + 0.5, rules=rules)
    assert d.actions == () and d.wakeups == (NOW + 1.0,)
    d = decide({"web/0": want()}, [created], {"web/0": st}, NOW + 1.0, rules=rules)
    assert d.actions == (Restart("web/0", created, counts=False),)
    d = decide({"web/0": want()}, [UP], {"web/0": st}, NOW + 2.0, rules=rules)
    assert d.books["web/0"].start_failures == 0
    assert start_backoff_s(1, rules) == 0.5 and start_backoff_s(100, rules) == 30.0


# ---- a rolling update on this node (the holder re-claimed its slot: a new ballot) ----

def test_start_first_keeps_the_handed_over_container_until_the_new_one_runs():
    new = DesiredReplica("web", "2/me", "h2", ALWAYS, replaces=("1/c1",))
    old = ctr("a", ballot="1/c1", spec_hash="h1")
    first = decide({"web/0": new}, [old], {}, NOW)
    assert [type(a) for a in first.actions] == [Replace]
    assert first.actions[0].old == ("a",)
    # The new container runs: now the old one goes.
    up = ctr("b", ballot="2/me", spec_hash="h2", created=2)
    second = decide({"web/0": new}, [old, up], first.books, NOW + 1)
    assert [(type(a), getattr(a, "container", None) and a.container.id) for a in second.actions] == [
        (Remove, "a"), (Adopt, "b")]


def test_start_first_while_the_new_container_fails_keeps_the_old_one_serving():
    new = DesiredReplica("web", "2/me", "h2", ALWAYS, replaces=("1/c1",))
    old = ctr("a", ballot="1/c1", spec_hash="h1")
    failing = ctr("b", ballot="2/me", spec_hash="h2", status="Up 1 minute (unhealthy)", created=2)
    d = decide({"web/0": new}, [old, failing], {}, NOW)
    assert not any(isinstance(a, Remove) and a.container.id == "a" for a in d.actions)


def test_hand_overs_of_one_job_start_together_a_same_ballot_spec_change_one_at_a_time():
    # A rolling update moved two slots of one job held here (new ballots that
    # replace the old): auction.rollout paces those cluster-wide, so both new
    # containers start in this pass (holding the second back until the
    # first one's health check passed doubled the batch's time).
    moved = {f"web/{i}": DesiredReplica("web", f"2/me{i}", "h2", ALWAYS, replaces=(f"1/c{i}",)) for i in (0, 1)}
    olds = [ctr(f"o{i}", f"web/{i}", ballot=f"1/c{i}", spec_hash="h1") for i in (0, 1)]
    d = decide(moved, olds, {}, NOW)
    assert sorted(a.slot for a in d.actions if isinstance(a, Replace)) == ["web/0", "web/1"]
    # A new spec under the same ballots (nothing else paces it): one slot at a time.
    same = {f"web/{i}": DesiredReplica("web", f"1/c{i}", "h2", ALWAYS) for i in (0, 1)}
    d = decide(same, olds, {}, NOW)
    assert [a.slot for a in d.actions if isinstance(a, Replace)] == ["web/0"]


def test_stop_first_removes_the_older_ballot_at_once_and_starts_once_it_stopped():
    new = DesiredReplica("web", "2/me", "h2", ALWAYS)
    old = ctr("a", ballot="1/c1", spec_hash="h1")
    d = decide({"web/0": new}, [old], {}, NOW)
    assert [type(a) for a in d.actions] == [Remove]
    stopped = ctr("a", ballot="1/c1", spec_hash="h1", state="exited", status="Exited (137) 1 second ago")
    d = decide({"web/0": new}, [stopped], d.books, NOW + 0.5, busy={"ctr:a"})
    assert [type(a) for a in d.actions] == [Start]


def test_a_revert_keeps_the_copy_that_still_serves_until_the_reverted_one_runs():
    # v2 (ballot 1) was being handed over to v3 (ballot 3), whose check fails;
    # the revert (ballot 4, v2 again) hands over from both.
    back = DesiredReplica("web", "4/me", "h2", ALWAYS, replaces=("3/me", "1/c1"))
    serving = ctr("a", ballot="1/c1", spec_hash="h2")
    failing = ctr("b", ballot="3/me", spec_hash="h3", status="Up 1 minute (unhealthy)", created=2)
    d = decide({"web/0": back}, [serving, failing], {}, NOW)
    assert [type(a) for a in d.actions] == [Replace] and set(d.actions[0].old) == {"a", "b"}
    up = ctr("c", ballot="4/me", spec_hash="h2", created=3)
    d = decide({"web/0": back}, [serving, failing, up], d.books, NOW + 1)
    assert {a.container.id for a in d.actions if isinstance(a, Remove)} == {"a", "b"}


def test_an_adopt_only_slot_that_runs_nothing_reports_starting_and_why():
    for current in ([], [EXITED_1]):
        state, reason = slot_state(None, current, "", adopt_only=True)
        assert state == "starting" and "before the agent restarted" in reason
    assert slot_state(None, [UP], "", adopt_only=True) == ("running", "")
