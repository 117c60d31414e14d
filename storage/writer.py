"""A writer thread with a bounded queue: batched writes (snapshots, market data) off the caller's hot path.

Producers ``submit`` items; the thread drains up to ``batch_size`` at a time and hands them to ``write`` in one
transaction. When the queue is full ``submit`` waits up to ``put_timeout_s`` (back-pressure) and then raises.
A failed batch is counted as dropped and its error is raised to the next ``submit``/``flush`` caller, so faults
surface instead of vanishing. Durable items (fills, outbox) never go through here.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from app.errors import StoreError

log = logging.getLogger(__name__)

_STOP = object()


class _Marker:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class BatchWriter:
    """Background thread writing queued items in batches through ``write(items)``."""

    def __init__(
        self,
        write: Callable[[list[Any]], None],
        *,
        maxsize: int = 50_000,
        batch_size: int = 5_000,
        put_timeout_s: float = 5.0,
        name: str = "desk-store-writer",
    ) -> None:
        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._batch_size = batch_size
        self._put_timeout_s = put_timeout_s
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Queue one item; raise the last batch error, or StoreError when the queue stays full."""
        self._raise_pending()
        if self._closed:
            raise StoreError("the store is closed", code="store.closed")
        try:
            self._queue.put(item, timeout=self._put_timeout_s)
        except queue.Full:
            raise StoreError(
                f"the store's write queue stayed full for {self._put_timeout_s:g} s (the database is too slow)",
                code="store.backpressure",
            ) from None

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until everything submitted before this call is written; raise a pending batch error."""
        if self._thread.is_alive():
            marker = _Marker()
            self._queue.put(marker)
            if not marker.done.wait(timeout_s):
                raise StoreError(f"the store writer did not catch up within {timeout_s:g} s", code="store.timeout")
        self._raise_pending()

    def close(self, timeout_s: float = 60.0) -> None:
        """Write what is queued, stop the thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout_s)

    @property
    def pending(self) -> int:
        """Items waiting in the queue."""
        return self._queue.qsize()

    def _raise_pending(self) -> None:
        with self._lock:
            err, self._error = self._error, None
        if err is not None:
            if isinstance(err, StoreError):
                raise err
            raise StoreError(f"a batched write failed: {err}", code="store.error") from err

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            batch: list[Any] = []
            markers: list[_Marker] = []
            item = first
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Marker):
                    markers.append(item)
                else:
                    batch.append(item)
                if stop or len(batch) >= self._batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self._write(batch)
                    self.written += len(batch)
                except Exception as exc:  # kept and re-raised to the next caller
                    self.dropped += len(batch)
                    log.error("store writer: %d queued rows not written: %s", len(batch), exc)
                    with self._lock:
                        self._error = exc
            for marker in markers:
                marker.done.set()
