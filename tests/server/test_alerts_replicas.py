"""Two keel replicas on one PostgreSQL, each running the alert loop (a 10 s interval), with
one webhook receiver on loopback: each tick is evaluated by one replica, and a firing group
is notified once, not once per replica."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import orjson
import sqlalchemy as sa

from keel.store.schema import schedule_ticks
from tests.monitor.alerts.history import Slice, write
from tests.notify.receivers import HttpReceiver
from tests.server.test_alerts_api import SECRET
from tests.support.keel import running_keel


async def test_two_replicas_evaluate_each_tick_once_and_notify_once(
        tmp_path: Path, postgres_url: str) -> None:
    http = await HttpReceiver().start()
    config = {
        "providers": [{"name": "mock", "kind": "mock"}],
        "models": [{"name": "m1", "provider": "mock"}],
        "receivers": [{"name": "hook", "kind": "webhook", "url": f"{http.url}/hook",
                       "secret": SECRET}],
        "alerts": {"builtins": False, "interval": "10s", "rules": [
            {"name": "errors", "measure": "error_rate", "window": "30m", "critical": 0.25,
             "scope": {"by": "feature"}}]},
    }
    try:
        with running_keel(tmp_path / "a", config, postgres_url) as a, \
                running_keel(tmp_path / "b", config, postgres_url) as b:
            now = time.time()
            a.run(write(a.state.store, [Slice(now - 900, now - 60, 50, errors=20)],
                        random.Random(9)))
            await http.wait_for(1)
            first_tick = time.time()
            await asyncio.sleep(32)  # three more ticks: still firing, nothing new to send
            assert len(http.requests) == 1
            doc = orjson.loads(http.requests[0].body)
            assert doc["status"] == "firing" and doc["group_labels"] == {"feature": "support"}

            async def ticks() -> list[tuple[float, str]]:
                async with a.state.store.connect() as conn:
                    rows = (await conn.execute(sa.select(schedule_ticks.c.tick,
                                                         schedule_ticks.c.claimed_by)
                                               .where(schedule_ticks.c.job == "alerts",
                                                      schedule_ticks.c.tick >= first_tick - 10)
                                               )).all()
                return [(r[0], r[1]) for r in rows]

            claimed = a.run(ticks())
            assert len(claimed) >= 3
            assert len({t for t, _ in claimed}) == len(claimed)  # one claim per tick
            assert {by for _, by in claimed} <= {a.state.alerts.replica,  # type: ignore[union-attr]
                                                 b.state.alerts.replica}  # type: ignore[union-attr]
    finally:
        await http.stop()
