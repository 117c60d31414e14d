"""Typed events of the matching engine, each stamped with a global sequence number.

Every command the engine accepts yields events in a fixed order; ``seq`` counts all events of all
instruments from 1 without gaps, so a consumer can detect a lost event and a replay can be compared
byte for byte (:func:`encode`).

Events are immutable tuples with named, typed fields (:class:`Event`: ``_fields``, ``_asdict``,
``_replace`` and pattern matching like a ``NamedTuple``). The engine builds one with ``Cls(values)``,
which CPython runs entirely in C (tuple's own constructor: no Python ``__new__`` as a ``NamedTuple``
has, no argument re-packing as ``tuple.__new__(Cls, values)`` does): the events are the largest cost of
the engine's hot path. Engine units are kept
(``price_ticks``: integer multiples of ``inst.tick_size``; ``lots``: integer multiples of
``inst.min_amount``; fees in integer units of 1e-10 of the settlement currency); the properties give the
exact ``Decimal`` view. :func:`to_fills` turns a :class:`Filled` into the desk's two ``app.domain.Fill``
objects (maker and taker).

    for ev in engine.submit(req):
        if isinstance(ev, Filled):
            print(ev.price, ev.amount, ev.taker_side, ev.taker_fee)

    Cancelled((7, ts, inst, 42, "alice", 5, 0, "user"))   # values in field order
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, ClassVar, NamedTuple

from app.domain import BookUpdate, Fill, Instrument, Liquidity, Side

FEE_DECIMALS = 10
"""Fees are integers in units of 10**-FEE_DECIMALS of the settlement currency (coin for inverse)."""

FEE_SCALE = 10**FEE_DECIMALS

# Order flags (bit mask) of the integer API and of ``Accepted.flags``.
F_MARKET = 1
F_IOC = 2
F_FOK = 4
F_POST_ONLY = 8
F_REDUCE_ONLY = 16
F_REPRICE = 32  # post-only that is moved one tick away instead of rejected when it would cross

_SIDES = {1: Side.BUY, -1: Side.SELL}


_ZERO = Decimal(0)


def fee_decimal(units: int) -> Decimal:
    """Integer fee units to an exact Decimal amount of the settlement currency."""
    return Decimal(units).scaleb(-FEE_DECIMALS) if units else _ZERO


class RejectReason(NamedTuple):
    """Why the engine (or a pre-trade check plugged into it) refused an order: stable code + message."""

    code: str
    message: str = ""


try:  # the C field accessor collections.namedtuple uses; a property is the portable fallback
    from collections import _tuplegetter  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - other Python implementations
    from operator import itemgetter

    def _tuplegetter(index: int, doc: str) -> Any:  # type: ignore[no-redef]
        return property(itemgetter(index), doc=doc)


class Event(tuple):  # type: ignore[type-arg]
    """Base of the engine's events: a tuple whose fields are the annotated names of the subclass.

    Build one from its values in field order: ``Filled(values)``. A subclass must not define
    ``__new__`` (that would put a Python call back on every event) and must declare ``__slots__ = ()``."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__new__" in cls.__dict__:
            raise TypeError(f"{cls.__name__} must not define __new__")
        if "__slots__" not in cls.__dict__:
            # Without it every event carries an (empty) __dict__: mutable, larger, slower to build and free.
            raise TypeError(f"{cls.__name__} must declare __slots__ = ()")
        fields = tuple(name for name in cls.__dict__.get("__annotations__", {}) if not name.startswith("_"))
        cls._fields = fields
        cls.__match_args__ = fields
        for index, name in enumerate(fields):
            setattr(cls, name, _tuplegetter(index, f"Alias for field number {index}"))

    def _asdict(self) -> dict[str, Any]:
        """The fields as a dict, in field order."""
        return dict(zip(self._fields, self, strict=True))

    def _replace(self, **changes: Any) -> Any:
        """A copy with some fields changed."""
        unknown = set(changes) - set(self._fields)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no fields {sorted(unknown)}")
        return type(self)(changes.get(name, value) for name, value in zip(self._fields, self, strict=True))

    @classmethod
    def _make(cls, values: Iterable[Any]) -> Any:
        """An event from its values in field order (checks the count)."""
        ev = cls(values)
        if len(ev) != len(cls._fields):
            raise TypeError(f"{cls.__name__} takes {len(cls._fields)} values, got {len(ev)}")
        return ev


class Accepted(Event):
    """An order passed every check; ``lots`` is the accepted amount (reduce-only may clip it)."""

    __slots__ = ()

    seq: int
    ts: int
    inst: Instrument
    order_id: int
    account: str
    side: Side
    price_ticks: int  # 0 for market orders
    lots: int
    flags: int
    client_order_id: str | None

    @property
    def price(self) -> Decimal | None:
        """Limit price in the instrument's price unit, None for a market order."""
        return None if self.flags & F_MARKET else self.inst.from_ticks(self.price_ticks)

    @property
    def amount(self) -> Decimal:
        """Accepted amount in the instrument's amount unit."""
        return self.inst.from_lots(self.lots)


class Rejected(Event):
    """A command refused for a business reason (``code`` like ``order.rejected.band``); nothing changed."""

    __slots__ = ()

    seq: int
    ts: int
    instrument: str
    account: str
    code: str
    message: str
    order_id: int  # the order a rejected cancel/amend named; 0 for a new order
    client_order_id: str | None


class Filled(Event):
    """One trade between a resting (maker) and an incoming (taker) order; fees in 1e-10 units."""

    __slots__ = ()

    seq: int
    ts: int
    inst: Instrument
    trade_id: int
    price_ticks: int
    lots: int
    taker_side: Side
    maker_order_id: int
    maker_account: str
    taker_order_id: int
    taker_account: str
    maker_fee_units: int
    taker_fee_units: int
    maker_remaining: int
    taker_remaining: int
    maker_client_order_id: str | None
    taker_client_order_id: str | None

    @property
    def price(self) -> Decimal:
        """Trade price in the instrument's price unit."""
        return self.inst.from_ticks(self.price_ticks)

    @property
    def amount(self) -> Decimal:
        """Traded amount in the instrument's amount unit."""
        return self.inst.from_lots(self.lots)

    @property
    def maker_side(self) -> Side:
        """Side of the resting order."""
        return self.taker_side.opposite

    @property
    def maker_fee(self) -> Decimal:
        """Maker fee in the settlement currency (coin for inverse); negative is a rebate."""
        return fee_decimal(self.maker_fee_units)

    @property
    def taker_fee(self) -> Decimal:
        """Taker fee in the settlement currency (coin for inverse)."""
        return fee_decimal(self.taker_fee_units)

    @property
    def fee_currency(self) -> str:
        """Currency the fees are charged in."""
        return self.inst.settlement


class BookChanged(Event):
    """A price level changed: its new total ``lots`` and order ``count`` (0 lots: the level is gone)."""

    __slots__ = ()

    seq: int
    ts: int
    inst: Instrument
    side: Side
    price_ticks: int
    lots: int
    count: int

    @property
    def price(self) -> Decimal:
        """Level price in the instrument's price unit."""
        return self.inst.from_ticks(self.price_ticks)

    @property
    def amount(self) -> Decimal:
        """Level size in the instrument's amount unit."""
        return self.inst.from_lots(self.lots)


class Cancelled(Event):
    """``lots`` of an order were cancelled; ``remaining`` > 0 means the rest still rests (partial cancel).

    ``reason``: ``user``, ``mass`` (cancel-all), ``ioc``, ``market`` (market remainder), ``fok``, ``stp``
    (self-trade prevention), ``reduce_only`` (trimmed to the position), ``band`` (market order stopped
    at the price band).
    """

    __slots__ = ()

    seq: int
    ts: int
    inst: Instrument
    order_id: int
    account: str
    lots: int
    remaining: int
    reason: str


class Amended(Event):
    """An order was amended to ``price_ticks`` with ``lots`` remaining; ``kept_priority`` tells if it kept its place."""

    __slots__ = ()

    seq: int
    ts: int
    inst: Instrument
    order_id: int
    account: str
    price_ticks: int
    lots: int
    kept_priority: bool


class Expired(Event):
    """An order was removed because its instrument expired or settled."""

    __slots__ = ()

    seq: int
    ts: int
    inst: Instrument
    order_id: int
    account: str
    lots: int


class StateChanged(Event):
    """An instrument changed state (open, halted, expired, settled)."""

    __slots__ = ()

    seq: int
    ts: int
    inst: Instrument
    state: str


def _repr(ev: tuple[Any, ...]) -> str:
    fields = ", ".join(f"{name}={_plain(value)!r}" for name, value in zip(ev._fields, ev))  # type: ignore[attr-defined]
    return f"{type(ev).__name__}({fields})"


for _cls in (Accepted, Rejected, Filled, BookChanged, Cancelled, Amended, Expired, StateChanged):
    _cls.__repr__ = _repr  # type: ignore[method-assign,assignment]  # short: instrument by name

EngineEvent = Accepted | Rejected | Filled | BookChanged | Cancelled | Amended | Expired | StateChanged


def _plain(value: Any) -> Any:
    if isinstance(value, Instrument):
        return value.name
    if isinstance(value, Side):
        return value.value
    return value


def to_record(ev: EngineEvent) -> dict[str, Any]:
    """An event as a JSON-friendly dict: ``type`` plus its fields in engine units (names for instruments)."""
    rec: dict[str, Any] = {"type": type(ev).__name__}
    for name, value in zip(ev._fields, ev):
        rec["instrument" if name == "inst" else name] = _plain(value)
    return rec


def encode(ev: EngineEvent) -> bytes:
    """Canonical bytes of one event (a compact JSON array): equal events give equal bytes."""
    return json.dumps([type(ev).__name__, *map(_plain, ev)], separators=(",", ":")).encode()


def to_fills(ev: Filled, venue: str = "sim") -> tuple[Fill, Fill]:
    """The (maker, taker) ``app.domain.Fill`` pair of a trade; fees in the settlement currency."""
    inst = ev.inst
    price = inst.from_ticks(ev.price_ticks)
    amount = inst.from_lots(ev.lots)
    trade_id = str(ev.trade_id)
    maker = Fill(
        trade_id=trade_id,
        order_id=str(ev.maker_order_id),
        instrument=inst.name,
        side=ev.taker_side.opposite,
        price=price,
        amount=amount,
        fee=fee_decimal(ev.maker_fee_units),
        fee_currency=inst.settlement,
        liquidity=Liquidity.MAKER,
        ts=ev.ts,
        account=ev.maker_account,
        client_order_id=ev.maker_client_order_id,
        venue=venue,
    )
    taker = Fill(
        trade_id=trade_id,
        order_id=str(ev.taker_order_id),
        instrument=inst.name,
        side=ev.taker_side,
        price=price,
        amount=amount,
        fee=fee_decimal(ev.taker_fee_units),
        fee_currency=inst.settlement,
        liquidity=Liquidity.TAKER,
        ts=ev.ts,
        account=ev.taker_account,
        client_order_id=ev.taker_client_order_id,
        venue=venue,
    )
    return maker, taker


def to_book_update(ev: BookChanged, venue: str = "sim") -> BookUpdate:
    """One level change as the desk's market-data ``BookUpdate`` (floats; size 0 deletes the level)."""
    level = ((float(ev.inst.from_ticks(ev.price_ticks)), float(ev.inst.from_lots(ev.lots))),)
    if ev.side is Side.BUY:
        return BookUpdate(ts=ev.ts, instrument=ev.inst.name, bids=level, asks=(), sequence=ev.seq, venue=venue)
    return BookUpdate(ts=ev.ts, instrument=ev.inst.name, bids=(), asks=level, sequence=ev.seq, venue=venue)
