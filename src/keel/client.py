"""A tiny client for sending feedback and business outcomes to keel (standard library only).

::

    from keel.client import KeelFeedback

    kf = KeelFeedback("http://127.0.0.1:4000", api_key)
    kf.feedback(trace_id, thumbs="up")
    kf.feedback(trace_id, outcome="edited", corrected_text=final_text)
    kf.outcome("ticket_resolved", feature="support", trace_ids=[trace_id])

Each call returns the stored item as a dict, or raises ``KeelClientError`` carrying the
server's error message, status and code.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["KeelClientError", "KeelFeedback"]


class KeelClientError(Exception):
    """keel refused the request (``status`` is the HTTP status) or could not be reached
    (``status`` is None)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 param: str | None = None) -> None:
        suffix = "" if status is None else f" (HTTP {status}{', ' + code if code else ''})"
        super().__init__(f"keel: {message}{suffix}")
        self.message = message
        self.status = status
        self.code = code
        self.param = param


class KeelFeedback:
    """Send feedback on traces and business outcomes to a keel server.

    ``api_key`` is the admin key, a gateway key, or a feedback key (``keel keys create
    --scope feedback``; feedback only)."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0) -> None:
        base = base_url.rstrip("/")
        if base.endswith("/v1"):  # the gateway's OpenAI base URL works too
            base = base[:-3]
        self.base_url = base
        self.api_key = api_key
        self.timeout = timeout

    def feedback(
        self, trace_id: str, *, thumbs: str | int | None = None, outcome: str | None = None,
        edit_distance: int | None = None, corrected_text: str | None = None,
        score: tuple[str, float] | Mapping[str, Any] | None = None,
        critical_error: bool | None = None, critical_category: str | None = None,
        comment: str | None = None, source: str | None = None, id: str | None = None,
    ) -> dict[str, Any]:
        """Attach feedback to the trace ``trace_id`` (the ``x-keel-trace-id`` header of an
        answer). ``score`` is ``(name, value)`` or ``{"name": ..., "value": ...}``; ``id``
        makes the call safe to retry."""
        body: dict[str, Any] = {"trace_id": trace_id}
        if score is not None and not isinstance(score, Mapping):
            name, value = score
            score = {"name": name, "value": value}
        for k, v in (("thumbs", thumbs), ("outcome", outcome), ("edit_distance", edit_distance),
                     ("corrected_text", corrected_text), ("score", score),
                     ("critical_error", critical_error), ("critical_category", critical_category),
                     ("comment", comment), ("source", source), ("id", id)):
            if v is not None:
                body[k] = dict(v) if isinstance(v, Mapping) else v
        return self._request("POST", "/api/feedback", body)

    def outcome(
        self, name: str, value: float = 1, *, feature: str | None = None,
        trace_ids: Sequence[str] | None = None, at: float | None = None,
        team: str | None = None, id: str | None = None,
    ) -> dict[str, Any]:
        """Record a business outcome (a value unit such as ``ticket_resolved``) for a
        feature, optionally linked to the traces that produced it."""
        body: dict[str, Any] = {"name": name, "value": value}
        for k, v in (("feature", feature), ("at", at), ("team", team), ("id", id)):
            if v is not None:
                body[k] = v
        if trace_ids is not None:
            body["trace_ids"] = list(trace_ids)
        return self._request("POST", "/api/outcomes", body)

    def list_feedback(self, trace_id: str) -> list[dict[str, Any]]:
        """The feedback on one trace (not with a feedback key: those may only write)."""
        out = self._request("GET", "/api/feedback?" + urllib.parse.urlencode(
            {"trace_id": trace_id}))
        return list(out["data"])

    def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers={
            "authorization": f"Bearer {self.api_key}", "content-type": "application/json",
            "accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            raise _error(exc.code, exc.read()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise KeelClientError(f"could not reach keel at {self.base_url}: {reason}") from None
        try:
            out = json.loads(payload)
        except ValueError:
            raise KeelClientError(f"keel answered {method} {path} with something that is "
                                  "not JSON") from None
        if not isinstance(out, dict):
            raise KeelClientError(f"keel answered {method} {path} with an unexpected body")
        return out


def _error(status: int, raw: bytes) -> KeelClientError:
    try:
        err = json.loads(raw)["error"]
        return KeelClientError(str(err["message"]), status=status, code=err.get("code"),
                               param=err.get("param"))
    except (ValueError, KeyError, TypeError):
        text = raw.decode("utf-8", "replace").strip()[:200]
        return KeelClientError(text or "request failed", status=status)
