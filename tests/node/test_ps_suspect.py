"""`shoal ps` lists a suspect member's containers too, marked so.

A member suspected for a moment (a lost ping on a loaded machine) still runs
its replicas; `shoal ps` used to ask only the members it held alive, so that
node's containers vanished from the listing for that moment (a CI run caught
it in tests/node/test_progress.py).  A failed or departed one is not asked.
"""

from __future__ import annotations

from gossip.events import Address, MemberInfo, MemberState
from node.agent.tags import encode_tags
from node.api.routes_jobs import containers_peers
from node.cli.nodes import format_ps


def member(name: str, state: MemberState) -> MemberInfo:
    return MemberInfo(name, Address("127.0.0.1", 7946), state, 1, encode_tags({"api": "127.0.0.1:7980"}),
                      (1, 5, 2, 0, 0, 0), 0.0)


def test_alive_and_suspect_members_are_asked_the_rest_not():
    members = [member("me", MemberState.ALIVE), member("a", MemberState.ALIVE), member("s", MemberState.SUSPECT),
               member("d", MemberState.DEAD), member("l", MemberState.LEFT)]
    peers = containers_peers(members, "me", 10.0)
    assert [(p["node"], p["status"]) for p in peers] == [("a", "alive"), ("s", "suspect")]
    assert peers[1]["api"] == "127.0.0.1:7980"


def test_a_suspect_nodes_containers_are_listed_marked():
    text = format_ps([{"node": "a", "status": "alive", "containers": [{"slot": "web/0", "state": "running"}]},
                      {"node": "s", "status": "suspect", "containers": [{"slot": "web/1", "state": "running"}]}])
    lines = text.splitlines()
    assert lines[1].startswith("a ") and "web/0" in lines[1]
    assert lines[2].startswith("s (suspect)") and "web/1" in lines[2]
