"""The load generator of the streaming bench (bench/streams.py): N concurrent streams, closed
loop, in one asyncio process on uvloop, with a small HTTP/1.1 client of its own.

    python bench/stream_load.py --url http://127.0.0.1:4000/v1/chat/completions \\
        --body-file body.json --conns 100 --warmup 3 --duration 10 --out run.json

Each of the N workers holds one keep-alive connection; it sends a streamed chat request,
reads the answer to its end, and sends the next one, until the measured window is over;
then no new stream is started and the ones in flight are awaited (the drain). The window
starts once --warmup seconds have passed AND N streams have been completed (every slot has
turned over once, so the start-up is over), or after --max-warmup seconds, whichever comes
first; it lasts --duration seconds. The workers' first requests are spread over --stagger
seconds (bench/streams.py passes the length of one stream), so that the streams do not
all end at the same moments.

The client is an ``asyncio.Protocol`` that writes a pre-built request and parses the
answer's head and its chunked (or Content-Length, or until-close) body itself: an aiohttp
client spent about 80 µs of CPU per received chunk here, which at 500 streams of 20 chunks
in 1.2 s would take most of the core it shares with the mock upstream. Per stream it
records when the request was written, when the first content token arrived (the first
``tkn_`` the mock upstream puts in every content chunk, found in the decoded body bytes, so
no JSON is parsed here) and when the answer ended. A stream counts as answered when its
status is 200, it carried exactly --chunks tokens and it ended with ``data: [DONE]``.

The figures of the window are taken over the streams that ended in it. At the window's
edges it reads the user+system CPU time of the --meter pids (/proc/PID/stat), of the --also
pids and of this process, and /proc/stat (each CPU's busy share); during it, every 0.25 s,
the summed VmRSS of the --meter pids and the number of streams in flight. It writes one
JSON object to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson

MARK = b"tkn_"
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / TICK  # utime + stime
    return total


def proc_rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


def cpu_times() -> dict[str, tuple[int, int]]:
    """Per CPU (cpu0, cpu1, ...): (busy jiffies, total jiffies) from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *vals = line.split()
        if name.startswith("cpu") and name != "cpu":
            n = [int(v) for v in vals[:8]]
            total = sum(n)
            out[name] = (total - n[3] - n[4], total)  # minus idle and iowait
    return out


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile of a sorted list."""
    if not xs:
        return None
    return xs[max(0, math.ceil(q / 100 * len(xs)) - 1)]


HEAD, LENGTH, SIZE, DATA, CRLF, TRAILER, UNTIL_CLOSE, IDLE = range(8)


class Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: ``send`` writes a request; the future it returns
    is resolved with the status once the whole answer has been read."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.state = IDLE
        self.fut: asyncio.Future[int] | None = None
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None and self.state == IDLE
        self.fut = asyncio.get_running_loop().create_future()
        self.state, self.buf, self.status, self.close_after = HEAD, b"", 0, False
        self.first, self.tokens, self.tail, self.last = 0.0, 0, b"", b""
        self.transport.write(request)
        return self.fut

    def body(self, data: bytes) -> None:
        buf = self.tail + data if self.tail else data
        c = buf.count(MARK)
        if c:
            if not self.first:
                self.first = time.perf_counter()
            self.tokens += c
        self.tail = buf[1 - len(MARK):]
        self.last = (self.last + data)[-32:]

    def done(self) -> None:
        self.state = IDLE
        if self.fut is not None and not self.fut.done():
            self.fut.set_result(self.status)
        if self.close_after and self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        while data:
            st = self.state
            if st == HEAD:
                buf = self.buf + data
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    self.buf = buf
                    return
                head, data, self.buf = buf[:i].lower(), buf[i + 4:], b""
                self.status = int(head[9:12])
                self.close_after = b"\r\nconnection: close" in head
                j = head.find(b"\r\ncontent-length:")
                if b"\r\ntransfer-encoding: chunked" in head:
                    self.state = SIZE
                elif j >= 0:
                    k = head.find(b"\r", j + 2)
                    self.left = int(head[j + 17: k if k >= 0 else len(head)])
                    self.state = LENGTH
                    if not self.left:
                        self.done()
                else:
                    self.state = UNTIL_CLOSE
            elif st in (DATA, LENGTH):
                take = data[:self.left]
                self.body(take)
                self.left -= len(take)
                data = data[len(take):]
                if not self.left:
                    if st == LENGTH:
                        self.done()
                    else:
                        self.state, self.left = CRLF, 2
            elif st == SIZE:
                buf = self.buf + data
                i = buf.find(b"\r\n")
                if i < 0:
                    self.buf = buf
                    return
                size = int(buf[:i].split(b";", 1)[0], 16)
                data, self.buf = buf[i + 2:], b""
                self.state, self.left = (DATA, size) if size else (TRAILER, 0)
            elif st == CRLF:
                n = min(self.left, len(data))
                self.left -= n
                data = data[n:]
                if not self.left:
                    self.state = SIZE
            elif st == TRAILER:
                buf = self.buf + data
                data = b""
                if buf.startswith(b"\r\n") or b"\r\n\r\n" in buf:
                    self.buf = b""
                    self.done()
                else:
                    self.buf = buf
            elif st == UNTIL_CLOSE:
                self.body(data)
                return
            else:  # bytes nobody asked for
                self.close_after = True
                if self.transport is not None:
                    self.transport.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.state == UNTIL_CLOSE:
            self.done()
        elif self.state != IDLE and self.fut is not None and not self.fut.done():
            self.fut.set_exception(ConnectionError(
                f"connection closed mid-answer{f': {exc}' if exc else ''}"))


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        url = urlsplit(args.url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        body = Path(args.body_file).read_bytes()
        head = [f"POST {url.path or '/'} HTTP/1.1", f"host: {url.netloc}",
                "content-type: application/json", f"content-length: {len(body)}"]
        if args.auth:
            head.append(f"authorization: {args.auth}")
        self.request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self.stop_new = False
        self.inflight = 0
        self.completed = 0
        # one row per finished stream: (sent, first token, ended, answered)
        self.rows: list[tuple[float, float, float, bool]] = []
        self.errors: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    async def one(self, conn: Conn) -> None:
        now = time.perf_counter
        t0 = now()
        self.inflight += 1
        try:
            status = await asyncio.wait_for(conn.send(self.request), self.args.timeout)
            t1 = now()
            if status != 200:
                self.error(f"HTTP {status}")
                self.rows.append((t0, 0.0, t1, False))
                return
            ok = conn.tokens == self.args.chunks and b"data: [DONE]" in conn.last
            if not ok:
                self.error(f"incomplete stream ({conn.tokens} of {self.args.chunks} tokens"
                           f"{'' if b'[DONE]' in conn.last else ', no [DONE]'})")
            self.rows.append((t0, conn.first, t1, ok))
        except asyncio.CancelledError:
            self.error(f"still in flight {self.args.drain_timeout:g} s after the window")
            self.rows.append((t0, conn.first, now(), False))
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                self.error(f"not finished within {self.args.timeout:g} s")
            else:
                self.error(f"{type(exc).__name__}: {str(exc)[:120]}")
            self.rows.append((t0, conn.first, now(), False))
            if conn.transport is not None:
                conn.transport.close()
            conn.closed = True
        finally:
            self.inflight -= 1
            self.completed += 1

    async def worker(self, i: int) -> None:
        loop = asyncio.get_running_loop()
        conn: Conn | None = None
        # Spread the first requests over one stream's length: N streams started at once,
        # all equally long, would end in bursts of N, and the number of bursts that fall in
        # the window would make streams/s jump by N/duration.
        await asyncio.sleep(self.args.stagger * i / self.args.conns)
        try:
            while not self.stop_new:
                if conn is None or conn.closed:
                    try:
                        _, conn = await loop.create_connection(Conn, self.host, self.port)
                    except OSError as exc:
                        self.error(f"connect: {exc}")
                        await asyncio.sleep(0.1)
                        continue
                await self.one(conn)
        finally:
            if conn is not None and conn.transport is not None:
                conn.transport.close()

    async def run(self) -> dict:
        a = self.args
        meter = [int(p) for p in a.meter.split(",") if p] if a.meter else []
        others = [int(p) for p in a.also.split(",") if p] if a.also else []
        rss_idle = proc_rss_kb(meter)
        t_start = time.perf_counter()
        tasks = [asyncio.create_task(self.worker(i)) for i in range(a.conns)]
        while True:
            el = time.perf_counter() - t_start
            if (el >= a.warmup and self.completed >= a.conns) or el >= a.max_warmup:
                break
            await asyncio.sleep(0.05)
        w0 = time.perf_counter()
        cpu0, own0, also0, st0 = proc_cpu(meter), self_cpu(), proc_cpu(others), cpu_times()
        rss: list[int] = []
        inflight: list[int] = []
        while time.perf_counter() - w0 < a.duration:
            await asyncio.sleep(min(0.25, max(0.0, a.duration - (time.perf_counter() - w0))))
            rss.append(proc_rss_kb(meter))
            inflight.append(self.inflight)
        w1 = time.perf_counter()
        cpu1, own1, also1, st1 = proc_cpu(meter), self_cpu(), proc_cpu(others), cpu_times()
        self.stop_new = True
        _, pending = await asyncio.wait(tasks, timeout=a.drain_timeout)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        t_end = time.perf_counter()
        win = [r for r in self.rows if w0 <= r[2] <= w1 and r[3]]
        ttft = sorted((r[1] - r[0]) * 1000 for r in win)
        total = sorted((r[2] - r[0]) * 1000 for r in win)
        span = w1 - w0
        busy = {k: (st1[k][0] - st0[k][0]) / max(1, st1[k][1] - st0[k][1]) for k in st1
                if k in st0}
        return {
            "conns": a.conns, "warmup_s": round(w0 - t_start, 3), "window_s": round(span, 3),
            "drain_s": round(t_end - w1, 3), "drained": not pending,
            "streams_window": len(win), "rate": len(win) / span if span else 0.0,
            "cpu_s_window": cpu1 - cpu0,
            "cpu_us_per_stream": (cpu1 - cpu0) / len(win) * 1e6 if win else None,
            "loadgen_cpu_share": (own1 - own0) / span if span else None,
            "also_cpu_share": (also1 - also0) / span if span and others else None,
            "cpu_busy": {k: round(v, 3) for k, v in busy.items()},
            "ttft_ms": {"p50": pct(ttft, 50), "p99": pct(ttft, 99),
                        "mean": statistics.fmean(ttft) if ttft else None},
            "total_ms": {"p50": pct(total, 50), "p99": pct(total, 99),
                         "max": total[-1] if total else None},
            "sent": len(self.rows),
            "answered": sum(1 for r in self.rows if r[3]),
            "errors": sum(self.errors.values()), "error_kinds": self.errors,
            "rss_idle_kb": rss_idle,
            "rss_inflight_kb": int(statistics.median(rss)) if rss else None,
            "rss_max_kb": max(rss) if rss else None,
            "inflight_median": statistics.median(inflight) if inflight else None,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--auth", default="", help="the Authorization header's value")
    ap.add_argument("--body-file", required=True)
    ap.add_argument("--conns", type=int, default=100, help="concurrent streams [100]")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--max-warmup", type=float, default=30.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--drain-timeout", type=float, default=120.0)
    ap.add_argument("--timeout", type=float, default=120.0, help="per stream, seconds")
    ap.add_argument("--chunks", type=int, default=20, help="tokens per answered stream")
    ap.add_argument("--stagger", type=float, default=0.0,
                    help="start the N workers spread over this many seconds (the length of "
                         "one stream) [0]")
    ap.add_argument("--meter", default="", help="pids whose CPU and RSS are read (comma list)")
    ap.add_argument("--also", default="", help="pids whose CPU share is reported too")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    try:
        import uvloop
        result = uvloop.run(Load(args).run())
    except ImportError:
        result = asyncio.run(Load(args).run())
    Path(args.out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
