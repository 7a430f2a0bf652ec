"""Roles on the admin API: who may call which ``/api`` route.

The roles and what each grants are in :mod:`keel.keys.roles` (the console reads the same
table). ``metrics`` may only read ``GET /metrics``, not even the ``ANY_KEY`` routes.

Every ``/api`` route is declared with :func:`api_route` and the role it needs, so the need is
written once, next to the path, and enforced before the handler runs: a request without a
key is a 401, a key whose role does not grant the need is a 403 that names both.
``ANY_KEY`` marks the few routes any valid key may call (an application posting feedback);
``PUBLIC`` the one that takes no key (the CORS preflight of ``/api/feedback``).

A key with a role is for this API only: the gateway refuses it
(``KeyRing.authenticate_gateway``), and a gateway key (no role) is refused here except on
``ANY_KEY`` routes. The master key is an admin on both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel.errors import AuthenticationFailed, KeelError, PermissionDenied
from keel.keys.roles import GRANTS, NARROW_ROLES, held_role, holds
from keel.server.http import api_key, state_of
from keel.types import ROLES, Principal

__all__ = ["ANY_KEY", "GRANTS", "NARROW_ROLES", "PUBLIC", "ROLES", "actor_of", "api_route",
           "authorize", "claimed_actor", "grants", "principal_of", "public_route",
           "required_role"]

ANY_KEY = "key"  # a route any valid key may call (gateway keys included)
PUBLIC = "public"  # a route that takes no key (a CORS preflight); see public_route

Handler = Callable[[Request], Awaitable[Response]]


def grants(principal: Principal, need: str) -> bool:
    """Whether ``principal`` may call a route that needs ``need``."""
    if need == ANY_KEY:
        return held_role(principal) not in NARROW_ROLES
    return holds(principal, need)


def _key_hint(need: str) -> str:
    """Which keys an ``/api`` route takes and where each comes from: the admin key (and how
    to replace a lost one), a role key, and on ``ANY_KEY`` routes a gateway key."""
    role = need if need in GRANTS else "viewer"
    gateway = ("; this endpoint also takes a gateway key (`keel keys create --team TEAM`)"
               if need == ANY_KEY else "")
    return (f"use the admin key (lost it? `keel admin-key reset` prints a new one; with "
            f"KEEL_MASTER_KEY set, that value is the admin key) or a key with a role "
            f"(`keel keys create --team TEAM --role {role}`){gateway}")


def authorize(request: Request, need: str, scope: str | None = None) -> Principal:
    """The caller of ``request``, refused unless its role grants ``need``."""
    key = api_key(request.headers)
    try:
        principal = state_of(request).keys.authenticate(key, scope=scope)
    except AuthenticationFailed as exc:
        what = ("no API key: send 'Authorization: Bearer <key>' (or 'x-api-key: <key>')"
                if not key else "invalid API key: it is unknown or revoked")
        raise AuthenticationFailed(f"{what}; {_key_hint(need)}", code=exc.code) from None
    if not grants(principal, need):
        held = "admin" if principal.is_admin else principal.role
        if need == ANY_KEY:  # a narrow role
            raise PermissionDenied(
                f"a key with role '{held}' may only read GET /metrics; use a gateway key or "
                "a key with another role for this endpoint", code="role_required")
        what = f"a key with role '{held}'" if held else "a gateway key (no role)"
        raise PermissionDenied(
            f"this endpoint needs the '{need}' role (or admin); the request used {what}. "
            f"Create one with `keel keys create --team TEAM --role {need}`",
            code="role_required")
    return principal


def actor_of(principal: Principal) -> str:
    """How a caller is named in the audit log: ``admin`` for the master key, else the key."""
    return "admin" if principal.is_admin else f"key:{principal.key_id}"


def claimed_actor(principal: Principal, claimed: str | None) -> str:
    """The audit actor of a change whose body may name who made it (``actor``, ``author``).
    The master key is shared, so it may say whom it acts for; a role key is its own name and
    may not pose as anyone else (the claim is ignored)."""
    return claimed if claimed and principal.is_admin else actor_of(principal)


def api_route(path: str, handler: Handler, methods: list[str], role: str, *,
              scope: str | None = None,
              refuse: Callable[[Request, KeelError], Response] | None = None) -> Route:
    """A ``/api`` route that needs ``role``: authorised before ``handler`` runs, which then
    finds the caller in ``request.state.principal``. ``scope`` lets a scoped key in (the
    feedback key on ``POST /api/feedback``). A refusal is answered by the app's
    ``KeelError`` handler, like any error, unless ``refuse`` renders it (e.g. with CORS
    headers, so a web page can read it)."""
    if role != ANY_KEY and role not in ROLES:
        raise ValueError(f"unknown role {role!r} for {path}")

    async def endpoint(request: Request) -> Response:
        try:
            request.state.principal = authorize(request, role, scope=scope)
        except KeelError as exc:
            if refuse is None:
                raise
            return refuse(request, exc)
        return await handler(request)

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    endpoint.__doc__ = handler.__doc__
    endpoint.required_role = role  # type: ignore[attr-defined]
    return Route(path, endpoint, methods=methods)


def public_route(path: str, handler: Handler, methods: list[str]) -> Route:
    """A ``/api`` route that takes no key at all: only a CORS preflight, which browsers send
    without credentials. Declared, so a walk over the routes can tell it from a forgotten
    :func:`api_route`."""
    handler.required_role = PUBLIC  # type: ignore[attr-defined]
    return Route(path, handler, methods=methods)


def required_role(route: Route) -> str | None:
    """The role ``route`` declared (a role, ``ANY_KEY`` or ``PUBLIC``); None if undeclared."""
    role = getattr(route.endpoint, "required_role", None)
    return role if isinstance(role, str) else None


def principal_of(request: Request) -> Principal:
    """The caller an :func:`api_route` authorised."""
    principal: Principal = request.state.principal
    return principal
