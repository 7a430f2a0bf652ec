"""Loading the demo's month into its store, through keel's own components.

The loader composes keel from the demo's config as ``keel serve`` does (``AppState``),
with the scenario's clock (``keel.demo.clock``) handed to the parts that read the time of
an event: the gateway's in-process door (``LocalGateway``: when each trace starts, and its
id), limits and budgets (their periods and windows), reviews (holds and decisions) and
feedback. Then, in order: the prompt versions and their labels are pushed to the registry;
the month's sessions are replayed through the gateway (``keel.demo.replay``), the story's
events among them; once the traces are stored, people react (``keel.demo.reactions``);
the eval schedule runs on each day; and the store is closed. Every row
is written by the service that owns it; nothing is inserted behind keel's back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import yaml

from keel.config import KeelConfig, load_config
from keel.demo.clock import SimClock
from keel.demo.facts import story_facts
from keel.demo.home import CONFIG_FILE, PROMPTS_FILE, DemoHome
from keel.demo.reactions import Reacted, Reactions
from keel.demo.replay import Replay
from keel.demo.story import DAY, HOUR, Timeline
from keel.demo.traffic import DEFAULT_REQUESTS, DEFAULT_SEED, plan
from keel.evals.runner.pipeline import Runner
from keel.evals.schedule import EvalScheduler
from keel.evals.suite import load_suite
from keel.gateway.calls import ModelCalls
from keel.gateway.internal import LocalGateway
from keel.keys.service import reset_master_key
from keel.limits import Limits
from keel.monitor.alerts.manager import AlertManager
from keel.monitor.drift_schedule import DriftMonitor
from keel.prompts.spec import PromptSpec
from keel.review import ReviewService
from keel.server.state import AppState
from keel.store import Store

AUTHOR = "keel demo"


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a load did (the numbers of the story are in ``keel.demo.facts``)."""

    requests: int  # sent through the gateway by the month's sessions
    sessions: int
    reactions: Reacted
    eval_runs: int
    seconds: float


def demo_config(requests: int = DEFAULT_REQUESTS) -> KeelConfig:
    """The demo's config, read by keel's config loader; for a month of more than the
    default requests, its budgets grow with the traffic (they are sized for the default),
    so the story's traffic never runs into them."""
    config = load_config(CONFIG_FILE, required=True)
    scale = requests / DEFAULT_REQUESTS
    if scale <= 1:
        return config
    return config.model_copy(update={"budgets": [
        b.model_copy(update={"usd": round(b.usd * scale, 2)}) for b in config.budgets]})


async def load(home: DemoHome, *, requests: int = DEFAULT_REQUESTS, seed: int = DEFAULT_SEED,
               now: float | None = None) -> Loaded:
    """Load the month that ends at ``now`` (default: the current time) into ``home``,
    which must be a new or emptied demo directory; returns what was loaded."""
    began = time.perf_counter()
    end = time.time() if now is None else now
    timeline = Timeline.ending(end)
    settings = home.settings()
    config = demo_config(requests)
    clock = SimClock(timeline.start)
    st = AppState.build(settings, config)
    st.reviews = st.flow.reviews = ReviewService(st.store, st.audit, clock=clock)
    await st.start(schedule=False)
    try:
        await _timed_limits(st, config, clock)
        if home.admin_key() is None:
            home.keep_admin_key(await reset_master_key(st.store))
        await push_prompts(st)
        sessions = plan(seed, requests, timeline)
        reactions = Reactions(st, clock, timeline, seed)
        replay = Replay(st, clock, timeline, seed, on_played=reactions.submit)
        evals = await EvalRuns.prepare(st, clock, timeline)
        for at in evals.times():
            replay.at(at, partial(evals.run, at))
        reactions.start()
        played = await replay.run(sessions)
        reacted = await reactions.finish()
        await st.writer.flush()
        await evaluate_signals(st, config, timeline)
    finally:
        await st.aclose()
    if st.shutdown_problems:
        raise RuntimeError("the demo's store did not close cleanly: "
                           + "; ".join(st.shutdown_problems))
    sent = sum(len(p.trace_ids) for p in played)
    return Loaded(requests=sent, sessions=len(sessions), reactions=reacted, eval_runs=evals.runs,
                  seconds=time.perf_counter() - began)


SIGNAL_DAYS = 16  # the alert loop is replayed over the last days of the month ...
SIGNAL_STEP_S = 2 * HOUR  # ... every two hours


async def evaluate_signals(st: AppState, config: KeelConfig, timeline: Timeline) -> None:
    """What keel serve's loops would have found over the month's last days: each feature's
    drift checked at the end, and the alert rules evaluated every ``SIGNAL_STEP_S`` up to
    the end, their tracks and transitions stored as the alert loop stores them (nothing is
    notified: the demo has no receivers)."""
    drift = DriftMonitor(st.store, config, replica=AUTHOR)
    for feature in drift.features:
        await drift.check(feature, timeline.end)
    manager = AlertManager(st.store, config, None, replica=AUTHOR)
    at = timeline.end - SIGNAL_DAYS * DAY
    while at < timeline.end:
        await manager.tick(at)
        at += SIGNAL_STEP_S
    await manager.tick(timeline.end)


async def read_facts(home: DemoHome) -> dict[str, Any]:
    """The story's numbers in a loaded demo directory (``keel.demo.facts``)."""
    marker = home.loaded()
    if marker is None:
        raise ValueError(f"{home.path} holds no loaded demo")
    store = Store(home.settings().resolved_database_url())
    try:
        units = {f.name: f.value_unit for f in demo_config().features if f.value_unit}
        return await story_facts(store, Timeline.ending(float(marker["now"])), units)
    finally:
        await store.aclose()


async def ensure_admin_key(home: DemoHome) -> str:
    """The demo's admin key; a new one if its file was lost (the store keeps its hash)."""
    key = home.admin_key()
    if key is not None:
        return key
    store = Store(home.settings().resolved_database_url())
    try:
        await store.upgrade()
        key = await reset_master_key(store)
    finally:
        await store.aclose()
    home.keep_admin_key(key)
    return key


async def _timed_limits(st: AppState, config: KeelConfig, clock: Callable[[], float]) -> None:
    """Limits and budgets on the scenario's clock, in place of the ones ``start`` made."""
    old = st.limits
    limits = Limits(config, st.store, None, prefix=st.settings.redis_prefix, clock=clock)
    await limits.start()
    st.limits = st.flow.limits = limits
    if old is not None:
        await old.aclose()


async def push_prompts(st: AppState) -> None:
    """The prompt versions of ``prompts.yaml``, oldest first, and their first labels."""
    entries: list[dict[str, Any]] = yaml.safe_load(PROMPTS_FILE.read_text(encoding="utf-8"))
    for entry in entries:
        name = entry["name"]
        for v in entry["versions"]:
            spec = {k: x for k, x in v.items() if k not in ("message", "author")}
            await st.prompts.push(PromptSpec.parse({"name": name, **spec}, str(PROMPTS_FILE)),
                                  message=v["message"], author=v["author"])
        for label, version in entry["labels"].items():
            await st.prompts.set_label(f"{name}@{version}", label, actor=AUTHOR)


def _ticking(start: float, step: float = 1.3) -> Callable[[], float]:
    """A clock that moves ``step`` seconds on from ``start`` each time it is read."""
    at = [start - step]

    def now() -> float:
        at[0] += step
        return at[0]

    return now


class EvalRuns:
    """The demo config's eval schedule (``evals.schedule``: the support suite daily at
    03:00 UTC), run through keel's scheduler on each day of the month: each day's run
    starts when the replay reaches it, on the production version of that day (version 2
    before the label moved, 3 after), and claims the day, as a server would have."""

    def __init__(self, st: AppState, clock: SimClock, timeline: Timeline) -> None:
        self.st = st
        self.clock = clock
        self.timeline = timeline
        self.runs = 0
        self._last: asyncio.Task[Any] | None = None

    @classmethod
    async def prepare(cls, st: AppState, clock: SimClock, timeline: Timeline) -> EvalRuns:
        """The suites' datasets imported once (each run then finds its own unchanged)."""
        for entry in st.config.evals.schedule:
            suite = load_suite(CONFIG_FILE.parent / entry.suite)
            await Runner(st.store, st.prompts, st.local_gateway()).dataset(suite)
        return cls(st, clock, timeline)

    def times(self) -> list[float]:
        """A moment after each scheduled time of the month."""
        tl = self.timeline
        first = dt.datetime.fromtimestamp(tl.start, dt.UTC).replace(
            hour=0, minute=0, second=0, microsecond=0).timestamp()
        out = []
        for entry in self.st.config.evals.schedule:
            hh, mm = (int(x) for x in entry.at.split(":"))
            at = first + hh * HOUR + mm * 60 + 30
            while at < tl.end:
                if at > tl.start:
                    out.append(at)
                at += DAY
        return sorted(set(out))

    async def run(self, at: float) -> None:
        """One day's tick; after the day before's, so each finds the results the ones before
        it stored (the runner's result cache), whatever the replay's pace."""
        before, self._last = self._last, asyncio.current_task()
        if before is not None:
            await before
        self.clock.set(at)

        def calls_for(feature: str) -> ModelCalls:
            return LocalGateway(self.st.flow, team="eval", feature=feature, clock=_ticking(at))

        scheduler = EvalScheduler(self.st.store, self.st.prompts, calls_for,
                                  self.st.config.evals, CONFIG_FILE.parent)
        ran = await scheduler.tick(at)
        self.runs += len(ran)
