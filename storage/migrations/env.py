"""Alembic environment: the store's tables, the store's engine settings, batch mode for SQLite."""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context

import storage.models  # noqa: F401  (registers the tables on the metadata)
from storage.engine import make_engine, resolve_url
from storage.models import metadata

config = context.config
if config.config_file_name is not None and not config.attributes.get("connection"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or resolve_url(os.environ.get("DESK_DB_URL"))


def run_migrations_offline() -> None:
    """Emit SQL for a URL without connecting."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through a connection handed in by the store, or one made from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
