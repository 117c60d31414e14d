"""Where the dashboard's data comes from: a live Desk in the same process, or a store written by ``desk run``.

The dashboard never computes risk itself. A source hands it snapshots, histories and analytics views that
the composition root (``app.analytics``) derives with the core's pricing and risk code.

    source = LiveSource(desk)          # desk dash
    source = StoredSource(store)       # desk dash --db PATH (read-only)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from app.domain import DeskSnapshot, MarginReport, OrderRequest


class DashSource(Protocol):
    """What the pages read; every method is cheap enough to call from a callback."""

    label: str
    live: bool

    def snapshot(self) -> DeskSnapshot | None:
        """The newest desk snapshot (live), or the last stored one."""
        ...

    def series(self, kind: str, since_ms: int | None = None) -> dict[str, np.ndarray]:
        """History of a snapshot kind (``desk``) as columns: ``ts`` (epoch ms) plus one array per figure."""
        ...

    def strategy_runs(self) -> list[dict[str, Any]]:
        """Strategy runs with their config and status."""
        ...

    def decisions(self, run_id: str, limit: int = 5000) -> list[dict[str, Any]]:
        """Hedge decisions of one run, oldest first."""
        ...

    def backtests(self) -> list[dict[str, Any]]:
        """Stored backtest runs with their metrics."""
        ...

    def backtest_report(self, backtest_id: str) -> dict[str, Any] | None:
        """One stored backtest with its full report (series per path), or None."""
        ...

    def what_if(self, orders: Sequence[OrderRequest]) -> dict[str, MarginReport]:
        """Margin after hypothetical orders (no orders are sent)."""
        ...


class LiveSource:
    """A Desk running in this process (its asyncio loop may run in another thread).

    ``publish()`` is called on the Desk's loop to hand over a fresh snapshot; callbacks (Flask threads) only
    read the latest reference, so they never touch the Desk's state concurrently. ``what_if`` is evaluated on
    the Desk's loop when one is given.
    """

    live = True

    def __init__(self, desk: Any, *, loop: Any = None, label: str = "simulated market", history_size: int = 20_000) -> None:
        self.desk = desk
        self.loop = loop
        self.label = label
        self._snap: DeskSnapshot | None = None
        self._history: list[dict[str, Any]] = []
        self._history_size = history_size

    def publish(self) -> DeskSnapshot:
        """Take a snapshot of the Desk (call on the Desk's loop) and append a history row."""
        from app.analytics import history_row

        snap = self.desk.snapshot()
        self._snap = snap
        self._history.append(history_row(snap))
        if len(self._history) > self._history_size:
            del self._history[: len(self._history) - self._history_size]
        return snap

    def snapshot(self) -> DeskSnapshot | None:
        """The latest published snapshot (publishes one first if none yet and no loop is running elsewhere)."""
        if self._snap is None and self.loop is None:
            return self.publish()
        return self._snap

    def series(self, kind: str, since_ms: int | None = None) -> dict[str, np.ndarray]:
        """Rows published so far (``desk`` kind) as columns, oldest first."""
        rows = [r for r in list(self._history) if since_ms is None or r["ts"] >= since_ms]
        names = list(dict.fromkeys(k for r in rows for k in r))
        out = {k: np.array([r.get(k, np.nan) for r in rows], dtype=float) for k in names}
        out["ts"] = np.array([r["ts"] for r in rows], dtype=np.int64)
        return out

    def strategy_runs(self) -> list[dict[str, Any]]:
        """Strategies attached to the Desk."""
        snap = self._snap
        return [{"run_id": s.run_id, "name": s.name, "status": s.status, "summary": dict(s.summary)} for s in (snap.strategies if snap else ())]

    def decisions(self, run_id: str, limit: int = 5000) -> list[dict[str, Any]]:
        """Recent decisions of a strategy attached to the Desk (from its status)."""
        snap = self._snap
        for s in snap.strategies if snap else ():
            if s.run_id == run_id:
                return list(s.last_decisions)[-limit:]
        return []

    def backtests(self) -> list[dict[str, Any]]:
        """Backtests stored by the Desk's store, when it has one."""
        store = getattr(self.desk, "store", None)
        return list(store.list_backtests()) if store is not None and hasattr(store, "list_backtests") else []

    def backtest_report(self, backtest_id: str) -> dict[str, Any] | None:
        """A backtest stored by the Desk's store, with its report."""
        store = getattr(self.desk, "store", None)
        return _backtest_report(store, backtest_id)

    def what_if(self, orders: Sequence[OrderRequest]) -> dict[str, MarginReport]:
        """Margin after hypothetical orders, computed by the Desk on its own loop."""
        if self.loop is None:
            return self.desk.what_if(list(orders))
        import asyncio

        async def _call() -> dict[str, MarginReport]:
            return self.desk.what_if(list(orders))

        return asyncio.run_coroutine_threadsafe(_call(), self.loop).result(timeout=5)


class StoredSource:
    """A store written by a headless ``desk run`` (opened read-only); no orders, no live market."""

    live = False

    def __init__(self, store: Any, *, label: str = "stored run") -> None:
        self.store = store
        self.label = label

    def snapshot(self) -> DeskSnapshot | None:
        """A snapshot rebuilt from the newest stored ``desk`` row: margin and greeks, no chain."""
        from app.analytics import snapshot_from_row

        row = self.store.latest_snapshot("desk")
        return None if row is None else snapshot_from_row(row)

    def series(self, kind: str, since_ms: int | None = None) -> dict[str, np.ndarray]:
        """Stored snapshots of ``kind`` as numpy columns (the store's fast path), oldest first."""
        return dict(self.store.snapshot_series(kind, since_ms or 0, 2**62))

    def strategy_runs(self) -> list[dict[str, Any]]:
        """Strategy runs in the store, each with the hedger's running totals (fees, slippage) as ``summary``."""
        runs = list(self.store.list_runs()) if hasattr(self.store, "list_runs") else []
        for run in runs:
            state = self.store.load_strategy_state(run["run_id"]) or {}
            inner = state.get("strategy") if isinstance(state.get("strategy"), dict) else state
            run["summary"] = dict(inner.get("totals") or {})
        return runs

    def decisions(self, run_id: str, limit: int = 5000) -> list[dict[str, Any]]:
        """Stored hedge decisions of a run."""
        return list(self.store.decisions(run_id, limit=limit)) if hasattr(self.store, "decisions") else []

    def backtests(self) -> list[dict[str, Any]]:
        """Stored backtest runs."""
        return list(self.store.list_backtests()) if hasattr(self.store, "list_backtests") else []

    def backtest_report(self, backtest_id: str) -> dict[str, Any] | None:
        """A stored backtest with its report."""
        return _backtest_report(self.store, backtest_id)

    def what_if(self, orders: Sequence[OrderRequest]) -> dict[str, MarginReport]:
        """Not available on a stored run."""
        from app.errors import NotBuilt

        raise NotBuilt("what-if needs a live desk; this dashboard shows a stored run", code="dash.read_only")


def _backtest_report(store: Any, backtest_id: str) -> dict[str, Any] | None:
    from app.errors import NotFound

    if store is None or not hasattr(store, "get_backtest"):
        return None
    try:
        return dict(store.get_backtest(backtest_id))
    except NotFound:
        return None
