"""Typed errors with stable reason codes.

Every error the desk raises on purpose is a :class:`DeskError`. Its ``code`` is a stable, dotted
identifier (``order.rejected.tick``) that callers, tests and the Deribit-compatible API can match
on; its message is for humans and may change.

    try:
        desk.place(order)
    except InsufficientMargin as exc:
        print(exc.code, exc.details["shortfall"])
"""

from __future__ import annotations

from typing import Any


class DeskError(Exception):
    """Base of every deliberate desk error: a stable ``code`` plus a human message."""

    code: str = "desk.error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details: dict[str, Any] = details

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-friendly dict (code, message, details)."""
        return {"code": self.code, "message": self.message, "details": _jsonable(self.details)}


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in details.items():
        out[key] = value if isinstance(value, (int, float, str, bool, type(None))) else str(value)
    return out


class InvalidInstrument(DeskError):
    """An instrument name or specification is malformed or unknown."""

    code = "instrument.invalid"


class UnknownInstrument(InvalidInstrument):
    """The instrument is well formed but not listed on this venue."""

    code = "instrument.unknown"


class InvalidInput(DeskError):
    """A value given to the desk is out of its domain (NaN, negative size, bad JSON field)."""

    code = "input.invalid"


class OrderRejected(DeskError):
    """An order, cancel or amend was refused; ``code`` says why (``order.rejected.*``)."""

    code = "order.rejected"


class InsufficientMargin(OrderRejected):
    """The order would take available funds below zero; ``details['shortfall']`` in coin."""

    code = "margin.insufficient"


class NotFound(DeskError):
    """A referenced object (order id, run id, account) does not exist."""

    code = "not_found"


class StaleData(DeskError):
    """Market data (index, marks, quotes) is too old or missing to act on."""

    code = "data.stale"


class BadMarketData(DeskError):
    """A market-data message is unusable (crossed book, NaN, outlier) and was dropped."""

    code = "data.bad"


class ConfigError(DeskError):
    """Configuration is invalid; ``details['key']`` names the offending key."""

    code = "config.invalid"


class ConnectorError(DeskError):
    """A venue or chain connector failed (network, auth, rate limit, venue error)."""

    code = "connector.error"


class AuthError(ConnectorError):
    """Credentials are missing or refused."""

    code = "connector.auth"


class RateLimited(ConnectorError):
    """The venue asked us to slow down."""

    code = "connector.rate_limited"


class StoreError(DeskError):
    """The database cannot be opened, read or written."""

    code = "store.error"


class LeaseHeld(StoreError):
    """Another process holds the single-writer lease of a strategy run."""

    code = "store.lease_held"


class StoreCorrupt(StoreError):
    """The database file is damaged, not a database, or belongs to another application."""

    code = "store.corrupt"


class StoreLocked(StoreError):
    """Another process holds the database lock longer than the busy timeout."""

    code = "store.locked"


class StoreFull(StoreError):
    """The disk (or the database's size limit) is full; the write was not committed."""

    code = "store.disk_full"


class StoreReadOnly(StoreError):
    """A write was asked of a store opened read-only."""

    code = "store.read_only"


class SchemaMismatch(StoreError):
    """The database schema is newer than this code (``store.schema_newer``) or needs ``desk db upgrade``."""

    code = "store.schema_newer"


class NotBuilt(DeskError):
    """A part of the desk that is not built yet was asked for."""

    code = "not_built"
