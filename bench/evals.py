"""Eval runner benchmark: `keel eval run` on 5k and 50k cases against the built-in mock.

    .venv/bin/python bench/evals.py              # ~2 min; writes its section of RESULTS.md
    bash bench/run.sh --evals-only               # the same, through the bench entry point
    .venv/bin/python bench/evals.py --sizes 500,2000 --repeat 1 --no-latency \\
        --output /tmp/evals.md                   # ~15 s check

What it does (everything in a fresh directory under bench/.work/keel-evals-*, removed at
the end unless --keep or a run failed):

* writes JSONL datasets of N cases (two prompt variables and an expected answer each; every
  case distinct, so nothing comes from the result cache unless a run is meant to), a prompt
  file (pushed with `keel prompts push --label production`), a suite with three
  deterministic scorers (contains, length, regex) and keel configs with the mock provider at
  0 ms and at p50 20 ms / p99 60 ms latency;
* runs `keel eval run SUITE --config CFG -c 32 -q` as a child process, each on a fresh
  SQLite store (its own KEEL_DATA_DIR and KEEL_DATABASE_URL), and measures: wall time of
  the whole command; executions/s of the runner's execution phase (the run row's started_at
  .. finished_at, i.e. after the dataset import); the child's CPU time; and its memory:
  peak RSS from wait4()'s rusage (ru_maxrss of that one child), plus VmRSS sampled every
  0.1 s from /proc/PID/status, to see whether it grows while the cases execute;
* re-runs the largest suite on the same store, so that every answer comes from the result
  cache;
* repeats the 0 ms runs (--repeat, default 3) and reports medians with min-max, then one
  run of 5k cases against the 20 ms mock at c=32 and one of 500 cases at c=1;
* writes the figures into bench/RESULTS.md between `<!-- evals:start -->` and
  `<!-- evals:end -->` (replacing that section, or appending it). bench/report.py keeps the
  section when the gateway bench rewrites the file.

The runs are sequential (one child at a time) and not pinned. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import loadavg, log, write_section
from common import machine as facts

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"
PY = sys.executable
KEEL = str(Path(PY).parent / "keel")
START, END = "<!-- evals:start -->", "<!-- evals:end -->"
PROMPT = "bench-support"
SAMPLE_S = 0.1
LATENCY = "p50 20 ms, p99 60 ms"

PROMPT_YAML = f"""\
name: {PROMPT}
model: mock
params: {{temperature: 0}}
messages:
  - role: system
    content: You are a support assistant. Answer in two or three sentences.
  - role: user
    content: "My {{{{product}}}} shows this problem: {{{{issue}}}}. What should I do?"
"""

ISSUES = ("login fails after the update", "billing page times out", "export stays empty",
          "notifications arrive twice", "search returns stale results",
          "password reset email never arrives", "dashboard loads very slowly",
          "invoice totals look wrong")


def suite_yaml(dataset: Path) -> str:
    return f"""\
name: bench-evals
dataset: {dataset}
targets:
  - {PROMPT}@production
scorers:
  - {{type: contains, name: mentions-product, value: "{{{{expected}}}}"}}
  - {{type: length, name: length, min_words: 5, max_words: 200}}
  - {{type: regex, name: actionable, pattern: "\\\\b(check|confirm|review|try)\\\\b", flags: i}}
concurrency: 32
"""


def config_yaml(p50_ms: float, p99_ms: float | None) -> str:
    lat = f"{{p50_ms: {p50_ms:g}" + (f", p99_ms: {p99_ms:g}}}" if p99_ms else "}")
    return f"""\
providers:
  - name: mock
    kind: mock
    latency: {lat}
models:
  - name: mock
    provider: mock
    price: {{input_per_mtok: 0.15, output_per_mtok: 0.60}}
"""


def write_dataset(path: Path, n: int) -> None:
    """n distinct cases; every 10th expects a word the answer does not contain."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            product = f"widget{i:06d}"
            expected = product if i % 10 else f"gadget{i:06d}"
            fh.write(json.dumps({"id": f"c{i}", "vars": {"product": product,
                                                         "issue": ISSUES[i % len(ISSUES)]},
                                 "expected": expected}) + "\n")


# --- one measured child process ---------------------------------------------------------------


@dataclass
class Measured:
    kind: str  # "cold-50000", "cached-50000", "latency-5000", "serial-500"
    rep: int
    cases: int
    concurrency: int
    latency: str
    wall_s: float = 0.0
    cpu_s: float = 0.0  # user + system of the child
    exit_code: int = 0
    peak_rss_kb: int = 0  # ru_maxrss of the child (wait4)
    samples: list[tuple[float, int]] = field(default_factory=list)  # (epoch, VmRSS kB)
    run: dict[str, Any] = field(default_factory=dict)  # the eval_runs row
    db_bytes: int = 0
    stderr_tail: str = ""

    @property
    def name(self) -> str:
        return f"{self.kind}#{self.rep}"

    @property
    def exec_s(self) -> float:
        r = self.run
        return (r["finished_at"] - r["started_at"]) if r.get("finished_at") else 0.0

    @property
    def rate(self) -> float:
        return self.run.get("executions", 0) / self.exec_s if self.exec_s else 0.0

    @property
    def pass_rate(self) -> float:
        return self.run["passed"] / self.run["executions"] if self.run.get("executions") else 0.0

    def rss_at(self, frac: float) -> int | None:
        """VmRSS (kB) first sampled after `frac` of the execution phase."""
        r = self.run
        if not r.get("finished_at") or not self.samples:
            return None
        at = r["started_at"] + frac * (r["finished_at"] - r["started_at"])
        after = [kb for t, kb in self.samples if t >= at]
        return after[0] if after else self.samples[-1][1]

    @property
    def before_exec_kb(self) -> int | None:
        """Highest VmRSS sampled before the execution phase (start-up + dataset import)."""
        start = self.run.get("started_at")
        xs = [kb for t, kb in self.samples if start is None or t < start]
        return max(xs) if xs else None


def vm_rss_kb(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def run_child(argv: list[str], env: dict[str, str], m: Measured, logdir: Path) -> None:
    out_path, err_path = logdir / f"{m.name}.out", logdir / f"{m.name}.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        t0 = time.time()
        proc = subprocess.Popen(argv, env=env, cwd=logdir, stdout=out, stderr=err)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            kb = vm_rss_kb(proc.pid)
            if kb:
                m.samples.append((time.time(), kb))
            time.sleep(SAMPLE_S)
        m.wall_s = time.time() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; tell Popen
    m.exit_code = proc.returncode
    m.peak_rss_kb = usage.ru_maxrss  # kB on Linux; this child only
    m.cpu_s = usage.ru_utime + usage.ru_stime
    m.stderr_tail = err_path.read_text()[-2000:]


def last_run_row(db: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        c.row_factory = sqlite3.Row
        row = c.execute("SELECT * FROM eval_runs ORDER BY started_at DESC LIMIT 1").fetchone()
        return dict(row) if row else {}


class Store:
    """A fresh keel data dir (SQLite store) with the prompt pushed and labelled."""

    def __init__(self, tmp: Path, name: str, config: Path) -> None:
        self.dir = tmp / "stores" / name
        self.dir.mkdir(parents=True)
        self.db = self.dir / "keel.db"
        # KEEL_GIT_COMMIT: the runner records it instead of asking git for the commit.
        self.env = {**os.environ, "KEEL_DATA_DIR": str(self.dir),
                    "KEEL_DATABASE_URL": f"sqlite:///{self.db}", "KEEL_CONFIG": str(config),
                    "KEEL_LOG_LEVEL": "warning", "KEEL_GIT_COMMIT": "bench", "NO_COLOR": "1"}
        for var in ("KEEL_REDIS_URL", "KEEL_REDIS_PREFIX", "KEEL_CAPTURE_CONTENT"):
            self.env.pop(var, None)
        out = subprocess.run([KEEL, "prompts", "push", str(tmp / "prompt.yaml"),
                              "--label", "production", "-m", "bench"], env=self.env,
                             cwd=tmp, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"keel prompts push failed: {out.stderr or out.stdout}")


def measure(kind: str, rep: int, store: Store, suite: Path, config: Path, cases: int,
            conc: int, latency: str, logdir: Path) -> Measured:
    m = Measured(kind, rep, cases, conc, latency)
    argv = [KEEL, "eval", "run", str(suite), "--config", str(config), "-c", str(conc), "-q"]
    log(f"{m.name}: keel eval run {suite.name} --config {config.name} -c {conc} -q "
        f"({cases:,} cases)")
    run_child(argv, store.env, m, logdir)
    m.run = last_run_row(store.db)
    m.db_bytes = sum(p.stat().st_size for p in store.dir.glob("keel.db*"))
    if m.exit_code != 0 or m.run.get("status") != "done":
        raise RuntimeError(f"{m.name}: keel eval run exited {m.exit_code} "
                           f"(run status {m.run.get('status')}): {m.stderr_tail}")
    if m.run.get("executions") != cases or m.run.get("errored"):
        raise RuntimeError(f"{m.name}: {m.run.get('executions')} executions "
                           f"({m.run.get('errored')} errored), expected {cases} and none")
    log(f"  {m.rate:,.0f} executions/s ({m.exec_s:.1f} s executing, {m.wall_s:.1f} s wall, "
        f"{m.cpu_s:.1f} s CPU), peak RSS {m.peak_rss_kb / 1024:.0f} MiB, pass rate "
        f"{m.pass_rate:.1%}, from cache {m.run['cached']:,}")
    return m




# --- RESULTS.md -------------------------------------------------------------------------------






def mib(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:,.0f}"


def med_span(ms: list[Measured], value: Callable[[Measured], float | None],
             show: Callable[[float], str]) -> str:
    xs = [v for v in (value(m) for m in ms) if v is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return show(xs[0])
    return f"{show(statistics.median(xs))} ({show(min(xs))}-{show(max(xs))})"


def median(ms: list[Measured], value: Callable[[Measured], float]) -> float:
    return statistics.median(value(m) for m in ms)


def section(results: list[Measured], f: dict[str, str], command: str, load_after: str,
            repeat: int) -> str:
    groups: dict[str, list[Measured]] = {}
    for m in results:
        groups.setdefault(m.kind, []).append(m)
    order = " → ".join(dict.fromkeys(m.kind for m in results if m.latency == "0 ms"))
    L = [START, "## Eval runner\n",
         "_Generated by `bench/evals.py` (`bash bench/run.sh --evals-only`); the gateway "
         "bench (`bench/run.py`) keeps this section when it rewrites the file._\n",
         f"Command: `{command}` · {f['date']} · {f['cpu']}, {f['cores']} cores · kernel "
         f"{f['kernel']} · Python {f['python']} · keel {f['keel']} · load average before "
         f"{f['load']}, after {load_after}\n"]
    colds = sorted((k for k in groups if k.startswith("cold-")), key=lambda k: int(k[5:]))
    if len(colds) >= 2:
        small, big = groups[colds[0]], groups[colds[-1]]
        ns, nb = small[0].cases, big[0].cases
        ps, pb = median(small, lambda m: m.peak_rss_kb), median(big, lambda m: m.peak_rss_kb)
        r10, r50, r100 = (statistics.median(m.rss_at(x) or 0 for m in big)
                          for x in (0.1, 0.5, 1.0))
        growth = (r100 - r10) / r10 if r10 else 0.0
        L.append(f"- **Memory, {nb:,} cases: peak RSS {mib(pb)} MiB** vs {mib(ps)} MiB for "
                 f"{ns:,} cases: **{pb / ps:.2f}x** for {nb / ns:g}x the cases (medians of "
                 f"{len(big)} runs). While the {nb:,} cases executed, RSS went from "
                 f"{mib(r10)} MiB (10% done) to {mib(r50)} MiB (half) and {mib(r100)} MiB "
                 f"(end), {growth:+.0%}.")
        cached = groups.get(f"cached-{nb}")
        L.append(f"- **Throughput at concurrency {big[0].concurrency}, mock provider at 0 ms: "
                 f"{median(big, lambda m: m.rate):,.0f} cases/s** over {nb:,} cases "
                 f"({ns:,} cases: {median(small, lambda m: m.rate):,.0f}/s); "
                 + (f"cached re-run (every answer from the result cache): "
                    f"**{median(cached, lambda m: m.rate):,.0f} cases/s**."
                    if cached else "cached re-run not measured."))
    lat, ser = groups.get(next((k for k in groups if k.startswith("latency-")), "")), \
        groups.get(next((k for k in groups if k.startswith("serial-")), ""))
    if lat and ser:
        a, b = lat[0], ser[0]
        p50 = a.run["latency_p50_ms"] or 0.0
        ceiling = f"{a.concurrency * 1000 / p50:,.0f}" if p50 else "-"
        L.append(f"- **Concurrency** against the mock at {LATENCY}: {a.rate:,.0f} cases/s at "
                 f"c={a.concurrency} vs {b.rate:,.0f} at c=1 (**{a.rate / b.rate:.1f}x**); "
                 f"at c={a.concurrency} the ceiling is about {ceiling}/s (concurrency / "
                 f"measured p50 {p50:.1f} ms).")
    L.append("")
    L.append("Medians, with min-max when there was more than one run:\n")
    L.append("| runs of | cases | mock latency | conc. | runs | **cases/s** (execution) | "
             "wall s | CPU s | **peak RSS MiB** | RSS MiB at 10% / 50% / end of execution | "
             "RSS MiB before execution | pass rate | from cache | SQLite MiB |")
    L.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for kind, ms in groups.items():
        m0 = ms[0]
        L.append(
            f"| {kind} | {m0.cases:,} | {m0.latency} | {m0.concurrency} | {len(ms)} | "
            f"**{med_span(ms, lambda m: m.rate, lambda v: f'{v:,.0f}')}** | "
            f"{med_span(ms, lambda m: m.wall_s, lambda v: f'{v:.1f}')} | "
            f"{med_span(ms, lambda m: m.cpu_s, lambda v: f'{v:.1f}')} | "
            f"**{med_span(ms, lambda m: m.peak_rss_kb, mib)}** | "
            f"{mib(median(ms, lambda m: m.rss_at(0.1) or 0))} / "
            f"{mib(median(ms, lambda m: m.rss_at(0.5) or 0))} / "
            f"{mib(median(ms, lambda m: m.rss_at(1.0) or 0))} | "
            f"{mib(median(ms, lambda m: m.before_exec_kb or 0))} | {m0.pass_rate:.1%} | "
            f"{m0.run['cached']:,} | {median(ms, lambda m: m.db_bytes) / 2**20:,.0f} |")
    L.append("")
    L.append("Every run, in the order they ran:\n")
    L.append("| run | cases/s | execution s | wall s | CPU s | peak RSS MiB | latency p50 / p99 "
             "ms |")
    L.append("|---|---:|---:|---:|---:|---:|---|")
    for m in results:
        L.append(f"| {m.name} | {m.rate:,.0f} | {m.exec_s:.1f} | {m.wall_s:.1f} | "
                 f"{m.cpu_s:.1f} | {mib(m.peak_rss_kb)} | "
                 f"{m.run['latency_p50_ms'] or 0:.1f} / {m.run['latency_p99_ms'] or 0:.1f} |")
    L.append("")
    L.append(
        "Method: each run is one `keel eval run SUITE --config CFG -c C -q` child process "
        "(the CLI: gateway, trace writer and store in that process, no HTTP), one at a time, "
        "not pinned, on a machine shared with other work (see the load averages). Each "
        f"`cold-*`, `latency-*` and `serial-*` run has a **fresh SQLite store** (its own "
        "`KEEL_DATA_DIR`/`KEEL_DATABASE_URL`; the prompt pushed with `keel prompts push "
        "--label production`); each `cached-*` run re-runs the suite on the store of the "
        f"`cold-*` run just before it. The 0 ms runs ran in {repeat} round(s) of "
        f"{order}. The suite: one target "
        f"(`{PROMPT}@production`, model `mock`: a system and a user message with 2 "
        "variables), the dataset as a JSONL file of distinct cases (`vars` product + issue, "
        "`expected`), three deterministic scorers: `contains` `{{expected}}` (every 10th "
        "case expects a word the answer lacks), `length` 5-200 words, `regex` for an "
        "actionable verb (about 2 answers in 3 have one); repeats 1. Every execution goes "
        "through the gateway's path (validation, routing, cost, a trace with request and "
        "response written by the trace writer) and writes a result row. **cases/s** = "
        "executions / (run row `started_at` .. `finished_at`): the execution phase, after "
        "the dataset file is imported into the store; start-up and the import are in "
        "`wall s`. A cached run only hashes the file (the stored version is reused), "
        "calls no model, still scores every answer and writes every result row. Peak RSS "
        "is `ru_maxrss` from `wait4()` for that child alone; the other RSS columns are "
        f"`/proc/PID/status` VmRSS sampled every {SAMPLE_S:g} s. CPU s is the child's "
        "user + system time for the whole command. No other eval tool was measured.")
    L.append(END)
    return "\n".join(L) + "\n"




# --- main -------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="5000,50000",
                    help="dataset sizes for the 0 ms runs; the largest is also re-run "
                         "cached [5000,50000]")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the 0 ms runs [3]")
    ap.add_argument("--concurrency", "-c", type=int, default=32)
    ap.add_argument("--latency-cases", type=int, default=5000,
                    help="cases against the mock at p50 20 ms, at --concurrency [5000]; "
                         "0 = skip")
    ap.add_argument("--serial-cases", type=int, default=500,
                    help="cases against the same mock at concurrency 1 [500]; 0 = skip")
    ap.add_argument("--no-latency", action="store_true",
                    help="skip both runs against the 20 ms mock")
    ap.add_argument("--no-cached", action="store_true", help="skip the cached re-runs")
    ap.add_argument("--output", default=str(BENCH / "RESULTS.md"))
    ap.add_argument("--no-write", action="store_true", help="print only; leave --output alone")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (stores, logs)")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    latency_cases = 0 if args.no_latency else args.latency_cases
    serial_cases = 0 if args.no_latency else args.serial_cases
    if args.repeat < 1 or not sizes or min(sizes) < 1:
        sys.exit("--repeat and --sizes must be at least 1")

    WORK.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="keel-evals-", dir=WORK))
    logdir = tmp / "logs"
    logdir.mkdir()
    f = facts()
    command = "python bench/evals.py" + "".join(f" {a}" for a in sys.argv[1:])
    log(f"work dir {tmp}; load average {f['load']}")
    (tmp / "prompt.yaml").write_text(PROMPT_YAML)
    cfg0, cfg20 = tmp / "mock-0ms.yaml", tmp / "mock-20ms.yaml"
    cfg0.write_text(config_yaml(0, None))
    cfg20.write_text(config_yaml(20, 60))
    suites: dict[int, Path] = {}
    for n in sorted(set(sizes + [x for x in (latency_cases, serial_cases) if x])):
        data = tmp / f"qa{n}.jsonl"
        write_dataset(data, n)
        suites[n] = tmp / f"suite-{n}.yaml"
        suites[n].write_text(suite_yaml(data))

    results: list[Measured] = []
    ok = False
    t0 = time.time()
    try:
        for rep in range(1, args.repeat + 1):
            for n in sizes:
                store = Store(tmp, f"cold-{n}-{rep}", cfg0)
                results.append(measure(f"cold-{n}", rep, store, suites[n], cfg0, n,
                                       args.concurrency, "0 ms", logdir))
                if n == sizes[-1] and not args.no_cached:
                    results.append(measure(f"cached-{n}", rep, store, suites[n], cfg0, n,
                                           args.concurrency, "0 ms", logdir))
                if not args.keep:  # a 50k-case store is ~200 MB
                    shutil.rmtree(store.dir, ignore_errors=True)
        if latency_cases:
            store = Store(tmp, f"latency-{latency_cases}", cfg20)
            results.append(measure(f"latency-{latency_cases}", 1, store, suites[latency_cases],
                                   cfg20, latency_cases, args.concurrency, LATENCY, logdir))
        if serial_cases:
            store = Store(tmp, f"serial-{serial_cases}", cfg20)
            results.append(measure(f"serial-{serial_cases}", 1, store, suites[serial_cases],
                                   cfg20, serial_cases, 1, LATENCY, logdir))
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs and stores kept in {tmp}")
    log(f"all runs took {time.time() - t0:.0f} s")
    text = section(results, f, command, loadavg(), args.repeat)
    print()
    print(text)
    if not args.no_write:
        write_section(Path(args.output), text, START, END)
        log(f"wrote the evals section of {args.output}")


if __name__ == "__main__":
    main()
