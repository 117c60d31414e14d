"""Storage: the only package that talks SQL (SQLite by default, PostgreSQL by URL)."""
