"""Console sessions: who is logged in, in a signed cookie, and the CSRF token of their forms.

A login exchanges a key (a role key or the admin key) for a session cookie: signed with
itsdangerous (HMAC-SHA1 over the payload and a timestamp), ``HttpOnly``,
``SameSite=Strict``, ``Secure`` over HTTPS, ``Path=/``. It holds no secret: only the key's
id (or ``admin`` and a fingerprint of the admin key, so a reset ends those sessions), a
random session id and the login time. Every request looks the key up again, so a revoked
key's sessions end at once, and a session older than ``KEEL_CONSOLE_SESSION_HOURS`` is
refused.

The CSRF token of a session is an HMAC of its id; every form posts it back, and a change is
refused without it (and when the request's ``Origin`` is another site's).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

__all__ = ["COOKIE", "Session", "SessionSigner", "load_secret"]

COOKIE = "keel_session"
SECRET_FILE = "console-secret"


def load_secret(configured: str | None, data_dir: str) -> str:
    """The signing secret: ``KEEL_CONSOLE_SECRET``, else the one kept in the data directory
    (made on first use, readable by its owner only, written whole or not at all)."""
    if configured:
        return configured
    path = Path(data_dir) / SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text().strip()
        if text:
            return text
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    try:
        os.link(tmp, path)  # the first process to get here wins; the others read its value
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str | None  # None: the admin key
    admin_print: str | None  # with key_id None: which admin key logged in
    sid: str  # random, per login


class SessionSigner:
    def __init__(self, secret: str, max_age_s: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="keel-console-session")
        self._csrf_key = hashlib.sha256(f"keel-console-csrf:{secret}".encode()).digest()
        self.max_age_s = max_age_s

    def issue(self, key_id: str | None, admin_print: str | None = None) -> str:
        payload = {"k": key_id, "a": admin_print, "s": secrets.token_urlsafe(16)}
        return self._serializer.dumps(payload)

    def read(self, cookie: str | None) -> Session | None:
        """The session in ``cookie``; None when absent, forged, malformed or expired."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=int(self.max_age_s))
        except (BadSignature, SignatureExpired):
            return None
        if not isinstance(data, dict):
            return None
        key_id, admin_print, sid = data.get("k"), data.get("a"), data.get("s")
        if not isinstance(sid, str) or not (key_id is None or isinstance(key_id, str)):
            return None
        if key_id is None and not isinstance(admin_print, str):
            return None
        return Session(key_id, admin_print if key_id is None else None, sid)

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._csrf_key, session.sid.encode(), "sha256").hexdigest()

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")

