"""The protocols the core needs from outside: venues, price sources and the store.

Connectors implement :class:`Venue` / :class:`PriceSource`; ``storage`` implements :class:`Store`. The
composition root (``app.desk``) hands implementations to whoever needs them, so ``strategies`` never
imports ``storage`` and ``connectors`` never import each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from app.bus import Bus
from app.domain import Fill, IndexPrice, Instrument, Order, OrderRequest, Position, Quote, Trade


@dataclass(frozen=True, slots=True)
class OrderStatusReport:
    """A venue's view of one order, for reconciliation (nautilus_trader style)."""

    order_id: str
    client_order_id: str | None
    instrument: str
    status: str
    filled: Decimal
    amount: Decimal
    price: Decimal | None
    ts: int


@dataclass(frozen=True, slots=True)
class PositionStatusReport:
    """A venue's view of one position, for reconciliation."""

    instrument: str
    size: Decimal
    average_price: Decimal
    ts: int
    realized_funding: Decimal | None = None  # as the venue reports it (Deribit: this session), settlement currency


@dataclass(frozen=True, slots=True)
class AccountReport:
    """A venue's own account figures for one currency (Deribit ``get_account_summary``)."""

    currency: str
    balance: Decimal
    equity: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    available_funds: Decimal
    raw: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Venue(Protocol):
    """A place to trade: the embedded simulated venue, a ccxt venue, the Deribit-API server's client."""

    name: str

    async def connect(self, bus: Bus) -> None:
        """Open connections and start publishing market data and order events onto ``bus``."""
        ...

    async def close(self) -> None:
        """Close connections; idempotent."""
        ...

    async def instruments(self) -> Sequence[Instrument]:
        """Every listed instrument with the venue's own conventions."""
        ...

    async def subscribe(self, instruments: Sequence[str], channels: Sequence[str] = ("ticker",)) -> None:
        """Stream ``channels`` (ticker, book, trades) of ``instruments`` onto the bus."""
        ...

    async def place(self, request: OrderRequest) -> Order:
        """Send an order; returns the venue's acknowledgement or raises an OrderRejected error."""
        ...

    async def cancel(self, order_id: str) -> Order:
        """Cancel one order."""
        ...

    async def amend(self, order_id: str, amount: Decimal | None = None, price: Decimal | None = None) -> Order:
        """Change size and/or price of an open order."""
        ...

    async def cancel_all(self, instrument: str | None = None) -> int:
        """Cancel every open order (of one instrument); returns how many."""
        ...

    async def order_reports(self, open_only: bool = False) -> Sequence[OrderStatusReport]:
        """Orders as the venue knows them (for reconciliation after a restart)."""
        ...

    async def fill_reports(self, since_ms: int = 0) -> Sequence[Fill]:
        """Our fills since ``since_ms``."""
        ...

    async def position_reports(self) -> Sequence[PositionStatusReport]:
        """Positions as the venue knows them."""
        ...

    async def account(self, currency: str) -> AccountReport:
        """Balances and the venue's own margin figures."""
        ...


@runtime_checkable
class PriceSource(Protocol):
    """One source of an index price (a spot venue, a chain's price feed)."""

    name: str

    async def latest(self, index: str) -> IndexPrice | None:
        """The latest price of ``index`` (``btc_usd``), or None when the source has nothing."""
        ...


@runtime_checkable
class Store(Protocol):
    """Persistence the core and strategies rely on; implemented by ``storage.store``.

    Money and sizes cross this boundary as Decimal; timestamps as epoch ms. Methods that acknowledge a fill
    or an outbox entry return only after it is durably committed.
    """

    def record_fill(self, fill: Fill, run_id: str | None = None) -> bool:
        """Store a fill durably; False when (venue, trade_id) was already stored (replay is a no-op)."""
        ...

    def record_order(self, order: Order, run_id: str | None = None, venue: str = "sim") -> None:
        """Append an order state change."""
        ...

    def outbox_put(self, run_id: str, client_order_id: str, request: OrderRequest, venue: str = "sim") -> None:
        """Write an order intent before it is sent (status pending); idempotent on client_order_id."""
        ...

    def outbox_mark(self, client_order_id: str, status: str, venue_order_id: str | None = None, error: str | None = None) -> None:
        """Move an outbox entry to sent / acked / failed."""
        ...

    def outbox_pending(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Outbox entries not yet acked or failed, oldest first."""
        ...

    def save_strategy_state(self, run_id: str, state: dict[str, Any]) -> None:
        """Persist a strategy's serialisable state."""
        ...

    def load_strategy_state(self, run_id: str) -> dict[str, Any] | None:
        """The last saved state of a run, or None."""
        ...

    def record_decision(self, run_id: str, decision: dict[str, Any]) -> None:
        """Store one hedge decision with its inputs, rule and intent."""
        ...

    def record_snapshot(self, kind: str, ts: int, data: dict[str, Any]) -> None:
        """Store a risk/margin snapshot (may be batched)."""
        ...

    def latest_snapshot(self, kind: str) -> dict[str, Any] | None:
        """The newest snapshot of a kind."""
        ...

    def snapshots(self, kind: str, since_ms: int, until_ms: int) -> list[dict[str, Any]]:
        """Snapshots of a kind in a time range, oldest first."""
        ...


@runtime_checkable
class OrderRouter(Protocol):
    """What a strategy runner needs of a venue (or of the Desk): send, cancel, amend, and the venue's own records.

    A :class:`Venue` satisfies it; so does ``app.desk.Desk`` when it exposes the venue's reports. Orders carry
    the runner's ``client_order_id``; ``order_reports``/``fill_reports`` must return it so a restarted runner
    can reconcile its outbox with what the venue really did.
    """

    async def place(self, request: OrderRequest) -> Order:
        """Send an order; returns the acknowledgement or raises OrderRejected."""
        ...

    async def cancel(self, order_id: str) -> Order:
        """Cancel one order (raise NotFound when the venue does not know it)."""
        ...

    async def amend(self, order_id: str, amount: Decimal | None = None, price: Decimal | None = None) -> Order:
        """Change size and/or price of an open order."""
        ...

    async def order_reports(self, open_only: bool = False) -> Sequence[OrderStatusReport]:
        """Orders as the venue knows them."""
        ...

    async def fill_reports(self, since_ms: int = 0) -> Sequence[Fill]:
        """Our fills since ``since_ms`` (epoch ms)."""
        ...


@runtime_checkable
class RunControlStore(Protocol):
    """Run control a store may offer (``storage.store.SqlStore`` does): run status and the single-writer lease.

    Statuses are ``dry_run``, ``active``, ``paused``, ``killed``, ``stopped``; written by ``desk hedge
    activate|pause|kill`` they survive restarts. ``acquire_lease`` takes a free lease, renews one's own, or
    takes over one whose heartbeat is older than ``stale_after_s``; else it raises ``LeaseHeld``.
    """

    def create_run(self, run_id: str, name: str = "", config: Any = None, status: str = "dry_run") -> dict[str, Any]:
        """Register a run (raise InvalidInput ``run.exists`` when it is registered)."""
        ...

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run's status (``status``) and lease (``lease_holder``, ``lease_heartbeat_ms``), or None."""
        ...

    def set_run_status(self, run_id: str, status: str) -> None:
        """Change a run's status (NotFound for an unknown run)."""
        ...

    def acquire_lease(self, run_id: str, holder: str, *, stale_after_s: float = 30.0, now_ms: int | None = None) -> Any:
        """Become the run's single writer; raise LeaseHeld when another holder's heartbeat is fresh."""
        ...

    def heartbeat(self, run_id: str, holder: str, *, now_ms: int | None = None) -> None:
        """Refresh a held lease; raise LeaseHeld when it was taken over."""
        ...

    def release_lease(self, run_id: str, holder: str) -> bool:
        """Give the lease up; False when ``holder`` did not hold it."""
        ...


@runtime_checkable
class MarketDataSink(Protocol):
    """Where recorded market data goes (``storage.store.SqlStore.record_market`` implements it).

    ``connectors.recording.MarketRecorder`` writes what a connector receives through it, so a live session
    can be replayed later (``SqlStore.market_data`` reads it back in time order).
    """

    def record_market(self, events: Quote | Trade | IndexPrice | Iterable[Quote | Trade | IndexPrice]) -> int:
        """Queue quotes, trades and index prices for durable recording; returns how many were queued."""
        ...


def positions_by_instrument(positions: Sequence[Position]) -> dict[str, Position]:
    """Index positions by instrument name."""
    return {p.instrument: p for p in positions}
