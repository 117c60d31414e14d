"""Store fixtures: every store test runs on SQLite and, when DESK_TEST_PG_URL is set, on PostgreSQL.

Each PostgreSQL test gets a fresh schema (selected through ``search_path`` in the URL) that is dropped after,
so tests are isolated and can run against a shared server.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.domain import Fill, Liquidity, OrderRequest, Side
from storage.models import metadata
from storage.store import SqlStore, open_store

PG_URL = os.environ.get("DESK_TEST_PG_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)]


def pg_schema_url(base: str, schema: str) -> str:
    """``base`` with its search_path set to ``schema``."""
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the test runs on."""
    if request.param == "postgresql" and not PG_URL:
        pytest.skip("DESK_TEST_PG_URL is not set")
    return str(request.param)


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database of the backend (a temp file, or a fresh PostgreSQL schema)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    assert PG_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield pg_schema_url(PG_URL, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "desk.db"
    open_store(path).close()  # migrated once; closing checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def _pg_session_url() -> Iterator[str]:
    assert PG_URL is not None
    schema = f"t_session_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = pg_schema_url(PG_URL, schema)
    open_store(url).close()
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL of a migrated database with no rows: a copy of a template file, or the session's PostgreSQL schema
    emptied (migrating once per session keeps the suite fast; tests that alter the schema use ``empty_db_url``)."""
    if backend == "sqlite":
        path = tmp_path / "desk.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("_pg_session_url")
    eng = create_engine(url)
    try:
        with eng.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))  # a leaked transaction fails the test, not hangs it
            tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        eng.dispose()
    yield url


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    """An open, migrated store."""
    s = open_store(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def reopen(db_url: str) -> Iterator[Callable[..., SqlStore]]:
    """Open the same database again (closed at teardown)."""
    opened: list[SqlStore] = []

    def _open(**kwargs: object) -> SqlStore:
        s = open_store(db_url, **kwargs)  # type: ignore[arg-type]
        opened.append(s)
        return s

    yield _open
    for s in opened:
        s.close()


def make_fill(i: int, *, venue: str = "sim", ts: int = 1_767_225_600_000, price: str = "98000.5") -> Fill:
    """A deterministic fill number ``i``."""
    return Fill(
        trade_id=f"T{i}",
        order_id=f"O{i // 3}",
        instrument="BTC-PERPETUAL",
        side=Side.BUY if i % 2 == 0 else Side.SELL,
        price=Decimal(price),
        amount=Decimal(10 * (1 + i % 5)),
        fee=Decimal("0.0000051") * (i % 7),
        fee_currency="BTC",
        liquidity=Liquidity.MAKER if i % 3 == 0 else Liquidity.TAKER,
        ts=ts + i,
        client_order_id=f"C{i // 3}",
        venue=venue,
        index_price=98000.25 + i,
    )


def make_request(cid: str = "c1", price: str = "0.0125") -> OrderRequest:
    """A limit order request on a BTC option."""
    return OrderRequest(
        instrument="BTC-27DEC24-60000-C",
        side=Side.SELL,
        amount=Decimal("0.5"),
        price=Decimal(price),
        client_order_id=cid,
        reason="delta band",
    )
