"""A deliberately minimal, fast mock OpenAI upstream for the benchmark.

An asyncio ``Protocol`` on uvloop speaking just enough HTTP/1.1 (keep-alive, pipelining,
Content-Length bodies) to answer every POST with one fixed ``chat.completion`` JSON that
carries ``usage``. No framework, no per-request allocation beyond slicing the input.

    python bench/upstream.py --port 18000
    python bench/upstream.py --port 18000 --stream-chunks 20 --stream-first-ms 60 \
        --stream-interval-ms 60          # a slow streaming model (the defaults)

A POST whose JSON body has ``"stream": true`` is answered as a slow model would: an SSE
stream (chunked transfer encoding) of ``--stream-chunks`` content chunks, the first after
``--stream-first-ms`` and the next ones every ``--stream-interval-ms`` (on a fixed schedule
from the request, so a late timer does not stretch the stream), then a ``finish_reason``
chunk, a usage chunk if the body asks for ``stream_options.include_usage``, and
``data: [DONE]``. The content of chunk i is ``tkn_<i> `` (two digits), so a client can count
the tokens it got by counting ``tkn_``. The chunks are built once at start-up. Requests
that arrive on a connection while it streams are answered after the stream, in order.

``GET /stats`` returns how many POSTs it has answered and how many of them were streams (a
cross-check for the harness); any other GET returns ``{"status":"ok"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections import deque

import orjson

COMPLETION = orjson.dumps({
    "id": "chatcmpl-bench0000000000000000000000",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant",
                    "content": "Hello! This is a fixed answer from the benchmark upstream.",
                    "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {"prompt_tokens": 19, "completion_tokens": 13, "total_tokens": 32,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
    "system_fingerprint": "fp_bench",
})


def _response(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: keep-alive\r\n\r\n" + body)


RESPONSE = _response(COMPLETION)
HEALTH = _response(b'{"status":"ok"}')
COUNT = [0, 0]  # POSTs answered, of which streams
TOKEN_MARK = "tkn_"
SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
            b"connection: keep-alive\r\n\r\n")


def _chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _event(obj: dict) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class Stream:
    """The pre-built pieces of one streamed answer (chunked-encoded SSE events)."""

    def __init__(self, chunks: int, first_ms: float, interval_ms: float) -> None:
        self.first = first_ms / 1000
        self.interval = interval_ms / 1000
        base = {"id": "chatcmpl-bench0000000000000000000000", "object": "chat.completion.chunk",
                "created": 1700000000, "model": "gpt-4o-mini-2024-07-18",
                "system_fingerprint": "fp_bench"}
        self.tokens = []
        for i in range(chunks):
            delta = {"role": "assistant", "content": ""} if i == 0 else {}
            delta["content"] = f"{TOKEN_MARK}{i:02d} "
            self.tokens.append(_chunked(_event({**base, "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]})))
        self.finish = _event({**base, "choices": [
            {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
        self.usage = _event({**base, "choices": [], "usage": {
            "prompt_tokens": 19, "completion_tokens": chunks, "total_tokens": 19 + chunks,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}})
        done = b"data: [DONE]\n\n"
        # the finish chunk, the usage chunk (or not), [DONE] and the end of the chunked body
        self.tail = {usage: _chunked(self.finish + (self.usage if usage else b"") + done)
                     + b"0\r\n\r\n" for usage in (True, False)}


STREAM = [Stream(20, 60, 60)]


def _stream_request(body: bytes) -> tuple[bool, bool]:
    """(is a stream request, asks for the usage chunk); the body is parsed only if it
    mentions "stream"."""
    if b'"stream"' not in body:
        return False, False
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False, False
    if not isinstance(obj, dict) or obj.get("stream") is not True:
        return False, False
    opts = obj.get("stream_options")
    return True, isinstance(opts, dict) and opts.get("include_usage") is True


class HTTP(asyncio.Protocol):
    __slots__ = ("buf", "queue", "streaming", "timer", "transport")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""
        self.streaming = False
        self.queue: deque[bytes | tuple[bool]] = deque()  # answers waiting for a stream
        self.timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            length = 0
            i = head.lower().find(b"\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r", i + 16)
                length = int(head[i + 16: j if j >= 0 else len(head)])
            total = end + 4 + length
            if len(buf) < total:
                break
            answer: bytes | tuple[bool]
            if head.startswith(b"GET "):
                # GET /stats: requests answered so far; any other GET: a tiny health body.
                answer = (_response(orjson.dumps({"answered": COUNT[0], "streams": COUNT[1]}))
                          if head.startswith(b"GET /stats") else HEALTH)
            else:
                COUNT[0] += 1
                stream, usage = _stream_request(buf[end + 4:total])
                answer = (usage,) if stream else RESPONSE
            buf = buf[total:]
            if self.streaming or self.queue or answer.__class__ is tuple:
                self.queue.append(answer)
            else:
                out.append(answer)
        self.buf = buf
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]
        if self.queue and not self.streaming:
            self._next()

    def _next(self) -> None:
        """Write the queued plain answers up to the next stream, and start that stream."""
        out = []
        while self.queue:
            answer = self.queue.popleft()
            if answer.__class__ is bytes:
                out.append(answer)
                continue
            self._start_stream(answer[0], out)  # type: ignore[index]
            return
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]

    def _start_stream(self, usage: bool, out: list[bytes]) -> None:
        COUNT[1] += 1
        self.streaming = True
        self.transport.write(b"".join(out) + SSE_HEAD)  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        st = STREAM[0]
        self._tick(loop, loop.time() + st.first, 0, usage)

    def _tick(self, loop: asyncio.AbstractEventLoop, at: float, i: int, usage: bool) -> None:
        self.timer = loop.call_at(at, self._send, loop, at, i, usage)

    def _send(self, loop: asyncio.AbstractEventLoop, at: float, i: int, usage: bool) -> None:
        self.timer = None
        if self.transport.is_closing():
            return
        st = STREAM[0]
        if i + 1 < len(st.tokens):
            self.transport.write(st.tokens[i])  # type: ignore[attr-defined]
            self._tick(loop, at + st.interval, i + 1, usage)
            return
        self.transport.write(st.tokens[i] + st.tail[usage])  # type: ignore[attr-defined]
        self.streaming = False
        if self.queue:
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.buf = b""
        self.queue.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HTTP, host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18000)
    ap.add_argument("--stream-chunks", type=int, default=20,
                    help="content chunks per streamed answer [20]")
    ap.add_argument("--stream-first-ms", type=float, default=60,
                    help="delay before the first content chunk [60]")
    ap.add_argument("--stream-interval-ms", type=float, default=60,
                    help="delay between content chunks [60]")
    args = ap.parse_args()
    if args.stream_chunks < 1:
        ap.error("--stream-chunks must be at least 1")
    STREAM[0] = Stream(args.stream_chunks, args.stream_first_ms, args.stream_interval_ms)
    try:
        import uvloop
        uvloop.run(serve(args.host, args.port))
    except ImportError:
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
