"""Every failure keel reports, with the HTTP status and OpenAI-style body it maps to.

::

    KeelError                          500 api_error
    +-- ConfigError                    (startup only: names the file, key and fix)
    |   +-- ExtraNotInstalled          501 not_implemented extra_not_installed (an optional
    |                                       package a setting or endpoint needs: the extra
    |                                       to install, keel.config.extras)
    +-- InvalidRequest                 400 invalid_request_error
    |   +-- BodyTooLarge               413
    |   +-- RequestTimeout             408 request_timeout (the body arrived too slowly:
    |                                       KEEL_BODY_TIMEOUT_S)
    |   +-- UnknownModel               404 model_not_found
    |   +-- UnsupportedOperation       400 (model cannot serve this endpoint)
    +-- AuthenticationFailed           401 authentication_error
    +-- PermissionDenied               403 permission_error
    +-- NotFound                       404 not_found_error
    +-- RateLimited                    429 rate_limit_error rate_limit_exceeded (keel's own
    |                                       rpm/tpm limits; Retry-After)
    +-- BudgetExceeded                 429 insufficient_quota budget_exceeded (Retry-After
    |                                       when the budget's period resets)
    +-- LimitsUnavailable              503 limits_unavailable (Redis unreachable and a
    |                                       budget is configured to fail closed)
    +-- FeatureStopped                 503 service_unavailable feature_stopped (the
    |                                       feature's kill switch: `keel features stop`)
    +-- TracesUnavailable              503 service_unavailable traces_unavailable (no
    |                                       room left to record the request's trace)
    +-- UpstreamError                  502 upstream_error   (provider failed)
        +-- UpstreamRateLimited        429 rate_limit_error
        +-- UpstreamTimeout            504 upstream_timeout
        +-- UpstreamUnavailable        503 upstream_unavailable (connection refused/reset)
        +-- UpstreamRejected           4xx invalid_request_error (upstream says the
                                            request itself is bad: the client's fault; the
                                            provider's own 4xx status, 400 when unusual)

One handler in ``keel.server`` turns any of these into a response; the trace records
``error_type``. Subclasses set ``status``, ``type`` and ``code`` as class attributes.

An ``UpstreamError`` may carry what the provider itself said (``ProviderFault``: its
error ``type``, ``code`` and ``param``, already mapped to OpenAI's vocabulary). Clients are
sent those, so they can branch on ``context_length_exceeded`` as they would talking to the
provider directly; ``error_type`` (stored on traces, a metrics label) stays keel's own
classification, so provider strings never become label values.
A message quotes an offending value through :func:`excerpt` (a short cut, never the whole
input), and a rendered message is cut at ``MAX_MESSAGE_CHARS`` whatever it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXCERPT_CHARS = 40
MAX_MESSAGE_CHARS = 1000


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short rendering of an offending value, for an error message: a string as its repr,
    cut to ``limit`` characters with its length said; a number as written; an array or an
    object by its kind and size (never its contents, which may be megabytes or nest deep)."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int | float):
        try:
            text = repr(value)
        except ValueError:  # an int past Python's digit limit for str()
            return "a very large integer"
        return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} digits)"
    if isinstance(value, dict):
        return f"an object with {len(value)} key{'' if len(value) == 1 else 's'}"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} item{'' if len(value) == 1 else 's'}"
    return f"a {type(value).__name__}"


class KeelError(Exception):
    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    @property
    def error_type(self) -> str:
        """The short name stored on traces and used as a metrics label."""
        return self.code or self.type

    @property
    def public_message(self) -> str:
        """The message as sent to a client: cut at ``MAX_MESSAGE_CHARS``."""
        m = self.message
        return m if len(m) <= MAX_MESSAGE_CHARS else m[:MAX_MESSAGE_CHARS] + "... (cut)"

    @property
    def public_type(self) -> str:
        """The error ``type`` a client is sent."""
        return self.type

    @property
    def public_code(self) -> str | None:
        """The error ``code`` a client is sent."""
        return self.code

    def to_openai(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.public_message,
                "type": self.public_type,
                "param": self.param,
                "code": self.public_code,
            }
        }


class ConfigError(KeelError):
    """The configuration cannot be used; keel refuses to start."""

    type = "config_error"


class ExtraNotInstalled(ConfigError):
    """An optional integration is asked for (a setting, or a request to an endpoint that
    needs it) but its package is not installed; the message names the extra to install.
    At startup keel refuses to start; a request gets 501."""

    status = 501
    type = "not_implemented"
    code = "extra_not_installed"


class InvalidRequest(KeelError):
    status = 400
    type = "invalid_request_error"


class BodyTooLarge(InvalidRequest):
    status = 413
    code = "body_too_large"


class RequestTimeout(InvalidRequest):
    """The client did not send its request (body) in time."""

    status = 408
    code = "request_timeout"


class UnknownModel(InvalidRequest):
    status = 404
    code = "model_not_found"


class UnsupportedOperation(InvalidRequest):
    code = "unsupported_operation"


class AuthenticationFailed(KeelError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(KeelError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(KeelError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class RateLimited(KeelError):
    """A keel rate limit (rpm or tpm) refused the request."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(KeelError):
    """A budget cannot cover the request's worst-case cost."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class LimitsUnavailable(KeelError):
    """Budgets cannot be checked (the shared counter store is unreachable)."""

    status = 503
    type = "api_error"
    code = "limits_unavailable"


class FeatureStopped(KeelError):
    """The request's feature is stopped (its kill switch) until it is started again."""

    status = 503
    type = "service_unavailable"
    code = "feature_stopped"


class TracesUnavailable(KeelError):
    """keel cannot keep a trace of this request anywhere (the store, the journal on disk and
    the in-memory hold all refuse), so it refuses the request rather than answer untraced."""

    status = 503
    type = "service_unavailable"
    code = "traces_unavailable"


@dataclass(frozen=True, slots=True)
class ProviderFault:
    """What a provider said was wrong, in OpenAI's vocabulary (each part may be missing):
    ``type`` (``invalid_request_error``), ``code`` (``context_length_exceeded``), ``param``
    (``messages``). Built by the provider adapters from the upstream's error body, each
    value a short printable string with secrets redacted."""

    type: str | None = None
    code: str | None = None
    param: str | None = None


class UpstreamError(KeelError):
    status = 502
    type = "api_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        fault: ProviderFault | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, status=status, headers=headers)
        self.fault = fault
        if fault is not None and fault.param is not None and param is None:
            self.param = fault.param

    @property
    def public_type(self) -> str:
        fault = self.fault
        return fault.type if fault is not None and fault.type else self.type

    @property
    def public_code(self) -> str | None:
        fault = self.fault
        return fault.code if fault is not None and fault.code else self.code


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "upstream_rate_limited"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamUnavailable(UpstreamError):
    status = 503
    code = "upstream_unavailable"


class UpstreamRejected(UpstreamError):
    status = 400
    type = "invalid_request_error"
    code = "upstream_rejected"
