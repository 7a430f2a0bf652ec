"""The practical ceiling for a Python gateway: a bare pass-through proxy.

Raw ASGI on the same stack keel uses (uvicorn + uvloop + httptools). Per request it
reads the body, parses it with orjson, forwards it with one pooled aiohttp session,
parses the answer, re-serializes it and returns it. Nothing else: no auth, no
validation, no tracing, no cost.

A body with ``"stream": true`` is streamed back chunk by chunk, never buffered: each
server-sent event the upstream sends is parsed with orjson, re-serialized and sent on as
its own ``data: ...`` event as soon as it is complete (``[DONE]`` as it is), which is the
least a gateway that reads the stream's usage has to do. The pool limit is ``--pool``.

    python bench/passthrough.py --port 18001 --upstream http://127.0.0.1:18000/v1
"""

from __future__ import annotations

import argparse

import aiohttp
import orjson
import uvicorn

SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def relay_sse(resp: aiohttp.ClientResponse, send) -> None:
    """Forward the upstream's SSE events one by one, each re-serialized."""
    pending = b""
    async for data in resp.content.iter_any():
        pending = pending + data if pending else data
        while True:
            end = pending.find(b"\n\n")
            if end < 0:
                break
            event, pending = pending[:end], pending[end + 2:]
            if event.startswith(b"data: ") and event != b"data: [DONE]":
                event = b"data: " + orjson.dumps(orjson.loads(event[6:]))
            await send({"type": "http.response.body", "body": event + b"\n\n",
                        "more_body": True})
    if pending:
        await send({"type": "http.response.body", "body": pending, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def make_app(upstream: str, pool: int = 256):
    url = upstream.rstrip("/") + "/chat/completions"
    session: list[aiohttp.ClientSession] = []
    json_headers = [(b"content-type", b"application/json")]

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    session.append(aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=pool, keepalive_timeout=30),
                        headers={"content-type": "application/json"},
                        skip_auto_headers=("User-Agent",)))
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    for s in session:
                        await s.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["method"] == "GET":  # the load generator's idle probe while it drains
            await send({"type": "http.response.start", "status": 200, "headers": json_headers})
            await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
            return
        chunks = []
        more = True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = orjson.loads(b"".join(chunks))
        if body.get("stream") is True:
            async with session[0].post(url, data=orjson.dumps(body)) as resp:
                if resp.status == 200:
                    await send({"type": "http.response.start", "status": 200,
                                "headers": SSE_HEADERS})
                    await relay_sse(resp, send)
                    return
                status = resp.status
                raw = await resp.read()
            await send({"type": "http.response.start", "status": status,
                        "headers": [*json_headers, (b"content-length", str(len(raw)).encode())]})
            await send({"type": "http.response.body", "body": raw})
            return
        async with session[0].post(url, data=orjson.dumps(body)) as resp:
            status = resp.status
            raw = await resp.read()
        out = orjson.dumps(orjson.loads(raw))
        await send({"type": "http.response.start", "status": status,
                    "headers": [*json_headers, (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18001)
    ap.add_argument("--upstream", default="http://127.0.0.1:18000/v1")
    ap.add_argument("--pool", type=int, default=256,
                    help="upstream connection pool limit [256, keel's default per provider]")
    args = ap.parse_args()
    # The same server settings keel's `serve` uses (src/keel/server/serve.py).
    config = uvicorn.Config(
        make_app(args.upstream, args.pool), host=args.host, port=args.port, loop="uvloop",
        http="httptools", lifespan="on", access_log=False, log_level="warning",
        server_header=False, date_header=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
