"""The audit log's integrity as the overview shows it: the last verification's outcome,
refreshed in the background at most every ``EVERY_S`` (a full verification reads every
entry, so no page waits for one; the governance page verifies on demand)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from keel.audit import AuditLog
from keel.audit.chain import VerifyReport

__all__ = ["Integrity"]

log = logging.getLogger("keel.console")
EVERY_S = 600.0


@dataclass(slots=True)
class Checked:
    at: float
    report: VerifyReport


class Integrity:
    def __init__(self, audit: AuditLog, every_s: float = EVERY_S) -> None:
        self.audit = audit
        self.every_s = every_s
        self.last: Checked | None = None
        self._task: asyncio.Task[None] | None = None

    def current(self) -> Checked | None:
        """The last outcome (None before the first), starting a new verification in the
        background when it is older than ``every_s``."""
        due = self.last is None or time.time() - self.last.at >= self.every_s
        if due and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._verify(), name="keel-console-audit-verify")
        return self.last

    async def _verify(self) -> None:
        try:
            report = await self.audit.verify()
        except Exception:  # shown as not verified; logged for the operator
            log.exception("verifying the audit log for the console failed")
            return
        self.last = Checked(time.time(), report)

    async def verify_now(self) -> Checked:
        """Verify at once (the governance page's button), and keep the outcome."""
        report = await self.audit.verify()
        self.last = Checked(time.time(), report)
        return self.last

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
