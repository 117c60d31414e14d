"""Several writers at once: threads and store instances; the batch writer's queue and back-pressure."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from app.errors import LeaseHeld, StoreError
from storage.store import SqlStore
from storage.writer import BatchWriter
from tests.storage.conftest import make_fill


def test_concurrent_fill_writers_lose_nothing(store: SqlStore, reopen: Callable[..., SqlStore]) -> None:
    other = reopen()
    errors: list[BaseException] = []

    def writer(s: SqlStore, start: int) -> None:
        try:
            for i in range(start, start + 40):
                assert s.record_fill(make_fill(i))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s, k * 40)) for k, s in enumerate([store, other, store, other])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.fill_count() == 160


def test_only_one_of_many_concurrent_lease_takers_wins(store: SqlStore, reopen: Callable[..., SqlStore]) -> None:
    stores = [store, reopen(), reopen()]
    store.create_run("r1")
    winners: list[str] = []
    losers: list[str] = []
    barrier = threading.Barrier(6)

    def take(s: SqlStore, holder: str) -> None:
        barrier.wait()
        try:
            s.acquire_lease("r1", holder)
            winners.append(holder)
        except LeaseHeld:
            losers.append(holder)

    threads = [threading.Thread(target=take, args=(stores[k % 3], f"p{k}")) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(losers) == 5
    assert store.get_run("r1")["lease_holder"] == winners[0]  # type: ignore[index]


def test_batch_writer_back_pressure_flush_and_errors() -> None:
    release = threading.Event()
    written: list[int] = []

    def slow_write(items: list[object]) -> None:
        release.wait(10)
        written.extend(items)  # type: ignore[arg-type]

    w = BatchWriter(slow_write, maxsize=2, batch_size=10, put_timeout_s=0.05)
    try:
        w.submit(1)  # taken by the thread, which now blocks in slow_write
        accepted = 1
        with pytest.raises(StoreError) as exc:
            for i in range(2, 10):
                w.submit(i)
                accepted += 1
        assert exc.value.code == "store.backpressure"
        release.set()
        w.flush()
        assert written == list(range(1, accepted + 1))  # in order, nothing accepted was dropped
    finally:
        release.set()
        w.close()
        w.close()
    with pytest.raises(StoreError) as closed:
        w.submit(99)
    assert closed.value.code == "store.closed"
