"""`shoal logs JOB` without a slot: each replica's lines prefixed, never mixed (node.cli.logs_command)."""

from __future__ import annotations

import io
import threading

from node.cli.logs_command import MAX_PARTIAL_LINE_BYTES, Prefixed


def test_lines_split_across_chunks_are_written_whole_with_their_prefix():
    out, lock = io.BytesIO(), threading.Lock()
    a, b = Prefixed("web/0@n1 | ", out, lock), Prefixed("web/1@n2 | ", out, lock)
    a.write(b"hel")
    b.write(b"one\ntw")
    a.write(b"lo\nwor")
    b.write(b"o\n")
    a.write(b"ld")
    a.close()
    b.close()
    assert out.getvalue().decode().splitlines() == ["web/1@n2 | one", "web/0@n1 | hello", "web/1@n2 | two",
                                                    "web/0@n1 | world"]


def test_a_line_without_end_is_written_in_bounded_pieces():
    out = io.BytesIO()
    p = Prefixed("x | ", out, threading.Lock())
    p.write(b"y" * (MAX_PARTIAL_LINE_BYTES + 10))
    assert out.getvalue() == b"x | " + b"y" * (MAX_PARTIAL_LINE_BYTES + 10) + b"\n"


def test_since_takes_a_span_or_a_time():
    from datetime import datetime

    from node.cli.logs_command import since_seconds

    assert since_seconds("90s") == 90
    assert since_seconds("1h30m") == 5400
    assert since_seconds("2d") == 172800
    assert since_seconds("250ms") == 0.25
    now = datetime.fromisoformat("2026-12-07T22:10:00+00:00").timestamp()
    assert since_seconds("2026-12-07T22:00:00Z", now=now) == 600
    assert since_seconds("2026-12-07T23:00:00+01:00", now=now) == 600
    assert since_seconds("2026-12-08T00:00:00Z", now=now) == 0          # the future: everything from now
    local = datetime(2026, 12, 7, 12, 0).timestamp()                     # no zone: the local one
    assert since_seconds("2026-12-07 11:59", now=local) == 60
    for bad in ("", "10 minutes", "yesterday", "5x"):
        try:
            since_seconds(bad)
        except ValueError as e:
            assert "--since" in str(e) and "10m" in str(e)
        else:
            raise AssertionError(bad)
