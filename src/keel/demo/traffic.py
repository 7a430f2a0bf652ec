"""The month's traffic, planned from a seed: who talks to which feature, when, and what
they write.

A *session* is one conversation: its turns are the requests it sends, in order (a turn
that answers the model's tool call carries no text of its own: the tool's result is made
when the call is known). Each feature gets sessions until it holds its share
(``story.FEATURE_SHARE``) of about the requested number of requests; then each team's
sessions are spread over the month along its daily and weekly rhythm (``story.activity``),
evenly rather than at random, so a fortnight holds as many as its rhythm says and a change
in the story is not hidden by noise. The same seed, request count and end time give the
same plan.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field

from keel.demo import texts
from keel.demo.story import (
    CONTRACTS,
    EMPLOYEES,
    FEATURE_SHARE,
    HOUR,
    RESEARCH,
    STORY_COUNTERPARTY,
    SUPPORT,
    TEAMS,
    Team,
    Timeline,
    activity,
)

DEFAULT_REQUESTS = 3000
DEFAULT_SEED = 7
SLOT_S = 900.0  # the rhythm is read per quarter hour; a start is placed within its slot
LAST_START_S = 1800.0  # no session starts in the last half hour (its turns end before now)


@dataclass(slots=True)
class Turn:
    at: float
    text: str | None  # the user's message; None: the result of the model's tool call


@dataclass(slots=True)
class Session:
    id: str
    feature: str
    team: str
    user: str
    kind: str  # faq, order, troubleshoot, escalation, injection, research, contract
    turns: list[Turn]
    context: str | None = None  # research: the retrieved passages; contract: its text
    passages: int = 0  # research: how many were retrieved
    detail: dict[str, str] = field(default_factory=dict)  # order id, counterparty, ...

    @property
    def start(self) -> float:
        return self.turns[0].at

    def starting_at(self, t: float) -> None:
        """Move the session (planned from 0) to start at ``t``."""
        for turn in self.turns:
            turn.at += t


class _Rhythm:
    """A team's activity over the month, per slot, and start times spread along it."""

    def __init__(self, t: Team, timeline: Timeline) -> None:
        self.slots: list[float] = []
        self.cum: list[float] = []
        total = 0.0
        at = timeline.start
        while at < timeline.end - LAST_START_S:
            total += activity(t, at + SLOT_S / 2)
            self.slots.append(at)
            self.cum.append(total)
            at += SLOT_S
        self.last = timeline.end - LAST_START_S

    def spread(self, n: int, rng: random.Random) -> list[float]:
        """``n`` start times, one in each of ``n`` equal shares of the month's activity."""
        u = rng.random()
        out = []
        for i in range(n):
            k = bisect.bisect_left(self.cum, (i + u) / n * self.cum[-1])
            out.append(min(self.slots[k] + rng.random() * SLOT_S, self.last))
        return out


class Planner:
    def __init__(self, seed: int, timeline: Timeline) -> None:
        self.rng = random.Random(seed)
        self.timeline = timeline
        self._ids = itertools.count(1)
        self._orders = iter(self.rng.sample(range(40000, 50000), 10000))
        self._workspaces = itertools.count(101)

    def _id(self) -> str:
        return f"s{next(self._ids):05d}-{self.rng.getrandbits(32):08x}"

    def _team(self, feature: str) -> Team:
        teams = [t for t in TEAMS if t.feature == feature]
        return self.rng.choices(teams, weights=[t.share for t in teams])[0]

    @staticmethod
    def _turns(gaps: list[float | None], texts_: list[str | None]) -> list[Turn]:
        """Turns from 0, ``gaps[i]`` seconds before turn ``i + 1`` (None: a tool's result,
        a moment later)."""
        turns = [Turn(0.0, texts_[0])]
        at = 0.0
        for gap, text in zip(gaps, texts_[1:], strict=True):
            at += gap if gap is not None else 3.0
            turns.append(Turn(at, text))
        return turns

    # --- support -----------------------------------------------------------------------------

    def support(self) -> Session:
        rng = self.rng
        t = self._team(SUPPORT)
        user = f"cust-{rng.randrange(10000, 99999)}"
        kind = rng.choices(("faq", "order", "troubleshoot", "escalation"),
                           weights=(0.30, 0.30, 0.28, 0.12))[0]
        detail: dict[str, str] = {}
        if kind == "faq":
            q = rng.choice(texts.FAQS)
            if rng.random() < 0.3:
                q += rng.choice(texts.FAQ_ASIDES)
            turns = [Turn(0.0, q)]
        elif kind == "order":
            detail["order"] = str(next(self._orders))
            lines: list[str | None] = [
                f"Can you lookup order {detail['order']}? {rng.choice(texts.ORDER_COMPLAINTS)}",
                None]
            gaps: list[float | None] = [None]
            if rng.random() < 0.4:
                lines.append(rng.choice(texts.ORDER_FOLLOW_UPS))
                gaps.append(rng.uniform(40, 150))
            turns = self._turns(gaps, lines)
        elif kind == "troubleshoot":
            problem = rng.choice(texts.PROBLEMS)
            n = rng.choice((2, 3))
            turns = self._turns([rng.uniform(45, 240) for _ in range(n - 1)],
                                [self._problem(problem[0]), *problem[1:n]])
        else:  # escalation: a problem, then the customer asks for a person
            problem = rng.choice(texts.PROBLEMS)
            turns = self._turns([rng.uniform(45, 200), None],
                                [self._problem(problem[0]), rng.choice(texts.ESCALATIONS),
                                 None])
        return Session(self._id(), SUPPORT, t.name, user, kind, turns, detail=detail)

    def _problem(self, line: str) -> str:
        """A problem as one customer writes it: a greeting, the problem, their workspace."""
        rng = self.rng
        return (f"{rng.choice(texts.GREETINGS)}{line} Workspace: "
                f"{rng.choice(texts.WORKSPACES)}-{next(self._workspaces)}.")

    def injection(self) -> Session:
        first, second = texts.INJECTION_TURNS
        s = Session(self._id(), SUPPORT, "support-emea", "cust-66613", "injection",
                    self._turns([75.0], [first, second]))
        s.starting_at(self.timeline.injection)
        return s

    # --- research ------------------------------------------------------------------------------

    def research(self) -> Session:
        rng = self.rng
        t = self._team(RESEARCH)
        doc, question = rng.choice(texts.QUESTIONS)
        lines: list[str | None] = [question]
        if rng.random() < 0.25:
            lines.append(rng.choice(texts.FOLLOW_UPS))
        turns = self._turns([rng.uniform(30, 180)] * (len(lines) - 1), lines)
        return Session(self._id(), RESEARCH, t.name, rng.choice(EMPLOYEES[t.name]), "research",
                       turns, detail={"doc": str(doc)})

    def retrieve(self, s: Session) -> None:
        """The passages retrieved for the session's question: more of them as the month
        ends (story c), the one that answers it among them."""
        rng = self.rng
        doc = int(s.detail["doc"])
        k = min(len(texts.DOCS), 4 + round(12 * self.timeline.creep(s.start))
                + rng.choice((0, 1)))
        chosen = [doc, *rng.sample([i for i in range(len(texts.DOCS)) if i != doc], k - 1)]
        rng.shuffle(chosen)
        s.context = "\n\n".join(f"[{n}] {texts.DOCS[i][0]}: {texts.DOCS[i][1]}"
                                for n, i in enumerate(chosen, 1))
        s.passages = k

    # --- contracts -----------------------------------------------------------------------------

    def contract(self, at: float | None = None, *, story: bool = False) -> Session:
        rng = self.rng
        customer = STORY_COUNTERPARTY if story else rng.choice(texts.COUNTERPARTIES)
        kind = "Master Services Agreement" if story else rng.choice(texts.CONTRACT_KINDS)
        text = texts.contract(rng, customer, kind, story=story)
        s = Session(self._id(), CONTRACTS, "legal", rng.choice(EMPLOYEES["legal"]), "contract",
                    [Turn(0.0, f"Summarise this {kind} for the deal team.")], context=text,
                    detail={"counterparty": customer, "contract": kind,
                            "story": "yes" if story else ""})
        if at is not None:
            s.starting_at(at)
        return s


def plan(seed: int, requests: int, timeline: Timeline) -> list[Session]:
    """The month's sessions, by start time, with about ``requests`` requests in all (the
    story's own sessions included)."""
    p = Planner(seed, timeline)
    fixed = [p.injection(), p.contract(timeline.story_contract, story=True)]
    for hours in (1.5, 4.0, 7.5):  # the latest summaries: left for the user to review
        latest = p.contract(timeline.end - hours * HOUR)
        latest.detail["latest"] = "yes"
        fixed.append(latest)
    made = {SUPPORT: 2, CONTRACTS: len(fixed) - 1, RESEARCH: 0}
    drawn: list[Session] = []
    for feature, make in ((SUPPORT, p.support), (RESEARCH, p.research),
                          (CONTRACTS, p.contract)):
        want = max(round(requests * FEATURE_SHARE[feature]), 1)
        while made[feature] < want:
            s = make()
            drawn.append(s)
            made[feature] += len(s.turns)
    for t in TEAMS:
        mine = [s for s in drawn if s.team == t.name]
        starts = _Rhythm(t, timeline).spread(len(mine), p.rng)
        p.rng.shuffle(starts)
        for s, start in zip(mine, starts, strict=True):
            s.starting_at(start)
    for s in drawn:
        if s.feature == RESEARCH:
            p.retrieve(s)
    return sorted(fixed + drawn, key=lambda s: (s.start, s.id))
