"""The console's routes: login and logout, static files, and every page and action the
modules listed in ``keel.console.pages`` declare."""

from __future__ import annotations

import secrets
from importlib.resources import files
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from keel.console import pages as page_modules
from keel.console.session import COOKIE, SessionSigner, load_secret
from keel.console.state import ConsoleState
from keel.console.web import (
    Console,
    View,
    endpoint,
    principal_for,
    read_form,
    same_origin,
    security_headers,
)
from keel.errors import AuthenticationFailed, KeelError, PermissionDenied
from keel.keys.roles import NARROW_ROLES, held_role

__all__ = ["build_console", "console_routes"]

LOGIN_COOKIE = "keel_login"  # the login form's own CSRF token (there is no session yet)
STATIC = StaticFiles(packages=[("keel.console", "static")])


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (never another host)."""
    if not target or not target.startswith("/") or target.startswith("//") \
            or "\\" in target or urlsplit(target).netloc:
        return "/"
    return target


def console_routes(state: ConsoleState) -> list[BaseRoute]:
    """The routes of a console over ``state`` (for a walk over them)."""
    return build_console(state)[0]


def build_console(state: ConsoleState) -> tuple[list[BaseRoute], Console]:
    """The console's routes, and the console (whose ``aclose`` ends its background work)."""
    signer = SessionSigner(load_secret(state.settings.console_secret, state.settings.data_dir),
                           state.settings.console_session_hours * 3600)
    pages, actions = page_modules.collect()
    console = Console(state, signer, pages, actions)

    async def login_form(request: Request, error: str | None = None,
                         status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        reason = request.query_params.get("reason")
        response = console.render(
            request, "login.html", status, token=token, error=error,
            next=_safe_next(request.query_params.get("next")),
            ended=reason == "ended")
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/login")
        return response

    async def login_get(request: Request) -> Response:
        session = signer.read(request.cookies.get(COOKIE))
        if session is not None and principal_for(console, session) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), 303,
                                    headers=security_headers())
        return await login_form(request)

    async def login_post(request: Request) -> Response:
        try:
            if not same_origin(request):
                raise PermissionDenied("this login did not come from keel's own login page")
            form = await read_form(request)
            token = request.cookies.get(LOGIN_COOKIE)
            if not token or form.get("token") != token:
                raise PermissionDenied("the login form expired; log in again")
            key = (form.get("key") or "").strip()
            if not key:
                raise AuthenticationFailed("enter a key: the admin key or a key with a role")
            try:
                principal = state.keys.authenticate(key)
            except KeelError:
                raise AuthenticationFailed(
                    "that key is unknown or revoked; use the admin key (`keel admin-key "
                    "reset` prints a new one) or a role key (`keel keys create --team TEAM "
                    "--role viewer`)") from None
            role = held_role(principal)
            if role is None or role in NARROW_ROLES:
                raise PermissionDenied(
                    "this key cannot open the console: a gateway key calls models and a "
                    "metrics key only reads /metrics; log in with the admin key or a key with "
                    "the admin, operator, reviewer, auditor or viewer role")
        except KeelError as exc:  # the form again, with what went wrong (a page, not a 4xx:
            return await login_form(request, exc.message)  # a browser logs those as errors
        fingerprint = state.keys.master_fingerprint() if principal.is_admin else None
        cookie = signer.issue(principal.key_id, fingerprint)
        response = RedirectResponse(_safe_next(form.get("next")), 303,
                                    headers=security_headers())
        response.set_cookie(COOKIE, cookie, max_age=int(signer.max_age_s), httponly=True,
                            samesite="strict", secure=request.url.scheme == "https", path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(_view: View) -> Response:
        response = RedirectResponse("/login", 303, headers=security_headers())
        response.delete_cookie(COOKIE, path="/")
        return response

    async def favicon(_request: Request) -> Response:
        icon = files("keel.console") / "static" / "favicon.svg"
        return FileResponse(str(icon), media_type="image/svg+xml",
                            headers={"cache-control": "public, max-age=86400"})

    login_get.required_role = login_post.required_role = "public"  # type: ignore[attr-defined]
    favicon.required_role = "public"  # type: ignore[attr-defined]
    logout_ep = endpoint(console, "viewer", logout, change=True)
    routes: list[BaseRoute] = [
        Route("/login", login_get, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout_ep, methods=["POST"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Mount("/static", app=STATIC, name="static"),
    ]
    for p in pages:
        routes.append(Route(p.path, endpoint(console, p.role, p.handler, change=False,
                                             shown=p.shown), methods=["GET"]))
    for a in actions:
        routes.append(Route(a.path, endpoint(console, a.role, a.handler, change=True),
                            methods=["POST"]))
    return routes, console

