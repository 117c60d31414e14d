"""Who may open the dashboard: loopback by default; any other bind address demands a token on every request."""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets

TOKEN_ENV = "DESK_DASH_TOKEN"
TOKEN_COOKIE = "desk_token"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token: str | None = None) -> tuple[str | None, bool]:
    """The token to enforce for ``host`` and whether it was generated (print it once, then)."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if token:
        return token, False
    if is_loopback(host):
        return None, False
    return secrets.token_urlsafe(24), True


def token_ok(expected: str | None, presented: str | None) -> bool:
    """Constant-time token check; no token configured means open (loopback only)."""
    if expected is None:
        return True
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())
