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
             "eval runner and summary query sections at the end (`bench/evals.py`, "
             "`bench/summary.py`), which it keeps._\n")
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
KEPT = ((EVALS_START, EVALS_END), (SUMMARY_START, SUMMARY_END), (GUARD_START, GUARD_END))


def kept_sections(path: Path) -> str:
    """The sections of the RESULTS.md being replaced that other benches write (the eval
    runner's, bench/evals.py; the summary query's, bench/summary.py), which this bench does
    not run, so that rewriting the file keeps them; "" if none."""
    out = ""
    with contextlib.suppress(OSError):
        old = path.read_text()
        for start_mark, end_mark in KEPT:
            start, end = old.find(start_mark), old.find(end_mark)
            if 0 <= start < end:
                out += "\n" + old[start:end + len(end_mark)] + "\n"
    return out
