"""An in-memory :class:`app.ports.Store` (and run control) for backtests and dry runs: nothing touches disk.

Same semantics as the SQL store where the runner relies on them: ``record_fill`` is idempotent on
(venue, trade id), the outbox is idempotent on client order id and moves pending -> sent -> acked/failed,
runs have a status and a single-writer lease.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from app.domain import Fill, Order, OrderRequest
from app.errors import DeskError, LeaseHeld, NotFound
from strategies.base import copy_state

_NEXT = {"pending": {"pending", "sent", "acked", "failed"}, "sent": {"sent", "acked", "failed"}, "acked": {"acked"}, "failed": {"failed"}}


class MemoryStore:
    """Everything a strategy runner stores, in dicts; ``keep_decisions=False`` only counts decisions."""

    def __init__(self, *, keep_decisions: bool = True, max_snapshots: int = 10_000) -> None:
        self.fills: dict[tuple[str, str], tuple[Fill, str | None]] = {}
        self.orders: list[tuple[Order, str | None, str]] = []
        self.outbox: dict[str, dict[str, Any]] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.decision_list: list[dict[str, Any]] = []
        self.decision_count = 0
        self.keep_decisions = keep_decisions
        # Bounded: a backtest's desk records a history row every simulated second.
        self.snapshot_list: deque[tuple[str, int, dict[str, Any]]] = deque(maxlen=max_snapshots)

    # -- Store ------------------------------------------------------------------------------------
    def record_fill(self, fill: Fill, run_id: str | None = None) -> bool:
        """Store a fill; False when (venue, trade_id) was stored already."""
        key = (fill.venue, fill.trade_id)
        if key in self.fills:
            return False
        self.fills[key] = (fill, run_id)
        return True

    def record_order(self, order: Order, run_id: str | None = None, venue: str = "sim") -> None:
        """Append an order state."""
        self.orders.append((order, run_id, venue))

    def outbox_put(self, run_id: str, client_order_id: str, request: OrderRequest, venue: str = "sim") -> bool:
        """Write an intent before it is sent; False when it existed."""
        if client_order_id in self.outbox:
            return False
        self.outbox[client_order_id] = {"client_order_id": client_order_id, "run_id": run_id, "venue": venue,
                                        "status": "pending", "venue_order_id": None, "error": None, "request": request}
        return True

    def outbox_mark(self, client_order_id: str, status: str, venue_order_id: str | None = None, error: str | None = None) -> None:
        """Move an entry forward (never backwards)."""
        e = self.outbox.get(client_order_id)
        if e is None:
            raise NotFound(f"no outbox entry {client_order_id!r}", code="outbox.not_found")
        if status not in _NEXT[e["status"]]:
            raise DeskError(f"outbox entry {client_order_id} is {e['status']}; it cannot become {status}", code="outbox.transition")
        e["status"] = status
        if venue_order_id is not None:
            e["venue_order_id"] = venue_order_id
        if error is not None:
            e["error"] = error

    def outbox_pending(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Entries pending or sent."""
        return [dict(e) for e in self.outbox.values() if e["status"] in ("pending", "sent") and (run_id is None or e["run_id"] == run_id)]

    def save_strategy_state(self, run_id: str, state: dict[str, Any]) -> None:
        """Keep a copy of the state."""
        self.states[run_id] = copy_state(state)

    def load_strategy_state(self, run_id: str) -> dict[str, Any] | None:
        """A copy of the last state, or None."""
        s = self.states.get(run_id)
        return None if s is None else copy_state(s)

    def record_decision(self, run_id: str, decision: dict[str, Any]) -> None:
        """Keep (or only count) a decision."""
        self.decision_count += 1
        if self.keep_decisions:
            self.decision_list.append(decision)

    def record_snapshot(self, kind: str, ts: int, data: dict[str, Any]) -> None:
        """Keep a snapshot."""
        self.snapshot_list.append((kind, ts, data))

    def latest_snapshot(self, kind: str) -> dict[str, Any] | None:
        """The newest snapshot of a kind."""
        for k, _, d in reversed(self.snapshot_list):
            if k == kind:
                return d
        return None

    def snapshots(self, kind: str, since_ms: int, until_ms: int) -> list[dict[str, Any]]:
        """Snapshots of a kind in a time range."""
        return [d for k, t, d in self.snapshot_list if k == kind and since_ms <= t <= until_ms]

    # -- run control (app.ports.RunControlStore) ---------------------------------------------------
    def create_run(self, run_id: str, name: str = "", config: Any = None, status: str = "dry_run") -> dict[str, Any]:
        """Register a run."""
        if run_id in self.runs:
            raise DeskError(f"strategy run {run_id!r} already exists", code="run.exists")
        self.runs[run_id] = {"run_id": run_id, "name": name, "config": config or {}, "status": status,
                             "lease_holder": None, "lease_heartbeat_ms": None}
        return dict(self.runs[run_id])

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run's record."""
        r = self.runs.get(run_id)
        return None if r is None else dict(r)

    def set_run_status(self, run_id: str, status: str) -> None:
        """Change a run's status."""
        if run_id not in self.runs:
            raise NotFound(f"no strategy run {run_id!r}", code="run.not_found")
        self.runs[run_id]["status"] = status

    def acquire_lease(self, run_id: str, holder: str, *, stale_after_s: float = 30.0, now_ms: int | None = None) -> Any:
        """Take, renew or take over a stale lease; raise LeaseHeld."""
        r = self.runs.setdefault(run_id, {"run_id": run_id, "name": "", "config": {}, "status": "dry_run",
                                          "lease_holder": None, "lease_heartbeat_ms": None})
        now = int(now_ms or 0)
        cur = r["lease_holder"]
        if cur and cur != holder and now - int(r["lease_heartbeat_ms"] or 0) <= stale_after_s * 1000:
            raise LeaseHeld(f"strategy run {run_id} is driven by {cur}", run_id=run_id, holder=cur)
        r["lease_holder"] = holder
        r["lease_heartbeat_ms"] = now
        return dict(r)

    def heartbeat(self, run_id: str, holder: str, *, now_ms: int | None = None) -> None:
        """Refresh a held lease."""
        r = self.runs.get(run_id)
        if r is None or r["lease_holder"] != holder:
            raise LeaseHeld(f"{holder} no longer holds the lease of run {run_id}", code="store.lease_lost", run_id=run_id)
        r["lease_heartbeat_ms"] = int(now_ms or 0)

    def release_lease(self, run_id: str, holder: str) -> bool:
        """Give a lease up."""
        r = self.runs.get(run_id)
        if r is None or r["lease_holder"] != holder:
            return False
        r["lease_holder"] = None
        return True
