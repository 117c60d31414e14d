"""SQLModel tables of the store.

Business rows (orders, fills, ledger, runs, decisions, outbox, alerts, backtests) carry timezone-aware UTC
datetimes and exact money (:class:`storage.types.Money`). The two high-volume families, risk/margin snapshots
and recorded market data, store time as integer epoch milliseconds (UTC by definition) and values compactly:
snapshots as a packed binary vector whose key layout is stored once in ``snapshot_layout``; market data as
float columns keyed by a small integer symbol id.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, LargeBinary, SmallInteger, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import Money

# SQLite only auto-numbers an ``INTEGER PRIMARY KEY`` (the rowid); PostgreSQL gets a bigint identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Now as an aware UTC datetime (wall clock; rows' own event times come from the caller)."""
    return datetime.now(timezone.utc)


def _money(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(Money(), nullable=nullable))


def _json(nullable: bool = False) -> Any:
    # none_as_null: a Python None is SQL NULL (not the JSON text 'null'), so empty rows skip the decoder
    return Field(default=None, sa_column=Column(JSON(none_as_null=nullable), nullable=nullable))


class InstrumentRow(SQLModel, table=True):
    """A listed instrument with the venue's conventions."""

    __tablename__ = "instrument"
    __table_args__ = (UniqueConstraint("venue", "name", name="uq_instrument_venue_name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    venue: str = Field(max_length=32)
    name: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    base: str = Field(max_length=16)
    quote: str = Field(max_length=16)
    settlement: str = Field(max_length=16)
    inverse: bool
    tick_size: Decimal = _money()
    min_amount: Decimal = _money()
    contract_size: Decimal = _money()
    tick_steps: Any = _json()
    expiry: Optional[datetime] = None
    strike: Optional[Decimal] = _money(nullable=True)
    option_type: Optional[str] = Field(default=None, max_length=4)
    maker_fee: Decimal = _money()
    taker_fee: Decimal = _money()
    linear_tag: Optional[str] = Field(default=None, max_length=16)
    updated_at: datetime = Field(default_factory=utcnow)


class AccountRow(SQLModel, table=True):
    """A trading account on a venue."""

    __tablename__ = "account"
    __table_args__ = (UniqueConstraint("venue", "name", name="uq_account_venue_name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    venue: str = Field(max_length=32)
    name: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class LedgerEntryRow(SQLModel, table=True):
    """One balance change of an account in one currency (trade cash, fee, PnL, deposit, funding...)."""

    __tablename__ = "ledger_entry"
    __table_args__ = (Index("ix_ledger_entry_account_currency", "account_id", "currency"),)
    id: Optional[int] = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    account_id: int = Field(foreign_key="account.id")
    currency: str = Field(max_length=16)
    amount: Decimal = _money()
    kind: str = Field(max_length=32)
    ref: Optional[str] = Field(default=None, max_length=128)
    run_id: Optional[str] = Field(default=None, max_length=64)
    ts: datetime


class OrderEventRow(SQLModel, table=True):
    """One state of one order; every change appends a row (the latest row is the order's state)."""

    __tablename__ = "order_event"
    __table_args__ = (
        Index("ix_order_event_venue_order", "venue", "order_id"),
        Index("ix_order_event_client_order_id", "client_order_id"),
        Index("ix_order_event_run_id", "run_id"),
    )
    id: Optional[int] = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    venue: str = Field(max_length=32)
    order_id: str = Field(max_length=128)
    client_order_id: Optional[str] = Field(default=None, max_length=128)
    run_id: Optional[str] = Field(default=None, max_length=64)
    account: str = Field(max_length=64)
    instrument: str = Field(max_length=64)
    side: str = Field(max_length=4)
    type: str = Field(max_length=8)
    tif: str = Field(max_length=24)
    post_only: bool = False
    reduce_only: bool = False
    amount: Decimal = _money()
    price: Optional[Decimal] = _money(nullable=True)
    status: str = Field(max_length=16)
    filled: Decimal = _money()
    average_price: Optional[Decimal] = _money(nullable=True)
    reject_code: Optional[str] = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=256)
    ts: datetime


class FillRow(SQLModel, table=True):
    """One execution; (venue, trade_id) is unique so a replayed fill is a no-op."""

    __tablename__ = "fill"
    __table_args__ = (
        UniqueConstraint("venue", "trade_id", name="uq_fill_venue_trade"),
        Index("ix_fill_run_id", "run_id"),
        Index("ix_fill_ts", "ts"),
    )
    id: Optional[int] = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    venue: str = Field(max_length=32)
    trade_id: str = Field(max_length=128)
    order_id: str = Field(max_length=128)
    client_order_id: Optional[str] = Field(default=None, max_length=128)
    run_id: Optional[str] = Field(default=None, max_length=64)
    account: str = Field(max_length=64)
    instrument: str = Field(max_length=64)
    side: str = Field(max_length=4)
    price: Decimal = _money()
    amount: Decimal = _money()
    fee: Decimal = _money()
    fee_currency: str = Field(max_length=16)
    liquidity: str = Field(max_length=8)
    index_price: Optional[float] = None
    ts: datetime


class PositionRow(SQLModel, table=True):
    """Latest net position per venue, account and instrument."""

    __tablename__ = "position"
    __table_args__ = (UniqueConstraint("venue", "account", "instrument", name="uq_position_key"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    venue: str = Field(max_length=32)
    account: str = Field(max_length=64)
    instrument: str = Field(max_length=64)
    size: Decimal = _money()
    average_price: Decimal = _money()
    realized_pnl: Decimal = _money()
    tag: Optional[str] = Field(default=None, max_length=64)
    updated_at: datetime


class StrategyRunRow(SQLModel, table=True):
    """A strategy run: its config, status, and the single-writer lease (holder + heartbeat)."""

    __tablename__ = "strategy_run"
    run_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(default="", max_length=64)
    config: Any = _json()
    status: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    lease_holder: Optional[str] = Field(default=None, max_length=128)
    lease_acquired_at: Optional[datetime] = None
    lease_heartbeat: Optional[datetime] = None


class StrategyStateRow(SQLModel, table=True):
    """The latest serialisable state of a run (one row per run, version counts saves)."""

    __tablename__ = "strategy_state"
    run_id: str = Field(primary_key=True, max_length=64, foreign_key="strategy_run.run_id")
    state: Any = _json()
    version: int = 1
    updated_at: datetime = Field(default_factory=utcnow)


class HedgeDecisionRow(SQLModel, table=True):
    """One decision of a strategy: inputs, the rule that fired, the intent, and resulting orders and fills."""

    __tablename__ = "hedge_decision"
    __table_args__ = (Index("ix_hedge_decision_run_ts", "run_id", "ts"),)
    id: Optional[int] = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    run_id: str = Field(max_length=64, foreign_key="strategy_run.run_id")
    ts: datetime
    rule: str = Field(default="", max_length=64)
    action: str = Field(default="", max_length=32)
    inputs: Any = _json()
    intent: Any = _json(nullable=True)
    order_ids: Any = _json()
    trade_ids: Any = _json()
    extra: Any = _json(nullable=True)


class OutboxRow(SQLModel, table=True):
    """An order intent written before it is sent: pending -> sent -> acked, or failed."""

    __tablename__ = "order_outbox"
    __table_args__ = (
        UniqueConstraint("client_order_id", name="uq_outbox_client_order_id"),
        Index("ix_order_outbox_status", "status"),
    )
    id: Optional[int] = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    client_order_id: str = Field(max_length=128)
    run_id: str = Field(max_length=64)
    venue: str = Field(max_length=32)
    account: str = Field(max_length=64)
    instrument: str = Field(max_length=64)
    side: str = Field(max_length=4)
    type: str = Field(max_length=8)
    tif: str = Field(max_length=24)
    post_only: bool = False
    reduce_only: bool = False
    amount: Decimal = _money()
    price: Optional[Decimal] = _money(nullable=True)
    reason: str = Field(default="", max_length=256)
    status: str = Field(max_length=8)
    venue_order_id: Optional[str] = Field(default=None, max_length=128)
    error: Optional[str] = Field(default=None, max_length=512)
    attempts: int = 0
    created_at: datetime
    updated_at: datetime


class SnapshotLayoutRow(SQLModel, table=True):
    """The key layout of packed snapshot vectors: ``[[path, typecode], ...]``, stored once per distinct layout."""

    __tablename__ = "snapshot_layout"
    __table_args__ = (UniqueConstraint("digest", name="uq_snapshot_layout_digest"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    digest: str = Field(max_length=40)
    fields: Any = _json()


class SnapshotRow(SQLModel, table=True):
    """A risk or margin snapshot: numbers packed little-endian per its layout, anything else as JSON."""

    __tablename__ = "snapshot"
    __table_args__ = (Index("ix_snapshot_kind_ts", "kind", "ts"),)
    id: Optional[int] = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    kind: str = Field(max_length=32)
    ts: int = Field(sa_column=Column(BigInteger, nullable=False))
    layout_id: int = Field(foreign_key="snapshot_layout.id")
    packed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    extra: Any = _json(nullable=True)


class AlertRow(SQLModel, table=True):
    """Something a human should see (margin alerts, lease takeovers, connector trouble)."""

    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_ts", "ts"),)
    id: Optional[int] = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    ts: datetime
    source: str = Field(max_length=64)
    severity: str = Field(max_length=8)
    code: str = Field(default="", max_length=64)
    message: str = Field(max_length=1024)
    data: Any = _json(nullable=True)


class BacktestRunRow(SQLModel, table=True):
    """A backtest: its config, time span, and full report (curves) as JSON."""

    __tablename__ = "backtest_run"
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=128)
    config: Any = _json()
    status: str = Field(default="done", max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    report: Any = _json(nullable=True)


class BacktestMetricRow(SQLModel, table=True):
    """One scalar metric of a backtest (hedging error, cost, PnL...), queryable across runs."""

    __tablename__ = "backtest_metric"
    __table_args__ = (UniqueConstraint("backtest_id", "name", name="uq_backtest_metric"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    backtest_id: str = Field(max_length=64, foreign_key="backtest_run.id")
    name: str = Field(max_length=64)
    value: Optional[float] = None  # NULL for a non-finite metric (SQLite has no NaN)


class MarketSymbolRow(SQLModel, table=True):
    """Dictionary of recorded market-data symbols (instrument names and index names) to small ids."""

    __tablename__ = "md_symbol"
    __table_args__ = (UniqueConstraint("venue", "name", name="uq_md_symbol"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    venue: str = Field(max_length=32)
    name: str = Field(max_length=64)


class MarketQuoteRow(SQLModel, table=True):
    """A recorded quote (top of book and marks) for replay."""

    __tablename__ = "md_quote"
    __table_args__ = (Index("ix_md_quote_ts", "ts"),)
    id: Optional[int] = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    ts: int = Field(sa_column=Column(BigInteger, nullable=False))
    symbol_id: int = Field(foreign_key="md_symbol.id")
    bid: Optional[float] = None
    ask: Optional[float] = None
    bid_size: Optional[float] = None
    ask_size: Optional[float] = None
    mark_price: Optional[float] = None
    mark_iv: Optional[float] = None
    bid_iv: Optional[float] = None
    ask_iv: Optional[float] = None
    underlying_price: Optional[float] = None
    index_price: Optional[float] = None
    open_interest: Optional[float] = None


class MarketTradeRow(SQLModel, table=True):
    """A recorded public trade print for replay; side +1 buy / -1 sell (taker)."""

    __tablename__ = "md_trade"
    __table_args__ = (Index("ix_md_trade_ts", "ts"),)
    id: Optional[int] = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    ts: int = Field(sa_column=Column(BigInteger, nullable=False))
    symbol_id: int = Field(foreign_key="md_symbol.id")
    price: float = Field(sa_column=Column(Float, nullable=False))
    amount: float = Field(sa_column=Column(Float, nullable=False))
    side: int = Field(sa_column=Column(SmallInteger, nullable=False))
    trade_id: Optional[str] = Field(default=None, max_length=64)


class MarketIndexRow(SQLModel, table=True):
    """A recorded index price (``symbol`` venue column holds the source, empty for the oracle index)."""

    __tablename__ = "md_index"
    __table_args__ = (Index("ix_md_index_ts", "ts"),)
    id: Optional[int] = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    ts: int = Field(sa_column=Column(BigInteger, nullable=False))
    symbol_id: int = Field(foreign_key="md_symbol.id")
    price: float = Field(sa_column=Column(Float, nullable=False))
    stale: bool = False


metadata = SQLModel.metadata
"""All tables of the store (what Alembic compares the migrations against)."""
