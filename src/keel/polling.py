"""A background task that calls a coroutine every few seconds (refreshing an in-memory
index from the store), or at ticks aligned to a clock (``aligned``: every multiple of the
interval, plus ``after_s``, so that replicas tick together and one claims each tick). A
failed call is logged and the next one tried; the holder keeps what it has in memory
meanwhile. Imports nothing from keel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable


class Poller:
    def __init__(self, name: str, log: logging.Logger, failure: str) -> None:
        self.name = name
        self.log = log
        self.failure = failure  # logged (with the exception) when a call fails
        self._task: asyncio.Task[None] | None = None

    def start(self, tick: Callable[[], Awaitable[object]], interval_s: float, *,
              aligned: bool = False, after_s: float = 0.0,
              clock: Callable[[], float] = time.time) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                self._run(tick, interval_s, aligned, after_s, clock), name=self.name)

    async def _run(self, tick: Callable[[], Awaitable[object]], interval_s: float,
                   aligned: bool, after_s: float, clock: Callable[[], float]) -> None:
        while True:
            if aligned:
                now = clock()
                wake = (math.floor(now / interval_s) + 1) * interval_s + after_s
                await asyncio.sleep(max(0.0, wake - now))
            else:
                await asyncio.sleep(interval_s)
            try:
                await tick()
            except Exception:
                self.log.exception(self.failure)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
