"""Where the store is: paths, URLs, the default file, unsupported URLs; info and size."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import StoreError
from storage.engine import default_db_path, resolve_url
from storage.store import SqlStore, open_store
from tests.storage.conftest import make_fill


def test_resolve_paths_and_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_url(tmp_path / "a.db") == f"sqlite:///{tmp_path / 'a.db'}"
    assert resolve_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert resolve_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    monkeypatch.setenv("DESK_DB_URL", "sqlite:////tmp/from-env.db")
    assert resolve_url(None) == "sqlite:////tmp/from-env.db"
    monkeypatch.delenv("DESK_DB_URL")
    assert resolve_url(None) == f"sqlite:///{default_db_path()}"
    assert default_db_path().name == "desk.db" and "deltadesk" in str(default_db_path())


def test_default_file_is_created_with_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "data" / "deltadesk" / "desk.db"
    monkeypatch.delenv("DESK_DB_URL", raising=False)
    monkeypatch.setattr("storage.engine.default_db_path", lambda: target)
    with open_store() as store:
        assert store.path == target and target.exists()


def test_unsupported_and_unreachable_databases(tmp_path: Path) -> None:
    for url in ("mysql://u@h/db", "postgresql+nosuchdriver://u@h/db", "postgresql+psycopg://u:secret@127.0.0.1:1/db"):
        with pytest.raises(StoreError) as exc:
            open_store(url)
        assert exc.value.code == "store.unavailable"
        assert "secret" not in str(exc.value)


def test_info_and_size(store: SqlStore) -> None:
    store.record_fills([make_fill(i) for i in range(100)])
    info = store.info()
    assert info["revision"] == info["head"] and info["rows"]["fill"] == 100
    assert info["size_bytes"] > 0 and info["backend"] in ("sqlite", "postgresql")
    assert "***" in store.describe() or store.backend == "sqlite"


def test_in_memory_sqlite_is_refused_with_a_reason() -> None:
    with pytest.raises(StoreError, match="in-memory"):
        open_store("sqlite://")
