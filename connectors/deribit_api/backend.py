"""What the Deribit-API server needs from the venue behind it: a protocol the composition root implements.

The server speaks Deribit's wire format; the embedded venue (the Desk over the matching engine, the margin
engine and the simulated market) speaks ``app.domain``. ``app/cli.py`` (``desk serve``) wraps a Desk in an
object of this shape, because connectors may not import ``app.desk``.

Prices and amounts of orders and fills are Decimal (instrument units); market data is float; IVs are
fractions (0.55) here and become Deribit percent (55.0) on the wire; timestamps are epoch ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from app.bus import Subscription
from app.domain import Fill, Instrument, MarginReport, Order, OrderRequest


@dataclass(frozen=True, slots=True)
class Greeks:
    """Venue greeks of one option as Deribit reports them: delta in coin, vega per 1% vol, theta per day (USD)."""

    delta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0
    rho: float = 0.0


@dataclass(frozen=True, slots=True)
class TickerView:
    """One instrument's ticker: top of book, marks, IVs (fractions), greeks; prices in instrument units."""

    instrument: str
    ts: int
    best_bid: float | None
    best_ask: float | None
    bid_size: float
    ask_size: float
    mark_price: float
    index_price: float
    last_price: float | None = None
    underlying_price: float | None = None
    underlying_index: str = ""
    mark_iv: float | None = None
    bid_iv: float | None = None
    ask_iv: float | None = None
    greeks: Greeks | None = None
    open_interest: float = 0.0
    volume: float = 0.0  # 24h, coin
    min_price: float | None = None  # the venue's price band now; None when it has none
    max_price: float | None = None
    state: str = "open"
    funding_8h: float | None = None
    interest_rate: float = 0.0
    volume_usd: float = 0.0  # 24h, USD
    high: float | None = None  # 24h, None without trades
    low: float | None = None
    price_change: float | None = None  # 24h, percent


@dataclass(frozen=True, slots=True)
class BookView:
    """Depth of one book: ``(price, amount)`` levels best first, and a change id that grows with every change."""

    instrument: str
    ts: int
    bids: Sequence[tuple[float, float]]
    asks: Sequence[tuple[float, float]]
    change_id: int = 0


@dataclass(frozen=True, slots=True)
class PositionView:
    """One position as the venue reports it (Deribit ``get_positions``); money in the settlement currency."""

    instrument: str
    size: Decimal
    average_price: Decimal
    mark_price: float
    index_price: float
    floating_pnl: float = 0.0
    realized_pnl: float = 0.0  # funding included, fees not (Deribit's realized_profit_loss)
    realized_funding: float = 0.0
    delta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0
    initial_margin: float = 0.0
    maintenance_margin: float = 0.0
    open_orders_margin: float = 0.0
    estimated_liquidation_price: float | None = None  # futures: the margin engine's, None where undefined


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """An accepted order and the fills it made at once (Deribit answers ``{order, trades}``)."""

    order: Order
    fills: Sequence[Fill] = field(default_factory=tuple)


@runtime_checkable
class ApiBackend(Protocol):
    """The embedded venue as the Deribit-API server sees it.

    Business rejections raise typed ``app.errors`` (OrderRejected with an ``order.rejected.*`` code,
    InsufficientMargin, NotFound, UnknownInstrument); the server turns them into Deribit error codes.
    """

    def now_ms(self) -> int:
        """The venue's current time, epoch ms (simulated time for the embedded venue)."""
        ...

    def listed(self) -> Sequence[Instrument]:
        """Every listed instrument with its tick/lot/fee conventions."""
        ...

    def ticker(self, instrument: str) -> TickerView | None:
        """The ticker of a listed instrument, or None when it has no market data yet."""
        ...

    def depth(self, instrument: str, levels: int) -> BookView:
        """The ``levels`` best levels of each side of the instrument's book."""
        ...

    def index_price(self, index: str) -> float | None:
        """The index price of ``index`` (``btc_usd``) in USD, or None if unknown."""
        ...

    async def place(self, request: OrderRequest) -> PlaceResult:
        """Place an order for ``request.account`` (pre-trade margin checked)."""
        ...

    async def cancel(self, account: str, order_id: str) -> Order:
        """Cancel an open order of ``account``; raises NotFound if unknown, OrderRejected if closed."""
        ...

    async def amend(self, account: str, order_id: str, amount: Decimal | None, price: Decimal | None) -> Order:
        """Change amount and/or price of an open order of ``account``."""
        ...

    async def cancel_all(self, account: str, instrument: str | None = None) -> int:
        """Cancel every open order of ``account`` (of one instrument); returns how many."""
        ...

    def orders(self, account: str, open_only: bool = True) -> Sequence[Order]:
        """Orders of ``account`` (only open ones by default), oldest first."""
        ...

    def order(self, account: str, order_id: str) -> Order:
        """One order of ``account`` in its current state; raises NotFound."""
        ...

    async def fills(self, account: str, since_ms: int = 0) -> Sequence[Fill]:
        """Fills of ``account`` at or after ``since_ms``, oldest first."""
        ...

    def positions(self, account: str) -> Sequence[PositionView]:
        """Open positions of ``account``."""
        ...

    def account_summary(self, account: str, currency: str) -> MarginReport:
        """Balance, equity and margin figures of ``account`` in ``currency``."""
        ...

    def subscribe(self, topics: Sequence[str]) -> Subscription:
        """A bus subscription to venue events (quote, book_update, trade, index_price, order_update, fill_event)."""
        ...


@runtime_checkable
class MarkSource(Protocol):
    """Optional: a backend that tells the marks at an instant, so trades carry Deribit's ``mark_price``,
    ``iv`` and ``underlying_price`` (the server asks it once per public trade: it must be cheap)."""

    def marks(self, instrument: str) -> tuple[float, float | None, float | None] | None:
        """(mark price in price units, mark IV as a fraction or None, underlying price USD or None), or None."""
        ...
