"""The traffic of the console bench (bench/console_scale.py): one company's month of LLM
requests through keel, as keel's own trace rows.

20 features (Zipf-like shares) of 8 kinds, 50 teams (2-3 owners per feature and a guest),
10 models with real-looking prices, 40 prompts x 5 versions released during the month with
2-day canary ramps; a volume curve with office hours, weekends and growth; ~2% errors of 5
types and a 3-hour incident of one provider; guard findings and blocks on the guarded
features; fallbacks and retries with their attempt log; keel cache hits; users and
sessions; feedback, business outcomes, and the answers held for review. Each hour of the
window is seeded on its own, so the traces do not depend on the batch size or the store.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
import itertools
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from keel.store.traces import payload_values, trace_values
from keel.types import Trace, Usage

DAY = 86400.0
HOUR = 3600.0

@dataclass(frozen=True)
class Model:
    name: str
    provider: str
    input_per_mtok: float
    output_per_mtok: float
    cached_per_mtok: float
    ttft_ms: float  # median time to first token
    ms_per_token: float  # median generation time per output token
    error_rate: float


MODELS = (
    Model("gpt-4o", "openai", 2.5, 10.0, 1.25, 450, 11, 0.016),
    Model("gpt-4o-mini", "openai", 0.15, 0.6, 0.075, 320, 7, 0.016),
    Model("gpt-4.1", "openai", 2.0, 8.0, 0.5, 420, 10, 0.016),
    Model("gpt-4.1-mini", "openai", 0.4, 1.6, 0.1, 300, 6, 0.016),
    Model("o3-mini", "openai", 1.1, 4.4, 0.55, 1800, 9, 0.02),
    Model("claude-3-5-sonnet", "anthropic", 3.0, 15.0, 0.3, 700, 13, 0.024),
    Model("claude-3-5-haiku", "anthropic", 0.8, 4.0, 0.08, 420, 8, 0.02),
    Model("claude-3-7-sonnet", "anthropic", 3.0, 15.0, 0.3, 750, 14, 0.024),
    Model("gemini-1.5-flash", "gemini", 0.075, 0.3, 0.01875, 280, 5, 0.02),
    Model("gemini-1.5-pro", "gemini", 1.25, 5.0, 0.3125, 600, 12, 0.02),
)
MODEL = {m.name: m for m in MODELS}


@dataclass(frozen=True)
class Kind:
    """What a feature does, which decides its shape."""

    stream: float  # share of streamed requests (only those have a TTFT)
    input_tokens: tuple[float, float]  # lognormal: median, sigma
    output_tokens: tuple[float, float]
    sessions: bool  # conversations: a session per user and day
    cache_hits: float  # share answered from keel's response cache
    feedback: float  # share of the answers that get feedback
    users: int  # distinct users


KINDS = {
    "chat": Kind(0.9, (1800, 0.5), (220, 0.6), True, 0.02, 0.03, 40000),
    "rag": Kind(0.6, (3500, 0.4), (180, 0.5), False, 0.05, 0.015, 25000),
    "summarize": Kind(0.1, (6000, 0.7), (350, 0.4), False, 0.0, 0.01, 8000),
    "code": Kind(0.4, (9000, 0.6), (600, 0.5), True, 0.0, 0.02, 3000),
    "draft": Kind(0.5, (900, 0.4), (300, 0.4), False, 0.0, 0.02, 12000),
    "classify": Kind(0.0, (450, 0.3), (6, 0.3), False, 0.02, 0.002, 500),
    "extract": Kind(0.0, (2500, 0.5), (400, 0.4), False, 0.01, 0.005, 800),
    "agent": Kind(0.7, (5000, 0.6), (500, 0.6), True, 0.0, 0.02, 6000),
}

# (name, kind, models (share), value unit or None, guarded, held for review, routed)
FEATURE_SPECS: tuple[tuple[str, str, dict[str, float], str | None, bool, bool, bool], ...] = (
    ("support-chat", "chat", {"gpt-4o-mini": 0.6, "claude-3-5-haiku": 0.3, "gpt-4o": 0.1},
     "ticket_resolved", True, False, True),
    ("search-answer", "rag", {"gpt-4o-mini": 0.7, "gemini-1.5-flash": 0.3}, None, True, False,
     True),
    ("ticket-classify", "classify", {"gemini-1.5-flash": 0.6, "gpt-4.1-mini": 0.4}, None,
     False, False, False),
    ("summarize", "summarize", {"claude-3-5-sonnet": 0.5, "gpt-4o": 0.5}, None, False, False,
     True),
    ("email-draft", "draft", {"gpt-4o": 0.4, "gpt-4o-mini": 0.6}, "email_sent", True, False,
     False),
    ("code-review", "code", {"claude-3-7-sonnet": 0.8, "gpt-4.1": 0.2}, "pr_merged", False,
     False, True),
    ("sales-assist", "chat", {"gpt-4.1": 0.7, "claude-3-5-haiku": 0.3}, "meeting_booked",
     True, False, True),
    ("doc-extract", "extract", {"gpt-4.1-mini": 0.8, "gemini-1.5-pro": 0.2}, None, False,
     False, False),
    ("kb-search", "rag", {"gemini-1.5-flash": 0.7, "gpt-4o-mini": 0.3}, None, False, False,
     False),
    ("translate", "draft", {"gpt-4o-mini": 0.9, "gemini-1.5-flash": 0.1}, None, False, False,
     False),
    ("contract-review", "summarize", {"claude-3-5-sonnet": 0.7, "gpt-4o": 0.3},
     "contract_reviewed", True, True, True),
    ("claims-triage", "extract", {"gpt-4.1": 0.6, "claude-3-5-sonnet": 0.4}, "claim_routed",
     True, True, False),
    ("hr-assistant", "chat", {"gpt-4o-mini": 1.0}, None, True, False, False),
    ("analytics-sql", "code", {"gpt-4.1": 0.6, "o3-mini": 0.4}, "query_run", False, False,
     False),
    ("onboarding-agent", "agent", {"claude-3-5-sonnet": 0.6, "gpt-4o": 0.4}, None, True,
     False, True),
    ("product-copy", "draft", {"claude-3-5-haiku": 0.7, "gpt-4o-mini": 0.3}, None, False,
     False, False),
    ("fraud-explain", "summarize", {"o3-mini": 0.7, "gpt-4.1": 0.3}, None, False, False,
     False),
    ("meeting-notes", "summarize", {"gemini-1.5-pro": 0.6, "gpt-4.1-mini": 0.4}, None, False,
     False, False),
    ("devops-agent", "agent", {"claude-3-7-sonnet": 0.7, "gpt-4.1": 0.3}, None, True, False,
     True),
    ("legal-qa", "rag", {"claude-3-5-sonnet": 0.6, "gemini-1.5-pro": 0.4}, None, True, False,
     False),
)
TEAMS = tuple(f"team-{n}" for n in (
    "support-eu", "support-us", "support-apac", "search", "platform", "growth", "sales-emea",
    "sales-na", "legal", "claims", "hr", "data", "onboarding", "marketing", "risk", "ops",
    "devops", "sre", "finance", "procurement", "billing", "docs", "mobile", "web", "partners",
    "enterprise", "smb", "success", "trust", "security", "ml", "research", "design",
    "content", "localization", "analytics", "bi", "infra", "payments", "fraud", "kyc",
    "compliance", "retail", "logistics", "supply", "quality", "field", "training",
    "internal-tools", "exec"))
PROMPT_ROLES = ("answer", "router")
VERSIONS = 5
CANARY_DAYS = 2.0
FALLBACK = {"openai": "claude-3-5-haiku", "anthropic": "gpt-4o", "gemini": "gpt-4o-mini"}
ERRORS = (  # (error_type, HTTP status, share of the errors)
    ("upstream_rate_limited", 429, 0.4), ("upstream_timeout", 504, 0.2),
    ("upstream_error", 502, 0.2), ("upstream_unavailable", 503, 0.1),
    ("invalid_request_error", 400, 0.1),
)
ERROR_KINDS = [(e, s) for e, s, _ in ERRORS]
ERROR_CUM = list(itertools.accumulate(w for _, _, w in ERRORS))
INCIDENT = (19.55, 19.675, "anthropic", 0.25)  # days into the window, provider, error rate
FALLBACK_SHARE = 0.02  # requests whose first attempt fails and a fallback serves
RETRY_SHARE = 0.01  # requests served by a retry of the same model
REVIEW_SHARE = 0.01  # of the review features' answers, held for a person


@dataclass(frozen=True)
class Prompt:
    name: str
    releases: tuple[float, ...]  # day of the window each version (1..5) was released


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    weight: float
    teams: tuple[tuple[str, ...], tuple[float, ...]]  # names, cumulative weights
    models: tuple[tuple[str, ...], tuple[float, ...]]
    prompts: tuple[Prompt, ...]
    value_unit: str | None
    guarded: bool
    review: bool
    routed: bool
    index: int


def _cum(pairs: dict[str, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    return tuple(pairs), tuple(itertools.accumulate(pairs.values()))


class World:
    """The company: its features, teams, models and prompts, built from the seed."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        zipf = [1 / (i + 1) ** 0.9 for i in range(len(FEATURE_SPECS))]
        total = sum(zipf)
        owners: dict[int, list[str]] = {i: [] for i in range(len(FEATURE_SPECS))}
        for j, team in enumerate(TEAMS):  # every team owns one feature: 2-3 teams each
            owners[j % len(FEATURE_SPECS)].append(team)
        self.features: list[Feature] = []
        for i, (name, kind, models, unit, guarded, review, routed) in enumerate(FEATURE_SPECS):
            teams = owners[i]
            guest = rng.choice([t for t in TEAMS if t not in teams])
            shares = [0.6, 0.25, 0.1][:len(teams)]
            scale = 0.95 / sum(shares)
            team_w = {t: s * scale for t, s in zip(teams, shares, strict=True)}
            team_w[guest] = 0.05
            prompts = []
            for role in PROMPT_ROLES:
                days = sorted(rng.uniform(1, 29.5) for _ in range(VERSIONS - 1))
                prompts.append(Prompt(f"{name}-{role}", (-30.0, *days)))
            self.features.append(Feature(
                name, KINDS[kind], zipf[i] / total, _cum(team_w), _cum(models), tuple(prompts),
                unit, guarded, review, routed, i))
        self.by_name = {f.name: f for f in self.features}
        self.feature_cum = list(itertools.accumulate(f.weight for f in self.features))
        self.keys: dict[tuple[str, str], str] = {}  # (team, feature) -> gateway key id

    def pairs(self) -> list[tuple[str, str]]:
        return [(team, f.name) for f in self.features for team in f.teams[0]]

    def prompts(self) -> list[Prompt]:
        return [p for f in self.features for p in f.prompts]


def volume(t: float, start: float, span: float) -> float:
    """Relative request rate at t: busy UTC office hours (two humps: Europe and the
    Americas), quiet nights, weekends at 40%, +30% growth over the window. At most 1.6."""
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    hour = d.hour + d.minute / 60
    diurnal = 0.12 + 0.7 * math.exp(-(((hour - 11.0) / 3.5) ** 2)) \
        + 0.55 * math.exp(-(((hour - 18.0) / 3.5) ** 2))
    weekly = 0.4 if d.weekday() >= 5 else 1.0
    return diurnal * weekly * (1.0 + 0.3 * (t - start) / span)


def hour_counts(n: int, start: float, end: float) -> list[int]:
    """How many of the n traces start in each hour of [start, end): proportional to the
    volume (largest remainders), so the split is exact and deterministic."""
    hours = math.ceil((end - start) / HOUR)
    span = end - start
    w = [volume(start + (h + 0.5) * HOUR, start, span)
         * (min(end, start + (h + 1) * HOUR) - (start + h * HOUR)) / HOUR for h in range(hours)]
    total = sum(w)
    exact = [n * x / total for x in w]
    counts = [int(x) for x in exact]
    rest = n - sum(counts)
    for h in sorted(range(hours), key=lambda h: exact[h] - counts[h], reverse=True)[:rest]:
        counts[h] += 1
    return counts


def trace_id(t: float, rng: random.Random) -> str:
    """An id of keel's shape (``new_trace_id``) for a trace that started at ``t``."""
    return f"{int(t * 1000):012x}{rng.getrandbits(80):020x}"


def version_at(p: Prompt, day: float, rng: random.Random) -> int:
    v = bisect.bisect_right(p.releases, day) - 1
    at = p.releases[v]
    if v > 0 and day < at + CANARY_DAYS and rng.random() > (day - at) / CANARY_DAYS:
        return v  # the previous version (1-based: v) during the canary ramp
    return v + 1


@functools.cache
def _policy_version(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


class Traffic:
    """The traces of one hour of the window (each hour is seeded on its own, so any hour
    can be rebuilt alone and the whole does not depend on the batch size)."""

    def __init__(self, world: World, seed: int, start: float, end: float,
                 payload_share: float) -> None:
        self.world, self.seed, self.start, self.end = world, seed, start, end
        self.payload_share = payload_share

    def hour(self, h: int, count: int) -> Iterator[tuple[Any, ...]]:
        """(Trace, feedback row or None, outcome row or None, held for review)."""
        rng = random.Random(self.seed * 1_000_003 + h)
        a = self.start + h * HOUR
        b = min(self.end, a + HOUR)
        for t in sorted(a + rng.random() * (b - a) for _ in range(count)):
            yield self.one(t, rng)

    def one(self, t: float, rng: random.Random) -> tuple[Any, ...]:
        w = self.world
        f = w.features[_pick_index(w.feature_cum, rng)]
        team = f.teams[0][_pick_index(f.teams[1], rng)]
        model = MODEL[f.models[0][_pick_index(f.models[1], rng)]]
        day = (t - self.start) / DAY
        k = f.kind
        x = rng.random()
        prompt = f.prompts[0] if x < 0.65 else f.prompts[1] if x < 0.9 else None
        version = version_at(prompt, day, rng) if prompt else None
        stream = rng.random() < k.stream
        users = k.users
        u = int(users * rng.random() ** 2)
        tr = Trace(
            id=trace_id(t, rng), start_time=t, endpoint="/v1/chat/completions",
            key_id=w.keys.get((team, f.name)), team=team, feature=f.name,
            user=f"user-{f.index:02d}{u:06d}",
            session=f"sess-{int(day):02d}-{f.index:02d}{u:06d}" if k.sessions else None,
            model_requested=model.name, model_served=model.name, provider=model.provider,
            attempts=1, stream=stream, prompt_name=prompt.name if prompt else None,
            prompt_version=version, request_id=f"req_{rng.getrandbits(64):016x}",
            route=f.name if f.routed else None)
        if f.guarded:
            tr.policy = f"{f.name}-guard"
            tr.policy_version = _policy_version(tr.policy)
            tr.guard_ms = lognormal(rng, 1.6, 0.5)
        blocked = f.guarded and rng.random() < 0.004
        incident = INCIDENT[0] <= day < INCIDENT[1] and model.provider == INCIDENT[2]
        error_rate = INCIDENT[3] if incident else model.error_rate
        if blocked:
            tr.status, tr.error_type, tr.attempts = 400, "policy_blocked", 0
            tr.error_message = (f"the request was blocked by policy '{tr.policy}' (version "
                                f"{tr.policy_version}): input scanner 'injection'")
            tr.guard = [_finding("injection", 0.93, "input", "block",
                                 "instruction override phrasing")]
            tr.latency_ms = tr.guard_ms or 2.0
        elif rng.random() < error_rate and not (incident and f.routed and rng.random() < 0.7):
            self._error(tr, model, rng)
        else:
            self._answer(tr, f, model, incident, rng)
        if f.guarded and not blocked and rng.random() < 0.04:
            which = rng.random()
            tr.guard = [_finding("pii", 0.9, "input", "redact", "an email address",
                                 [["email", 40, 61]]) if which < 0.6 else
                        _finding("injection", round(rng.uniform(0.7, 0.85), 4), "input",
                                 "flag", "role-play framing")]
        tr.end_time = t + tr.latency_ms / 1000
        if rng.random() < self.payload_share:
            tr.request_body = {"model": model.name, "stream": stream, "messages": [
                {"role": "system", "content": f"You are the {f.name} assistant."},
                {"role": "user", "content": "Where is my order? It was due on Monday."}]}
            if tr.status < 400:
                tr.response_body = {"id": "chatcmpl-bench", "object": "chat.completion",
                                    "model": tr.model_served, "choices": [{
                                        "index": 0, "finish_reason": "stop", "message": {
                                            "role": "assistant",
                                            "content": "It ships tomorrow; here is the link."}}],
                                    "usage": {"prompt_tokens": tr.usage.input_tokens,
                                              "completion_tokens": tr.usage.output_tokens}}
        return (tr, self._feedback(tr, f, rng), self._outcome(tr, f, rng),
                f.review and tr.status < 400 and rng.random() < REVIEW_SHARE)

    def _error(self, tr: Any, model: Model, rng: random.Random) -> None:
        etype, status = ERROR_KINDS[_pick_index(ERROR_CUM, rng)]
        tr.status, tr.error_type = status, etype
        tr.error_message = f"{etype.replace('_', ' ')} ({model.provider})"
        if status >= 500 or status == 429:
            tr.attempts = rng.choice((1, 2, 3))
            tr.attempt_log = [{"model": model.name, "deployment": model.provider,
                               "status": status, "error_type": etype,
                               "latency_ms": round(lognormal(rng, 400, 0.6), 3)}
                              for _ in range(tr.attempts)]
        tr.latency_ms = (rng.uniform(30000, 60000) if etype == "upstream_timeout"
                         else lognormal(rng, 150 if status == 429 else 800, 0.6))

    def _answer(self, tr: Any, f: Feature, model: Model, incident: bool,
                rng: random.Random) -> None:
        k = f.kind
        served = model
        first_ms = 0.0
        x = rng.random()
        if f.routed and (incident or x < FALLBACK_SHARE):  # the first attempt failed
            served = MODEL[FALLBACK[model.provider]]
            first_ms = lognormal(rng, 300, 0.6)
            etype, status = (("upstream_unavailable", 503) if incident
                             else ERROR_KINDS[_pick_index(ERROR_CUM[:4], rng)])
            tr.attempts = 2
            tr.model_served, tr.provider = served.name, served.provider
            tr.attempt_log = [{"model": model.name, "deployment": model.provider,
                               "status": status, "error_type": etype,
                               "latency_ms": round(first_ms, 3)}]
        elif x < FALLBACK_SHARE + RETRY_SHARE:  # a retry of the same model served it
            first_ms = lognormal(rng, 200, 0.6)
            tr.attempts = 2
            tr.attempt_log = [{"model": model.name, "deployment": model.provider,
                               "status": 429, "error_type": "upstream_rate_limited",
                               "latency_ms": round(first_ms, 3)}]
        n_in = max(1, int(lognormal(rng, *k.input_tokens)))
        n_out = max(1, int(lognormal(rng, *k.output_tokens)))
        cached = int(n_in * rng.uniform(0.5, 0.9)) if n_in >= 1024 and rng.random() < 0.3 \
            else 0
        reasoning = int(n_out * rng.uniform(1, 4)) if served.name == "o3-mini" else 0
        tr.usage = Usage(input_tokens=n_in, output_tokens=n_out + reasoning,
                         cached_tokens=cached, reasoning_tokens=reasoning)
        cost = ((n_in - cached) * served.input_per_mtok + cached * served.cached_per_mtok
                + (n_out + reasoning) * served.output_per_mtok) / 1e6
        if tr.attempts == 1 and rng.random() < k.cache_hits:
            tr.cache_hit, tr.cost_saved_usd, tr.attempts = True, cost, 0
            tr.latency_ms = lognormal(rng, 4.0, 0.5)
            if tr.stream:
                tr.ttft_ms = tr.latency_ms * 0.8
            return
        tr.cost_usd = cost
        ttft = served.ttft_ms * lognormal(rng, 1.0, 0.35) * (1 + n_in / 20000)
        gen = (n_out + reasoning) * served.ms_per_token * lognormal(rng, 1.0, 0.25)
        slow = lognormal(rng, math.e, 0.5) if rng.random() < 0.01 else 1.0
        tr.latency_ms = first_ms + (ttft + gen) * slow
        if tr.stream:
            tr.ttft_ms = first_ms + ttft * slow
        if tr.attempt_log is not None:
            tr.attempt_log.append({"model": served.name, "deployment": served.provider,
                                   "status": 200, "error_type": None,
                                   "latency_ms": round(tr.latency_ms - first_ms, 3)})

    def _feedback(self, tr: Any, f: Feature, rng: random.Random) -> dict[str, Any] | None:
        if tr.status >= 400 or rng.random() >= f.kind.feedback:
            return None
        x = rng.random()
        outcome = ("accepted" if x < 0.62 else "edited" if x < 0.82 else "rejected"
                   if x < 0.95 else "escalated")
        thumbs = 1 if outcome == "accepted" else -1 if outcome == "rejected" else None
        rework = round(rng.uniform(0.05, 0.6), 4) if outcome == "edited" else None
        critical = outcome == "rejected" and rng.random() < 0.05
        return {"team": tr.team, "id": f"fb_{tr.id}", "trace_id": tr.id,
                "at": min(tr.start_time + rng.uniform(5, 1800), self.end - 0.001),
                "trace_time": tr.start_time, "source": "user", "thumbs": thumbs,
                "outcome": outcome, "edit_distance": int(rework * 400) if rework else None,
                "rework": rework, "corrected_text": None, "score_name": None, "score": None,
                "critical_error": critical,
                "critical_category": "wrong_fact" if critical else None, "comment": None,
                "key_id": tr.key_id, "feature": tr.feature, "model": tr.model_requested,
                "prompt": f"{tr.prompt_name}@{tr.prompt_version}" if tr.prompt_name else None}

    def _outcome(self, tr: Any, f: Feature, rng: random.Random) -> dict[str, Any] | None:
        if not f.value_unit or tr.status >= 400 or rng.random() >= 0.05:
            return None
        return {"team": tr.team, "id": f"o_{tr.id}", "name": f.value_unit, "value": 1.0,
                "feature": f.name, "trace_ids": [tr.id],
                "at": min(tr.start_time + rng.uniform(60, 3600), self.end - 0.001),
                "key_id": tr.key_id}


def _pick_index(cum: Any, rng: random.Random) -> int:
    return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _finding(scanner: str, score: float, stage: str, action: str, why: str,
             matches: list[list[Any]] | None = None) -> dict[str, Any]:
    return {"scanner": scanner, "score": score, "triggered": True, "matches": matches or [],
            "explanation": why, "stage": stage, "action": action}


@dataclass
class Batch:
    rows: list[tuple[Any, ...]]
    payloads: list[tuple[Any, ...]]
    feedback: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    held: list[dict[str, Any]]  # answers to hold for review (trace fields)
    samples: list[dict[str, Any]]  # traces worth opening: with a payload and feedback
    built_s: float = 0.0


def produce(out: Any, spec: dict[str, Any]) -> None:
    """The generating process: every hour's traces, as rows, in batches, in time order."""
    world = World(spec["seed"])
    world.keys = {tuple(k.split("\t")): v for k, v in spec["keys"].items()}  # type: ignore[misc]
    traffic = Traffic(world, spec["seed"], spec["start"], spec["end"], spec["payload_share"])
    counts = hour_counts(spec["traces"], spec["start"], spec["end"])
    size = spec["batch"]
    cur = Batch([], [], [], [], [], [])
    a = time.perf_counter()
    for h, count in enumerate(counts):
        for tr, fb, oc, hold in traffic.hour(h, count):
            cur.rows.append(trace_values(tr))
            p = payload_values(tr)
            if p is not None:
                cur.payloads.append(p)
                if fb is not None:
                    cur.samples.append({"id": tr.id, "start_time": tr.start_time,
                                        "feature": tr.feature})
            if fb is not None:
                cur.feedback.append(fb)
            if oc is not None:
                cur.outcomes.append(oc)
            if hold:
                cur.held.append({
                    "trace_id": tr.id, "key_id": tr.key_id, "team": tr.team,
                    "feature": tr.feature, "policy": tr.policy,
                    "policy_version": tr.policy_version, "start_time": tr.start_time,
                    "model": tr.model_served})
            if len(cur.rows) >= size:
                cur.built_s = time.perf_counter() - a
                out.put(cur)
                cur = Batch([], [], [], [], [], [])
                a = time.perf_counter()
    if cur.rows:
        cur.built_s = time.perf_counter() - a
        out.put(cur)
    out.put(None)
