"""keel streaming benchmark: hundreds of slow concurrent streams, side by side, in rounds.

    .venv/bin/python bench/streams.py            # ~10 min; writes its RESULTS.md section
    .venv/bin/python bench/streams.py --quick    # ~2 min trial (marked TRIAL)

Targets, all against the mock upstream (bench/upstream.py) streaming like a slow model:
  direct       load generator -> upstream (the floor)
  passthrough  -> bench/passthrough.py -> upstream (the bare streaming proxy: raw ASGI on
               uvicorn + uvloop + httptools, pooled aiohttp, each SSE event re-serialized)
  keel         -> `keel serve` (virtual key, priced model, traces with content to SQLite)
  litellm      -> `litellm --config ...` (installed into bench/.work/litellm-venv)

All targets are started once; then `--rounds` rounds each run every target at every
`--levels` concurrency (the load generator bench/stream_load.py, its own process), rotating
the order, so that ratios compare runs made seconds apart. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import loadavg, machine, write_section
from report import (
    STREAM_TARGETS,
    STREAMS_END,
    STREAMS_START,
    StreamRun,
    StreamTarget,
    stream_checks,
    stream_section,
)
from run import (
    BODY,
    CHAT_PATH,
    LITELLM_SWITCHES,
    PY,
    WORK,
    Live,
    Proc,
    bring_up,
    count_traces,
    cpu_seconds,
    free_port,
    keel_setup,
    log,
    rss_kb,
    start_litellm,
    wait_ready,
)

BENCH = Path(__file__).resolve().parent
STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}


def rss_sum(pids: list[int]) -> int:
    total = 0
    for p in pids:
        with contextlib.suppress(OSError):
            total += rss_kb(p)
    return total


def start_passthrough(tr: StreamTarget, args: argparse.Namespace, up_base: str,
                      logdir: Path) -> Live:
    port = free_port()
    argv = [PY, str(BENCH / "passthrough.py"), "--port", str(port), "--upstream",
            f"{up_base}/v1", "--pool", str(args.pool)]
    tr.extra["command"] = " ".join(argv)
    proc = Proc("passthrough", argv, cpus=args.target_cpus, env=dict(os.environ), logdir=logdir)
    return Live(tr, f"http://127.0.0.1:{port}", proc=proc, ready_timeout=30)


def start_keel(tr: StreamTarget, args: argparse.Namespace, tmp: Path, up_port: int,
               logdir: Path) -> Live:
    """`keel serve` set up as bench/run.py sets up its `keel` target; only the provider's
    pool limit is raised to --pool (keel's default is 256 upstream connections per
    provider, fewer than the streams in flight at the higher level)."""
    data, cfg, env, key = keel_setup(tmp, "keel", up_port)
    text = cfg.read_text()
    marker = "    api_key: sk-upstream-bench\n"
    assert marker in text
    cfg.write_text(text.replace(marker, marker + f"    max_connections: {args.pool}\n", 1))
    port = free_port()
    argv = [str(Path(PY).parent / "keel"), "serve", "--config", str(cfg), "--port", str(port)]
    tr.extra["command"] = " ".join(argv)
    proc = Proc("keel", argv, cpus=args.target_cpus, env=env, logdir=logdir)
    return Live(tr, f"http://127.0.0.1:{port}", auth=f"Bearer {key}", proc=proc,
                ready_timeout=90, kind="keel-uvicorn", data_dir=data)


def stream_once(lv: Live, chunks: int) -> str | None:
    """One streamed request through the target; None if it carried every token and
    ended with [DONE], else what was wrong."""
    headers = {"content-type": "application/json"}
    if lv.auth:
        headers["authorization"] = lv.auth
    req = urllib.request.Request(lv.base + CHAT_PATH, data=json.dumps(STREAM_BODY).encode(),
                                 headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
    except Exception as exc:
        return f"streamed request failed: {type(exc).__name__}: {exc}"
    n = raw.count(b"tkn_")
    if n != chunks or b"data: [DONE]" not in raw[-64:]:
        return (f"streamed answer has {n} of {chunks} tokens"
                f"{'' if b'[DONE]' in raw else ' and no [DONE]'}: {raw[:300]!r}")
    return None


def settle(pids: list[int], limit_s: float) -> tuple[float, float]:
    """Wait until the pids use < 3% of a core over 0.25 s twice in a row; (seconds, CPU s)."""
    t0, c0 = time.time(), cpu_seconds(pids)
    quiet = 0
    while time.time() - t0 < limit_s and quiet < 2:
        a = cpu_seconds(pids)
        time.sleep(0.25)
        quiet = quiet + 1 if cpu_seconds(pids) - a < 0.0075 else 0
    return time.time() - t0, cpu_seconds(pids) - c0


def run_one(lv: Live, conns: int, rnd: int, args: argparse.Namespace, tmp: Path,
            body_file: Path, upstream_pid: int) -> StreamRun:
    tr: StreamTarget = lv.tr
    out = tmp / f"load-r{rnd}-{tr.name}-c{conns}.json"
    argv = [PY, str(BENCH / "stream_load.py"), "--url", lv.base + CHAT_PATH,
            "--auth", lv.auth, "--body-file", str(body_file), "--conns", str(conns),
            "--warmup", str(args.warmup), "--max-warmup", str(args.max_warmup),
            "--duration", str(args.duration), "--chunks", str(args.chunks),
            "--stagger", str((args.first_ms + (args.chunks - 1) * args.interval_ms) / 1000),
            "--timeout", str(args.stream_timeout), "--drain-timeout", str(args.drain_timeout),
            "--meter", ",".join(map(str, lv.cpu_pids)), "--out", str(out)]
    if lv.proc is not None:
        argv += ["--also", str(upstream_pid)]
    if args.loadgen_cpus is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", args.loadgen_cpus, *argv]
    limit = args.max_warmup + args.duration + args.drain_timeout + 60
    p = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    if p.returncode != 0 or not out.exists():
        raise RuntimeError(f"load generator failed ({p.returncode}): {p.stderr[-1500:]}")
    d = json.loads(out.read_text())
    d["baseline_rss_kb"] = tr.extra["idle_rss_kb"]
    settle_s, settle_cpu = settle(lv.cpu_pids, args.settle_timeout)
    if settle_s >= args.settle_timeout:
        log(f"{tr.name}: still busy {args.settle_timeout:g} s after the run")
    return StreamRun(tr.name, conns, rnd, d, round(settle_s, 2), round(settle_cpu, 3))


def run_rounds(lives: list[Live], args: argparse.Namespace, tmp: Path, body_file: Path,
               upstream_pid: int) -> list[list[str]]:
    orders: list[list[str]] = []
    for rnd in range(1, args.rounds + 1):
        k = (rnd - 1) % len(lives)
        order = lives[k:] + lives[:k]
        orders.append([lv.tr.name for lv in order])
        log(f"round {rnd}/{args.rounds}: {' -> '.join(orders[-1])}")
        for conns in args.levels:
            for lv in order:
                tr: StreamTarget = lv.tr
                if tr.error:
                    continue
                if lv.proc is not None and not lv.proc.alive():
                    tr.error = (f"exited with code {lv.proc.p.returncode} before round {rnd}, "
                                f"c={conns}:\n{lv.proc.tail()}")
                    log(f"{tr.name}: exited; left out from now on")
                    continue
                try:
                    r = run_one(lv, conns, rnd, args, tmp, body_file, upstream_pid)
                except Exception as exc:
                    tr.error = f"round {rnd}, c={conns}: {type(exc).__name__}: {exc}"
                    log(f"{tr.name}: {tr.error.splitlines()[0]}; left out from now on")
                    continue
                tr.runs.append(r)
                d = r.d
                busy = d["cpu_busy"].get(tr.extra.get("cpu_name", ""), None)
                log(f"  r{rnd} c={conns:<4} {tr.name:<12} {r.rate:7,.1f} streams/s  "
                    f"CPU {r.cpu_us or 0:7,.0f} µs/stream  TTFT p50 "
                    f"{r.ms('ttft_ms', 'p50') or 0:7.1f} p99 {r.ms('ttft_ms', 'p99') or 0:7.1f} "
                    f"ms  total p50 {r.ms('total_ms', 'p50') or 0:6,.0f} ms  errors "
                    f"{d['errors']}  RSS {(d.get('rss_inflight_kb') or 0) / 1024:.0f} MiB"
                    + (f"  core {busy:.0%}" if busy is not None else "")
                    + f"  loadgen {(d.get('loadgen_cpu_share') or 0):.0%}")
    return orders


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="trial: 1 round, 3 s windows, levels 20,100 (marked TRIAL)")
    ap.add_argument("--trial", action="store_true", help="mark the section as a trial run")
    ap.add_argument("--levels", default=None,
                    help="concurrency levels, comma-separated [100,500; --quick 20,100]; the "
                         "lowest is the non-saturating one, the highest the saturating one")
    ap.add_argument("--rounds", type=int, default=None, help="rounds [3; --quick 1]")
    ap.add_argument("--duration", type=float, default=None,
                    help="measured seconds per run [10; --quick 3]")
    ap.add_argument("--warmup", type=float, default=None,
                    help="minimum warm-up seconds per run [3; --quick 2]")
    ap.add_argument("--max-warmup", type=float, default=30.0,
                    help="the warm-up ends by then even if fewer than N streams completed [30]")
    ap.add_argument("--chunks", type=int, default=20, help="content chunks per stream [20]")
    ap.add_argument("--first-ms", type=float, default=60, help="upstream TTFT [60]")
    ap.add_argument("--interval-ms", type=float, default=60,
                    help="upstream delay between chunks [60]")
    ap.add_argument("--stream-timeout", type=float, default=60.0,
                    help="a stream not finished after this many seconds is an error [60]")
    ap.add_argument("--drain-timeout", type=float, default=30.0,
                    help="streams still in flight this long after the window are cut off and "
                         "count as errors [30]")
    ap.add_argument("--settle-timeout", type=float, default=60.0,
                    help="after each run, wait up to this long for the target's CPU to go "
                         "idle before the next run [60]")
    ap.add_argument("--pool", type=int, default=1024,
                    help="upstream connection pool of keel and the bare proxy [1024]")
    ap.add_argument("--only", default=None,
                    help="comma-separated subset of: " + ",".join(STREAM_TARGETS))
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--reinstall-litellm", action="store_true")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes with taskset")
    ap.add_argument("--output", default=str(BENCH / "RESULTS.md"))
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    args.levels = sorted({int(x) for x in (args.levels or
                                           ("20,100" if args.quick else "100,500")).split(",")})
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup or (2.0 if args.quick else 3.0)
    if args.rounds < 1 or not args.levels or min(args.levels) < 1:
        ap.error("--rounds and --levels must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    t_begin = time.time()
    wanted = set((args.only or ",".join(STREAM_TARGETS)).split(","))
    unknown = wanted - set(STREAM_TARGETS)
    if unknown:
        sys.exit(f"--only: unknown target(s) {', '.join(sorted(unknown))}; "
                 f"use {', '.join(STREAM_TARGETS)}")
    if args.no_litellm:
        wanted.discard("litellm")
    # each stream holds a client, a server and an upstream socket: lift the soft fd limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, 4 * max(args.levels) + 1024))
    if hard == resource.RLIM_INFINITY:
        want = max(soft, 4 * max(args.levels) + 1024)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    WORK.mkdir(exist_ok=True)
    ncpu = os.cpu_count() or 1
    pin = not args.no_pin and ncpu >= 2 and shutil.which("taskset") is not None
    args.target_cpus = "1" if pin else None
    args.loadgen_cpus = "0" if pin else None
    up_cpus = ("2" if ncpu >= 3 else "0") if pin else None
    layout = (f"Pinning (taskset): every target on CPU 1 (all are up for the whole run, only "
              f"the one being measured has load), the load generator on CPU 0, the mock "
              f"upstream on CPU {up_cpus}." if pin else "No CPU pinning.")
    command = "python bench/streams.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    facts = machine()
    tmp = Path(tempfile.mkdtemp(prefix="keel-streams-", dir=WORK))
    logdir = tmp / "logs"
    logdir.mkdir()
    body_file = tmp / "body.json"
    body_file.write_text(json.dumps(STREAM_BODY))
    log(f"work dir {tmp}; {layout}; levels {args.levels}, {args.rounds} round(s)")

    results: list[StreamTarget] = []
    lives: list[Live] = []
    orders: list[list[str]] = []
    up_port = free_port()
    upstream = Proc("upstream", [PY, str(BENCH / "upstream.py"), "--port", str(up_port),
                                 "--stream-chunks", str(args.chunks),
                                 "--stream-first-ms", str(args.first_ms),
                                 "--stream-interval-ms", str(args.interval_ms)],
                    cpus=up_cpus, env=dict(os.environ), logdir=logdir)
    cpu_name = f"cpu{args.target_cpus}" if pin else ""
    litellm_version = None
    try:
        err = wait_ready(upstream, f"http://127.0.0.1:{up_port}{CHAT_PATH}", {}, 15)
        if err:
            sys.exit(f"mock upstream did not start: {err}")
        up_base = f"http://127.0.0.1:{up_port}"
        for name, desc in (
            ("direct", "the load generator straight to the mock upstream (the floor)"),
            ("passthrough", "bench/passthrough.py: raw ASGI on uvicorn+uvloop+httptools, "
                            f"pooled aiohttp (limit {args.pool}), each SSE event parsed and "
                            "re-serialized with orjson, nothing else (the bare streaming proxy)"),
            ("keel", "`keel serve` (uvicorn) as in the gateway bench: virtual key auth, a "
                     "priced model, cost and trace capture (with content) to SQLite; provider "
                     f"max_connections {args.pool}"),
            ("litellm", "LiteLLM proxy (its CLI, 1 worker), master key auth, `openai/` model "
                        "with api_base = the mock upstream"),
        ):
            if name not in wanted:
                continue
            t = StreamTarget(name, desc)
            results.append(t)
            try:
                if name == "direct":
                    t.extra["cpu_name"] = f"cpu{up_cpus}" if pin else ""
                    lives.append(Live(t, up_base, cpu_pids=[upstream.pid]))
                elif name == "passthrough":
                    t.extra["cpu_name"] = cpu_name
                    lives.append(start_passthrough(t, args, up_base, logdir))
                elif name == "keel":
                    t.extra["cpu_name"] = cpu_name
                    lives.append(start_keel(t, args, tmp, up_port, logdir))
                else:
                    t.extra["cpu_name"] = cpu_name
                    lv = start_litellm(t, args, tmp, up_port, logdir)
                    if lv:
                        lives.append(lv)
                        litellm_version = t.extra.get("version")
            except Exception as exc:
                t.error = f"{type(exc).__name__}: {exc}"
        up = bring_up(lives)
        ready = []
        for lv in up:
            err = stream_once(lv, args.chunks)
            if err:
                lv.tr.error = f"a first streamed request failed: {err}"
                log(f"{lv.tr.name}: {err}")
                lv.stop()
                continue
            if lv.proc is not None:
                lv.ready_requests += 1
            ready.append(lv)
        time.sleep(1.0)
        for lv in ready:
            lv.tr.extra["idle_rss_kb"] = rss_sum(lv.cpu_pids)
        log("up: " + (", ".join(f"{lv.tr.name} (idle RSS {lv.tr.extra['idle_rss_kb'] / 1024:.0f}"
                                f" MiB)" for lv in ready) or "nothing"))
        if ready:
            orders = run_rounds(ready, args, tmp, body_file, upstream.pid)
        for lv in ready:
            tr: StreamTarget = lv.tr
            if lv.kind == "keel-uvicorn" and lv.data_dir is not None and tr.runs:
                answered = sum(int(r.d["answered"]) for r in tr.runs) + lv.ready_requests
                sent = sum(int(r.d["sent"]) for r in tr.runs) + lv.ready_requests
                log(f"keel: waiting for the trace writer ({answered:,} streams answered)")
                n, ok, waited = count_traces(lv.data_dir / "keel.db", sent, 60)
                tr.extra.update(traces_rows=n, traces_2xx=ok, answered=answered, sent=sent,
                                trace_wait_s=round(waited, 2))
                log(f"keel: traces stored {n:,} (2xx {ok:,}) vs streams answered {answered:,}")
        with contextlib.suppress(Exception):
            with urllib.request.urlopen(f"{up_base}/stats", timeout=5) as r:
                st = json.loads(r.read())
            log(f"upstream answered {st['answered']:,} requests, {st['streams']:,} of them "
                "streamed")
    finally:
        for lv in lives:
            lv.stop()
        upstream.stop()

    meta = {"levels": args.levels, "rounds": args.rounds, "duration": args.duration,
            "warmup": args.warmup, "max_warmup": args.max_warmup,
            "stream_timeout": args.stream_timeout, "drain_timeout": args.drain_timeout,
            "settle_timeout": args.settle_timeout, "chunks": args.chunks,
            "first_ms": args.first_ms, "interval_ms": args.interval_ms, "layout": layout,
            "pool_note": f"keel's provider `max_connections` and the bare proxy's pool limit "
                         f"are {args.pool} (keel's default is 256 per provider, fewer than "
                         f"the streams in flight at c={max(args.levels)}); LiteLLM keeps its "
                         f"own defaults." if max(args.levels) > 256 else "",
            "orders": orders, "machine": facts, "load_after": loadavg(), "command": command,
            "trial": args.quick or args.trial, "litellm_version": litellm_version,
            "litellm_switches": LITELLM_SWITCHES, "took_s": time.time() - t_begin}
    (WORK / "last-streams.json").write_text(json.dumps(
        {"meta": meta, "targets": [{"name": t.name, "error": t.error, "extra": t.extra,
                                    "runs": [r.__dict__ for r in t.runs]} for t in results]},
        indent=1, default=str))
    text = stream_section(results, meta)
    if not args.no_write:
        write_section(Path(args.output), text, STREAMS_START, STREAMS_END)
    print()
    for t in results:
        if t.error:
            print(f"{t.name}: {'FAILED' if t.runs else 'DID NOT RUN'}: "
                  f"{t.error.splitlines()[0]}")
    for name, measured, v in stream_checks({t.name: t for t in results}, min(args.levels),
                                           max(args.levels)):
        print(f"{v:>12}  {name}: {measured}")
    print(f"\n{'wrote ' + args.output if not args.no_write else 'not written'} "
          f"(logs and load generator output in {tmp})")


if __name__ == "__main__":
    main()
