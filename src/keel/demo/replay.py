"""Playing the month's sessions through the gateway, as the clients would have sent them.

Each session runs in a task of its own, on the scenario's clock (``keel.demo.clock``): its
prompt version is resolved from the registry's label when it starts, each turn is sent
through ``LocalGateway`` (validation, attribution, the guard policy, limits and budgets,
the route's cache, the plan with its fallback, the trace) with the conversation so far,
and a tool call is answered with the tool's result in the next turn. Many sessions are in
flight at once, so a month loads in seconds.

What must not depend on that concurrency does not:

- the story's events happen between sessions: the outage starts and ends once every
  session before it has finished, and the label move applies to the sessions that start
  after it;
- a session whose first request is the same as an earlier one's (a help-centre question
  asked again) waits for that one, so whether it is answered from the cache is decided by
  the plan, not by which task ran first.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson

from keel.config import ErrorRates, ProviderConfig
from keel.demo.clock import SimClock
from keel.demo.story import (
    CHANGED_VERSION,
    COMPANY,
    MODEL,
    PRIMARY_PROVIDER,
    PRODUCTION,
    PROMPTS,
    RESEARCH,
    SUPPORT,
    Timeline,
    team,
)
from keel.demo.texts import ORDER_STATES
from keel.demo.traffic import Session
from keel.gateway.internal import LocalGateway
from keel.guard.engine import HeldForReview
from keel.prompts.registry import PromptVersion
from keel.server.state import AppState
from keel.types import JSON

CONCURRENCY = 200  # sessions in flight at once
CHANGED_BY = ("marco.bianchi", "shorter, friendlier answers; cap the length to cut cost")


@dataclass(slots=True)
class Played:
    """What a session's requests came to: what its feedback and reviews are decided from."""

    session: Session
    prompt: tuple[str, int]
    trace_ids: list[str] = field(default_factory=list)
    answer: str = ""  # the text of the last answer
    blocked: int = 0  # requests the guard policy answered with its safe reply
    escalated: bool = False  # the model handed the conversation to a person
    review_id: str | None = None  # a held answer
    errors: int = 0

    @property
    def last_trace(self) -> str | None:
        return self.trace_ids[-1] if self.trace_ids else None


def first_key(s: Session, body: JSON) -> str:
    """What decides whether two sessions' first requests share a cached answer: the team
    (the cache's namespace) and everything of the body but who sent it."""
    same = {k: v for k, v in body.items() if k not in ("user", "metadata")}
    return hashlib.sha256(orjson.dumps([s.team, same], option=orjson.OPT_SORT_KEYS)).hexdigest()


class Replay:
    """Plays sessions through the gateway of ``st``; ``on_played`` is told of each one that
    has finished (its reactions are recorded meanwhile)."""

    def __init__(self, st: AppState, clock: SimClock, timeline: Timeline, seed: int, *,
                 on_played: Callable[[Played], None] | None = None) -> None:
        self.st = st
        self.clock = clock
        self.timeline = timeline
        self.seed = seed
        self.on_played = on_played
        self.gateways: dict[str, LocalGateway] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self._healthy: ProviderConfig | None = None
        # (time, what happens, whether every call before it must have finished first)
        self._events: list[tuple[float, Callable[[float], Awaitable[None]], bool]] = [
            (timeline.prompt_change, self._move_label, False),
            (timeline.outage[0], self._outage_starts, True),
            (timeline.outage[1], self._outage_ends, True),
        ]

    def at(self, when: float, job: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Start ``job`` (say, an eval run) when the month reaches ``when``; it runs beside
        the sessions, and an outage waits for it like for them."""

        async def start(at: float) -> None:
            self._track(asyncio.create_task(job()))

        self._events.append((when, start, False))

    def _gateway(self, s: Session) -> LocalGateway:
        gw = self.gateways.get(s.team)
        if gw is None:
            gw = self.gateways[s.team] = LocalGateway(
                self.st.flow, team=s.team, feature=s.feature, clock=self.clock, cache=True)
        return gw

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    # --- the month ---------------------------------------------------------------------------

    async def run(self, sessions: list[Session]) -> list[Played]:
        slots = asyncio.Semaphore(CONCURRENCY)
        tasks: list[asyncio.Task[Played]] = []
        by_key: dict[str, asyncio.Task[Played]] = {}
        events = sorted(self._events, key=lambda e: e[0])
        for s in sessions:
            while events and events[0][0] <= s.start:
                await self._happen(*events.pop(0))
            version = self.st.prompts.resolve(f"{PROMPTS[s.feature]}@{PRODUCTION}")
            key = first_key(s, self._body(s, version, self._first_messages(s, version)))
            await slots.acquire()
            task = asyncio.create_task(self._play(s, version, by_key.get(key)))
            task.add_done_callback(lambda _: slots.release())
            task.add_done_callback(self._played)
            self._track(task)
            tasks.append(task)
            by_key[key] = task
        for event in events:
            await self._happen(*event)
        played = list(await asyncio.gather(*tasks))
        await self._settled()
        return played

    def _played(self, task: asyncio.Task[Played]) -> None:
        if self.on_played is not None and not task.cancelled() and task.exception() is None:
            self.on_played(task.result())

    async def _happen(self, at: float, event: Callable[[float], Awaitable[None]],
                      quiet: bool) -> None:
        if quiet:
            await self._settled()
        self.clock.set(at)
        await event(at)

    async def _settled(self) -> None:
        """Every call started so far has finished, and its cache write with it."""
        while self._running:
            await asyncio.gather(*list(self._running))
        await self.st.gateway.drain()

    async def _move_label(self, at: float) -> None:
        """(a) The support team moves production to the version with capped answers."""
        name = PROMPTS[SUPPORT]
        await self.st.prompts.set_label(f"{name}@{CHANGED_VERSION}", PRODUCTION,
                                        actor=CHANGED_BY[0], reason=CHANGED_BY[1])

    async def _outage_starts(self, at: float) -> None:
        """(b) The primary provider answers every call with a server error (the mock
        provider's ``errors.server_error`` rate, set to 1)."""
        provider = self.st.gateway.providers[PRIMARY_PROVIDER]
        self._healthy = provider.config
        provider.config = provider.config.model_copy(
            update={"errors": ErrorRates(server_error=1.0)})

    async def _outage_ends(self, at: float) -> None:
        assert self._healthy is not None
        self.st.gateway.providers[PRIMARY_PROVIDER].config = self._healthy

    # --- one session -------------------------------------------------------------------------

    def _variables(self, s: Session) -> dict[str, str]:
        return {"brand": COMPANY, "company": COMPANY, "region": team(s.team).region}

    def _first_messages(self, s: Session, version: PromptVersion) -> list[JSON]:
        messages = version.spec.render(self._variables(s), f"{version.name}@{version.version}")
        return [*messages, {"role": "user", "content": self._user_text(s, 0)}]

    def _user_text(self, s: Session, i: int) -> str:
        text = s.turns[i].text or ""
        if i == 0 and s.feature == RESEARCH:
            return f"Passages:\n\n{s.context}\n\nQuestion: {text}"
        if i == 0 and s.context is not None:
            return f"{text}\n\n{s.context}"
        return text

    def _body(self, s: Session, version: PromptVersion, messages: list[JSON]) -> JSON:
        spec = version.spec
        body: JSON = {**spec.params, "model": spec.model or MODEL, "messages": messages,
                      "user": s.user, "metadata": self._tags(s)}
        if spec.tools is not None:
            body["tools"] = list(spec.tools)
        return body

    def _tags(self, s: Session) -> dict[str, str]:
        tags = {"session": s.id, "channel": "help-widget" if s.feature == SUPPORT
                else "web-app"}
        if s.feature == RESEARCH:
            tags["retrieved_passages"] = str(s.passages)
        if "counterparty" in s.detail:
            tags["counterparty"] = s.detail["counterparty"]
        return tags

    async def _play(self, s: Session, version: PromptVersion,
                    after: asyncio.Task[Played] | None) -> Played:
        """The session's turns; ``after``: the earlier session that sent the same first
        request, whose answer (and its cache write) comes first."""
        if after is not None:
            await after
            await self.st.gateway.drain()
        played = Played(s, (version.name, version.version))
        rng = random.Random(f"{self.seed}:{s.id}:tools")
        gw = self._gateway(s)
        messages = self._first_messages(s, version)
        call: JSON | None = None
        for i, turn in enumerate(s.turns):
            self.clock.set(turn.at)
            if i > 0 and turn.text is None:  # the tool's result, for the call just made
                if call is None:
                    break
                messages += [{"role": "assistant", "content": None, "tool_calls": [call]},
                             {"role": "tool", "tool_call_id": call["id"],
                              "content": tool_result(s, call, rng)}]
            elif i > 0:
                messages += [{"role": "assistant", "content": played.answer},
                             {"role": "user", "content": self._user_text(s, i)}]
            reply = await gw.chat(self._body(s, version, list(messages)),
                                  prompt=played.prompt)
            played.trace_ids.append(reply.trace_id)
            if isinstance(reply.error, HeldForReview):
                played.review_id = reply.error.review_id
                break
            if reply.error is not None or reply.body is None:
                played.errors += 1
                break
            choice = (reply.body.get("choices") or [{}])[0]
            message = choice.get("message") or {}
            call = (message.get("tool_calls") or [None])[0]
            if call is not None and call["function"]["name"] == "escalate_to_human":
                played.escalated = True
            played.answer = message.get("content") or played.answer
            if choice.get("finish_reason") == "content_filter":
                played.blocked += 1
        return played


def tool_result(s: Session, call: JSON, rng: random.Random) -> str:
    """What the support system answers to the model's tool call."""
    name = call["function"]["name"]
    if name == "lookup_order":
        out: dict[str, Any] = {"order_id": s.detail.get("order"),
                               "status": rng.choice(ORDER_STATES),
                               "items": rng.randint(1, 4),
                               "estimated_delivery_days": rng.randint(1, 6)}
    else:
        out = {"ticket": f"SUP-{rng.randrange(100000, 999999)}", "queue": "tier-2",
               "expected_wait_minutes": rng.choice((5, 10, 20, 45))}
    return orjson.dumps(out).decode()
