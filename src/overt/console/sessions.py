"""Console sessions and CSRF tokens: signed values, no server-side session table.

A session cookie is ``<base64url payload>.<base64url tag>`` where the payload is the JSON
``{"v": 1, "sid": <16 random bytes>, "name": <moderator>, "exp": <ms>}`` and the tag is
HMAC-SHA256 under the console's session key. It is set ``HttpOnly``, ``SameSite=Strict``,
``Path=/console`` (and ``Secure`` over HTTPS). The moderator's record is read again on every
request, so a disabled moderator or a changed role takes effect at once; :meth:`Sessions.revoke`
(logout) remembers a session id until it would have expired.

Every POST form carries a CSRF token, ``HMAC(key, "csrf" ‖ sid)`` (synchronizer token bound to
the session; ``SameSite=Strict`` is the second line). The login form, which has no session yet,
is bound the same way to a random pre-login cookie.

This module knows HMAC and JSON; no HTTP framework, no storage. Time and randomness come in.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Final

from overt.crypto import Rng, constant_time_eq, hmac_sha256

SESSION_COOKIE: Final = "overt_console"
LOGIN_COOKIE: Final = "overt_console_login"
SESSION_KEY_LEN: Final = 32
SESSION_ID_LEN: Final = 16
#: How long a console session lasts (a working day).
SESSION_TTL_MS: Final = 8 * 3600 * 1000
#: Longest cookie value accepted (a session cookie is about 150 characters).
MAX_COOKIE_CHARS: Final = 512
#: Logged-out sessions remembered per node (until they would have expired).
MAX_REVOKED_SESSIONS: Final = 10_000
_VERSION: Final = 1


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Session:
    sid: bytes
    name: str
    expires_ms: int


class Sessions:
    """Issues and checks session cookies and CSRF tokens under one key."""

    def __init__(self, key: bytes, rng: Rng, ttl_ms: int = SESSION_TTL_MS) -> None:
        if len(key) != SESSION_KEY_LEN:
            raise ValueError(f"a console session key is {SESSION_KEY_LEN} bytes")
        self._key = key
        self._rng = rng
        self._ttl = ttl_ms
        self._revoked: dict[bytes, int] = {}

    def _tag(self, label: bytes, data: bytes) -> bytes:
        return hmac_sha256(self._key, label + b"\x00" + data)

    def issue(self, name: str, now_ms: int) -> tuple[Session, str]:
        """A new session of moderator ``name`` and its cookie value."""
        session = Session(self._rng.random_bytes(SESSION_ID_LEN), name, now_ms + self._ttl)
        payload = json.dumps(
            {"v": _VERSION, "sid": _b64e(session.sid), "name": name, "exp": session.expires_ms},
            separators=(",", ":"), sort_keys=True,
        ).encode()  # fmt: skip
        return session, f"{_b64e(payload)}.{_b64e(self._tag(b'session', payload))}"

    def check(self, cookie: str | None, now_ms: int) -> Session | None:
        """The session a cookie value names, or ``None`` if it is missing, altered, expired or
        logged out."""
        if not cookie or len(cookie) > MAX_COOKIE_CHARS or cookie.count(".") != 1:
            return None
        payload_text, tag_text = cookie.split(".")
        payload, tag = _b64d(payload_text), _b64d(tag_text)
        if payload is None or tag is None:
            return None
        if not constant_time_eq(tag, self._tag(b"session", payload)):
            return None
        try:
            value = json.loads(payload)
            session = Session(_b64d(value["sid"]) or b"", str(value["name"]), int(value["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        if value.get("v") != _VERSION or len(session.sid) != SESSION_ID_LEN:
            return None
        if now_ms >= session.expires_ms or session.sid in self._revoked:
            return None
        return session

    def revoke(self, session: Session, now_ms: int) -> None:
        """Log ``session`` out: refused from now on (by this node)."""
        self._revoked = {s: e for s, e in self._revoked.items() if e > now_ms}
        if len(self._revoked) >= MAX_REVOKED_SESSIONS:
            oldest = min(self._revoked, key=self._revoked.__getitem__)
            del self._revoked[oldest]
        self._revoked[session.sid] = session.expires_ms

    def csrf_token(self, session: Session) -> str:
        return _b64e(self._tag(b"csrf", session.sid))

    def check_csrf(self, session: Session, token: str | None) -> bool:
        raw = _b64d(token) if token else None
        return raw is not None and constant_time_eq(raw, self._tag(b"csrf", session.sid))

    # ------------------------------------------------------------------ the login form

    def login_nonce(self) -> str:
        """A fresh pre-login cookie value."""
        return _b64e(self._rng.random_bytes(SESSION_ID_LEN))

    def login_token(self, nonce: str) -> str:
        return _b64e(self._tag(b"login", nonce.encode("ascii", "replace")))

    def check_login_token(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token or len(nonce) > MAX_COOKIE_CHARS:
            return False
        raw = _b64d(token)
        expected = self._tag(b"login", nonce.encode("ascii", "replace"))
        return raw is not None and constant_time_eq(raw, expected)
