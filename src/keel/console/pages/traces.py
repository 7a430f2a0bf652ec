"""Traces: the filtered, cursor-paged list (newest or oldest first, by the time-ordered id:
a keyset page, read from a bounded probe of the window), and one
trace's page: its messages and output, the attempt and fallback timeline, tokens and cost,
prompt and route, policy verdicts with their findings, the review, feedback and scores;
and "add to dataset"."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from keel.console import queries
from keel.console.content import choices, messages
from keel.console.web import Action, Page, View, action, choice_param, cursor_param, page
from keel.errors import InvalidRequest, NotFound
from keel.evals.datasets import Datasets
from keel.store.feedback import list_feedback
from keel.store.traces import TraceFilter, get_trace, list_traces

PAGES: list[Page] = []
ACTIONS: list[Action] = []

PAGE_SIZES = (25, 50, 100, 200)
STATUSES = ("ok", "error")
ORDERS = ("newest", "oldest")  # by the time-ordered id, so a cursor pages either way
MAX_TEXT = 128


def _status(view: View) -> str | None:
    raw = (view.request.query_params.get("status") or "").strip()
    if not raw:
        return None
    if raw in STATUSES or (raw.isascii() and raw.isdigit() and 100 <= int(raw) <= 599):
        return raw
    raise InvalidRequest(f"unknown status '{raw[:16]}'; use ok, error or an HTTP code such as "
                         "429", param="status")


def _text(view: View, name: str) -> str | None:
    raw = (view.request.query_params.get(name) or "").strip()
    if len(raw) > MAX_TEXT or not raw.isprintable():
        raise InvalidRequest(f"'{name}' must be printable text of at most {MAX_TEXT} "
                             "characters", param=name)
    return raw or None


def _size(view: View) -> int:
    raw = view.request.query_params.get("limit") or "50"
    if not (raw.isascii() and raw.isdigit()) or int(raw) not in PAGE_SIZES:
        raise InvalidRequest(f"'limit' is one of {', '.join(map(str, PAGE_SIZES))}",
                             param="limit")
    return int(raw)


@page(PAGES, "/traces", "Traces", "viewer")
async def trace_list(view: View) -> Response:
    since, until = view.filters.window()
    f = view.filters
    status = _status(view)
    flt = TraceFilter(feature=f.feature, team=f.team, model=f.model, status=status,
                      request_id=_text(view, "request_id"), since=since, until=until)
    limit = _size(view)
    cursor = cursor_param(view)
    order = choice_param(view, "order", ORDERS)
    rows, next_cursor = await list_traces(view.state.store, flt, limit=limit, cursor=cursor,
                                          oldest_first=order == "oldest")
    kept = {"status": status, "limit": None if limit == 50 else str(limit),
            "order": None if order == ORDERS[0] else order}
    extra = [(k, v) for k, v in kept.items() if v]
    more = view.link("/traces", cursor=next_cursor, **kept) if next_cursor else None
    first = view.link("/traces", **kept) if cursor else None
    return view.render("traces.html", title="Traces", rows=rows, status_filter=status,
                       more=more, first=first, extra_query=extra, statuses=STATUSES,
                       limit=limit, sizes=PAGE_SIZES, order=order, orders=ORDERS)



async def _trace(view: View, trace_id: str) -> dict[str, Any]:
    if not (trace_id.isascii() and trace_id.isalnum() and len(trace_id) <= 32):
        raise NotFound(f"no trace with id '{trace_id[:40]}'")
    row = view.state.writer.unstored_row(trace_id) or await get_trace(view.state.store,
                                                                        trace_id)
    scope = view.team_scope
    if row is None or (scope is not None and row.get("team") != scope):
        raise NotFound(f"no trace with id '{trace_id}'")
    return row


@page(PAGES, "/traces/{trace_id}", "Trace", "viewer", nav=False)
async def trace_page(view: View) -> Response:
    trace_id = str(view.request.path_params["trace_id"])
    row = await _trace(view, trace_id)
    feedback = await list_feedback(view.state.store, trace_id)
    reviews = await queries.reviews_of(view.state.store, trace_id)
    return view.render("trace.html", title=f"Trace {trace_id}", t=row,
                       messages=messages(row.get("request")),
                       output=choices(row.get("response")), feedback=feedback,
                       reviews=reviews, attempts=row.get("attempt_log") or [],
                       findings=row.get("guard") or [], filterbar=False)


@action(ACTIONS, "/traces/{trace_id}/dataset", "operator")
async def add_to_dataset(view: View) -> Response:
    trace_id = str(view.request.path_params["trace_id"])
    await _trace(view, trace_id)
    name = (view.form.get("dataset") or "").strip()
    if not name or len(name) > 128 or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidRequest("name the dataset: letters, digits, '-', '_' or '.', at most 128 "
                             "characters", param="dataset")
    version, _ = await Datasets(view.state.store).add_trace_ids(
        name, [trace_id], message=f"added from the console by {view.who}")
    return view.back(f"/traces/{trace_id}", f"added to dataset {name} (version {version})")
