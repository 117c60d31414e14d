"""What every connector shares: credentials that never leak, reconnect with backoff, counters, error mapping.

Connectors implement :class:`app.ports.Venue` (venues) or :class:`app.ports.PriceSource` (index sources).
:class:`ConnectorVenue` is the wider protocol the ccxt venue and the embedded venue both offer (balances of
every currency, index prices, connection health), so a front or ``desk margin check`` can ask any of them.

    creds = Credentials.from_env("DESK_DERIBIT")          # DESK_DERIBIT_KEY / DESK_DERIBIT_SECRET, or keyring
    backoff = Backoff(initial_s=0.1, max_s=5.0, seed=1)
    await run_with_reconnect(stream_once, backoff=backoff, stats=stats, on_reconnect=resync)
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from app.errors import AuthError, ConfigError, ConnectorError, DeskError
from app.ports import AccountReport, Venue

log = logging.getLogger(__name__)

CHANNELS = ("ticker", "book", "trades", "index")
"""Market-data channels a venue can stream onto the bus (``index`` takes index names such as ``btc_usd``)."""


# --------------------------------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key and secret; ``repr``/``str`` never show the secret (and only a hint of the key)."""

    key: str
    secret: str = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)  # OKX's API passphrase

    def __repr__(self) -> str:
        extra = ", passphrase='***'" if self.passphrase else ""
        return f"Credentials(key={redact(self.key)!r}, secret='***'{extra})"

    __str__ = __repr__

    @staticmethod
    def from_env(prefix: str, *, keyring_service: str | None = "deltadesk") -> Credentials | None:
        """Read ``{prefix}_KEY``/``{prefix}_SECRET`` (and ``{prefix}_PASSPHRASE``) from the environment, else the
        OS keyring; None if absent."""
        key = os.environ.get(f"{prefix}_KEY")
        secret = os.environ.get(f"{prefix}_SECRET")
        if key and secret:
            return Credentials(key, secret, os.environ.get(f"{prefix}_PASSPHRASE") or None)
        if key or secret:
            raise ConfigError(f"{prefix}_KEY and {prefix}_SECRET must be set together", key=prefix)
        if keyring_service is None:
            return None
        return _from_keyring(keyring_service, prefix)


def _from_keyring(service: str, prefix: str) -> Credentials | None:
    try:
        import keyring  # optional: only used when installed
    except ImportError:
        return None
    try:
        key = keyring.get_password(service, f"{prefix}_KEY")
        secret = keyring.get_password(service, f"{prefix}_SECRET")
        passphrase = keyring.get_password(service, f"{prefix}_PASSPHRASE")
    except Exception as exc:  # a keyring without backend raises its own error types
        log.debug("keyring unavailable: %s", type(exc).__name__)
        return None
    return Credentials(key, secret, passphrase or None) if key and secret else None


def redact(text: str | None) -> str:
    """Show only the first 3 characters of a key (``abc…``); never use it on secrets (show nothing)."""
    if not text:
        return ""
    return text[:3] + "…" if len(text) > 3 else "…"


# --------------------------------------------------------------------------------------------------
# Reconnect with backoff
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with full jitter: delay n is uniform in [initial, min(max, initial * factor**n)] s."""

    initial_s: float = 0.25
    max_s: float = 30.0
    factor: float = 2.0
    seed: int | None = None
    attempts: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s or self.factor < 1:
            raise ConfigError("backoff needs 0 < initial_s <= max_s and factor >= 1", key="backoff")
        self._rng = random.Random(self.seed)

    def next_delay(self) -> float:
        """The next delay in seconds (grows with each call until :meth:`reset`)."""
        cap = min(self.max_s, self.initial_s * self.factor**self.attempts)
        self.attempts += 1
        return self._rng.uniform(self.initial_s, cap)

    def reset(self) -> None:
        """Start again from ``initial_s`` (after a healthy connection)."""
        self.attempts = 0


@dataclass(slots=True)
class ConnectorStats:
    """Health counters of a connector: what a front shows and tests assert on."""

    disconnects: int = 0
    reconnects: int = 0
    resyncs: int = 0
    gaps: int = 0  # sequence gaps detected in book deltas
    dropped: int = 0  # unusable messages dropped (crossed, NaN)
    errors: int = 0
    messages: int = 0
    last_error: str = ""

    def as_dict(self) -> dict[str, int | str]:
        """The counters as a plain dict."""
        return {
            "disconnects": self.disconnects,
            "reconnects": self.reconnects,
            "resyncs": self.resyncs,
            "gaps": self.gaps,
            "dropped": self.dropped,
            "errors": self.errors,
            "messages": self.messages,
            "last_error": self.last_error,
        }


class Disconnected(ConnectorError):
    """A stream's connection dropped; the reconnect loop retries it."""

    code = "connector.disconnected"


async def run_with_reconnect(
    connect_and_stream: Callable[[], Awaitable[None]],
    *,
    backoff: Backoff,
    stats: ConnectorStats,
    is_transient: Callable[[BaseException], bool],
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
    healthy_after: Callable[[], bool] | None = None,
    max_attempts: int | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run ``connect_and_stream`` until it returns; on a transient error count a disconnect, wait, resync, retry.

    ``is_transient`` says which exceptions are connection losses (others propagate). ``on_reconnect`` runs before
    each retry (resync books, re-read open orders). ``healthy_after`` (checked after a failure) resets the backoff
    when the stream had been working. ``max_attempts`` consecutive failures raise :class:`ConnectorError`.
    """
    failures = 0
    while True:
        try:
            await connect_and_stream()
            return
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if not is_transient(exc):
                raise
            stats.disconnects += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"[:200]
            if healthy_after is not None and healthy_after():
                backoff.reset()
                failures = 0
            failures += 1
            if max_attempts is not None and failures > max_attempts:
                raise ConnectorError(
                    f"gave up after {max_attempts} reconnect attempts: {stats.last_error}", code="connector.gave_up"
                ) from exc
            delay = backoff.next_delay()
            log.warning("stream lost (%s); reconnecting in %.2fs", stats.last_error, delay)
            await sleep(delay)
            stats.reconnects += 1
            if on_reconnect is not None:
                await on_reconnect()
                stats.resyncs += 1


# --------------------------------------------------------------------------------------------------
# Error mapping
# --------------------------------------------------------------------------------------------------

ErrorRule = tuple[type[BaseException], Callable[[BaseException], DeskError]]


def map_error(exc: BaseException, rules: Sequence[ErrorRule], *, default_code: str = "connector.error") -> DeskError:
    """The first rule whose exception type matches ``exc`` builds the desk error; else a ConnectorError.

    Rules are tried in order, so list subclasses before their bases. A DeskError passes through unchanged.
    """
    if isinstance(exc, DeskError):
        return exc
    for exc_type, build in rules:
        if isinstance(exc, exc_type):
            return build(exc)
    return ConnectorError(f"{type(exc).__name__}: {exc}", code=default_code)


def require(credentials: Credentials | None, what: str) -> Credentials:
    """The credentials, or an AuthError saying ``what`` needs them."""
    if credentials is None:
        raise AuthError(f"{what} needs API credentials (environment or keyring)", code="connector.auth.missing")
    return credentials


# --------------------------------------------------------------------------------------------------
# The wider venue protocol
# --------------------------------------------------------------------------------------------------


@runtime_checkable
class ConnectorVenue(Venue, Protocol):
    """A :class:`app.ports.Venue` that also reports balances of every currency, index prices and its health."""

    stats: ConnectorStats

    async def balances(self) -> Sequence[AccountReport]:
        """Balances and the venue's margin figures of every currency the account holds."""
        ...

    async def index_price(self, index: str) -> float:
        """The venue's index price of ``index`` (``btc_usd``) in USD."""
        ...
