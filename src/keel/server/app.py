"""Builds the Starlette app. No work happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from keel.config import KeelConfig, Settings
from keel.console.routes import build_console
from keel.errors import AuthenticationFailed, InvalidRequest, KeelError, NotFound
from keel.server import (
    admin,
    alerts_api,
    anthropic_api,
    audit_api,
    budgets_api,
    costs_api,
    drift_api,
    evals_api,
    feedback_api,
    metrics_api,
    openai_api,
    otlp_api,
    policies_api,
    prompts_api,
    reviews_api,
    switches_api,
)
from keel.server.auth import authorize
from keel.server.exchange import REQUEST_ID_HEADER, id_headers, request_id
from keel.server.http import api_key, json_response, openai_error
from keel.server.state import AppState
from keel.types import new_trace_id

log = logging.getLogger("keel.server")


async def health(_request: Request) -> Response:
    return json_response({"status": "ok"})


READY_PING_TIMEOUT_S = 2.0


async def ready(request: Request) -> Response:
    """Can this process serve requests? 200 while it can, even with a dependency down
    (keel keeps answering and keeps every trace on disk while the store is away; Redis
    has a documented fallback for each use): those are reported in the body as
    ``degraded``. 503 only when it cannot keep what it would answer (the trace writer
    refuses: store, journal and memory all full)."""
    st: AppState = request.app.state.keel
    checks: dict[str, Any] = {}
    degraded = False
    try:
        await asyncio.wait_for(st.store.ping(), READY_PING_TIMEOUT_S)
        checks["store"] = "ok"
    except Exception as exc:
        degraded = True
        checks["store"] = f"unreachable: {type(exc).__name__}: {exc}"[:300]
    if st.redis is not None:
        try:
            await asyncio.wait_for(st.redis.ping(), READY_PING_TIMEOUT_S)
            checks["redis"] = "ok"
        except Exception as exc:
            degraded = True
            checks["redis"] = f"unreachable: {type(exc).__name__}: {exc}"[:300]
    writer = st.writer.health()
    checks["trace_writer"] = writer
    degraded = degraded or writer["state"] != "ok"
    serving = bool(writer["accepting"])
    status = "unavailable" if not serving else "degraded" if degraded else "ready"
    return json_response({"status": status, "checks": checks}, 200 if serving else 503)


async def metrics(request: Request) -> Response:
    """Prometheus text, for the master key or a key with role ``metrics`` (or anyone with
    ``KEEL_METRICS_PUBLIC``). Rendered in a worker thread: a large registry takes long
    enough (hundreds of ms per MB) to stall every request on the event loop."""
    st: AppState = request.app.state.keel
    if not st.settings.metrics_public:
        try:
            authorize(request, "metrics")
        except AuthenticationFailed:  # said in the scraper's terms, not the /api's
            said = "invalid API key" if api_key(request.headers) else "no API key"
            raise AuthenticationFailed(
                f"{said}: GET /metrics needs the master key or a key with role 'metrics' "
                "(`keel keys create --team ops --role metrics`, sent by the scraper as a "
                "bearer token); on a private network KEEL_METRICS_PUBLIC=true serves it "
                "without a key") from None
    st.metrics.trace_queue.set(st.writer.pending)
    body = await asyncio.to_thread(st.metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4")


ANTHROPIC_PREFIX = "/v1/messages"
_REQUEST_ID = "keel.request_id"  # the scope key KeelApp keeps a request's id under
_RID_HEADER = REQUEST_ID_HEADER.encode()


def anthropic_path(path: str) -> bool:
    """Whether ``path`` is Anthropic's API (``/v1/messages`` and below), answered in its
    error shape and with its ``request-id`` header."""
    return path == ANTHROPIC_PREFIX or path.startswith(ANTHROPIC_PREFIX + "/")


def scope_request_id(scope: Scope) -> str:
    """The request id of a request keel answers outside the gateway's own ``Exchange``: the
    client's ``X-Request-ID`` when usable, else a new one; kept in the scope."""
    rid: str | None = scope.get(_REQUEST_ID)
    if rid is None:
        sent = next((v.decode("latin-1") for k, v in scope["headers"]
                     if k == _RID_HEADER), None)
        rid = scope[_REQUEST_ID] = request_id(sent, new_trace_id())
    return rid


def _error_response(request: Request, err: KeelError) -> Response:
    """keel's own error for a request no handler took: Anthropic's shape under
    ``/v1/messages``, OpenAI's elsewhere."""
    path = request.url.path
    ids = id_headers(None, scope_request_id(request.scope), anthropic_path(path))
    if anthropic_path(path):
        return anthropic_api.anthropic_error(err, ids)
    return openai_error(err, ids)


async def _keel_error(request: Request, exc: Exception) -> Response:
    """The one handler of every ``KeelError`` a route raises: its status, its headers
    (``Retry-After``...) and its body in OpenAI's shape. The request id headers are added by
    ``KeelApp``'s send wrapper, as on every answer outside the hot routes; under
    ``/v1/messages`` the error is Anthropic's, whose body names the request id too."""
    assert isinstance(exc, KeelError)
    if anthropic_path(request.url.path):
        return _error_response(request, exc)
    return openai_error(exc)


def _allowed_methods(request: Request) -> str:
    """The methods every route of the request's path takes, sorted (Starlette names only
    the first route's, in the order of a set, which varies with the hash seed): the value
    of a 405's ``Allow``."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods \
                and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: KeelError = NotFound(
            f"no such endpoint: {request.method} {request.url.path}; see the README for the "
            "API keel serves")
    elif exc.status_code == 405:
        allow = _allowed_methods(request) or (exc.headers or {}).get("Allow", "")
        err = InvalidRequest(
            f"method not allowed: {request.method} {request.url.path}; it takes "
            f"{allow or 'other methods'}", status=405, code="method_not_allowed",
            headers={"allow": allow} if allow else None)
    else:
        err = KeelError(str(exc.detail), status=exc.status_code)
    return _error_response(request, err)


async def _unhandled(request: Request, exc: Exception) -> Response:
    return _error_response(request, KeelError(f"internal error in keel: {type(exc).__name__}",
                                              code="internal_error"))


Handler = Callable[[Request], Awaitable[Response]]

# The gateway's hot routes. Their handlers turn every failure into a response themselves,
# so they are dispatched directly (see KeelApp) rather than through the middleware stack.
HOT_ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/chat/completions"): openai_api.chat_completions,
    ("POST", "/chat/completions"): openai_api.chat_completions,
    ("POST", "/v1/embeddings"): openai_api.embeddings,
    ("POST", "/v1/messages"): anthropic_api.messages,
    ("POST", "/v1/messages/count_tokens"): anthropic_api.count_tokens,
}


def routes() -> list[Route]:
    return [
        *(Route(path, handler, methods=[method]) for (method, path), handler in HOT_ROUTES.items()),
        Route("/v1/models", openai_api.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", openai_api.get_model, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *admin.routes(),
        *budgets_api.routes(),
        *prompts_api.routes(),
        *evals_api.routes(),
        *costs_api.routes(),  # /api/costs: spend, reprice, events
        *otlp_api.routes(),  # POST /v1/traces: OTLP/HTTP ingest
        *feedback_api.routes(),
        *metrics_api.routes(),
        *audit_api.routes(),  # /api/audit: the audit log and its verification
        *switches_api.routes(),  # /api/features: per-feature kill switches
        *reviews_api.routes(),  # /api/reviews, /v1/reviews: held answers
        *policies_api.routes(),  # /api/policies: guardrail policies and their versions
        *alerts_api.routes(),  # /api/alerts: alert state, transitions, silences
        *drift_api.routes(),  # /api/drift: drift reports per feature, checks on demand
    ]


def tune_garbage_collector() -> None:
    """Keep the cyclic garbage collector off the request path (for a server process).

    After start-up the heap holds hundreds of thousands of long-lived objects (SQLAlchemy,
    pydantic, the config). ``gc.freeze`` moves them out of the collector's sight, and a
    larger generation-0 threshold makes collections rarer: request handling allocates many
    short-lived containers that reference counting frees anyway. Measured in bench/: this
    is worth about +50% throughput and removes ~100 ms latency spikes.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class KeelApp:
    """The ASGI entry point: the hot gateway routes go straight to their handlers (one dict
    lookup); everything else, and the lifespan, goes through the Starlette app."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = HOT_ROUTES.get((scope["method"], scope["path"]))
            if handler is not None:
                scope["app"] = self.app
                request = Request(scope, receive)
                try:
                    response = await handler(request)  # it names the request itself
                except Exception as exc:  # a bug: still answer in the protocol's shape
                    log.exception("unhandled error on %s", scope["path"])
                    response = await _unhandled(request, exc)
                await response(scope, receive, send)
                return
            await self.app(scope, receive, _with_request_id(scope, send))
            return
        await self.app(scope, receive, send)


def _with_request_id(scope: Scope, send: Send) -> Send:
    """``send`` adding the request id headers to the response (routes other than the
    gateway's hot ones, whose handlers add them)."""

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(k == _RID_HEADER for k, _ in headers):  # keel's errors have it
                names = id_headers(None, scope_request_id(scope), anthropic_path(scope["path"]))
                headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in names.items()]
                message = {**message, "headers": headers}
        await send(message)

    return sender


def create_app(
    settings: Settings, config: KeelConfig, *, state: AppState | None = None,
    migrate: bool = True, tune_gc: bool = False,
) -> KeelApp:
    st = state or AppState.build(settings, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await st.start(migrate=migrate)
        if tune_gc:
            tune_garbage_collector()
        try:
            yield
        finally:
            if console is not None:
                await console.aclose()
            await st.aclose()

    extra, console = build_console(st) if settings.console else ([], None)
    app = Starlette(
        routes=[*routes(), *extra],
        lifespan=lifespan,
        exception_handlers={KeelError: _keel_error, HTTPException: _http_error,
                            Exception: _unhandled},
    )
    app.state.keel = st
    return KeelApp(app)
