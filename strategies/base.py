"""The Strategy protocol: events and a read-only view of the desk in, intents with reasons out.

A strategy never calls a venue or the store. It returns :class:`Intent` objects (place, cancel, amend),
each with a human reason; the runner writes them to the outbox, sends them, and feeds the results back as
events (``OrderUpdate``, ``FillEvent``). Orders are named by a strategy-local ``key`` (``"<decision
seq>.<n>"``); the runner turns it into a venue client order id ``"<run>-<key>"``, so the id is a pure
function of (run, decision sequence) and a restarted runner recognises its own orders.

    class Strategy(Protocol):
        name: str
        def on_event(self, event: Event, view: DeskView) -> list[Intent]: ...
        def state(self) -> dict: ...            # JSON-serialisable
        def restore(self, state: dict) -> None: ...
        def take_decisions(self) -> list[dict]: ...   # decisions since the last call, with inputs
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from app.domain import DeskSnapshot, Event, MarginReport, OrderRequest, PositionView, Quote


class IntentKind(str, Enum):
    """What a strategy asks the runner to do."""

    PLACE = "place"
    CANCEL = "cancel"
    AMEND = "amend"


@dataclass(frozen=True, slots=True)
class Intent:
    """One action a strategy wants, with the reason a human reads in the log and the store.

    ``key`` names the order inside the strategy (``"<seq>.<n>"``); the runner derives the client order id
    from it. ``request`` is set for PLACE; ``amount``/``price`` for AMEND (Decimal, instrument units).
    ``venue`` picks one of several configured venues (None: the default venue).
    """

    kind: IntentKind
    key: str
    reason: str
    request: OrderRequest | None = None
    amount: Decimal | None = None
    price: Decimal | None = None
    venue: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @staticmethod
    def place(key: str, request: OrderRequest, reason: str, venue: str | None = None, **meta: Any) -> Intent:
        """An intent to send a new order."""
        return Intent(IntentKind.PLACE, key, reason, request=request, venue=venue, meta=meta)

    @staticmethod
    def cancel(key: str, reason: str, venue: str | None = None) -> Intent:
        """An intent to cancel the order named ``key``."""
        return Intent(IntentKind.CANCEL, key, reason, venue=venue)

    @staticmethod
    def amend(key: str, reason: str, amount: Decimal | None = None, price: Decimal | None = None, venue: str | None = None) -> Intent:
        """An intent to change the size and/or price of the order named ``key``."""
        return Intent(IntentKind.AMEND, key, reason, amount=amount, price=price, venue=venue)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (Decimals as strings)."""
        out: dict[str, Any] = {"kind": self.kind.value, "key": self.key, "reason": self.reason}
        if self.request is not None:
            r = self.request
            out["request"] = {
                "instrument": r.instrument,
                "side": r.side.value,
                "amount": str(r.amount),
                "price": None if r.price is None else str(r.price),
                "type": r.type.value,
                "tif": r.tif.value,
                "post_only": r.post_only,
                "reduce_only": r.reduce_only,
            }
        if self.amount is not None:
            out["amount"] = str(self.amount)
        if self.price is not None:
            out["price"] = str(self.price)
        if self.venue is not None:
            out["venue"] = self.venue
        if self.meta:
            out["meta"] = dict(self.meta)
        return out


@runtime_checkable
class DeskView(Protocol):
    """What a strategy may read of the desk: time, positions with greeks, quotes, index prices, margin."""

    def now_ms(self) -> int:
        """Current (simulated or wall) time, epoch ms."""
        ...

    def positions(self) -> Sequence[PositionView]:
        """Positions with marks and greeks (coin and USD views)."""
        ...

    def quote(self, instrument: str, venue: str | None = None) -> Quote | None:
        """Latest quote of ``instrument`` (on ``venue`` when several are configured), or None."""
        ...

    def index_price(self, underlying: str) -> float | None:
        """Index price in USD of ``underlying`` (``BTC`` or ``btc_usd``), or None."""
        ...

    def margin(self) -> Mapping[str, MarginReport]:
        """Margin reports by settlement currency."""
        ...


@runtime_checkable
class Strategy(Protocol):
    """Events in, intents out; state is a JSON-serialisable dict the runner persists."""

    name: str

    def on_event(self, event: Event, view: DeskView) -> list[Intent]:
        """React to one event; return the intents it leads to (possibly none)."""
        ...

    def state(self) -> dict[str, Any]:
        """The strategy's state as plain JSON types."""
        ...

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a state returned by :meth:`state`."""
        ...

    def take_decisions(self) -> list[dict[str, Any]]:
        """Decisions made since the last call (each with its inputs, rule, action and reason)."""
        ...


def copy_state(obj: Any) -> Any:
    """A deep copy of a strategy state made of plain JSON types (dicts and lists copied, the rest shared as they are
    immutable); several times faster than ``copy.deepcopy``, which the runner would pay on every save."""
    if isinstance(obj, dict):
        return {k: copy_state(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [copy_state(v) for v in obj]
    return obj


def underlying_base(underlying: str) -> str:
    """``btc_usd``/``BTC``/``btc`` -> ``BTC``."""
    return underlying.split("_")[0].upper()


class SnapshotView:
    """A :class:`DeskView` over one :class:`app.domain.DeskSnapshot` (what ``Desk.snapshot()`` returns).

    Multi-venue quotes are looked up as ``"<venue>:<instrument>"`` first, then by plain name when the quote's
    own ``venue`` matches.
    """

    __slots__ = ("snap",)

    def __init__(self, snap: DeskSnapshot) -> None:
        self.snap = snap

    def now_ms(self) -> int:
        """The snapshot's time, epoch ms."""
        return self.snap.ts

    def positions(self) -> Sequence[PositionView]:
        """The snapshot's positions."""
        return self.snap.positions

    def quote(self, instrument: str, venue: str | None = None) -> Quote | None:
        """The snapshot's quote of ``instrument`` (on ``venue``)."""
        quotes = self.snap.quotes
        if venue is not None:
            q = quotes.get(f"{venue}:{instrument}")
            if q is not None:
                return q
            q = quotes.get(instrument)
            return q if q is not None and q.venue == venue else None
        return quotes.get(instrument)

    def index_price(self, underlying: str) -> float | None:
        """The snapshot's index price in USD."""
        base = underlying_base(underlying)
        for key in (underlying, f"{base.lower()}_usd", base, f"{base.lower()}_usdc"):
            if key in self.snap.index_prices:
                return self.snap.index_prices[key]
        return None

    def margin(self) -> Mapping[str, MarginReport]:
        """The snapshot's margin reports."""
        return self.snap.margin
