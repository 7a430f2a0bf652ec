"""A trace's row in the forms the trace writer handles, built once and read back without I/O.

``submit`` turns a trace into its row once (``row_of``: the trace values, fitted to their
columns, and the payload values), and an ``Entry`` carries that row to the store together
with the trace itself and the journal segment that holds its line. The journal's lines are
that same row (``[values, payload]``) under ``JOURNAL_HEADER``, which names the columns.

The way back: ``stored_form`` is an entry as ``store.traces.get_trace`` returns it once
stored (for a lookup before it is), and ``trace_of`` rebuilds a ``Trace`` from a row (a
replayed trace has no Trace object left to hand on). ``bare_row`` is the numeric row of a
trace whose full row could not be built.
"""

from __future__ import annotations

from typing import Any

import orjson

from keel.store.traces import TRACE_COLUMNS, payload_values, trace_values
from keel.telemetry.journal import Segment
from keel.types import Trace, Usage

Row = tuple[tuple[Any, ...], tuple[Any, ...] | None]  # (trace values, payload values)

JOURNAL_HEADER = orjson.dumps({"keel_journal": 1, "columns": TRACE_COLUMNS}) + b"\n"
JSON_COLUMNS = frozenset(TRACE_COLUMNS.index(c) for c in ("tags", "attempt_log", "guard"))


class Entry:
    """One trace on its way to the store: its row, and where else it lives meanwhile."""

    __slots__ = ("payload", "segment", "trace", "values")

    def __init__(self, values: tuple[Any, ...], payload: tuple[Any, ...] | None,
                 trace: Trace | None, segment: Segment | None) -> None:
        self.values = values
        self.payload = payload
        self.trace = trace
        self.segment = segment


def row_of(trace: Trace) -> Row:
    return trace_values(trace), payload_values(trace)


def bare_row(trace: Trace) -> tuple[Any, ...]:
    """The numeric row of a trace whose full row could not be built."""
    blank = Trace(id=trace.id, start_time=trace.start_time, endpoint=str(trace.endpoint),
                  status=trace.status if isinstance(trace.status, int) else 500,
                  error_type="unstorable_trace")
    return trace_values(blank)


def stored_form(entry: Entry) -> dict[str, Any]:
    """An entry's row as the store reads it back (``get_trace``): JSON columns and the
    request and response parsed."""
    row = dict(zip(TRACE_COLUMNS, entry.values, strict=True))
    for i in JSON_COLUMNS:
        name = TRACE_COLUMNS[i]
        if isinstance(row[name], str):
            row[name] = orjson.loads(row[name])
    payload = entry.payload
    row["request"] = orjson.loads(payload[1]) if payload and payload[1] else None
    row["response"] = orjson.loads(payload[2]) if payload and payload[2] else None
    return row


def trace_of(values: tuple[Any, ...], payload: tuple[Any, ...] | None) -> Trace:
    """A trace rebuilt from its row (replayed traces have no Trace object left to export)."""
    row = dict(zip(TRACE_COLUMNS, values, strict=True))
    usage = Usage(**{k: int(row.get(k) or 0) for k in (
        "input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens",
        "reasoning_tokens")})
    fields = {k: v for k, v in row.items() if k in _TRACE_FIELDS and v is not None}
    for k in ("tags", "attempt_log", "guard"):
        if isinstance(fields.get(k), str):
            fields[k] = orjson.loads(fields[k])
    t = Trace(**fields, usage=usage)
    if payload:
        t.request_body = orjson.loads(payload[1]) if payload[1] else None
        t.response_body = orjson.loads(payload[2]) if payload[2] else None
    return t


_TRACE_FIELDS = frozenset(Trace.__dataclass_fields__) - {"usage", "mono_start"}
