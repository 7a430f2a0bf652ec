"""The HTTP surface of `keel serve` under hostile clients: request heads are bounded in size
and number of fields (431), heads and bodies must arrive in time (408), slow connections are
closed, and a refused connection still lets its client read the answer. Raw bytes over
sockets against a real `keel serve` process, with short timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from rich.console import Console

from keel.config import Settings, default_config
from keel.server import serve
from keel.server.protocol import HttpLimits, KeelHttpProtocol
from tests.support.process import KeelProcess

ADMIN = "sk-test-http-limits-admin"
CONFIG = """
providers:
  - {name: mock, kind: mock}
models:
  - {name: mock, provider: mock}
"""
MB = 1 << 20


@pytest.fixture(scope="module")
def keel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeelProcess]:
    """One `keel serve` with 1 s head, body and keep-alive timeouts and default limits."""
    with pytest.MonkeyPatch.context() as mp:  # the per-test isolation comes too late here
        for name in [n for n in os.environ if n.startswith("KEEL_")
                     and not n.startswith("KEEL_TEST_")]:
            mp.delenv(name)
        tmp = tmp_path_factory.mktemp("http-limits")
        k = KeelProcess(tmp, CONFIG, f"sqlite:///{tmp / 'keel.db'}", ADMIN,
                        KEEL_HEADER_TIMEOUT_S="1", KEEL_BODY_TIMEOUT_S="1",
                        KEEL_KEEPALIVE_TIMEOUT_S="1")
        try:
            yield k
        finally:
            k.stop()


def connect(k: KeelProcess, timeout: float = 15.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", k.port), timeout=timeout)


def send(s: socket.socket, data: bytes) -> None:
    """Send what the server will take; it may stop reading once it has answered."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        s.sendall(data)


def read_to_eof(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a socket timeout fails
    the test: the server kept the connection open)."""
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def exchange(k: KeelProcess, data: bytes) -> bytes:
    with connect(k) as s:
        send(s, data)
        return read_to_eof(s)


def parse(raw: bytes) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of one HTTP/1.1 response with a Content-Length."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response: {raw[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    headers = {n.strip().lower(): v.strip()
               for n, _, v in (line.partition(":") for line in lines[1:])}
    body = body[:int(headers["content-length"])]
    return int(lines[0].split()[1]), headers, orjson.loads(body) if body else None


def head(method: str = "GET", path: str = "/health", *fields: bytes) -> bytes:
    return b"%s %s HTTP/1.1\r\nhost: keel\r\n%s" % (method.encode(), path.encode(),
                                                    b"".join(f + b"\r\n" for f in fields))


# --- head size and count ----------------------------------------------------------------------


def test_a_1_mb_header_gets_431_and_the_server_keeps_serving(keel: KeelProcess) -> None:
    status, headers, body = parse(exchange(keel, head("GET", "/health",
                                                      b"x-big: " + b"a" * MB) + b"\r\n"))
    assert status == 431, body
    assert body["error"]["code"] == "headers_too_large"
    assert "32768-byte limit" in body["error"]["message"]
    assert "KEEL_MAX_HEADER_BYTES" in body["error"]["message"]
    assert headers["connection"] == "close"
    assert headers["x-request-id"].startswith("req_")  # the client's own id was not read
    assert httpx.get(keel.url + "/health").status_code == 200


def test_a_1_mb_request_line_gets_431(keel: KeelProcess) -> None:
    status, _, body = parse(exchange(keel, head("GET", "/health?q=" + "q" * MB) + b"\r\n"))
    assert status == 431 and body["error"]["code"] == "headers_too_large", body


def test_a_refusal_on_the_anthropic_api_is_anthropic_shaped(keel: KeelProcess) -> None:
    status, headers, body = parse(exchange(keel, head("POST", "/v1/messages",
                                                      b"x-big: " + b"a" * MB) + b"\r\n"))
    assert status == 431
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert headers["request-id"] == headers["x-request-id"] == body["request_id"]
    assert "KEEL_MAX_HEADER_BYTES" in body["error"]["message"]


def test_1000_headers_get_431(keel: KeelProcess) -> None:
    fields = [b"x-h%d: v" % i for i in range(1000)]  # ~11 KB: under the byte limit
    status, _, body = parse(exchange(keel, head("GET", "/health", *fields) + b"\r\n"))
    assert status == 431, body
    assert body["error"]["code"] == "too_many_headers"
    assert "more than 100 header fields" in body["error"]["message"]
    assert "KEEL_MAX_HEADERS" in body["error"]["message"]


def test_a_large_head_sent_right_behind_another_request_is_refused(
        keel: KeelProcess) -> None:
    """Both in one write, so the large head may begin in the read that ends the first
    request: it is measured all the same. The first is answered; the connection closes."""
    raw = exchange(keel, head("GET", "/health") + b"\r\n"
                   + head("GET", "/health", b"x-big: " + b"a" * 40_000) + b"\r\n")
    assert raw.count(b"HTTP/1.1 ") <= 2 and raw.startswith(b"HTTP/1.1 200 "), raw[:300]
    assert raw.count(b"HTTP/1.1 200 ") == 1, raw[:300]


def test_a_head_just_under_both_limits_is_served(keel: KeelProcess) -> None:
    fields = [b"x-h%d: v" % i for i in range(97)] + [b"x-big: " + b"a" * 30_000]  # +2: 100
    status, _, body = parse(exchange(keel, head("GET", "/health", *fields)
                                     + b"connection: close\r\n\r\n"))
    assert (status, body) == (200, {"status": "ok"})


def test_unfinished_1_mb_heads_do_not_pile_up_in_memory(keel: KeelProcess) -> None:
    """40 connections each sending 8 MB of a header that never ends, all kept open: each
    is refused after the limit, so the server's memory barely moves (it held every byte
    before: 40 x 8 MB)."""
    def rss_mb() -> float:
        status = Path(f"/proc/{keel.proc.pid}/status").read_text()
        return int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS:")).split()[1]
                   ) / 1024

    before = rss_mb()
    sockets: list[socket.socket] = []
    try:
        for _ in range(40):
            sockets.append(s := connect(keel))
            send(s, head("GET", "/health", b"x-big: " + b"a" * (8 * MB)))
        after = rss_mb()
        print(f"keel RSS: {before:.0f} MB before, {after:.0f} MB with 40 unfinished 8 MB heads")
        assert after - before < 200
        assert [parse(read_to_eof(s))[0] for s in sockets] == [431] * 40
    finally:
        for s in sockets:
            s.close()


# --- timeouts ---------------------------------------------------------------------------------


def test_an_unfinished_head_is_closed_after_the_header_timeout(keel: KeelProcess) -> None:
    with connect(keel) as s:
        send(s, head("GET", "/health", b"x-slow: a"))
        status, headers, body = parse(read_to_eof(s))  # EOF: the server closed it
    assert status == 408, body
    assert body["error"]["code"] == "request_timeout"
    assert "KEEL_HEADER_TIMEOUT_S" in body["error"]["message"]
    assert headers["connection"] == "close"


def test_an_unfinished_later_head_on_a_kept_alive_connection_is_closed(
        keel: KeelProcess) -> None:
    with connect(keel) as s:
        send(s, head("GET", "/health") + b"\r\n")
        raw = b""
        while b'{"status":"ok"}' not in raw:
            raw += s.recv(65536)
        send(s, head("GET", "/health", b"x-slow: a"))
        status, _, body = parse(read_to_eof(s))
    assert status == 408 and body["error"]["code"] == "request_timeout", body


def test_a_connection_that_sends_nothing_is_closed(keel: KeelProcess) -> None:
    with connect(keel) as s:
        assert read_to_eof(s) == b""


def test_an_idle_keep_alive_connection_is_closed(keel: KeelProcess) -> None:
    with connect(keel) as s:
        send(s, head("GET", "/health") + b"\r\n")
        raw = b""
        while b'{"status":"ok"}' not in raw:
            raw += s.recv(65536)
        assert parse(raw)[0] == 200
        assert read_to_eof(s) == b""


SLOW_BODY_CASES = {
    "chat": ("/v1/chat/completions", "openai"),
    "messages": ("/v1/messages", "anthropic"),
    "admin api": ("/api/keys", "openai"),
}


@pytest.mark.parametrize("case", SLOW_BODY_CASES, ids=str)
def test_a_slow_body_gets_408(keel: KeelProcess, case: str) -> None:
    path, shape = SLOW_BODY_CASES[case]
    with connect(keel) as s:
        send(s, head("POST", path, f"authorization: Bearer {ADMIN}".encode(),
                     b"content-type: application/json", b"content-length: 100")
             + b'\r\n{"model": "mo')  # and no more
        status, headers, body = parse(read_to_eof(s))
    assert status == 408, body
    message = body["error"]["message"]
    assert "KEEL_BODY_TIMEOUT_S" in message and "13 of 100 bytes" in message, message
    if shape == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    else:
        assert body["error"]["code"] == "request_timeout"
    if path.startswith("/v1/"):
        assert headers["x-keel-trace-id"]  # the failed request is traced


def test_the_rest_of_a_refused_body_is_not_waited_for(keel: KeelProcess) -> None:
    """A body over the limit is refused at once (413); the client goes on sending it, slowly:
    the connection still ends (it was kept open, waiting for the rest, before)."""
    with connect(keel, timeout=1) as s:
        send(s, head("POST", "/v1/chat/completions", f"authorization: Bearer {ADMIN}".encode(),
                     b"content-length: %d" % (64 * MB)) + b"\r\n" + b"{" * 1000)
        raw, deadline = b"", time.monotonic() + 20
        while time.monotonic() < deadline:
            if select.select([s], [], [], 0.1)[0]:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                raw += chunk
            else:
                send(s, b"x" * 100)
        else:
            pytest.fail("the connection stayed open while the client trickled its body")
    assert parse(raw)[0] == 413


def test_slowloris_connections_are_closed_and_others_are_served(keel: KeelProcess) -> None:
    """200 connections that each add a header line every 0.2 s and never end the head: a
    normal request is answered meanwhile, and every slow one is closed (with a 408)."""
    async def slow(connected: asyncio.Event, count: list[int]) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", keel.port)
        got = b""
        try:
            writer.write(head("GET", "/health"))
            await writer.drain()
            count[0] += 1
            if count[0] == 200:
                connected.set()
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(65536), 0.2)
                except TimeoutError:
                    writer.write(b"x-more: a\r\n")
                    await writer.drain()
                    continue
                if not data:
                    return got
                got += data
        except (ConnectionResetError, BrokenPipeError):
            return got
        finally:
            writer.close()

    async def main() -> tuple[int, list[bytes]]:
        connected, count = asyncio.Event(), [0]
        tasks = [asyncio.create_task(slow(connected, count)) for _ in range(200)]
        await asyncio.wait_for(connected.wait(), 10)
        async with httpx.AsyncClient() as client:
            status = (await client.get(keel.url + "/health")).status_code
        return status, await asyncio.wait_for(asyncio.gather(*tasks), 30)

    status, answers = asyncio.run(main())
    assert status == 200
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}


# --- keel serve's uvicorn config --------------------------------------------------------------


def test_keel_serve_runs_uvicorn_with_keels_protocol_and_timeouts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    captured: list[uvicorn.Config] = []
    monkeypatch.setattr(serve._Server, "run", lambda self, sockets=None: captured.append(
        self.config))
    settings = Settings(data_dir=str(tmp_path), master_key="sk-x", port=0, max_header_bytes=4096,
                        max_headers=20, header_timeout_s=3, keepalive_timeout_s=7)
    serve.run_server(settings, default_config(), console=Console(file=io.StringIO()))
    (config,) = captured
    assert isinstance(config.http, type) and issubclass(config.http, KeelHttpProtocol)
    assert config.http.limits == HttpLimits(max_header_bytes=4096, max_headers=20,
                                            header_timeout_s=3)
    assert config.timeout_keep_alive == 7
