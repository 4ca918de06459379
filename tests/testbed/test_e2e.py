"""End-to-end on the testbed: 5 "machines", each with its own dockerd and agent, real faults.

What issue 5 says must be shown, on real Docker:
  * a job with 10 replicas runs, every container up, limits applied, labelled;
  * a power cut on a node: its replicas run again on the others, each slot once;
  * a 2|3 partition: both sides run every slot (each side has room for all
    of them); after the heal each slot runs exactly once and the extra
    copies were stopped, and at no moment (every dockerd swept over and
    over) did a slot run nowhere;
  * a container that exits is restarted in place per its policy; one that
    crash-loops moves to another node, and the node it failed on declines it.
(An agent restart adopting its containers -- same IDs, same StartedAt -- is in
test_testbed.py, with the wan preset: with `local` the peers declare a
restarting agent failed within a second and re-auction its slots.)

Root only (skipped otherwise).  The 5-node testbed (`local` gossip preset)
is the session's, shared with test_networking.py: testbed_cluster.py says
how it is brought up, checked and torn down.  Each test submits its own job
and stops it at the end, so the tests do not depend on each other's jobs
(only on all five nodes being up, which each test makes sure of first).
"""

from __future__ import annotations

from __future__ import annotations

import collections
import datetime
import os
import time

import pytest

from dockerd_sampler import Sampler    # same directory (pytest's default prepend import mode)
from testbed_cluster import job

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="scripts/testbed needs root"),
              pytest.mark.slow]




# ---- the tests ------------------------------------------------------------------------------


def test_ten_replicas_run_with_limits_and_labels(cluster):
    cl = cluster
    cl.ensure_all_up()
    cl.submit(job("web", 10, cpu=0.25, memory="24MiB"))
    try:
        cl.wait(lambda: cl.each_slot_once("web", 10), 60, "10 web containers, each slot once")
        detail = cl.wait(lambda: (d := cl.api("GET", "/v1/jobs/web"))["placed"] == 10 and d, 30,
                         "the job status to show 10 placed")
        by_slot = {s["slot"]: s for s in detail["slots"]}
        with cl.explained():
            for c in cl.containers("web"):
                i, cid = c["node"], c["Id"]
                info = cl.inspect(i, cid)
                assert info is not None and info["State"]["Running"], c
                assert info["HostConfig"]["NanoCpus"] == 250_000_000
                assert info["HostConfig"]["Memory"] == 24 * 1024 * 1024
                labels = info["Config"]["Labels"]
                slot = labels["shoal.slot"]
                assert labels["shoal.job"] == "web"
                assert labels["shoal.node"] == cl.name(i)       # the node whose dockerd runs it
                status = by_slot[slot]
                assert status["node"] == cl.name(i), (slot, status)
                b = status["ballot"]
                assert labels["shoal.ballot"] == f"{b['round']}/{b['coordinator_run']}", (slot, labels, b)
                assert labels["shoal.spec_hash"]
    finally:
        cl.stop_job("web")


def test_power_cut_moves_its_replicas_each_slot_once(cluster):
    cl = cluster
    cl.ensure_all_up()
    cl.submit(job("moved", 10))
    try:
        cl.wait(lambda: cl.each_slot_once("moved", 10), 60, "10 containers, each slot once")
        per_node = collections.Counter(c["node"] for c in cl.containers("moved"))
        victim, lost = per_node.most_common(1)[0]
        others = [i for i in cl.nodes if i != victim]
        lost_slots = {c["Labels"]["shoal.slot"] for c in cl.containers("moved", [victim])}

        t0 = time.monotonic()
        cl.bed.run("kill", str(victim))
        cl.wait(lambda: cl.each_slot_once("moved", 10, others), 60,
                f"the {lost} slots of {cl.name(victim)} to run on the others, each slot once")
        took = time.monotonic() - t0
        print(f"power cut on {cl.name(victim)}: its {lost} replicas ran elsewhere {took:.1f} s later")
        # and it stays that way: no slot started twice a moment later
        time.sleep(2)
        with cl.explained():
            assert cl.each_slot_once("moved", 10, others)
            assert {c["Labels"]["shoal.slot"] for c in cl.containers("moved", others)} >= lost_slots

        # the node comes back (a reboot): its stale containers go, nothing runs twice
        cl.bed.run("start", str(victim))
        cl.wait_all_up()
        cl.wait(lambda: not [c for c in cl.containers("moved", [victim], all=True) if c["State"] != "running"],
                60, f"{cl.name(victim)}'s stale containers removed")
        cl.wait(lambda: cl.each_slot_once("moved", 10), 30, "each slot once on all 5 nodes")
    finally:
        cl.stop_job("moved")


def test_partition_both_sides_run_every_slot_then_heal_keeps_one(cluster):
    cl = cluster
    cl.ensure_all_up()
    cl.submit(job("split", 10))
    a, b = [1, 2], [3, 4, 5]
    sampler = None
    try:
        cl.wait(lambda: cl.each_slot_once("split", 10), 60, "10 containers, each slot once")
        cl.bed.run("partition", "1,2|3,4,5")
        try:
            # each side has 4 or 6 cores for 10 x 0.1: it can hold every slot, so it runs every slot
            cl.wait(lambda: cl.each_slot_once("split", 10, a) and cl.each_slot_once("split", 10, b), 60,
                    "both sides of the partition to run every slot once")
            side = {tuple(a): {c["Labels"]["shoal.slot"]: (c["node"], c["Id"]) for c in cl.containers("split", a)},
                    tuple(b): {c["Labels"]["shoal.slot"]: (c["node"], c["Id"]) for c in cl.containers("split", b)}}
            sampler = Sampler(cl, "split", sorted(side[tuple(a)]))
        finally:
            cl.bed.run("heal")
        t0 = time.monotonic()
        cl.wait(lambda: cl.each_slot_once("split", 10), 60, "each slot exactly once after the heal")
        time.sleep(2)
        cl.wait(lambda: cl.each_slot_once("split", 10), 30, "each slot exactly once, still")
        print(f"healed: one copy of each slot {time.monotonic() - t0:.1f} s after the heal")
        sampler.stop()
        print(f"merge: {sampler.sweeps} sweeps of every dockerd, most slots running nowhere: {sampler.max_gap}")
        assert sampler.sweeps >= 10 and sampler.max_gap == 0, sampler.explain()
        with cl.explained():
            running = {c["Labels"]["shoal.slot"]: (c["node"], c["Id"]) for c in cl.containers("split")}
            fresh = []
            for slot, survivor in running.items():
                copies = [side[tuple(a)][slot], side[tuple(b)][slot]]
                if survivor not in copies:      # re-placed once more while the two sides merged
                    fresh.append(slot)
                for node, cid in copies:
                    if (node, cid) != survivor:
                        info = cl.inspect(node, cid)
                        assert info is None or not info["State"]["Running"], \
                            f"{slot}: the copy {cid[:12]} on {cl.name(node)} still runs"
            print(f"after the heal: {10 - len(fresh)} slots kept one side's copy, "
                  f"{len(fresh)} got a new container ({', '.join(sorted(fresh)) or '-'})")
            for slot in fresh:
                print(cl.log_lines(slot))
    finally:
        if sampler is not None:
            sampler.stop()
        cl.bed.run("heal")
        cl.stop_job("split")


def docker_time(stamp: str) -> datetime.datetime:
    """Docker's RFC 3339 timestamp with nanoseconds (trailing zeros trimmed), UTC."""
    whole, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.datetime.fromisoformat(whole) + datetime.timedelta(microseconds=int((frac + "000000")[:6]))


FLAP = ("n=$(cat /tmp/n 2>/dev/null || echo 0); n=$((n+1)); echo $n >/tmp/n; echo run $n; "
        "if [ $n -ge 3 ]; then exec sleep 600; fi; exit 1")


def test_exited_containers_follow_their_restart_policy(cluster):
    """on-failure: a container that fails twice and then stays up is restarted
    in place (same container, its file system kept: the count goes on) and
    stays on its node; never: an exited container is left exited."""
    cl = cluster
    cl.ensure_all_up()
    cl.submit(job("flap", 1, command=["sh", "-c", FLAP],
                  restart={"policy": "on-failure", "max_attempts": 3, "backoff_s": 0.2}))
    cl.submit(job("once", 1, command=["sh", "-c", "echo once; exit 3"], restart={"policy": "never"}))
    try:
        first = cl.wait(lambda: cl.containers("flap", all=True), 60, "flap's container")[0]
        node, cid = first["node"], first["Id"]

        def logs(i, c):
            return cl.docker[i].logs(c, timestamps=True).decode().splitlines()

        # Runs 1 and 2 exit 1; run 3 stays up.  (A restart can come as late as
        # the runtime's 5 s resync rather than right after its backoff:
        # dockerd 20.10 still lists a container as running when it sends its
        # `die` event, so the pass that event triggers sees nothing to do.)
        cl.wait(lambda: len(logs(node, cid)) >= 3 and cl.inspect(node, cid)["State"]["Running"], 60,
                "flap's third run, up")
        time.sleep(1)
        with cl.explained():
            out = logs(node, cid)
            assert [line.split(" ", 1)[1] for line in out] == ["run 1", "run 2", "run 3"], out
            stamps = [line.split(" ", 1)[0] for line in out]
            print("flap runs at", stamps)
            t = [docker_time(x) for x in stamps]
            gaps = [(b - a).total_seconds() for a, b in zip(t, t[1:])]
            assert gaps[0] >= 0.2 and gaps[1] >= 0.4, gaps    # backoff_s 0.2, doubled
            (c,) = cl.containers("flap", all=True)
            assert (c["node"], c["Id"]) == (node, cid)          # in place, on the same node
            assert cl.inspect(node, cid)["State"]["Running"]

            once = cl.containers("once", all=True)
            assert len(once) == 1, once
            info = cl.inspect(once[0]["node"], once[0]["Id"])
            assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 3
            assert cl.docker[once[0]["node"]].logs(once[0]["Id"]).decode().split() == ["once"]
    finally:
        cl.stop_job("flap")
        cl.stop_job("once")


CRASHY = "if [ -f /tmp/bad ]; then echo bad; exit 1; fi; exec sleep 600"


def test_a_crash_loop_moves_to_another_node_and_the_failed_node_declines(cluster):
    """The container runs until it is made to fail on every start (a file in
    its own file system), so it crash-loops on that node only: the runtime
    gives up there, the slot is re-auctioned, the node declines ("recently
    failed here") and the slot runs on another node, once."""
    cl = cluster
    cl.ensure_all_up()
    cl.submit(job("crashy", 1, command=["sh", "-c", CRASHY],
                  restart={"policy": "always", "backoff_s": 0.1, "max_backoff_s": 0.5}))
    try:
        first = cl.wait(lambda: [c for c in cl.containers("crashy") if c["State"] == "running"], 60,
                        "crashy running")[0]
        bad, cid = first["node"], first["Id"]
        api = cl.docker[bad]
        api.exec_start(api.exec_create(cid, ["touch", "/tmp/bad"])["Id"])
        api.kill(cid)
        t0 = time.monotonic()

        def moved():
            cs = cl.containers("crashy", all=True)
            return (len(cs) == 1 and cs[0]["node"] != bad and cs[0]["State"] == "running") and cs[0]
        # five failures in a row on `bad` (runtime's crash_loop_failures), then a new auction
        now = cl.wait(moved, 120, f"crashy to run once, on a node other than {cl.name(bad)}")
        print(f"crashy gave up on {cl.name(bad)} and runs on {cl.name(now['node'])} "
              f"{time.monotonic() - t0:.1f} s after the first failure")
        detail = cl.wait(lambda: (d := cl.api("GET", "/v1/jobs/crashy"))["slots"][0]["node"] == cl.name(now["node"])
                         and d, 30, "the job status to name the new node")
        with cl.explained():
            assert detail["slots"][0]["state"] == "placed"

            def declined():
                for i in cl.live():
                    for ev in cl.events(i):
                        if (ev.get("event") == "auction_closed" and ev.get("job") == "crashy"
                                and "recently failed here" in (ev.get("declines") or {}).get(cl.name(bad), "")):
                            return ev
                return None
            ev = declined()
            assert ev is not None, f"no auction for crashy where {cl.name(bad)} declined as recently failed"
            assert ev["awarded"] == {"0": cl.name(now["node"])}, ev
            print("the re-auction:", ev)
    finally:
        cl.stop_job("crashy")
