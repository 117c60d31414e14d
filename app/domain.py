"""The one vocabulary of the desk: instruments, orders, fills, positions, market data, events.

Every package speaks these types; ccxt dicts, web3 objects and SQL rows are translated into them at the
edge. Objects are frozen and slotted so they are cheap to create and safe to share between tasks.

Units. Timestamps (``ts``) are integer epoch **milliseconds** UTC. Order and fill prices and amounts are
exact ``Decimal`` (the engine works in integer ticks and lots, see :meth:`Instrument.to_ticks`); market
data (quotes, books, index) carries floats because it feeds pricing and risk, which are float code.
Amounts follow Deribit: options and linear instruments in base coin, inverse futures and perpetuals in
USD. Option prices of inverse options are in coin; of linear options in USDC.

    >>> inst = Instrument.parse("BTC-27DEC24-60000-C")
    >>> inst.kind, inst.strike, inst.is_inverse
    (<Kind.OPTION: 'option'>, Decimal('60000'), True)
    >>> inst.round_price(Decimal("0.00512"))
    Decimal('0.0050')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import Enum
from functools import cache, lru_cache
from typing import Any, Literal

from app.errors import InvalidInput, InvalidInstrument

MS_PER_YEAR = 365.0 * 24 * 3600 * 1000
"""Milliseconds in a (365-day) year: the time unit of every ``t`` in pricing."""

EXPIRY_HOUR_UTC = 8
"""Deribit expiries settle at 08:00 UTC."""

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTH_INDEX = {m: i + 1 for i, m in enumerate(_MONTHS)}


class Kind(str, Enum):
    """What an instrument is."""

    OPTION = "option"
    FUTURE = "future"
    PERPETUAL = "perpetual"
    SPOT = "spot"


class OptionType(str, Enum):
    """Call or put."""

    CALL = "call"
    PUT = "put"


class Side(str, Enum):
    """Buy or sell; ``sign`` is +1 for buy, -1 for sell."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for buy, -1 for sell."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        """The other side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(str, Enum):
    """Limit or market."""

    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(str, Enum):
    """Good-till-cancelled, immediate-or-cancel, fill-or-kill."""

    GTC = "good_til_cancelled"
    IOC = "immediate_or_cancel"
    FOK = "fill_or_kill"


class OrderStatus(str, Enum):
    """Lifecycle of an order (Deribit's ``order_state`` names)."""

    PENDING = "pending"  # written to the outbox / sent, not yet acknowledged
    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """True when the order can no longer change."""
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)


class Liquidity(str, Enum):
    """Maker (resting) or taker (aggressing) side of a fill."""

    MAKER = "maker"
    TAKER = "taker"


class InstrumentState(str, Enum):
    """Trading state of an instrument in the engine."""

    OPEN = "open"
    HALTED = "halted"
    EXPIRED = "expired"
    SETTLED = "settled"


# --------------------------------------------------------------------------------------------------
# Instruments
# --------------------------------------------------------------------------------------------------

TickSteps = tuple[tuple[Decimal, Decimal], ...]
"""``((above_price, tick_size), ...)``: a price above ``above_price`` must be a multiple of ``tick_size``."""


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """Tick, lot and size conventions of one class of instrument (Deribit ``get_instruments``)."""

    tick_size: Decimal
    min_amount: Decimal
    contract_size: Decimal
    tick_steps: TickSteps = ()
    maker_fee: Decimal = Decimal("0")
    taker_fee: Decimal = Decimal("0.0005")


_D = Decimal
# Deribit conventions (deribit.md §4.4-4.5). Unconfirmed ones (ETH futures tick, linear grids) are the
# documented most-likely values; read `get_instruments` for a real venue. Futures pay one maker rate whatever
# their expiry: the pre-Aug-2026 table's -0.01% for weeklies is gone ("elimination of differentiated futures fees
# by expiry date", §4.5).
_OPTION_STEPS: TickSteps = ((_D("0.005"), _D("0.0005")),)
CONTRACT_SPECS: dict[tuple[str, Kind, bool], ContractSpec] = {
    ("BTC", Kind.OPTION, True): ContractSpec(_D("0.0001"), _D("0.1"), _D("1"), _OPTION_STEPS, _D("0.0003"), _D("0.0003")),
    ("ETH", Kind.OPTION, True): ContractSpec(_D("0.0001"), _D("1"), _D("1"), _OPTION_STEPS, _D("0.0003"), _D("0.0003")),
    ("BTC", Kind.PERPETUAL, True): ContractSpec(_D("0.5"), _D("10"), _D("10"), (), _D("0"), _D("0.0005")),
    ("BTC", Kind.FUTURE, True): ContractSpec(_D("2.5"), _D("10"), _D("10"), (), _D("0"), _D("0.0005")),
    ("ETH", Kind.PERPETUAL, True): ContractSpec(_D("0.05"), _D("1"), _D("1"), (), _D("0"), _D("0.0005")),
    ("ETH", Kind.FUTURE, True): ContractSpec(_D("0.05"), _D("1"), _D("1"), (), _D("0"), _D("0.0005")),
}
_LINEAR_DEFAULTS: dict[Kind, ContractSpec] = {
    Kind.OPTION: ContractSpec(_D("0.01"), _D("0.01"), _D("1"), (), _D("0.0001"), _D("0.0005")),
    Kind.PERPETUAL: ContractSpec(_D("0.01"), _D("0.001"), _D("1"), (), _D("0"), _D("0.0005")),
    Kind.FUTURE: ContractSpec(_D("0.01"), _D("0.001"), _D("1"), (), _D("0"), _D("0.0005")),
    Kind.SPOT: ContractSpec(_D("0.01"), _D("0.0001"), _D("1"), (), _D("0"), _D("0")),
}
_INVERSE_DEFAULTS: dict[Kind, ContractSpec] = {
    Kind.OPTION: ContractSpec(_D("0.0001"), _D("1"), _D("1"), _OPTION_STEPS, _D("0.0003"), _D("0.0003")),
    Kind.PERPETUAL: ContractSpec(_D("0.01"), _D("1"), _D("1"), (), _D("0"), _D("0.0005")),
    Kind.FUTURE: ContractSpec(_D("0.01"), _D("1"), _D("1"), (), _D("0"), _D("0.0005")),
}


def contract_spec(base: str, kind: Kind, inverse: bool) -> ContractSpec:
    """The venue's tick/lot/fee conventions for a base currency and instrument kind."""
    spec = CONTRACT_SPECS.get((base, kind, inverse))
    if spec is not None:
        return spec
    return (_INVERSE_DEFAULTS if inverse else _LINEAR_DEFAULTS)[kind]


_CCY = r"[A-Z][A-Z0-9]{1,9}"
_NAME_RE = re.compile(
    rf"^(?P<base>{_CCY})(?:_(?P<quote>{_CCY}))?"
    r"(?:-(?P<tail>PERPETUAL|(?P<day>\d{1,2})(?P<mon>[A-Z]{3})(?P<yy>\d{2})"
    r"(?:-(?P<strike>\d+(?:d\d+)?)-(?P<cp>[CP]))?))?$"
)


def expiry_code(expiry: datetime) -> str:
    """Deribit's date code of an expiry, e.g. ``27DEC24`` or ``5AUG23`` (no leading zero)."""
    return f"{expiry.day}{_MONTHS[expiry.month - 1]}{expiry.year % 100:02d}"


def format_strike(strike: Decimal) -> str:
    """A strike as Deribit writes it in a name: ``60000``, or ``0d625`` for 0.625."""
    norm = strike.normalize()
    text = format(norm, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.replace(".", "d")


MAX_MAGNITUDE = Decimal("1e15")
"""Largest price or amount the desk accepts; beyond it Decimal arithmetic on ticks and lots is not exact."""


def _validate_tick_steps(price: Decimal, tick: Decimal, steps: TickSteps) -> Decimal:
    for above, step_tick in reversed(steps):
        if price > above:
            return step_tick
    return tick


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument with Deribit naming and tick/lot conventions.

    Build one with :meth:`parse` (conventions from :data:`CONTRACT_SPECS`) or directly when a venue
    reports its own specification. ``name`` round-trips: ``Instrument.parse(i.name) == i`` for the
    default specs.
    """

    kind: Kind
    base: str
    quote: str  # currency of the price: "USD" for inverse, "USDC"/"USDT" for linear
    settlement: str  # currency of premium, PnL and margin: base for inverse, quote for linear
    inverse: bool
    tick_size: Decimal
    min_amount: Decimal
    contract_size: Decimal
    tick_steps: TickSteps = ()
    expiry: datetime | None = None
    strike: Decimal | None = None
    option_type: OptionType | None = None
    maker_fee: Decimal = Decimal("0")
    taker_fee: Decimal = Decimal("0.0005")
    linear_tag: str | None = None  # the "_USDC" part of a linear name, kept for round-trips
    # Name, expiry_ms and underlying are derived, built on first use: hot loops (margin, matching) read them often.
    _name: str | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _expiry_ms: int | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _underlying: str | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    # -- naming -----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Deribit instrument name (``BTC-27DEC24-60000-C``, ``BTC-PERPETUAL``, ``XRP_USDC-…``)."""
        name = self._name
        if name is None:
            name = self._build_name()
            object.__setattr__(self, "_name", name)
        return name

    def _build_name(self) -> str:
        head = self.base if self.linear_tag is None else f"{self.base}_{self.linear_tag}"
        if self.kind is Kind.SPOT:
            return head
        if self.kind is Kind.PERPETUAL:
            return f"{head}-PERPETUAL"
        assert self.expiry is not None
        date = expiry_code(self.expiry)
        if self.kind is Kind.FUTURE:
            return f"{head}-{date}"
        assert self.strike is not None and self.option_type is not None
        cp = "C" if self.option_type is OptionType.CALL else "P"
        return f"{head}-{date}-{format_strike(self.strike)}-{cp}"

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def parse(name: str) -> Instrument:
        """Parse a Deribit name into an instrument with the default conventions; raise InvalidInstrument."""
        return _parse_cached(name)

    # -- descriptive ------------------------------------------------------------------------------
    @property
    def is_option(self) -> bool:
        """True for options."""
        return self.kind is Kind.OPTION

    @property
    def is_call(self) -> bool:
        """True for call options."""
        return self.option_type is OptionType.CALL

    @property
    def is_inverse(self) -> bool:
        """True when premium, PnL and margin are in the base coin."""
        return self.inverse

    @property
    def expiry_ms(self) -> int | None:
        """Expiry as epoch milliseconds, or None for perpetuals and spot."""
        if self.expiry is None:
            return None
        ms = self._expiry_ms
        if ms is None:
            ms = int(self.expiry.timestamp() * 1000)
            object.__setattr__(self, "_expiry_ms", ms)
        return ms

    @property
    def underlying(self) -> str:
        """Index name of the underlying, e.g. ``btc_usd`` (Deribit's ``index_name``)."""
        index = self._underlying
        if index is None:
            index = f"{self.base.lower()}_{'usd' if self.inverse else self.quote.lower()}"
            object.__setattr__(self, "_underlying", index)
        return index

    def years_to_expiry(self, now_ms: int) -> float:
        """Time to expiry in years (365-day) from ``now_ms``; 0 after expiry; inf for perpetuals."""
        if self.expiry_ms is None:
            return float("inf")
        return max(0.0, (self.expiry_ms - now_ms) / MS_PER_YEAR)

    # -- ticks and lots ---------------------------------------------------------------------------
    def tick_at(self, price: Decimal) -> Decimal:
        """The tick size that applies at ``price`` (Deribit ``tick_size_steps``)."""
        return _validate_tick_steps(price, self.tick_size, self.tick_steps)

    def is_valid_price(self, price: Decimal) -> bool:
        """True when ``price`` is a multiple of the tick that applies at it."""
        if not price.is_finite() or abs(price) > MAX_MAGNITUDE:
            return False
        return price % self.tick_at(price) == 0

    def round_price(self, price: Decimal, mode: Literal["nearest", "down", "up"] = "nearest") -> Decimal:
        """Round ``price`` to a valid tick (nearest, or down/up for buy/sell pay-up logic)."""
        if not price.is_finite():
            raise InvalidInput(f"price {price} is not a finite number", code="input.nan")
        if abs(price) > MAX_MAGNITUDE:
            raise InvalidInput(f"price {price} is out of range (above {MAX_MAGNITUDE})", code="input.range")
        rounding = {"nearest": ROUND_HALF_EVEN, "down": ROUND_FLOOR, "up": ROUND_CEILING}[mode]
        tick = self.tick_at(price)
        rounded = (price / tick).to_integral_value(rounding) * tick
        # Rounding down across a step boundary lands on the finer grid, which is valid there.
        if tick != self.tick_size and rounded <= self.tick_at(rounded) and not self.is_valid_price(rounded):
            rounded = (price / self.tick_size).to_integral_value(rounding) * self.tick_size
        return rounded.quantize(self.tick_size)

    def to_ticks(self, price: Decimal) -> int:
        """Price as an integer number of the smallest tick; raise OrderRejected-style InvalidInput if off-tick."""
        if not self.is_valid_price(price):
            raise InvalidInput(
                f"price {price} is not a multiple of tick {self.tick_at(price)} for {self.name}", code="order.rejected.tick"
            )
        return int(price / self.tick_size)

    def from_ticks(self, ticks: int) -> Decimal:
        """Integer ticks back to a Decimal price."""
        return (self.tick_size * ticks).quantize(self.tick_size)

    def to_lots(self, amount: Decimal) -> int:
        """Amount as an integer number of ``min_amount`` lots; raise if not a positive multiple."""
        if not amount.is_finite() or amount <= 0:
            raise InvalidInput(f"amount {amount} must be positive", code="order.rejected.amount")
        if amount > MAX_MAGNITUDE:
            raise InvalidInput(f"amount {amount} is out of range (above {MAX_MAGNITUDE})", code="order.rejected.amount")
        if amount % self.min_amount != 0:
            raise InvalidInput(
                f"amount {amount} is not a multiple of {self.min_amount} for {self.name}", code="order.rejected.lot"
            )
        return int(amount / self.min_amount)

    def from_lots(self, lots: int) -> Decimal:
        """Integer lots back to a Decimal amount."""
        return self.min_amount * lots

    def with_spec(self, **changes: Any) -> Instrument:
        """A copy with some conventions replaced (as reported by a venue)."""
        return replace(self, **changes)


@lru_cache(maxsize=65536)
def _parse_cached(name: str) -> Instrument:
    if not isinstance(name, str) or not name:
        raise InvalidInstrument("instrument name is empty", name=name)
    m = _NAME_RE.match(name)
    if m is None:
        raise InvalidInstrument(
            f"{name!r} is not a Deribit instrument name (expected e.g. BTC-PERPETUAL, BTC-27DEC24, "
            "BTC-27DEC24-60000-C or XRP_USDC-30JUN23-0d625-C)",
            name=name,
        )
    base, quote_tag, tail = m["base"], m["quote"], m["tail"]
    inverse = quote_tag is None
    if tail is None:
        if quote_tag is None:
            raise InvalidInstrument(f"{name!r}: a spot pair needs a quote currency, e.g. BTC_USDC", name=name)
        kind = Kind.SPOT
    elif tail == "PERPETUAL":
        kind = Kind.PERPETUAL
    elif m["strike"] is None:
        kind = Kind.FUTURE
    else:
        kind = Kind.OPTION
    expiry = None
    if m["day"] is not None:
        mon = _MONTH_INDEX.get(m["mon"])
        if mon is None:
            raise InvalidInstrument(f"{name!r}: unknown month {m['mon']!r} (expected one of {', '.join(_MONTHS)})", name=name)
        day = int(m["day"])
        if m["day"].startswith("0"):
            raise InvalidInstrument(f"{name!r}: day {m['day']!r} must not have a leading zero", name=name)
        try:
            expiry = datetime(2000 + int(m["yy"]), mon, day, EXPIRY_HOUR_UTC, tzinfo=timezone.utc)
        except ValueError:
            raise InvalidInstrument(f"{name!r}: {m['day']}{m['mon']}{m['yy']} is not a calendar date", name=name) from None
    strike = None
    option_type = None
    if kind is Kind.OPTION:
        raw = m["strike"]
        int_part = raw.split("d")[0]
        if len(int_part) > 1 and int_part.startswith("0"):
            raise InvalidInstrument(f"{name!r}: strike {raw!r} has a leading zero", name=name)
        if "d" in raw and raw.endswith("0"):
            raise InvalidInstrument(f"{name!r}: decimal strike {raw!r} has a trailing zero", name=name)
        strike = Decimal(raw.replace("d", "."))
        if strike <= 0:
            raise InvalidInstrument(f"{name!r}: strike must be positive", name=name)
        option_type = OptionType.CALL if m["cp"] == "C" else OptionType.PUT
    spec = contract_spec(base, kind, inverse)
    quote = "USD" if inverse else str(quote_tag)
    return Instrument(
        kind=kind,
        base=base,
        quote=quote,
        settlement=base if inverse else quote,
        inverse=inverse,
        tick_size=spec.tick_size,
        min_amount=spec.min_amount,
        contract_size=spec.contract_size,
        tick_steps=spec.tick_steps,
        expiry=expiry,
        strike=strike,
        option_type=option_type,
        maker_fee=spec.maker_fee,
        taker_fee=spec.taker_fee,
        linear_tag=quote_tag,
    )


# --------------------------------------------------------------------------------------------------
# Orders, fills, positions
# --------------------------------------------------------------------------------------------------


def _check_decimal(label: str, value: Decimal | None, *, positive: bool = True) -> None:
    if value is None:
        return
    if not isinstance(value, Decimal):
        raise InvalidInput(f"{label} must be a Decimal, got {type(value).__name__}", code="input.type", field=label)
    if not value.is_finite():
        raise InvalidInput(f"{label} {value} is not a finite number", code="input.nan", field=label)
    if positive and value <= 0:
        raise InvalidInput(f"{label} must be positive, got {value}", code="order.rejected.amount", field=label)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a trader or strategy asks for: an order not yet accepted by any venue.

    ``amount`` is in the instrument's amount unit (coin for options, USD for inverse futures); ``price`` in
    the instrument's price unit (coin for inverse options). ``price`` is None only for market orders.
    """

    instrument: str
    side: Side
    amount: Decimal
    price: Decimal | None = None
    type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: str | None = None
    account: str = "main"
    reason: str = ""

    def __post_init__(self) -> None:
        _check_decimal("amount", self.amount)
        if self.type is OrderType.LIMIT and self.price is None:
            raise InvalidInput("a limit order needs a price", code="order.rejected.price", field="price")
        if self.price is not None:
            _check_decimal("price", self.price, positive=False)
        if self.post_only and self.type is OrderType.MARKET:
            raise InvalidInput("a market order cannot be post-only", code="order.rejected.post_only")


@dataclass(frozen=True, slots=True)
class Order:
    """An order as a venue knows it: identity, request and progress."""

    order_id: str
    request: OrderRequest
    status: OrderStatus
    filled: Decimal = Decimal("0")
    average_price: Decimal | None = None
    ts: int = 0
    reject_code: str | None = None

    @property
    def remaining(self) -> Decimal:
        """Amount still open."""
        return self.request.amount - self.filled

    @property
    def instrument(self) -> str:
        """Instrument name."""
        return self.request.instrument


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one order. ``fee`` is in ``fee_currency`` (coin for inverse instruments)."""

    trade_id: str
    order_id: str
    instrument: str
    side: Side
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    ts: int
    account: str = "main"
    client_order_id: str | None = None
    venue: str = "sim"
    index_price: float | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """Net position in one instrument. ``size`` is signed (amount units); ``average_price`` in price units."""

    instrument: str
    size: Decimal
    average_price: Decimal
    realized_pnl: Decimal = Decimal("0")
    account: str = "main"
    tag: str | None = None


# --------------------------------------------------------------------------------------------------
# Market data and events
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Base of everything the bus carries; ``ts`` in epoch ms."""

    ts: int

    @property
    def topic(self) -> str:
        """The bus topic: the event's class name in snake case (``quote``, ``book_update``...)."""
        return _topic_of(type(self))


@cache
def _topic_of(cls: type) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


@dataclass(frozen=True, slots=True)
class Quote(Event):
    """Top of book plus the venue's marks: prices in the instrument's price unit, IVs as fractions (0.55)."""

    instrument: str
    bid: float | None
    ask: float | None
    bid_size: float = 0.0
    ask_size: float = 0.0
    mark_price: float | None = None
    mark_iv: float | None = None
    bid_iv: float | None = None
    ask_iv: float | None = None
    underlying_price: float | None = None
    index_price: float | None = None
    open_interest: float = 0.0
    venue: str = "sim"
    # The venue's own greeks of an option as it reports them (Deribit: delta in coin, vega per 1% vol and
    # theta per day in USD); None when the venue sends none. The desk computes its own greeks regardless.
    venue_delta: float | None = None
    venue_gamma: float | None = None
    venue_vega: float | None = None
    venue_theta: float | None = None


@dataclass(frozen=True, slots=True)
class BookUpdate(Event):
    """Depth change: ``(price, size)`` levels; size 0 deletes a level; ``snapshot`` replaces the book."""

    instrument: str
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    snapshot: bool = False
    sequence: int = 0
    venue: str = "sim"


@dataclass(frozen=True, slots=True)
class Trade(Event):
    """A public trade print; ``side`` is the taker's."""

    instrument: str
    price: float
    amount: float
    side: Side
    trade_id: str = ""
    venue: str = "sim"


@dataclass(frozen=True, slots=True)
class IndexPrice(Event):
    """An index (or one index source) price in USD; ``source`` empty for the aggregated oracle index."""

    index: str  # e.g. "btc_usd"
    price: float
    source: str = ""
    stale: bool = False


@dataclass(frozen=True, slots=True)
class OrderUpdate(Event):
    """An order changed state."""

    order: Order


@dataclass(frozen=True, slots=True)
class FillEvent(Event):
    """A fill of one of our orders."""

    fill: Fill


@dataclass(frozen=True, slots=True)
class PositionUpdate(Event):
    """Our position in an instrument changed."""

    position: Position


@dataclass(frozen=True, slots=True)
class MarginAlert(Event):
    """Margin usage crossed an alert level (``level`` in 0..1 of MM usage, e.g. 0.5, 0.8, 1.0)."""

    account: str
    currency: str
    level: float
    mm_usage: float
    message: str = ""


@dataclass(frozen=True, slots=True)
class Alert(Event):
    """Something a human should see: ``severity`` is info, warning or error."""

    source: str
    message: str
    severity: Literal["info", "warning", "error"] = "info"
    code: str = ""


@dataclass(frozen=True, slots=True)
class Timer(Event):
    """A periodic tick for strategies (``name`` identifies the timer)."""

    name: str = "tick"


@dataclass(frozen=True, slots=True)
class Lost(Event):
    """Delivered to a slow subscriber in place of ``count`` events it lost."""

    count: int = 0


# --------------------------------------------------------------------------------------------------
# Snapshot views (what the fronts read from the Desk)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GreeksView:
    """Greeks of a position or portfolio.

    Coin view: delta in coin (premium-adjusted for inverse options), gamma per USD move in coin, vega per
    1% vol in coin, theta per day in coin. USD view: the same times the index price (delta in USD of
    underlying exposure).
    """

    delta: float = 0.0
    delta_bs: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0
    delta_usd: float = 0.0
    gamma_usd: float = 0.0
    vega_usd: float = 0.0
    theta_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One instrument's line of an option chain; prices in coin (inverse) and IVs as fractions."""

    instrument: str
    strike: float
    option_type: OptionType
    bid: float | None
    ask: float | None
    bid_size: float
    ask_size: float
    mark: float
    bid_iv: float | None
    ask_iv: float | None
    mark_iv: float
    delta: float
    gamma: float
    vega: float
    theta: float
    open_interest: float = 0.0


@dataclass(frozen=True, slots=True)
class ChainSlice:
    """An expiry of an underlying's option chain."""

    underlying: str  # "BTC"
    expiry_ms: int
    forward: float
    index_price: float
    atm_strike: float
    rows: tuple[ChainRow, ...]


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position with its mark, PnL (coin and USD) and greeks.

    ``pnl`` is unrealised; ``realized_pnl`` is what closing trades realised (fees apart), ``fees`` what its trades
    paid, ``funding`` what a perpetual received (negative: paid); all in the settlement currency, since the desk
    first saw the position. ``net_realized`` adds them up.
    """

    instrument: str
    size: float
    average_price: float
    mark: float
    pnl: float  # unrealised, in settlement currency
    pnl_usd: float
    greeks: GreeksView
    expiry_ms: int | None = None
    underlying: str = ""
    account: str = "main"
    tag: str | None = None  # book tag of the position (nothing sets it yet: the hedger refuses scope "tag")
    realized_pnl: float = 0.0
    fees: float = 0.0
    funding: float = 0.0

    @property
    def net_realized(self) -> float:
        """Realised PnL plus funding minus fees, settlement currency."""
        return self.realized_pnl + self.funding - self.fees


@dataclass(frozen=True, slots=True)
class MarginReport:
    """Margin health of one account and currency; amounts in the settlement currency.

    ``distance_down``/``distance_up`` are the fractional spot moves (e.g. -0.23, +0.41) at which MM would
    reach the margin balance, or None if no such move within the searched range.
    """

    account: str
    currency: str
    model: Literal["sm", "pm"]
    balance: float
    equity: float
    margin_balance: float
    initial_margin: float
    maintenance_margin: float
    available_funds: float
    im_usage: float
    mm_usage: float
    distance_down: float | None = None
    distance_up: float | None = None
    worst_bucket: str | None = None
    alert_level: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StrategyStatus:
    """What a front shows of a running strategy."""

    run_id: str
    name: str
    status: Literal["dry_run", "active", "paused", "killed", "stopped"]
    summary: dict[str, Any] = field(default_factory=dict)
    last_decisions: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class DeskSnapshot:
    """Everything a front needs to draw, at one instant ``ts`` (epoch ms)."""

    ts: int
    venue: str
    index_prices: dict[str, float]
    instruments: tuple[str, ...]
    chains: dict[str, tuple[ChainSlice, ...]]  # underlying -> expiries in order
    quotes: dict[str, Quote]
    positions: tuple[PositionView, ...]
    portfolio: dict[str, GreeksView]  # underlying -> totals
    margin: dict[str, MarginReport]  # currency -> report
    strategies: tuple[StrategyStatus, ...] = ()
    recent_events: tuple[Event, ...] = ()


def utc_from_ms(ts: int) -> datetime:
    """Epoch milliseconds to a timezone-aware UTC datetime."""
    return datetime.fromtimestamp(ts / 1000.0, tz=timezone.utc)


def ms_from_utc(dt: datetime) -> int:
    """A timezone-aware datetime to epoch milliseconds."""
    if dt.tzinfo is None:
        raise InvalidInput("datetime must be timezone-aware (UTC)", code="input.naive_datetime")
    return int(dt.timestamp() * 1000)
