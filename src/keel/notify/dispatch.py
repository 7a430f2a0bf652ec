"""The ``Dispatcher``: hands notifications to receivers in the background, retrying with
backoff, and keeps per-receiver delivery state for status pages.

Each receiver has its own bounded queue and one worker, so a receiver that is down or slow
delays only its own notifications, which it receives in order. ``submit`` puts a
notification on the queues and returns at once; it never waits and never raises (a full
queue drops the notification, counted as ``dropped``). A worker makes an attempt under the
receiver's ``timeout_s``; a failure that may pass (see ``DeliveryFailed.retry``) is tried
again after ``backoff.delay(n)`` (at least what a ``Retry-After`` asked), until
``attempts`` attempts were made or the next one would come more than ``max_age_s`` after
``submit``; then the notification is given up, counted as ``failed``, and logged.

``status()`` is the state for a status endpoint: per receiver the counts (``sent``,
``failed``, ``retrying`` now, ``retries`` made, ``dropped``, ``queued``), the last error
and when, and the last success. Call ``submit`` from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from keel.backoff import Backoff
from keel.config import ReceiverConfig
from keel.notify.model import Notification
from keel.notify.smtp import EmailSender
from keel.notify.transport import DeliveryFailed, Sender
from keel.notify.webhook import WebhookSender

log = logging.getLogger(__name__)

DEFAULT_BACKOFF = Backoff(base=2.0, factor=2.0, cap=300.0, jitter="equal")
QUEUE_SIZE = 256
_ERROR_MAX = 500


@dataclass(slots=True)
class ReceiverState:
    kind: str
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    retries: int = 0
    dropped: int = 0
    last_error: str | None = None
    last_error_at: float | None = None  # wall clock, seconds since the epoch
    last_sent_at: float | None = None
    last_outcome: str | None = None  # "sent" | "failed": how the last finished delivery ended


@dataclass(slots=True)
class _Lane:
    config: ReceiverConfig
    sender: Sender
    queue: asyncio.Queue[tuple[Notification, float]]
    state: ReceiverState
    worker: asyncio.Task[None] | None = None


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat().replace(
        "+00:00", "Z")


class Dispatcher:
    """Delivers notifications to the configured receivers; see the module docstring.

    ``async with Dispatcher(config.receivers) as d: d.submit(n)``, or ``start`` and
    ``close``. ``rng`` feeds the backoff's jitter; ``clock`` (monotonic seconds) measures
    a notification's age."""

    def __init__(self, receivers: Sequence[ReceiverConfig], *,
                 queue_size: int = QUEUE_SIZE, backoff: Backoff = DEFAULT_BACKOFF,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if queue_size < 1:
            raise ValueError("Dispatcher: queue_size must be at least 1")
        self.backoff = backoff
        self._rng = rng
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._started = False
        self._lanes: dict[str, _Lane] = {}
        for config in receivers:
            sender: Sender
            if config.kind == "webhook":
                sender = WebhookSender(config, self._http)
            else:
                sender = EmailSender(config)
            self._lanes[config.name] = _Lane(config, sender, asyncio.Queue(queue_size),
                                             ReceiverState(kind=config.kind))

    @property
    def receivers(self) -> list[str]:
        return list(self._lanes)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        for name, lane in self._lanes.items():
            lane.worker = asyncio.create_task(self._work(lane), name=f"keel-notify-{name}")

    async def __aenter__(self) -> Dispatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def submit(self, notification: Notification, receivers: Iterable[str] | None = None
               ) -> int:
        """Queue ``notification`` for each of ``receivers`` (default: all); how many took
        it. Returns at once; never raises."""
        try:
            return self._submit(notification, receivers)
        except Exception:  # the caller is an alert loop: it must never fail because of us
            log.exception("notify: could not queue notification %s", notification.id)
            return 0

    def _submit(self, notification: Notification, receivers: Iterable[str] | None) -> int:
        if self._closed:
            log.warning("notify: dispatcher closed; notification %s not sent", notification.id)
            return 0
        if isinstance(receivers, str):  # one name, not its letters
            receivers = [receivers]
        names = list(self._lanes) if receivers is None else list(receivers)
        queued = 0
        now = self._clock()
        for name in names:
            lane = self._lanes.get(name)
            if lane is None:
                log.warning("notify: no receiver named %r; notification %s not sent to it",
                            name, notification.id)
                continue
            try:
                lane.queue.put_nowait((notification, now))
            except asyncio.QueueFull:
                lane.state.dropped += 1
                self._error(lane, f"queue full ({lane.queue.maxsize}): notification "
                                  f"{notification.id} dropped")
                continue
            queued += 1
        return queued

    async def drain(self) -> None:
        """Wait until every queued notification was delivered or given up."""
        await asyncio.gather(*(lane.queue.join() for lane in self._lanes.values()))

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop taking notifications, give those queued up to ``grace_s`` seconds to go,
        then stop the workers (what is left is logged) and close connections."""
        self._closed = True
        if any(lane.worker is not None for lane in self._lanes.values()):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), grace_s)
        for lane in self._lanes.values():
            if lane.worker is not None:
                lane.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lane.worker
                lane.worker = None
            left = lane.queue.qsize()
            if left:
                log.warning("notify: receiver %s: %d notification(s) not sent at shutdown",
                            lane.config.name, left)
            await lane.sender.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def status(self) -> dict[str, Any]:
        """Per receiver: counts, the last error and the last success (JSON-ready)."""
        out: dict[str, Any] = {}
        for name, lane in self._lanes.items():
            s = lane.state
            out[name] = {"kind": s.kind, "queued": lane.queue.qsize(), "sent": s.sent,
                         "failed": s.failed, "retrying": s.retrying, "retries": s.retries,
                         "dropped": s.dropped, "last_error": s.last_error,
                         "last_error_at": _iso(s.last_error_at),
                         "last_sent_at": _iso(s.last_sent_at),
                         "ok": s.last_outcome != "failed" and not s.retrying}
        return out

    def _error(self, lane: _Lane, message: str) -> None:
        lane.state.last_error = message[:_ERROR_MAX]
        lane.state.last_error_at = time.time()

    async def _work(self, lane: _Lane) -> None:
        while True:
            notification, since = await lane.queue.get()
            try:
                await self._deliver(lane, notification, since)
            except Exception:  # a bug of ours: keep the worker alive for the next one
                log.exception("notify: receiver %s: delivery of %s failed",
                              lane.config.name, notification.id)
            finally:
                lane.queue.task_done()

    async def _attempt(self, lane: _Lane, notification: Notification) -> DeliveryFailed | None:
        timeout = lane.config.timeout_s
        try:
            async with asyncio.timeout(timeout):
                await lane.sender.send(notification)
        except DeliveryFailed as exc:
            return exc
        except TimeoutError:
            # the same words as a sender's own timeout, which fires at the same moment
            return DeliveryFailed(f"{lane.config.name} did not answer within {timeout:g}s",
                                  retry=True)
        except Exception as exc:  # a sender's unexpected failure may pass: try again
            return DeliveryFailed(f"{type(exc).__name__}: {exc}", retry=True)
        return None

    async def _deliver(self, lane: _Lane, notification: Notification, since: float) -> None:
        config, state = lane.config, lane.state
        attempt = 0
        try:
            while True:
                attempt += 1
                failure = await self._attempt(lane, notification)
                if failure is None:
                    state.sent += 1
                    state.last_sent_at = time.time()
                    state.last_outcome = "sent"
                    return
                self._error(lane, str(failure))
                delay = self._delay(failure, attempt)
                why = self._give_up(lane, failure, attempt, self._clock() - since + delay)
                if why is not None:
                    state.failed += 1
                    state.last_outcome = "failed"
                    log.warning("notify: receiver %s: gave up on notification %s after %d "
                                "attempt(s) (%s): %s", config.name, notification.id, attempt,
                                why, failure)
                    return
                if attempt == 1:
                    state.retrying += 1
                await asyncio.sleep(delay)
                state.retries += 1
        finally:
            if attempt > 1:
                state.retrying -= 1

    def _delay(self, failure: DeliveryFailed, attempt: int) -> float:
        delay = self.backoff.delay(attempt - 1, self._rng)
        if failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        return delay

    def _give_up(self, lane: _Lane, failure: DeliveryFailed, attempt: int, age: float
                 ) -> str | None:
        """Why not to try again (``age``: the notification's at the next attempt)."""
        if not failure.retry:
            return "not retryable"
        if attempt >= lane.config.attempts:
            return f"{lane.config.attempts} attempts"
        if age > lane.config.max_age_s:
            return f"older than {lane.config.max_age_s:g}s"
        return None
