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
