"""JSON Schema validators side by side: keel's subset checker vs jsonschema vs fastjsonschema.

    .venv/bin/pip install jsonschema fastjsonschema     # bench-only, not keel dependencies
    .venv/bin/python bench/json_schema_bench.py          # ~1 min; prints a markdown report
    .venv/bin/python bench/json_schema_bench.py --quick  # ~10 s check
    .venv/bin/python bench/json_schema_bench.py --write  # also writes its RESULTS.md section

keel validates structured output with its own checker, ``keel.json_schema.validate`` (the
``json_schema`` guard scanner runs it on answers on the request path; the ``json-schema``
eval scorer lists every violation). This measures, on realistic structured-output schemas
written in the keyword subset keel supports (so every validator checks the same rules) and
documents that are valid or not, small (~0.3 KB) and ~10 KB:

* ``keel``: ``validate(doc, schema)``; it always lists every violation as ``"$.path: what"``.
* ``jsonschema (first)`` / ``jsonschema (all)``: ``Draft202012Validator(schema)`` built once
  (the schema checked once), then ``is_valid(doc)`` (stops at the first violation) and
  ``list(iter_errors(doc))`` (every violation, each with ``json_path`` and ``message``).
* ``fastjsonschema``: ``fastjsonschema.compile(schema)`` once (generated Python code; it
  implements drafts 4, 6 and 7, and the subset's keywords mean the same there as in 2020-12),
  then the call, which raises at the first violation and cannot list more.

Timing: ``time.perf_counter_ns`` around a loop of calls (sized to take ~0.1 s), repeated;
the fastest loop's µs per call (the least disturbed by other work on the machine, as
``timeit`` advises), the median loop's beside it. Before timing, the script checks
that the three agree on every document (valid or not) and compares the violations keel and
jsonschema list. Runs in one process, not pinned.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata as md
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import machine, write_section
from report import SCHEMA_END as END
from report import SCHEMA_START as START

from keel.json_schema import check_schema, validate

BENCH = Path(__file__).resolve().parent

# --- schemas: the shapes structured output usually takes -----------------------------------

TICKET = {  # classify a support message (a typical small structured answer)
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ticket_triage",
    "type": "object",
    "properties": {
        "category": {"type": "string",
                     "enum": ["billing", "shipping", "returns", "technical", "account", "other"]},
        "priority": {"type": "string", "enum": ["low", "medium", "high", "urgent"]},
        "summary": {"type": "string", "minLength": 10, "maxLength": 200},
        "sentiment": {"type": "number", "minimum": -1, "maximum": 1},
        "needs_human": {"type": "boolean"},
        "order_id": {"type": ["string", "null"], "pattern": "^ORD-[0-9]{6}$"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 24},
                 "maxItems": 5},
    },
    "required": ["category", "priority", "summary", "sentiment", "needs_human"],
    "additionalProperties": False,
}

_MONEY = {"type": "number", "minimum": 0}
INVOICE = {  # extract an invoice from a document (a typical large structured answer)
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "invoice_extraction",
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string", "pattern": "^INV-[0-9]{4}-[0-9]{5}$"},
        "issue_date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
        "currency": {"type": "string", "enum": ["EUR", "USD", "GBP", "CHF"]},
        "seller": {
            "type": "object",
            "properties": {"name": {"type": "string", "minLength": 1},
                           "vat_id": {"type": "string", "pattern": "^[A-Z]{2}[0-9A-Z]{8,12}$"},
                           "country": {"type": "string", "minLength": 2, "maxLength": 2}},
            "required": ["name", "country"],
            "additionalProperties": False,
        },
        "line_items": {
            "type": "array", "minItems": 1, "maxItems": 500,
            "items": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                    "description": {"type": "string", "minLength": 1, "maxLength": 120},
                    "quantity": {"type": "integer", "minimum": 1},
                    "unit_price": _MONEY,
                    "tax_rate": {"type": "number", "enum": [0, 0.07, 0.19, 0.2]},
                    "discount": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                },
                "required": ["sku", "description", "quantity", "unit_price", "tax_rate"],
                "additionalProperties": False,
            },
        },
        "totals": {
            "type": "object",
            "properties": {"net": _MONEY, "tax": _MONEY, "gross": _MONEY},
            "required": ["net", "tax", "gross"],
            "additionalProperties": False,
        },
        "notes": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["invoice_number", "issue_date", "currency", "seller", "line_items", "totals"],
    "additionalProperties": False,
}

TICKET_OK = {"category": "shipping", "priority": "high",
             "summary": "Parcel marked delivered but never arrived; customer asks for a resend.",
             "sentiment": -0.6, "needs_human": True, "order_id": "ORD-482913",
             "tags": ["parcel", "resend", "carrier"]}


def ticket_bad() -> dict[str, Any]:
    """Four violations: an unknown enum value, a too-short summary, a sentiment out of
    range and an extra property."""
    d = copy.deepcopy(TICKET_OK)
    d.update(category="delivery", summary="lost", sentiment=-3, confidence=0.9)
    return d


_WORDS = ("steel bracket", "hex bolt M8", "cable tie pack", "LED panel 60x60", "wall plug",
          "mounting rail", "junction box", "circuit breaker", "copper wire 2.5mm", "fuse 16A")


def invoice_ok(items: int = 80) -> dict[str, Any]:
    lines = []
    for i in range(items):
        lines.append({"sku": f"{'ABCDEFGHIJ'[i % 10]}{'KLM'[i % 3]}X-{1000 + i}",
                      "description": f"{_WORDS[i % len(_WORDS)]}, batch {i // 10 + 1}",
                      "quantity": 1 + i % 12, "unit_price": round(2.5 + i * 1.37, 2),
                      "tax_rate": 0.19, "discount": None if i % 4 else 0.05})
    net = round(sum(x["quantity"] * x["unit_price"] for x in lines), 2)
    return {"invoice_number": "INV-2026-00417", "issue_date": "2026-11-28", "currency": "EUR",
            "seller": {"name": "Bauteile Nord GmbH", "vat_id": "DE123456789", "country": "DE"},
            "line_items": lines,
            "totals": {"net": net, "tax": round(net * 0.19, 2), "gross": round(net * 1.19, 2)},
            "notes": ["Payment within 30 days.", "Delivery to dock 4."]}


def invoice_bad() -> dict[str, Any]:
    """Eight violations spread through the document, as a model that drifts would make."""
    d = invoice_ok()
    d["currency"] = "eur"                              # enum
    del d["seller"]["country"]                         # required
    d["line_items"][3]["quantity"] = 0                 # minimum
    d["line_items"][17]["sku"] = "abc-17"              # pattern
    d["line_items"][30]["tax_rate"] = 0.21             # enum
    d["line_items"][41]["unit_price"] = "12.50"        # type
    d["line_items"][66]["colour"] = "red"              # additionalProperties
    d["totals"]["gross"] = -1                          # minimum
    return d


CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("ticket, valid", TICKET, TICKET_OK),
    ("ticket, invalid (4 violations)", TICKET, ticket_bad()),
    ("invoice, valid", INVOICE, invoice_ok()),
    ("invoice, invalid (8 violations)", INVOICE, invoice_bad()),
]


# --- validators ------------------------------------------------------------------------------


def validators(schema: dict[str, Any]) -> dict[str, Callable[[Any], Any]]:
    """name -> a call that validates one document with a validator built once."""
    import fastjsonschema
    import jsonschema

    check_schema(schema)  # keel rejects what it does not support; this schema is in the subset
    jsonschema.Draft202012Validator.check_schema(schema)
    js = jsonschema.Draft202012Validator(schema)
    plain = {k: v for k, v in schema.items() if k != "$schema"}  # fastjsonschema: draft 7
    fast = fastjsonschema.compile(plain)

    def fast_call(doc: Any) -> bool:
        try:
            fast(doc)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return {
        "keel": lambda doc: validate(doc, schema),
        "jsonschema (first)": js.is_valid,
        "jsonschema (all)": lambda doc: list(js.iter_errors(doc)),
        "fastjsonschema": fast_call,
    }


def agreement(schema: dict[str, Any], doc: Any) -> dict[str, Any]:
    """Whether the three agree that ``doc`` is valid, and the violations keel and jsonschema
    list (their paths and messages) and the one fastjsonschema raises."""
    import fastjsonschema
    import jsonschema

    keel_errors = validate(doc, schema)
    js_errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc),
                       key=lambda e: e.json_path)
    fast_error = None
    try:
        fastjsonschema.compile({k: v for k, v in schema.items() if k != "$schema"})(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        fast_error = f"{exc.message} (rule {exc.rule})"
    verdicts = {"keel": not keel_errors, "jsonschema": not js_errors,
                "fastjsonschema": fast_error is None}
    return {"agree": len(set(verdicts.values())) == 1, "verdicts": verdicts,
            "keel": keel_errors,
            "jsonschema": [f"{e.json_path}: {e.message}" for e in js_errors],
            "fastjsonschema": fast_error}


def time_call(fn: Callable[[Any], Any], doc: Any, repeats: int, target_s: float
              ) -> tuple[float, float]:
    """(min, median) µs per call over ``repeats`` loops of n calls, n sized to ~target_s."""
    n = 1
    while True:  # calibrate
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn(doc)
        dt = (time.perf_counter_ns() - t0) / 1e9
        if dt >= target_s / 4 or n >= 1 << 20:
            break
        n *= 4
    n = max(1, int(n * target_s / max(dt, 1e-9)))
    per = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn(doc)
        per.append((time.perf_counter_ns() - t0) / n / 1000)
    return min(per), statistics.median(per)


def run(args: argparse.Namespace) -> str:
    vs = {}
    for pkg in ("jsonschema", "fastjsonschema"):
        try:
            vs[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            sys.exit(f"{pkg} is not installed: .venv/bin/pip install jsonschema fastjsonschema "
                     "(bench-only)")
    m = machine()
    rows, checks = [], []
    for name, schema, doc in CASES:
        size = len(json.dumps(doc, separators=(",", ":")))
        ag = agreement(schema, doc)
        checks.append((name, ag))
        timings = {}
        for vname, fn in validators(schema).items():
            timings[vname] = time_call(fn, doc, args.repeats, args.target_s)
        rows.append((name, size, timings))
        print(f"{name:<34} {size:>6} B  " + "  ".join(
            f"{k} {v[0]:,.1f} µs" for k, v in timings.items()), flush=True)
    L = [START, "## JSON Schema validators (`bench/json_schema_bench.py`)\n"]
    L.append("Command: `python bench/json_schema_bench.py"
             + "".join(f" {a}" for a in sys.argv[1:]) + f"` ({m['date']}; {m['cores']} cores, "
             f"{m['cpu']}; Python {m['python']}; keel {m['keel']}; jsonschema "
             f"{vs['jsonschema']}; fastjsonschema {vs['fastjsonschema']}; load average "
             f"{m['load']}). Not pinned; one process.\n")
    L.append("µs per validation: the fastest of "
             f"{args.repeats} timed loops (the median loop in brackets); each validator built "
             "once per "
             "schema. `jsonschema (first)` is `is_valid`, `jsonschema (all)` is "
             "`list(iter_errors(doc))`; keel always lists every violation; fastjsonschema stops "
             "at the first.\n")
    names = list(rows[0][2])
    L.append("| document | size | " + " | ".join(names) + " |")
    L.append("|---|---:|" + "---:|" * len(names))
    for name, size, t in rows:
        L.append(f"| {name} | {size / 1024:.1f} KB | "
                 + " | ".join(f"**{t[n][0]:,.1f}** ({t[n][1]:,.1f})" for n in names) + " |")
    L.append("")
    L.append("| | keel | jsonschema | fastjsonschema |\n|---|---|---|---|")
    L.append("| lists every violation | yes (`validate` returns them all) | yes (`iter_errors`; "
             "`best_match` picks one) | no: raises `JsonSchemaValueException` at the first |")
    L.append("| path of a violation | `$.line_items[3].quantity` in the message | `json_path` "
             "(`$.line_items[3].quantity`), also `path` / `schema_path` as deques | "
             "`path` of the first only (`data.line_items[3].quantity`) |")
    L.append("| keywords | the subset in `keel.json_schema` (no `$ref`, `oneOf`, `format`, "
             "...; `check_schema` rejects them) | all of Draft 2020-12 | all of drafts 4/6/7 "
             "(no 2020-12) |")
    L.append("")
    L.append("Agreement (checked before timing): valid / invalid verdicts, and the violations "
             "listed.\n")
    for name, ag in checks:
        L.append(f"- **{name}**: verdicts {ag['verdicts']}"
                 + ("" if ag["agree"] else " — **they disagree**")
                 + f"; keel lists {len(ag['keel'])}, jsonschema {len(ag['jsonschema'])}"
                 + (f"; fastjsonschema's one: {ag['fastjsonschema']}" if ag["fastjsonschema"]
                    else ""))
        js = {e.split(": ", 1)[0]: e for e in ag["jsonschema"]}
        for k in ag["keel"]:
            j = js.pop(k.split(": ", 1)[0], None)
            L.append(f"  - keel: `{k}` / jsonschema: " + (f"`{j}`" if j else "(none at this "
                                                          "path)"))
        for j in js.values():
            L.append(f"  - jsonschema only: `{j}`")
    L.append("")
    L.append(END)
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 loops of ~0.03 s per cell")
    ap.add_argument("--repeats", type=int, default=None, help="timed loops per cell [7]")
    ap.add_argument("--target-s", type=float, default=None, help="seconds per loop [0.1]")
    ap.add_argument("--write", action="store_true",
                    help="write the section into --output (between its markers)")
    ap.add_argument("--output", default=str(BENCH / "RESULTS.md"))
    args = ap.parse_args()
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.target_s = args.target_s or (0.03 if args.quick else 0.1)
    text = run(args)
    print()
    print(text)
    if args.write:
        write_section(Path(args.output), text, START, END)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
