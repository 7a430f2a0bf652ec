"""Held answers over HTTP.

For reviewers (``/api``, by role):

- ``GET /api/reviews?status=&feature=&team=&limit=&cursor=`` (viewer): newest first;
  ``next_cursor`` pages on.
- ``GET /api/reviews/{id}`` (viewer): one review with its request, the held and the
  approved answer, their hashes, why it was held and the decision.
- ``POST /api/reviews/{id}/decision`` (reviewer) with ``{"decision": "approve" | "edit" |
  "reject", "reason": "...", "content": "..."}``: ``content`` (edit only) replaces the
  answer's text; ``reason`` is required to reject. 409 ``review_closed`` when the review
  was already decided or expired.

A team-scoped key lists, reads and decides its own team's held answers only: another team's
review is the same 404 as a missing one, and ``?team=`` naming another team a 403
``wrong_team``.

For the application that made a held request (mode ``async``):

- ``GET /v1/reviews/{id}`` with the key that made the request (or the master key):
  202 while pending (``Retry-After``), 200 with the approved ``chat.completion``, 403
  ``review_rejected`` when rejected or expired. Any other key gets a 404.
"""

from __future__ import annotations

import math
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.errors import InvalidRequest, NotFound
from keel.feedback.service import may_see, team_filter
from keel.gateway.validate import parse_body
from keel.review import REVIEW_HEADER, Review, ReviewService
from keel.review.model import STATUSES
from keel.server.auth import actor_of, api_route, principal_of
from keel.server.exchange import TRACE_HEADER
from keel.server.http import api_key, json_response, read_body, state_of
from keel.server.params import choice_param, cursor_param, limit_param, path_param, text_param
from keel.server.state import AppState
from keel.types import Principal

BODY_LIMIT = 256 * 1024
MAX_PAGE = 500
DECISION_FIELDS = ("decision", "reason", "content")
RETRY_AFTER_S = 2


def _reviews(st: AppState) -> ReviewService:
    return st.reviews


async def list_ep(request: Request) -> Response:
    q = request.query_params
    rows, next_cursor = await _reviews(state_of(request)).list_reviews(
        status=choice_param(q, "status", STATUSES), feature=text_param(q, "feature"),
        team=team_filter(principal_of(request), text_param(q, "team")),
        limit=limit_param(q, 50, MAX_PAGE), cursor=cursor_param(q))
    return json_response({"object": "list", "data": [r.to_json() for r in rows],
                          "next_cursor": next_cursor})


async def _find(reviews: ReviewService, principal: Principal, review_id: str) -> Review:
    """The review, if the caller may see its team's; else the 404 of a missing one."""
    review = await reviews.get(review_id)
    if review is None or not may_see(principal, review.team):
        raise NotFound(f"no review with id '{review_id}'; see GET /api/reviews",
                       param="review_id")
    return review


async def get_ep(request: Request) -> Response:
    review = await _find(_reviews(state_of(request)), principal_of(request),
                         path_param(request, "review_id"))
    return json_response(review.to_json(detail=True))


async def decision_ep(request: Request) -> Response:
    reviews = _reviews(state_of(request))
    body = parse_body(await read_body(request, BODY_LIMIT), BODY_LIMIT)
    unknown = sorted(k for k in body if k not in DECISION_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s) {', '.join(repr(k) for k in unknown)}; "
                             f"allowed: {', '.join(DECISION_FIELDS)}", param=unknown[0])
    decision: Any = body.get("decision")  # checked (and named in errors) by decide
    principal = principal_of(request)
    # another team's review is not decided, and not told apart from a missing one
    review_id = (await _find(reviews, principal, path_param(request, "review_id"))).id
    review = await reviews.decide(
        review_id, decision=decision, reviewer=actor_of(principal),
        reason=body.get("reason"), content=body.get("content"))
    return json_response(review.to_json(detail=True))


async def poll_ep(request: Request) -> Response:
    """The client's poll: the released answer once approved."""
    st = state_of(request)
    principal = st.keys.authenticate(api_key(request.headers))
    review_id = path_param(request, "review_id")
    reviews = _reviews(st)
    review = await reviews.get(review_id)
    if review is None or not (principal.is_admin or principal.key_id == review.key_id):
        # another key's review is as unknown as a missing one: ids do not leak
        raise NotFound(f"no review with id '{review_id}' for this key", param="review_id")
    headers = {REVIEW_HEADER: review.id, TRACE_HEADER: review.trace_id}
    if review.status == "pending":
        left = max(review.expires_at - time.time(), 0.0)
        retry = max(1, min(RETRY_AFTER_S, math.ceil(left)))
        return json_response({
            "id": review.id, "object": "keel.review", "status": "pending",
            "expires_at": review.expires_at, "poll": f"/v1/reviews/{review.id}",
        }, 202, {**headers, "retry-after": str(retry)})
    body = await reviews.release(review_id)
    return json_response(body, 200, headers)


def routes() -> list[Route]:
    return [
        api_route("/api/reviews", list_ep, ["GET"], "viewer"),
        api_route("/api/reviews/{review_id}", get_ep, ["GET"], "viewer"),
        api_route("/api/reviews/{review_id}/decision", decision_ep, ["POST"], "reviewer"),
        Route("/v1/reviews/{review_id}", poll_ep, methods=["GET"]),
    ]
