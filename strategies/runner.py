"""Runs one strategy headless and crash-safe: outbox before send, reconcile on start, lease, kill switch.

Modes (persisted in the store, changed by ``desk hedge activate|pause|kill RUN``):

- ``dry_run`` (the default until activated, or ``active = true`` in the config): decisions are made and
  recorded; order intents are not sent, the strategy is told "not sent (dry run)".
- ``active``: intents are sent.
- ``paused``: like dry run, and the run's working orders are cancelled on entry.
- ``killed``: the run's open orders are cancelled and the runner stops; a killed run stays killed across
  restarts (start() refuses to trade).

Crash safety. For each order intent the runner (1) writes the outbox entry with client order id
``"<run>-<decision seq>.<n>"``, (2) saves the strategy state that knows about that order, (3) sends it, (4)
marks the entry acked or failed. On start it reconciles with the venue's own records (nautilus_trader
style): pending outbox entries the venue knows are acked and followed, the others are failed and the
strategy is told "not sent"; every fill of the run's orders since the last saved watermark goes to the store
(idempotent on trade id) and to the strategy (which ignores trade ids it has seen); order states are replayed
to the strategy; open orders of the run that the strategy no longer owns are cancelled. A crash at any point
therefore neither loses a fill nor sends a hedge twice: the hedger decides from the venue's positions, and
an order it already sent is found again by its client order id.

Timers are restart-safe: the next due time is part of the saved state; an overdue timer fires once.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.clock import Clock
from app.domain import (
    Event,
    Fill,
    FillEvent,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    StrategyStatus,
    TimeInForce,
    Timer,
)
from app.errors import DeskError, LeaseHeld, NotFound, OrderRejected
from app.ports import OrderRouter, OrderStatusReport, RunControlStore, Store
from strategies.base import DeskView, Intent, IntentKind, Strategy

MODES = ("dry_run", "active", "paused", "killed")
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
FILL_OVERLAP_MS = 60_000  # re-read fills this far behind the watermark: venues report late
CONTROL_POLL_MS = 1_000  # clock ms between reads of the run's mode when no decision is due
MAX_FEEDBACK = 200
MAX_ORDER_IDS = 512  # intents handled per event, a guard against a strategy that loops


def make_holder() -> str:
    """A lease holder id: ``host:pid:nonce``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_dead(holder: str) -> bool:
    """True when ``holder`` is a process of this host that no longer exists."""
    try:
        host, pid_s, _ = holder.split(":", 2)
        pid = int(pid_s)
    except ValueError:
        return False
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # A zombie (killed child not yet reaped) is dead too.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


class StateBackedControl:
    """:class:`app.ports.RunControlStore` on top of any plain :class:`app.ports.Store` (for stores without one).

    Status and lease live in the strategy-state slot ``"<run>#control"``. The lease is read-then-write, so it
    guards against a second runner started later, not against two starting in the same millisecond.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def _get(self, run_id: str) -> dict[str, Any] | None:
        return self.store.load_strategy_state(f"{run_id}#control")

    def _put(self, run_id: str, data: dict[str, Any]) -> None:
        self.store.save_strategy_state(f"{run_id}#control", data)

    def create_run(self, run_id: str, name: str = "", config: Any = None, status: str = "dry_run") -> dict[str, Any]:
        """Register a run."""
        if self._get(run_id) is not None:
            raise DeskError(f"strategy run {run_id!r} already exists", code="run.exists")
        d = {"run_id": run_id, "name": name, "config": config or {}, "status": status, "lease_holder": None, "lease_heartbeat_ms": None}
        self._put(run_id, d)
        return d

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run's record, or None."""
        return self._get(run_id)

    def set_run_status(self, run_id: str, status: str) -> None:
        """Change the status."""
        d = self._get(run_id)
        if d is None:
            raise NotFound(f"no strategy run {run_id!r}", code="run.not_found")
        d["status"] = status
        self._put(run_id, d)

    def acquire_lease(self, run_id: str, holder: str, *, stale_after_s: float = 30.0, now_ms: int | None = None) -> Any:
        """Take, renew or take over the lease; raise LeaseHeld."""
        d = self._get(run_id) or {"run_id": run_id, "status": "dry_run"}
        now = int(now_ms or 0)
        cur = d.get("lease_holder")
        if cur and cur != holder and now - int(d.get("lease_heartbeat_ms") or 0) <= stale_after_s * 1000:
            raise LeaseHeld(f"strategy run {run_id} is driven by {cur}", run_id=run_id, holder=cur)
        d["lease_holder"] = holder
        d["lease_heartbeat_ms"] = now
        self._put(run_id, d)
        return d

    def heartbeat(self, run_id: str, holder: str, *, now_ms: int | None = None) -> None:
        """Refresh the lease; raise LeaseHeld when lost."""
        d = self._get(run_id) or {}
        if d.get("lease_holder") != holder:
            raise LeaseHeld(f"{holder} no longer holds the lease of run {run_id}", code="store.lease_lost", run_id=run_id)
        d["lease_heartbeat_ms"] = int(now_ms or 0)
        self._put(run_id, d)

    def release_lease(self, run_id: str, holder: str) -> bool:
        """Give the lease up."""
        d = self._get(run_id)
        if d is None or d.get("lease_holder") != holder:
            return False
        d["lease_holder"] = None
        self._put(run_id, d)
        return True


def control_of(store: Store) -> RunControlStore:
    """The store's own run control when it has one (SqlStore), else the state-backed fallback."""
    if isinstance(store, RunControlStore):
        return store
    return StateBackedControl(store)


def run_status(store: Store, run_id: str) -> str | None:
    """A run's control status, or None when the run is unknown."""
    run = control_of(store).get_run(run_id)
    return None if run is None else str(run.get("status"))


@dataclass
class ReconcileReport:
    """What start-up reconciliation found and did."""

    outbox_acked: list[str] = field(default_factory=list)
    outbox_failed: list[str] = field(default_factory=list)
    fills_new: int = 0
    fills_seen: int = 0
    orders_replayed: int = 0
    orphans_cancelled: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "outbox_acked": self.outbox_acked,
            "outbox_failed": self.outbox_failed,
            "fills_new": self.fills_new,
            "fills_seen": self.fills_seen,
            "orders_replayed": self.orders_replayed,
            "orphans_cancelled": self.orphans_cancelled,
        }


class Runner:
    """Drives one strategy: events in, intents through the outbox to the router, everything to the store."""

    def __init__(
        self,
        strategy: Strategy,
        router: OrderRouter,
        store: Store,
        view: DeskView | Callable[[], DeskView],
        *,
        run_id: str,
        clock: Clock,
        venue: str = "sim",
        routers: Mapping[str, OrderRouter] | None = None,
        check_interval_ms: int = 5_000,
        active: bool = False,
        holder: str | None = None,
        lease_ttl_ms: int = 30_000,
        record_decisions: bool = True,
    ) -> None:
        if not _RUN_ID.match(run_id):
            raise DeskError(f"run id {run_id!r} must be 1-40 letters, digits, '-' or '_'", code="input.invalid", run_id=run_id)
        self.strategy = strategy
        self.router = router
        self.routers = dict(routers or {})
        self.store = store
        self.control = control_of(store)
        self._view = view
        self.run_id = run_id
        self.clock = clock
        self.venue = venue
        self.check_interval_ms = int(check_interval_ms)
        self.default_active = active
        self.holder = holder or make_holder()
        self.lease_ttl_ms = lease_ttl_ms
        self.record_decisions = record_decisions
        self.mode = "dry_run"
        self.stopped = False
        self.started = False
        self._orders: dict[str, str] = {}  # key -> venue order id
        self._requests: dict[str, OrderRequest] = {}  # key -> request (for reconciliation of reports)
        self._next_timer_ms: int | None = None
        self._fill_watermark = 0
        self._last_beat: int | None = None
        self._last_poll: int | None = None
        self.decisions_recorded = 0
        self.sent = 0
        self.last_decisions: deque[dict[str, Any]] = deque(maxlen=20)

    # -- helpers ------------------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        """Client order id prefix of this run."""
        return f"{self.run_id}-"

    def coid(self, key: str) -> str:
        """Client order id of a strategy key."""
        return f"{self.run_id}-{key}"

    def owns(self, client_order_id: str | None) -> bool:
        """True when ``client_order_id`` belongs to this run."""
        return bool(client_order_id) and str(client_order_id).startswith(self.prefix)

    def view(self) -> DeskView:
        """The current desk view."""
        return self._view() if callable(self._view) and not isinstance(self._view, DeskView) else self._view  # type: ignore[return-value]

    def set_view(self, view: DeskView | Callable[[], DeskView]) -> None:
        """Replace what the strategy reads (e.g. a backtest's cheaper margin view over the same desk)."""
        self._view = view

    def _router(self, venue: str | None) -> OrderRouter:
        if venue is None or venue == self.venue:
            return self.router
        if venue in self.routers:
            return self.routers[venue]
        raise NotFound(f"no router for venue {venue!r}", code="not_found.venue")

    def _save(self) -> None:
        # Order ids are needed for cancels and amends of working orders only: keep those and the recent ones, so
        # the saved state of a run that trades for weeks stays small.
        if len(self._orders) > MAX_ORDER_IDS:
            live = self._live_keys()
            recent = list(self._orders)[-MAX_ORDER_IDS // 2:]
            self._orders = {k: v for k, v in self._orders.items() if k in live or k in recent}
            self._requests = {k: v for k, v in self._requests.items() if k in self._orders}
        self.store.save_strategy_state(
            self.run_id,
            {
                "strategy": self.strategy.state(),
                "runner": {
                    "next_timer_ms": self._next_timer_ms,
                    "orders": dict(self._orders),
                    "fill_watermark": self._fill_watermark,
                },
            },
        )

    def _record(self) -> None:
        for d in self.strategy.take_decisions():
            d = dict(d, mode=self.mode, run_id=self.run_id, rule=d.get("code", ""))
            self.last_decisions.append(d)
            if self.record_decisions:
                self.store.record_decision(self.run_id, d)
                self.decisions_recorded += 1

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> ReconcileReport:
        """Take the lease, read the mode, restore state, reconcile with the venue; raise LeaseHeld."""
        now = self.clock.now_ms()
        stale_s = self.lease_ttl_ms / 1000
        try:
            self.control.acquire_lease(self.run_id, self.holder, stale_after_s=stale_s, now_ms=now)
        except LeaseHeld:
            run = self.control.get_run(self.run_id) or {}
            cur = run.get("lease_holder")
            # A holder that died on this host (SIGKILL, OOM) cannot renew: take its lease at once.
            if not (cur and _holder_dead(str(cur)) and self.control.release_lease(self.run_id, str(cur))):
                raise
            self.control.acquire_lease(self.run_id, self.holder, stale_after_s=stale_s, now_ms=now)
        self._last_beat = now
        run = self.control.get_run(self.run_id) or {}
        status = run.get("status")
        fresh = self.store.load_strategy_state(self.run_id) is None and status in (None, "dry_run")
        if fresh and self.default_active:
            status = "active"
            self.control.set_run_status(self.run_id, status)
        status = status or "dry_run"
        if status == "stopped":
            status = "active" if self.default_active else "dry_run"
            self.control.set_run_status(self.run_id, status)
        self.mode = status
        saved = self.store.load_strategy_state(self.run_id)
        if saved:
            self.strategy.restore(saved.get("strategy", {}))
            r = saved.get("runner", {})
            self._next_timer_ms = r.get("next_timer_ms")
            self._orders = dict(r.get("orders", {}))
            self._fill_watermark = int(r.get("fill_watermark", 0))
        report = await self.reconcile()
        self.started = True
        if self.mode in ("killed", "paused"):
            # No working orders in these modes; fills that landed before the cancels took effect are swept up.
            await self._cancel_all(f"run is {self.mode}")
            await self._sweep_fills(report)
        if self.mode == "killed":
            await self.stop()
            return report
        self._save()
        return report

    async def stop(self) -> None:
        """Save state and release the lease (orders stay; kill cancels them)."""
        if self.started:
            self._save()
            self.control.release_lease(self.run_id, self.holder)
        self.stopped = True

    async def reconcile(self) -> ReconcileReport:
        """Match the outbox, open orders and fills with the venue's records; tell the strategy what happened."""
        rep = ReconcileReport()
        reports: dict[str, OrderStatusReport] = {}
        for router in self._all_routers():
            for r in await router.order_reports(open_only=False):
                if self.owns(r.client_order_id):
                    reports[str(r.client_order_id)] = r
        for entry in self.store.outbox_pending(self.run_id):
            coid = entry["client_order_id"]
            r = reports.get(coid)
            if r is not None:
                self.store.outbox_mark(coid, "acked", venue_order_id=r.order_id)
                rep.outbox_acked.append(coid)
            else:
                self.store.outbox_mark(coid, "failed", error="not at the venue after restart: never sent")
                rep.outbox_failed.append(coid)
                key = coid[len(self.prefix):]
                self._requests.setdefault(key, _request_of_entry(entry))
        # Fills first, so that what a hedge still has to do is right before anything is re-sent.
        await self._sweep_fills(rep)
        for coid, r in sorted(reports.items(), key=lambda kv: kv[1].ts):
            key = coid[len(self.prefix):]
            self._orders[key] = r.order_id
            await self._feed(OrderUpdate(self.clock.now_ms(), self._order_of_report(r)))
            rep.orders_replayed += 1
        # Orders the strategy owns that the venue never saw (crash before the send): tell it, so that it
        # re-sends under a new id.
        for key in sorted(self._live_keys()):
            coid = self.coid(key)
            if coid not in reports:
                req = self._requests.get(key) or _placeholder(coid)
                order = Order(coid, req, OrderStatus.REJECTED, ts=self.clock.now_ms(), reject_code="not_sent")
                await self._feed(OrderUpdate(self.clock.now_ms(), order))
                if coid not in rep.outbox_failed:
                    rep.outbox_failed.append(coid)
        live = self._live_keys()
        for coid, r in reports.items():
            key = coid[len(self.prefix):]
            if _status(r.status) is OrderStatus.OPEN and key not in live:
                await self._cancel_order(key, r.order_id, "orphan after restart")
                rep.orphans_cancelled.append(coid)
        self._record()
        return rep

    async def _sweep_fills(self, rep: ReconcileReport) -> None:
        """Record and feed every fill of the run's orders the venue reports since the watermark (idempotent)."""
        since = max(0, self._fill_watermark - FILL_OVERLAP_MS)
        fills: list[Fill] = []
        for router in self._all_routers():
            fills += [f for f in await router.fill_reports(since_ms=since) if self.owns(f.client_order_id)]
        fills.sort(key=lambda f: (f.ts, f.trade_id))
        for f in fills:
            if self.store.record_fill(f, self.run_id):
                rep.fills_new += 1
            else:
                rep.fills_seen += 1
            self._fill_watermark = max(self._fill_watermark, f.ts)
            await self._feed(FillEvent(f.ts, f))

    def _all_routers(self) -> list[OrderRouter]:
        return list({id(r): r for r in [self.router, *self.routers.values()]}.values())

    def _live_keys(self) -> set[str]:
        fn = getattr(self.strategy, "live_keys", None)
        return set(fn()) if callable(fn) else set(self._orders)

    def _order_of_report(self, r: OrderStatusReport) -> Order:
        key = str(r.client_order_id)[len(self.prefix):]
        req = self._requests.get(key)
        if req is None:
            req = OrderRequest(r.instrument, Side.BUY, r.amount, r.price, OrderType.LIMIT if r.price is not None else OrderType.MARKET,
                               client_order_id=r.client_order_id)
        return Order(r.order_id, req, _status(r.status), r.filled, None, r.ts)

    # -- events -------------------------------------------------------------------------------------
    async def on_event(self, event: Event) -> None:
        """Feed one bus event (market data, our order and fill events) to the strategy and act on its intents."""
        if self.stopped:
            return
        if not self.started:
            await self.start()
            if self.stopped:
                return
        if isinstance(event, OrderUpdate):
            if not self.owns(event.order.request.client_order_id):
                return
        elif isinstance(event, FillEvent):
            f = event.fill
            if not self.owns(f.client_order_id):
                return
            self.store.record_fill(f, self.run_id)
            self._fill_watermark = max(self._fill_watermark, f.ts)
        await self._feed(event)
        if isinstance(event, (OrderUpdate, FillEvent)):
            self._save()

    async def tick(self) -> None:
        """Renew the lease, follow the control status, fire due timers (starting the runner first if needed)."""
        if self.stopped:
            return
        if not self.started:
            await self.start()
            if self.stopped:
                return
        now = self.clock.now_ms()
        # A heartbeat four times per lease period keeps the lease ours (only a silent holder can be taken over),
        # without a durable write on every simulated step.
        if self._last_beat is None or now - self._last_beat >= self.lease_ttl_ms // 4:
            try:
                self.control.heartbeat(self.run_id, self.holder, now_ms=now)
            except LeaseHeld:
                # Someone else runs this strategy now: stop at once, touch nothing.
                self.stopped = True
                raise
            self._last_beat = now
        due = self._next_timer_ms is None or now >= self._next_timer_ms
        # The mode is read before every decision, and at least every CONTROL_POLL_MS in between.
        if due or self._last_poll is None or now - self._last_poll >= CONTROL_POLL_MS:
            self._last_poll = now
            status = (self.control.get_run(self.run_id) or {}).get("status") or self.mode
            if status != self.mode:
                await self._set_mode(status)
                if self.stopped:
                    return
        if due:
            self._next_timer_ms = now + self.check_interval_ms
            await self._feed(Timer(now, "check"))
            self._save()

    async def _set_mode(self, status: str) -> None:
        old, self.mode = self.mode, status
        self.last_decisions.append({"ts": self.clock.now_ms(), "action": "mode", "reason": f"{old} -> {status}", "run_id": self.run_id})
        if self.record_decisions:
            self.store.record_decision(self.run_id, {"ts": self.clock.now_ms(), "action": "mode", "code": f"mode.{status}",
                                                     "reason": f"{old} -> {status}", "inputs": {}, "intents": []})
        if status in ("paused", "killed"):
            await self._cancel_all(f"run {status}")
            await self._sweep_fills(ReconcileReport())
        if status == "killed":
            await self.stop()

    async def _cancel_all(self, reason: str) -> None:
        for router in self._all_routers():
            for r in await router.order_reports(open_only=True):
                if self.owns(r.client_order_id) and _status(r.status) is OrderStatus.OPEN:
                    await self._cancel_order(str(r.client_order_id)[len(self.prefix):], r.order_id, reason, router)

    async def _cancel_order(self, key: str, order_id: str, reason: str, router: OrderRouter | None = None) -> None:
        try:
            order = await (router or self.router).cancel(order_id)
        except (NotFound, OrderRejected):
            return
        await self._feed(OrderUpdate(self.clock.now_ms(), order))

    async def _feed(self, event: Event) -> None:
        """Give one event to the strategy and carry out the intents, including follow-ups they cause."""
        queue: deque[Intent] = deque(self.strategy.on_event(event, self.view()))
        self._record()
        n = 0
        while queue and n < MAX_FEEDBACK:
            n += 1
            intent = queue.popleft()
            for follow in await self._execute(intent):
                queue.extend(self.strategy.on_event(follow, self.view()))
                self._record()

    async def _execute(self, intent: Intent) -> list[Event]:
        """Carry out one intent; return the order events to feed back to the strategy."""
        now = self.clock.now_ms()
        key = intent.key
        coid = self.coid(key)
        if intent.kind is IntentKind.PLACE:
            assert intent.request is not None
            r = intent.request
            req = OrderRequest(r.instrument, r.side, r.amount, r.price, r.type, r.tif, r.post_only, r.reduce_only,
                               client_order_id=coid, account=r.account, reason=r.reason or intent.reason)
            self._requests[key] = req
            if self.mode != "active":
                return [OrderUpdate(now, Order(coid, req, OrderStatus.REJECTED, ts=now, reject_code="dry_run"))]
            venue = intent.venue or self.venue
            # The state that owns the order (its decision seq consumed) and the outbox entry are on disk before
            # the venue sees the order, so a restart neither reuses the id nor forgets the order.
            self._save()
            self.store.outbox_put(self.run_id, coid, req, venue)
            self.store.outbox_mark(coid, "sent")
            try:
                order = await self._router(intent.venue).place(req)
            except OrderRejected as exc:
                self.store.outbox_mark(coid, "failed", error=f"{exc.code}: {exc.message}"[:500])
                return [OrderUpdate(now, Order(coid, req, OrderStatus.REJECTED, ts=now, reject_code=exc.code))]
            self.sent += 1
            self._orders[key] = order.order_id
            self.store.outbox_mark(coid, "acked", venue_order_id=order.order_id)
            self.store.record_order(order, self.run_id, venue)
            return [OrderUpdate(now, order)]
        order_id = self._orders.get(key)
        if order_id is None:
            return []
        try:
            if intent.kind is IntentKind.CANCEL:
                order = await self._router(intent.venue).cancel(order_id)
            else:
                order = await self._router(intent.venue).amend(order_id, intent.amount, intent.price)
        except NotFound:
            # Already gone at the venue (filled or cancelled): its reports say how it ended.
            return [OrderUpdate(now, o) for o in await self._final_state(key, order_id)]
        except OrderRejected as exc:
            if intent.kind is IntentKind.CANCEL:
                return [OrderUpdate(now, o) for o in await self._final_state(key, order_id)]
            return [OrderUpdate(now, Order(order_id, self._requests.get(key) or _placeholder(coid), OrderStatus.OPEN, ts=now, reject_code=exc.code))]
        self.store.record_order(order, self.run_id, intent.venue or self.venue)
        return [OrderUpdate(now, order)]

    async def _final_state(self, key: str, order_id: str) -> list[Order]:
        for r in await self.router.order_reports(open_only=False):
            if r.order_id == order_id:
                return [self._order_of_report(r)]
        return []

    # -- loops --------------------------------------------------------------------------------------
    async def run(self, events: AsyncIterator[Event], *, poll_s: float = 0.25, until_ms: int | None = None,
                  stop: asyncio.Event | None = None) -> None:
        """Live loop: read events, tick timers every ``poll_s`` wall seconds, until stopped/killed/``until_ms``."""
        if not self.started:
            await self.start()
        it = events.__aiter__()
        pending: asyncio.Task[Event] | None = None
        try:
            while not self.stopped and (stop is None or not stop.is_set()):
                if until_ms is not None and self.clock.now_ms() >= until_ms:
                    break
                if pending is None:
                    pending = asyncio.ensure_future(it.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=poll_s)
                if pending in done:
                    try:
                        event = pending.result()
                    except StopAsyncIteration:
                        break
                    finally:
                        pending = None
                    await self.on_event(event)
                await self.tick()
        finally:
            if pending is not None:
                pending.cancel()
            await self.stop()

    def status(self) -> StrategyStatus:
        """What a front shows of this run."""
        totals = getattr(self.strategy, "totals", {})
        status = self.mode if self.mode in ("dry_run", "active", "paused", "killed") else "stopped"
        return StrategyStatus(self.run_id, self.strategy.name, status,  # type: ignore[arg-type]
                              summary={"sent": self.sent, "decisions": self.decisions_recorded, **dict(totals)},
                              last_decisions=tuple(self.last_decisions))


def set_run_mode(store: Store, run_id: str, mode: str) -> str:
    """Set a run's mode from outside (``desk hedge activate|pause|kill``); returns the previous mode."""
    if mode not in MODES:
        raise DeskError(f"mode must be one of {', '.join(MODES)}", code="input.invalid", mode=mode)
    ctl = control_of(store)
    run = ctl.get_run(run_id)
    if run is None:
        raise NotFound(f"no strategy run {run_id!r} in the store", code="run.not_found", run_id=run_id)
    prev = str(run.get("status"))
    if prev == "killed" and mode != "killed":
        raise DeskError(f"run {run_id} was killed; start a new run id", code="strategy.killed", run_id=run_id)
    ctl.set_run_status(run_id, mode)
    return prev


def _status(text: str) -> OrderStatus:
    t = text.lower()
    aliases = {"untriggered": "open", "partially_filled": "open", "new": "open", "canceled": "cancelled"}
    try:
        return OrderStatus(aliases.get(t, t))
    except ValueError:
        return OrderStatus.OPEN


def _placeholder(coid: str) -> OrderRequest:
    return OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal("1"), Decimal("1"), client_order_id=coid)


def _request_of_entry(entry: Mapping[str, Any]) -> OrderRequest:
    """Rebuild an OrderRequest from an outbox row (keys as the store returns them)."""
    req = entry.get("request")
    if isinstance(req, OrderRequest):
        return req
    src = req if isinstance(req, Mapping) else entry
    price = src.get("price")
    return OrderRequest(
        str(src.get("instrument", "BTC-PERPETUAL")),
        Side(str(src.get("side", "buy"))),
        Decimal(str(src.get("amount", "1"))),
        None if price is None else Decimal(str(price)),
        OrderType(str(src.get("type", "limit" if price is not None else "market"))),
        TimeInForce(str(src.get("tif", TimeInForce.GTC.value))),
        bool(src.get("post_only", False)),
        bool(src.get("reduce_only", False)),
        client_order_id=str(entry.get("client_order_id")),
    )
