"""A background task that calls a coroutine every few seconds (refreshing an in-memory
index from the store). A failed call is logged and the next one tried; the holder keeps
what it has in memory meanwhile. Imports nothing from keel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class Poller:
    def __init__(self, name: str, log: logging.Logger, failure: str) -> None:
        self.name = name
        self.log = log
        self.failure = failure  # logged (with the exception) when a call fails
        self._task: asyncio.Task[None] | None = None

    def start(self, tick: Callable[[], Awaitable[None]], interval_s: float) -> None:
        self._task = asyncio.create_task(self._run(tick, interval_s), name=self.name)

    async def _run(self, tick: Callable[[], Awaitable[None]], interval_s: float) -> None:
        while True:
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
