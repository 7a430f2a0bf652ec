"""Result records, round statistics and the RESULTS.md writer for bench/run.py.

Kept apart from run.py (which starts the processes and drives wrk) so that each file stays
readable. Nothing here starts a process or touches the network.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from variants import VARIANT_NAMES

# --- records ----------------------------------------------------------------------------------


@dataclass
class Run:
    target: str
    label: str  # "warmup-c1", "c1", "warmup-c32", "c32", "rss-to-N"
    conns: int
    round: int = 0  # 1..N for the rounds; 0 for runs outside them (the RSS phase)
    elapsed_s: float = 0.0
    chat_sent: int = 0
    chat_2xx: int = 0
    chat_non2xx: int = 0
    sock_errors: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    cpu_us_per_req: float | None = None
    drained: bool = True
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.chat_2xx / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def errors(self) -> int:
        return self.chat_non2xx + self.sock_errors + (0 if self.drained else 1)


@dataclass
class TargetResult:
    name: str
    description: str
    runs: list[Run] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def measured(self, conns: int) -> list[Run]:
        """The measured (not warm-up) runs of the rounds at `conns`, in round order."""
        return sorted((r for r in self.runs if r.label == f"c{conns}" and r.round),
                      key=lambda r: r.round)

    def per_round(self, conns: int, value: Callable[[Run], float | None]) -> dict[int, float]:
        out = {}
        for r in self.measured(conns):
            v = value(r)
            if v is not None:
                out[r.round] = v
        return out


# --- statistics -------------------------------------------------------------------------------


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def round_ratios(num: TargetResult | None, den: TargetResult | None, conns: int,
                 value: Callable[[Run], float | None]) -> dict[int, float]:
    """num/den for every round in which both targets have a measured run at `conns`."""
    if not num or not den:
        return {}
    a, b = num.per_round(conns, value), den.per_round(conns, value)
    return {k: a[k] / b[k] for k in sorted(a.keys() & b.keys()) if b[k]}


def rps(r: Run) -> float:
    return r.rps


def p50(r: Run) -> float:
    return r.p50_ms


def p99(r: Run) -> float:
    return r.p99_ms


def cpu(r: Run) -> float | None:
    return r.cpu_us_per_req


# --- formatting -------------------------------------------------------------------------------


def fmt(v: float | None, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def span(xs: list[float], spec: str) -> str:
    return f"{min(xs):{spec}}–{max(xs):{spec}}" if xs else "-"


def verdict(ok: bool | None) -> str:
    return "NOT MEASURED" if ok is None else ("PASS" if ok else "FAIL")


def per_round_text(vals: dict[int, float], spec: str, suffix: str = "") -> str:
    return ", ".join(f"r{k} {v:{spec}}{suffix}" for k, v in vals.items())


# --- machine facts ----------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    cpu_model = "unknown"
    with contextlib.suppress(Exception):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    wrk_text = (wrk.stdout + wrk.stderr).strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk_text.splitlines()[0] if wrk_text else "?",
        "load_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def versions(work: Path) -> dict[str, str]:
    import importlib.metadata as m
    out = {}
    for pkg in ("keel", "uvicorn", "uvloop", "httptools", "starlette", "aiohttp", "orjson"):
        with contextlib.suppress(Exception):
            out[pkg] = m.version(pkg)
    with contextlib.suppress(Exception):
        out["granian"] = next((work / "granian-lib").glob("granian-*.dist-info")).name[
            len("granian-"):-len(".dist-info")]
    return out


# --- checks -----------------------------------------------------------------------------------

Check = tuple[str, str, str]


def ratio_check(name: str, num: TargetResult | None, den: TargetResult | None,
                threshold: float, spec: str, missing: str, rounds: int) -> Check:
    """A same-round throughput ratio at c=32: the verdict is on the median of the rounds."""
    rr = round_ratios(num, den, 32, rps)
    if not rr or num is None or den is None:
        return name, missing, verdict(None)
    m = statistics.median(rr.values())
    text = (f"{m:{spec}}x median of {len(rr)} same-round ratios"
            + (f" (of {rounds} rounds)" if len(rr) != rounds else "")
            + f"; per round: {per_round_text(rr, spec, 'x')}; median req/s "
            f"{fmt(med(list(num.per_round(32, rps).values())))} / "
            f"{fmt(med(list(den.per_round(32, rps).values())))}")
    return name, text, verdict(m >= threshold)


def cpu_ratio_line(name: str, num: TargetResult | None, den: TargetResult | None,
                   spec: str, note: str) -> Check | None:
    rr = round_ratios(num, den, 32, cpu)
    if not rr or num is None or den is None:
        return None
    m = statistics.median(rr.values())
    return (name, f"{m:{spec}}x median of same-round ratios (per round: "
                  f"{per_round_text(rr, spec, 'x')}); median CPU µs/req "
                  f"{fmt(med(list(num.per_round(32, cpu).values())))} / "
                  f"{fmt(med(list(den.per_round(32, cpu).values())))}; {note}", "INFO")


def compute_checks(by: dict[str, TargetResult], rounds: int) -> list[Check]:
    def ok(name: str) -> TargetResult | None:
        t = by.get(name)
        return t if t and not t.error else None

    def failed(name: str) -> str:
        t = by.get(name)
        if t is None:
            return f"{name} not selected"
        return f"{name} did not run" if t.error else "-"

    checks: list[Check] = []
    direct, keel, pt, ll = ok("direct"), ok("keel"), ok("passthrough"), ok("litellm")
    if direct and keel and direct.measured(1) and keel.measured(1):
        dk = [r.p50_ms for r in direct.measured(1)]
        kk = [r.p50_ms for r in keel.measured(1)]
        added = statistics.median(kk) - statistics.median(dk)
        diffs = {k: v - direct.per_round(1, p50)[k] for k, v in keel.per_round(1, p50).items()
                 if k in direct.per_round(1, p50)}
        checks.append(("keel added p50 over direct at c=1 <= 1 ms",
                       f"{added:.3f} ms (median keel {statistics.median(kk):.3f} - median "
                       f"direct {statistics.median(dk):.3f}); per round: "
                       f"{per_round_text(diffs, '.3f', ' ms')}", verdict(added <= 1.0)))
    else:
        checks.append(("keel added p50 over direct at c=1 <= 1 ms",
                       failed("keel") if not keel else failed("direct"), verdict(None)))
    checks.append(ratio_check("keel/passthrough throughput at c=32 >= 0.5x", keel, pt, 0.5,
                              ".2f", failed("keel") if not keel else failed("passthrough"),
                              rounds))
    checks.append(ratio_check("keel/LiteLLM throughput at c=32 >= 30x", keel, ll, 30, ".1f",
                              failed("keel") if not keel else failed("litellm"), rounds))
    nj = ok("keel-nojournal")
    if keel and nj:
        _, text, _ = ratio_check("journal", keel, nj, 0, ".3f", "-", rounds)
        checks.append(("throughput at c=32, keel ÷ keel-nojournal (not a check)", text,
                       "INFO"))
    for line in (
        cpu_ratio_line("CPU µs/req at c=32, keel ÷ passthrough (not a check)", keel, pt, ".2f",
                       "a load-independent cost ratio: its inverse is the throughput ratio "
                       "two CPU-bound single-core servers would have"),
        cpu_ratio_line("CPU µs/req at c=32, LiteLLM ÷ keel (not a check)", ll, keel, ".1f",
                       "the same for keel vs LiteLLM"),
        cpu_ratio_line("CPU µs/req at c=32, keel ÷ keel-nojournal (not a check)", keel,
                       ok("keel-nojournal"), ".3f",
                       "what the crash-safe trace journal costs per request"),
    ):
        if line:
            checks.append(line)
    k = by.get("keel")
    if k and not k.error:
        errs = sum(r.errors for r in k.runs)
        checks.append(("zero errors (keel, every run incl. warm-ups and RSS phase)",
                       f"{errs} errors in {sum(r.chat_sent for r in k.runs):,} requests",
                       verdict(errs == 0)))
        n, ans = k.extra.get("traces_rows"), k.extra.get("answered_2xx")
        checks.append(("traces stored == 2xx answered (keel, all its runs)",
                       f"{n:,} traces ({k.extra.get('traces_2xx', 0):,} with 2xx status) vs "
                       f"{ans:,} answered; writer given {k.extra.get('trace_wait_s')} s"
                       if n is not None else "-", verdict(None if n is None else n == ans)))
        marks = sorted(int(x.rsplit("_", 1)[1]) for x in k.extra if x.startswith("rss_kb_at_"))
        if len(marks) == 2:
            a, b = (k.extra[f"rss_kb_at_{m}"] for m in marks)
            na, nb = (k.extra[f"total_requests_at_{m}"] for m in marks)
            growth = (b - a) / a
            phase_ok = nb - na >= marks[1] - marks[0]  # the second half really ran
            checks.append((f"keel RSS within 10% between +{marks[0]:,} and +{marks[1]:,} "
                           "requests of the RSS phase",
                           f"{a / 1024:.1f} MiB -> {b / 1024:.1f} MiB ({growth:+.1%}); "
                           f"{k.extra.get('rss_kb_before_rss_phase', 0) / 1024:.1f} MiB before "
                           f"it; {na:,} / {nb:,} requests served in all at the two readings",
                           verdict(abs(growth) <= 0.10 and phase_ok if phase_ok else None)))
        else:
            checks.append(("keel RSS within 10% between 50k and 100k requests", "-",
                           verdict(None)))
    else:
        checks.append(("zero errors / traces / RSS (keel)", failed("keel"), verdict(None)))
    checks.extend(variant_checks(by, rounds, ok, failed))
    return checks


def traces_check(t: TargetResult) -> Check:
    n, ans = t.extra.get("traces_rows"), t.extra.get("answered_2xx")
    return (f"traces stored == 2xx answered ({t.name}, all its runs)",
            f"{n:,} traces ({t.extra.get('traces_2xx', 0):,} with 2xx status) vs {ans:,} "
            f"answered; writer given {t.extra.get('trace_wait_s')} s" if n is not None else "-",
            verdict(None if n is None else n == ans))


def variant_checks(by: dict[str, TargetResult], rounds: int,
                   ok: Callable[[str], TargetResult | None],
                   failed: Callable[[str], str]) -> list[Check]:
    """The Redis budget throughput check, then zero errors and traces == answered for every
    keel+... target that was selected."""
    out: list[Check] = []
    name = "keel+budget-redis"
    if name in by:
        out.append(ratio_check(f"{name} throughput at c=32 >= 0.7x plain keel (median of "
                               "same-round ratios)", ok(name), ok("keel"), 0.7, ".2f",
                               failed(name) if not ok(name) else failed("keel"), rounds))
    for v in VARIANT_NAMES:
        t = by.get(v)
        if t is None:
            continue
        if t.error:
            out.append((f"zero errors / traces stored == 2xx answered ({v})", failed(v),
                        verdict(None)))
            continue
        errs = sum(r.errors for r in t.runs)
        non2xx = sum(r.chat_non2xx for r in t.runs)
        out.append((f"zero errors ({v}, every run incl. warm-ups; a 429 counts)",
                    f"{errs} errors ({non2xx} non-2xx) in {sum(r.chat_sent for r in t.runs):,} "
                    "requests", verdict(errs == 0)))
        out.append(traces_check(t))
    return out


# --- cost of the variants ---------------------------------------------------------------------


@dataclass
class Cost:
    """One keel+... target against plain keel at one connection count, round by round."""

    name: str
    conns: int
    rps: float | None  # median req/s of the variant
    ratio: dict[int, float]  # same-round throughput ratio variant / keel
    added_p50: dict[int, float]  # same-round p50 difference variant - keel, ms
    cpu: float | None  # median CPU µs/req of the variant
    added_cpu: dict[int, float]  # same-round CPU µs/req difference

    @property
    def ratio_med(self) -> float | None:
        return med(list(self.ratio.values()))

    @property
    def p50_med(self) -> float | None:
        return med(list(self.added_p50.values()))

    @property
    def cpu_med(self) -> float | None:
        return med(list(self.added_cpu.values()))


def round_diffs(num: TargetResult, den: TargetResult, conns: int,
                value: Callable[[Run], float | None]) -> dict[int, float]:
    a, b = num.per_round(conns, value), den.per_round(conns, value)
    return {k: a[k] - b[k] for k in sorted(a.keys() & b.keys())}


def variant_costs(results: list[TargetResult], conns: int) -> list[Cost]:
    by = {t.name: t for t in results}
    keel = by.get("keel")
    if keel is None or not keel.measured(conns):
        return []
    out = []
    for t in results:
        if t.name not in VARIANT_NAMES or not t.measured(conns):
            continue
        out.append(Cost(t.name, conns, med([r.rps for r in t.measured(conns)]),
                        round_ratios(t, keel, conns, rps), round_diffs(t, keel, conns, p50),
                        med([v for v in t.per_round(conns, cpu).values()]),
                        round_diffs(t, keel, conns, cpu)))
    return out


def cost_section(results: list[TargetResult]) -> list[str]:
    names = [t.name for t in results if t.name in VARIANT_NAMES]
    if not names:
        return []
    L = ["## Cost of routing, limits and budgets\n",
         "Each keel+... target is plain `keel` with one feature turned on (same key, same "
         "upstream, its own process, data dir and SQLite store, pinned like `keel`). Against "
         "plain `keel` measured **in the same round**: the throughput ratio (median of the "
         "same-round ratios; each round's in the next column), the added p50 latency and the added "
         "CPU µs/req (medians of the same-round differences). A ratio below 1 / a positive "
         "difference is what the feature costs.\n"]
    for conns in (32, 1):
        costs = variant_costs(results, conns)
        L.append(f"### c={conns}\n")
        if not costs:
            L.append("_Not measured (plain `keel` or the variants have no run at this "
                     "connection count)._\n")
            continue
        keel = next(t for t in results if t.name == "keel")
        kr = med([r.rps for r in keel.measured(conns)])
        kp = med([r.p50_ms for r in keel.measured(conns)])
        kc = med(list(keel.per_round(conns, cpu).values()))
        L.append(f"Plain `keel` at c={conns}: median {fmt(kr)} req/s, p50 {fmt(kp, '.3f')} ms, "
                 f"{fmt(kc)} CPU µs/req.\n")
        L.append("| variant | req/s median | throughput vs keel | per round | added p50 ms | "
                 "per round | CPU µs/req median | added CPU µs/req |")
        L.append("|---|---:|---:|---|---:|---|---:|---:|")
        for c in costs:
            L.append(f"| {c.name} | {fmt(c.rps)} | **{fmt(c.ratio_med, '.2f')}x** | "
                     f"{per_round_text(c.ratio, '.2f', 'x')} | **{fmt(c.p50_med, '+.3f')}** | "
                     f"{per_round_text(c.added_p50, '+.3f')} | {fmt(c.cpu)} | "
                     f"{fmt(c.cpu_med, '+,.0f')} |")
        L.append("")
    failed = [t for t in results if t.name in names and t.error]
    for t in failed:
        L.append(f"- **{t.name}** {'failed' if t.runs else 'did not run'}: "
                 f"{t.error.strip().splitlines()[0]}")
    if failed:
        L.append("")
    return L


def cost_lines(results: list[TargetResult]) -> list[str]:
    """One line per variant for the console: ratio and added p50 vs keel at c=32 and c=1."""
    by_conns = {c: {x.name: x for x in variant_costs(results, c)} for c in (32, 1)}
    lines = []
    for t in results:
        if t.name not in VARIANT_NAMES:
            continue
        if t.error and not t.runs:
            lines.append(f"{t.name:<22} did not run")
            continue
        parts = []
        for c in (32, 1):
            x = by_conns[c].get(t.name)
            if x:
                parts.append(f"c={c}: {fmt(x.ratio_med, '.2f')}x keel, p50 "
                             f"{fmt(x.p50_med, '+.3f')} ms, CPU {fmt(x.cpu_med, '+,.0f')} µs/req")
        lines.append(f"{t.name:<22} " + ("; ".join(parts) or "not measured"))
    return lines


# --- RESULTS.md -------------------------------------------------------------------------------


def summary_rows(t: TargetResult) -> list[str]:
    rows = []
    for conns in (1, 32):
        rs = t.measured(conns)
        if not rs:
            continue
        rates, p50s, p99s = [r.rps for r in rs], [r.p50_ms for r in rs], [r.p99_ms for r in rs]
        cpus = [r.cpu_us_per_req for r in rs if r.cpu_us_per_req is not None]
        rows.append(
            f"| {t.name} | {conns} | {len(rs)} | **{fmt(med(rates))}** | {span(rates, ',.0f')} | "
            f"{med(p50s):.3f} | {span(p50s, '.3f')} | {med(p99s):.3f} | {span(p99s, '.3f')} | "
            f"{max(r.max_ms for r in rs):.1f} | {sum(r.errors for r in rs)} | "
            f"{sum(r.chat_2xx for r in rs):,} | **{fmt(med(cpus))}** |")
    return rows


def rounds_table(results: list[TargetResult], by: dict[str, TargetResult],
                 orders: list[list[str]], conns: int) -> list[str]:
    names = [t.name for t in results]
    pairs = [(n, d) for n, d in (("keel", "passthrough"), ("keel", "litellm"))
             if n in by and d in by]
    head = "| round | order | " + " | ".join(names) + "".join(
        f" | {n}/{d}" for n, d in pairs) + " |"
    L = [head, "|---:|---|" + "---:|" * (len(names) + len(pairs))]
    for i, order in enumerate(orders, 1):
        cells = []
        for t in results:
            v = t.per_round(conns, rps).get(i)
            cells.append(fmt(v) if v is not None else ("failed" if t.error else "-"))
        for n, d in pairs:
            v = round_ratios(by[n], by[d], conns, rps).get(i)
            cells.append(fmt(v, ".2f" if d == "passthrough" else ".1f") + "x" if v else "-")
        L.append(f"| {i} | {' → '.join(order)} | " + " | ".join(cells) + " |")
    return L


def write_report(results: list[TargetResult], args: argparse.Namespace, facts: dict[str, str],
                 command: str, layout: str, orders: list[list[str]], litellm_switches: list[str],
                 work: Path, path: Path) -> list[Check]:
    by = {t.name: t for t in results}
    L: list[str] = []
    trial = args.quick or args.trial
    L.append("# keel benchmark results\n")
    L.append("_Generated by `bench/run.py`; re-running it overwrites this file, except the "
             "sections at the end that other benches write (`bench/evals.py`, "
             "`bench/summary.py`, `bench/guard/run.py`, `bench/streams.py`, "
             "`bench/json_schema_bench.py`), which it keeps._\n")
    if trial:
        L.append("> **TRIAL RUN.** Short durations and few rounds (`--quick`/`--trial`), "
                 "possibly on a machine that was busy with other work; the numbers show that "
                 "the harness works end to end, not keel's real performance. Re-run without "
                 "`--quick` on a quiet machine for figures.\n")
    L.append(f"Command: `{command}`\n")
    L.append("| machine | |\n|---|---|")
    for k in ("date", "cpu", "cores", "kernel", "python", "wrk", "load_before"):
        L.append(f"| {k} | {facts.get(k, '?')} |")
    L.append(f"| load after | {facts.get('load_after', '?')} |")
    vs = versions(work)
    L.append(f"| packages | {', '.join(f'{k} {v}' for k, v in vs.items())} |")
    if "litellm" in by and by["litellm"].extra.get("version"):
        L.append(f"| litellm | {by['litellm'].extra['version']} |")
    L.append("")
    L.append(
        f"Method: all targets are started once and stay up. The measurements are made in "
        f"**{args.rounds} rounds**; in each round every target gets, back to back, a "
        f"{args.warmup:g} s warm-up and a {args.duration:g} s measured run at 1 connection, "
        f"then the same at 32 connections (wrk, 1 thread, `bench/load.lua`). The order of the "
        "targets is rotated by one each round, so no target always goes first. Because the "
        "machine's speed drifts over minutes (other tenants), the figures below are "
        "**medians across the rounds** (with min–max), and the throughput ratios are the "
        "**median of per-round ratios**: keel and the target it is compared with were "
        "measured within the same round, seconds apart. Each run ends by draining: no new "
        "chat request after the deadline, the in-flight ones are awaited, so every request "
        "sent is answered and counted. req/s = 2xx chat answers / (first request sent .. last "
        "answer). Latency percentiles are wrk's (request written .. response read). CPU µs/req "
        "is the user+system CPU time the target process used during the run divided by its "
        "requests; it depends much less on the machine's momentary speed than req/s does. "
        f"{layout} {facts.get('idle_cpu', '')} {facts.get('redis_cleanup', '')}".rstrip()
        + "\n")
    L.append("| target | conns | rounds | req/s median | req/s min–max | p50 ms median | "
             "p50 min–max | p99 ms median | p99 min–max | max ms | errors | 2xx (all rounds) "
             "| CPU µs/req median |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in results:
        rows = summary_rows(t)
        L.extend(rows)
        if t.error:
            L.append(f"| {t.name} | - | - | {'failed' if rows else 'did not run'} | "
                     "| | | | | | | | |")
    L.append("")
    L.append("Targets: " + "; ".join(f"**{t.name}**: {t.description}" for t in results) + ".\n")

    checks = compute_checks(by, args.rounds)
    L.append("## Targets (checks)\n")
    L.append("Verdicts are on the medians of the rounds (throughput ratios: the median of the "
             "ratios measured within each round). INFO lines are not checks.\n")
    L.append("| check | measured | verdict |\n|---|---|---|")
    for c in checks:
        L.append(f"| {c[0]} | {c[1]} | **{c[2]}** |")
    L.append("")
    if trial:
        L.append("_Trial run: these verdicts are not the verdicts of a full run._\n")
        if args.rss_requests and args.rss_requests != 100_000:
            L.append(f"_RSS was read after {args.rss_requests // 2:,} and "
                     f"{args.rss_requests:,} requests of the RSS phase "
                     f"(`--rss-requests {args.rss_requests}`), not 50k/100k._\n")

    L.extend(cost_section(results))

    L.append("## Rounds\n")
    L.append("req/s of every measured run, per round, in the order the round ran them, and "
             "the ratios within each round.\n")
    for conns in (1, 32):
        L.append(f"### c={conns}\n")
        L.extend(rounds_table(results, by, orders, conns))
        L.append("")

    L.append("## Details\n")
    for t in results:
        L.append(f"### {t.name}\n")
        if t.error:
            L.append(f"**{'Failed' if t.runs else 'Did not run'}.** Error:\n\n"
                     f"```\n{t.error.strip()}\n```\n")
            if not t.runs:
                continue
        if t.extra.get("command"):
            L.append(f"Started with: `{t.extra['command']}`\n")
        for key, val in t.extra.items():
            if key != "command":
                L.append(f"- {key}: {val}")
        for n in t.notes:
            L.append(f"- {n}")
        if L[-1]:
            L.append("")
        L.append("| round | run | conns | req/s | 2xx | non-2xx | socket errors | p50 ms | "
                 "p90 ms | p99 ms | CPU µs/req | drained |")
        L.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in t.runs:
            L.append(f"| {r.round or '-'} | {r.label} | {r.conns} | {fmt(r.rps)} | "
                     f"{r.chat_2xx:,} | {r.chat_non2xx} | {r.sock_errors} | {r.p50_ms:.3f} | "
                     f"{r.p90_ms:.3f} | {r.p99_ms:.3f} | {fmt(r.cpu_us_per_req)} | "
                     f"{'yes' if r.drained else 'NO'} |")
        L.append("")
    if "litellm" in by:
        L.append("LiteLLM switches used (what LiteLLM lets you turn off by config that keel "
                 "does not do in this run): " + "; ".join(litellm_switches) + ".\n")
    path.write_text("\n".join(L) + "\n" + kept_sections(path))
    return checks


EVALS_START, EVALS_END = "<!-- evals:start -->", "<!-- evals:end -->"
SUMMARY_START, SUMMARY_END = "<!-- summary:start -->", "<!-- summary:end -->"
GUARD_START, GUARD_END = "<!-- guard:start -->", "<!-- guard:end -->"  # bench/guard/run.py
STREAMS_START, STREAMS_END = "<!-- streams:start -->", "<!-- streams:end -->"  # streams.py
SCHEMA_START, SCHEMA_END = "<!-- json-schema:start -->", "<!-- json-schema:end -->"
DRIFT_START, DRIFT_END = "<!-- drift:start -->", "<!-- drift:end -->"
CONSOLE_START, CONSOLE_END = "<!-- console:start -->", "<!-- console:end -->"
SIGNALS_START, SIGNALS_END = "<!-- signals:start -->", "<!-- signals:end -->"
KEPT = ((EVALS_START, EVALS_END), (SUMMARY_START, SUMMARY_END), (GUARD_START, GUARD_END),
        (STREAMS_START, STREAMS_END), (SCHEMA_START, SCHEMA_END), (DRIFT_START, DRIFT_END),
        (CONSOLE_START, CONSOLE_END), (SIGNALS_START, SIGNALS_END))


def kept_sections(path: Path) -> str:
    """The sections of the RESULTS.md being replaced that other benches write (the eval
    runner's, bench/evals.py; the summary query's, bench/summary.py; the guard scanners',
    bench/guard/run.py; the streaming bench's, bench/streams.py; the JSON Schema validators',
    bench/json_schema_bench.py), which this bench does not run, so that rewriting the file
    keeps them; "" if none."""
    out = ""
    with contextlib.suppress(OSError):
        old = path.read_text()
        for start_mark, end_mark in KEPT:
            start, end = old.find(start_mark), old.find(end_mark)
            if 0 <= start < end:
                out += "\n" + old[start:end + len(end_mark)] + "\n"
    return out


# --- streaming bench (bench/streams.py) -------------------------------------------------------

STREAM_TARGETS = ("direct", "passthrough", "keel", "litellm")


@dataclass
class StreamRun:
    """One load generator run (bench/stream_load.py) against one target at one level."""

    target: str
    conns: int
    round: int
    d: dict[str, Any]  # the load generator's JSON
    settle_s: float = 0.0  # after the drain, until the target's CPU went idle
    settle_cpu_s: float = 0.0  # the CPU it used meanwhile (e.g. trace writes catching up)

    @property
    def rate(self) -> float:
        return float(self.d["rate"])

    @property
    def cpu_us(self) -> float | None:
        v = self.d.get("cpu_us_per_stream")
        return None if v is None else float(v)

    def ms(self, what: str, q: str) -> float | None:
        v = self.d[what][q]
        return None if v is None else float(v)

    @property
    def rss_delta_kb(self) -> int | None:
        return None if self.d.get("rss_inflight_kb") is None else (
            int(self.d["rss_inflight_kb"]) - int(self.d["baseline_rss_kb"]))


@dataclass
class StreamTarget:
    name: str
    description: str
    runs: list[StreamRun] = field(default_factory=list)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def at(self, conns: int) -> list[StreamRun]:
        return sorted((r for r in self.runs if r.conns == conns), key=lambda r: r.round)

    def per_round(self, conns: int, value: Callable[[StreamRun], float | None]
                  ) -> dict[int, float]:
        out = {}
        for r in self.at(conns):
            v = value(r)
            if v is not None:
                out[r.round] = v
        return out

    def median(self, conns: int, value: Callable[[StreamRun], float | None]) -> float | None:
        return med(list(self.per_round(conns, value).values()))

    def rss_per_1000_kb(self, conns: int, top: int) -> tuple[float | None, str]:
        """(RSS in flight - idle RSS) per 1,000 streams in flight, and which runs it is from:
        the median over the rounds at the highest level; at a lower one round 1 only (later
        rounds follow a run at a higher level, whose memory the allocator keeps)."""
        runs = [r for r in self.at(conns) if r.rss_delta_kb is not None
                and (conns == top or r.round == 1)]
        if not runs:
            return None, "-"
        vals = [r.rss_delta_kb / conns * 1000 for r in runs]  # type: ignore[operator]
        return med(vals), ("median of the rounds" if conns == top else "round 1")


def _sr_ratio(num: StreamTarget | None, den: StreamTarget | None, conns: int,
              value: Callable[[StreamRun], float | None]) -> dict[int, float]:
    if not num or not den:
        return {}
    a, b = num.per_round(conns, value), den.per_round(conns, value)
    return {k: a[k] / b[k] for k in sorted(a.keys() & b.keys()) if b[k]}


def _ttft50(r: StreamRun) -> float | None:
    return r.ms("ttft_ms", "p50")


def _ttft99(r: StreamRun) -> float | None:
    return r.ms("ttft_ms", "p99")


def _rate(r: StreamRun) -> float:
    return r.rate


def _cpu(r: StreamRun) -> float | None:
    return r.cpu_us


def met(ok: bool | None) -> str:
    return "NOT MEASURED" if ok is None else ("MET" if ok else "NOT MET")


def stream_checks(by: dict[str, StreamTarget], low: int, top: int) -> list[Check]:
    """The issue's targets for keel (MET / NOT MET), its zero-error and trace checks
    (PASS / FAIL), and INFO lines."""
    def ok(name: str) -> StreamTarget | None:
        t = by.get(name)
        return t if t and not t.error and t.runs else None

    def why(*names: str) -> str:
        for n in names:
            t = by.get(n)
            if t is None:
                return f"{n} not selected"
            if t.error or not t.runs:
                return f"{n} did not run"
        return "-"

    keel, pt, direct, ll = ok("keel"), ok("passthrough"), ok("direct"), ok("litellm")
    out: list[Check] = []

    def ratio(name: str, num: StreamTarget | None, den: StreamTarget | None, conns: int,
              value: Callable[[StreamRun], float | None], limit: float, above: bool,
              unit: str, kind: str = "target") -> None:
        rr = _sr_ratio(num, den, conns, value)
        if not rr or num is None or den is None:
            out.append((name, why("keel", "passthrough"), met(None)))
            return
        m = statistics.median(rr.values())
        text = (f"{m:.2f}x median of {len(rr)} same-round ratios; per round: "
                f"{per_round_text(rr, '.2f', 'x')}; medians {fmt(num.median(conns, value))} / "
                f"{fmt(den.median(conns, value))} {unit}")
        out.append((name, text, "INFO" if kind == "info" else
                    met(m >= limit if above else m <= limit)))

    ratio(f"keel CPU per stream <= 1.25x the bare streaming proxy's (c={top})", keel, pt,
          top, _cpu, 1.25, False, "CPU µs/stream")
    ratio(f"keel streams/s >= 0.95x the bare streaming proxy's (c={top})", keel, pt, top,
          _rate, 0.95, True, "streams/s")
    name = f"keel added time to first token (p50) over direct <= 2 ms (c={low})"
    if keel and direct and keel.per_round(low, _ttft50) and direct.per_round(low, _ttft50):
        k, d = keel.median(low, _ttft50), direct.median(low, _ttft50)
        assert k is not None and d is not None
        dk = direct.per_round(low, _ttft50)
        diffs = {r: v - dk[r] for r, v in keel.per_round(low, _ttft50).items() if r in dk}
        out.append((name, f"{k - d:+.2f} ms (median keel {k:.2f} - median direct {d:.2f}); "
                          f"per round: {per_round_text(diffs, '+.2f', ' ms')}",
                    met(k - d <= 2.0)))
    else:
        out.append((name, why("keel", "direct"), met(None)))
    if keel:
        parts = []
        for conns in sorted({r.conns for r in keel.runs}):
            v, src = keel.rss_per_1000_kb(conns, top)
            if v is not None:
                parts.append(f"c={conns}: {v / 1024:.1f} MiB ({src})")
        out.append(("keel RSS per 1,000 in-flight streams (reported)",
                    "; ".join(parts) or "-", "INFO"))
        errs = sum(int(r.d["errors"]) for r in keel.runs)
        sent = sum(int(r.d["sent"]) for r in keel.runs)
        out.append(("zero errors (keel, every run incl. warm-ups and drains)",
                    f"{errs} errors in {sent:,} streams", verdict(errs == 0)))
        n, ok2 = keel.extra.get("traces_rows"), keel.extra.get("traces_2xx")
        ans, sent_all = keel.extra.get("answered"), keel.extra.get("sent")
        out.append(("traces stored == streams answered (keel, all its runs)",
                    f"{n:,} traces, {ok2:,} of them with 2xx status, vs {ans:,} streams "
                    f"answered and {sent_all:,} sent (a stream cut off counts as sent, not "
                    f"answered; keel traces it too); writer given "
                    f"{keel.extra.get('trace_wait_s')} s" if n is not None else "-",
                    verdict(None if n is None else ok2 == ans and n == sent_all)))
    else:
        out.append(("zero errors / traces stored == streams answered (keel)", why("keel"),
                    verdict(None)))
    ratio(f"CPU per stream at c={low}, keel ÷ bare proxy (not a check)", keel, pt, low, _cpu,
          0, False, "CPU µs/stream", "info")
    if ll:
        ratio(f"streams/s at c={top}, keel ÷ LiteLLM (not a check)", keel, ll, top, _rate, 0,
              True, "streams/s", "info")
        ratio(f"CPU per stream at c={top}, LiteLLM ÷ keel (not a check)", ll, keel, top, _cpu,
              0, False, "CPU µs/stream", "info")
    return out


def _stream_row(t: StreamTarget, conns: int, top: int, direct: StreamTarget | None) -> str:
    rs = t.at(conns)
    rates = [r.rate for r in rs]
    added = "-"
    if direct is not None and t is not direct:
        a, b = t.median(conns, _ttft50), direct.median(conns, _ttft50)
        if a is not None and b is not None:
            added = f"{a - b:+.2f}"
    rss, _ = t.rss_per_1000_kb(conns, top)
    inflight = med([r.d["rss_inflight_kb"] / 1024 for r in rs if r.d.get("rss_inflight_kb")])
    busy = med([r.d["cpu_busy"].get(t.extra.get("cpu_name", ""), 0) * 100 for r in rs
                if r.d.get("cpu_busy")]) if t.extra.get("cpu_name") else None
    lg = med([r.d["loadgen_cpu_share"] * 100 for r in rs if r.d.get("loadgen_cpu_share")])
    return (f"| {t.name} | {conns} | {len(rs)} | **{fmt(med(rates))}** | {span(rates, ',.0f')} "
            f"| **{fmt(t.median(conns, _cpu))}** | {fmt(t.median(conns, _ttft50), '.1f')} | "
            f"{fmt(t.median(conns, _ttft99), '.1f')} | {added} | "
            f"{fmt(t.median(conns, lambda r: r.ms('total_ms', 'p50')), ',.0f')} | "
            f"{fmt(t.median(conns, lambda r: r.ms('total_ms', 'p99')), ',.0f')} | "
            f"{sum(int(r.d['errors']) for r in rs)} | "
            f"{sum(int(r.d['streams_window']) for r in rs):,} | {fmt(inflight, '.1f')} | "
            f"{fmt(None if rss is None else rss / 1024, '.1f')} | {fmt(busy, '.0f')} | "
            f"{fmt(lg, '.0f')} |")


def stream_section(results: list[StreamTarget], meta: dict[str, Any]) -> str:
    """The streaming bench's section of RESULTS.md, with its markers."""
    by = {t.name: t for t in results}
    levels: list[int] = meta["levels"]
    low, top = min(levels), max(levels)
    L = [STREAMS_START, "## Streaming bench (`bench/streams.py`)\n"]
    if meta.get("trial"):
        L.append("> **TRIAL RUN.** Reduced settings, possibly on a busy machine: the figures "
                 "show that the harness works, not keel's real performance.\n")
    m = meta["machine"]
    L.append(f"Command: `{meta['command']}` ({m['date']}; {m['cores']} cores, {m['cpu']}; "
             f"Python {m['python']}; keel {m['keel']}; load average {m['load']} before, "
             f"{meta.get('load_after', '?')} after"
             + (f"; LiteLLM {meta['litellm_version']}" if meta.get("litellm_version") else "")
             + f"; took {meta.get('took_s', 0) / 60:.1f} min)\n")
    L.append(
        f"Method: every stream is a chat completion with `\"stream\": true` (and "
        f"`stream_options.include_usage`) answered by the mock upstream as a slow model: "
        f"{meta['chunks']} content chunks, the first after {meta['first_ms']:g} ms and then one "
        f"every {meta['interval_ms']:g} ms (about "
        f"{(meta['first_ms'] + (meta['chunks'] - 1) * meta['interval_ms']) / 1000:.2f} s), then "
        f"the finish and usage chunks and `[DONE]`. The load generator "
        f"(`bench/stream_load.py`, one asyncio process on uvloop with its own small HTTP/1.1 "
        f"client) keeps N streams in flight (closed loop, one keep-alive connection each; "
        f"the first requests spread over one stream's length). All "
        f"targets are started once; then **{meta['rounds']} round"
        f"{'s' if meta['rounds'] != 1 else ''}**, each running every "
        f"target at c={', then c='.join(str(x) for x in levels)} in an order rotated by one "
        f"per round. A run warms up for at least {meta['warmup']:g} s and until N streams "
        f"have completed (at most {meta['max_warmup']:g} s), measures for "
        f"{meta['duration']:g} s, then drains (no new stream; the ones in flight are awaited "
        f"and counted; a stream that takes over {meta['stream_timeout']:g} s, or is still in "
        f"flight {meta['drain_timeout']:g} s after the window, is an error). Before the next "
        f"run the script waits until the target's CPU is idle (at most "
        f"{meta['settle_timeout']:g} s; `settle` below). Over the streams that ended in the "
        f"measured window: streams/s, CPU "
        f"per stream (user+system CPU of the target process from /proc/PID/stat over the "
        f"window ÷ its streams), time to first token (request written .. first content token "
        f"read) and total stream time (.. `[DONE]` read), p50/p99. Figures are medians over "
        f"the rounds; ratios are medians of same-round ratios. Added TTFT = median TTFT p50 "
        f"of the target - that of `direct`. RSS per 1,000 in-flight streams = (median VmRSS of "
        f"the target during the window - its idle VmRSS after start-up) ÷ N x 1,000; at the "
        f"highest level the median over the rounds, at a lower level round 1 only (later "
        f"rounds follow a run at a higher level, whose memory the allocator keeps). "
        f"{meta['layout']} {meta.get('pool_note', '')}".rstrip() + "\n")
    L.append("| target | conns | rounds | streams/s median | min–max | CPU µs/stream median | "
             "TTFT p50 ms | TTFT p99 ms | added TTFT p50 ms | total p50 ms | total p99 ms | "
             "errors | streams measured | RSS in flight MiB | RSS MiB per 1,000 streams | "
             "target's core busy % | load generator CPU % |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
             "---:|")
    direct = by.get("direct") if by.get("direct") and by["direct"].runs else None
    for conns in levels:
        for t in results:
            if t.at(conns):
                L.append(_stream_row(t, conns, top, direct))
    for t in results:
        if t.error:
            L.append(f"| {t.name} | - | - | {'failed' if t.runs else 'did not run'} |"
                     + " |" * 13)
    L.append("")
    L.append("Targets: " + "; ".join(f"**{t.name}**: {t.description}" for t in results)
             + ". `target's core busy %` is the busy share of the CPU the target is pinned to "
             "(all of its processes' and anyone else's work on it); 100% means that core "
             "saturated. For `direct` CPU per stream is the mock upstream's.\n")
    L.append("### Issue targets (keel)\n")
    L.append(f"Against the bare streaming proxy (`passthrough`) in the same rounds, at the "
             f"saturating level c={top}; time to first token at the non-saturating level "
             f"c={low}. MET / NOT MET as measured, not adjusted; INFO lines are not checks.\n")
    L.append("| target | measured | verdict |\n|---|---|---|")
    for c in stream_checks(by, low, top):
        L.append(f"| {c[0]} | {c[1]} | **{c[2]}** |")
    L.append("")
    L.append("### Rounds\n")
    names = [t.name for t in results if t.runs]
    pairs = [p for p in (("keel", "passthrough"), ("keel", "litellm"))
             if p[0] in names and p[1] in names]
    for conns in levels:
        L.append(f"streams/s at c={conns}, in the order each round ran them:\n")
        L.append("| round | order | " + " | ".join(names)
                 + "".join(f" | {a}/{b}" for a, b in pairs) + " |")
        L.append("|---:|---|" + "---:|" * (len(names) + len(pairs)))
        for i, order in enumerate(meta.get("orders", []), 1):
            cells = [fmt(by[n].per_round(conns, _rate).get(i)) for n in names]
            cells += [fmt(_sr_ratio(by[a], by[b], conns, _rate).get(i), ".2f") + "x"
                      for a, b in pairs]
            L.append(f"| {i} | {' → '.join(order)} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("### Every run\n")
    L.append("| target | round | conns | warm-up s | streams/s | CPU µs/stream | TTFT p50/p99 ms "
             "| total p50/p99 ms | sent | answered | errors | idle RSS MiB | RSS in flight MiB "
             "| in flight (median) | load generator CPU % | upstream CPU % | drain s | "
             "settle s (CPU s) |")
    L.append("|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
             "---:|---|")
    for t in results:
        for r in sorted(t.runs, key=lambda r: (r.round, r.conns)):
            d = r.d
            also = d.get("also_cpu_share")
            L.append(
                f"| {t.name} | {r.round} | {r.conns} | {d['warmup_s']:.1f} | {r.rate:,.0f} | "
                f"{fmt(r.cpu_us)} | {fmt(r.ms('ttft_ms', 'p50'), '.1f')} / "
                f"{fmt(r.ms('ttft_ms', 'p99'), '.1f')} | {fmt(r.ms('total_ms', 'p50'))} / "
                f"{fmt(r.ms('total_ms', 'p99'))} | {d['sent']:,} | {d['answered']:,} | "
                f"{d['errors']} | {d['rss_idle_kb'] / 1024:.1f} | "
                f"{fmt((d.get('rss_inflight_kb') or 0) / 1024, '.1f')} | "
                f"{fmt(d.get('inflight_median'), ',.0f')} | "
                f"{fmt((d.get('loadgen_cpu_share') or 0) * 100, '.0f')} | "
                f"{fmt(None if also is None else also * 100, '.0f')} | {d['drain_s']:.1f} | "
                f"{r.settle_s:.1f} ({r.settle_cpu_s:.2f}) |")
    L.append("")
    for t in results:
        notes = [f"- {k}: {v}" for k, v in t.extra.items() if k != "cpu_name"]
        kinds: dict[str, int] = {}
        for r in t.runs:
            for k, n in r.d.get("error_kinds", {}).items():
                kinds[k] = kinds.get(k, 0) + n
        if kinds:
            notes.append("- errors: " + "; ".join(f"{k}: {n}" for k, n in kinds.items()))
        if t.error:
            notes.append(f"- {'failed' if t.runs else 'did not run'}: "
                         + t.error.strip().replace("\n", " ")[:1500])
        if notes:
            L.append(f"**{t.name}**\n")
            L.extend(notes)
            L.append("")
    if meta.get("litellm_switches") and "litellm" in by:
        L.append("LiteLLM is configured as in the gateway bench: "
                 + "; ".join(meta["litellm_switches"]) + ".\n")
    L.append(STREAMS_END)
    return "\n".join(L) + "\n"
