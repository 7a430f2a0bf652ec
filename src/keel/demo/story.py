"""The demo's story: one company's month, and the five things that happen in it.

Acme Cloud runs three LLM features behind keel: a support assistant in its help widget
(two support teams, EMEA and the Americas), a contract summariser whose every summary a
lawyer reviews, and a research assistant that answers employees from the knowledge base.
Over the 30 days that end now:

a. the support team moves ``support-reply``'s production label to version 3 (shorter
   answers, to cut cost); answers are cut short and agents edit far more of them, so the
   rework rate rises from that day on;
b. the primary provider fails for an afternoon; the route falls back to the secondary
   provider and every request is still answered;
c. the research assistant retrieves more and more passages per question over the last two
   weeks: its prompts grow, and its cost per request with them, at the same volume;
d. a customer tries a prompt injection in the help widget, and the guard policy blocks it;
e. a reviewer rejects a contract summary that got the liability clause wrong, with her
   reason; the latest summaries wait for a reviewer's decision.

The times are fixed offsets from the end of the month (on weekdays, in UTC), so the story
reads the same whatever the seed; the seed varies the traffic around it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

DAY = 86400.0
HOUR = 3600.0
DAYS = 30

COMPANY = "Acme Cloud"
SUPPORT, CONTRACTS, RESEARCH = "support-assistant", "contract-summariser", "research-assistant"
FEATURES = (SUPPORT, CONTRACTS, RESEARCH)
PROMPTS = {SUPPORT: "support-reply", CONTRACTS: "contract-summary", RESEARCH: "research-answer"}
PRODUCTION = "production"
CHANGED_VERSION = 3  # support-reply's version that production moves to (story a)
MODEL = "gpt-4o"  # what the features ask for; the route serves it (claude-sonnet behind)
FALLBACK_MODEL = "claude-sonnet"
PRIMARY_PROVIDER = "primary"  # the provider that fails (story b)

REVIEWERS = ("dana.okafor", "li.wei")
STORY_REVIEWER = "dana.okafor"
STORY_REJECTION = ("The summary misses the uncapped indemnity in clause 14.2 and calls the "
                   "liability cap mutual; it protects only the supplier. Redo the liability "
                   "section before this goes to the deal team.")
STORY_COUNTERPARTY = "Northwind Logistics"


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    feature: str
    region: str
    peak: tuple[float, float]  # busiest UTC hours [from, to)
    weekend: float  # weekend activity against a weekday
    share: float  # of its feature's traffic


TEAMS = (
    Team("support-emea", SUPPORT, "Europe", (7.0, 17.0), 0.4, 0.55),
    Team("support-americas", SUPPORT, "the Americas", (14.0, 23.0), 0.4, 0.45),
    Team("legal", CONTRACTS, "Europe", (8.0, 18.0), 0.08, 1.0),
    Team("research", RESEARCH, "Europe", (8.0, 18.0), 0.15, 0.6),
    Team("product", RESEARCH, "the Americas", (14.0, 22.0), 0.15, 0.4),
)
# the share of the requests each feature gets
FEATURE_SHARE = {SUPPORT: 0.66, RESEARCH: 0.26, CONTRACTS: 0.08}

EMPLOYEES = {
    "legal": ("sam.nair", "j.park", "e.fischer"),
    "research": ("a.chen", "m.rossi", "k.osei", "l.moreau", "p.novak", "t.haddad"),
    "product": ("r.silva", "n.kim", "d.brooks", "f.ibrahim", "g.lund"),
}


def team(name: str) -> Team:
    return next(t for t in TEAMS if t.name == name)


def _weekday_at(t: float, hour: float) -> float:
    """``hour`` (UTC) on the day of ``t``, or on the weekday before it if that is a weekend."""
    day = dt.datetime.fromtimestamp(t, dt.UTC).replace(hour=0, minute=0, second=0,
                                                       microsecond=0)
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day.timestamp() + hour * HOUR


@dataclass(frozen=True, slots=True)
class Timeline:
    """When the month starts and ends, and when each part of the story happens."""

    start: float
    end: float
    prompt_change: float  # (a) production -> support-reply@3
    outage: tuple[float, float]  # (b) the primary provider fails, [from, to)
    creep_from: float  # (c) the research assistant's context starts to grow
    injection: float  # (d) the blocked prompt injection
    story_contract: float  # (e) the contract whose summary is rejected

    @classmethod
    def ending(cls, now: float) -> Timeline:
        outage = _weekday_at(now - 8 * DAY, 12 + 40 / 60)
        return cls(start=now - DAYS * DAY, end=now,
                   prompt_change=_weekday_at(now - 11 * DAY, 9 + 40 / 60),
                   outage=(outage, outage + 6.5 * HOUR),
                   creep_from=now - 14 * DAY,
                   injection=_weekday_at(now - 4 * DAY, 15 + 12 / 60),
                   story_contract=_weekday_at(now - 6 * DAY, 10 + 5 / 60))

    def in_outage(self, t: float) -> bool:
        return self.outage[0] <= t < self.outage[1]

    def creep(self, t: float) -> float:
        """0 before the research assistant's context starts to grow, 1 at the end."""
        if t <= self.creep_from:
            return 0.0
        return min((t - self.creep_from) / (self.end - self.creep_from), 1.0)


def activity(t: Team, when: float) -> float:
    """How busy ``t`` is at ``when``, relative to its weekday peak (daily and weekly
    seasonality: a plateau over its peak hours, shoulders either side, quiet nights)."""
    d = dt.datetime.fromtimestamp(when, dt.UTC)
    hour = d.hour + d.minute / 60
    lo, hi = t.peak
    if lo <= hour < hi:
        level = 1.0
    else:
        away = min(abs(hour - lo) % 24, abs(hour - hi) % 24, 24 - abs(hour - lo) % 24,
                   24 - abs(hour - hi) % 24)
        level = max(0.06, 1.0 - away / 4)
    return level * (t.weekend if d.weekday() >= 5 else 1.0)
