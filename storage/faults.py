"""Faults of the database turned into typed desk errors with stable codes.

Driver exceptions (sqlite3, psycopg, SQLAlchemy) never leave ``storage``: a locked database becomes
StoreLocked, a full disk StoreFull, a damaged or foreign file StoreCorrupt, a read-only file StoreReadOnly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import exc as sa_exc

from app.errors import DeskError, StoreCorrupt, StoreError, StoreFull, StoreLocked, StoreReadOnly

SQLITE_MAGIC = b"SQLite format 3\x00"


def check_sqlite_file(path: Path, *, read_only: bool = False) -> None:
    """Refuse a path that is a directory or a non-SQLite file; create the parent directory of a new file."""
    if path.exists():
        if path.is_dir():
            raise StoreError(f"{path} is a directory, not a database file", code="store.unavailable")
        with path.open("rb") as fh:
            head = fh.read(16)
        if head and head != SQLITE_MAGIC:
            raise StoreCorrupt(f"{path} is not a SQLite database (foreign or corrupt file); refusing to touch it")
    elif read_only:
        raise StoreError(f"{path} does not exist (nothing to open read-only)", code="store.unavailable")
    else:
        with db_errors(f"create {path.parent}"):
            path.parent.mkdir(parents=True, exist_ok=True)


def translate_error(exc: BaseException, action: str) -> DeskError:
    """The typed desk error for a driver exception raised while doing ``action``."""
    if isinstance(exc, sa_exc.StatementError) and isinstance(exc.orig, DeskError):
        return exc.orig
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    name = getattr(orig, "sqlite_errorname", "") or ""
    sqlstate = getattr(orig, "sqlstate", None) or ""
    low = text.lower()
    where = f"{action}: {text}"
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED") or "database is locked" in low:
        return StoreLocked(f"{where} (another process holds the database; try again or stop it)")
    if sqlstate in ("55P03", "40P01") or "lock timeout" in low:
        return StoreLocked(f"{where} (another session holds the lock)")
    if name.startswith("SQLITE_FULL") or "disk is full" in low or sqlstate.startswith("53") or "no space left" in low:
        return StoreFull(f"{where} (free disk space; nothing of this write was committed)")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in low or "malformed" in low:
        return StoreCorrupt(f"{where} (the file is damaged or not a deltadesk database)")
    if name.startswith("SQLITE_READONLY") or sqlstate == "25006" or "readonly database" in low:
        return StoreReadOnly(f"{where} (the database or its directory is read-only)")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in low:
        return StoreError(f"{where} (cannot open the database file)", code="store.unavailable")
    if sqlstate.startswith("08") or ("connection" in low and "refused" in low):
        return StoreError(f"{where} (the database server cannot be reached)", code="store.unavailable")
    if isinstance(orig, sa_exc.IntegrityError) or isinstance(exc, sa_exc.IntegrityError):
        return StoreError(where, code="store.integrity")
    if isinstance(orig, OSError):
        return StoreError(where, code="store.io")
    return StoreError(where)


@contextmanager
def db_errors(action: str) -> Iterator[None]:
    """Translate driver exceptions raised inside the block (DeskErrors pass through)."""
    try:
        yield
    except DeskError:
        raise
    except (sa_exc.SQLAlchemyError, sqlite3.Error, OSError) as exc:
        raise translate_error(exc, action) from exc
