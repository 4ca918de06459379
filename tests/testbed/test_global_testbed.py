"""A global job with a volume on the testbed: real agents, real dockerds, a power cut.

What an operator of Swarm's global services expects (auction.global_jobs,
auction.volumes): every node runs one replica; a node whose power is cut
takes its replica with it, and nothing is started elsewhere (the other
nodes' containers are not even restarted); when it is back it runs its own
slot again, and the data its replica wrote to the slot's volume before the
power cut is still there.  Root only (skipped otherwise); the session's
5-node testbed (conftest.py).
"""

from __future__ import annotations

import os
import time

import pytest

from testbed_cluster import SLEEP

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="scripts/testbed needs root"), pytest.mark.slow]

JOB = "nodelog"
SPEC = {"name": JOB, "image": "shoal-demo:latest", "mode": "global", "cpu": 0.1, "memory": "16MiB",
        "command": ["sh", "-c", f"echo started >> /data/starts && exec {' '.join(SLEEP)}"],
        "volumes": {"data": {"target": "/data"}}}


def running(cl, nodes=None) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {i: [] for i in (nodes if nodes is not None else cl.live())}
    for c in cl.containers(JOB, nodes):
        if c["State"] == "running":
            out[c["node"]].append(c)
    return out


def one_each(cl, nodes) -> bool:
    by_node = running(cl, nodes)
    slots = [c["Labels"]["shoal.slot"] for cs in by_node.values() for c in cs]
    return all(len(cs) == 1 for cs in by_node.values()) and len(set(slots)) == len(slots)


def in_container(cl, i: int, cid: str, cmd: list[str]) -> str:
    api = cl.docker[i]
    return api.exec_start(api.exec_create(cid, cmd)).decode()


def test_a_global_job_runs_on_every_node_and_a_power_cut_moves_nothing(cluster):
    cl = cluster
    cl.ensure_all_up()
    nodes = sorted(cl.nodes)
    cl.submit(SPEC)
    victim = nodes[-1]
    try:
        cl.wait(lambda: one_each(cl, nodes), 60, f"one {JOB} container on each of the {len(nodes)} nodes")
        before = {i: cs[0]["Id"] for i, cs in running(cl, nodes).items()}
        [victims] = running(cl, [victim]).values()
        slot = victims[0]["Labels"]["shoal.slot"]

        cl.bed.run("kill", str(victim))
        others = [i for i in nodes if i != victim]
        time.sleep(8)       # far past the victim's death on the local profile (about 1 s)
        with cl.explained():
            assert {i: cs[0]["Id"] for i, cs in running(cl, others).items() if cs} == \
                {i: before[i] for i in others}, "the other nodes' replicas ran on, untouched, and no more of them"
            assert one_each(cl, others)

        cl.bed.run("start", str(victim))
        cl.wait_all_up()
        cl.wait(lambda: len(running(cl, [victim])[victim]) == 1, 60, f"{cl.name(victim)} to run its replica again")
        [again] = running(cl, [victim])[victim]
        with cl.explained():
            assert again["Labels"]["shoal.slot"] == slot            # its own slot
            assert one_each(cl, nodes)
            # What its replica wrote before the power cut is in the slot's volume still.
            starts = in_container(cl, victim, again["Id"], ["cat", "/data/starts"]).split()
            assert len(starts) >= 2 and set(starts) == {"started"}, starts
    finally:
        cl.ensure_all_up()
        cl.stop_job(JOB)
        for i in cl.nodes:      # the slots' volumes outlive the job, by design: ours to remove
            for v in (cl.docker[i].volumes(filters={"label": f"shoal.job={JOB}"}) or {}).get("Volumes") or []:
                cl.docker[i].remove_volume(v["Name"], force=True)
