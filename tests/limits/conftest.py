"""Fixtures for the limits tests: both backends, fixed clocks, replicas sharing a prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.config import KeelConfig, parse_config
from keel.limits import Limits, connect_redis
from keel.store import Store
from tests.conftest import REQUIRE_SERVICES
from tests.limits.redis_server import RedisServer, redis_server_binary


class Clock:
    """A clock that only moves when told to."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


MakeLimits = Callable[..., Awaitable[Limits]]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'limits.db'}")
    await s.upgrade()
    yield s
    await s.aclose()


@pytest.fixture
async def make_limits(backend: str, request: pytest.FixtureRequest,
                      sqlite_store: Store) -> AsyncIterator[MakeLimits]:
    """``await make_limits(config_dict, clock=..., store=...)``: a started ``Limits`` on the
    test's backend. With Redis every call is a separate client on the same prefix, so two
    calls stand for two replicas."""
    clients: list[Any] = []
    prefix = request.getfixturevalue("redis_prefix") if backend == "redis" else "keel:"
    redis_url = request.getfixturevalue("redis_url") if backend == "redis" else None

    async def make(config: dict[str, Any], *, store: Store | None = None,
                   **kwargs: Any) -> Limits:
        redis = None
        if redis_url is not None:
            redis = connect_redis(redis_url)
            clients.append(redis)
        limits = Limits(cfg(config), store or sqlite_store, redis, prefix=prefix, **kwargs)
        await limits.start()
        return limits

    yield make
    for c in clients:
        await c.aclose()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own (kept nothing on disk), so the test may kill it and
    start it again empty without touching the shared Redis."""
    if redis_server_binary() is None:
        reason = "redis-server not installed; install it to run the Redis-loss tests"
        if REQUIRE_SERVICES:
            pytest.fail(f"KEEL_TEST_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    server = RedisServer(tmp_path / "redis").start()
    yield server
    if server.proc is not None:
        server.kill()


def cfg(data: dict[str, Any]) -> KeelConfig:
    return parse_config(data, "test.yaml")
