"""Which "running" a rollout trusts: the claims fingerprint in a status record
(node.core.rollout_link, node.core.status)."""

from __future__ import annotations

import msgpack

from auction.claims import Ballot, Claim
from auction.resources import Resources
from gossip.swim import PAYLOAD_MAX_BYTES
from node.core.rollout_link import current, running_lookup, stamped
from node.core.status import NodeStatus, RuntimeSummary

CAP = Resources(2000, 2 << 30, 0)


def claim(index, rnd, node="n1"):
    return Claim(f"web/{index}", Ballot(rnd, "c#1"), node, False, "h", Resources(100, 1 << 26))


def record(summary, address=""):
    return NodeStatus("n1", CAP, Resources(0, 0, 0), runtime=summary, address=address)


SUMMARY = RuntimeSummary.from_states({"web/0": ("running", ""), "web/1": ("running", ""), "web/2": ("failed", "x")})


def test_the_fingerprint_travels_with_the_summary_and_older_records_stay_the_same():
    holder = {"web/0": claim(0, 1), "web/1": claim(1, 3)}
    s = stamped(SUMMARY, "n1", holder.get)
    assert set(s.ballots) == {"web"}
    assert NodeStatus.decode(record(s).encode()).runtime == s
    assert NodeStatus.decode(record(s, "10.0.0.1").encode()).runtime == s
    # Without a fingerprint the record encodes exactly as before (no trailing fields).
    assert len(msgpack.unpackb(record(SUMMARY).encode(), raw=False)) == 13
    # An agent that does not know the field reads the rest of the record.
    raw = msgpack.unpackb(record(s).encode(), raw=False)
    assert NodeStatus.decode(msgpack.packb(raw[:13], use_bin_type=True)).runtime == SUMMARY
    # Garbage there is dropped, not fatal.
    raw[14] = ["x"]
    assert NodeStatus.decode(msgpack.packb(raw, use_bin_type=True)).runtime.ballots == {}
    assert len(record(s).fit(PAYLOAD_MAX_BYTES).encode()) <= PAYLOAD_MAX_BYTES


def test_a_record_about_other_claims_is_not_taken_for_running():
    at_holder = {"web/0": claim(0, 1), "web/1": claim(1, 1)}
    published = record(stamped(SUMMARY, "n1", at_holder.get))
    # We already hold the holder's newer claim for web/1 (it moved it to a new
    # version); its record is from before: not evidence that the new one runs.
    here = {"web/0": claim(0, 1), "web/1": claim(1, 2)}
    lookup = running_lookup({"n1": published}, "me", None, here.get)
    assert lookup("n1", "web", 1) == "running-unverified"     # not proof; auction.rollout decides
    same = running_lookup({"n1": published}, "me", None, at_holder.get)
    assert (same("n1", "web", 1), same("n1", "web", 2), same("n1", "web", 3)) == ("running", "failed", "starting")
    # A record with no summary (an older agent, or from before its runtime
    # first reported) is no word that anything runs; nor is no record.
    bare = running_lookup({"n1": record(None)}, "me", None, here.get)
    assert (bare("n1", "web", 1), bare("n2", "web", 1)) == ("unknown", "unknown")


def test_our_own_slots_are_what_our_runtime_says_not_the_record_cut_to_fit():
    lookup = running_lookup({}, "n1", SUMMARY, {}.get)
    assert (lookup("n1", "web", 0), lookup("n1", "web", 2), lookup("n1", "db", 0)) == ("running", "failed", "starting")
    assert running_lookup({}, "n1", None, {}.get)("n1", "web", 0) == "running"      # the fake runtime


def test_a_record_cut_to_fit_keeps_the_jobs_being_rolled_out():
    states = {f"job-with-a-longish-name-{j:03d}/{i}": ("failed", "exited 137 after an OOM kill, 4 restarts")
              for j in range(40) for i in range(3)}
    big = record(RuntimeSummary.from_states(states))
    rolling = "job-with-a-longish-name-039"                 # the last name: dropped first without `keep`
    assert rolling not in big.fit(PAYLOAD_MAX_BYTES).runtime.jobs
    fitted = big.fit(PAYLOAD_MAX_BYTES, keep={rolling})
    assert rolling in fitted.runtime.jobs and len(fitted.encode()) <= PAYLOAD_MAX_BYTES


def test_a_running_report_about_the_claim_before_a_move_is_read_as_starting():
    # The holder moved web/1 to a new version (claim round 1 -> 2); its
    # runtime's last report is from before it took the new claim: the
    # container running there is the old one.
    reported = RuntimeSummary.from_states({"web/0": ("running", ""), "web/1": ("running", "")},
                                          {"web/0": 1, "web/1": 1})
    holder = {"web/0": claim(0, 1), "web/1": claim(1, 2)}
    published = stamped(reported, "n1", holder.get)
    assert published.jobs["web"][0] == (0,)                    # web/1 is not listed running
    # Every agent holding the new claim reads it as starting, not as running
    # under the new claim (which would start its min_healthy_s clock).
    lookup = running_lookup({"n1": record(published)}, "me", None, holder.get)
    assert (lookup("n1", "web", 0), lookup("n1", "web", 1)) == ("running", "starting")
    # So does the holder itself, on its runtime's own word.
    own = running_lookup({}, "n1", current(reported, "n1", holder.get), holder.get)
    assert (own("n1", "web", 0), own("n1", "web", 1)) == ("running", "starting")
    # Once the runtime reports the new claim's container running, it is.
    caught_up = RuntimeSummary.from_states({"web/0": ("running", ""), "web/1": ("running", "")},
                                           {"web/0": 1, "web/1": 2})
    assert stamped(caught_up, "n1", holder.get).jobs["web"][0] == (0, 1)
    # A runtime that does not say which claims its states are about is taken at its word.
    assert stamped(SUMMARY, "n1", holder.get).jobs == SUMMARY.jobs
