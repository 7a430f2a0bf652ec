"""``keel traces show``: one trace with what is attached to it, gathered from the store and
printed for people."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from keel.feedback.service import public_feedback, public_outcome
from keel.store import Store
from keel.store import feedback as fq
from keel.store.traces import get_trace
from keel.text import content_text

OUTCOMES_SCANNED = 1000  # outcomes of the trace's feature since it, searched for its id


async def trace_detail(store: Store, trace_id: str) -> dict[str, Any] | None:
    """The trace row with its request and response (when captured), its feedback, and the
    outcomes that name it; None when there is no such trace."""
    trace = await get_trace(store, trace_id)
    if trace is None:
        return None
    trace["feedback"] = [public_feedback(r) for r in await fq.list_feedback(store, trace_id)]
    outcomes = []
    if trace.get("feature"):  # an outcome is recorded for a feature, after its traces
        rows = await fq.list_outcomes(store, fq.OutcomeFilter(
            feature=trace["feature"], since=trace["start_time"]), OUTCOMES_SCANNED)
        outcomes = [public_outcome(r) for r in rows if trace_id in (r.get("trace_ids") or [])]
    trace["outcomes"] = outcomes
    return trace


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _joined(*parts: Any, sep: str = ", ") -> str:
    return sep.join(str(p) for p in parts if p not in (None, "", 0, False)) or "-"


def _text(content: Any) -> str:
    """A message's content as text: a string as it is; parts and tool calls as JSON."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type", "text") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return content_text(content, "\n")
    return orjson.dumps(content).decode()


def _messages(request: Any) -> list[tuple[str, str]]:
    if not isinstance(request, dict):
        return []
    out: list[tuple[str, str]] = []
    if isinstance(request.get("system"), str | list):  # Anthropic's system prompt
        out.append(("system", _text(request["system"])))
    for m in request.get("messages") or []:
        if isinstance(m, dict):
            body = m.get("content")
            if m.get("tool_calls"):
                body = _joined(_text(body) if body else None, _text(m["tool_calls"]), sep="\n")
            out.append((str(m.get("role", "?")), _text(body) if body is not None else ""))
    if "input" in request and not out:  # embeddings
        out.append(("input", _text(request["input"])))
    return out


def _outputs(response: Any) -> list[tuple[str, str]]:
    if not isinstance(response, dict):
        return []
    out: list[tuple[str, str]] = []
    for c in response.get("choices") or []:  # OpenAI chat completions
        if not isinstance(c, dict):
            continue
        msg: dict[str, Any] = c["message"] if isinstance(c.get("message"), dict) else {}
        parts = [msg.get("content"), msg.get("refusal")]
        if msg.get("tool_calls"):
            parts.append(_text(msg["tool_calls"]))
        label = f"choice {c.get('index', len(out))}" + (
            f" ({c['finish_reason']})" if c.get("finish_reason") else "")
        out.append((label, _joined(*(p if isinstance(p, str) else None for p in parts),
                                   sep="\n")))
    if isinstance(response.get("content"), list):  # Anthropic messages
        out.append(("content", _text(response["content"])))
    if isinstance(response.get("data"), list) and not out:
        out.append(("embeddings", f"{len(response['data'])} vectors"))
    return out


def _facts(t: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    status = str(t["status"]) + (f" {t['error_type']}" if t.get("error_type") else "")
    model = t.get("model_requested") or "-"
    if t.get("model_served") and t["model_served"] != model:
        model += f" -> {t['model_served']}"
    rows = [
        ("time", _when(t["start_time"])),
        ("endpoint", t.get("endpoint") or "-"),
        ("status", status + (f": {t['error_message']}" if t.get("error_message") else "")),
        ("who", _joined(f"team {t['team']}" if t.get("team") else None,
                        f"feature {t['feature']}" if t.get("feature") else None,
                        f"key {t['key_id']}" if t.get("key_id") else None,
                        f"user {t['user']}" if t.get("user") else None,
                        f"session {t['session']}" if t.get("session") else None)),
        ("model", _joined(model, f"provider {t['provider']}" if t.get("provider") else None,
                          f"route {t['route']}" if t.get("route") else None,
                          f"variant {t['variant']}" if t.get("variant") else None)),
        ("prompt", f"{t['prompt_name']}@{t['prompt_version']}" if t.get("prompt_name")
         else "-"),
        ("latency", _joined(f"{t['latency_ms']:.1f} ms",
                            f"first token {t['ttft_ms']:.1f} ms" if t.get("ttft_ms") else None,
                            "streamed" if t.get("stream") else None)),
        ("tokens", _joined(f"in {t['input_tokens']}",
                           f"cached {t['cached_tokens']}" if t.get("cached_tokens") else None,
                           f"cache write {t['cache_write_tokens']}"
                           if t.get("cache_write_tokens") else None,
                           f"out {t['output_tokens']}",
                           f"reasoning {t['reasoning_tokens']}"
                           if t.get("reasoning_tokens") else None)),
        ("cost", _joined(f"${t['cost_usd']:.6f}",
                         f"cache hit, saved ${t['cost_saved_usd']:.6f}" if t.get("cache_hit")
                         else None)),
        ("attempts", str(t.get("attempts") or 0)),
    ]
    if t.get("policy"):
        findings = t.get("guard") or []
        rows.append(("policy", _joined(f"{t['policy']}@{t.get('policy_version') or '?'}",
                                       f"{t['guard_ms']:.1f} ms" if t.get("guard_ms") else None,
                                       f"{len(findings)} findings" if findings else None)))
    if t.get("tags"):
        rows.append(("tags", ", ".join(f"{k}={v}" for k, v in t["tags"].items())))
    if t.get("source"):
        rows.append(("source", t["source"]))
    for k, v in rows:
        grid.add_row(k, Text(v))
    return grid


def _table(title: str, headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    table = Table(*headers, title=title, title_justify="left")
    for r in rows:
        table.add_row(*(Text(c) for c in r))
    return table


def print_trace(console: Console, t: dict[str, Any]) -> None:
    console.print(Text(f"trace {t['id']}", style="bold"))
    console.print(_facts(t))
    log = [a for a in t.get("attempt_log") or [] if isinstance(a, dict)]
    if log:
        console.print(_table("attempts", ("#", "model", "deployment", "status", "ms"), [
            (str(i), str(a.get("model") or "-"), str(a.get("deployment") or "-"),
             str(a.get("status", "-")) + (f" {a['error_type']}" if a.get("error_type") else ""),
             f"{a.get('latency_ms', 0):.1f}") for i, a in enumerate(log, 1)]))
    if t.get("request") is None and t.get("response") is None:
        console.print("messages: not captured (the feature's capture policy, or "
                      "KEEL_CAPTURE_CONTENT=false)")
    for title, items in (("request", _messages(t.get("request"))),
                         ("response", _outputs(t.get("response")))):
        if items:
            console.print(Text(title, style="bold"))
            for label, body in items:
                console.print(Text(f"  [{label}] ", style="cyan") + Text(body))
    if t["feedback"]:
        console.print(_table("feedback", ("at", "source", "thumbs", "outcome", "score",
                                          "rework", "comment"), [
            (_when(f.get("at")), str(f.get("source") or "-"), str(f.get("thumbs") or "-"),
             str(f.get("outcome") or "-")
             + (f" critical {f.get('critical_category') or ''}".rstrip()
                if f.get("critical_error") else ""),
             f"{f['score']['name']}={f['score']['value']:g}" if f.get("score") else "-",
             f"{f['rework']:.0%}" if f.get("rework") is not None else "-",
             str(f.get("comment") or "-")) for f in t["feedback"]]))
    if t["outcomes"]:
        console.print(_table("outcomes", ("at", "name", "value", "id"), [
            (_when(o.get("at")), str(o.get("name")), f"{o.get('value', 0):g}", str(o.get("id")))
            for o in t["outcomes"]]))
