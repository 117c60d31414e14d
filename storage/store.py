"""The store: the only code that talks SQL. SQLite (WAL) by default, PostgreSQL by URL, same code.

    store = open_store(Path("desk.db"))            # or "postgresql+psycopg://desk:desk@127.0.0.1/desk"
    store.record_fill(fill, run_id="hedge-1")      # durable when it returns; False if already stored
    store.outbox_put("hedge-1", "h1-0001", request)
    store.record_snapshot("risk", now_ms, {"BTC": {"delta": 0.12}, "equity": 10.5})   # batched
    store.snapshots("risk", since_ms, until_ms)

Domain objects go in and come out; timestamps cross the boundary as epoch milliseconds UTC, money as Decimal.
Fills, orders, outbox entries, strategy state, decisions, leases are written synchronously (SQLite
``synchronous=FULL``: committed to disk before the method returns). Snapshots and recorded market data go
through a bounded queue to a writer thread and are committed in batches; reads flush it first.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Table, and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from app.domain import (
    Alert,
    Fill,
    IndexPrice,
    Instrument,
    Kind,
    Liquidity,
    MarginAlert,
    OptionType,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    Side,
    TimeInForce,
    Trade,
)
from app.errors import (
    InvalidInput,
    LeaseHeld,
    NotFound,
    SchemaMismatch,
    StoreError,
    StoreReadOnly,
)
from storage import migrate
from storage.engine import default_db_path, is_sqlite, make_engine, resolve_url, sqlite_path
from storage.faults import check_sqlite_file
from storage.faults import db_errors as _errors
from storage.models import (
    AccountRow,
    AlertRow,
    BacktestMetricRow,
    BacktestRunRow,
    FillRow,
    HedgeDecisionRow,
    InstrumentRow,
    LedgerEntryRow,
    MarketIndexRow,
    MarketQuoteRow,
    MarketSymbolRow,
    MarketTradeRow,
    OrderEventRow,
    OutboxRow,
    PositionRow,
    SnapshotLayoutRow,
    SnapshotRow,
    StrategyRunRow,
    StrategyStateRow,
)
from storage.snapshot_codec import Encoded, Layout, encode
from storage.types import canonical_decimal, check_money, dt_from_ms, json_loads, ms_from_dt
from storage.writer import BatchWriter

log = logging.getLogger(__name__)

__all__ = ["SqlStore", "open_store", "default_db_path", "Lease", "RUN_STATUSES", "OUTBOX_STATUSES"]

T_INSTRUMENT: Table = InstrumentRow.__table__  # type: ignore[assignment]
T_ACCOUNT: Table = AccountRow.__table__  # type: ignore[assignment]
T_LEDGER: Table = LedgerEntryRow.__table__  # type: ignore[assignment]
T_ORDER: Table = OrderEventRow.__table__  # type: ignore[assignment]
T_FILL: Table = FillRow.__table__  # type: ignore[assignment]
T_POSITION: Table = PositionRow.__table__  # type: ignore[assignment]
T_RUN: Table = StrategyRunRow.__table__  # type: ignore[assignment]
T_STATE: Table = StrategyStateRow.__table__  # type: ignore[assignment]
T_DECISION: Table = HedgeDecisionRow.__table__  # type: ignore[assignment]
T_OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]
T_LAYOUT: Table = SnapshotLayoutRow.__table__  # type: ignore[assignment]
T_SNAPSHOT: Table = SnapshotRow.__table__  # type: ignore[assignment]
T_ALERT: Table = AlertRow.__table__  # type: ignore[assignment]
T_BACKTEST: Table = BacktestRunRow.__table__  # type: ignore[assignment]
T_METRIC: Table = BacktestMetricRow.__table__  # type: ignore[assignment]
T_SYMBOL: Table = MarketSymbolRow.__table__  # type: ignore[assignment]
T_QUOTE: Table = MarketQuoteRow.__table__  # type: ignore[assignment]
T_TRADE: Table = MarketTradeRow.__table__  # type: ignore[assignment]
T_INDEX: Table = MarketIndexRow.__table__  # type: ignore[assignment]

RUN_STATUSES = ("dry_run", "active", "paused", "killed", "stopped")
"""Statuses of a strategy run (as in app.domain.StrategyStatus)."""

OUTBOX_STATUSES = ("pending", "sent", "acked", "failed")
"""Outbox lifecycle: pending (written, not sent) -> sent -> acked, or failed."""

_OUTBOX_NEXT = {
    "pending": {"pending", "sent", "acked", "failed"},
    "sent": {"sent", "acked", "failed"},
    "acked": {"acked"},
    "failed": {"failed"},
}
_QUOTE_FIELDS = (
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "mark_price",
    "mark_iv",
    "bid_iv",
    "ask_iv",
    "underlying_price",
    "index_price",
    "open_interest",
)
_DAY_MS = 86_400_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Lease:
    """The single-writer lease of a strategy run, as acquired.

    ``took_over_from`` names the previous holder when its lease was stale and was taken over
    (``stale_for_ms``: how long its heartbeat had been silent).
    """

    run_id: str
    holder: str
    acquired_ms: int
    heartbeat_ms: int
    took_over_from: str | None = None
    stale_for_ms: int | None = None


def _insert(conn: Connection, table: Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _opt_ms(dt: Any) -> int | None:
    return None if dt is None else ms_from_dt(dt)


def _check_id(label: str, value: Any, max_len: int = 128) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise InvalidInput(f"{label} must be a non-empty string of at most {max_len} characters, got {value!r}", field=label)
    return value


_LENGTHS: dict[str, dict[str, int]] = {}


def _fit(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Refuse strings longer than their column (PostgreSQL would fail the statement, SQLite would keep them)."""
    lengths = _LENGTHS.get(table.name)
    if lengths is None:
        lengths = {c.name: c.type.length for c in table.columns if getattr(c.type, "length", None)}
        _LENGTHS[table.name] = lengths
    for key, length in lengths.items():
        value = row.get(key)
        if isinstance(value, str) and len(value) > length:
            raise InvalidInput(
                f"{table.name}.{key} takes at most {length} characters, got {len(value)}: {value[:40]!r}…",
                code="input.too_long",
                field=key,
            )
    return row


def _check_ms(label: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{label} must be non-negative int epoch milliseconds, got {value!r}", field=label)
    return value


# --------------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------------


def _request_from(r: Any) -> OrderRequest:
    """The order request stored in an order or outbox row."""
    return OrderRequest(
        instrument=r.instrument,
        side=Side(r.side),
        amount=r.amount,
        price=r.price,
        type=OrderType(r.type),
        tif=TimeInForce(r.tif),
        post_only=r.post_only,
        reduce_only=r.reduce_only,
        client_order_id=r.client_order_id,
        account=r.account,
        reason=r.reason,
    )


class SqlStore:
    """app.ports.Store on SQLite or PostgreSQL (plus orders, positions, ledger, runs, leases, market data...).

    ``url_or_path``: a SQLite file path, or a SQLAlchemy URL (``sqlite:///…``, ``postgresql+psycopg://…``).
    ``read_only``: for fronts opening someone else's store (``--db``); every write raises StoreReadOnly.
    ``migrate``: bring an older schema up to date on open (otherwise SchemaMismatch ``store.schema_old``).
    """

    def __init__(
        self,
        url_or_path: Path | str,
        *,
        read_only: bool = False,
        migrate: bool = True,
        busy_timeout_ms: int = 30_000,
        pragmas: Mapping[str, Any] | None = None,
        queue_size: int = 50_000,
        batch_size: int = 5_000,
    ) -> None:
        self.url = resolve_url(url_or_path)
        self.read_only = read_only
        self.backend = "sqlite" if is_sqlite(self.url) else make_url(self.url).get_backend_name()
        self.path = sqlite_path(self.url) if self.backend == "sqlite" else None
        self._layouts_by_digest: dict[str, int] = {}
        self._layouts: dict[int, Layout] = {}
        self._symbols: dict[tuple[str, str], int] = {}
        self._symbol_names: dict[int, tuple[str, str]] = {}
        self._cache_lock = threading.Lock()
        self._closed = False
        self._writer: BatchWriter | None = None
        if self.backend == "sqlite" and self.path is None:
            raise StoreError(
                "an in-memory SQLite database cannot be shared with the store's writer thread; give a file path",
                code="store.unavailable",
            )
        if self.path is not None:
            check_sqlite_file(self.path, read_only=read_only)
        extra = dict(pragmas or {})
        self._engine: Engine = make_engine(
            self.url, read_only=read_only, busy_timeout_ms=busy_timeout_ms, pragmas=extra, synchronous="FULL"
        )
        # Snapshots and market data may lose the last batch on power loss (never corrupt): WAL + NORMAL.
        self._bulk: Engine = (
            self._engine
            if read_only
            else make_engine(
                self.url, busy_timeout_ms=busy_timeout_ms, pragmas=extra, synchronous="NORMAL", immediate=True, pool_size=1
            )
        )
        try:
            self._open_schema(migrate)
        except BaseException:
            self._dispose()
            raise
        if not read_only:
            self._writer = BatchWriter(self._write_batch, maxsize=queue_size, batch_size=batch_size)
            _OPEN_STORES.add(self)

    # -- lifecycle ------------------------------------------------------------------------------
    def _open_schema(self, do_migrate: bool) -> None:
        with _errors(f"open {self.describe()}"):
            with self._engine.connect() as conn:
                state = migrate.schema_state(conn)
                conn.rollback()
            if state is migrate.SchemaState.CURRENT:
                return
            if self.read_only or not do_migrate:
                if state is migrate.SchemaState.EMPTY and self.read_only:
                    raise StoreError(f"{self.describe()} holds no deltadesk data", code="store.empty")
                raise SchemaMismatch(
                    f"{self.describe()} has an older schema; run `desk db upgrade`", code="store.schema_old"
                )
            migrate.upgrade(self._engine)

    def describe(self) -> str:
        """The database as a human reads it (path, or URL without password)."""
        if self.path is not None:
            return str(self.path)
        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Write what is queued and release connections; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()
            self._log_writer_error()
        self._dispose()

    def _log_writer_error(self) -> None:
        if self._writer is not None:
            try:
                self._writer.flush(timeout_s=1.0)
            except StoreError as exc:
                log.error("store closed with a failed batch: %s", exc)

    def _dispose(self) -> None:
        self._engine.dispose()
        if self._bulk is not self._engine:
            self._bulk.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every queued snapshot/market-data row is committed; raise a batch's error."""
        if self._writer is not None:
            self._writer.flush(timeout_s)

    def revision(self) -> str | None:
        """The schema revision stamped in the database."""
        with _errors("read revision"), self._engine.connect() as conn:
            return migrate.current_revision(conn)

    def info(self) -> dict[str, Any]:
        """Backend, location, schema revision vs head, size on disk and row counts of the big tables."""
        with _errors("read store info"), self._engine.connect() as conn:
            counts = {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (T_FILL, T_ORDER, T_OUTBOX, T_SNAPSHOT, T_QUOTE, T_TRADE, T_INDEX, T_DECISION)
            }
            rev = migrate.current_revision(conn)
        return {
            "backend": self.backend,
            "database": self.describe(),
            "revision": rev,
            "head": migrate.head_revision(),
            "read_only": self.read_only,
            "size_bytes": self.size_bytes(),
            "rows": counts,
        }

    def size_bytes(self) -> int:
        """Bytes the database takes (SQLite: file + WAL; PostgreSQL: tables + indexes of this schema)."""
        if self.path is not None:
            return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        with _errors("measure size"), self._engine.connect() as conn:
            total = conn.exec_driver_sql(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            ).scalar_one()
        return int(total)

    def check_integrity(self) -> str:
        """SQLite ``PRAGMA integrity_check`` ('ok' when sound; reads the whole file); 'ok' on PostgreSQL."""
        if self.backend != "sqlite":
            return "ok"
        with self._read("integrity check") as conn:
            return "; ".join(str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check"))

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreReadOnly(f"{self.describe()} is open read-only")
        if self._closed:
            raise StoreError("the store is closed", code="store.closed")

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        self._check_writable()
        with _errors(action), self._engine.connect() as plain:
            conn = plain.execution_options(desk_immediate=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        if self._closed:
            raise StoreError("the store is closed", code="store.closed")
        with _errors(action), self._engine.connect() as conn:
            yield conn

    # -- fills ----------------------------------------------------------------------------------
    @staticmethod
    def _fill_row(fill: Fill, run_id: str | None) -> dict[str, Any]:
        if not isinstance(fill, Fill):
            raise InvalidInput(f"expected a Fill, got {type(fill).__name__}", code="input.type")
        _check_id("trade_id", fill.trade_id)
        _check_ms("fill.ts", fill.ts)
        return _fit(T_FILL, {
            "venue": fill.venue,
            "trade_id": fill.trade_id,
            "order_id": fill.order_id,
            "client_order_id": fill.client_order_id,
            "run_id": run_id,
            "account": fill.account,
            "instrument": fill.instrument,
            "side": Side(fill.side).value,
            # money is validated and rounded once, by the Money column type as the row is bound
            "price": fill.price,
            "amount": fill.amount,
            "fee": fill.fee,
            "fee_currency": fill.fee_currency,
            "liquidity": Liquidity(fill.liquidity).value,
            "index_price": fill.index_price,
            "ts": dt_from_ms(fill.ts),
        })

    def record_fill(self, fill: Fill, run_id: str | None = None) -> bool:
        """Store a fill durably; False when (venue, trade_id) was already stored (replay is a no-op)."""
        row = self._fill_row(fill, run_id)
        with self._write(f"record fill {fill.trade_id}") as conn:
            stmt = (
                _insert(conn, T_FILL)
                .values(**row)
                .on_conflict_do_nothing(index_elements=["venue", "trade_id"])
                .returning(T_FILL.c.id)
            )
            return conn.execute(stmt).first() is not None

    def record_fills(self, fills: Sequence[Fill], run_id: str | None = None) -> int:
        """Store many fills in one durable transaction; returns how many were new (duplicates are no-ops)."""
        rows = [self._fill_row(f, run_id) for f in fills]
        if not rows:
            return 0
        with self._write(f"record {len(rows)} fills") as conn:
            if conn.dialect.name == "postgresql":
                return self._pg_insert_fills(conn, rows)
            return self._sqlite_insert_fills(conn, rows)

    _SQLITE_BINDS: dict[str, Any] = {}

    @classmethod
    def _sqlite_insert_fills(cls, conn: Connection, rows: list[dict[str, Any]]) -> int:
        # The driver's executemany with the columns' own bind processors: same stored bytes as SQLAlchemy's
        # insert, a third of the CPU (this is the path a fill burst takes). rowcount counts only new rows.
        cols = list(rows[0])
        procs = [cls._SQLITE_BINDS.get(c) for c in cols]
        if any(p is None for p in procs):
            for c in cols:
                proc = T_FILL.c[c].type._cached_bind_processor(conn.dialect)  # what SQLAlchemy itself uses
                cls._SQLITE_BINDS[c] = proc or (lambda v: v)
            procs = [cls._SQLITE_BINDS[c] for c in cols]
        sql = (
            f"INSERT INTO {T_FILL.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            "ON CONFLICT (venue, trade_id) DO NOTHING"
        )
        params = [tuple(p(r[c]) for p, c in zip(procs, cols)) for r in rows]
        raw: Any = conn.connection.driver_connection
        cur = raw.cursor()
        try:
            cur.executemany(sql, params)
            return int(cur.rowcount)
        finally:
            cur.close()

    @staticmethod
    def _pg_insert_fills(conn: Connection, rows: list[dict[str, Any]]) -> int:
        # One statement over column arrays (unnest): a multi-row VALUES of 1,000 x 15 parameters costs psycopg
        # more to parse than PostgreSQL takes to insert it.
        cols = list(rows[0])
        casts = {"price": "numeric", "amount": "numeric", "fee": "numeric", "index_price": "float8", "ts": "timestamptz"}
        arrays = [[check_money(r[c]) for r in rows] if c in casts and casts[c] == "numeric" else [r[c] for r in rows]
                  for c in cols]
        params = ", ".join(f"%s::{casts.get(c, 'text')}[]" for c in cols)
        sql = (
            f"INSERT INTO {T_FILL.name} ({', '.join(cols)}) SELECT * FROM unnest({params}) "
            "ON CONFLICT (venue, trade_id) DO NOTHING RETURNING id"
        )
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur:  # same connection, so inside this store transaction
            cur.execute(sql, arrays)
            return len(cur.fetchall())

    @staticmethod
    def _fill_from(r: Any) -> Fill:
        return Fill(
            trade_id=r.trade_id,
            order_id=r.order_id,
            instrument=r.instrument,
            side=Side(r.side),
            price=r.price,
            amount=r.amount,
            fee=r.fee,
            fee_currency=r.fee_currency,
            liquidity=Liquidity(r.liquidity),
            ts=ms_from_dt(r.ts),
            account=r.account,
            client_order_id=r.client_order_id,
            venue=r.venue,
            index_price=r.index_price,
        )

    def fills(
        self,
        *,
        run_id: str | None = None,
        venue: str | None = None,
        instrument: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int | None = None,
    ) -> list[Fill]:
        """Stored fills, oldest first, filtered by run, venue, instrument and time (inclusive, epoch ms)."""
        q = select(T_FILL)
        if run_id is not None:
            q = q.where(T_FILL.c.run_id == run_id)
        if venue is not None:
            q = q.where(T_FILL.c.venue == venue)
        if instrument is not None:
            q = q.where(T_FILL.c.instrument == instrument)
        if since_ms is not None:
            q = q.where(T_FILL.c.ts >= dt_from_ms(since_ms))
        if until_ms is not None:
            q = q.where(T_FILL.c.ts <= dt_from_ms(until_ms))
        q = q.order_by(T_FILL.c.ts, T_FILL.c.id)
        if limit is not None:
            q = q.limit(limit)
        with self._read("read fills") as conn:
            return [self._fill_from(r) for r in conn.execute(q)]

    def fill_count(self, venue: str | None = None) -> int:
        """How many fills are stored (of one venue)."""
        q = select(func.count()).select_from(T_FILL)
        if venue is not None:
            q = q.where(T_FILL.c.venue == venue)
        with self._read("count fills") as conn:
            return int(conn.execute(q).scalar_one())

    # -- orders ---------------------------------------------------------------------------------
    def record_order(self, order: Order, run_id: str | None = None, venue: str = "sim") -> None:
        """Append an order state change (durable)."""
        if not isinstance(order, Order):
            raise InvalidInput(f"expected an Order, got {type(order).__name__}", code="input.type")
        _check_id("order_id", order.order_id)
        req = order.request
        row = {
            "venue": venue,
            "order_id": order.order_id,
            "client_order_id": req.client_order_id,
            "run_id": run_id,
            "account": req.account,
            "instrument": req.instrument,
            "side": Side(req.side).value,
            "type": OrderType(req.type).value,
            "tif": TimeInForce(req.tif).value,
            "post_only": req.post_only,
            "reduce_only": req.reduce_only,
            "amount": canonical_decimal(req.amount),
            "price": None if req.price is None else canonical_decimal(req.price),
            "status": OrderStatus(order.status).value,
            "filled": canonical_decimal(order.filled),
            "average_price": None if order.average_price is None else canonical_decimal(order.average_price),
            "reject_code": order.reject_code,
            "reason": (req.reason or "")[:256],
            "ts": dt_from_ms(_check_ms("order.ts", order.ts)),
        }
        _fit(T_ORDER, row)
        with self._write(f"record order {order.order_id}") as conn:
            conn.execute(T_ORDER.insert().values(**row))

    @staticmethod
    def _order_from(r: Any) -> Order:
        req = _request_from(r)
        return Order(
            order_id=r.order_id,
            request=req,
            status=OrderStatus(r.status),
            filled=r.filled,
            average_price=r.average_price,
            ts=ms_from_dt(r.ts),
            reject_code=r.reject_code,
        )

    def orders(self, *, run_id: str | None = None, venue: str | None = None, open_only: bool = False) -> list[Order]:
        """The latest state of every order (of a run / venue), oldest order first; ``open_only``: not terminal."""
        latest = select(func.max(T_ORDER.c.id).label("id")).group_by(T_ORDER.c.venue, T_ORDER.c.order_id)
        if venue is not None:
            latest = latest.where(T_ORDER.c.venue == venue)
        sub = latest.subquery()
        q = select(T_ORDER).join(sub, T_ORDER.c.id == sub.c.id)
        if run_id is not None:
            q = q.where(T_ORDER.c.run_id == run_id)
        if open_only:
            q = q.where(T_ORDER.c.status.in_([OrderStatus.PENDING.value, OrderStatus.OPEN.value]))
        with self._read("read orders") as conn:
            return [self._order_from(r) for r in conn.execute(q.order_by(T_ORDER.c.id))]

    def order_history(self, order_id: str, venue: str | None = None) -> list[Order]:
        """Every recorded state of one order, oldest first."""
        q = select(T_ORDER).where(T_ORDER.c.order_id == order_id)
        if venue is not None:
            q = q.where(T_ORDER.c.venue == venue)
        with self._read(f"read order {order_id}") as conn:
            return [self._order_from(r) for r in conn.execute(q.order_by(T_ORDER.c.id))]

    # -- outbox ---------------------------------------------------------------------------------
    def outbox_put(self, run_id: str, client_order_id: str, request: OrderRequest, venue: str = "sim") -> bool:
        """Write an order intent before it is sent (status pending), durably; idempotent on client_order_id.

        Returns True when written now, False when the entry already existed (it is left unchanged).
        """
        _check_id("run_id", run_id, 64)
        _check_id("client_order_id", client_order_id)
        if not isinstance(request, OrderRequest):
            raise InvalidInput(f"expected an OrderRequest, got {type(request).__name__}", code="input.type")
        now = dt_from_ms(_now_ms())
        row = {
            "client_order_id": client_order_id,
            "run_id": run_id,
            "venue": venue,
            "account": request.account,
            "instrument": request.instrument,
            "side": Side(request.side).value,
            "type": OrderType(request.type).value,
            "tif": TimeInForce(request.tif).value,
            "post_only": request.post_only,
            "reduce_only": request.reduce_only,
            "amount": canonical_decimal(request.amount),
            "price": None if request.price is None else canonical_decimal(request.price),
            "reason": (request.reason or "")[:256],
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        _fit(T_OUTBOX, row)
        with self._write(f"outbox put {client_order_id}") as conn:
            stmt = (
                _insert(conn, T_OUTBOX)
                .values(**row)
                .on_conflict_do_nothing(index_elements=["client_order_id"])
                .returning(T_OUTBOX.c.id)
            )
            return conn.execute(stmt).first() is not None

    def outbox_mark(
        self, client_order_id: str, status: str, venue_order_id: str | None = None, error: str | None = None
    ) -> None:
        """Move an outbox entry to sent / acked / failed (durably); refuse going backwards."""
        if status not in OUTBOX_STATUSES:
            raise InvalidInput(f"outbox status must be one of {', '.join(OUTBOX_STATUSES)}, got {status!r}", field="status")
        with self._write(f"outbox mark {client_order_id}") as conn:
            row = conn.execute(
                select(T_OUTBOX.c.status, T_OUTBOX.c.attempts)
                .where(T_OUTBOX.c.client_order_id == client_order_id)
                .with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"no outbox entry with client_order_id {client_order_id!r}", code="outbox.not_found")
            if status not in _OUTBOX_NEXT[row.status]:
                raise InvalidInput(
                    f"outbox entry {client_order_id} is {row.status}; it cannot become {status}",
                    code="outbox.transition",
                )
            values: dict[str, Any] = {"status": status, "updated_at": dt_from_ms(_now_ms())}
            if status == "sent":
                values["attempts"] = row.attempts + 1
            if venue_order_id is not None:
                values["venue_order_id"] = venue_order_id
            if error is not None:
                values["error"] = error[:512]
            conn.execute(update(T_OUTBOX).where(T_OUTBOX.c.client_order_id == client_order_id).values(**values))

    @staticmethod
    def _outbox_from(r: Any) -> dict[str, Any]:
        request = _request_from(r)
        return {
            "client_order_id": r.client_order_id,
            "run_id": r.run_id,
            "venue": r.venue,
            "status": r.status,
            "venue_order_id": r.venue_order_id,
            "error": r.error,
            "attempts": r.attempts,
            "created_ms": ms_from_dt(r.created_at),
            "updated_ms": ms_from_dt(r.updated_at),
            "request": request,
        }

    def outbox_pending(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Outbox entries not yet acked or failed (pending or sent), oldest first; ``request`` is an OrderRequest."""
        return self.outbox(run_id=run_id, statuses=("pending", "sent"))

    def outbox(self, *, run_id: str | None = None, statuses: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Outbox entries (of a run, with given statuses), oldest first."""
        q = select(T_OUTBOX)
        if run_id is not None:
            q = q.where(T_OUTBOX.c.run_id == run_id)
        if statuses is not None:
            q = q.where(T_OUTBOX.c.status.in_(list(statuses)))
        with self._read("read outbox") as conn:
            return [self._outbox_from(r) for r in conn.execute(q.order_by(T_OUTBOX.c.id))]

    def outbox_get(self, client_order_id: str) -> dict[str, Any] | None:
        """One outbox entry, or None."""
        with self._read("read outbox") as conn:
            r = conn.execute(select(T_OUTBOX).where(T_OUTBOX.c.client_order_id == client_order_id)).first()
        return None if r is None else self._outbox_from(r)

    # -- asyncio callers ------------------------------------------------------------------------
    async def record_fill_async(self, fill: Fill, run_id: str | None = None) -> bool:
        """:meth:`record_fill` in a worker thread, so the event loop keeps running during the fsync."""
        return await asyncio.to_thread(self.record_fill, fill, run_id)

    async def outbox_put_async(
        self, run_id: str, client_order_id: str, request: OrderRequest, venue: str = "sim"
    ) -> bool:
        """:meth:`outbox_put` in a worker thread."""
        return await asyncio.to_thread(self.outbox_put, run_id, client_order_id, request, venue)

    async def outbox_mark_async(
        self, client_order_id: str, status: str, venue_order_id: str | None = None, error: str | None = None
    ) -> None:
        """:meth:`outbox_mark` in a worker thread."""
        await asyncio.to_thread(self.outbox_mark, client_order_id, status, venue_order_id, error)

    # -- strategy runs, state, leases -----------------------------------------------------------
    @staticmethod
    def _ensure_run(conn: Connection, run_id: str) -> None:
        _check_id("run_id", run_id, 64)
        now = dt_from_ms(_now_ms())
        stmt = (
            _insert(conn, T_RUN)
            .values(run_id=run_id, name="", config={}, status="dry_run", created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["run_id"])
        )
        conn.execute(stmt)

    @staticmethod
    def _run_from(r: Any) -> dict[str, Any]:
        return {
            "run_id": r.run_id,
            "name": r.name,
            "config": r.config,
            "status": r.status,
            "created_ms": ms_from_dt(r.created_at),
            "updated_ms": ms_from_dt(r.updated_at),
            "lease_holder": r.lease_holder,
            "lease_acquired_ms": _opt_ms(r.lease_acquired_at),
            "lease_heartbeat_ms": _opt_ms(r.lease_heartbeat),
        }

    def create_run(
        self, run_id: str, name: str = "", config: Mapping[str, Any] | None = None, status: str = "dry_run"
    ) -> dict[str, Any]:
        """Register a strategy run (config as JSON); raise InvalidInput ``run.exists`` if it is registered."""
        _check_id("run_id", run_id, 64)
        if status not in RUN_STATUSES:
            raise InvalidInput(f"run status must be one of {', '.join(RUN_STATUSES)}, got {status!r}", field="status")
        now = dt_from_ms(_now_ms())
        with self._write(f"create run {run_id}") as conn:
            stmt = (
                _insert(conn, T_RUN)
                .values(run_id=run_id, name=name, config=dict(config or {}), status=status, created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=["run_id"])
                .returning(T_RUN.c.run_id)
            )
            if conn.execute(stmt).first() is None:
                raise InvalidInput(f"strategy run {run_id!r} already exists", code="run.exists")
            r = conn.execute(select(T_RUN).where(T_RUN.c.run_id == run_id)).one()
            return self._run_from(r)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run's config, status and lease, or None."""
        with self._read(f"read run {run_id}") as conn:
            r = conn.execute(select(T_RUN).where(T_RUN.c.run_id == run_id)).first()
        return None if r is None else self._run_from(r)

    def list_runs(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every run (with a status), oldest first."""
        q = select(T_RUN)
        if status is not None:
            q = q.where(T_RUN.c.status == status)
        with self._read("list runs") as conn:
            return [self._run_from(r) for r in conn.execute(q.order_by(T_RUN.c.created_at, T_RUN.c.run_id))]

    def set_run_status(self, run_id: str, status: str) -> None:
        """Change a run's status (dry_run, active, paused, killed, stopped); NotFound for an unknown run."""
        if status not in RUN_STATUSES:
            raise InvalidInput(f"run status must be one of {', '.join(RUN_STATUSES)}, got {status!r}", field="status")
        with self._write(f"set run {run_id} status") as conn:
            res = conn.execute(
                update(T_RUN).where(T_RUN.c.run_id == run_id).values(status=status, updated_at=dt_from_ms(_now_ms()))
            )
            if res.rowcount != 1:
                raise NotFound(f"no strategy run {run_id!r}", code="run.not_found")

    def save_strategy_state(self, run_id: str, state: dict[str, Any]) -> None:
        """Persist a strategy's serialisable state durably (Decimals and non-finite floats survive)."""
        if not isinstance(state, dict):
            raise InvalidInput(f"strategy state must be a dict, got {type(state).__name__}", code="input.type")
        now = dt_from_ms(_now_ms())
        with self._write(f"save state of {run_id}") as conn:
            self._ensure_run(conn, run_id)
            ins = _insert(conn, T_STATE).values(run_id=run_id, state=state, version=1, updated_at=now)
            stmt = ins.on_conflict_do_update(
                index_elements=["run_id"],
                set_={"state": ins.excluded.state, "version": T_STATE.c.version + 1, "updated_at": ins.excluded.updated_at},
            )
            conn.execute(stmt)

    def load_strategy_state(self, run_id: str) -> dict[str, Any] | None:
        """The last saved state of a run, or None."""
        with self._read(f"load state of {run_id}") as conn:
            r = conn.execute(select(T_STATE.c.state).where(T_STATE.c.run_id == run_id)).first()
        return None if r is None else r.state

    def acquire_lease(
        self, run_id: str, holder: str, *, stale_after_s: float = 30.0, now_ms: int | None = None
    ) -> Lease:
        """Become the single writer of a run; take over a lease whose heartbeat is older than ``stale_after_s``.

        Raises LeaseHeld when another holder's heartbeat is fresh. A takeover is logged, stored as an alert,
        and reported in ``Lease.took_over_from``.
        """
        _check_id("holder", holder)
        now = _now_ms() if now_ms is None else _check_ms("now_ms", now_ms)
        stale_ms = int(stale_after_s * 1000)
        with self._write(f"acquire lease of {run_id}") as conn:
            self._ensure_run(conn, run_id)
            r = conn.execute(
                select(T_RUN.c.lease_holder, T_RUN.c.lease_heartbeat, T_RUN.c.lease_acquired_at)
                .where(T_RUN.c.run_id == run_id)
                .with_for_update()
            ).one()
            prev, beat = r.lease_holder, _opt_ms(r.lease_heartbeat)
            took_over: str | None = None
            stale_for: int | None = None
            acquired = now
            if prev is not None and prev != holder:
                age = now - (beat or 0)
                if age <= stale_ms:
                    raise LeaseHeld(
                        f"strategy run {run_id} is driven by {prev} (heartbeat {age / 1000:.1f} s ago, stale after "
                        f"{stale_after_s:g} s)",
                        run_id=run_id,
                        holder=prev,
                        heartbeat_age_ms=age,
                    )
                took_over, stale_for = prev, age
            elif prev == holder and r.lease_acquired_at is not None:
                acquired = ms_from_dt(r.lease_acquired_at)
            conn.execute(
                update(T_RUN)
                .where(T_RUN.c.run_id == run_id)
                .values(lease_holder=holder, lease_heartbeat=dt_from_ms(now), lease_acquired_at=dt_from_ms(acquired))
            )
            if took_over is not None:
                message = (
                    f"{holder} took over the lease of run {run_id} from {took_over}, whose heartbeat was silent for "
                    f"{(stale_for or 0) / 1000:.1f} s"
                )
                log.warning(message)
                conn.execute(
                    T_ALERT.insert().values(
                        ts=dt_from_ms(now),
                        source="store.lease",
                        severity="warning",
                        code="store.lease_takeover",
                        message=message,
                        data={"run_id": run_id, "holder": holder, "previous": took_over, "stale_for_ms": stale_for},
                    )
                )
        return Lease(run_id, holder, acquired, now, took_over, stale_for)

    def heartbeat(self, run_id: str, holder: str, *, now_ms: int | None = None) -> None:
        """Refresh a held lease; raise LeaseHeld (``store.lease_lost``) when it was taken over."""
        now = _now_ms() if now_ms is None else _check_ms("now_ms", now_ms)
        with self._write(f"heartbeat {run_id}") as conn:
            res = conn.execute(
                update(T_RUN)
                .where(and_(T_RUN.c.run_id == run_id, T_RUN.c.lease_holder == holder))
                .values(lease_heartbeat=dt_from_ms(now))
            )
            if res.rowcount != 1:
                cur = conn.execute(select(T_RUN.c.lease_holder).where(T_RUN.c.run_id == run_id)).first()
                raise LeaseHeld(
                    f"{holder} no longer holds the lease of run {run_id} (holder now: {cur.lease_holder if cur else None})",
                    code="store.lease_lost",
                    run_id=run_id,
                    holder=cur.lease_holder if cur else None,
                )

    def release_lease(self, run_id: str, holder: str) -> bool:
        """Give a lease up; False when ``holder`` did not hold it."""
        with self._write(f"release lease of {run_id}") as conn:
            res = conn.execute(
                update(T_RUN)
                .where(and_(T_RUN.c.run_id == run_id, T_RUN.c.lease_holder == holder))
                .values(lease_holder=None, lease_heartbeat=None, lease_acquired_at=None)
            )
            return res.rowcount == 1

    # -- hedge decisions ------------------------------------------------------------------------
    _DECISION_KEYS = frozenset({"ts", "rule", "action", "inputs", "intent", "order_ids", "trade_ids", "orders", "fills"})

    def record_decision(self, run_id: str, decision: dict[str, Any]) -> int:
        """Store one hedge decision (keys ts, rule, action, inputs, intent, order_ids, trade_ids; others kept).

        Returns the decision's id (for :meth:`attach_decision_result`).
        """
        if not isinstance(decision, dict):
            raise InvalidInput(f"a decision must be a dict, got {type(decision).__name__}", code="input.type")
        ts = decision.get("ts")
        ts = _now_ms() if ts is None else _check_ms("decision.ts", ts)
        extra = {k: v for k, v in decision.items() if k not in self._DECISION_KEYS}
        row = {
            "run_id": run_id,
            "ts": dt_from_ms(ts),
            "rule": str(decision.get("rule", ""))[:64],
            "action": str(decision.get("action", ""))[:32],
            "inputs": decision.get("inputs") or {},
            "intent": decision.get("intent"),
            "order_ids": list(decision.get("order_ids", decision.get("orders")) or []),
            "trade_ids": list(decision.get("trade_ids", decision.get("fills")) or []),
            "extra": extra or None,
        }
        with self._write(f"record decision of {run_id}") as conn:
            self._ensure_run(conn, run_id)
            return int(conn.execute(T_DECISION.insert().values(**row).returning(T_DECISION.c.id)).scalar_one())

    def attach_decision_result(
        self, decision_id: int, *, order_ids: Sequence[str] = (), trade_ids: Sequence[str] = ()
    ) -> None:
        """Append the orders and fills that resulted from a decision."""
        with self._write(f"update decision {decision_id}") as conn:
            r = conn.execute(
                select(T_DECISION.c.order_ids, T_DECISION.c.trade_ids).where(T_DECISION.c.id == decision_id).with_for_update()
            ).first()
            if r is None:
                raise NotFound(f"no decision {decision_id}", code="decision.not_found")
            conn.execute(
                update(T_DECISION)
                .where(T_DECISION.c.id == decision_id)
                .values(order_ids=list(r.order_ids) + list(order_ids), trade_ids=list(r.trade_ids) + list(trade_ids))
            )

    def decisions(
        self,
        run_id: str | None = None,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Stored decisions (of a run, in a time range), as dicts with ``id``, ``run_id`` and the recorded keys."""
        q = select(T_DECISION)
        if run_id is not None:
            q = q.where(T_DECISION.c.run_id == run_id)
        if since_ms is not None:
            q = q.where(T_DECISION.c.ts >= dt_from_ms(since_ms))
        if until_ms is not None:
            q = q.where(T_DECISION.c.ts <= dt_from_ms(until_ms))
        order = (T_DECISION.c.ts.desc(), T_DECISION.c.id.desc()) if newest_first else (T_DECISION.c.ts, T_DECISION.c.id)
        q = q.order_by(*order)
        if limit is not None:
            q = q.limit(limit)
        out = []
        with self._read("read decisions") as conn:
            for r in conn.execute(q):
                d = dict(r.extra or {})
                d.update(
                    id=r.id,
                    run_id=r.run_id,
                    ts=ms_from_dt(r.ts),
                    rule=r.rule,
                    action=r.action,
                    inputs=r.inputs,
                    intent=r.intent,
                    order_ids=r.order_ids,
                    trade_ids=r.trade_ids,
                )
                out.append(d)
        return out

    # -- snapshots (batched) --------------------------------------------------------------------
    def record_snapshot(self, kind: str, ts: int, data: dict[str, Any]) -> None:
        """Queue a risk/margin snapshot for the writer thread (committed in batches, within ~ms)."""
        self._check_writable()
        _check_id("kind", kind, 32)
        _check_ms("ts", ts)
        enc = encode(data)
        assert self._writer is not None
        self._writer.submit(("snapshot", kind, ts, enc))

    def _layout(self, conn: Connection, layout_id: int) -> Layout:
        layout = self._layouts.get(layout_id)
        if layout is None:
            fields = conn.execute(select(T_LAYOUT.c.fields).where(T_LAYOUT.c.id == layout_id)).scalar_one()
            layout = Layout(layout_id, fields)
            with self._cache_lock:
                self._layouts[layout_id] = layout
        return layout

    def _layout_id(self, conn: Connection, enc: Encoded) -> int:
        digest = enc.digest
        lid = self._layouts_by_digest.get(digest)
        if lid is not None:
            return lid
        fields = [[list(p), c] for p, c in enc.fields]
        conn.execute(
            _insert(conn, T_LAYOUT).values(digest=digest, fields=fields).on_conflict_do_nothing(index_elements=["digest"])
        )
        lid = int(conn.execute(select(T_LAYOUT.c.id).where(T_LAYOUT.c.digest == digest)).scalar_one())
        with self._cache_lock:
            self._layouts_by_digest[digest] = lid
        return lid

    def _decode(self, conn: Connection, r: Any) -> dict[str, Any]:
        data = self._layout(conn, r.layout_id).decode(r.packed, r.extra)
        data["ts"] = int(r.ts)
        return data

    def latest_snapshot(self, kind: str) -> dict[str, Any] | None:
        """The newest snapshot of a kind (its data plus ``ts`` epoch ms), or None."""
        self.flush()
        q = (
            select(T_SNAPSHOT.c.ts, T_SNAPSHOT.c.layout_id, T_SNAPSHOT.c.packed, T_SNAPSHOT.c.extra)
            .where(T_SNAPSHOT.c.kind == kind)
            .order_by(T_SNAPSHOT.c.ts.desc(), T_SNAPSHOT.c.id.desc())
            .limit(1)
        )
        with self._read(f"read latest {kind} snapshot") as conn:
            r = conn.execute(q).first()
            return None if r is None else self._decode(conn, r)

    def snapshots(self, kind: str, since_ms: int, until_ms: int) -> list[dict[str, Any]]:
        """Snapshots of a kind with since_ms <= ts <= until_ms, oldest first (data plus ``ts``)."""
        self.flush()
        _check_ms("since_ms", since_ms)
        _check_ms("until_ms", until_ms)
        out: list[dict[str, Any]] = []
        with self._read(f"read {kind} snapshots") as conn:
            rows = self._raw_snapshot_rows(conn, kind, since_ms, until_ms, with_extra=True)
            layouts = {lid: self._layout(conn, lid) for lid in {r[1] for r in rows}}
        for ts, lid, packed, extra in rows:
            data = layouts[lid].decode(packed, None if extra is None else json_loads(extra))
            data["ts"] = int(ts)
            out.append(data)
        return out

    def _raw_snapshot_rows(
        self, conn: Connection, kind: str, since_ms: int, until_ms: int, *, with_extra: bool
    ) -> list[tuple[Any, ...]]:
        # The driver's own cursor: a day is ~86,400 rows, and SQLAlchemy's per-row objects would double the time.
        pg = self.backend == "postgresql"
        mark = "%s" if pg else "?"
        cols = "ts, layout_id, packed" + (", CAST(extra AS TEXT)" if with_extra else "")
        sql = (
            f"SELECT {cols} FROM {T_SNAPSHOT.name} WHERE kind = {mark} AND ts >= {mark} AND ts <= {mark} ORDER BY ts, id"
        )
        raw: Any = conn.connection.driver_connection
        cur = raw.cursor(binary=True) if pg else raw.cursor()
        try:
            cur.execute(sql, (kind, since_ms, until_ms))
            return list(cur.fetchall())
        finally:
            cur.close()

    def snapshot_series(
        self, kind: str, since_ms: int, until_ms: int, fields: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Snapshots as numpy columns for charts: ``ts`` (int64 ms) plus one float/int column per dotted path.

        A path missing from some snapshots is NaN there. This is the dashboard's fast path (one frombuffer per
        layout instead of a dict per row).
        """
        self.flush()
        _check_ms("since_ms", since_ms)
        _check_ms("until_ms", until_ms)
        with self._read(f"read {kind} series") as conn:
            rows = self._raw_snapshot_rows(conn, kind, since_ms, until_ms, with_extra=False)
            layout_ids = sorted({r[1] for r in rows})
            layouts = {lid: self._layout(conn, lid) for lid in layout_ids}
        n = len(rows)
        out: dict[str, np.ndarray] = {"ts": np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)}
        if n == 0:
            for name in fields or ():
                out[name] = np.empty(0)
            return out
        if len(layouts) == 1:
            cols = next(iter(layouts.values())).columns([r[2] for r in rows])
            for name, col in cols.items():
                if fields is None or name in fields:
                    out[name] = col
            for name in fields or ():
                out.setdefault(name, np.full(n, np.nan))
            return out
        lids = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
        wanted: list[str] = list(fields) if fields is not None else []
        if fields is None:
            for layout in layouts.values():
                wanted.extend(x for x in layout.names if x not in wanted)
        merged = {name: np.full(n, np.nan) for name in wanted}
        for lid, layout in layouts.items():
            idx = np.nonzero(lids == lid)[0]
            cols = layout.columns([rows[i][2] for i in idx])
            for name, col in cols.items():
                if name in merged:
                    merged[name][idx] = col
        out.update(merged)
        return out

    def snapshot_kinds(self) -> list[str]:
        """Kinds of snapshot stored."""
        self.flush()
        with self._read("read snapshot kinds") as conn:
            return list(conn.execute(select(T_SNAPSHOT.c.kind).distinct().order_by(T_SNAPSHOT.c.kind)).scalars())

    # -- market data (batched) ------------------------------------------------------------------
    def record_market(self, events: Quote | Trade | IndexPrice | Iterable[Quote | Trade | IndexPrice]) -> int:
        """Queue quotes, trades and index prices for recording (compact rows); returns how many were queued."""
        self._check_writable()
        assert self._writer is not None
        items = [events] if isinstance(events, (Quote, Trade, IndexPrice)) else list(events)
        prepared = []
        for ev in items:
            if not isinstance(ev, (Quote, Trade, IndexPrice)):
                raise InvalidInput(f"cannot record {type(ev).__name__} as market data", code="input.type")
            _check_ms("ts", ev.ts)
            if isinstance(ev, Quote):
                prepared.append(("quote", ev.venue, ev.instrument, ev.ts, tuple(getattr(ev, f) for f in _QUOTE_FIELDS)))
            elif isinstance(ev, Trade):
                side = 1 if Side(ev.side) is Side.BUY else -1
                prepared.append(("trade", ev.venue, ev.instrument, ev.ts, (ev.price, ev.amount, side, ev.trade_id or None)))
            else:
                prepared.append(("index", ev.source, ev.index, ev.ts, (ev.price, ev.stale)))
        for item in prepared:
            self._writer.submit(item)
        return len(prepared)

    def _symbol_id(self, conn: Connection, venue: str, name: str) -> int:
        key = (venue, name)
        sid = self._symbols.get(key)
        if sid is not None:
            return sid
        conn.execute(
            _insert(conn, T_SYMBOL).values(venue=venue, name=name).on_conflict_do_nothing(index_elements=["venue", "name"])
        )
        sid = int(
            conn.execute(select(T_SYMBOL.c.id).where(T_SYMBOL.c.venue == venue, T_SYMBOL.c.name == name)).scalar_one()
        )
        with self._cache_lock:
            self._symbols[key] = sid
            self._symbol_names[sid] = key
        return sid

    def _write_batch(self, items: list[Any]) -> None:
        """Writer thread: commit one batch of snapshots and market data in one transaction."""
        snaps: list[dict[str, Any]] = []
        quotes: list[dict[str, Any]] = []
        trades: list[dict[str, Any]] = []
        indexes: list[dict[str, Any]] = []
        with _errors(f"write a batch of {len(items)} rows"), self._bulk.begin() as conn:
            for item in items:
                tag = item[0]
                if tag == "snapshot":
                    _, kind, ts, enc = item
                    snaps.append(
                        {"kind": kind, "ts": ts, "layout_id": self._layout_id(conn, enc), "packed": enc.packed, "extra": enc.extra}
                    )
                elif tag == "quote":
                    _, venue, name, ts, values = item
                    row = dict(zip(_QUOTE_FIELDS, values))
                    row.update(ts=ts, symbol_id=self._symbol_id(conn, venue, name))
                    quotes.append(row)
                elif tag == "trade":
                    _, venue, name, ts, (price, amount, side, trade_id) = item
                    trades.append(
                        {"ts": ts, "symbol_id": self._symbol_id(conn, venue, name), "price": price, "amount": amount,
                         "side": side, "trade_id": trade_id}
                    )
                elif tag == "index":
                    _, source, name, ts, (price, stale) = item
                    indexes.append({"ts": ts, "symbol_id": self._symbol_id(conn, source, name), "price": price, "stale": stale})
            for table, rows in ((T_SNAPSHOT, snaps), (T_QUOTE, quotes), (T_TRADE, trades), (T_INDEX, indexes)):
                if rows:
                    conn.execute(table.insert(), rows)

    def market_data(
        self,
        since_ms: int,
        until_ms: int,
        *,
        instruments: Sequence[str] | None = None,
        indexes: Sequence[str] | None = None,
        kinds: Sequence[str] = ("index", "quote", "trade"),
    ) -> list[Quote | Trade | IndexPrice]:
        """Recorded market data with since_ms <= ts <= until_ms as domain events, in time order (for replay).

        At equal ts, index prices come before quotes before trades (the order the desk consumes them).
        """
        self.flush()
        events: list[tuple[int, int, int, Any]] = []
        with self._read("read market data") as conn:
            names = {r.id: (r.venue, r.name) for r in conn.execute(select(T_SYMBOL))}
            if "index" in kinds:
                q = select(T_INDEX).where(T_INDEX.c.ts >= since_ms, T_INDEX.c.ts <= until_ms)
                if indexes is not None:
                    q = q.where(T_INDEX.c.symbol_id.in_(self._ids(names, indexes)))
                for r in conn.execute(q):
                    source, index = names[r.symbol_id]
                    events.append((r.ts, 0, r.id, IndexPrice(ts=r.ts, index=index, price=r.price, source=source, stale=r.stale)))
            if "quote" in kinds:
                q = select(T_QUOTE).where(T_QUOTE.c.ts >= since_ms, T_QUOTE.c.ts <= until_ms)
                if instruments is not None:
                    q = q.where(T_QUOTE.c.symbol_id.in_(self._ids(names, instruments)))
                for r in conn.execute(q):
                    venue, name = names[r.symbol_id]
                    kw = {f: getattr(r, f) for f in _QUOTE_FIELDS}
                    for f in ("bid_size", "ask_size", "open_interest"):
                        kw[f] = kw[f] if kw[f] is not None else 0.0
                    events.append((r.ts, 1, r.id, Quote(ts=r.ts, instrument=name, venue=venue, **kw)))
            if "trade" in kinds:
                q = select(T_TRADE).where(T_TRADE.c.ts >= since_ms, T_TRADE.c.ts <= until_ms)
                if instruments is not None:
                    q = q.where(T_TRADE.c.symbol_id.in_(self._ids(names, instruments)))
                for r in conn.execute(q):
                    venue, name = names[r.symbol_id]
                    side = Side.BUY if r.side > 0 else Side.SELL
                    events.append(
                        (r.ts, 2, r.id, Trade(ts=r.ts, instrument=name, price=r.price, amount=r.amount, side=side,
                                              trade_id=r.trade_id or "", venue=venue))
                    )
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        return [e[3] for e in events]

    @staticmethod
    def _ids(names: dict[int, tuple[str, str]], wanted: Sequence[str]) -> list[int]:
        want = set(wanted)
        return [sid for sid, (_, name) in names.items() if name in want]

    def iter_market_data(
        self, since_ms: int, until_ms: int, *, chunk_ms: int = 3_600_000, **filters: Any
    ) -> Iterator[Quote | Trade | IndexPrice]:
        """Like :meth:`market_data` but reads ``chunk_ms`` at a time (long replays in bounded memory)."""
        start = since_ms
        while start <= until_ms:
            end = min(until_ms, start + chunk_ms - 1)
            yield from self.market_data(start, end, **filters)
            start = end + 1

    # -- positions, instruments, ledger ---------------------------------------------------------
    def save_positions(self, positions: Iterable[Position], venue: str = "sim", ts_ms: int | None = None) -> None:
        """Upsert the latest net position per (venue, account, instrument), durably."""
        now = dt_from_ms(_now_ms() if ts_ms is None else _check_ms("ts_ms", ts_ms))
        rows = []
        for p in positions:
            if not isinstance(p, Position):
                raise InvalidInput(f"expected a Position, got {type(p).__name__}", code="input.type")
            rows.append(
                {
                    "venue": venue,
                    "account": p.account,
                    "instrument": p.instrument,
                    "size": canonical_decimal(p.size),
                    "average_price": canonical_decimal(p.average_price),
                    "realized_pnl": canonical_decimal(p.realized_pnl),
                    "tag": p.tag,
                    "updated_at": now,
                }
            )
            _fit(T_POSITION, rows[-1])
        if not rows:
            return
        with self._write("save positions") as conn:
            ins = _insert(conn, T_POSITION)
            stmt = ins.on_conflict_do_update(
                index_elements=["venue", "account", "instrument"],
                set_={c: ins.excluded[c] for c in ("size", "average_price", "realized_pnl", "tag", "updated_at")},
            )
            conn.execute(stmt, rows)

    def positions(self, *, venue: str | None = None, account: str | None = None, nonzero: bool = True) -> list[Position]:
        """Stored positions (of a venue / account); by default only those with size != 0."""
        q = select(T_POSITION)
        if venue is not None:
            q = q.where(T_POSITION.c.venue == venue)
        if account is not None:
            q = q.where(T_POSITION.c.account == account)
        with self._read("read positions") as conn:
            rows = conn.execute(q.order_by(T_POSITION.c.account, T_POSITION.c.instrument)).all()
        return [
            Position(r.instrument, r.size, r.average_price, r.realized_pnl, r.account, r.tag)
            for r in rows
            if not nonzero or r.size != 0
        ]

    def save_instruments(self, instruments: Iterable[Instrument], venue: str = "sim") -> int:
        """Upsert listed instruments with their conventions; returns how many were written."""
        now = dt_from_ms(_now_ms())
        rows = []
        for i in instruments:
            if not isinstance(i, Instrument):
                raise InvalidInput(f"expected an Instrument, got {type(i).__name__}", code="input.type")
            rows.append(
                {
                    "venue": venue,
                    "name": i.name,
                    "kind": i.kind.value,
                    "base": i.base,
                    "quote": i.quote,
                    "settlement": i.settlement,
                    "inverse": i.inverse,
                    "tick_size": i.tick_size,
                    "min_amount": i.min_amount,
                    "contract_size": i.contract_size,
                    "tick_steps": [[str(a), str(b)] for a, b in i.tick_steps],
                    "expiry": i.expiry,
                    "strike": i.strike,
                    "option_type": None if i.option_type is None else i.option_type.value,
                    "maker_fee": i.maker_fee,
                    "taker_fee": i.taker_fee,
                    "linear_tag": i.linear_tag,
                    "updated_at": now,
                }
            )
        if not rows:
            return 0
        with self._write("save instruments") as conn:
            ins = _insert(conn, T_INSTRUMENT)
            cols = [c.name for c in T_INSTRUMENT.columns if c.name not in ("id", "venue", "name")]
            conn.execute(
                ins.on_conflict_do_update(index_elements=["venue", "name"], set_={c: ins.excluded[c] for c in cols}), rows
            )
        return len(rows)

    def instruments(self, venue: str = "sim") -> list[Instrument]:
        """Stored instruments of a venue, by name."""
        with self._read("read instruments") as conn:
            rows = conn.execute(select(T_INSTRUMENT).where(T_INSTRUMENT.c.venue == venue).order_by(T_INSTRUMENT.c.name))
            return [
                Instrument(
                    kind=Kind(r.kind),
                    base=r.base,
                    quote=r.quote,
                    settlement=r.settlement,
                    inverse=r.inverse,
                    tick_size=r.tick_size,
                    min_amount=r.min_amount,
                    contract_size=r.contract_size,
                    tick_steps=tuple((Decimal(a), Decimal(b)) for a, b in r.tick_steps),
                    expiry=r.expiry,
                    strike=r.strike,
                    option_type=None if r.option_type is None else OptionType(r.option_type),
                    maker_fee=r.maker_fee,
                    taker_fee=r.taker_fee,
                    linear_tag=r.linear_tag,
                )
                for r in rows
            ]

    def ensure_account(self, name: str, venue: str = "sim") -> int:
        """The id of an account, created if new."""
        _check_id("account", name, 64)
        with self._write(f"ensure account {name}") as conn:
            return self._account_id(conn, name, venue)

    @staticmethod
    def _account_id(conn: Connection, name: str, venue: str) -> int:
        conn.execute(
            _insert(conn, T_ACCOUNT)
            .values(venue=venue, name=name, created_at=dt_from_ms(_now_ms()))
            .on_conflict_do_nothing(index_elements=["venue", "name"])
        )
        return int(
            conn.execute(select(T_ACCOUNT.c.id).where(T_ACCOUNT.c.venue == venue, T_ACCOUNT.c.name == name)).scalar_one()
        )

    def record_ledger_entries(self, entries: Iterable[Mapping[str, Any]], venue: str = "sim") -> int:
        """Append balance changes durably, all or none.

        Each entry: ``account``, ``currency``, ``amount`` (Decimal, signed, in that currency), ``kind`` (trade,
        fee, pnl, deposit, funding, settlement...), ``ts`` (epoch ms), optional ``ref`` and ``run_id``.
        """
        prepared = []
        for e in entries:
            try:
                prepared.append(
                    (
                        _check_id("account", e["account"], 64),
                        {
                            "currency": _check_id("currency", e["currency"], 16),
                            "amount": canonical_decimal(e["amount"]),
                            "kind": _check_id("kind", e["kind"], 32),
                            "ref": e.get("ref"),
                            "run_id": e.get("run_id"),
                            "ts": dt_from_ms(_check_ms("ts", e["ts"])),
                        },
                    )
                )
            except KeyError as exc:
                raise InvalidInput(f"ledger entry lacks {exc.args[0]!r}", field=str(exc.args[0])) from None
        if not prepared:
            return 0
        with self._write(f"record {len(prepared)} ledger entries") as conn:
            ids: dict[str, int] = {}
            rows = []
            for account, row in prepared:
                if account not in ids:
                    ids[account] = self._account_id(conn, account, venue)
                rows.append({**row, "account_id": ids[account]})
            conn.execute(T_LEDGER.insert(), rows)
        return len(rows)

    def ledger_entries(
        self, account: str, *, currency: str | None = None, venue: str = "sim", since_ms: int | None = None
    ) -> list[dict[str, Any]]:
        """An account's ledger entries, oldest first (amount Decimal, ts epoch ms)."""
        q = (
            select(T_LEDGER, T_ACCOUNT.c.name.label("account"))
            .join(T_ACCOUNT, T_ACCOUNT.c.id == T_LEDGER.c.account_id)
            .where(T_ACCOUNT.c.name == account, T_ACCOUNT.c.venue == venue)
        )
        if currency is not None:
            q = q.where(T_LEDGER.c.currency == currency)
        if since_ms is not None:
            q = q.where(T_LEDGER.c.ts >= dt_from_ms(since_ms))
        with self._read(f"read ledger of {account}") as conn:
            return [
                {
                    "id": r.id,
                    "account": r.account,
                    "currency": r.currency,
                    "amount": r.amount,
                    "kind": r.kind,
                    "ref": r.ref,
                    "run_id": r.run_id,
                    "ts": ms_from_dt(r.ts),
                }
                for r in conn.execute(q.order_by(T_LEDGER.c.ts, T_LEDGER.c.id))
            ]

    def balances(self, account: str, venue: str = "sim") -> dict[str, Decimal]:
        """Sum of an account's ledger per currency (exact Decimal; summed here, not in SQL, for SQLite)."""
        out: dict[str, Decimal] = {}
        for e in self.ledger_entries(account, venue=venue):
            out[e["currency"]] = out.get(e["currency"], Decimal(0)) + e["amount"]
        return out

    # -- alerts ---------------------------------------------------------------------------------
    def record_alert(self, alert: Alert | MarginAlert | Mapping[str, Any]) -> None:
        """Store an alert (an Alert, a MarginAlert, or a dict with ts, source, message, severity, code)."""
        if isinstance(alert, Alert):
            row = {"ts": alert.ts, "source": alert.source, "severity": alert.severity, "code": alert.code,
                   "message": alert.message, "data": None}
        elif isinstance(alert, MarginAlert):
            row = {
                "ts": alert.ts,
                "source": f"margin.{alert.account}",
                "severity": "error" if alert.level >= 1.0 else "warning",
                "code": "margin.alert",
                "message": alert.message or f"{alert.account} {alert.currency} MM usage {alert.mm_usage:.0%}",
                "data": {"account": alert.account, "currency": alert.currency, "level": alert.level,
                         "mm_usage": alert.mm_usage},
            }
        elif isinstance(alert, Mapping):
            row = {"ts": alert.get("ts", _now_ms()), "source": str(alert.get("source", "")),
                   "severity": alert.get("severity", "info"), "code": str(alert.get("code", "")),
                   "message": str(alert.get("message", "")), "data": alert.get("data")}
        else:
            raise InvalidInput(f"cannot store {type(alert).__name__} as an alert", code="input.type")
        if row["severity"] not in ("info", "warning", "error"):
            raise InvalidInput(f"alert severity must be info, warning or error, got {row['severity']!r}", field="severity")
        row["ts"] = dt_from_ms(_check_ms("alert.ts", row["ts"]))
        row["message"] = row["message"][:1024]
        with self._write("record alert") as conn:
            conn.execute(T_ALERT.insert().values(**row))

    def alerts(self, since_ms: int | None = None, *, severity: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Stored alerts, newest first."""
        q = select(T_ALERT)
        if since_ms is not None:
            q = q.where(T_ALERT.c.ts >= dt_from_ms(since_ms))
        if severity is not None:
            q = q.where(T_ALERT.c.severity == severity)
        q = q.order_by(T_ALERT.c.ts.desc(), T_ALERT.c.id.desc()).limit(limit)
        with self._read("read alerts") as conn:
            return [
                {"id": r.id, "ts": ms_from_dt(r.ts), "source": r.source, "severity": r.severity, "code": r.code,
                 "message": r.message, "data": r.data}
                for r in conn.execute(q)
            ]

    # -- backtests ------------------------------------------------------------------------------
    def save_backtest(
        self,
        name: str,
        config: Mapping[str, Any],
        metrics: Mapping[str, float],
        *,
        report: Mapping[str, Any] | None = None,
        backtest_id: str | None = None,
        started_ms: int | None = None,
        finished_ms: int | None = None,
        status: str = "done",
    ) -> str:
        """Store a backtest with its scalar metrics (NaN allowed) and optional full report; returns its id."""
        bid = backtest_id or f"bt-{_now_ms()}-{os.urandom(4).hex()}"
        _check_id("backtest_id", bid, 64)
        metric_rows = []
        for key, value in metrics.items():
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise InvalidInput(f"metric {key!r} is not a number: {value!r}", field=str(key)) from None
            metric_rows.append({"backtest_id": bid, "name": str(key)[:64], "value": v if math.isfinite(v) else None})
        with self._write(f"save backtest {bid}") as conn:
            conn.execute(
                T_BACKTEST.insert().values(
                    id=bid,
                    name=name[:128],
                    config=dict(config),
                    status=status[:16],
                    created_at=dt_from_ms(_now_ms()),
                    started_at=None if started_ms is None else dt_from_ms(started_ms),
                    finished_at=None if finished_ms is None else dt_from_ms(finished_ms),
                    report=None if report is None else dict(report),
                )
            )
            if metric_rows:
                conn.execute(T_METRIC.insert(), metric_rows)
        return bid

    def _backtest_rows(self, conn: Connection, q: Any, with_report: bool) -> list[dict[str, Any]]:
        runs = conn.execute(q).all()
        ids = [r.id for r in runs]
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        if ids:
            for m in conn.execute(select(T_METRIC).where(T_METRIC.c.backtest_id.in_(ids))):
                metrics[m.backtest_id][m.name] = math.nan if m.value is None else m.value
        out = []
        for r in runs:
            d = {
                "id": r.id,
                "name": r.name,
                "status": r.status,
                "config": r.config,
                "created_ms": ms_from_dt(r.created_at),
                "started_ms": _opt_ms(r.started_at),
                "finished_ms": _opt_ms(r.finished_at),
                "metrics": metrics[r.id],
            }
            if with_report:
                d["report"] = r.report
            out.append(d)
        return out

    def list_backtests(self, limit: int = 100) -> list[dict[str, Any]]:
        """Stored backtests with metrics (no reports), newest first."""
        cols = [c for c in T_BACKTEST.c if c.name != "report"]
        q = select(*cols).order_by(T_BACKTEST.c.created_at.desc(), T_BACKTEST.c.id.desc()).limit(limit)
        with self._read("list backtests") as conn:
            return self._backtest_rows(conn, q, with_report=False)

    def get_backtest(self, backtest_id: str) -> dict[str, Any]:
        """One backtest with metrics and report; NotFound when unknown."""
        with self._read(f"read backtest {backtest_id}") as conn:
            rows = self._backtest_rows(conn, select(T_BACKTEST).where(T_BACKTEST.c.id == backtest_id), with_report=True)
        if not rows:
            raise NotFound(f"no backtest {backtest_id!r}", code="backtest.not_found")
        return rows[0]

    # -- retention ------------------------------------------------------------------------------
    def prune(
        self,
        *,
        snapshot_retention_days: float = 30,
        market_data_retention_days: float = 7,
        now_ms: int | None = None,
        vacuum: bool = False,
        thin_after_days: float | None = None,
        thin_interval_s: int = 60,
    ) -> dict[str, int]:
        """Delete snapshots and recorded market data older than their retention; returns rows deleted per table.

        ``thin_after_days``: snapshots older than this (and inside retention) are thinned to the first one of
        each ``thin_interval_s`` per kind (``snapshot_thinned`` counts them), e.g. 1 s for a day, 1 min after.
        The newest snapshot of each kind is always kept. Fills, orders, ledger, decisions and runs are never pruned. ``vacuum`` also gives the space back to the
        file system (SQLite VACUUM; slow on big files).
        """
        if snapshot_retention_days <= 0 or market_data_retention_days <= 0:
            raise InvalidInput("retention must be positive days", code="input.range")
        if thin_after_days is not None and (thin_after_days <= 0 or thin_interval_s <= 0):
            raise InvalidInput("thinning needs positive days and interval", code="input.range")
        self.flush()
        now = _now_ms() if now_ms is None else _check_ms("now_ms", now_ms)
        snap_cut = now - int(snapshot_retention_days * _DAY_MS)
        md_cut = now - int(market_data_retention_days * _DAY_MS)
        out: dict[str, int] = {}
        with self._write("prune") as conn:
            # The newest snapshot of each kind is what a reader opens on (latest_snapshot): it stays, however old.
            newest = []
            for (kind,) in conn.execute(select(T_SNAPSHOT.c.kind).distinct()):
                q = (
                    select(T_SNAPSHOT.c.id)
                    .where(T_SNAPSHOT.c.kind == kind)
                    .order_by(T_SNAPSHOT.c.ts.desc(), T_SNAPSHOT.c.id.desc())
                    .limit(1)
                )
                newest.append(conn.execute(q).scalar_one())
            out["snapshot"] = conn.execute(
                delete(T_SNAPSHOT).where(T_SNAPSHOT.c.ts < snap_cut, T_SNAPSHOT.c.id.not_in(newest))
            ).rowcount
            if thin_after_days is not None:
                thin_cut = now - int(thin_after_days * _DAY_MS)
                bucket = T_SNAPSHOT.c.ts // (thin_interval_s * 1000)  # floor division, rendered for each backend
                keep = (
                    select(func.min(T_SNAPSHOT.c.id))
                    .where(T_SNAPSHOT.c.ts < thin_cut)
                    .group_by(T_SNAPSHOT.c.kind, bucket)
                    .scalar_subquery()
                )
                out["snapshot_thinned"] = conn.execute(
                    delete(T_SNAPSHOT).where(
                        T_SNAPSHOT.c.ts < thin_cut, T_SNAPSHOT.c.id.not_in(keep), T_SNAPSHOT.c.id.not_in(newest)
                    )
                ).rowcount
            for table in (T_QUOTE, T_TRADE, T_INDEX):
                out[table.name] = conn.execute(delete(table).where(table.c.ts < md_cut)).rowcount
        if self.backend == "sqlite":
            with _errors("checkpoint"):
                raw = self._engine.raw_connection()  # outside any transaction: VACUUM refuses to run in one
                try:
                    raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
                    if vacuum:
                        raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
                finally:
                    raw.close()
        elif vacuum:
            with _errors("vacuum"), self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for table in (T_SNAPSHOT, T_QUOTE, T_TRADE, T_INDEX):
                    conn.exec_driver_sql(f"VACUUM {table.name}")
        return out


_OPEN_STORES: weakref.WeakSet[SqlStore] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    # The writer thread is a daemon: without this, snapshots queued at interpreter exit would be dropped.
    for store in list(_OPEN_STORES):
        try:
            store.close()
        except Exception as exc:  # at exit there is no caller left to raise to
            log.error("closing the store at exit: %s", exc)


def open_store(db: Path | str | None = None, *, read_only: bool = False, **kwargs: Any) -> SqlStore:
    """Open (creating and migrating when needed) the store at a path or URL.

    ``None`` means ``$DESK_DB_URL`` or else the default SQLite file in the user's data directory
    (:func:`storage.engine.default_db_path`).
    """
    return SqlStore(resolve_url(db), read_only=read_only, **kwargs)
