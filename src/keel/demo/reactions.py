"""What people did with the answers: feedback, business outcomes and review decisions,
recorded through keel's own services once the month's traces are stored.

Each session's reactions are drawn from a generator seeded by the demo's seed and the
session's id, so they do not depend on the order sessions finished in. Support agents edit
far more answers of ``support-reply`` version 3 (cut short by its length cap), and edit
more of each; the research team's acceptance stays flat; lawyers approve most contract
summaries within hours, edit some, reject a few, and have not got to the latest yet.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass

from keel import feedback as fb
from keel.demo.clock import SimClock
from keel.demo.replay import Played
from keel.demo.story import (
    CHANGED_VERSION,
    CONTRACTS,
    HOUR,
    RESEARCH,
        REVIEWERS,
    STORY_REJECTION,
    STORY_REVIEWER,
    SUPPORT,
    Timeline,
)
from keel.server.state import AppState
from keel.store import feedback as feedback_queries
from keel.store.traces import get_trace
from keel.types import JSON, Principal

VALUE_UNITS = {SUPPORT: "ticket_resolved", CONTRACTS: "contract_reviewed",
               RESEARCH: "answer_accepted"}
# the support agents' verdicts on answers of each prompt version: accepted, edited,
# rejected, escalated
VERDICTS = {2: (0.74, 0.12, 0.10, 0.04), CHANGED_VERSION: (0.44, 0.42, 0.10, 0.04)}
WRITERS = 1  # sessions whose reactions are recorded at once (SQLite: one writer)
RESEARCH_VERDICTS = (0.72, 0.12, 0.16, 0.0)
OUTCOMES = ("accepted", "edited", "rejected", "escalated")
FIXES = (
    "Go to Settings > Account and choose the option described above; the change applies "
    "at once.",
    "If that does not help, reply here and a colleague will check your account directly.",
    "You can also find the full steps in our help centre under Getting started.",
    "Please note this does not affect your billing or existing data.",
)
REVIEW_EDITS = (
    "Add: the renewal notice period in clause 2 is short; diarise it.",
    "Correction: the liability cap applies per year, not per claim.",
    "Add: Customer Data must be deleted within thirty days of termination.",
)
REJECTIONS = (
    "The fees section gives the wrong uplift on renewal; check clause 3 and redo it.",
    "The summary leaves out the termination for convenience right; please redo it.",
)


@dataclass(slots=True)
class Reacted:
    feedback: int = 0
    outcomes: int = 0
    decided: int = 0
    pending: int = 0
    expired: int = 0


def _principal(p: Played) -> Principal:
    s = p.session
    return Principal(key_id=None, team=s.team, feature=s.feature, models=None,
                     feature_override=False)


def _corrected(answer: str, rng: random.Random, share: float) -> str:
    """The answer as an agent sent it on: its last ``share`` rewritten, a step added."""
    keep = answer[: max(int(len(answer) * (1 - share)), 0)].rstrip()
    added = " ".join(rng.sample(FIXES, 2))
    return f"{keep} {added}".strip()


class Reactions:
    """Records the reactions to each finished session (``submit``) as soon as its traces
    are stored, a few sessions at a time, while the rest of the month is still played;
    ``finish`` waits for the last and expires the reviews nobody decided in time."""

    def __init__(self, st: AppState, clock: SimClock, timeline: Timeline, seed: int) -> None:
        self.st = st
        self.store = st.store
        self.reviews = st.reviews
        self.clock = clock
        self.timeline = timeline
        self.seed = seed
        self.done = Reacted()
        self._queue: asyncio.Queue[Played | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._consume(), name=f"keel-demo-reactions-{i}")
                       for i in range(WRITERS)]

    def submit(self, played: Played) -> None:
        """Queue ``played`` for its reactions once its traces are stored."""
        waiter = asyncio.create_task(self._when_stored(played))
        self._waiting.add(waiter)
        waiter.add_done_callback(self._waiting.discard)

    async def _when_stored(self, played: Played) -> None:
        for trace_id in played.trace_ids:  # they land with their batch
            landing = self.st.writer.landing(trace_id)
            if landing is not None:
                await landing.wait()
        self._queue.put_nowait(played)

    async def finish(self) -> Reacted:
        while self._waiting:
            await asyncio.gather(*list(self._waiting))
        for _ in self._tasks:
            self._queue.put_nowait(None)
        await asyncio.gather(*self._tasks)
        self.clock.set(self.timeline.end)
        self.done.expired += await self.reviews.expire_due()
        return self.done

    async def _consume(self) -> None:
        while (p := await self._queue.get()) is not None:
            if p.review_id is not None:
                await self._decide(p)
            elif p.session.feature in (SUPPORT, RESEARCH) and not p.blocked and p.last_trace:
                await self._react(p)

    def _rng(self, p: Played, what: str) -> random.Random:
        return random.Random(f"{self.seed}:{p.session.id}:{what}")

    # --- support and research ----------------------------------------------------------------

    async def _react(self, p: Played) -> None:
        rng = self._rng(p, "feedback")
        s = p.session
        last = s.turns[-1].at
        support = s.feature == SUPPORT
        verdict: str | None = None
        if rng.random() < (0.45 if support else 0.35):
            if p.escalated:
                verdict = "escalated"
            else:
                weights = VERDICTS.get(p.prompt[1], VERDICTS[2]) if support \
                    else RESEARCH_VERDICTS
                verdict = rng.choices(OUTCOMES, weights=weights)[0]
            await self._feedback(p, verdict, rng, last + rng.uniform(20, 900))
        resolved = verdict in ("accepted", "edited") or (
            verdict is None and not p.escalated and rng.random() < 0.5)
        if resolved and (support or verdict == "accepted"):
            await self._outcome(p, VALUE_UNITS[s.feature], p.trace_ids,
                                last + rng.uniform(60, 1800))

    async def _feedback(self, p: Played, verdict: str, rng: random.Random, at: float) -> None:
        body: JSON = {"id": f"fb-{p.session.id}", "trace_id": p.last_trace, "source": "user",
                      "outcome": verdict}
        if verdict == "accepted" and rng.random() < 0.8:
            body["thumbs"] = "up"
        elif verdict in ("rejected", "escalated") and rng.random() < 0.7:
            body["thumbs"] = "down"
        if verdict == "edited":
            share = 0.45 if p.prompt[1] == CHANGED_VERSION else 0.15
            body["corrected_text"] = _corrected(p.answer, rng, share)
        if verdict == "rejected" and rng.random() < 0.5:
            body["comment"] = rng.choice(("Did not answer the question.",
                                          "Wrong settings page.", "Too generic."))
        trace = await get_trace(self.store, str(p.last_trace))
        if trace is None:
            return
        await fb.record_feedback(self.store, _principal(p), fb.parse_feedback(body), trace,
                                 now=at)
        self.done.feedback += 1

    async def _outcome(self, p: Played, name: str, trace_ids: list[str], at: float) -> None:
        s = p.session
        at = min(at, self.timeline.end)
        item = fb.parse_outcome({"id": f"oc-{s.id}", "name": name, "trace_ids": trace_ids,
                                 "at": at}, at)
        teams = await feedback_queries.trace_teams(self.store, trace_ids)
        await fb.record_outcome(self.store, _principal(p), item, teams, at)
        self.done.outcomes += 1

    # --- contract reviews --------------------------------------------------------------------

    async def _decide(self, p: Played) -> None:
        """A lawyer decides the held summary some hours later; the latest still wait."""
        rng = self._rng(p, "review")
        created = p.session.start
        if p.session.detail.get("story"):
            await self._review(created + 3.2 * HOUR, p, "reject", STORY_REVIEWER,
                               STORY_REJECTION)
            return
        delay = min(max(rng.lognormvariate(math.log(5 * HOUR), 0.8), 0.4 * HOUR), 60 * HOUR)
        at = created + delay
        roll = rng.random()
        if p.session.detail.get("latest") or at >= self.timeline.end:
            self.done.pending += 1
        elif roll < 0.03:  # nobody gets to it: it expires (timeouts fail closed)
            pass
        elif roll < 0.85:
            await self._review(at, p, "approve", rng.choice(REVIEWERS), None)
        elif roll < 0.96:
            await self._review(at, p, "edit", rng.choice(REVIEWERS), rng.choice(REVIEW_EDITS))
        else:
            await self._review(at, p, "reject", rng.choice(REVIEWERS), rng.choice(REJECTIONS))

    async def _review(self, at: float, p: Played, decision: str, reviewer: str,
                      note: str | None) -> None:
        assert p.review_id is not None
        self.clock.set(at)
        content = reason = None
        if decision == "edit":
            review = await self.reviews.get(p.review_id)
            held = review.content if review is not None else None
            text = ((held or {}).get("choices") or [{}])[0].get("message", {}).get("content")
            content = f"{text or ''}\n\n{note}".strip()
        elif decision == "reject":
            reason = note
        await self.reviews.decide(p.review_id, decision=decision, reviewer=reviewer,
                                  reason=reason, content=content)
        self.done.decided += 1
        if decision != "reject":
            await self._outcome(p, VALUE_UNITS[CONTRACTS], p.trace_ids, at + 120.0)
