"""The server-sent events parser: the events of a stream do not depend on how its bytes were
cut into reads, and are those of reading it line by line (lines end at \\n, a trailing \\r
is dropped, a blank line ends an event, data lines are joined, comments ignored)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.errors import UpstreamError
from keel.gateway.providers.http import MAX_SSE_LINE, SSEParser


def line_by_line(stream: bytes) -> list[tuple[str | None, bytes]]:
    """The events of ``stream`` read one line at a time (the way a line reader does)."""
    out: list[tuple[str | None, bytes]] = []
    event: str | None = None
    data: list[bytes] = []
    parts = stream.split(b"\n")
    for line in [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else []):
        line = line.rstrip(b"\r\n")
        if not line:
            if data:
                out.append((event, b"\n".join(data)))
            event, data = None, []
        elif line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode()
    if data:
        out.append((event, b"\n".join(data)))
    return out


def parse(pieces: list[bytes]) -> list[tuple[str | None, bytes]]:
    parser = SSEParser("up")
    out = [e for piece in pieces for e in parser.feed(piece)]
    return out + parser.close()


LINES = st.sampled_from([b"data: {\"a\":1}", b"data:{}", b"data:  x", b"data:", b"event: ping",
                         b"event:delta ", b": comment", b"id: 7", b"retry: 10", b"", b"\r",
                         b"data: [DONE]", b"data: two\r", b"data: a:b"])
ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\r\n\r\n"])


@given(st.lists(st.tuples(LINES, ENDINGS), max_size=30), st.booleans(),
       st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_events_are_those_of_reading_line_by_line_however_the_bytes_are_cut(
        lines: list[tuple[bytes, bytes]], unterminated: bool, cuts: list[int]) -> None:
    stream = b"".join(text + end for text, end in lines)
    if unterminated:
        stream += b"data: tail"
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert parse(pieces) == line_by_line(stream)


def test_the_usual_stream_gives_one_event_per_chunk() -> None:
    stream = b'data: {"n":1}\n\ndata: {"n":2}\n\ndata: [DONE]\n\n'
    assert parse([stream]) == [(None, b'{"n":1}'), (None, b'{"n":2}'), (None, b"[DONE]")]
    assert parse([stream[:9], stream[9:20], stream[20:]]) == parse([stream])


def test_a_line_too_long_is_an_upstream_error_not_a_memory_leak() -> None:
    parser = SSEParser("up")
    with pytest.raises(UpstreamError) as info:
        for _ in range(MAX_SSE_LINE // 1000 + 2):
            parser.feed(b"x" * 1000)
    assert info.value.code == "upstream_bad_response" and "'up'" in info.value.message
    assert parse([b"data: " + b"y" * (MAX_SSE_LINE - 10) + b"\n\n"])[0][1].startswith(b"yyy")
    with pytest.raises(UpstreamError):
        parse([b"data: " + b"y" * MAX_SSE_LINE + b"\n\n"])
