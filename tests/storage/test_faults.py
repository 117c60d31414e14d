"""Faults: locked database, full disk, failed batch writes, and SIGKILL while writing fills.

Each fault gives a typed error, and nothing acknowledged before it is lost.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text

from app.errors import StoreError, StoreFull, StoreLocked
from storage.store import SqlStore, open_store
from tests.storage.conftest import make_fill, make_request

ROOT = Path(__file__).resolve().parents[2]


# -- locked -------------------------------------------------------------------------------------


def test_locked_database_gives_store_locked_then_recovers(db_url: str, backend: str) -> None:
    store = open_store(db_url, busy_timeout_ms=200)
    store.record_fill(make_fill(0))
    locker = create_engine(db_url)
    conn = locker.connect()
    try:
        if backend == "sqlite":
            raw = conn.connection.driver_connection
            raw.isolation_level = None  # type: ignore[union-attr]
            raw.execute("BEGIN EXCLUSIVE")  # type: ignore[union-attr]
        else:
            conn.execute(text("LOCK TABLE fill, order_outbox IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(StoreLocked) as exc:
            store.record_fill(make_fill(1))
        assert exc.value.code == "store.locked"
        with pytest.raises(StoreLocked):
            store.outbox_put("r1", "c1", make_request("c1"))
    finally:
        if backend == "sqlite":
            conn.connection.driver_connection.execute("ROLLBACK")  # type: ignore[union-attr]
        else:
            conn.rollback()
        conn.close()
        locker.dispose()
    assert store.record_fill(make_fill(1)) is True  # the refused fill was not half-written
    assert [f.trade_id for f in store.fills()] == ["T0", "T1"]
    assert store.outbox_put("r1", "c1", make_request("c1")) is True
    store.close()


# -- full disk ----------------------------------------------------------------------------------


def test_full_disk_refuses_the_write_and_keeps_every_acknowledged_fill(tmp_path: Path) -> None:
    path = tmp_path / "full.db"
    with open_store(path) as store:
        with store._engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    acked: list[str] = []
    outbox_acked: list[str] = []
    store = open_store(path, pragmas={"max_page_count": int(pages) + 40})
    i = 0
    with pytest.raises(StoreFull) as exc:
        while i < 1_000_000:
            batch = [make_fill(i + k) for k in range(25)]
            store.record_fills(batch)
            acked.extend(f.trade_id for f in batch)
            store.outbox_put("r1", f"c{i}", make_request(f"c{i}"))
            outbox_acked.append(f"c{i}")
            i += 25
    assert exc.value.code == "store.disk_full" and "nothing of this write was committed" in exc.value.message
    assert len(acked) > 100
    # the batch writer meets the same full disk: its error surfaces on the next flush
    store.record_snapshot("risk", 1, {"x": [1.0] * 50_000})
    with pytest.raises(StoreFull):
        store.flush()
    store.close()
    with open_store(path) as again:
        stored = [f.trade_id for f in again.fills()]
        assert sorted(stored) == sorted(acked)  # every acknowledged fill, exactly once, nothing else
        assert {e["client_order_id"] for e in again.outbox_pending()} == set(outbox_acked)
        assert again.check_integrity() == "ok"
        assert again.record_fill(make_fill(10**7))  # writable again once there is room


def test_injected_disk_full_on_any_backend(store: SqlStore, backend: str) -> None:
    store.record_fill(make_fill(0))
    if backend == "sqlite":
        import sqlite3

        error: Exception = sqlite3.OperationalError("database or disk is full")
        error.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    else:
        import psycopg

        error = psycopg.errors.DiskFull("could not extend file: No space left on device")

    def _boom(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO FILL"):
            raise error

    event.listen(store._engine, "before_cursor_execute", _boom)
    try:
        with pytest.raises(StoreFull):
            store.record_fill(make_fill(1))
    finally:
        event.remove(store._engine, "before_cursor_execute", _boom)
    assert [f.trade_id for f in store.fills()] == ["T0"]


def test_failed_batch_is_reported_not_swallowed(store: SqlStore) -> None:
    def _fail(items: list[object]) -> None:
        raise RuntimeError("simulated write failure")

    assert store._writer is not None
    original = store._writer._write
    store._writer._write = _fail
    store.record_snapshot("risk", 1, {"a": 1.0})
    with pytest.raises(StoreError, match="simulated write failure"):
        store.flush()
    assert store._writer.dropped == 1
    store._writer._write = original
    store.record_snapshot("risk", 2, {"a": 2.0})
    assert store.latest_snapshot("risk") == {"a": 2.0, "ts": 2}


# -- SIGKILL ------------------------------------------------------------------------------------


def _kill_while_writing(url: str, prefix: str, seed: int) -> tuple[list[str], list[str]]:
    """Run the child, SIGKILL it at a random point, return the fills and outbox ids it acknowledged."""
    rng = random.Random(seed)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.crash_child", url, prefix, str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"READY\n"
    lines: list[bytes] = []
    target = rng.randint(1, 400)
    while len(lines) < target:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    time.sleep(rng.random() * 0.004)  # somewhere inside the next write
    os.kill(proc.pid, signal.SIGKILL)
    rest = proc.stdout.read()  # acknowledgements already in the pipe count too
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    lines.extend(rest.splitlines(keepends=True))
    fills, outbox = [], []
    for line in lines:
        if not line.endswith(b"\n"):
            continue  # a line cut by the kill was never fully acknowledged
        kind, ident = line.decode().split()
        (fills if kind == "F" else outbox).append(ident)
    return fills, outbox


def _crash_rounds(db_url: str, rounds: int, seed: int, reopen: Callable[..., SqlStore]) -> None:
    all_fills: list[str] = []
    all_outbox: list[str] = []
    open_store(db_url).close()  # migrate once up front
    for k in range(rounds):
        fills, outbox = _kill_while_writing(db_url, f"k{seed}x{k}", seed * 1000 + k)
        all_fills += fills
        all_outbox += outbox
        store = reopen()
        stored = store.fills()
        ids = [f.trade_id for f in stored]
        assert len(ids) == len(set(ids)), "a fill is stored twice"
        missing = set(all_fills) - set(ids)
        assert not missing, f"acknowledged fills lost after kill {k}: {sorted(missing)[:5]}"
        pending = {e["client_order_id"] for e in store.outbox_pending()}
        assert set(all_outbox) <= pending
        # a restarted desk replays what the venue reports: every acknowledged fill is a no-op
        by_id = {f.trade_id: f for f in stored}
        assert store.record_fills([by_id[t] for t in fills]) == 0
        assert store.check_integrity() == "ok"
        store.close()
    assert all_fills, "the child never acknowledged a fill"


def test_sigkill_while_writing_loses_no_acknowledged_fill(db_url: str, reopen: Callable[..., SqlStore]) -> None:
    _crash_rounds(db_url, rounds=3, seed=1, reopen=reopen)


@pytest.mark.slow
def test_sigkill_many_times(db_url: str, reopen: Callable[..., SqlStore]) -> None:
    _crash_rounds(db_url, rounds=25, seed=2, reopen=reopen)


def test_queued_snapshots_are_written_when_the_process_exits_without_close(db_url: str) -> None:
    code = (
        "import sys; from storage.store import open_store; s = open_store(sys.argv[1]); "
        "[s.record_snapshot('risk', i, {'equity': float(i)}) for i in range(500)]"
    )
    subprocess.run([sys.executable, "-c", code, db_url], cwd=ROOT, check=True, timeout=60)
    with open_store(db_url) as store:
        assert len(store.snapshots("risk", 0, 10_000)) == 500
