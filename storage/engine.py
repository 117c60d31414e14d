"""Engines for SQLite and PostgreSQL, with the per-connection settings the store relies on.

SQLite: WAL (readers never block the writer), ``foreign_keys=ON`` and the ``synchronous`` level are per
connection, so they are set in a ``connect`` listener. Python's sqlite3 driver would otherwise begin
transactions lazily (and not around DDL); we switch it to autocommit and emit ``BEGIN`` ourselves: ``BEGIN
IMMEDIATE`` for writers (the engine default, or the ``desk_immediate`` execution option), so a write
transaction takes the lock up front and waits ``busy_timeout`` instead of failing half way.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from app.errors import StoreError
from storage.types import json_dumps, json_loads

APP_NAME = "deltadesk"


def default_db_path() -> Path:
    """The SQLite file used when no ``--db`` or URL is given (in the user's data directory)."""
    return Path(user_data_dir(APP_NAME)) / "desk.db"


def resolve_url(db: Path | str | None) -> str:
    """A SQLAlchemy URL for a path, a URL, or None (``$DESK_DB_URL``, else the default SQLite file)."""
    if db is None:
        env = os.environ.get("DESK_DB_URL")
        if env:
            return env
        db = default_db_path()
    text = str(db)
    if "://" in text:
        if text.startswith("postgresql://") or text.startswith("postgres://"):
            text = "postgresql+psycopg://" + text.split("://", 1)[1]
        return text
    return f"sqlite:///{Path(text).expanduser().absolute()}"


def is_sqlite(url: str) -> bool:
    """True for SQLite URLs."""
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for in-memory)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        database = database[5:].split("?", 1)[0]
    return Path(database)


def make_engine(
    url: str,
    *,
    read_only: bool = False,
    synchronous: str = "FULL",
    immediate: bool = False,
    busy_timeout_ms: int = 30_000,
    pragmas: dict[str, Any] | None = None,
    pool_size: int = 5,
) -> Engine:
    """An engine for ``url`` with the store's per-connection settings (see the module docstring)."""
    if is_sqlite(url):
        return _sqlite_engine(url, read_only, synchronous, immediate, busy_timeout_ms, pragmas or {})
    if not url.startswith("postgresql"):
        raise StoreError(
            f"unsupported database URL {url.split('://', 1)[0]}://…; use a SQLite path or postgresql+psycopg://",
            code="store.unavailable",
        )
    return _pg_engine(url, read_only, synchronous, busy_timeout_ms, pool_size)


def _sqlite_engine(
    url: str, read_only: bool, synchronous: str, immediate: bool, busy_timeout_ms: int, pragmas: dict[str, Any]
) -> Engine:
    path = sqlite_path(url)
    connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
    if read_only and path is not None:
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    engine = create_engine(
        url,
        connect_args=connect_args,
        json_serializer=json_dumps,
        json_deserializer=json_loads,
        **({"poolclass": StaticPool} if path is None else {}),
    )
    default_immediate = immediate and not read_only

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            if not read_only:
                _set_wal(cur)
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            if read_only:
                cur.execute("PRAGMA query_only=ON")
            for key, value in pragmas.items():
                cur.execute(f"PRAGMA {key}={value}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate_now = conn.get_execution_options().get("desk_immediate", default_immediate) and not read_only
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate_now else "BEGIN")

    return engine


def _set_wal(cur: Any) -> None:
    # WAL persists in the file, so only a new database needs the switch. Switching takes an exclusive lock,
    # and two processes creating the same file can get SQLITE_BUSY without the busy handler: retry briefly.
    if cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    for attempt in range(100):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)


def _pg_engine(url: str, read_only: bool, synchronous: str, busy_timeout_ms: int, pool_size: int) -> Engine:
    try:
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size,
            json_serializer=json_dumps,
            json_deserializer=json_loads,
        )
    except ImportError as exc:
        raise StoreError(
            f"{make_url(url).get_backend_name()} needs its driver: pip install 'psycopg[binary]' ({exc})",
            code="store.unavailable",
        ) from None
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {exc}", code="store.unavailable") from None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # autocommit while setting session parameters, so they are not rolled back with a first transaction
        prev = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET lock_timeout = {int(busy_timeout_ms)}")
            if synchronous.upper() in ("OFF", "NORMAL"):
                cur.execute("SET synchronous_commit = off")
            if read_only:
                cur.execute("SET default_transaction_read_only = on")
        dbapi_conn.autocommit = prev

    return engine
