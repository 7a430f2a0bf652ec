"""Feedback on traces and business outcomes: validation, rework, permissions, recording.

Feedback attaches to one trace: thumbs, an outcome (accepted / edited / rejected /
escalated), rework (how much of the answer a person had to change), a named score, a
critical error flag, a comment. It is rolled up at the time of the trace, under the trace's
feature, team, model and prompt, so quality can be read next to cost and latency.

Outcomes are business value events (``ticket_resolved``) per feature, optionally linked to
the traces that produced them; a feature's value unit is one outcome name.

Both accept a client id, scoped to the team the item is recorded for: sending the same item
again is a no-op (200 with the stored item), sending different content under an id the team
used is refused (409, naming the fields that differ). Another team's use of the same id is
another record, and nothing of it is shown.

Tenancy: which teams a caller reads is ``Principal.visible_team()`` (its own team, or every
team for the master key, admin keys and org-wide role keys); :func:`may_see` and
:func:`team_filter` are that rule for one trace and for a filter, and every ``/api`` reader
uses them. A trace (or review) of a team the caller may not read is as unknown as a missing
one (the same 404, word for word), so an id tells a caller nothing about other teams'
traffic; a filter naming another team is a 403 ``wrong_team``, whatever the team (so it
tells nothing either).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from typing import Any

from rapidfuzz.distance import Levenshtein

from keel.errors import InvalidRequest, NotFound, PermissionDenied, excerpt
from keel.store import Store
from keel.store import feedback as q
from keel.store.rollups import prompt_label
from keel.text import answer_text
from keel.types import JSON, Principal, new_trace_id

SOURCES = ("user", "reviewer", "eval", "judge", "system")
OUTCOMES = ("accepted", "edited", "rejected", "escalated")
THUMBS: dict[Any, int] = {"up": 1, "down": -1, 1: 1, -1: -1}
MAX_COMMENT = 10_000
MAX_TEXT = 100_000
MAX_TRACE_IDS = 1000
FUTURE_SLACK_S = 86_400.0
MAX_INT = 2**31 - 1  # the integer columns (edit_distance) on PostgreSQL
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

FEEDBACK_FIELDS = ("id", "trace_id", "source", "thumbs", "outcome", "edit_distance",
                   "corrected_text", "score", "critical_error", "critical_category", "comment")
# What the client said (and what follows from it): equal on a retry with the same id.
FEEDBACK_CONTENT = ("trace_id", "source", "thumbs", "outcome", "edit_distance",
                    "corrected_text", "score_name", "score", "critical_error",
                    "critical_category", "comment")
OUTCOME_FIELDS = ("id", "name", "value", "count", "feature", "team", "trace_ids", "at")


def idempotency_conflict(kind: str, item_id: str, fields: list[str]) -> InvalidRequest:
    return InvalidRequest(
        f"{kind} id '{item_id}' was already used for different content (differs in: "
        f"{', '.join(fields)}); resend exactly the same content to retry, or use a new id "
        f"for a new {kind}", param="id", status=409, code="idempotency_conflict")


# --- validation helpers ------------------------------------------------------------------------


def _type_name(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(v), type(v).__name__)


def _unknown_fields(body: JSON, allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(k for k in body if k not in allowed)
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(repr(k) for k in unknown)} in {where}; "
            f"allowed: {', '.join(allowed)}", param=unknown[0])


def _text(body: JSON, name: str, max_len: int, *, required: bool = False,
          hint: str = "") -> str | None:
    v = body.get(name)
    if v is None:
        if required:
            raise InvalidRequest(f"'{name}' is required{hint}", param=name)
        return None
    if not isinstance(v, str):
        raise InvalidRequest(f"'{name}' must be a string, got {_type_name(v)}", param=name)
    if len(v) > max_len:
        raise InvalidRequest(f"'{name}' is {len(v)} characters, over the limit of {max_len}; "
                             "send less", param=name)
    if "\x00" in v:
        raise InvalidRequest(f"'{name}' must not contain NUL characters", param=name)
    return v


def _label(body: JSON, name: str, max_len: int = 64, *, required: bool = False,
           hint: str = "") -> str | None:
    v = _text(body, name, max_len, required=required, hint=hint)
    if v is not None and (not v.strip() or not v.isprintable()):
        raise InvalidRequest(f"'{name}' must be 1-{max_len} printable characters", param=name)
    return v


def _client_id(body: JSON) -> str | None:
    return _label(body, "id", 64)


def _int(body: JSON, name: str, minimum: int, maximum: int = MAX_INT) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum:
        raise InvalidRequest(f"'{name}' must be an integer >= {minimum} (at most {maximum}), "
                             f"got {excerpt(v)}", param=name)
    return v


def _number(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise InvalidRequest(f"'{name}' must be a finite number, got {excerpt(v)}",
                             param=name)
    return float(v)


def _choice(body: JSON, name: str, choices: tuple[str, ...]) -> str | None:
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, str) or v not in choices:
        raise InvalidRequest(f"'{name}' must be one of {', '.join(choices)}; got {excerpt(v)}",
                             param=name)
    return str(v)


# --- feedback --------------------------------------------------------------------------------


def parse_feedback(body: JSON) -> JSON:
    """Validate a feedback body; returns the client's fields in column form."""
    _unknown_fields(body, FEEDBACK_FIELDS, "the feedback")
    trace_id = _label(body, "trace_id", 32, required=True,
                      hint=": the id of the answer the feedback is about (the "
                           "x-keel-trace-id response header)")
    source = _choice(body, "source", SOURCES) or "user"
    thumbs = None
    if body.get("thumbs") is not None:
        raw = body["thumbs"]
        thumbs = THUMBS.get(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) \
            else None
        if thumbs is None:
            raise InvalidRequest(f"'thumbs' must be \"up\", \"down\", 1 or -1; got "
                                 f"{excerpt(raw)}", param="thumbs")
    outcome = _choice(body, "outcome", OUTCOMES)
    edit_distance = _int(body, "edit_distance", 0)
    corrected = _text(body, "corrected_text", MAX_TEXT)
    if edit_distance is not None and corrected is not None:
        raise InvalidRequest("send either 'edit_distance' or 'corrected_text', not both: "
                             "keel measures the edit distance from 'corrected_text' itself",
                             param="edit_distance")
    score_name = score = None
    if body.get("score") is not None:
        s = body["score"]
        if not isinstance(s, dict) or set(s) != {"name", "value"}:
            raise InvalidRequest("'score' must be an object {\"name\": string, \"value\": "
                                 "number}, e.g. {\"name\": \"helpfulness\", \"value\": 0.8}",
                                 param="score")
        score_name = _label(s, "name", 64)
        if score_name is None:
            raise InvalidRequest("'score.name' must be a string", param="score.name")
        score = _number(s["value"], "score.value")
    critical = body.get("critical_error")
    if critical is not None and not isinstance(critical, bool):
        raise InvalidRequest(f"'critical_error' must be true or false, got "
                             f"{excerpt(critical)}", param="critical_error")
    category = _label(body, "critical_category", 64)
    if category is not None and critical is not True:
        raise InvalidRequest("'critical_category' needs \"critical_error\": true",
                             param="critical_category")
    comment = _text(body, "comment", MAX_COMMENT)
    if all(v is None for v in (thumbs, outcome, edit_distance, corrected, score, critical,
                               comment)):
        raise InvalidRequest(
            "nothing to record: send at least one of thumbs, outcome, edit_distance, "
            "corrected_text, score, critical_error, comment", param="thumbs")
    return {
        "id": _client_id(body), "trace_id": trace_id, "source": source, "thumbs": thumbs,
        "outcome": outcome, "edit_distance": edit_distance, "corrected_text": corrected,
        "score_name": score_name, "score": score, "critical_error": bool(critical),
        "critical_category": category, "comment": comment,
    }


def _distance(answer: str, corrected: str) -> int:
    return int(Levenshtein.distance(answer, corrected))


async def measure_rework(answer: str | None, edit_distance: int | None,
                         corrected: str | None) -> tuple[int | None, float | None]:
    """(edit distance, rework in 0..1). From corrected text: the Levenshtein distance to the
    answer over the longer of the two; from an edit distance alone: over the answer's length,
    capped at 1. Without the answer's text, rework is unknown (None)."""
    if corrected is not None:
        if answer is None:
            return None, None
        longer = max(len(answer), len(corrected))
        if longer == 0:
            return 0, 0.0
        if len(answer) * len(corrected) > 4_000_000:  # keep long texts off the event loop
            dist = await asyncio.to_thread(_distance, answer, corrected)
        else:
            dist = _distance(answer, corrected)
        return dist, dist / longer
    if edit_distance is not None:
        if answer is None:
            return edit_distance, None
        if not answer:
            return edit_distance, 1.0 if edit_distance else 0.0
        return edit_distance, min(edit_distance / len(answer), 1.0)
    return None, None


def _waited(waited_s: float | None) -> str:
    if waited_s is None:
        return ""
    return (f" (keel waited {waited_s:g} s for it to be stored, KEEL_FEEDBACK_WAIT_S; check "
            "the id, and that this keel uses the same database as the one that answered)")


def unknown_trace(trace_id: str, waited_s: float | None = None) -> NotFound:
    """The answer for a trace that is not stored, and for one of a team the caller may not
    read: the same words, so an id reveals nothing about another team. ``waited_s``: how
    long the request waited for the trace to be stored."""
    return NotFound(f"no trace with id '{trace_id}'{_waited(waited_s)}: feedback attaches to "
                    "an answered request (its x-keel-trace-id response header)",
                    param="trace_id")


def may_see(principal: Principal, team: str | None) -> bool:
    """Whether the caller may know that a trace (a review, ...) of ``team`` exists."""
    visible = principal.visible_team()
    return visible is None or team == visible


def team_filter(principal: Principal, team: str | None) -> str | None:
    """The team a read of a list or an aggregate is limited to: ``team`` (the request's
    filter, None for all) for a caller that reads every team; the caller's own team
    otherwise, and another team's name is refused with 403 ``wrong_team`` (never an empty
    answer that would look like a team without traffic)."""
    visible = principal.visible_team()
    if visible is None:
        return team
    if team is None or team == visible:
        return visible
    raise PermissionDenied(
        f"this key reads team '{visible}' only, not team '{team}': omit 'team', or use an "
        f"org-wide key (`keel keys create --team TEAM --role {principal.role or 'viewer'} "
        "--org-wide`)", code="wrong_team", param="team")


def require_org_wide(principal: Principal, what: str) -> None:
    """Refuse (403 ``org_wide_required``) a caller that reads one team only: ``what`` (an
    action, or a read) spans every team's data."""
    visible = principal.visible_team()
    if visible is not None:
        raise PermissionDenied(
            f"{what} spans every team's data, and this key reads team '{visible}' only: use "
            f"an org-wide key (`keel keys create --team TEAM --role {principal.role or 'viewer'}"
            " --org-wide`)", code="org_wide_required")


def check_trace_access(principal: Principal, trace: JSON, action: str) -> None:
    """Callers write feedback for their own team's traces (the admin key for any). Another
    team's trace is a 404 for a caller that may not read it, a 403 for one that may (an
    org-wide role key reads every team's traces but writes only for its own)."""
    if principal.is_admin or trace.get("team") == principal.team:
        return
    if not may_see(principal, trace.get("team")):
        raise unknown_trace(str(trace["id"]))
    raise PermissionDenied(
        f"trace '{trace['id']}' belongs to another team: this key (team "
        f"'{principal.team}') may only {action} its own team's traces",
        code="wrong_team")


def _differences(stored: JSON, new: JSON, fields: tuple[str, ...]) -> list[str]:
    return [f for f in fields if stored.get(f) != new.get(f)]


def check_feedback_source(principal: Principal, item: JSON) -> None:
    """A feedback key (used from web pages) sends only source ``user``; checked before the
    trace is looked for, so the refusal comes at once."""
    if principal.scope == "feedback" and item["source"] != "user":
        raise PermissionDenied(
            f"a feedback key (used from web pages) may only send source 'user', not "
            f"'{item['source']}'; reviewer, eval, judge and system feedback needs a gateway "
            "or admin key", code="source_not_allowed")


async def record_feedback(store: Store, principal: Principal, item: JSON, trace: JSON,
                          *, now: float | None = None) -> tuple[JSON, bool]:
    """Store ``item`` (from ``parse_feedback``) for ``trace`` (a row of ``get_trace``), under
    the trace's team. Returns (the public item, whether it was new). Raises 409 when the team
    used the id for different content. ``now``: when it is recorded (epoch seconds; default
    the current time), given by callers inside keel that run on a clock of their own."""
    check_trace_access(principal, trace, "write feedback for")
    check_feedback_source(principal, item)
    edit_distance, rework = await measure_rework(
        answer_text(trace.get("response")), item["edit_distance"], item["corrected_text"])
    row = {
        **item,
        "id": item["id"] or f"fb_{new_trace_id()}",
        "at": time.time() if now is None else now,
        "trace_time": float(trace["start_time"]),
        "edit_distance": edit_distance,
        "rework": rework,
        "key_id": principal.key_id,
        "feature": trace.get("feature"),
        "team": trace.get("team"),
        "model": trace.get("model_requested"),
        "prompt": prompt_label(trace.get("prompt_name"), trace.get("prompt_version")) or None,
    }
    stored, created = await q.insert_feedback(store, row)
    if not created:
        differs = _differences(stored, row, FEEDBACK_CONTENT)
        if differs:
            raise idempotency_conflict("feedback", row["id"], differs)
    return public_feedback(stored), created


def public_feedback(row: JSON) -> JSON:
    thumbs = row.get("thumbs")
    return {
        "object": "feedback",
        "id": row["id"],
        "trace_id": row["trace_id"],
        "at": row["at"],
        "trace_time": row["trace_time"],
        "source": row["source"],
        "thumbs": {1: "up", -1: "down"}.get(thumbs) if thumbs is not None else None,
        "outcome": row.get("outcome"),
        "edit_distance": row.get("edit_distance"),
        "rework": row.get("rework"),
        "corrected_text": row.get("corrected_text"),
        "score": ({"name": row["score_name"], "value": row["score"]}
                  if row.get("score_name") is not None else None),
        "critical_error": bool(row.get("critical_error")),
        "critical_category": row.get("critical_category"),
        "comment": row.get("comment"),
        "feature": row.get("feature"),
        "team": row.get("team"),
        "model": row.get("model"),
        "prompt": row.get("prompt"),
        "key_id": row.get("key_id"),
    }


async def feedback_for_trace(store: Store, principal: Principal, trace: JSON) -> list[JSON]:
    """The feedback on ``trace``; another team's trace is unknown to a caller that reads its
    own team only."""
    if not may_see(principal, trace.get("team")):
        raise unknown_trace(str(trace["id"]))
    return [public_feedback(r) for r in await q.list_feedback(store, str(trace["id"]))]


# --- outcomes --------------------------------------------------------------------------------


def parse_outcome(body: JSON, now: float) -> JSON:
    """Validate an outcome body. ``at`` is None when the client did not send one."""
    _unknown_fields(body, OUTCOME_FIELDS, "the outcome")
    name = _text(body, "name", 64, required=True,
                 hint=": the value unit, e.g. \"ticket_resolved\"")
    assert name is not None
    if not _NAME.match(name):
        raise InvalidRequest(f"'name' must be 1-64 letters, digits or _ . : - (e.g. "
                             f"ticket_resolved); got {name!r}", param="name")
    if body.get("value") is not None and body.get("count") is not None:
        raise InvalidRequest("send either 'value' or 'count', not both", param="count")
    if body.get("count") is not None:
        count = _int(body, "count", 1)
        assert count is not None
        value = float(count)
    elif body.get("value") is not None:
        value = _number(body["value"], "value")
    else:
        value = 1.0
    trace_ids = None
    if body.get("trace_ids") is not None:
        ids = body["trace_ids"]
        if (not isinstance(ids, list) or not all(isinstance(t, str) and 0 < len(t) <= 32
                                                 for t in ids)):
            raise InvalidRequest("'trace_ids' must be an array of trace ids (strings of up to "
                                 "32 characters)", param="trace_ids")
        if len(ids) > MAX_TRACE_IDS:
            raise InvalidRequest(f"'trace_ids' has {len(ids)} ids, over the limit of "
                                 f"{MAX_TRACE_IDS}", param="trace_ids")
        trace_ids = list(dict.fromkeys(ids)) or None
    at = None
    if body.get("at") is not None:
        at = _number(body["at"], "at")
        if at < 0:
            raise InvalidRequest("'at' must be a UNIX timestamp in seconds", param="at")
        if at > now + FUTURE_SLACK_S:
            raise InvalidRequest(
                f"'at' ({at:.0f}) is more than a day in the future; it is a UNIX timestamp "
                "in seconds (not milliseconds); omit it for now", param="at")
    return {"id": _client_id(body), "name": name, "value": value,
            "feature": _label(body, "feature", 128), "team": _label(body, "team", 128),
            "trace_ids": trace_ids, "at": at}


def outcome_attribution(principal: Principal, item: JSON) -> tuple[str, str | None]:
    """(feature, team) the outcome is counted under, as this caller may write it; checked
    before the outcome's traces are looked for, so a refusal comes at once."""
    feature, team = item["feature"], item["team"]
    if principal.is_admin:
        if not feature:
            raise InvalidRequest("'feature' is required: the feature whose value this "
                                 "outcome counts", param="feature")
        return feature, team
    if team is not None and team != principal.team:
        raise PermissionDenied(f"this key belongs to team '{principal.team}': it may not "
                               f"record outcomes for team '{team}'", code="wrong_team")
    if principal.feature and not principal.feature_override:
        if feature is not None and feature != principal.feature:
            raise PermissionDenied(
                f"this key is bound to feature '{principal.feature}': it may not record "
                f"outcomes for feature '{feature}'", code="wrong_feature")
        feature = principal.feature
    feature = feature or principal.feature
    if not feature:
        raise InvalidRequest("'feature' is required (this key is not bound to a feature)",
                             param="feature")
    return feature, principal.team


async def record_outcome(store: Store, principal: Principal, item: JSON,
                         teams: dict[str, str | None], now: float, *,
                         waited_s: float | None = None) -> tuple[JSON, bool]:
    """Store ``item`` (from ``parse_outcome``). ``teams`` maps each of its trace ids to the
    trace's team (all must exist; ``waited_s``: how long the caller waited for them to be
    stored). Returns (the public item, whether it was new). A trace of a team the caller may
    not read counts as missing (404), like in feedback."""
    feature, team = outcome_attribution(principal, item)
    ids = item["trace_ids"] or []
    missing = [t for t in ids if t not in teams or not may_see(principal, teams[t])]
    if missing:
        shown = ", ".join(missing[:10]) + (f" (and {len(missing) - 10} more)"
                                           if len(missing) > 10 else "")
        raise NotFound(f"no trace with id {shown}{_waited(waited_s)}: 'trace_ids' must name "
                       "answered requests (their x-keel-trace-id response headers)",
                       param="trace_ids")
    if not principal.is_admin:
        foreign = [t for t in ids if teams[t] != principal.team]
        if foreign:
            raise PermissionDenied(
                f"trace(s) {', '.join(foreign[:10])} belong to another team: this key (team "
                f"'{principal.team}') may only link its own team's traces", code="wrong_team")
    elif team is None:
        trace_teams = {teams[t] for t in ids}
        if len(trace_teams) == 1:
            team = trace_teams.pop()
    row = {"id": item["id"] or f"oc_{new_trace_id()}", "name": item["name"],
           "value": item["value"], "feature": feature, "team": team,
           "trace_ids": item["trace_ids"], "at": item["at"] if item["at"] is not None else now,
           "key_id": principal.key_id}
    stored, created = await q.insert_outcome(store, row)
    if not created:
        fields = ["name", "value", "feature", "team", "trace_ids"]
        if item["at"] is not None:  # a retry without 'at' is the same event, a moment later
            fields.append("at")
        differs = _differences(stored, row, tuple(fields))
        if differs:
            raise idempotency_conflict("outcome", row["id"], differs)
    return public_outcome(stored), created


def public_outcome(row: JSON) -> JSON:
    return {"object": "outcome", "id": row["id"], "name": row["name"], "value": row["value"],
            "feature": row["feature"], "team": row.get("team"),
            "trace_ids": row.get("trace_ids"), "at": row["at"], "key_id": row.get("key_id")}


def outcome_scope(principal: Principal, feature: str | None) -> tuple[str | None, str | None]:
    """(feature, team) filters a caller may list outcomes with."""
    if principal.visible_team() is None:
        return feature, None
    if principal.feature and not principal.feature_override:
        if feature is not None and feature != principal.feature:
            raise PermissionDenied(f"this key is bound to feature '{principal.feature}': it "
                                   f"may not read outcomes of feature '{feature}'",
                                   code="wrong_feature")
        feature = principal.feature
    return feature, principal.team


async def list_outcomes(store: Store, principal: Principal, *, feature: str | None,
                        name: str | None, since: float | None, until: float | None,
                        limit: int) -> list[JSON]:
    feature, team = outcome_scope(principal, feature)
    rows = await q.list_outcomes(store, q.OutcomeFilter(feature=feature, team=team, name=name,
                                                        since=since, until=until), limit)
    return [public_outcome(r) for r in rows]
