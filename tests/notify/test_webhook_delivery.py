"""Webhook delivery through the Dispatcher to a real HTTP server on loopback: signed JSON
and Slack bodies, retries with backoff, what is not retried, timeouts, and the state."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from keel.backoff import Backoff
from keel.config import ReceiverConfig
from keel.notify import Dispatcher, verify
from tests.notify.builders import notification
from tests.notify.receivers import HANG, HttpReceiver

SECRET = "hook-secret-0123456789abcdef"
FAST = Backoff(base=0.01, factor=2.0, jitter="none")


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition``, checked between turns of the loop (a stuck test fails
    after some 10 s instead of hanging)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


def hook(url: str, name: str = "ops", **extra: Any) -> ReceiverConfig:
    data = {"name": name, "kind": "webhook", "url": url, "secret": SECRET, **extra}
    if data.get("format") == "slack":
        data.pop("secret")
    return ReceiverConfig.model_validate(data)


async def test_a_json_webhook_arrives_signed_and_the_receiver_verifies_it(
        http: HttpReceiver) -> None:
    n = notification()
    async with Dispatcher([hook(f"{http.url}/keel", headers={"X-Team": "ops"})]) as d:
        assert d.submit(n) == 1
        await d.drain()
        assert d.status()["ops"]["sent"] == 1
    (got,) = http.requests
    assert got.path == "/keel"
    assert got.headers["Content-Type"] == "application/json; charset=utf-8"
    assert got.headers["X-Team"] == "ops" and got.headers["Keel-Delivery"] == n.id
    assert verify(SECRET, got.body, got.headers)
    assert not verify(SECRET, got.body.replace(b"firing", b"resolved"), got.headers)
    doc = orjson.loads(got.body)
    assert doc["id"] == n.id and doc["alerts"][0]["rule"] == "cost_per_request_up"


async def test_a_slack_webhook_gets_a_slack_message(http: HttpReceiver) -> None:
    async with Dispatcher([hook(f"{http.url}/services/T/B/X", format="slack")]) as d:
        d.submit(notification())
        await d.drain()
    (got,) = http.requests
    doc = orjson.loads(got.body)
    assert set(doc) == {"text", "blocks"} and doc["blocks"][0]["type"] == "header"
    assert "Keel-Signature" not in got.headers


async def test_server_errors_are_retried_until_the_receiver_takes_it(
        http: HttpReceiver) -> None:
    http.plan(503, 500)
    async with Dispatcher([hook(http.url)], backoff=FAST) as d:
        d.submit(notification())
        await d.drain()
        state = d.status()["ops"]
    assert len(http.requests) == 3
    assert {r.headers["Keel-Delivery"] for r in http.requests} == {http.requests[0].headers[
        "Keel-Delivery"]}  # the same delivery id on every attempt
    assert all(verify(SECRET, r.body, r.headers) for r in http.requests)
    assert (state["sent"], state["failed"], state["retries"], state["retrying"]) == (1, 0, 2, 0)
    assert state["last_error"] == "127.0.0.1 answered HTTP 500: no: 500"
    assert state["ok"] is True and state["last_sent_at"] is not None
    assert orjson.loads(orjson.dumps(state)) == state  # ready for a status endpoint


async def test_429_and_408_are_retried(http: HttpReceiver) -> None:
    http.plan(429, 408, headers={"Retry-After": "0"})
    async with Dispatcher([hook(http.url)], backoff=FAST) as d:
        d.submit(notification())
        await d.drain()
        assert d.status()["ops"]["sent"] == 1
    assert len(http.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_a_4xx_is_not_retried_and_the_failure_is_visible(
        http: HttpReceiver, status: int) -> None:
    http.plan(status)
    async with Dispatcher([hook(http.url)], backoff=FAST) as d:
        d.submit(notification())
        await d.drain()
        state = d.status()["ops"]
    assert len(http.requests) == 1
    assert (state["sent"], state["failed"], state["retries"]) == (0, 1, 0)
    assert state["last_error"] == f"127.0.0.1 answered HTTP {status}: no: {status}"
    assert state["ok"] is False and state["last_error_at"] is not None


async def test_a_redirect_is_not_followed_nor_retried(http: HttpReceiver) -> None:
    http.plan(302)
    async with Dispatcher([hook(http.url)], backoff=FAST) as d:
        d.submit(notification())
        await d.drain()
        state = d.status()["ops"]
    assert [r.path for r in http.requests] == ["/"]
    assert state["failed"] == 1 and "follows no redirect" in state["last_error"]


async def test_a_receiver_that_hangs_times_out_and_is_tried_again(http: HttpReceiver) -> None:
    http.plan(HANG)
    async with Dispatcher([hook(http.url, timeout_s=0.2)], backoff=FAST) as d:
        d.submit(notification())
        await d.drain()
        state = d.status()["ops"]
    assert len(http.requests) == 2
    assert (state["sent"], state["retries"]) == (1, 1)
    assert "did not answer within 0.2s" in state["last_error"]


async def test_it_gives_up_after_the_configured_attempts(http: HttpReceiver) -> None:
    http.plan(500, 500, 500, 500, 500)
    async with Dispatcher([hook(http.url, attempts=3)], backoff=FAST) as d:
        d.submit(notification())
        await d.drain()
        state = d.status()["ops"]
    assert len(http.requests) == 3
    assert (state["sent"], state["failed"], state["retries"], state["retrying"]) == (0, 1, 2, 0)
    assert state["ok"] is False


async def test_it_gives_up_when_the_next_attempt_would_be_too_late(http: HttpReceiver) -> None:
    http.plan(500)
    slow = Backoff(base=60.0, jitter="none")
    async with Dispatcher([hook(http.url, max_age_s=30)], backoff=slow) as d:
        d.submit(notification())
        await d.drain()
        state = d.status()["ops"]
    assert len(http.requests) == 1 and state["failed"] == 1


async def test_an_unreachable_receiver_is_retried_and_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    async with Dispatcher([hook(f"http://127.0.0.1:{port}/", attempts=2)], backoff=FAST) as d:
        d.submit(notification())
        await d.drain()
        state = d.status()["ops"]
    assert (state["failed"], state["retries"]) == (1, 1)
    assert state["last_error"].startswith("could not reach 127.0.0.1: ")


async def test_retrying_is_visible_while_it_waits(http: HttpReceiver) -> None:
    http.plan(503)
    async with Dispatcher([hook(http.url, max_age_s=86400)],
                          backoff=Backoff(base=3600.0)) as d:
        d.submit(notification())
        await until(lambda: d.status()["ops"]["retrying"] == 1)
        state = d.status()["ops"]
        assert (state["retrying"], state["sent"], state["ok"]) == (1, 0, False)
        await d.close(grace_s=0)  # shutdown does not wait out the backoff


async def test_submit_never_blocks_and_a_full_queue_drops(http: HttpReceiver) -> None:
    d = Dispatcher([hook(http.url)], queue_size=1)
    try:
        assert d.submit(notification()) == 1  # not started yet: it waits in the queue
        assert d.submit(notification()) == 0
        state = d.status()["ops"]
        assert (state["queued"], state["dropped"]) == (1, 1)
        assert state["last_error"].startswith("queue full (1): notification ")
        await d.start()
        await d.drain()
        assert d.status()["ops"]["sent"] == 1
    finally:
        await d.close()
    assert len(http.requests) == 1


async def test_unknown_receivers_and_a_closed_dispatcher_take_nothing_without_raising(
        http: HttpReceiver) -> None:
    d = Dispatcher([hook(http.url)])
    await d.start()
    assert d.submit(notification(), ["nobody"]) == 0
    assert d.submit(notification(), "ops") == 1  # one name
    await d.drain()
    await d.close()
    assert d.submit(notification()) == 0
    assert len(http.requests) == 1


async def test_a_hanging_receiver_does_not_hold_up_another(http: HttpReceiver) -> None:
    other = await HttpReceiver().start()
    try:
        http.plan(HANG)
        receivers = [hook(http.url, name="stuck", timeout_s=300),
                     hook(other.url, name="fine")]
        async with Dispatcher(receivers) as d:
            d.submit(notification())
            await http.wait_for(1)
            await until(lambda: d.status()["fine"]["sent"] == 1)
            assert d.status()["stuck"]["sent"] == 0
            await d.close(grace_s=0)
    finally:
        await other.stop()


async def test_notifications_reach_one_receiver_in_order(http: HttpReceiver) -> None:
    sent = [notification() for _ in range(5)]
    http.plan(503)
    async with Dispatcher([hook(http.url)], backoff=FAST) as d:
        for n in sent:
            d.submit(n)
        await d.drain()
    delivered = [orjson.loads(r.body)["id"] for r in http.requests]
    assert delivered == [sent[0].id, *(n.id for n in sent)]
