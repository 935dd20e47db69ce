"""Console sign-in: an HMAC-signed session cookie and a CSRF token per session.

A person signs in with an API key (the same clients and scopes as the API). The key is checked
once and never stored: the cookie carries only the client id, a random CSRF token and the
expiry, signed with HMAC-SHA256 under a key derived from the hub's ``secret_key``. Every
request re-reads the client, so a revoked client or a changed scope takes effect at once.

Forms carry the session's CSRF token (``csrf_token`` field, or the ``X-CSRF-Token`` header for
htmx requests); the sign-in form, before there is a session, uses a signed double-submit
cookie instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from retailsync.api.scopes import Principal, Scope
from retailsync.console.errors import CsrfRejected, InvalidSession

SESSION_COOKIE = "rs_console"
LOGIN_CSRF_COOKIE = "rs_console_login"
FLASH_COOKIE = "rs_console_flash"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
DEFAULT_SESSION_SECONDS = 8 * 3600
_KEY_CONTEXT = b"retailsync/console-session/v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs small JSON values for cookies; a value signed for one purpose fails for another."""

    def __init__(self, secret_key: SecretStr | str) -> None:
        raw = secret_key.get_secret_value() if isinstance(secret_key, SecretStr) else secret_key
        self._key = hmac.new(raw.encode(), _KEY_CONTEXT, hashlib.sha256).digest()

    def _mac(self, purpose: str, body: str) -> str:
        message = f"{purpose}\n{body}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def sign(self, purpose: str, value: dict[str, Any]) -> str:
        body = _b64(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(purpose, body)}"

    def unsign(self, purpose: str, token: str | None) -> dict[str, Any]:
        """The value of a token this signer made for ``purpose``; raises InvalidSession."""
        if not token:
            raise InvalidSession("no session cookie")
        body, _, mac = token.partition(".")
        if not body or not mac or not hmac.compare_digest(mac, self._mac(purpose, body)):
            raise InvalidSession("bad signature")
        try:
            value = json.loads(_unb64(body))
        except ValueError:
            raise InvalidSession("unreadable cookie") from None
        if not isinstance(value, dict):
            raise InvalidSession("unreadable cookie")
        return value


@dataclass(frozen=True)
class ConsoleSession:
    """What the session cookie holds."""

    client_id: str
    csrf_token: str
    expires_at: float

    @classmethod
    def new(
        cls,
        client_id: str,
        *,
        lifetime: float = DEFAULT_SESSION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> ConsoleSession:
        return cls(
            client_id=client_id,
            csrf_token=secrets.token_urlsafe(24),
            expires_at=clock() + lifetime,
        )

    def encode(self, signer: Signer) -> str:
        return signer.sign(
            "session", {"cid": self.client_id, "csrf": self.csrf_token, "exp": self.expires_at}
        )

    @classmethod
    def decode(
        cls, signer: Signer, token: str | None, *, clock: Callable[[], float] = time.time
    ) -> ConsoleSession:
        value = signer.unsign("session", token)
        try:
            session = cls(
                client_id=str(value["cid"]),
                csrf_token=str(value["csrf"]),
                expires_at=float(value["exp"]),
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidSession("unreadable cookie") from None
        if session.expires_at <= clock():
            raise InvalidSession("expired")
        return session


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in person: their client (name, scopes) and their session."""

    principal: Principal
    session: ConsoleSession

    @property
    def name(self) -> str:
        return self.principal.name

    @property
    def actor(self) -> str:
        """How audit records name console actions: ``console:<client id>``."""
        return self.principal.actor

    def can(self, scope: Scope | str) -> bool:
        return Scope(scope) in self.principal.scopes

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token


def check_csrf(expected: str, submitted: str | None) -> None:
    """Raise :class:`CsrfRejected` unless ``submitted`` is the session's token."""
    if not submitted or not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise CsrfRejected()


def new_login_token(signer: Signer) -> tuple[str, str]:
    """``(form token, cookie value)`` for the sign-in form's double-submit check."""
    token = secrets.token_urlsafe(24)
    return token, signer.sign("login", {"t": token})


def check_login_token(signer: Signer, cookie: str | None, submitted: str | None) -> None:
    try:
        value = signer.unsign("login", cookie)
    except InvalidSession:
        raise CsrfRejected() from None
    check_csrf(str(value.get("t", "")), submitted)
