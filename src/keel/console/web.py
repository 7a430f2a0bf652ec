"""The console's frame: pages and actions declared with the role they need, the session and
CSRF checks around them, the shared filter, rendering, and the headers every answer has.

A page is a function of a :class:`View` declared with :func:`page` (``GET``) or
:func:`action` (``POST``, a change: CSRF-checked, then usually a redirect back). Each
declaration names its role once, as ``/api`` routes do (``keel.server.auth.api_route``);
the navigation shows the pages the caller's role may open and whose capability is present
(``shown``), so adding a page is one function in a module listed in ``keel.console.pages``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from keel.console import formats
from keel.console.filters import RANGES, Filters
from keel.console.integrity import Integrity
from keel.console.session import COOKIE, Session, SessionSigner
from keel.console.state import ConsoleState
from keel.errors import InvalidRequest, KeelError, NotFound
from keel.keys.roles import holds
from keel.keys.service import ADMIN
from keel.types import Principal

__all__ = ["CSP", "Action", "Console", "Page", "View", "action", "page", "security_headers"]

log = logging.getLogger("keel.console")

# No inline script or style, nothing from elsewhere, no framing, forms post here only.
CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
FORM_LIMIT = 64 * 1024


def security_headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
               "referrer-policy": "same-origin", "x-frame-options": "DENY",
               "cache-control": "no-store"}
    headers.update(extra or {})
    return headers


Handler = Callable[["View"], Awaitable[Response]]
Shown = Callable[[ConsoleState], bool]


@dataclass(frozen=True, slots=True)
class Page:
    path: str
    title: str
    role: str  # the role it needs (keel.keys.roles)
    handler: Handler
    nav: bool = True  # listed in the navigation (a trace's own page is not)
    shown: Shown | None = None  # whether the capability it shows exists in this process


@dataclass(frozen=True, slots=True)
class Action:
    path: str
    role: str
    handler: Handler


def page(registry: list[Page], path: str, title: str, role: str, *, nav: bool = True,
         shown: Shown | None = None) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        registry.append(Page(path, title, role, handler, nav, shown))
        return handler

    return register


def action(registry: list[Action], path: str, role: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        registry.append(Action(path, role, handler))
        return handler

    return register


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("keel.console", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(formats.FILTERS)
    env.globals.update(formats.GLOBALS)
    return env


@dataclass(slots=True)
class Console:
    """The console's per-process parts: its pages, the session signer, the templates."""

    state: ConsoleState
    signer: SessionSigner
    pages: list[Page]
    actions: list[Action]
    env: jinja2.Environment = field(default_factory=_environment)
    integrity: Integrity = field(init=False)

    def __post_init__(self) -> None:
        self.integrity = Integrity(self.state.audit)

    async def aclose(self) -> None:
        await self.integrity.aclose()

    def shown(self, p: Page) -> bool:
        return p.shown is None or p.shown(self.state)

    def nav(self, principal: Principal) -> list[Page]:
        return [p for p in self.pages if p.nav and self.shown(p) and holds(principal, p.role)]

    def render(self, request: Request, template: str, status: int = 200, *,
               view: View | None = None, headers: Mapping[str, str] | None = None,
               **context: Any) -> HTMLResponse:
        note = (request.query_params.get("note") or "")[:200] or None
        base: dict[str, Any] = {"view": view, "path": request.url.path, "ranges": list(RANGES),
                                "request_note": note}
        body = self.env.get_template(template).render(**base, **context)
        return HTMLResponse(body, status_code=status, headers=security_headers(headers))


@dataclass(slots=True)
class View:
    """One request to a console page: who asks, with which filter, and how to answer."""

    request: Request
    console: Console
    principal: Principal
    session: Session
    filters: Filters
    form: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> ConsoleState:
        return self.console.state

    @property
    def csrf(self) -> str:
        return self.console.signer.csrf_token(self.session)

    @property
    def role(self) -> str:
        return "admin" if self.principal.is_admin else str(self.principal.role)

    @property
    def who(self) -> str:
        """How the caller is named on the page and in the audit log."""
        return "admin" if self.principal.is_admin else f"key:{self.principal.key_id}"

    @property
    def team_scope(self) -> str | None:
        """The one team this caller may see; None: every team."""
        return visible_team(self.principal)

    def may(self, role: str) -> bool:
        return holds(self.principal, role)

    @property
    def nav(self) -> list[Page]:
        return self.console.nav(self.principal)

    def link(self, path: str, **changes: str | None) -> str:
        """``path`` with this view's filter (and ``changes``) in its query."""
        return path + self.filters.query(**changes)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return self.console.render(self.request, template, status, view=self, **context)

    def back(self, path: str, note: str | None = None) -> Response:
        """After a change: see the page it was made on (303), with a note to show."""
        target = path + (("&" if "?" in path else "?") + "note=" + quote(note) if note else "")
        return RedirectResponse(target, status_code=303, headers=security_headers())


def choice_param(view: View, name: str, choices: tuple[str, ...]) -> str:
    """Query parameter ``name``: one of ``choices`` (the first when absent), else a 400."""
    raw = (view.request.query_params.get(name) or choices[0]).strip()
    if raw not in choices:
        raise InvalidRequest(f"'{name}' is {' or '.join(choices)}", param=name)
    return raw


def cursor_param(view: View) -> str | None:
    """The ``cursor`` of a keyset-paged list: an id the previous page's link carried."""
    raw = (view.request.query_params.get("cursor") or "").strip()
    if not raw:
        return None
    if not (len(raw) <= 32 and raw.isascii() and raw.replace("_", "").isalnum()):
        raise InvalidRequest("'cursor' is the value the previous page's link carried",
                             param="cursor")
    return raw


def visible_team(principal: Principal) -> str | None:
    """The one team ``principal`` may see; None: every team (``Principal.visible_team``)."""
    return principal.visible_team()


def same_origin(request: Request) -> bool:
    """A change must come from the console's own pages: an ``Origin`` (or, without one, a
    ``Referer``) naming another site is refused. Browsers send one of them on every POST."""
    sent = request.headers.get("origin") or request.headers.get("referer")
    if not sent or sent == "null":
        return sent is None
    parts = urlsplit(sent)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form (the console's forms post nothing else), bounded in size."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/x-www-form-urlencoded", ""):
        raise InvalidRequest(f"a console form is sent as application/x-www-form-urlencoded, "
                             f"not {ctype[:64]}")
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > FORM_LIMIT:
            raise InvalidRequest(f"the form is over {FORM_LIMIT // 1024} KiB; send less",
                                 status=413)
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode()
        return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                              max_num_fields=200))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"the form could not be read: {exc}") from None


def login_redirect(request: Request, reason: str | None = None) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = "/login?next=" + quote(target, safe="")
    if reason:
        location += "&reason=" + quote(reason)
    response = RedirectResponse(location, status_code=303, headers=security_headers())
    response.delete_cookie(COOKIE, path="/")
    return response


def principal_for(console: Console, session: Session) -> Principal | None:
    """Who a session speaks for now: None when its key was revoked (or the admin key
    reset)."""
    keys = console.state.keys
    if session.key_id is None:
        current = keys.master_fingerprint()
        if current is None or current != session.admin_print:
            return None
        return ADMIN
    record = keys.record(session.key_id)
    return record.principal if record is not None and record.role is not None else None


def error_page(console: Console, request: Request, exc: KeelError,
               view: View | None = None) -> Response:
    status = exc.status if 400 <= exc.status < 600 else 500
    return console.render(request, "error.html", status, view=view, status_code=status,
                          message=exc.message, param=exc.param)


def endpoint(console: Console, role: str, handler: Handler, *, change: bool,
             shown: Shown | None = None) -> Any:
    """The route endpoint of a page or action: session, role and (for changes) origin and
    CSRF checks, the filter, then ``handler``; keel's errors become an error page."""

    async def run(request: Request) -> Response:
        if shown is not None and not shown(console.state):
            return error_page(console, request, NotFound(
                f"no page {request.url.path}: what it shows is not running in this keel"))
        session = console.signer.read(request.cookies.get(COOKIE))
        if session is None:
            return login_redirect(request)
        principal = principal_for(console, session)
        if principal is None:
            return login_redirect(request, "ended")
        view: View | None = None
        try:
            form: dict[str, str] = {}
            if change:
                if not same_origin(request):
                    raise KeelError("this change did not come from the console's own page "
                                    "(its Origin is another site's)", status=403,
                                    code="cross_origin")
                form = await read_form(request)
                if not console.signer.csrf_ok(session, form.get("csrf")):
                    raise KeelError("this form's CSRF token is missing or stale; reload the "
                                    "page and try again", status=403, code="csrf")
            view = View(request, console, principal, session, Filters(), form)
            query = request.query_params
            filters = Filters.read(query if not change else {**query, **_filter_fields(form)})
            scope = visible_team(principal)
            if scope is not None:
                if filters.team not in (None, scope):
                    raise NotFound(f"no team '{filters.team}' here: this key sees team "
                                   f"'{scope}' only")
                filters = filters.with_team(scope)
            view = View(request, console, principal, session, filters, form)
            if not holds(principal, role):
                raise KeelError(f"this page needs the '{role}' role (or admin); you are logged "
                                f"in as {view.role}", status=403, code="role_required")
            return await handler(view)
        except KeelError as exc:
            return error_page(console, request, exc, view)
        except Exception as exc:  # a bug: an error page, logged, and keel keeps serving
            log.exception("console page %s failed", request.url.path)
            return error_page(console, request, KeelError(
                f"internal error in keel: {type(exc).__name__}", code="internal_error"))

    run.required_role = role  # type: ignore[attr-defined]
    run.__name__ = getattr(handler, "__name__", "page")
    return run


def _filter_fields(form: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in form.items() if k in ("feature", "team", "model", "range")}

