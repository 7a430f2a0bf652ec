"""Prompts: every prompt with its versions, labels and last change; one prompt's page with
its versions (who, when, why), a side-by-side diff of two versions, the history of its label
moves, and the quality and cost of each version from the rollups; and, for an operator,
moving a label (the registry's own ``set_label``, audited as the API's move is).

Versions and labels are read from the registry's in-memory index; the numbers from the
rollups grouped by prompt (``keel.monitor.measures.summary``), and the moves from the
registry's event table (newest first, bounded).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any
from urllib.parse import quote

import yaml
from starlette.responses import Response

from keel.console.queries import prompt_features
from keel.console.web import Action, Page, View, action, page
from keel.errors import InvalidRequest, NotFound
from keel.monitor.measures import Filters as MeasureFilters
from keel.monitor.measures import summary
from keel.prompts.registry import LATEST, PromptVersion
from keel.store import prompts as store_prompts

PAGES: list[Page] = []
ACTIONS: list[Action] = []

MAX_MOVES = 50  # label moves listed on a prompt's page
MAX_PROMPTS = 1000  # prompts whose last change is read for the list
DIFF_CONTEXT = 3  # unchanged lines shown around a change
MAX_DIFF_ROWS = 2000
MAX_LABEL = 64
MAX_REASON = 2000
NBSP = "\N{NO-BREAK SPACE}"


# --- the diff ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DiffRow:
    """One row of a side-by-side diff. ``kind``: unchanged, removed, added, changed (the
    left line became the right one) or skipped (``skipped`` unchanged lines not shown)."""

    kind: str
    left_no: int | None = None
    left: str | None = None
    right_no: int | None = None
    right: str | None = None
    skipped: int = 0


def spec_lines(v: PromptVersion) -> list[str]:
    """A version as the registry's diff shows it: its spec as YAML, line by line."""
    text = yaml.safe_dump(v.spec.to_dict(), sort_keys=False, allow_unicode=True, width=100)
    return text.splitlines()


def _shown(line: str) -> str:
    """Leading spaces kept visible in a table cell (YAML's indentation is its structure)."""
    stripped = line.lstrip(" ")
    return NBSP * (len(line) - len(stripped)) + stripped


def side_by_side(a: list[str], b: list[str], context: int = DIFF_CONTEXT) -> list[DiffRow]:
    """The rows of a two-column diff of ``a`` (before) and ``b`` (after), by difflib:
    changes with ``context`` unchanged lines around them; empty when they are the same."""
    if a == b:
        return []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    rows: list[DiffRow] = []
    shown_to = 0  # lines of ``a`` before this index are shown or skipped already
    for group in matcher.get_grouped_opcodes(context):
        start = group[0][1]
        if start > shown_to:
            rows.append(DiffRow("skipped", skipped=start - shown_to))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows += [DiffRow("unchanged", i + 1, _shown(a[i]), j + 1, _shown(b[j]))
                         for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
                continue
            for i, j in zip_longest(range(i1, i2) if tag != "insert" else (),
                                    range(j1, j2) if tag != "delete" else ()):
                if i is not None and j is not None:
                    rows.append(DiffRow("changed", i + 1, _shown(a[i]), j + 1, _shown(b[j])))
                elif i is not None:
                    rows.append(DiffRow("removed", i + 1, _shown(a[i])))
                elif j is not None:
                    rows.append(DiffRow("added", right_no=j + 1, right=_shown(b[j])))
        shown_to = group[-1][2]
    if shown_to < len(a):
        rows.append(DiffRow("skipped", skipped=len(a) - shown_to))
    return rows


# --- reading -------------------------------------------------------------------------------

def _measure_filters(view: View, name: str | None = None) -> MeasureFilters:
    f = view.filters
    return MeasureFilters(feature=f.feature, team=f.team, model=f.model, prompt_name=name)


async def _by_prompt(view: View, name: str | None = None,
                     sketches: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """The rollups' measures per ``name@version`` (of every prompt, or of the one named)
    over the filter's window, with the percentiles of ``sketches`` only (the others None)."""
    since, until = view.filters.window()
    result = await summary(view.state.store, since, until,
                           filters=_measure_filters(view, name), group_by=("prompt",),
                           sketches=sketches)
    return {str(g["prompt"]): g for g in result["groups"] if g.get("prompt")}


def _versions(view: View, name: str) -> list[PromptVersion]:
    if len(name) > 128 or not name.isprintable():
        raise NotFound("no such prompt")
    versions = view.state.prompts.versions_of(name)
    if not versions:
        raise NotFound(f"no prompt named '{name}'; the prompts page lists them")
    return versions


def _labels_by_version(view: View, name: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for label, version in sorted(view.state.prompts.labels_of(name).items()):
        out.setdefault(version, []).append(label)
    return out


def _version_param(view: View, param: str, known: dict[int, PromptVersion],
                   default: int) -> int:
    raw = (view.request.query_params.get(param) or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) not in known:
        raise InvalidRequest(f"'{param}' is a version of this prompt: one of "
                             f"{', '.join(map(str, sorted(known)))}", param=param)
    return int(raw)


@page(PAGES, "/prompts", "Prompts", "viewer")
async def prompt_list(view: View) -> Response:
    reg = view.state.prompts
    stats = await _by_prompt(view)
    changes = await store_prompts.last_events(view.state.store, limit=MAX_PROMPTS)
    requests: dict[str, int] = {}
    for ref, g in stats.items():
        name = ref.rsplit("@", 1)[0]
        requests[name] = requests.get(name, 0) + int(g["requests"])
    rows = []
    for name in reg.names():
        versions = reg.versions_of(name)
        labels = reg.labels_of(name)
        rows.append({
            "name": name, "versions": len(versions), "latest": versions[-1],
            "labels": sorted((k, v) for k, v in labels.items() if k != LATEST),
            "change": changes.get(name), "requests": requests.get(name, 0)})
    return view.render("prompts.html", title="Prompts", rows=rows)


@page(PAGES, "/prompts/{name}", "Prompt", "viewer", nav=False)
async def prompt_page(view: View) -> Response:
    name = str(view.request.path_params["name"])
    versions = _versions(view, name)
    known = {v.version: v for v in versions}
    latest = versions[-1].version
    b = _version_param(view, "b", known, latest)
    a = _version_param(view, "a", known, max((n for n in known if n < b), default=b))
    diff = side_by_side(spec_lines(known[a]), spec_lines(known[b])) if a != b else []
    cut = len(diff) > MAX_DIFF_ROWS
    stats = await _by_prompt(view, name, sketches=("latency",))  # the versions' p95 latency
    since, until = view.filters.window()
    f = view.filters
    served = await prompt_features(view.state.store, name, since, until, feature=f.feature,
                                   team=f.team, model=f.model)
    moves = await store_prompts.recent_moves(view.state.store, name, limit=MAX_MOVES)
    quality = [{"version": v.version, "m": stats.get(f"{name}@{v.version}"),
                "features": served.get(f"{name}@{v.version}", [])}
               for v in reversed(versions)]
    labels = _labels_by_version(view, name)
    movable = sorted(k for k in view.state.prompts.labels_of(name) if k != LATEST)
    return view.render(
        "prompts_detail.html", title=f"Prompt {name}", name=name,
        versions=list(reversed(versions)), latest=known[latest], labels=labels,
        movable=movable, a=a, b=b, diff=diff[:MAX_DIFF_ROWS], diff_cut=cut, quality=quality,
        moves=moves, max_moves=MAX_MOVES,
        extra_query=[(k, str(v)) for k, v in (("a", a), ("b", b))])


# --- changing ------------------------------------------------------------------------------

@action(ACTIONS, "/prompts/{name}/labels", "operator")
async def move_label(view: View) -> Response:
    name = str(view.request.path_params["name"])
    known = {v.version for v in _versions(view, name)}
    label = (view.form.get("label") or "").strip()
    if not label or len(label) > MAX_LABEL or not label.isprintable():
        raise InvalidRequest(f"name the label to move: printable text of at most {MAX_LABEL} "
                             "characters, e.g. production", param="label")
    raw = (view.form.get("version") or "").strip()
    if not (raw.isascii() and raw.isdigit()) or int(raw) not in known:
        raise InvalidRequest(f"'version' is a version of {name}: one of "
                             f"{', '.join(map(str, sorted(known)))}", param="version")
    reason = (view.form.get("reason") or "").strip()
    if len(reason) > MAX_REASON:
        raise InvalidRequest(f"the reason is over {MAX_REASON} characters; say it shorter",
                             param="reason")
    old, new = await view.state.prompts.set_label(f"{name}@{int(raw)}", label, actor=view.who,
                                                  reason=reason or None)
    was = "a new label" if old is None else f"was version {old}"
    return view.back(f"/prompts/{quote(name, safe='')}",
                     f"label {label} now points at version {new} ({was})")
