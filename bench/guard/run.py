"""Guard scanner bench: precision/recall on labelled data shipped in bench/guard/data/, and
the latency of each scan.

    .venv/bin/python bench/guard/run.py                  # ~1 min; writes its RESULTS.md section
    .venv/bin/python bench/guard/run.py --errors tune    # list the tuning half's mistakes
    .venv/bin/python bench/guard/run.py --quick --output /tmp/guard.md   # ~10 s check
    .venv/bin/python bench/guard/run.py --injection-set FILE.jsonl       # also score your own
                                                         # {"text", "label": 0|1} rows
    .venv/bin/python bench/guard/run.py --engine-only    # ~15 s; prints the policy engine's
                                                         # figures only (writes nothing)

What it measures:

* ``pii`` on data/pii.jsonl (600 generated texts with 841 known spans and as many look-alike
  distractors: Luhn-failing numbers, UUIDs, dates, versions, invalid SSNs and IBANs, MAC
  addresses, hashes ...; ``--regenerate-pii`` rewrites it from the seeded generator in
  datasets.py). A gold span counts as found when a predicted span of the same kind covers
  it; a predicted span is a false positive when it overlaps no gold span of its kind.
* ``secrets`` on fake credentials in each supported format and near misses, generated in
  memory (seeded) so that no credential-shaped string is committed.
* ``injection`` on data/injection.yaml, keel's hand-written set (not the deepset set, which
  cannot be downloaded here): every case is in the tuning half or the held-out half (parity
  of sha256 of its id). Heuristics and the default threshold were tuned on the tuning half
  only; the reported figures are the held-out half's, with the tuning half's beside them.
* latency per ``scan`` (p50/p99 of many calls, after a warm-up) of every built-in scanner
  on 1 KB and 16 KB texts, and of all input scanners one after another (what the policy
  engine will run on a prompt).
* the policy engine's cost per request: a ``GuardRun`` (the issue's ``customer-facing``
  policy, and its input rules alone) doing ``inbound`` on a 1 KB and a 16 KB support chat
  request with an email address and a phone number, then ``outbound`` on a ~1 KB answer
  that echoes the placeholders (p50/p99 of the pair, after a warm-up).

It writes its section of bench/RESULTS.md between ``<!-- guard:start -->`` and
``<!-- guard:end -->`` (replacing it, or appending it); bench/report.py keeps the section
when the gateway bench rewrites the file.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import datasets  # noqa: E402

from keel.config import PolicyConfig  # noqa: E402
from keel.guard.engine import GuardRun  # noqa: E402
from keel.guard.policy import Policy, compile_policy  # noqa: E402
from keel.guard.scanners import ScanContext, Scanner, ToolCall, build_scanner, make_canary  # noqa: E402
from keel.types import JSON, Trace  # noqa: E402

START, END = "<!-- guard:start -->", "<!-- guard:end -->"
RESULTS = HERE.parent / "RESULTS.md"
THRESHOLDS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
TARGET_FPR = 0.03
INPUT_TYPES = ("pii", "secrets", "injection", "unicode", "banned", "max_tokens")

# --- PII --------------------------------------------------------------------------------------


def eval_pii(records: list[dict[str, Any]]) -> dict[str, Any]:
    scanner = build_scanner({"type": "pii"})
    kinds: dict[str, dict[str, int]] = {}

    def row(kind: str) -> dict[str, int]:
        return kinds.setdefault(kind, {"gold": 0, "found": 0, "exact": 0, "pred": 0, "fp": 0})

    fp_examples: list[str] = []
    misses: list[str] = []
    for rec in records:
        text = rec["text"]
        gold = [tuple(s) for s in rec["spans"]]
        pred = scanner.scan(text).matches
        for kind, start, end in gold:
            r = row(kind)
            r["gold"] += 1
            if any(p.kind == kind and p.start <= start and p.end >= end for p in pred):
                r["found"] += 1
            else:
                misses.append(f"missed {kind}: {text[start:end]!r} in {rec['id']}")
            if any(p.kind == kind and p.start == start and p.end == end for p in pred):
                r["exact"] += 1
        for p in pred:
            r = row(p.kind)
            r["pred"] += 1
            if not any(k == p.kind and s < p.end and p.start < e for k, s, e in gold):
                r["fp"] += 1
                fp_examples.append(f"{p.kind}: {text[p.start:p.end]!r} in {rec['id']}")
    total = {k: sum(r[k] for r in kinds.values()) for k in ("gold", "found", "exact", "pred",
                                                           "fp")}
    return {"kinds": kinds, "total": total, "records": len(records), "fp": fp_examples,
            "misses": misses}


def _pr(r: dict[str, int]) -> tuple[float, float]:
    recall = r["found"] / r["gold"] if r["gold"] else 1.0
    precision = (r["pred"] - r["fp"]) / r["pred"] if r["pred"] else 1.0
    return precision, recall


# --- secrets ----------------------------------------------------------------------------------


def eval_secrets(cases: list[datasets.SecretCase]) -> dict[str, Any]:
    scanner = build_scanner({"type": "secrets"})
    per: dict[str, list[int]] = {}
    benign = benign_flagged = 0
    misses: list[str] = []
    for c in cases:
        f = scanner.scan(c.text)
        found = {m.kind for m in f.matches}
        if not c.kinds:
            benign += 1
            if f.triggered:
                benign_flagged += 1
                misses.append(f"benign flagged ({', '.join(sorted(found))}): {c.text[:70]!r}")
            continue
        for k in c.kinds:
            hit = per.setdefault(k, [0, 0])
            hit[1] += 1
            if k in found and f.triggered:
                hit[0] += 1
            else:
                misses.append(f"missed {k}: {c.text[:70]!r}")
    return {"per": per, "benign": benign, "benign_flagged": benign_flagged, "misses": misses}


# --- injection --------------------------------------------------------------------------------


def score_cases(cases: list[datasets.Case], scanner: Scanner) -> list[tuple[datasets.Case, float]]:
    return [(c, scanner.scan(c.text).score) for c in cases]


def rates(scored: list[tuple[datasets.Case, float]], threshold: float) -> dict[str, float]:
    att = [s for c, s in scored if c.attack]
    ben = [s for c, s in scored if not c.attack]
    tp = sum(s >= threshold for s in att)
    fp = sum(s >= threshold for s in ben)
    return {"attacks": len(att), "benign": len(ben), "tp": tp, "fp": fp,
            "recall": tp / len(att) if att else 0.0, "fpr": fp / len(ben) if ben else 0.0,
            "precision": tp / (tp + fp) if tp + fp else 1.0}


def eval_injection(cases: list[datasets.Case]) -> dict[str, Any]:
    scanner = build_scanner({"type": "injection"})
    threshold = float(getattr(scanner, "threshold", 0.7))
    scored = score_cases(cases, scanner)
    by_split = {sp: [(c, s) for c, s in scored if c.split == sp] for sp in ("tune", "heldout")}
    out: dict[str, Any] = {"threshold": threshold, "scored": scored, "by_split": by_split}
    out["sweep"] = sweep = {t: rates(by_split["tune"], t) for t in THRESHOLDS}
    best = max(r["recall"] for r in sweep.values() if r["fpr"] <= 0.02)
    out["pick"] = max(t for t, r in sweep.items() if r["recall"] == best and r["fpr"] <= 0.02)
    for sp, rows in (*by_split.items(), ("all", scored)):
        out[sp] = rates(rows, threshold)
        cats: dict[str, list[int]] = {}
        for c, s in rows:
            key = c.category if c.attack else f"benign:{c.category}"
            hit = cats.setdefault(key, [0, 0])
            hit[1] += 1
            hit[0] += s >= threshold
        out[f"{sp}_cats"] = cats
        langs: dict[str, list[int]] = {}
        for c, s in rows:
            if c.attack:
                hit = langs.setdefault(c.lang, [0, 0])
                hit[1] += 1
                hit[0] += s >= threshold
        out[f"{sp}_langs"] = langs
    return out


# --- latency ----------------------------------------------------------------------------------

FILLER = (
    "Our quarterly planning meeting covered the roadmap for the mobile app, the migration of "
    "the billing service to the new cluster and the hiring plan for the support team. Maria "
    "will send the updated budget to finance@example.com before Friday; the vendor quoted "
    "12,400 dollars for the first phase. Please review the attached notes and summarise the "
    "three decisions we made, the open questions about the data retention policy, and who "
    "owns each follow-up. Keep the answer short and use bullet points where it helps. "
)
FILLER_ACCENTED = (
    "Résumé de la réunion : l'équipe a validé la feuille de route, la migration du service de "
    "facturation et le plan de recrutement. Die Überprüfung der Datenschutzrichtlinie folgt "
    "nächste Woche; la revisión del presupuesto está prevista para el viernes. Por favor, "
    "riassumi le tre decisioni principali e indica chi è responsabile di ciascun punto. "
)


def make_text(size: int, filler: str = FILLER) -> str:
    text = (filler * (size // len(filler) + 1))[:size]
    return text[: text.rfind(" ")] + "."


def make_json(size: int) -> str:
    items = []
    while sum(len(i) for i in items) < size - 40:
        n = len(items)
        items.append(f'{{"id": {n}, "title": "Item number {n}", "price": {n * 1.5}, '
                     f'"tags": ["a", "b"]}}')
    return '{"items": [' + ", ".join(items) + '], "total": ' + str(len(items)) + "}"


def scanner_configs() -> dict[str, dict[str, Any]]:
    words = ["falcon", "merger", "layoff", "project orion", "acquisition", "lawsuit"]
    return {
        "pii": {"type": "pii"},
        "secrets": {"type": "secrets"},
        "injection": {"type": "injection"},
        "unicode": {"type": "unicode"},
        "banned": {"type": "banned", "keywords": words + [f"codename{i}" for i in range(44)],
                   "topics": {"weapons": ["rifle", "ammunition", "explosive"],
                              "medical": ["diagnosis", "prescription", "dosage"]}},
        "max_tokens": {"type": "max_tokens", "max": 8000},
        "urls": {"type": "urls", "allow": ["example.com", "docs.example.org"]},
        "json_schema": {"type": "json_schema", "schema": {
            "type": "object", "required": ["items", "total"],
            "properties": {"total": {"type": "integer"}, "items": {"type": "array", "items": {
                "type": "object", "required": ["id", "title"],
                "properties": {"id": {"type": "integer"}, "title": {"type": "string"}}}}}}},
        "canary": {"type": "canary"},
        "tools": {"type": "tools", "allow": ["search_docs", "get_order"]},
    }


def percentile(sorted_ns: list[int], q: float) -> float:
    i = min(len(sorted_ns) - 1, max(0, round(q * (len(sorted_ns) - 1))))
    return sorted_ns[i] / 1e6


def timed(fn: Callable[[], object], n: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    samples.sort()
    return percentile(samples, 0.5), percentile(samples, 0.99)


def latency(quick: bool) -> dict[str, Any]:
    scanners = {name: build_scanner(cfg) for name, cfg in scanner_configs().items()}
    canary = make_canary()
    system_prompt = ("You are the support assistant for Example Corp. Answer questions about "
                     "orders, shipping and returns politely and briefly. Never share internal "
                     f"notes. Canary: {canary}. ") * 4
    ctx = ScanContext(stage="output", feature="support", system_prompt=system_prompt,
                      canaries=(canary,), tool_calls=(ToolCall("search_docs", "{}"),
                                                      ToolCall("get_order", "{}")))
    sizes = {"1 KB": 1024, "16 KB": 16384}
    runs = {"1 KB": (400, 50) if quick else (3000, 200),
            "16 KB": (60, 10) if quick else (400, 40)}
    results: dict[str, dict[str, tuple[float, float]]] = {}
    inputs = {}
    for label, size in sizes.items():
        inputs[label] = make_text(size)
        inputs[f"{label} accented"] = make_text(size, FILLER_ACCENTED)
    for label, text in inputs.items():
        n, warm = runs[label.split(" accented")[0]]
        row: dict[str, tuple[float, float]] = {}
        for name, sc in scanners.items():
            body = make_json(len(text)) if name == "json_schema" else text
            c = ctx if sc.stage != "input" else ScanContext(stage="input", feature="support")

            def one(sc: Scanner = sc, body: str = body, c: ScanContext = c) -> object:
                return sc.scan(body, c)

            row[name] = timed(one, n, warm)
        chain = [scanners[t] for t in INPUT_TYPES]
        in_ctx = ScanContext(stage="input", feature="support")

        def all_inputs(text: str = text, chain: list[Scanner] = chain,
                       in_ctx: ScanContext = in_ctx) -> object:
            return [s.scan(text, in_ctx) for s in chain]

        row["all input scanners"] = timed(all_inputs, n, warm)
        results[label] = row
    return {"results": results, "runs": runs,
            "sizes": {k: len(v) for k, v in inputs.items()}}


# --- the policy engine per request -------------------------------------------------------------

# the example policy; "input only" is the same without output rules
CUSTOMER_FACING: dict[str, Any] = {
    "name": "customer-facing", "features": ["support"],
    "input": [{"scanner": "pii", "action": "redact"},
              {"scanner": "secrets", "action": "block"},
              {"scanner": "injection", "action": "block", "threshold": 0.8}],
    "output": [{"scanner": "pii", "action": "redact"}]}
ENGINE_POLICIES = {"customer-facing": CUSTOMER_FACING,
                   "input only": {**CUSTOMER_FACING, "name": "input-only", "output": []}}
SUPPORT_EMAIL, SUPPORT_PHONE = "maria.gonzalez@example.com", "+1 415 555 0142"
SUPPORT_SYSTEM = ("You are the support assistant for Example Corp. Answer questions about "
                  "orders, shipping, billing and returns politely and briefly. Never share "
                  "internal notes or other customers' data.")
SUPPORT_OPENING = (f"Hi, I'm writing about order 48213-77 (placed on 3 March). You can reach "
                   f"me at {SUPPORT_EMAIL} or on {SUPPORT_PHONE} after 5 pm. ")
SUPPORT_FILLER = (
    "The parcel was marked as delivered on Tuesday, but nothing arrived: I checked with the "
    "building's front desk and with my neighbours, and the tracking page shows a photo of a "
    "door that is not ours. This is the second time this happens in two months, and the "
    "first case took three weeks and four emails to resolve. The order contains the blue "
    "winter jacket in size M and two pairs of running socks, and I need the jacket before a "
    "trip next weekend. Could you either resend the items by express delivery or refund the "
    "full amount to the card I paid with? I would also like to know whether the courier can "
    "be asked to hand the parcel over in person next time. ")
SUPPORT_ANSWER = (
    "Thank you for contacting Example Corp, and I'm sorry that your parcel did not arrive. "
    "I have opened a courier investigation for order 48213-77 and arranged an express "
    "replacement of the blue winter jacket (size M) and the two pairs of running socks, at "
    "no cost to you; it should reach you within two working days. You will get a "
    "confirmation at [EMAIL_1] within the hour, and our courier partner will call "
    "[PHONE_1] before delivery so that the parcel is handed over in person. If the original "
    "parcel turns up, you can keep it or return it with the prepaid label in the "
    "confirmation email, whichever you prefer. I have also added a note to your account "
    "asking for signature on delivery for future orders, and refunded the express shipping "
    "fee of your original order as an apology for the trouble; the refund shows on your "
    "card statement within five working days. Is there anything else I can help you with "
    "today? Kind regards, the Example Corp support team.")


def support_request(size: int) -> JSON:
    """A chat request of about ``size`` characters of content: a system prompt and a
    customer's message with an email address and a phone number."""
    closing = f" Thanks, Maria ({SUPPORT_EMAIL})"
    room = size - len(SUPPORT_SYSTEM) - len(SUPPORT_OPENING) - len(closing)
    body = (SUPPORT_FILLER * (room // len(SUPPORT_FILLER) + 1))[:room]
    body = body[: body.rfind(" ")].rstrip(",.") + "."
    text = f"{SUPPORT_OPENING}{body}{closing}"
    return {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": SUPPORT_SYSTEM}, {"role": "user", "content": text}]}


def support_answer() -> JSON:
    return {"id": "chatcmpl-bench", "object": "chat.completion", "created": 0,
            "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": SUPPORT_ANSWER}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


def engine_latency(quick: bool) -> dict[str, Any]:
    """p50/p99 (ms) of ``inbound`` + ``outbound`` of a fresh GuardRun per request, and of each
    half alone, per policy and request size."""
    policies: dict[str, Policy] = {
        label: compile_policy(PolicyConfig.model_validate(spec), label, HERE)
        for label, spec in ENGINE_POLICIES.items()}
    runs = {"1 KB": (200, 20) if quick else (2000, 100),
            "16 KB": (30, 5) if quick else (300, 20)}
    sizes = {"1 KB": 1024, "16 KB": 16384}
    answer = support_answer()
    clock = time.perf_counter_ns

    async def measure(policy: Policy, body: JSON, n: int, warm: int) -> dict[str, Any]:
        both: list[int] = []
        ins: list[int] = []
        outs: list[int] = []
        for i in range(warm + n):
            guard = GuardRun(policy, Trace(id="bench", start_time=0.0, endpoint="bench",
                                           feature="support"))
            t0 = clock()
            sent = await guard.inbound(body)
            t1 = clock()
            done = await guard.outbound(answer)
            t2 = clock()
            if i == 0:  # the request is what it should be: redacted there, restored here
                text = sent["messages"][1]["content"]
                back = done["choices"][0]["message"]["content"]
                assert SUPPORT_EMAIL not in text and "[EMAIL_1]" in text, text[:200]
                assert SUPPORT_EMAIL in back and SUPPORT_PHONE in back, back[:200]
                assert not guard.blocked
            if i >= warm:
                both.append(t2 - t0)
                ins.append(t1 - t0)
                outs.append(t2 - t1)
        for samples in (both, ins, outs):
            samples.sort()
        return {"both": (percentile(both, 0.5), percentile(both, 0.99)),
                "inbound": percentile(ins, 0.5), "outbound": percentile(outs, 0.5)}

    async def all_cells() -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for label, policy in policies.items():
            for size_label, size in sizes.items():
                n, warm = runs[size_label]
                out.setdefault(label, {})[size_label] = await measure(
                    policy, support_request(size), n, warm)
        return out

    chars = {k: sum(len(m["content"]) for m in support_request(v)["messages"])
             for k, v in sizes.items()}
    return {"results": asyncio.run(all_cells()), "runs": runs, "chars": chars,
            "answer_chars": len(SUPPORT_ANSWER)}


def engine_report(eng: dict[str, Any]) -> list[str]:
    r1, r16 = eng["runs"]["1 KB"], eng["runs"]["16 KB"]
    L = ["### Policy engine per request\n"]
    L.append(
        "What a governed request pays for its policy, inside the request path: a fresh "
        "`GuardRun` per request doing `inbound(body)` (scan the messages, redact to "
        "placeholders) and then `outbound(completion)` (scan the answer, redact, put the "
        "request's values back), measured together in-process on one thread (no network, no "
        "provider; the scanners here are all cheap, so nothing goes to a worker thread). "
        f"{r1[0]} requests at 1 KB and {r16[0]} at 16 KB after {r1[1]}/{r16[1]} warm-up "
        f"requests. Request: a system prompt and a customer's delivery complaint with an email "
        f"address (twice) and a phone number ({eng['chars']['1 KB']} and "
        f"{eng['chars']['16 KB']} characters of content); answer: {eng['answer_chars']} "
        "characters echoing `[EMAIL_1]` and `[PHONE_1]`. **customer-facing** = input: pii "
        "redact, secrets block, injection block (threshold 0.8); output: pii redact. **input "
        "only** = the same input rules without output rules (no scanner reads the answer, but "
        "its placeholders are still put back). This time is on the request's "
        "latency (and on its trace as `guard_ms`). A request whose feature and route no "
        "policy governs creates no `GuardRun`: its only cost is looking its policy up (a few "
        "dictionary reads). Not measured here: a policy that scans or restores the answer "
        "(both of these, since pii redacts the input) buffers a streamed answer, so the "
        "client's first token comes when the whole answer has arrived.\n")
    L.append("| policy | request | inbound + outbound p50 | p99 | inbound p50 | outbound p50 |")
    L.append("|---|---|---:|---:|---:|---:|")
    for label, cells in eng["results"].items():
        for size_label, c in cells.items():
            p50, p99 = c["both"]
            L.append(f"| {label} | {size_label} | **{fmt_ms(p50)}** | {fmt_ms(p99)} | "
                     f"{fmt_ms(c['inbound'])} | {fmt_ms(c['outbound'])} |")
    L.append("")
    return L


def fmt_ms(ms: float) -> str:
    """Microseconds below a millisecond, milliseconds above."""
    return f"{ms * 1000:.0f} µs" if ms < 1.0 else f"{ms:.2f} ms"


# --- report -----------------------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def build_report(pii: dict[str, Any], sec: dict[str, Any], inj: dict[str, Any],
                 lat: dict[str, Any], args: argparse.Namespace,
                 external: dict[str, Any] | None, eng: dict[str, Any] | None = None) -> str:
    L = [START, "## Guard scanners\n",
         "_Generated by `bench/guard/run.py`; the gateway bench (`bench/run.py`) keeps this "
         "section when it rewrites the file._\n"]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path(
        "/proc/loadavg").exists() else "?"
    cpu = platform.processor() or platform.machine()
    when = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}"
    L.append(f"Command: `python bench/guard/run.py{' --quick' if args.quick else ''}` · "
             f"{when} · {cpu}, {os.cpu_count()} cores · Python {platform.python_version()} · "
             f"load average {load} (the machine was shared with other work)\n")
    if args.quick:
        L.append("> **TRIAL RUN** (`--quick`): few latency samples.\n")

    # targets
    t = pii["total"]
    p_prec, p_rec = _pr(t)
    held = inj["heldout"]
    lat1 = lat["results"]["1 KB"]["all input scanners"]
    L.append("### Targets\n")
    L.append("| target | measured | verdict |\n|---|---|---|")
    L.append(f"| PII (regex/checksum kinds) recall >= 0.98 | {p_rec:.4f} ({t['found']}/{t['gold']} "
             f"spans) | **{verdict(p_rec >= 0.98)}** |")
    L.append(f"| PII precision >= 0.95 | {p_prec:.4f} ({t['pred'] - t['fp']}/{t['pred']} "
             f"predicted spans) | **{verdict(p_prec >= 0.95)}** |")
    L.append(f"| injection false-positive rate <= 3% on benign prompts (held-out half) | "
             f"{pct(held['fpr'])} ({held['fp']}/{held['benign']}); all benign: "
             f"{pct(inj['all']['fpr'])} ({inj['all']['fp']}/{inj['all']['benign']}) | "
             f"**{verdict(held['fpr'] <= TARGET_FPR)}** |")
    L.append(f"| all built-in input scanners together p99 <= 2 ms on a 1 KB prompt | "
             f"p99 {lat1[1]:.3f} ms (p50 {lat1[0]:.3f} ms) | **{verdict(lat1[1] <= 2.0)}** |")
    L.append("")

    # injection
    tune = inj["tune"]
    L.append("### Prompt injection (`injection`, heuristics only, threshold "
             f"{inj['threshold']:g})\n")
    L.append(
        "Data: `bench/guard/data/injection.yaml`, **written for this bench by keel's authors** "
        f"({inj['all']['attacks']} attacks, {inj['all']['benign']} benign prompts). It is **not** "
        "the deepset/prompt-injections test split the issue suggests: that set is only "
        "published on the Hugging Face Hub, which this machine cannot reach, and a search of "
        "package documentation and code indexes found no PyPI package that ships it. "
        "Attacks cover instruction override in English, Spanish, "
        "French, German, Portuguese and Italian, role-play jailbreaks, system-prompt "
        "exfiltration, encoded payloads (base64, hex, ROT13, invisible tag characters, "
        "zero-width splitting), fake role delimiters, injections inside documents (indirect), "
        "and a few paraphrases without marker phrases. Benign prompts are everyday requests in "
        "the same six languages plus 128 deliberately tricky ones (\"ignore my previous "
        "message\", \"you are now my Spanish tutor\", developer mode on Android, questions "
        "about system prompts, base64 images, hex dumps, ChatML questions, `System: Ubuntu` "
        "bug reports ...).\n")
    L.append(
        "Split: each case is in the **tuning** half or the **held-out** half by the parity of "
        "the first byte of sha256 of its id. Rules, weights and the default threshold were "
        "adjusted while looking only at the tuning half's mistakes (`--errors tune`); the "
        "held-out half is the reported figure. Caveat: the same people wrote the rules and the "
        "attacks, so even the held-out figure is optimistic for attacks written by others; run "
        "`--injection-set` on a public set when you can download one.\n")
    L.append("| half | attacks | recall | benign | false positives | FPR | precision |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in (("held-out", held), ("tuning", tune), ("all", inj["all"])):
        L.append(f"| {name} | {r['attacks']} | **{r['recall']:.3f}** | {r['benign']} | "
                 f"{r['fp']} | **{pct(r['fpr'])}** | {r['precision']:.3f} |")
    L.append("")
    L.append("Per category (held-out half; recall for attacks, flagged share for benign):\n")
    L.append("| category | held-out | all |\n|---|---:|---:|")
    for cat in sorted(inj["all_cats"]):
        h = inj["heldout_cats"].get(cat, [0, 0])
        a = inj["all_cats"][cat]
        L.append(f"| {cat} | {h[0]}/{h[1]} | {a[0]}/{a[1]} |")
    L.append("")
    L.append("Attack recall per language, held-out (all): " + ", ".join(
        f"{lang} {inj['heldout_langs'].get(lang, [0, 0])[0]}/"
        f"{inj['heldout_langs'].get(lang, [0, 0])[1]} ({h[0]}/{h[1]})"
        for lang, h in sorted(inj["all_langs"].items())) + ".\n")
    pick = inj["pick"]
    L.append("Threshold sweep on the **tuning** half. The rule for the default: the highest "
             "threshold at which the tuning half's recall is still at its maximum and its FPR "
             "at most 2% (benign text's weak signals score 0.2-0.6, so the highest such "
             f"threshold keeps the widest margin). That rule picks **{pick:g}**; the scanner's "
             f"default is {inj['threshold']:g}"
             + (" (the same)." if abs(pick - inj["threshold"]) < 1e-9
                else " (**they differ: re-tune**).") + "\n")
    L.append("| threshold | recall | FPR |\n|---:|---:|---:|")
    for th, r in inj["sweep"].items():
        mark = " ← default" if abs(th - inj["threshold"]) < 1e-9 else ""
        L.append(f"| {th:g}{mark} | {r['recall']:.3f} | {pct(r['fpr'])} |")
    L.append("")
    if external:
        L.append(f"External set `{external['path']}`: {external['r']['attacks']} attacks, "
                 f"recall {external['r']['recall']:.3f}; {external['r']['benign']} benign, "
                 f"FPR {pct(external['r']['fpr'])}.\n")

    # PII
    L.append("### PII (`pii`, regex + checksums)\n")
    L.append(f"Data: `bench/guard/data/pii.jsonl`, {pii['records']} texts generated by "
             f"`bench/guard/datasets.py` (seed {datasets.PII_SEED}) with {t['gold']} known spans "
             "and about as many look-alike distractors. **found** = a predicted span of the same "
             "kind covers the gold span; **exact** = same start and end; a predicted span is a "
             "false positive when it overlaps no gold span of its kind. Generated data measures "
             "the covered formats (see `keel.guard.pii`), not how often real text uses others. "
             "It is not an independent test: when the generator gained common variants (1-800 "
             "numbers, `+44 (0)20`, house numbers like 221B, a direction after the street "
             "suffix), the first run missed them (recall 0.966) and the patterns were "
             "extended.\n")
    L.append("| kind | gold | found | recall | exact | predicted | false pos. | precision |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind in sorted(pii["kinds"]):
        r = pii["kinds"][kind]
        prec, rec = _pr(r)
        L.append(f"| {kind} | {r['gold']} | {r['found']} | {rec:.3f} | {r['exact']} | "
                 f"{r['pred']} | {r['fp']} | {prec:.3f} |")
    L.append(f"| **all** | {t['gold']} | {t['found']} | **{p_rec:.4f}** | {t['exact']} | "
             f"{t['pred']} | {t['fp']} | **{p_prec:.4f}** |")
    L.append("")

    # secrets
    per = sec["per"]
    got = sum(v[0] for v in per.values())
    tot = sum(v[1] for v in per.values())
    L.append("### Secrets (`secrets`)\n")
    L.append(f"Fake credentials in each supported format (random characters, seed "
             f"{datasets.SECRETS_SEED}, generated in memory so that nothing credential-shaped "
             f"is committed) and near misses: recall **{got}/{tot}**; benign texts flagged "
             f"**{sec['benign_flagged']}/{sec['benign']}** (UUIDs, commit SHAs, sha256/md5 "
             "digests, base64 images, SRI hashes, document URLs, long identifiers, "
             "placeholders, tracking numbers, paths). Per kind: " + ", ".join(
                 f"{k} {v[0]}/{v[1]}" for k, v in sorted(per.items())) + ".\n")

    # latency
    L.append("### Latency per scan\n")
    r1, r16 = lat["runs"]["1 KB"], lat["runs"]["16 KB"]
    L.append(f"p50 / p99 in milliseconds of `scanner.scan(text, ctx)`, in-process, one thread; "
             f"{r1[0]} calls per cell at 1 KB and {r16[0]} at 16 KB after {r1[1]}/{r16[1]} "
             "warm-up calls. Text: English meeting notes with an email address and amounts; "
             "\"accented\" is French/German/Spanish/Italian text (the non-ASCII paths of "
             "`injection` and `unicode`). `json_schema` gets a JSON answer of the same size; "
             "`canary` a 4-sentence system prompt with a canary; `tools` two tool calls; "
             "`banned` 50 keywords and 2 topics. **all input scanners** = "
             f"{', '.join(INPUT_TYPES)} one after another on the same text.\n")
    labels = list(lat["results"])
    L.append("| scanner | " + " | ".join(f"{lab} p50 | {lab} p99" for lab in labels) + " |")
    L.append("|---|" + "---:|---:|" * len(labels))
    for name in lat["results"][labels[0]]:
        cells = []
        for lab in labels:
            p50, p99 = lat["results"][lab][name]
            cells.append(f"{p50:.3f} | {p99:.3f}")
        bold = "**" if name == "all input scanners" else ""
        L.append(f"| {bold}{name}{bold} | " + " | ".join(cells) + " |")
    L.append("")
    if eng is not None:
        L.extend(engine_report(eng))
    L.append(END)
    return "\n".join(L) + "\n"


def write_section(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END) + r"\n?", re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: text, old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text if old.strip() else text
    path.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few latency samples (a trial)")
    ap.add_argument("--output", default=str(RESULTS))
    ap.add_argument("--no-write", action="store_true", help="print the section only")
    ap.add_argument("--errors", choices=("tune", "heldout", "all"),
                    help="print the injection mistakes of that half (and PII/secrets misses)")
    ap.add_argument("--regenerate-pii", action="store_true",
                    help="rewrite data/pii.jsonl from the seeded generator")
    ap.add_argument("--injection-set", type=Path,
                    help="also score a JSONL file of {text, label} rows")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--engine-only", action="store_true",
                    help="measure the policy engine per request only and print its table "
                         "(writes nothing)")
    args = ap.parse_args()

    if args.engine_only:
        eng = engine_latency(args.quick)
        print("\n".join(engine_report(eng)))
        return

    if args.regenerate_pii or not (datasets.DATA / "pii.jsonl").exists():
        datasets.write_pii()
    t0 = time.perf_counter()
    pii = eval_pii(datasets.load_pii())
    sec = eval_secrets(datasets.generate_secrets())
    cases = datasets.load_injection()
    inj = eval_injection(cases)
    external = None
    if args.injection_set:
        ext = datasets.load_external(args.injection_set)
        scanner = build_scanner({"type": "injection"})
        external = {"path": str(args.injection_set),
                    "r": rates(score_cases(ext, scanner), inj["threshold"])}
    print(f"accuracy runs: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if args.errors:
        rows = inj["scored"] if args.errors == "all" else inj["by_split"][args.errors]
        th = inj["threshold"]
        for c, s in sorted(rows, key=lambda cs: (cs[0].attack, cs[0].id)):
            if (s >= th) != c.attack:
                f = build_scanner({"type": "injection"}).scan(c.text)
                print(f"{'MISSED' if c.attack else 'FALSE+'} {s:.2f} {c.id}: {c.text[:110]!r}"
                      f"\n        {f.explanation[:160]}")
        for line in pii["fp"][:40] + pii["misses"][:40]:
            print("PII", line)
        for line in sec["misses"]:
            print("SECRETS", line)
    lat = {"results": {"1 KB": {"all input scanners": (0.0, 0.0)}}, "runs": {"1 KB": (0, 0),
                                                                               "16 KB": (0, 0)}}
    eng = None
    if not args.no_latency:
        lat = latency(args.quick)
        eng = engine_latency(args.quick)
    text = build_report(pii, sec, inj, lat, args, external, eng)
    if args.no_write or args.no_latency:
        print(text)
    else:
        write_section(Path(args.output), text)
        print(f"wrote the guard section of {args.output}", file=sys.stderr)
    p_prec, p_rec = _pr(pii["total"])
    print(f"PII precision {p_prec:.4f} recall {p_rec:.4f}; injection held-out recall "
          f"{inj['heldout']['recall']:.3f} FPR {pct(inj['heldout']['fpr'])} (tuning "
          f"{inj['tune']['recall']:.3f} / {pct(inj['tune']['fpr'])}); "
          f"all input scanners 1 KB p99 "
          f"{lat['results']['1 KB']['all input scanners'][1]:.3f} ms", file=sys.stderr)
    if eng is not None:
        cf = eng["results"]["customer-facing"]
        print("policy engine (customer-facing) inbound+outbound p50/p99: " + "; ".join(
            f"{size} {fmt_ms(c['both'][0])} / {fmt_ms(c['both'][1])}" for size, c in cf.items()),
            file=sys.stderr)


if __name__ == "__main__":
    main()
