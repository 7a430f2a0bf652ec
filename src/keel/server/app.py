"""Builds the Starlette app. No work happens at import time."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.config import KeelConfig, Settings
from keel.errors import InvalidRequest, KeelError, NotFound
from keel.gateway import anthropic_api, openai_api
from keel.gateway.openai_api import json_response, openai_error
from keel.server import admin
from keel.server.state import AppState


async def health(_request: Request) -> Response:
    return json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    st: AppState = request.app.state.keel
    checks: dict[str, str] = {}
    ok = True
    try:
        await st.store.ping()
        checks["store"] = "ok"
    except Exception as exc:
        ok = False
        checks["store"] = f"unreachable: {type(exc).__name__}: {exc}"
    if st.redis is not None:
        try:
            await st.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            ok = False
            checks["redis"] = f"unreachable: {type(exc).__name__}: {exc}"
    return json_response({"status": "ready" if ok else "unavailable", "checks": checks},
                         200 if ok else 503)


async def metrics(request: Request) -> Response:
    st: AppState = request.app.state.keel
    st.metrics.trace_queue.set(st.writer.pending)
    return Response(st.metrics.render(), media_type="text/plain; version=0.0.4")


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: KeelError = NotFound("no such endpoint; see the README for the API keel serves")
    elif exc.status_code == 405:
        err = InvalidRequest("method not allowed on this endpoint", status=405,
                             code="method_not_allowed")
    else:
        err = KeelError(str(exc.detail), status=exc.status_code)
    return openai_error(err)


async def _unhandled(_request: Request, exc: Exception) -> Response:
    return openai_error(KeelError(f"internal error in keel: {type(exc).__name__}",
                                  code="internal_error"))


def routes() -> list[Route]:
    return [
        Route("/v1/chat/completions", openai_api.chat_completions, methods=["POST"]),
        Route("/chat/completions", openai_api.chat_completions, methods=["POST"]),
        Route("/v1/embeddings", openai_api.embeddings, methods=["POST"]),
        Route("/v1/messages", anthropic_api.messages, methods=["POST"]),
        Route("/v1/models", openai_api.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", openai_api.get_model, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *admin.routes(),
    ]


def create_app(
    settings: Settings, config: KeelConfig, *, state: AppState | None = None,
    migrate: bool = True,
) -> Starlette:
    st = state or AppState.build(settings, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await st.start(migrate=migrate)
        try:
            yield
        finally:
            await st.aclose()

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _unhandled},
    )
    app.state.keel = st
    return app
