"""Migrations vs models (no drift), schema newer than the code, foreign and corrupt files, read-only, the CLI."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from app.cli import app as cli_app
from app.errors import SchemaMismatch, StoreCorrupt, StoreError, StoreReadOnly
from storage import migrate
from storage.models import metadata
from storage.store import SqlStore, open_store
from tests.storage.conftest import make_fill

runner = CliRunner()


def _drift(store: SqlStore) -> list[object]:
    with store._engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, metadata))


def test_migrations_build_exactly_the_models(store: SqlStore) -> None:
    assert store.revision() == migrate.head_revision()
    assert _drift(store) == []


def test_downgrade_to_base_and_back(store: SqlStore) -> None:
    cfg = migrate.alembic_config()
    with store._engine.connect() as conn:
        conn.execution_options(desk_immediate=True)
        with conn.begin():
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert migrate.current_revision(conn) is None
        conn.rollback()
    assert migrate.upgrade(store._engine) == migrate.head_revision()
    assert _drift(store) == []


def _stamp(store: SqlStore, revision: str) -> None:
    with store._engine.connect() as conn, conn.begin():
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def test_schema_newer_than_code_is_refused(empty_db_url: str) -> None:
    with open_store(empty_db_url) as store:
        store.record_fill(make_fill(1))
        _stamp(store, "9999_future")
    with pytest.raises(SchemaMismatch) as exc:
        open_store(empty_db_url)
    assert exc.value.code == "store.schema_newer" and "newer" in exc.value.message
    with pytest.raises(SchemaMismatch):
        open_store(empty_db_url, read_only=True)


def test_foreign_database_is_refused(empty_db_url: str) -> None:
    eng = create_engine(empty_db_url)
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE users (id integer primary key, name text)"))
    eng.dispose()
    with pytest.raises(StoreCorrupt) as exc:
        open_store(empty_db_url)
    assert exc.value.code == "store.foreign"


def test_unmigrated_database_needs_upgrade_when_migration_is_off(empty_db_url: str) -> None:
    with pytest.raises(SchemaMismatch) as exc:
        open_store(empty_db_url, migrate=False)
    assert exc.value.code == "store.schema_old"


def test_several_openers_of_a_new_database_at_once(empty_db_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[SqlStore] = []

    def _open() -> None:
        try:
            stores.append(open_store(empty_db_url))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=_open) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == [] and len(stores) == 3


# -- SQLite files -------------------------------------------------------------------------------


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    with open_store(tmp_path / "d.db") as store:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with store._bulk.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL for batched snapshots
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    with open_store(tmp_path / "d.db") as store:
        with pytest.raises(Exception, match="FOREIGN KEY"):
            with store._engine.connect() as conn, conn.begin():
                conn.execute(text("INSERT INTO strategy_state (run_id, state, version, updated_at) VALUES ('x', '{}', 1, '')"))


def test_random_bytes_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    junk = bytes(range(256)) * 64
    path.write_bytes(junk)
    with pytest.raises(StoreCorrupt):
        open_store(path)
    assert path.read_bytes() == junk


def test_damaged_sqlite_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with open_store(path) as store:
        store.record_fills([make_fill(i) for i in range(2000)])
    raw = bytearray(path.read_bytes())
    raw[100 : len(raw)] = b"\xff" * (len(raw) - 100)  # keep the header, destroy every page
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreCorrupt):
        with open_store(path) as store:
            store.fills()


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as exc:
        open_store(tmp_path)
    assert exc.value.code == "store.unavailable"


def test_read_only_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with open_store(path) as writer:
        writer.record_fill(make_fill(1))
        writer.record_snapshot("risk", 1, {"equity": 1.0})
        reader = open_store(path, read_only=True)
        try:
            assert len(reader.fills()) == 1
            writer.record_fill(make_fill(2))  # a writer keeps writing while the dashboard reads
            assert len(reader.fills()) == 2
            assert reader.latest_snapshot("risk") == {"equity": 1.0, "ts": 1}
            for call in (
                lambda: reader.record_fill(make_fill(3)),
                lambda: reader.record_snapshot("risk", 2, {}),
                lambda: reader.save_strategy_state("r", {}),
                lambda: reader.prune(),
            ):
                with pytest.raises(StoreReadOnly):
                    call()
        finally:
            reader.close()
    assert len(open_store(path, read_only=True).fills()) == 2


def test_read_only_needs_an_existing_migrated_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as exc:
        open_store(tmp_path / "missing.db", read_only=True)
    assert exc.value.code == "store.unavailable"
    sqlite3.connect(tmp_path / "empty.db").close()
    with pytest.raises(StoreError) as exc:
        open_store(tmp_path / "empty.db", read_only=True)
    assert exc.value.code == "store.empty"


def test_readers_never_block_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with open_store(path, busy_timeout_ms=200) as store:
        store.record_fill(make_fill(1))
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM fill").fetchone() == (1,)  # read snapshot taken
        assert store.record_fill(make_fill(2))  # not blocked by the open read transaction
        assert reader.execute("SELECT count(*) FROM fill").fetchone() == (1,)  # reader keeps its snapshot
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM fill").fetchone() == (2,)
        reader.close()


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_upgrade_current_prune(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "desk.toml").write_text("")
    monkeypatch.setenv("DESK_CONFIG", str(tmp_path / "desk.toml"))
    monkeypatch.delenv("DESK_DB_URL", raising=False)
    db = str(tmp_path / "cli.db")
    res = runner.invoke(cli_app, ["db", "upgrade", "--db", db])
    assert res.exit_code == 0 and f"to {migrate.head_revision()}" in res.output
    res = runner.invoke(cli_app, ["db", "upgrade", "--db", db])
    assert res.exit_code == 0 and "already" in res.output
    res = runner.invoke(cli_app, ["db", "current", "--db", db])
    assert res.exit_code == 0 and res.output.startswith(migrate.head_revision()) and "(head)" in res.output
    now = time.time_ns() // 1_000_000
    with open_store(db) as store:
        store.record_snapshot("risk", 0, {"equity": 1.0})
        store.record_snapshot("risk", now, {"equity": 2.0})
    res = runner.invoke(cli_app, ["db", "prune", "--db", db, "--vacuum", "--thin-after-days", "1"])
    assert res.exit_code == 0 and "snapshot 1," in res.output and "snapshot_thinned 0" in res.output, res.output
    with open_store(db) as store:
        assert store.latest_snapshot("risk") == {"equity": 2.0, "ts": now}


def test_cli_reports_a_newer_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "desk.toml").write_text("")
    monkeypatch.setenv("DESK_CONFIG", str(tmp_path / "desk.toml"))
    monkeypatch.delenv("DESK_DB_URL", raising=False)
    db = tmp_path / "new.db"
    with open_store(db) as store:
        _stamp(store, "9999_future")
    res = runner.invoke(cli_app, ["db", "current", "--db", str(db)])
    assert res.exit_code == 2 and "store.schema_newer" in res.output
    res = runner.invoke(cli_app, ["db", "upgrade", "--db", str(db)])
    assert res.exit_code == 2 and "store.schema_newer" in res.output
    junk = tmp_path / "junk.db"
    junk.write_text("hello")
    res = runner.invoke(cli_app, ["db", "current", "--db", str(junk)])
    assert res.exit_code == 2 and "store.corrupt" in res.output


def test_read_only_on_any_backend_refuses_writes_even_below_the_api(db_url: str) -> None:
    with open_store(db_url) as writer:
        writer.record_fill(make_fill(1))
        with open_store(db_url, read_only=True) as reader:
            assert [f.trade_id for f in reader.fills()] == ["T1"]
            with pytest.raises(StoreReadOnly):
                reader.record_fill(make_fill(2))
            with pytest.raises(Exception, match="(?i)read.?only"):  # the connection itself is read-only
                with reader._engine.begin() as conn:
                    conn.execute(text("DELETE FROM fill"))
        assert writer.fill_count() == 1
