"""Deribit authentication: client_credentials, client_signature, refresh_token, and the HTTP header forms.

HTTP private calls carry ``Authorization: deri-hmac-sha256 id=..,ts=..,sig=..,nonce=..`` (what ccxt sends),
``Authorization: Basic base64(id:secret)`` or ``Authorization: Bearer <access_token>``. Signatures are
``HEX(HMAC-SHA256(secret, ts + "\\n" + nonce + "\\n" + data))`` with ``data`` = ``METHOD\\nURI\\nBODY\\n`` over
HTTP and the client's ``data`` field over ``public/auth``; timestamps older than 60 s are refused and a
``public/auth`` signature is accepted once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.base import Credentials, redact
from connectors.deribit_api.wire import INVALID_CREDENTIALS, RpcError, invalid_param

SIGNATURE_WINDOW_MS = 60_000
TOKEN_TTL_S = 900


@dataclass(frozen=True, slots=True)
class Session:
    """Who a request acts for: the API client and the venue account behind it."""

    client_id: str
    account: str
    scope: str = "connection mainaccount trade:read_write wallet:read account:read"


@dataclass(slots=True)
class _Token:
    session: Session
    expires_ms: int


@dataclass
class Authenticator:
    """Issues and checks credentials for the embedded venue's API; secrets never appear in its repr."""

    clients: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)  # client_id -> (secret, account)
    wall_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000, repr=False)
    _tokens: dict[str, _Token] = field(default_factory=dict, repr=False)
    _refresh: dict[str, Session] = field(default_factory=dict, repr=False)
    _seen: OrderedDict[tuple[str, int, str], None] = field(default_factory=OrderedDict, repr=False)

    def __repr__(self) -> str:
        return f"Authenticator(clients={[redact(c) for c in self.clients]})"

    def add_client(self, credentials: Credentials, account: str = "main") -> None:
        """Let ``credentials`` act for ``account``."""
        self.clients[credentials.key] = (credentials.secret, account)

    # -- public/auth ------------------------------------------------------------------------------
    def auth(self, params: dict[str, Any]) -> tuple[Session, dict[str, Any]]:
        """Answer ``public/auth``: check the grant and issue an access and a refresh token."""
        grant = params.get("grant_type")
        if grant == "client_credentials":
            client_id, secret = str(params.get("client_id", "")), str(params.get("client_secret", ""))
            entry = self.clients.get(client_id)
            if entry is None or not hmac.compare_digest(entry[0], secret):
                raise RpcError(INVALID_CREDENTIALS, "invalid_credentials")
            session = Session(client_id, entry[1])
        elif grant == "client_signature":
            client_id = str(params.get("client_id", ""))
            session = self._check_signature(
                client_id,
                _int_param(params, "timestamp"),
                str(params.get("nonce", "")),
                str(params.get("data", "")),
                str(params.get("signature", "")),
            )
        elif grant == "refresh_token":
            found = self._refresh.pop(str(params.get("refresh_token", "")), None)
            if found is None:
                raise RpcError(INVALID_CREDENTIALS, "invalid_credentials", {"reason": "unknown refresh token"})
            session = found
        else:
            raise invalid_param("grant_type", "expected client_credentials, client_signature or refresh_token")
        return session, self._issue(session)

    def _issue(self, session: Session) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._tokens[access] = _Token(session, self.wall_ms() + TOKEN_TTL_S * 1000)
        self._refresh[refresh] = session
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": TOKEN_TTL_S,
            "scope": session.scope,
            "token_type": "bearer",
            "enabled_features": [],
        }

    def session_of_token(self, token: str) -> Session:
        """The session of a valid access token; 13009 when unknown or expired."""
        found = self._tokens.get(token)
        if found is None or found.expires_ms < self.wall_ms():
            raise RpcError(13009, "unauthorized", {"reason": "invalid or expired access token"})
        return found.session

    # -- HTTP headers -----------------------------------------------------------------------------
    def session_of_header(self, header: str, http_method: str, uri: str, body: str) -> Session:
        """The session an HTTP ``Authorization`` header authenticates; 13009 when missing or wrong."""
        if not header:
            raise RpcError(13009, "unauthorized", {"reason": "private method needs authentication"})
        scheme, _, rest = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return self.session_of_token(rest.strip())
        if scheme == "basic":
            try:
                client_id, _, secret = base64.b64decode(rest.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise RpcError(13009, "unauthorized", {"reason": "malformed Basic header"}) from None
            entry = self.clients.get(client_id)
            if entry is None or not hmac.compare_digest(entry[0], secret):
                raise RpcError(13009, "unauthorized", {"reason": "invalid credentials"})
            return Session(client_id, entry[1])
        if scheme == "deri-hmac-sha256":
            fields = dict(part.split("=", 1) for part in rest.split(",") if "=" in part)
            try:
                ts = int(fields["ts"])
                client_id, nonce, sig = fields["id"], fields["nonce"], fields["sig"]
            except (KeyError, ValueError):
                raise RpcError(13009, "unauthorized", {"reason": "malformed deri-hmac-sha256 header"}) from None
            data = f"{http_method.upper()}\n{uri}\n{body}\n"
            # ccxt uses the millisecond timestamp as nonce, so two identical requests in one millisecond carry the
            # same signature: HTTP signatures are bound to the request and the 60 s window, not single-use.
            return self._check_signature(client_id, ts, nonce, data, sig, single_use=False)
        raise RpcError(13009, "unauthorized", {"reason": f"unsupported authorization scheme {scheme!r}"})

    # -- signatures -------------------------------------------------------------------------------
    def _check_signature(
        self, client_id: str, ts: int, nonce: str, data: str, sig: str, *, single_use: bool = True
    ) -> Session:
        entry = self.clients.get(client_id)
        if entry is None:
            raise RpcError(13009, "unauthorized", {"reason": "unknown client_id"})
        if abs(self.wall_ms() - ts) > SIGNATURE_WINDOW_MS:
            raise RpcError(13009, "unauthorized", {"reason": "timestamp outside the 60 s window"})
        expected = sign(entry[0], ts, nonce, data)
        if not hmac.compare_digest(expected, sig.lower()):
            raise RpcError(13009, "unauthorized", {"reason": "bad signature"})
        if not single_use:
            return Session(client_id, entry[1])
        key = (client_id, ts, nonce + "|" + data)
        if key in self._seen:
            raise RpcError(13009, "unauthorized", {"reason": "signature already used"})
        self._seen[key] = None
        while len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        return Session(client_id, entry[1])


def sign(secret: str, ts: int, nonce: str, data: str) -> str:
    """Deribit's signature: hex HMAC-SHA256 of ``ts\\nnonce\\ndata`` keyed with the client secret."""
    return hmac.new(secret.encode(), f"{ts}\n{nonce}\n{data}".encode(), hashlib.sha256).hexdigest()


def generate_credentials() -> Credentials:
    """A fresh random client id and secret for ``desk serve``."""
    return Credentials(secrets.token_hex(4), secrets.token_urlsafe(24))


def _int_param(params: dict[str, Any], name: str) -> int:
    try:
        return int(params[name])
    except (KeyError, TypeError, ValueError):
        raise invalid_param(name, "must be an integer") from None
