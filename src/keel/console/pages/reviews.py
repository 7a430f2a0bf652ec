"""Reviews: the queue of held answers (oldest or newest first), one held answer with its
request and the reviewer's three decisions (approve, approve an edited answer, reject with a
reason), and the decided reviews with who decided, when, why, and their audit entries.

Deciding goes through ``ReviewService.decide``, as ``POST /api/reviews/{id}/decision``
does: it checks the decision (``keel.review.model.check_decision``), makes it once however
many reviewers race, and records it in the audit log. A team-scoped reviewer lists, opens
and decides its own team's reviews only; another team's review is the same 404 as a missing
one.

Auditors read decided reviews (and any one review) without deciding anything, under
``/governance/reviews``: the same pages without the forms, linked from the governance
page's audit log section.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from starlette.responses import Response

from keel.audit import public_entry
from keel.console.content import messages
from keel.console.web import Action, Page, View, action, choice_param, cursor_param, page
from keel.errors import InvalidRequest, NotFound
from keel.review import Review
from keel.store.db import row_dict
from keel.store.schema import audit_entries, reviews
from keel.text import answer_text

__all__ = ["ACTIONS", "PAGES"]

PAGES: list[Page] = []
ACTIONS: list[Action] = []

DECIDED = ("approved", "rejected", "expired")
ORDERS = ("oldest", "newest")  # the queue: oldest first is the one nearest its deadline
PAGE_SIZE = 50
MAX_AUDIT = 500  # audit entries read for one page of reviews
REVIEWER_BASE = "/reviews"
AUDITOR_BASE = "/governance/reviews"


# --- reading -------------------------------------------------------------------------------




async def _page_of(view: View, statuses: Sequence[str], *, oldest_first: bool,
                   cursor: str | None, window: tuple[float, float] | None = None
                   ) -> tuple[list[Review], str | None]:
    """One page of reviews in ``statuses`` under the view's filter (feature, and the team,
    which the framework forces to a scoped caller's own), by creation time, keyset-paged
    after ``cursor`` (the last id of the page before): one indexed query."""
    c = reviews.c
    cond: list[Any] = [c.status.in_(list(statuses))]
    f = view.filters
    if f.feature is not None:
        cond.append(c.feature == f.feature)
    team = view.team_scope or f.team
    if team is not None:
        cond.append(c.team == team)
    if window is not None:
        cond += [c.created_at >= window[0], c.created_at < window[1]]
    if cursor:
        at = sa.select(c.created_at).where(c.id == cursor).scalar_subquery()
        if oldest_first:
            cond.append(sa.or_(c.created_at > at, sa.and_(c.created_at == at, c.id > cursor)))
        else:
            cond.append(sa.or_(c.created_at < at, sa.and_(c.created_at == at, c.id < cursor)))
    order = ((c.created_at.asc(), c.id.asc()) if oldest_first
             else (c.created_at.desc(), c.id.desc()))
    q = sa.select(reviews).where(*cond).order_by(*order).limit(PAGE_SIZE + 1)
    async with view.state.store.connect() as conn:
        rows = [row_dict(r) for r in (await conn.execute(q)).all()]
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return [Review.from_row(r) for r in rows], (str(rows[-1]["id"]) if more else None)


async def audit_of(view: View, review_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The audit entries (``review.*``) whose target is one of ``review_ids``, newest first,
    per review: one query. (``AuditLog.entries`` filters by action and time but not by
    target, and a review's times may be on another clock than the log's, as in
    ``keel demo``.)"""
    if not review_ids:
        return {}
    c = audit_entries.c
    q = (sa.select(audit_entries)
         .where(c.action.startswith("review.", autoescape=True),
                c.target.in_(list(review_ids)))
         .order_by(c.seq.desc()).limit(MAX_AUDIT))
    async with view.state.store.connect() as conn:
        rows = [row_dict(r) for r in (await conn.execute(q)).all()]
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(str(row["target"]), []).append(public_entry(row))
    return out


async def find(view: View, review_id: str) -> Review:
    """The review, if the caller may see its team's; else the 404 of a missing one."""
    if not (len(review_id) <= 32 and review_id.isascii()
            and review_id.replace("_", "").isalnum()):
        raise NotFound(f"no review with id '{review_id[:40]}'")
    review = await view.state.reviews.get(review_id)
    scope = view.team_scope
    if review is None or (scope is not None and review.team != scope):
        raise NotFound(f"no review with id '{review_id}'")
    return review


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def reason_text(reason: Any) -> str:
    """One reason an answer was held, for people: the rule and what it found."""
    if not isinstance(reason, dict):
        return str(reason)
    rule = str(reason.get("rule") or "rule")
    if rule == "review":
        when = reason.get("when")
        return "the policy reviews every answer" if when == "always" else \
            f"the policy's review condition held: {when}"
    stage = reason.get("stage")
    explanation = reason.get("explanation")
    out = f"{rule}" + (f" ({stage})" if stage else "")
    return out + (f": {explanation}" if explanation else "")


def _context(view: View, base: str) -> dict[str, Any]:
    return {"base": base, "now": view.state.reviews.clock(), "duration": duration,
            "reason_text": reason_text, "answer_text": answer_text, "filterbar": True}


# --- pages ---------------------------------------------------------------------------------

@page(PAGES, "/reviews", "Reviews", "reviewer")
async def queue(view: View) -> Response:
    order = choice_param(view, "order", ORDERS)
    cursor = cursor_param(view)
    await view.state.reviews.expire_due()  # what is listed can still be decided
    rows, more = await _page_of(view, ("pending",), oldest_first=order == "oldest",
                                cursor=cursor)
    nxt = view.link("/reviews", order=order, cursor=more) if more else None
    first = view.link("/reviews", order=order) if cursor else None
    return view.render("reviews.html", title="Reviews", rows=rows, order=order,
                       orders=ORDERS, more=nxt, first=first,
                       extra_query=[("order", order)], **_context(view, REVIEWER_BASE))


async def _decided(view: View, base: str) -> Response:
    cursor = cursor_param(view)
    rows, more = await _page_of(view, DECIDED, oldest_first=False, cursor=cursor,
                                window=view.filters.window())
    audit = await audit_of(view, [r.id for r in rows])
    path = f"{base}/decided" if base == REVIEWER_BASE else base
    return view.render("reviews_decided.html", title="Decided reviews", rows=rows,
                       audit=audit, more=view.link(path, cursor=more) if more else None,
                       first=view.link(path) if cursor else None, path_here=path,
                       **_context(view, base))


@page(PAGES, "/reviews/decided", "Decided reviews", "reviewer", nav=False)
async def decided(view: View) -> Response:
    return await _decided(view, REVIEWER_BASE)


@page(PAGES, "/governance/reviews", "Decided reviews", "auditor", nav=False)
async def decided_for_auditors(view: View) -> Response:
    return await _decided(view, AUDITOR_BASE)


async def _review_page(view: View, review: Review, base: str, *, error: str | None = None,
                       form: dict[str, str] | None = None) -> Response:
    audit = (await audit_of(view, [review.id])).get(review.id, [])
    decidable = base == REVIEWER_BASE and review.status == "pending"
    return view.render("review.html", title=f"Review {review.id}", r=review,
                       messages=messages(review.request), answer=answer_text(review.content),
                       approved=answer_text(review.approved)
                       if review.decision == "edit" else None,
                       audit=audit, decidable=decidable, error=error, form=form or {},
                       **{**_context(view, base), "filterbar": False})


@page(PAGES, "/reviews/{review_id}", "Review", "reviewer", nav=False)
async def review_page(view: View) -> Response:
    review = await find(view, str(view.request.path_params["review_id"]))
    return await _review_page(view, review, REVIEWER_BASE)


@page(PAGES, "/governance/reviews/{review_id}", "Review", "auditor", nav=False)
async def review_for_auditors(view: View) -> Response:
    review = await find(view, str(view.request.path_params["review_id"]))
    return await _review_page(view, review, AUDITOR_BASE)


# --- deciding ------------------------------------------------------------------------------

DONE = {"approve": "approved: the held answer is released to the client",
        "edit": "approved with your edit: the edited answer is released to the client",
        "reject": "rejected: the client is refused with your reason"}


@action(ACTIONS, "/reviews/{review_id}/decide", "reviewer")
async def decide(view: View) -> Response:
    """One decision, through the review service (which checks it, makes it once and audits
    it). A refused decision (no reason to reject, an empty edit, a review another reviewer
    decided first) shows the review again with what went wrong and what was typed."""
    review = await find(view, str(view.request.path_params["review_id"]))
    decision = view.form.get("decision") or ""
    try:
        await view.state.reviews.decide(
            review.id, decision=decision, reviewer=view.who, reason=view.form.get("reason"),
            content=view.form.get("content") if decision == "edit" else None)
    except InvalidRequest as exc:  # a page, not a 4xx: what was typed stays in the form
        return await _review_page(view, await find(view, review.id), REVIEWER_BASE,
                                  error=exc.message, form={"decision": decision, **view.form})
    return view.back(f"/reviews/{review.id}", DONE[decision])
