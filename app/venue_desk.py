"""VenueDesk: the desk every front drives, over an external venue (Deribit, OKX, Bybit through ccxt).

    venue = CcxtVenue("deribit", credentials=creds, rest_url=..., ws_url=...)   # any app.ports.Venue
    desk = VenueDesk(venue, settings, store=store)
    await desk.connect()                  # markets, reconcile (positions, fills, orders), chain, streams, margin
    await desk.start(duration_ms)         # wall clock; strategies fed from the bus
    order = await desk.place(OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal("100"), Decimal("60000")))
    snap = desk.snapshot()                # chain from the venue's quotes, positions with greeks and PnL, margin
    await desk.stop(); await desk.close()

Same public API as :class:`app.desk.Desk` (the embedded simulated venue), so ``desk run``, the strategy runners
and the fronts drive either. What differs is where things come from:

- **chain**: the venue's quotes (streamed tickers of the perpetuals, futures and the nearest ``stream_expiries``
  option expiries, and a REST ``fetch_option_chain`` of every underlying each ``chain_refresh_s``); IVs are the
  venue's; greeks the venue's when it sends them, else computed from its mark IV (:mod:`app.venue_chain`).
- **index**: the venue's (ticker ``index_price``, index stream); a venue that sends none (OKX through ccxt) has
  its perpetual's mark stand in.
- **positions and PnL**: :class:`app.portfolio_view.Book` seeded from the venue's position reports at connect,
  then moved by our fills on the bus (deduplicated by trade id); every ``reconcile_interval_s`` the book is checked
  against the venue's positions and a drift seen twice in a row is corrected and raised as an alert.
- **margin**: the venue's own account figures (IM, MM, equity) each ``margin_interval_s`` and after fills, with the
  embedded engine's replica beside them (``details['replica_im']``); :meth:`what_if` asks the replica.
- **restart**: orders the venue already knows by client order id are never sent again (:meth:`place` returns the
  venue's order and counts ``resends_avoided``); fills seen before the restart are in the position, not re-booked.
- **connection health**: the connector's counters (disconnects, reconnects, resyncs, gaps) are in :meth:`summary`
  and the headless status line.

Time is the wall clock, moved forward to the venue's timestamps when they are ahead (:class:`VenueClock`). Nothing here imports a connector: the venue is handed in (``app.cli`` builds it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from app.bus import Bus, Subscription
from app.clock import Clock, WallClock
from app.config import Settings
from app.desk import Desk
from app.domain import (
    Alert,
    BookUpdate,
    ChainSlice,
    DeskSnapshot,
    Event,
    Fill,
    FillEvent,
    GreeksView,
    IndexPrice,
    Instrument,
    Kind,
    Liquidity,
    MarginAlert,
    MarginReport,
    Order,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    PositionUpdate,
    PositionView,
    Quote,
    Side,
    StrategyStatus,
    Trade,
    utc_from_ms,
)
from app.errors import AuthError, DeskError, InvalidInput, NotFound, UnknownInstrument
from app.portfolio_view import Book
from app.ports import AccountReport, OrderStatusReport, Store, Venue
from app.venue_chain import chain_slice
from app.venue_margin import build_replica, report_from_account

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "main"
RECENT_EVENTS = 200
_KIND_ORDER = {Kind.PERPETUAL: 0, Kind.FUTURE: 1, Kind.OPTION: 2}


class VenueClock:
    """Wall time set to the venue's own timestamps (clock skew; a simulated venue's own time and speed).

    ``sync(ts)`` sets the clock to a venue timestamp (at connect); ``observe(ts)`` later moves it forward to a
    venue timestamp that is ahead, and never back.
    """

    def __init__(self, base: Clock | None = None) -> None:
        self.base = base or WallClock()
        self.offset_ms = 0

    def now_ms(self) -> int:
        """The venue's time as best known, epoch ms."""
        return self.base.now_ms() + self.offset_ms

    def sync(self, ts: int) -> None:
        """Set the clock to the venue's time ``ts`` (epoch ms), backwards too (only before it is used)."""
        self.offset_ms = ts - self.base.now_ms()

    def observe(self, ts: int) -> None:
        """A timestamp the venue sent (epoch ms)."""
        ahead = ts - self.now_ms()
        if ahead > 0:
            self.offset_ms += ahead


def _listing_key(i: Instrument) -> tuple[Any, ...]:
    return (i.base, i.settlement, _KIND_ORDER.get(i.kind, 3), i.expiry_ms or 0, float(i.strike or 0), not i.is_call)


class VenueDesk:
    """The desk over one account at an external venue (app.ports.Venue); the API of app.desk.Desk."""

    def __init__(self, venue: Venue, settings: Settings | None = None, *, store: Store | None = None,
                 account: str = DEFAULT_ACCOUNT, underlyings: Sequence[str] | None = None, stream_expiries: int = 2,
                 chain_refresh_s: float = 30.0, margin_interval_s: float = 5.0, reconcile_interval_s: float = 30.0,
                 tick_s: float = 0.25, clock: Clock | None = None) -> None:
        self.settings = settings or Settings()
        self.venue = venue
        self.venue_name = venue.name
        self.seed: int | None = None
        self.speed = 1.0  # the wall clock: one second per second
        self.store = store
        self.account = account
        self.clock = VenueClock(clock)
        self.bus = Bus()
        self.book = Book(account)
        self.alert_levels = tuple(sorted(self.settings.margin.alert_levels))  # MM usage the venue's reports alert at
        self.underlyings = [u.upper() for u in underlyings] if underlyings else None
        self.stream_expiries = stream_expiries
        self.chain_refresh_ms = int(chain_refresh_s * 1000)
        self.margin_interval_ms = int(margin_interval_s * 1000)
        self.reconcile_interval_ms = int(reconcile_interval_s * 1000)
        self.store_interval_ms = int(self.settings.store.snapshot_interval_s * 1000)
        self.tick_s = tick_s
        self.instruments_by_name: dict[str, Instrument] = {}
        self.quotes: dict[str, Quote] = {}
        self.books: dict[str, BookUpdate] = {}
        self.index_prices: dict[str, float] = {}
        self._venue_index: set[str] = set()  # bases whose index the venue itself reports
        self.orders: dict[str, Order] = {}  # venue order id -> latest state
        self.by_client_id: dict[str, str] = {}  # client order id -> venue order id
        self.known_reports: dict[str, OrderStatusReport] = {}  # client order id -> venue's report (reconcile)
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self.accounts: dict[str, AccountReport] = {}
        self._margin: dict[str, MarginReport] = {}
        self._margin_dirty = True
        self._seen_fills: set[str] = set()
        self._fills_digest = hashlib.sha256()
        self._drift: dict[str, Decimal] = {}
        self._streamed: set[str] = set()
        self._due: dict[str, int] = {}
        self.runners: dict[str, Any] = {}
        self._runner_subs: dict[str, Subscription] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = False
        self.counters = {"orders": 0, "rejects": 0, "fills": 0, "steps": 0, "events": 0, "resends_avoided": 0,
                         "position_drifts": 0, "errors": 0, "deliveries": 0}
        self.reconciled: dict[str, int] = {}
        self.bus.on(None, self._on_event)

    # -- connection -----------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Load markets, reconcile with the venue, fetch the chain, index and margin, start the streams."""
        if self.connected:
            return
        await self.venue.connect(self.bus)
        listed = await self.venue.instruments()
        with_options = {i.base for i in listed if i.is_option}
        wanted = set(self.underlyings) if self.underlyings else (with_options or {i.base for i in listed})
        self.instruments_by_name = {i.name: i for i in listed if i.base in wanted}
        self.connected = True
        await self._sync_clock()
        await self._load_index()
        await self.reconcile()
        await self.refresh_chains()
        await self._subscribe()
        await self.refresh_margin()

    async def close(self) -> None:
        """Stop and close the venue connection; idempotent."""
        await self.stop()
        if self.connected:
            self.connected = False
            await self.venue.close()

    async def _guard(self, what: str, coro: Any, *, fatal: tuple[type[DeskError], ...] = ()) -> Any:
        """Await ``coro``; a desk error (other than ``fatal`` ones) becomes a warning alert and None: REST calls of
        the loop must not stop the desk, and a venue may not offer every report."""
        try:
            return await coro
        except fatal:
            raise
        except DeskError as exc:
            self.counters["errors"] += 1
            self._alert(f"{what}: {exc}", "warning", exc.code)
            return None

    def _alert(self, message: str, severity: str = "info", code: str = "") -> None:
        self.bus.publish(Alert(self.now_ms(), f"desk.{self.venue_name}", message, severity, code))  # type: ignore[arg-type]

    async def reconcile(self) -> dict[str, int]:
        """Take the venue's positions as the book, its fills as seen and its orders as known (after a restart).

        Returns counts: positions, fills, orders, open orders.
        """
        # refused credentials must stop the start: trading on a book we could not read would resend and misreport
        positions = await self._guard("position reports", self.venue.position_reports(), fatal=(AuthError,)) or []
        fills = await self._guard("fill reports", self.venue.fill_reports(0), fatal=(AuthError,)) or []
        reports = await self._guard("order reports", self.venue.order_reports(open_only=False),
                                    fatal=(AuthError,)) or []
        seen = getattr(getattr(self.venue, "execution", None), "seen_fills", None)
        for f in fills:
            self._seen_fills.add(f.trade_id)
            if isinstance(seen, set):
                seen.add(f.trade_id)  # the connector does not publish them again after a reconnect either
        self.book = Book(self.account)
        for base, px in self.index_prices.items():
            self.book.set_index(base, px)
        now = self.now_ms()
        for p in positions:
            inst = self.instruments_by_name.get(p.instrument)
            if inst is None or p.size == 0:
                continue
            price = p.average_price if p.average_price > 0 else Decimal(1)
            opening = Fill(f"reconcile:{p.instrument}", "", p.instrument, Side.BUY if p.size > 0 else Side.SELL, price,
                           abs(p.size), Decimal(0), inst.settlement, Liquidity.MAKER, now, self.account,
                           venue=self.venue_name)
            self.book.apply_fill(opening, inst)
            if p.realized_funding is not None:
                self.book.set_funding(p.instrument, p.realized_funding)
            self._mark(p.instrument)
        for r in reports:
            if r.client_order_id:
                self.known_reports[r.client_order_id] = r
                self.by_client_id.setdefault(r.client_order_id, r.order_id)
        opens = await self._open_orders_at_venue()
        for o in opens:
            self.orders[o.order_id] = o
            if o.request.client_order_id:
                self.by_client_id[o.request.client_order_id] = o.order_id
        self.book.flush(now)
        self._margin_dirty = True
        self.reconciled = {"positions": len([p for p in positions if p.size != 0]), "fills": len(fills),
                           "orders": len(reports), "open_orders": len(opens)}
        self._alert(f"reconciled with {self.venue_name}: {self.reconciled}", "info", "desk.reconciled")
        return self.reconciled

    async def _open_orders_at_venue(self) -> list[Order]:
        # Reports carry no side; the ccxt connector's execution lists full orders (others: reports only).
        lister = getattr(getattr(self.venue, "execution", None), "orders", None)
        if lister is None:
            return []
        return list(await self._guard("open orders", lister(open_only=True)) or [])

    async def _sync_clock(self) -> None:
        # A ticker carries the venue's timestamp (chain rows often carry none, and get the local time).
        quote = getattr(self.venue, "quote", None)
        first = next(iter(self.instruments()), None)
        if quote is None or first is None:
            return
        q = await self._guard("clock", quote(first.name))
        if q is not None:
            self.clock.sync(q.ts)
            self._take_quote(q)

    async def _load_index(self) -> None:
        fetch = getattr(self.venue, "index_price", None)
        if fetch is None:
            return
        for base in self._bases():
            try:
                px = await fetch(f"{base.lower()}_usd")
            except DeskError as exc:
                log.info("%s: no index for %s (%s)", self.venue_name, base, exc)
                continue
            self._venue_index.add(base)
            self._set_index(base, float(px))

    async def refresh_chains(self) -> int:
        """Every option of every underlying from one REST call each (IVs included); returns quotes taken."""
        fetch = getattr(self.venue, "chain", None)
        n = 0
        if fetch is not None:
            for base in self._bases():
                for q in await self._guard(f"{base} chain", fetch(base)) or []:
                    old = self.quotes.get(q.instrument)
                    if old is not None and q.instrument in self._streamed:
                        # the stream is fresher; chain rows only add the IVs some venues leave out of tickers (OKX)
                        if old.mark_iv is None and q.mark_iv is not None:
                            self._take_quote(replace(old, mark_iv=q.mark_iv))
                        continue
                    self._take_quote(replace(q, ts=min(q.ts, self.now_ms())))
                    n += 1
        quote = getattr(self.venue, "quote", None)
        if quote is not None:
            # what we hold or quote outside the streamed set still needs fresh marks
            wanted = ({n for n, h in self.book.held.items() if h.size} | {o.instrument for o in self.open_orders()})
            for name in sorted(wanted - self._streamed):
                q = await self._guard(f"{name} quote", quote(name))
                if q is not None:
                    self._take_quote(q)
                    n += 1
        return n

    async def _subscribe(self) -> None:
        names = self.stream_names()
        if not names:
            return
        await self.venue.subscribe(names, ("ticker",))
        perps = [n for n in names if self.instruments_by_name[n].kind is Kind.PERPETUAL]
        if perps:
            await self.venue.subscribe(perps, ("book",))
        indices = [f"{b.lower()}_usd" for b in sorted(self._venue_index)]
        if indices:  # IndexPrice events on the bus: what strategies (the hedger) wait for
            await self.venue.subscribe(indices, ("index",))
        self._streamed = set(names)

    def stream_names(self) -> list[str]:
        """Instruments whose tickers are streamed: perpetuals, futures, the nearest option expiries, what we hold."""
        out = set()
        for base in self._bases():
            insts = self.instruments(base)
            out.update(i.name for i in insts if not i.is_option)
            for exp in self.expiries(base)[: self.stream_expiries]:
                out.update(i.name for i in insts if i.is_option and i.expiry_ms == exp)
        out.update(n for n, h in self.book.held.items() if h.size and n in self.instruments_by_name)
        out.update(o.instrument for o in self.open_orders() if o.instrument in self.instruments_by_name)
        return sorted(out)

    def _bases(self) -> list[str]:
        return sorted({i.base for i in self.instruments_by_name.values()})

    # -- events ---------------------------------------------------------------------------------------
    def _on_event(self, e: Event) -> None:
        kind = type(e)
        if kind is Quote:
            self.counters["events"] += 1
            self.clock.observe(e.ts)
            self._take_quote(e)  # type: ignore[arg-type]
        elif kind is BookUpdate:
            self.counters["events"] += 1
            self.books[e.instrument] = e  # type: ignore[attr-defined]
        elif kind is IndexPrice:
            if e.source:  # type: ignore[attr-defined]
                self.counters["events"] += 1  # not the desk's own republication below
            if not e.stale:  # type: ignore[attr-defined]
                base = e.index.split("_")[0].upper()  # type: ignore[attr-defined]
                self._venue_index.add(base)
                self._set_index(base, e.price)  # type: ignore[attr-defined]
                if e.source:  # type: ignore[attr-defined]
                    # the venue's index is the desk's index: republished as such (source "") for the strategies
                    self.bus.publish(replace(e, source=""))  # type: ignore[type-var]
        elif kind is Trade:
            self.counters["events"] += 1
        elif kind is FillEvent:
            self._on_fill(e.fill)  # type: ignore[attr-defined]
        elif kind is OrderUpdate:
            o: Order = e.order  # type: ignore[attr-defined]
            self.orders[o.order_id] = o
            if o.request.client_order_id:
                self.by_client_id[o.request.client_order_id] = o.order_id
            self.recent.append(e)
            if self.store is not None:
                self.store.record_order(o, venue=self.venue_name)
        elif kind is Alert:
            self.recent.append(e)

    def _take_quote(self, q: Quote) -> None:
        self.quotes[q.instrument] = q
        inst = self.instruments_by_name.get(q.instrument)
        if inst is not None and q.index_price and inst.inverse:
            self._venue_index.add(inst.base)
            self._set_index(inst.base, q.index_price)
        elif inst is not None and inst.kind is Kind.PERPETUAL and inst.base not in self._venue_index:
            # a venue whose tickers carry no index (OKX): its perpetual's mark stands in for it
            ref = q.mark_price if q.mark_price is not None else (
                (q.bid + q.ask) / 2 if q.bid is not None and q.ask is not None else None)
            if ref is not None:
                self._set_index(inst.base, ref)
        if q.instrument in self.book.held:
            self._mark(q.instrument)

    def _set_index(self, base: str, px: float) -> None:
        if px > 0 and math.isfinite(px):
            self.index_prices[base] = px
            self.book.set_index(base, px)

    def _mark(self, name: str) -> None:
        q = self.quotes.get(name)
        if q is None:
            return
        mark = q.mark_price
        if mark is None and q.bid is not None and q.ask is not None:
            mark = (q.bid + q.ask) / 2
        self.book.mark(name, math.nan if mark is None else mark, q.mark_iv, q.underlying_price)

    def _on_fill(self, f: Fill) -> None:
        if f.trade_id in self._seen_fills:
            return
        inst = self.instruments_by_name.get(f.instrument)
        if inst is None:
            return
        self._seen_fills.add(f.trade_id)
        self.clock.observe(f.ts)
        pos = self.book.apply_fill(f, inst)
        self._mark(f.instrument)
        self.book.flush(self.now_ms())
        self.counters["fills"] += 1
        self._fills_digest.update(f"{f.trade_id}|{f.instrument}|{f.side.value}|{f.amount}|{f.price}\n".encode())
        self._margin_dirty = True
        self._drift.pop(f.instrument, None)
        self.recent.append(FillEvent(f.ts, f))
        if self.store is not None:
            self.store.record_fill(f)
        update = PositionUpdate(ts=f.ts, position=pos)
        self.recent.append(update)
        self.bus.publish(update)

    # -- the loop -------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        """The desk's clock (wall time), epoch ms."""
        return self.clock.now_ms()

    async def start(self, duration_ms: int | None = None) -> None:
        """Connect if needed and run the desk (marks, margin, chain refresh, strategies) in a task, for
        ``duration_ms`` of wall time or until stopped."""
        if self._task is not None and not self._task.done():
            return
        await self.connect()
        self._stopping = False
        for runner in self.runners.values():
            if not runner.started:
                await runner.start()
        self._task = asyncio.create_task(self._loop(duration_ms), name=f"desk-{self.venue_name}")

    async def _loop(self, duration_ms: int | None) -> None:
        # the duration is wall time (a venue's clock may run faster: a simulated one served on loopback)
        wall = self.clock.base
        end = None if duration_ms is None else wall.now_ms() + duration_ms
        t = wall.now_ms()
        # REST refreshes are paced in wall time: they are load on the venue (and its rate limits)
        self._due = {"chain": t + self.chain_refresh_ms, "margin": t + self.margin_interval_ms,
                     "reconcile": t + self.reconcile_interval_ms, "store": t}
        while not self._stopping:
            t = wall.now_ms()
            if end is not None and t >= end:
                break
            self.counters["steps"] += 1
            self.book.flush(self.now_ms())
            await Desk._dispatch_strategies(self)  # type: ignore[arg-type]
            await self._periodic(t)
            wait = self.tick_s if end is None else min(self.tick_s, max(0.0, (end - wall.now_ms()) / 1000))
            await asyncio.sleep(wait)

    async def _periodic(self, now: int) -> None:
        """REST work due at wall time ``now`` (ms): new streams, chain, margin, position check, store history."""
        due = self._due
        fresh = [n for n in self.stream_names() if n not in self._streamed]
        if fresh:  # something we now hold or quote: its ticker joins the streams
            await self._guard("subscribe", self.venue.subscribe(fresh, ("ticker",)))
            self._streamed.update(fresh)
        if now >= due["chain"]:
            due["chain"] = now + self.chain_refresh_ms
            self.book.touch_all()  # time decay of held options
            await self.refresh_chains()
        if self._margin_dirty or now >= due["margin"]:
            due["margin"] = now + self.margin_interval_ms
            await self.refresh_margin()
        if now >= due["reconcile"]:
            due["reconcile"] = now + self.reconcile_interval_ms
            await self.check_positions()
        if self.store is not None and now >= due["store"]:
            due["store"] = now + self.store_interval_ms
            self._store_history()

    async def wait(self) -> None:
        """Wait for a run started with a duration to finish."""
        if self._task is not None:
            await self._task

    async def stop(self) -> None:
        """Stop the loop and the strategies, flush the store; idempotent (the connection stays: see close)."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for run_id, runner in list(self.runners.items()):
            if not runner.stopped:
                await runner.stop()
            sub = self._runner_subs.pop(run_id, None)
            if sub is not None:
                sub.close()
        if self.store is not None:
            self._store_history()
            flush = getattr(self.store, "flush", None)
            if callable(flush):
                flush()

    async def refresh_margin(self) -> dict[str, MarginReport]:
        """The venue's account figures per currency we hold or trade, with the local replica's IM/MM beside them."""
        self._margin_dirty = False  # a fill while the figures are fetched asks for the next refresh at once
        ccys = {i.settlement for i in self.instruments_by_name.values()}
        accounts: dict[str, AccountReport] = {}
        for ccy in sorted(ccys):
            acct = await self._guard(f"{ccy} account", self.venue.account(ccy))
            if acct is not None:
                accounts[ccy] = acct
        if not accounts:
            return self._margin
        self.accounts = accounts
        reports = {c: report_from_account(a, self.account, self.alert_levels) for c, a in accounts.items()}
        try:
            replica = self._replica()
            for ccy, rep in list(reports.items()):
                if self.book.positions() and any(h.inst.settlement == ccy for h in self.book.held.values()):
                    local = replica.report(self.account, ccy, with_distance=False, publish=False)
                    reports[ccy] = replace(rep, details={**rep.details, "replica_im": local.initial_margin,
                                                         "replica_mm": local.maintenance_margin})
        except (DeskError, KeyError) as exc:  # a currency the embedded engine has no parameters for
            log.debug("margin replica: %s", exc)
        for ccy, rep in reports.items():
            prev = self._margin.get(ccy)
            before = 0.0 if prev is None else prev.alert_level
            if rep.alert_level != before:  # the venue's MM usage crossed one of the alert levels
                lv = max(rep.alert_level, before)
                way = "reached" if rep.alert_level > before else "back below"
                alert = MarginAlert(self.now_ms(), self.account, ccy, rep.alert_level, rep.mm_usage,
                                    f"{self.venue_name} {ccy}: MM usage {rep.mm_usage:.1%} {way} {lv:.0%}")
                self.recent.append(alert)
                self.bus.publish(alert)
        self._margin = reports
        return reports

    def _replica(self, extra: Iterable[str] = ()) -> Any:
        return build_replica(self.account, self.accounts, self.instruments_by_name, self.book.positions(), self.quotes,
                             self.index_prices, self.open_orders(), extra, clock=self.clock)

    async def check_positions(self) -> int:
        """Compare the book with the venue's positions; a difference seen twice in a row is corrected (returns how
        many were corrected). Between the two checks a fill in flight has arrived, so only a real drift remains."""
        reports = await self._guard("position reports", self.venue.position_reports())
        if reports is None:
            return 0
        venue = {p.instrument: p for p in reports if p.instrument in self.instruments_by_name}
        for name, rep in venue.items():
            if rep.realized_funding is not None:
                self.book.set_funding(name, rep.realized_funding)
        ours = {p.instrument: p for p in self.book.positions()}
        fixed = 0
        drift_now: dict[str, Decimal] = {}
        for name in sorted(set(venue) | set(ours)):
            want = venue[name].size if name in venue else Decimal(0)
            have = ours[name].size if name in ours else Decimal(0)
            diff = want - have
            if diff == 0:
                continue
            inst = self.instruments_by_name[name]
            if name not in venue and inst.expiry_ms is not None and self.now_ms() >= inst.expiry_ms:
                # Gone at the venue after its expiry: delivered, not a drift (no fill can be in flight on an expired
                # instrument, so there is no need to see it twice).
                if await self._deliver(inst):
                    fixed += 1
                    continue
            if self._drift.get(name) != diff:
                drift_now[name] = diff
                continue
            price = venue[name].average_price if name in venue and venue[name].average_price > 0 else (
                ours[name].average_price if name in ours else Decimal(1))
            fix = Fill(f"drift:{name}:{self.now_ms()}", "", name, Side.BUY if diff > 0 else Side.SELL, price, abs(diff),
                       Decimal(0), inst.settlement, Liquidity.MAKER, self.now_ms(), self.account, venue=self.venue_name)
            pos = self.book.apply_fill(fix, inst)
            self._mark(name)
            self.counters["position_drifts"] += 1
            fixed += 1
            self._alert(f"{name}: book {have} vs venue {want}; booked the difference", "warning", "position.drift")
            self.bus.publish(PositionUpdate(self.now_ms(), pos))
        self._drift = drift_now
        if fixed:
            self.book.flush(self.now_ms())
            self._margin_dirty = True
        return fixed

    async def _deliver(self, inst: Instrument) -> bool:
        """Settle our expired position in ``inst`` at its delivery price (USD): the venue's when the connector reports
        it (an optional ``delivery_price(inst)`` coroutine), else the last index price the desk saw of its underlying.
        False (the caller books a drift) when neither is known."""
        price: float | None = None
        source = "venue delivery price"
        getter = getattr(self.venue, "delivery_price", None)
        if callable(getter):
            got = await self._guard(f"delivery price of {inst.name}", getter(inst))
            if got is not None and math.isfinite(float(got)) and float(got) > 0:
                price = float(got)
        if price is None:
            source = "last index price"
            price = self.index_prices.get(inst.base)
        if price is None or not (math.isfinite(price) and price > 0):
            log.warning("%s: %s expired but no delivery or index price is known", self.venue_name, inst.name)
            return False
        pos = self.book.settle(inst.name, price)
        if pos is None:
            return False
        self.quotes.pop(inst.name, None)
        self.counters["deliveries"] += 1
        self._margin_dirty = True
        log.info("%s: %s delivered at %.2f (%s)", self.venue_name, inst.name, price, source)
        self._alert(f"{inst.name} expired: delivered at {price:.2f} ({source})", "info", "position.delivered")
        self.bus.publish(PositionUpdate(self.now_ms(), pos))
        return True

    def _store_history(self) -> None:
        if self.store is None:
            return
        from app.analytics import history_row

        now = self.now_ms()
        lite = DeskSnapshot(ts=now, venue=self.venue_name, index_prices=self._index_by_name(), instruments=(),
                            chains={}, quotes={}, positions=self.book.views(), portfolio=self.portfolio(),
                            margin=self._margin)
        self.store.record_snapshot("desk", now, history_row(lite))

    # -- trading --------------------------------------------------------------------------------------
    async def place(self, req: OrderRequest) -> Order:
        """Send an order to the venue (its margin check applies); one the venue already knows by client order id is
        not sent again: its current state is returned. Raises OrderRejected / InsufficientMargin / UnknownInstrument."""
        if not isinstance(req, OrderRequest):
            raise InvalidInput(f"place needs an OrderRequest, got {type(req).__name__}", code="input.type")
        if req.instrument not in self.instruments_by_name:
            raise UnknownInstrument(f"{self.venue_name} does not list {req.instrument!r}", name=req.instrument)
        if req.account != self.account:
            req = replace(req, account=self.account)
        known = self._known(req)
        if known is not None:
            self.counters["resends_avoided"] += 1
            self._alert(f"order {req.client_order_id} is already at {self.venue_name} ({known.status.value}); not "
                        "sent again", "info", "order.duplicate")
            return known
        self.counters["orders"] += 1
        try:
            order = await self.venue.place(req)
        except DeskError:
            self.counters["rejects"] += 1
            raise
        self.orders[order.order_id] = order
        if order.request.client_order_id:
            self.by_client_id[order.request.client_order_id] = order.order_id
        if order.instrument not in self._streamed:
            await self._guard("quote", self._quote_now(order.instrument))
        return order

    async def _quote_now(self, name: str) -> None:
        quote = getattr(self.venue, "quote", None)
        if quote is not None:
            self._take_quote(await quote(name))

    def _known(self, req: OrderRequest) -> Order | None:
        coid = req.client_order_id
        if not coid or coid not in self.by_client_id:
            return None
        order = self.orders.get(self.by_client_id[coid])
        if order is not None:
            return order
        r = self.known_reports.get(coid)
        if r is None:
            return None
        try:
            status = OrderStatus(r.status)
        except ValueError:
            status = OrderStatus.OPEN
        return Order(r.order_id, replace(req, amount=r.amount, price=r.price), status, r.filled, None, r.ts)

    async def cancel(self, order_id: str) -> Order:
        """Cancel one of our orders; raises NotFound / OrderRejected."""
        return await self.venue.cancel(order_id)

    async def amend(self, order_id: str, amount: Decimal | None = None, price: Decimal | None = None) -> Order:
        """Change size and/or price of one of our open orders."""
        return await self.venue.amend(order_id, amount, price)

    async def cancel_all(self, instrument: str | None = None) -> int:
        """Cancel every open order (of one instrument); return how many."""
        return await self.venue.cancel_all(instrument)

    async def order_reports(self, open_only: bool = False) -> Sequence[OrderStatusReport]:
        """The venue's view of our orders (strategy runners reconcile with it)."""
        return await self.venue.order_reports(open_only)

    async def fill_reports(self, since_ms: int = 0) -> Sequence[Fill]:
        """Our fills since ``since_ms`` (epoch ms) as the venue reports them."""
        return await self.venue.fill_reports(since_ms)

    def open_orders(self) -> list[Order]:
        """Our open orders as last reported, oldest first."""
        return sorted((o for o in self.orders.values() if not o.status.is_terminal), key=lambda o: (o.ts, o.order_id))

    def what_if(self, orders: list[OrderRequest]) -> dict[str, MarginReport]:
        """Margin per currency as if ``orders`` had traded, from the embedded engine's replica of the account."""
        for o in orders:
            if not isinstance(o, OrderRequest):
                raise InvalidInput(f"what_if takes OrderRequest objects, got {type(o).__name__}", code="input.type")
            if o.instrument not in self.instruments_by_name:
                raise UnknownInstrument(f"{self.venue_name} does not list {o.instrument!r}", name=o.instrument)
        engine = self._replica(o.instrument for o in orders)
        return engine.what_if(self.account, [replace(o, account=self.account) for o in orders])

    # -- strategies (the embedded desk's runner plumbing, shared as is) --------------------------------
    add_strategy = Desk.add_strategy
    strategy_control = Desk.strategy_control

    # -- reading --------------------------------------------------------------------------------------
    def positions(self) -> tuple[PositionView, ...]:
        """Our positions with marks, PnL (settlement currency and USD) and greeks."""
        return self.book.views()

    def quote(self, instrument: str, venue: str | None = None) -> Quote | None:
        """Latest quote of ``instrument`` from the venue (stream or REST), or None."""
        return self.quotes.get(instrument)

    def index_price(self, underlying: str) -> float | None:
        """Index price (USD) of ``BTC`` or ``btc_usd``."""
        return self.index_prices.get(underlying.split("_")[0].upper())

    def margin(self) -> dict[str, MarginReport]:
        """The venue's margin figures per currency (last refresh), replica IM/MM in ``details``."""
        return dict(self._margin)

    def _refresh_margin(self, *, with_distance: bool = False) -> dict[str, MarginReport]:
        """The last margin reports (what ``desk run``'s status line reads; refreshed by the loop)."""
        return self.margin()

    def subscribe(self, topics: Iterable[str] | None = None, maxsize: int = 10_000) -> Subscription:
        """A bus subscription to event ``topics`` (``quote``, ``fill_event``, ``alert``...; None for all)."""
        return self.bus.subscribe(topics, maxsize=maxsize)

    def instruments(self, underlying: str | None = None) -> list[Instrument]:
        """Listed instruments (of ``underlying``): perpetuals and futures first, options by expiry and strike."""
        insts = [i for i in self.instruments_by_name.values() if underlying is None or i.base == underlying]
        return sorted(insts, key=_listing_key)

    def depth(self, instrument: str, levels: int = 10) -> tuple[list[tuple[Decimal, Decimal, int]], list[tuple[Decimal, Decimal, int]]]:
        """Top ``levels`` of the last streamed book per side as (price, amount, orders: 0 = not reported)."""
        if instrument not in self.instruments_by_name:
            raise UnknownInstrument(f"{self.venue_name} does not list {instrument!r}", name=instrument)
        b = self.books.get(instrument)
        if b is None:
            return [], []

        def side(levels_: tuple[tuple[float, float], ...]) -> list[tuple[Decimal, Decimal, int]]:
            return [(Decimal(repr(p)), Decimal(repr(a)), 0) for p, a in levels_[:levels]]

        return side(b.bids), side(b.asks)

    def expiries(self, underlying: str) -> list[int]:
        """Listed option expiries of ``underlying`` (epoch ms), sorted."""
        return sorted({i.expiry_ms for i in self.instruments(underlying) if i.is_option and i.expiry_ms})

    def chain(self, underlying: str, expiry_ms: int) -> ChainSlice:
        """One expiry of an underlying's option chain from the venue's quotes."""
        opts = [i for i in self.instruments(underlying) if i.is_option and i.expiry_ms == expiry_ms]
        if not opts:
            raise NotFound(f"no {underlying} options expiring at {expiry_ms}", code="chain.not_found")
        return chain_slice(underlying, expiry_ms, opts, self.quotes, self.index_prices.get(underlying), self.now_ms())

    def chains(self) -> dict[str, tuple[ChainSlice, ...]]:
        """Every expiry of every underlying."""
        by: dict[tuple[str, int], list[Instrument]] = {}
        for inst in self.instruments_by_name.values():
            if inst.is_option and inst.expiry_ms is not None:
                by.setdefault((inst.base, inst.expiry_ms), []).append(inst)
        out: dict[str, list[ChainSlice]] = {}
        now = self.now_ms()
        for (base, exp), opts in sorted(by.items()):
            out.setdefault(base, []).append(chain_slice(base, exp, opts, self.quotes, self.index_prices.get(base), now))
        return {b: tuple(v) for b, v in out.items()}

    def portfolio(self) -> dict[str, GreeksView]:
        """Portfolio greeks per underlying (coin and USD)."""
        bases = set(self._bases()) | {h.inst.base for h in self.book.held.values()}
        return {b: self.book.greeks(b) for b in sorted(bases)}

    def _index_by_name(self) -> dict[str, float]:
        return {f"{b.lower()}_usd": px for b, px in self.index_prices.items()}

    def snapshot(self, *, chains: bool = True) -> DeskSnapshot:
        """Everything a front draws at this instant (``chains=False`` skips the option chains)."""
        strategies: tuple[StrategyStatus, ...] = tuple(r.status() for r in self.runners.values())
        return DeskSnapshot(
            ts=self.now_ms(), venue=self.venue_name, index_prices=self._index_by_name(),
            instruments=tuple(i.name for i in self.instruments()), chains=self.chains() if chains else {},
            quotes=dict(self.quotes), positions=self.book.views(), portfolio=self.portfolio(), margin=self.margin(),
            strategies=strategies, recent_events=tuple(self.recent),
        )

    def connection(self) -> dict[str, Any]:
        """The connector's health counters (disconnects, reconnects, resyncs, gaps, messages...)."""
        stats = getattr(self.venue, "stats", None)
        return dict(stats.as_dict()) if stats is not None and hasattr(stats, "as_dict") else {}

    def status_counts(self) -> dict[str, Any]:
        """Counts for ``desk run``'s status line: fills, market events, instruments, connection health."""
        return {"fills": self.counters["fills"], "events": self.counters["events"],
                "instruments": len(self.instruments_by_name), "connection": self.connection()}

    def summary(self) -> dict[str, Any]:
        """Run summary: orders, fills, events, positions, equity, connection health and the fill-stream digest."""
        now = self.now_ms()
        return {
            "ts": now,
            "time": utc_from_ms(now).isoformat(),
            "venue": self.venue_name,
            "seed": self.seed,
            "steps": self.counters["steps"],
            "orders": self.counters["orders"],
            "rejects": self.counters["rejects"],
            "our_fills": self.counters["fills"],
            "fills": self.counters["fills"],
            "events": self.counters["events"],
            "positions": {p.instrument: str(p.size) for p in self.book.positions()},
            "equity": {c: r.equity for c, r in self._margin.items()},
            "index": {b: round(px, 6) for b, px in self.index_prices.items()},
            "fills_sha256": self._fills_digest.hexdigest(),
            "instruments": len(self.instruments_by_name),
            "quotes": len(self.quotes),
            "resends_avoided": self.counters["resends_avoided"],
            "position_drifts": self.counters["position_drifts"],
            "errors": self.counters["errors"],
            "reconciled": dict(self.reconciled),
            "connection": self.connection(),
        }

