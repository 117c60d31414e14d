"""Storage: the only package that talks SQL (SQLite by default, PostgreSQL by URL).

- ``storage.store``: ``SqlStore`` / ``open_store`` (implements ``app.ports.Store``, ``RunControlStore``,
  ``MarketDataSink``)
- ``storage.models``: the SQLModel tables; ``storage.migrations``: Alembic; ``storage.migrate``: upgrade/status
- ``storage.engine``: engines with the per-connection SQLite settings; the default database path
- ``storage.snapshot_codec``: the compact snapshot encoding; ``storage.writer``: the batch writer thread
- ``storage.faults``: driver errors turned into typed ``app.errors`` store errors
"""
