"""Alembic migrations driven from code: current revision, head, upgrade, and the schema-state check.

The check refuses, with a typed error, a database whose revision this code does not know (written by a newer
deltadesk) and a database that holds tables but no revision (another application's file).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

from app.errors import SchemaMismatch, StoreCorrupt
from storage.engine import is_sqlite, make_engine, sqlite_path
from storage.faults import check_sqlite_file, db_errors

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
ALEMBIC_INI = Path(__file__).parent / "alembic.ini"
_PG_MIGRATION_LOCK = 0x64657364  # "desd": advisory lock key held while migrating


class SchemaState(str, Enum):
    """Where a database stands against this code's migrations."""

    EMPTY = "empty"
    BEHIND = "behind"
    CURRENT = "current"


def alembic_config(url: str | None = None) -> Config:
    """Alembic config pointing at the packaged migrations (``url`` optional)."""
    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every revision id in this code's migration history."""
    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    """The revision stamped in the database, or None when it has none."""
    return MigrationContext.configure(conn).get_current_revision()


def schema_state(conn: Connection) -> SchemaState:
    """Compare the database to this code; raise SchemaMismatch (newer) or StoreCorrupt (foreign)."""
    rev = current_revision(conn)
    if rev is None:
        tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        if tables:
            raise StoreCorrupt(
                f"the database holds tables ({', '.join(sorted(tables)[:5])}...) but no deltadesk schema revision; "
                "it belongs to another application",
                code="store.foreign",
            )
        return SchemaState.EMPTY
    if rev not in known_revisions():
        raise SchemaMismatch(
            f"the database schema is at revision {rev}, which this deltadesk does not know (newest here: "
            f"{head_revision()}); it was written by a newer version — upgrade deltadesk",
            code="store.schema_newer",
            revision=rev,
            head=head_revision(),
        )
    return SchemaState.CURRENT if rev == head_revision() else SchemaState.BEHIND


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Apply migrations up to ``revision`` in one transaction; returns the resulting revision."""
    cfg = alembic_config()
    with engine.connect() as conn:
        conn.execution_options(desk_immediate=True)  # SQLite: take the write lock first; concurrent openers queue
        with conn.begin():
            if conn.dialect.name == "postgresql":
                # Serialise concurrent migrators (SQLite gets this from BEGIN IMMEDIATE); the waiter then sees head.
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            schema_state(conn)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    with engine.connect() as conn:
        rev = current_revision(conn)
    assert rev is not None
    return rev


def _engine_for(url: str, read_only: bool) -> Engine:
    path = sqlite_path(url) if is_sqlite(url) else None
    if path is not None:
        check_sqlite_file(path, read_only=read_only)
    return make_engine(url, read_only=read_only)


def database_status(url: str) -> dict[str, str | None]:
    """Revision, head and state of the database at ``url``, read-only (raises for newer/foreign/corrupt)."""
    engine = _engine_for(url, read_only=True)
    try:
        with db_errors("read the schema revision"), engine.connect() as conn:
            state = schema_state(conn)
            rev = current_revision(conn)
    finally:
        engine.dispose()
    return {"revision": rev, "head": head_revision(), "state": state.value}


def upgrade_database(url: str) -> tuple[str | None, str]:
    """Migrate the database at ``url`` to head; returns (revision before, revision after)."""
    engine = _engine_for(url, read_only=False)
    try:
        with db_errors("upgrade the schema"):
            with engine.connect() as conn:
                before = current_revision(conn)
            return before, upgrade(engine)
    finally:
        engine.dispose()
