"""Governance: the guardrail policies in force (their rules, and every version each has had,
readable as it was), the per-feature kill switches (operators stop a feature with a reason
and start it again; the gateway refuses a stopped feature's requests at once), and the
audit log for auditors: its recent entries, its verification on demand, and its export.

A stop or start goes through ``FeatureSwitches.stop_feature`` / ``start_feature``, as
``POST /api/features/{name}/stop|start`` does: checked, recorded in the audit log with the
caller as actor, and in force in this process before the page is shown again.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import yaml
from starlette.responses import Response

from keel.console.web import Action, Page, View, action, page, security_headers
from keel.errors import InvalidRequest, NotFound
from keel.store import policies as policy_versions
from keel.switches import FeatureSwitches

__all__ = ["ACTIONS", "PAGES"]

PAGES: list[Page] = []
ACTIONS: list[Action] = []

AUDIT_PAGE = 50
MAX_ACTION = 64


def _switches(view: View) -> FeatureSwitches:
    if view.state.features is None:
        raise NotFound("feature switches are not running in this keel")
    return view.state.features


def rules(entries: Any) -> list[dict[str, Any]]:
    """A policy's rules (its spec's ``input``/``output`` entries) as scanner, action and the
    rest of its settings."""
    out = []
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, dict):
            rest = {k: v for k, v in e.items() if k not in ("scanner", "action")}
            out.append({"scanner": e.get("scanner"), "action": e.get("action"),
                        "settings": ", ".join(f"{k}: {v}" for k, v in rest.items()
                                              if v not in (None, [], {}))})
    return out


def as_yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _before(view: View) -> int | None:
    raw = (view.request.query_params.get("before") or "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise InvalidRequest("'before' is the entry number the 'Older' link carried",
                             param="before")
    return int(raw)


def _action_filter(view: View) -> str | None:
    raw = (view.request.query_params.get("action") or "").strip()
    if not raw:
        return None
    if len(raw) > MAX_ACTION or not all(ch.isalnum() or ch in "._-" for ch in raw):
        raise InvalidRequest("'action' is an audit action such as key.create, or a prefix "
                             "ending in '.' such as review.", param="action")
    return raw


async def _features(view: View) -> list[dict[str, Any]]:
    """Every feature the config declares, and any other that was ever stopped, with its
    switch: running or stopped, since when, by whom and why."""
    switches = view.state.features
    rows = {r["feature"]: r for r in await switches.rows()} if switches is not None else {}
    names = [f.name for f in view.state.config.features]
    names += sorted(n for n in rows if n not in names)
    return [rows.get(n) or {"feature": n, "state": "running", "since": None, "by": None,
                            "reason": None} for n in names]


async def _governance(view: View, *, error: str | None = None,
                      stopping: str | None = None) -> Response:
    policies = view.state.gateway.policies.policies
    features = await _features(view)
    audit: dict[str, Any] | None = None
    if view.may("auditor"):
        integrity = view.console.integrity
        verify = view.request.query_params.get("verify") == "1" and view.request.method == "GET"
        checked = await integrity.verify_now() if verify else integrity.last
        kind = _action_filter(view)
        before = _before(view)
        entries, older = await view.state.audit.entries(action=kind, limit=AUDIT_PAGE,
                                                        before_seq=before)
        audit = {"checked": checked, "verified_now": verify, "entries": entries,
                 "older": older, "action": kind, "before": before}
    return view.render("governance.html", title="Governance", policies=policies, rules=rules,
                       features=features, switches_running=view.state.features is not None,
                       audit=audit, error=error, stopping=stopping,
                       reason=view.form.get("reason", ""), filterbar=False)


@page(PAGES, "/governance", "Governance", "viewer")
async def governance(view: View) -> Response:
    return await _governance(view)


@page(PAGES, "/governance/policies/{name}", "Policy versions", "viewer", nav=False)
async def versions(view: View) -> Response:
    name = str(view.request.path_params["name"])
    rows = await policy_versions.list_versions(view.state.store, name)
    current = view.state.gateway.policies.get(name)
    if not rows and current is None:
        raise NotFound(f"no policy named '{name[:128]}' has been in force")
    return view.render("policy_versions.html", title=f"Policy {name}", name=name, rows=rows,
                       current=current, filterbar=False)


@page(PAGES, "/governance/policies/{name}/{version}", "Policy version", "viewer", nav=False)
async def version(view: View) -> Response:
    name = str(view.request.path_params["name"])
    ver = str(view.request.path_params["version"])
    row = await policy_versions.get_version(view.state.store, name, ver)
    current = view.state.gateway.policies.get(name)
    if row is None and current is not None and current.version == ver:
        row = {"name": name, "version": ver, "spec": current.spec, "first_seen": None}
    if row is None:
        raise NotFound(f"policy '{name[:128]}' has no version '{ver[:32]}'")
    spec = row["spec"] if isinstance(row["spec"], dict) else {}
    return view.render("policy_version.html", title=f"Policy {name}@{ver}", row=row,
                       spec_yaml=as_yaml(spec), input_rules=rules(spec.get("input")),
                       output_rules=rules(spec.get("output")), review=spec.get("review"),
                       current=current is not None and current.version == ver,
                       filterbar=False)


@page(PAGES, "/governance/audit/export", "Audit export", "auditor", nav=False)
async def export(view: View) -> Response:
    """The whole audit log as a bundle that verifies offline (``keel audit verify-bundle``),
    as a JSON download."""
    bundle = await view.state.audit.export()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Response(orjson.dumps(bundle, option=orjson.OPT_INDENT_2),
                    media_type="application/json", headers=security_headers({
                        "content-disposition":
                            f'attachment; filename="keel-audit-{stamp}.json"'}))


@action(ACTIONS, "/governance/switches/stop", "operator")
async def stop(view: View) -> Response:
    feature = view.form.get("feature") or ""
    try:
        row = await _switches(view).stop_feature(feature, reason=view.form.get("reason"),
                                                 actor=view.who)
    except InvalidRequest as exc:  # the page again, with the reason typed so far
        return await _governance(view, error=f"{feature or 'feature'} not stopped: "
                                 f"{exc.message}", stopping=feature)
    return view.back("/governance", f"feature {row['feature']} is stopped: its "
                     "requests are refused (503 feature_stopped) until it is started")


@action(ACTIONS, "/governance/switches/start", "operator")
async def start(view: View) -> Response:
    row = await _switches(view).start_feature(view.form.get("feature") or "", actor=view.who)
    return view.back("/governance", f"feature {row['feature']} is running again")
