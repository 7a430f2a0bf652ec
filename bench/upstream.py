"""A deliberately minimal, fast mock OpenAI upstream for the benchmark.

An asyncio ``Protocol`` on uvloop speaking just enough HTTP/1.1 (keep-alive, pipelining,
Content-Length bodies) to answer every POST with one fixed ``chat.completion`` JSON that
carries ``usage``. No framework, no per-request allocation beyond slicing the input.

    python bench/upstream.py --port 18000

``GET /stats`` returns how many POSTs it has answered (a cross-check for the harness);
any other GET returns ``{"status":"ok"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

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
COUNT = [0]


class HTTP(asyncio.Protocol):
    __slots__ = ("transport", "buf")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""

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
            if head.startswith(b"GET "):
                # GET /stats: requests answered so far; any other GET: a tiny health body.
                out.append(_response(orjson.dumps({"answered": COUNT[0]}))
                           if head.startswith(b"GET /stats") else HEALTH)
            else:
                COUNT[0] += 1
                out.append(RESPONSE)
            buf = buf[total:]
        self.buf = buf
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.buf = b""


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
    args = ap.parse_args()
    try:
        import uvloop
        uvloop.run(serve(args.host, args.port))
    except ImportError:
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
