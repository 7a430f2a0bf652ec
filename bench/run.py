"""keel gateway benchmark: one command, everything on loopback, side by side, in rounds.

    .venv/bin/python bench/run.py            # full run (writes bench/RESULTS.md)
    .venv/bin/python bench/run.py --quick    # short trial run (RESULTS.md marked TRIAL)

Targets, all against one fast mock upstream (bench/upstream.py):
  direct       wrk -> upstream (the floor)
  passthrough  wrk -> bench/passthrough.py -> upstream (the ceiling for a Python gateway)
  keel         wrk -> `keel serve` (uvicorn; virtual key, cost + traces to SQLite) -> upstream
  keel-granian wrk -> keel under granian (optional, --no-granian to skip)
  litellm      wrk -> `litellm --config ...` (installed into bench/.work/litellm-venv)
  keel+route, keel+ratelimit-mem, keel+budget-mem, keel+ratelimit-redis, keel+budget-redis
               keel with one feature on (bench/variants.py; --no-variants to skip)

All targets are started once; then `--rounds` rounds each measure every target back to back
(c=1, then c=32), rotating the order, so that ratios compare runs made seconds apart.
Results are medians across rounds (bench/report.py). Then the streaming bench runs
(bench/streams.py, its own section of RESULTS.md; --no-streams to skip it, --streams-only to
run only it). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from report import Run, TargetResult, cost_lines, machine_facts, write_report
from variants import (
    DEFAULT_REDIS_URL,
    FEATURE,
    VARIANT_NAMES,
    Variant,
    redis_cleanup,
    redis_key_count,
    redis_ping,
    run_prefix,
    variants,
)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
PY = sys.executable
MASTER_KEY = "sk-keel-bench-master"
LITELLM_KEY = "sk-litellm-bench-master"
MODEL = "bench-model"
BODY = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say hello in one short sentence."},
    ],
    "max_tokens": 32,
    "temperature": 0,
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- processes ------------------------------------------------------------------------------


class Proc:
    """A child process in its own session, optionally pinned to CPUs, logging to a file."""

    def __init__(self, name: str, argv: list[str], *, cpus: str | None, env: dict[str, str],
                 logdir: Path, cwd: Path = ROOT) -> None:
        self.name = name
        if cpus is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", cpus, *argv]
        self.argv = argv
        self.logpath = logdir / f"{name}.log"
        self._log = open(self.logpath, "wb")  # noqa: SIM115
        self.p = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                  cwd=cwd, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def tail(self, n: int = 30) -> str:
        with contextlib.suppress(Exception):
            return "\n".join(self.logpath.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.p.pid, signal.SIGTERM)  # the group of this child only
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)
        self._log.close()


def descendants(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(Exception):
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == pid:
                    out.append(int(d.name))
                    out.extend(descendants(int(d.name)))
    return out


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(Exception):
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tick  # utime + stime
    return total


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(proc: Proc, url: str, headers: dict[str, str], timeout: float,
               body: dict | None = None) -> str | None:
    """Wait until a chat completion through the target answers 200; None or an error."""
    deadline = time.time() + timeout
    last = "no answer"
    data = json.dumps(body or BODY).encode()
    while time.time() < deadline:
        if not proc.alive():
            return f"{proc.name} exited with code {proc.p.returncode}:\n{proc.tail()}"
        try:
            status, raw = http("POST", url, data, {"content-type": "application/json", **headers},
                               timeout=10)
            if status == 200 and b"chat.completion" in raw:
                return None
            last = f"HTTP {status}: {raw[:300]!r}"
        except Exception as exc:  # noqa: BLE001
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.3)
    return f"{proc.name} not ready after {timeout:.0f}s (last: {last})\n{proc.tail()}"


# --- load generator ---------------------------------------------------------------------------


class Loader:
    def __init__(self, outdir: Path, cpus: str | None) -> None:
        self.outdir = outdir
        self.cpus = cpus
        self.n = 0

    def run(self, target: str, label: str, base: str, path: str, auth: str, idle_path: str,
            body_file: Path, conns: int, duration: float, max_requests: int = 0,
            cpu_pids: list[int] | None = None, round_no: int = 0) -> Run:
        self.n += 1
        tag = f"r{round_no}-" if round_no else ""
        out = self.outdir / f"wrk-{self.n:03d}-{tag}{target}-{label}.json"
        for p in (out, Path(str(out) + ".stopped")):
            p.unlink(missing_ok=True)
        env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_PATH": path,
               "BENCH_AUTH": auth, "BENCH_IDLE_PATH": idle_path, "BENCH_OUT": str(out),
               "BENCH_DURATION": str(duration if not max_requests else 3600),
               "BENCH_MAX": str(max_requests)}
        cap = (duration if not max_requests else 3600) + 120
        argv = ["wrk", "-t1", f"-c{conns}", f"-d{int(cap)}s", "--timeout", "30s",
                "-s", str(BENCH / "load.lua"), base]
        if self.cpus is not None:
            argv = ["taskset", "-c", self.cpus, *argv]
        cpu0 = cpu_seconds(cpu_pids or [])
        w = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
        stopped = Path(str(out) + ".stopped")
        soft = (duration if not max_requests else 3600) + 60
        t0 = time.time()
        drained = True
        while not stopped.exists():
            if w.poll() is not None:
                break
            if time.time() - t0 > soft:
                drained = False
                break
            time.sleep(0.05)
        cpu1 = cpu_seconds(cpu_pids or [])
        if w.poll() is None:
            w.send_signal(signal.SIGINT)  # ends wrk's fixed -d sleep; it then prints & runs done()
        text = w.communicate(timeout=60)[0].decode(errors="replace")
        if not out.exists():
            raise RuntimeError(f"wrk produced no result for {target}/{label}:\n{text}")
        d = json.loads(out.read_text())
        e = d["errors"]
        r = Run(target, label, conns, round=round_no, elapsed_s=d["elapsed_s"],
                chat_sent=d["chat_sent"], chat_2xx=d["chat_2xx"], chat_non2xx=d["chat_non2xx"],
                sock_errors=e["connect"] + e["read"] + e["write"] + e["timeout"],
                p50_ms=d["lat_us"]["p50"] / 1000, p90_ms=d["lat_us"]["p90"] / 1000,
                p99_ms=d["lat_us"]["p99"] / 1000, max_ms=d["lat_us"]["max"] / 1000,
                drained=drained and d["chat_sent"] == d["chat_2xx"] + d["chat_non2xx"], raw=d)
        if cpu_pids and r.chat_2xx:
            r.cpu_us_per_req = (cpu1 - cpu0) / r.chat_2xx * 1e6
        return r


# --- targets ----------------------------------------------------------------------------------

CHAT_PATH = "/v1/chat/completions"


@dataclass
class Live:
    """A started target: where and how to send it load, and which processes to meter."""

    tr: TargetResult
    base: str
    body_file: Path | None = None  # the chat body wrk sends; None: the shared BODY file
    body: dict = field(default_factory=lambda: BODY)
    auth: str = ""
    idle: str = "/health"
    proc: Proc | None = None  # None for `direct` (wrk talks to the shared upstream)
    ready_timeout: float = 60
    cpu_pids: list[int] = field(default_factory=list)
    kind: str = ""  # "keel-uvicorn" / "keel-granian" for keel (and its variants): traces counted
    data_dir: Path | None = None  # keel's data dir (SQLite store)
    ready_requests: int = 0  # chat requests answered before the rounds (wait_ready's)
    redis_prefix: str | None = None  # KEEL_REDIS_PREFIX of a Redis variant

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def keel_env(data_dir: Path, config: Path) -> dict[str, str]:
    env = {**os.environ, "KEEL_DATA_DIR": str(data_dir), "KEEL_MASTER_KEY": MASTER_KEY,
           "KEEL_CONFIG": str(config), "KEEL_LOG_LEVEL": "warning"}
    env.pop("KEEL_DATABASE_URL", None)
    env.pop("KEEL_REDIS_URL", None)
    env.pop("KEEL_REDIS_PREFIX", None)
    return env


def keel_setup(tmp: Path, name: str, upstream_port: int,
               extra_yaml: str = "") -> tuple[Path, Path, dict[str, str], str]:
    """A fresh data dir with keel's YAML config (plus `extra_yaml`, a variant's snippet) and
    a virtual key bound to the feature FEATURE (the same for every keel target)."""
    data = tmp / name.replace("+", "-")
    data.mkdir()
    cfg = data / "keel.yaml"
    cfg.write_text(
        "providers:\n"
        "  - name: upstream\n"
        "    kind: openai\n"
        f"    base_url: http://127.0.0.1:{upstream_port}/v1\n"
        "    api_key: sk-upstream-bench\n"
        "models:\n"
        f"  - name: {MODEL}\n"
        "    provider: upstream\n"
        "    upstream: gpt-4o-mini\n"
        "    price: {input_per_mtok: 0.15, output_per_mtok: 0.60}\n" + extra_yaml)
    env = keel_env(data, cfg)
    keel = str(Path(PY).parent / "keel")
    out = subprocess.run([keel, "keys", "create", "--team", "bench", "--feature", FEATURE,
                          "--json"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"keel keys create failed: {out.stderr or out.stdout}")
    key = json.loads(out.stdout.strip().splitlines()[-1])["key"]
    return data, cfg, env, key


def count_traces(db: Path, expect: int, wait_s: float) -> tuple[int, int, float]:
    """(rows in traces, rows with 2xx status, seconds waited) once stable or == expect."""
    t0 = time.time()
    last = (-1, -1)
    stable_since = time.time()
    while True:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as c:
            n = c.execute("SELECT count(*) FROM traces").fetchone()[0]
            ok = c.execute("SELECT count(*) FROM traces WHERE status BETWEEN 200 AND 299"
                           ).fetchone()[0]
        if (n, ok) != last:
            last, stable_since = (n, ok), time.time()
        if n >= expect and time.time() - stable_since >= 1.0:
            return n, ok, time.time() - t0
        if time.time() - stable_since >= 5 or time.time() - t0 >= wait_s:
            return n, ok, time.time() - t0
        time.sleep(0.25)


def start_passthrough(tr: TargetResult, args: argparse.Namespace, up_base: str,
                      logdir: Path) -> Live:
    port = free_port()
    argv = [PY, str(BENCH / "passthrough.py"), "--port", str(port), "--upstream", f"{up_base}/v1"]
    tr.extra["command"] = " ".join(argv)
    proc = Proc("passthrough", argv, cpus=args.target_cpus, env=dict(os.environ), logdir=logdir)
    return Live(tr, f"http://127.0.0.1:{port}", proc=proc, ready_timeout=30)


def start_keel(tr: TargetResult, args: argparse.Namespace, tmp: Path, upstream_port: int,
               logdir: Path, server: str, variant: Variant | None = None,
               redis_prefix: str | None = None) -> Live:
    data, cfg, env, key = keel_setup(tmp, tr.name, upstream_port,
                                     variant.yaml if variant else "")
    body, body_file = BODY, None
    if variant and variant.model:
        body = {**BODY, "model": variant.model}
        body_file = data / "body.json"
        body_file.write_text(json.dumps(body))
    if variant:
        env.update(dict(variant.env))
    if variant and variant.redis:
        assert redis_prefix
        env.update(KEEL_REDIS_URL=args.redis_url, KEEL_REDIS_PREFIX=redis_prefix)
        tr.extra.update(redis_url=args.redis_url, redis_prefix=redis_prefix)
    port = free_port()
    if server == "uvicorn":
        argv = [str(Path(PY).parent / "keel"), "serve", "--config", str(cfg), "--port", str(port)]
    else:
        env["PYTHONPATH"] = os.pathsep.join([str(WORK / "granian-lib"), str(BENCH)])
        argv = [PY, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--runtime-mode", "st",
                "--runtime-threads", "1", "--loop", "uvloop", "--http", "1", "--no-ws",
                "--log-level", "warning", "--factory", "keel_granian:app"]
    tr.extra["command"] = " ".join(argv)
    proc = Proc(tr.name.replace("+", "-"), argv, cpus=args.target_cpus, env=env, logdir=logdir)
    return Live(tr, f"http://127.0.0.1:{port}", body_file=body_file, body=body,
                auth=f"Bearer {key}", proc=proc, ready_timeout=90, kind=f"keel-{server}",
                data_dir=data, redis_prefix=redis_prefix)


def finish_keel(loader: Loader, lv: Live, args: argparse.Namespace) -> None:
    """After the rounds: the RSS phase (plain uvicorn `keel` only), then traces stored vs
    answered (every keel target)."""
    tr = lv.tr
    assert lv.data_dir is not None and lv.body_file is not None
    if args.rss_requests and tr.name == "keel":
        pids = lv.cpu_pids
        server_pid = max(pids, key=lambda p: rss_kb(p) if Path(f"/proc/{p}").exists() else 0)
        total = sum(r.chat_sent for r in tr.runs) + lv.ready_requests
        tr.extra["rss_kb_before_rss_phase"] = rss_kb(server_pid)
        tr.extra["requests_before_rss_phase"] = total
        half = args.rss_requests // 2
        for mark in (half, args.rss_requests):
            log(f"{tr.name}: RSS phase, c=32, {half:,} requests (to +{mark:,})")
            r = loader.run(tr.name, f"rss-to-{mark}", lv.base, CHAT_PATH, lv.auth, lv.idle,
                           lv.body_file, 32, 0, max_requests=half, cpu_pids=pids)
            tr.runs.append(r)
            total += r.chat_sent
            time.sleep(1.0)
            tr.extra[f"rss_kb_at_{mark}"] = rss_kb(server_pid)
            tr.extra[f"total_requests_at_{mark}"] = total
            log(f"{tr.name}: VmRSS after +{mark:,} ({total:,} in all): "
                f"{tr.extra[f'rss_kb_at_{mark}']:,} kB")
    answered = sum(r.chat_2xx for r in tr.runs) + lv.ready_requests
    log(f"{tr.name}: waiting for the trace writer ({answered:,} 2xx answered)")
    n, ok, waited = count_traces(lv.data_dir / "keel.db", answered, 30)
    tr.extra.update(traces_rows=n, traces_2xx=ok, answered_2xx=answered,
                    trace_wait_s=round(waited, 2))
    log(f"{tr.name}: traces stored {n:,} (2xx {ok:,}) vs answered {answered:,}")
    spill_dir = lv.data_dir / "spill"
    spill = list(spill_dir.glob("*.jsonl")) if spill_dir.exists() else []
    tr.extra["spill_files"] = [f"{p.name} ({p.stat().st_size} B)" for p in spill
                               if p.stat().st_size]


def litellm_install(args: argparse.Namespace) -> tuple[Path | None, str | None, str]:
    venv = WORK / "litellm-venv"
    exe = venv / "bin" / "litellm"
    logf = WORK / "litellm-install.log"
    if not exe.exists() or args.reinstall_litellm:
        log("installing LiteLLM into bench/.work/litellm-venv (pip install 'litellm[proxy]')")
        with open(logf, "w") as f:
            r = subprocess.run([PY, "-m", "venv", "--clear", str(venv)], stdout=f,
                               stderr=subprocess.STDOUT)
            if r.returncode == 0:
                r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
                                   stdout=f, stderr=subprocess.STDOUT)
        if r.returncode != 0 or not exe.exists():
            lines = [ln for ln in logf.read_text(errors="replace").splitlines()
                     if not ln.startswith("WARNING: Location")]
            return None, "pip install 'litellm[proxy]' failed:\n" + "\n".join(lines[-15:]), ""
    ver = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True)
    return exe, None, ver.stdout.strip() or "unknown"


LITELLM_SWITCHES = [
    "num_retries: 0 (keel does not retry in this run)",
    "telemetry off (--telemetry False), LITELLM_LOG=ERROR, LITELLM_MODE=PRODUCTION",
    "LITELLM_LOCAL_MODEL_COST_MAP=True (no network fetch of the price map)",
    "disable_spend_logs / disable_error_logs: true (no database is configured anyway)",
    "auth: master_key (no database, so no virtual keys); no callbacks, no cache, no router "
    "fallbacks, 1 worker (uvicorn, its default server)",
]


def start_litellm(tr: TargetResult, args: argparse.Namespace, tmp: Path, upstream_port: int,
                  logdir: Path) -> Live | None:
    exe, err, version = litellm_install(args)
    if err or exe is None:
        tr.error = err
        return None
    tr.extra["version"] = version
    cfg = tmp / "litellm.yaml"
    cfg.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: sk-upstream-bench\n"
        "litellm_settings:\n"
        "  num_retries: 0\n"
        "  request_timeout: 30\n"
        "  set_verbose: false\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
        "  disable_spend_logs: true\n"
        "  disable_error_logs: true\n")
    port = free_port()
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_MODE": "PRODUCTION",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
           "DISABLE_ADMIN_UI": "True", "NO_DOCS": "True"}
    for k in ("DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "LITELLM_MASTER_KEY"):
        env.pop(k, None)
    argv = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1", "--telemetry", "False"]
    tr.extra["command"] = " ".join(argv)
    proc = Proc("litellm", argv, cpus=args.target_cpus, env=env, logdir=logdir)
    return Live(tr, f"http://127.0.0.1:{port}", auth=f"Bearer {LITELLM_KEY}",
                idle="/health/liveliness", proc=proc, ready_timeout=180)


def bring_up(lives: list[Live]) -> list[Live]:
    """Wait until every started target answers a chat completion; the ones that do not are
    stopped and keep their error. The processes start together, so the waits overlap."""
    up = []
    for lv in lives:
        if lv.proc is None:
            up.append(lv)
            continue
        log(f"{lv.tr.name}: waiting until it answers")
        headers = {"authorization": lv.auth} if lv.auth else {}
        err = wait_ready(lv.proc, lv.base + CHAT_PATH, headers, lv.ready_timeout, lv.body)
        if err:
            lv.tr.error = err
            lv.stop()
            continue
        lv.ready_requests = 1  # wait_ready's successful request (keel traces it too)
        lv.cpu_pids = [lv.proc.pid, *descendants(lv.proc.pid)]
        up.append(lv)
    return up


# --- rounds -----------------------------------------------------------------------------------


def run_rounds(loader: Loader, lives: list[Live], args: argparse.Namespace,
               idle: dict[str, float]) -> list[list[str]]:
    """Each round: every target back to back at c=1, then at c=32 (a warm-up, then the measured
    run each time). The order is rotated by one per round. Returns the orders used; adds to
    `idle` the CPU seconds the other (idle) gateways used during the measured runs."""
    orders: list[list[str]] = []
    for rnd in range(1, args.rounds + 1):
        k = (rnd - 1) % len(lives)
        order = lives[k:] + lives[:k]
        orders.append([lv.tr.name for lv in order])
        log(f"round {rnd}/{args.rounds}: {' -> '.join(orders[-1])}")
        for conns in (1, 32):
            for lv in order:
                tr = lv.tr
                if tr.error:
                    continue
                if lv.proc is not None and not lv.proc.alive():
                    tr.error = (f"{tr.name} exited with code {lv.proc.p.returncode} before "
                                f"round {rnd}, c={conns}:\n{lv.proc.tail()}")
                    log(f"{tr.name}: exited; left out from now on")
                    continue
                others = [p for o in lives if o is not lv and o.proc is not None
                          and not o.tr.error for p in o.cpu_pids]
                try:
                    for label, secs in ((f"warmup-c{conns}", args.warmup),
                                        (f"c{conns}", args.duration)):
                        cpu0, t0 = cpu_seconds(others), time.time()
                        assert lv.body_file is not None
                        r = loader.run(tr.name, label, lv.base, CHAT_PATH, lv.auth, lv.idle,
                                       lv.body_file, conns, secs, cpu_pids=lv.cpu_pids,
                                       round_no=rnd)
                        tr.runs.append(r)
                    idle["cpu_s"] += cpu_seconds(others) - cpu0  # over the measured run
                    idle["wall_s"] += time.time() - t0
                except Exception as exc:  # noqa: BLE001
                    tr.error = f"round {rnd}, c={conns}: {type(exc).__name__}: {exc}"
                    log(f"{tr.name}: {tr.error.splitlines()[0]}; left out from now on")
                    continue
                cpu_text = f"{r.cpu_us_per_req:,.0f}" if r.cpu_us_per_req is not None else "-"
                log(f"  r{rnd} c={conns:<2} {tr.name:<20} {r.rps:>8,.0f} req/s  "
                    f"p50 {r.p50_ms:7.3f} ms  p99 {r.p99_ms:8.3f} ms  CPU {cpu_text} µs/req  "
                    f"errors {r.errors}")
    return orders


# --- main -------------------------------------------------------------------------------------

ALL_TARGETS = ["direct", "passthrough", "keel", "keel-granian", "litellm", *VARIANT_NAMES]


def start_variants(wanted: set[str], results: list[TargetResult], lives: list[Live],
                   args: argparse.Namespace, tmp: Path, up_port: int, logdir: Path,
                   prefix: str) -> bool:
    """Start the wanted keel+... targets; the Redis ones only if Redis answers PING (else
    they are reported as not run, with the reason). True if a Redis variant was started."""
    chosen = [v for v in variants(MODEL) if v.name in wanted]
    redis_err = redis_ping(args.redis_url) if any(v.redis for v in chosen) else None
    if redis_err:
        log(f"Redis variants not run: {redis_err}")
    started_redis = False
    for v in chosen:
        t = TargetResult(v.name, v.description)
        results.append(t)
        if v.redis and redis_err:
            t.error = f"not run: {redis_err}"
            continue
        try:
            lives.append(start_keel(t, args, tmp, up_port, logdir, "uvicorn", v,
                                    f"{prefix}{v.name.removeprefix('keel+')}:"
                                    if v.redis else None))
            started_redis |= v.redis
        except Exception as exc:  # noqa: BLE001
            t.error = f"{type(exc).__name__}: {exc}"
    return started_redis


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk not found; installing it with apt-get")
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False,
                       stdout=subprocess.DEVNULL)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update"], check=False, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "wrk"], check=False,
                           stdout=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        sys.exit("wrk is required: install it (e.g. `apt-get install -y wrk`) and re-run")



def run_streams(args: argparse.Namespace) -> int:
    """The streaming bench (bench/streams.py) as a child process, with this run's options
    that it shares (--quick, --trial, --no-litellm, --no-pin, --output, the stream targets
    of --only); its exit code."""
    argv = [PY, str(BENCH / "streams.py"), "--output", args.output]
    argv += [flag for flag, on in (("--quick", args.quick), ("--trial", args.trial),
                                   ("--no-litellm", args.no_litellm),
                                   ("--no-pin", args.no_pin)) if on]
    if args.only:
        from report import STREAM_TARGETS
        chosen = [t for t in args.only.split(",") if t in STREAM_TARGETS]
        if not chosen:
            log("streaming bench skipped: --only names none of " + ", ".join(STREAM_TARGETS))
            return 0
        argv += ["--only", ",".join(chosen)]
    log("streaming bench: " + " ".join(argv[1:]))
    return subprocess.run(argv, check=False).returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="trial: 3 rounds of 3 s runs, RSS at 10k/20k requests")
    ap.add_argument("--trial", action="store_true", help="mark RESULTS.md as a trial run")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds; each measures every target at c=1 and c=32 [5; --quick 3]")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds per measured run [10; --quick 3]")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds of warm-up before each measured run [1]")
    ap.add_argument("--rss-requests", type=int, default=None,
                    help="RSS read at half of this and at this many keel requests [100000]; "
                         "0 = skip")
    ap.add_argument("--only", default=None,
                    help="comma-separated subset of: " + ",".join(ALL_TARGETS)
                    + " (`variants` = all keel+... targets)")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--no-granian", action="store_true")
    ap.add_argument("--no-variants", action="store_true",
                    help="skip the keel+route/ratelimit/budget targets")
    ap.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                    help=f"Redis for the keel+*-redis targets [{DEFAULT_REDIS_URL}]")
    ap.add_argument("--reinstall-litellm", action="store_true")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes with taskset")
    ap.add_argument("--output", default=str(BENCH / "RESULTS.md"))
    ap.add_argument("--no-streams", action="store_true",
                    help="skip the streaming bench (bench/streams.py) after the gateway bench")
    ap.add_argument("--streams-only", action="store_true",
                    help="run only the streaming bench (its own options: bench/streams.py -h)")
    args = ap.parse_args()
    if args.streams_only:
        sys.exit(run_streams(args))
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup or 1.0
    if args.rss_requests is None:
        args.rss_requests = 20_000 if args.quick else 100_000
    if args.rounds < 1:
        sys.exit("--rounds must be at least 1")

    ensure_wrk()
    WORK.mkdir(exist_ok=True)
    ncpu = os.cpu_count() or 1
    pin = not args.no_pin and ncpu >= 2 and shutil.which("taskset") is not None
    # Two cores: the gateways under test get CPU 1 (only one of them is loaded at a time; the
    # others sit idle); the load generator and the mock upstream share CPU 0. (With more
    # cores: gateways on 1, wrk on 0, upstream on 2.)
    args.target_cpus = "1" if pin else None
    wrk_cpus = "0" if pin else None
    up_cpus = ("2" if ncpu >= 3 else "0") if pin else None
    if pin:
        layout = (f"Pinning (taskset): every gateway on CPU {args.target_cpus} (all are up for "
                  "the whole run, only the one being measured has load), wrk on CPU "
                  f"{wrk_cpus}, mock upstream on CPU {up_cpus}. For `direct`, wrk talks to the "
                  "upstream itself.")
    else:
        layout = "No CPU pinning."
    wanted = set((args.only or ",".join(ALL_TARGETS)).split(","))
    if "variants" in wanted:
        wanted.discard("variants")
        wanted.update(VARIANT_NAMES)
    unknown = wanted - set(ALL_TARGETS)
    if unknown:
        sys.exit(f"--only: unknown target(s) {', '.join(sorted(unknown))}; "
                 f"use {', '.join(ALL_TARGETS)} or variants")
    if args.no_litellm:
        wanted.discard("litellm")
    if args.no_granian:
        wanted.discard("keel-granian")
    if args.no_variants:
        wanted -= set(VARIANT_NAMES)

    command = "python bench/run.py" + "".join(f" {a}" for a in sys.argv[1:])
    facts = machine_facts()
    tmp = Path(tempfile.mkdtemp(prefix="keel-bench-", dir=WORK))
    logdir = tmp / "logs"
    logdir.mkdir()
    body_file = tmp / "body.json"
    body_file.write_text(json.dumps(BODY))
    loader = Loader(tmp, wrk_cpus)
    prefix = run_prefix()  # the Redis variants' keys: <prefix><variant>:...
    redis_used = False
    log(f"work dir {tmp}; {layout}")

    results: list[TargetResult] = []
    lives: list[Live] = []
    orders: list[list[str]] = []
    up_port = free_port()
    upstream = Proc("upstream", [PY, str(BENCH / "upstream.py"), "--port", str(up_port)],
                    cpus=up_cpus, env=dict(os.environ), logdir=logdir)
    try:
        err = wait_ready(upstream, f"http://127.0.0.1:{up_port}{CHAT_PATH}", {}, 15)
        if err:
            sys.exit(f"mock upstream did not start: {err}")
        up_base = f"http://127.0.0.1:{up_port}"

        # 1. start every wanted target (they come up side by side, all pinned as above)
        if "direct" in wanted:
            t = TargetResult("direct", "wrk straight to the mock upstream (the floor)")
            results.append(t)
            lives.append(Live(t, up_base, cpu_pids=[upstream.pid]))
        if "passthrough" in wanted:
            t = TargetResult("passthrough", "bench/passthrough.py, raw ASGI on uvicorn+uvloop+"
                             "httptools, orjson + pooled aiohttp, nothing else (the ceiling)")
            results.append(t)
            lives.append(start_passthrough(t, args, up_base, logdir))
        if "keel" in wanted:
            t = TargetResult("keel", "`keel serve` (uvicorn), virtual key auth, cost + "
                             "trace capture (with content) to SQLite")
            results.append(t)
            try:
                lives.append(start_keel(t, args, tmp, up_port, logdir, "uvicorn"))
            except Exception as exc:  # noqa: BLE001
                t.error = f"{type(exc).__name__}: {exc}"
        if "keel-granian" in wanted:
            t = TargetResult("keel-granian", "the same keel app under granian (1 worker, "
                             "single-threaded runtime, uvloop), via bench/keel_granian.py")
            results.append(t)
            try:
                if not (WORK / "granian-lib" / "granian").exists():
                    log("installing granian into bench/.work/granian-lib (pip --target)")
                    r = subprocess.run([PY, "-m", "pip", "install", "-q", "--target",
                                        str(WORK / "granian-lib"), "granian"],
                                       capture_output=True, text=True)
                    if r.returncode != 0:
                        raise RuntimeError("pip install granian failed: " + r.stderr[-2000:])
                lives.append(start_keel(t, args, tmp, up_port, logdir, "granian"))
            except Exception as exc:  # noqa: BLE001
                t.error = f"{type(exc).__name__}: {exc}"
        if "litellm" in wanted:
            t = TargetResult("litellm", "LiteLLM proxy (its CLI, 1 worker), master key auth, "
                             "`openai/` model with api_base = the mock upstream")
            results.append(t)
            try:
                lv = start_litellm(t, args, tmp, up_port, logdir)
                if lv:
                    lives.append(lv)
            except Exception as exc:  # noqa: BLE001
                t.error = f"{type(exc).__name__}: {exc}"
        redis_used = start_variants(wanted, results, lives, args, tmp, up_port, logdir, prefix)
        for lv in lives:
            lv.body_file = lv.body_file or body_file
        up = bring_up(lives)
        log("up: " + (", ".join(lv.tr.name for lv in up) or "nothing"))

        # 2. the rounds; 3. keel's RSS phase and trace count
        if up:
            idle = {"cpu_s": 0.0, "wall_s": 0.0}
            orders = run_rounds(loader, up, args, idle)
            if len([lv for lv in up if lv.proc is not None]) > 1 and idle["wall_s"]:
                facts["idle_cpu"] = (
                    f"While one target was measured, the other (idle) gateways used "
                    f"{idle['cpu_s']:.2f} s of CPU in all over {idle['wall_s']:.0f} s of "
                    f"measured runs ({idle['cpu_s'] / idle['wall_s']:.2%} of a core).")
                log(facts["idle_cpu"])
        for lv in up:
            if lv.kind.startswith("keel-") and not lv.tr.error:
                try:
                    finish_keel(loader, lv, args)
                except Exception as exc:  # noqa: BLE001
                    lv.tr.error = f"after the rounds: {type(exc).__name__}: {exc}"

        with contextlib.suppress(Exception):
            _status, raw = http("GET", f"{up_base}/stats")
            log(f"upstream answered {json.loads(raw)['answered']:,} chat requests in total")
    finally:
        for lv in lives:
            lv.stop()
        upstream.stop()
        if redis_used:
            try:
                n = redis_cleanup(args.redis_url, prefix)
                left = redis_key_count(args.redis_url, prefix)
                log(f"Redis: deleted {n:,} keys under {prefix}* ({left} left)")
                facts["redis_cleanup"] = (f"Redis keys of this run ({prefix}*): {n:,} deleted "
                                          f"after the run, {left} left.")
            except Exception as exc:  # noqa: BLE001
                log(f"Redis: could not delete the keys under {prefix}*: {exc}")
                facts["redis_cleanup"] = f"Could not delete the Redis keys {prefix}*: {exc}"

    facts["load_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    out = Path(args.output)
    checks = write_report(results, args, facts, command, layout, orders, LITELLM_SWITCHES,
                          WORK, out)
    (WORK / "last-results.json").write_text(json.dumps(
        {"rounds": args.rounds, "orders": orders, "targets": [
            {"name": t.name, "error": t.error, "extra": t.extra,
             "runs": [{**{k: v for k, v in r.__dict__.items() if k != "raw"}, "rps": r.rps}
                      for r in t.runs]} for t in results]}, indent=1, default=str))
    print()
    for t in results:
        if t.error:
            print(f"{t.name}: {'FAILED' if t.runs else 'DID NOT RUN'}: "
                  f"{t.error.splitlines()[0]}")
    print(f"median of {args.rounds} rounds; ratios = median of same-round ratios")
    for line in cost_lines(results):
        print(line)
    for name, measured, v in checks:
        print(f"{v:>12}  {name}: {measured}")
    print(f"\nwrote {out} (logs and wrk output in {tmp})")
    if not args.no_streams:
        code = run_streams(args)
        if code:
            sys.exit(f"the streaming bench failed (exit code {code})")


if __name__ == "__main__":
    main()
