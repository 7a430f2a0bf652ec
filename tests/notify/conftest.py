"""Fixtures: the loopback HTTP and SMTP receivers, started and stopped per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.notify.receivers import HttpReceiver, SmtpReceiver


@pytest.fixture
async def http() -> AsyncIterator[HttpReceiver]:
    server = await HttpReceiver().start()
    yield server
    await server.stop()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpReceiver]:
    server = await SmtpReceiver().start()
    yield server
    await server.stop()
