"""The durable claim store: claims survive a reopen, writes keep the ballot
order, only released claims are collected, and damage is reported, not used."""

from __future__ import annotations

import sqlite3

from auction.claims import Ballot, Claim
from auction.resources import Resources
from node.state.claimstore import DB_NAME, ClaimStore
from node.state.persist import DB_NAME as JOBS_DB
from node.state.statedir import NODE_STATE_FILE, StateDir, StoreOp


def claim(slot: str, rnd: int, node: str, released: bool = False, coord: str = "c1") -> Claim:
    return Claim(slot, Ballot(rnd, coord), node, released, "h" * 64, Resources(500, 128 << 20))


def reopen(state_dir):
    store, report = ClaimStore.open(state_dir)
    store.close()
    return {c.name: c for c in store.loaded}, report


def test_claims_survive_reopen_and_newer_ballots_win(tmp_path):
    store, report = ClaimStore.open(tmp_path)
    assert report.created and report.clean
    with store:
        assert store.write([claim("web/0", 1, "a"), claim("web/1", 1, "b")]) == 2
        assert store.write([claim("web/0", 2, "c")]) == 1
        assert store.write([claim("web/0", 1, "z")]) == 0  # an older ballot never rolls back
        assert len(store) == 2
    loaded, report = reopen(tmp_path)
    assert report.clean and not report.created
    assert loaded == {"web/0": claim("web/0", 2, "c"), "web/1": claim("web/1", 1, "b")}


def test_forget_deletes_only_released_claims(tmp_path):
    store, _ = ClaimStore.open(tmp_path)
    with store:
        store.write([claim("web/0", 3, "a", released=True), claim("web/1", 1, "b")])
        assert store.forget(["web/0", "web/1", "nope/0"]) == 1
        assert len(store) == 1
    loaded, _ = reopen(tmp_path)
    assert set(loaded) == {"web/1"}


def test_a_garbage_file_is_moved_aside_and_reported(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"this is not a database at all" * 100)
    store, report = ClaimStore.open(tmp_path)
    store.close()
    assert store.loaded == [] and report.corrupt_file and report.moved_to.name == f"{DB_NAME}.corrupt-1"
    assert any("unusable" in p for p in report.problems)
    assert reopen(tmp_path)[1].clean  # the fresh file is fine


def test_a_damaged_row_is_dropped_and_reported(tmp_path):
    store, _ = ClaimStore.open(tmp_path)
    with store:
        store.write([claim("web/0", 1, "a"), claim("web/1", 1, "b")])
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE claims SET body = x'00' || substr(body, 2) WHERE name = 'web/1'")
    conn.commit()
    conn.close()
    loaded, report = reopen(tmp_path)
    assert set(loaded) == {"web/0"} and report.bad_rows == 1
    assert any("web/1" in p and "checksum" in p for p in report.problems)
    assert reopen(tmp_path)[1].clean  # the bad row was deleted


async def test_state_dir_opens_both_stores_and_the_drain_flag(tmp_path):
    state = StateDir(tmp_path)
    loaded = await state.open()
    assert loaded.entries == [] and loaded.claims == [] and not loaded.drained and loaded.problems == []
    await state.apply(StoreOp("claims", (claim("web/0", 1, "a"),)))
    await state.write_node_state(drained=True)
    state.close()
    (tmp_path / JOBS_DB).write_bytes(b"garbage" * 1000)
    state = StateDir(tmp_path)
    loaded = await state.open()
    state.close()
    assert loaded.drained and [c.name for c in loaded.claims] == ["web/0"]
    assert [store for store, _ in loaded.problems] == ["jobs"]
    (tmp_path / NODE_STATE_FILE).write_text("{not json")
    state = StateDir(tmp_path)
    loaded = await state.open()
    state.close()
    assert not loaded.drained and [store for store, _ in loaded.problems] == ["node"]


async def test_without_a_state_dir_nothing_is_written(tmp_path):
    state = StateDir(None)
    assert not state.durable
    loaded = await state.open()
    assert loaded.entries == [] and loaded.problems == []
    await state.apply(StoreOp("claims", (claim("web/0", 1, "a"),)))
    await state.write_node_state(drained=True)
    state.close()
    assert list(tmp_path.iterdir()) == []

