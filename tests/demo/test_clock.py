"""The injected clock: a call from inside keel on a clock of its own is traced at that
clock's time, with an id that sorts by it; each task of the scenario reads its own time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from keel.config import Settings, default_config
from keel.demo.clock import SimClock
from keel.gateway.internal import LocalGateway
from keel.server.state import AppState
from keel.store.traces import get_trace
from keel.types import new_trace_id, trace_id_at

BODY = {"model": "mock", "messages": [{"role": "user", "content": "hello there"}]}


async def test_a_local_call_on_an_injected_clock_is_traced_at_its_time(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), database_url=f"sqlite:///{tmp_path / 'k.db'}",
                        master_key="sk-test")
    st = AppState.build(settings, default_config())
    await st.start(schedule=False)
    try:
        then = time.time() - 20 * 86400 + 0.25
        past = await LocalGateway(st.flow, team="t", feature="f", clock=lambda: then).chat(BODY)
        now = await LocalGateway(st.flow, team="t", feature="f").chat(BODY)
        await st.writer.flush()
        old, new = await get_trace(st.store, past.trace_id), await get_trace(st.store, now.trace_id)
    finally:
        await st.aclose()
    assert old is not None and new is not None
    assert old["start_time"] == then and abs(new["start_time"] - time.time()) < 60
    assert past.trace_id[:12] == f"{int(then * 1000):012x}"
    assert past.trace_id < now.trace_id
    assert old["team"] == "t" and old["status"] == 200


def test_trace_ids_at_a_time_sort_like_the_clocks_own() -> None:
    times = [1.0, 1.0005, 1.001, 86400.0 * 20000, 86400.0 * 20000 + 0.002]
    ids = [trace_id_at(t) for t in times]
    assert ids[2:] == sorted(ids[2:]) and ids[0][:12] == ids[1][:12]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert trace_id_at(time.time() - 1) < new_trace_id()


async def test_each_task_reads_the_time_it_set() -> None:
    clock = SimClock(100.0)
    seen: dict[str, float] = {}

    async def session(name: str, at: float) -> None:
        clock.set(at)
        await asyncio.sleep(0)
        seen[name] = clock()

    await asyncio.gather(session("a", 5.0), session("b", 7.0))
    assert seen == {"a": 5.0, "b": 7.0}
    assert clock() == 100.0  # the caller's own time, untouched
