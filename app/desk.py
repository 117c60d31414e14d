"""Desk: wires the venue, engine, margin, marks, portfolio, strategies, storage and bus; what every front drives.

    desk = Desk(seed=7)                    # the embedded simulated venue, account "main" funded
    desk.advance(60_000)                   # one simulated minute, deterministically (tests, backtests)
    order = await desk.place(OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal("1000"), Decimal("61000")))
    snap = desk.snapshot()                 # chain, positions with greeks and PnL, margin, strategies, events
    await desk.start(); ...; await desk.stop()   # or run the market in a task at settings.sim.speed

Data flow per simulated step: the venue publishes quotes, index prices, trades and our fills; the Desk's step
listener books our fills into the portfolio, re-marks only the instruments we hold, updates portfolio greeks
by difference (:mod:`app.portfolio_view`), refreshes margin health when a fill happened or every
``margin_interval_ms``, and hands position updates back to the bus. Strategies see the bus through their
runners; the store gets fills, order updates and periodic ``desk`` history rows (the dashboard's stored view).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, Literal

import numpy as np

from app.bus import Bus, Subscription
from app.clock import SimClock
from app.config import Settings
from app.domain import (
    Alert,
    ChainRow,
    ChainSlice,
    DeskSnapshot,
    Event,
    FillEvent,
    GreeksView,
    IndexPrice,
    Instrument,
    Kind,
    MarginAlert,
    MarginReport,
    OptionType,
    Order,
    OrderRequest,
    OrderUpdate,
    PositionUpdate,
    PositionView,
    Quote,
    StrategyStatus,
    utc_from_ms,
)
from app.errors import ConfigError, DeskError, InvalidInput, NotFound, UnknownInstrument
from app.portfolio_view import Book
from app.ports import OrderStatusReport, Store
from app.pricing.black import inverse_greeks, warm_compiled
from app.pricing.implied import implied_vol_coin

DEFAULT_ACCOUNT = "main"
MARGIN_INTERVAL_MS = 60_000  # margin health is refreshed at least this often (simulated ms), and on every fill
GREEKS_DECAY_MS = 60_000  # held options are re-priced for time decay this often even when their mark is still
RECENT_EVENTS = 200
_STRATEGY_TOPICS = ("fill_event", "order_update", "position_update", "index_price", "margin_alert", "alert")
_SIGNIFICANT = (FillEvent, OrderUpdate, Alert, MarginAlert, PositionUpdate)


def _start_ms(settings: Settings) -> int | None:
    if not settings.sim.start:
        return None
    from datetime import datetime, timezone

    try:
        dt = datetime.fromisoformat(settings.sim.start.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"sim.start {settings.sim.start!r} is not an ISO date/time", key="sim.start") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


class Desk:
    """The desk every front drives (INTERFACES.md): one venue, one account, its book, margin and strategies."""

    def __init__(self, settings: Settings | None = None, *, venue: str | None = None, seed: int | None = None,
                 store: Store | None = None, speed: float | None = None, sim: Any = None, replay: Any = None,
                 account: str = DEFAULT_ACCOUNT, step_ms: int | None = None,
                 kernels: Literal["load", "background", "numpy"] = "load") -> None:
        """``kernels``: how the per-step pricing finds numba's compiled kernels. "load" (default) loads them from
        numba's disk cache before the first step, so a run takes one path from start to end; "background" (the
        TUI, the live dashboard) loads them in a daemon thread and prices on numpy until then; "numpy" leaves
        them alone. None of these compiles: a fresh clone without the cache prices on numpy (``make`` fills it)."""
        self.settings = settings = settings or Settings()
        if kernels not in ("load", "background", "numpy"):
            raise ConfigError(f"kernels must be load, background or numpy, got {kernels!r}", key="kernels")
        self._step_ms = step_ms
        self.venue_name = venue or settings.venue
        if kernels != "numpy" and self.venue_name in ("sim", "replay"):
            warm_compiled(background=kernels == "background")
        self.seed = settings.sim.seed if seed is None else int(seed)
        self.speed = settings.sim.speed if speed is None else float(speed)
        if not (self.speed >= 0 and math.isfinite(self.speed)):
            raise ConfigError(f"speed must be 0 (as fast as possible) or positive, got {self.speed}", key="sim.speed")
        self.store = store
        self.account = account
        self.bus = Bus()
        self.venue = self._build_venue(self.venue_name, sim, replay)
        self.clock: SimClock = self.venue.clock
        self.engine = self.venue.engine
        self.margin_engine = self.venue.margin
        self.margin_engine.bus = self.bus
        self.venue.attach(self.bus)
        self.venue.on_step(self._on_step)
        self.venue.on_settlement(self._on_settlement)
        self.bus.on({"margin_alert"}, self._remember)  # the margin engine publishes its alerts straight to the bus
        self._settled: list[Any] = []
        self.book = Book(account)
        self.quotes: dict[str, Quote] = {}
        self.index_prices: dict[str, float] = {}
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self._margin: dict[str, MarginReport] = {}
        self._margin_ts = -1
        self._margin_dirty = True
        self._margin_full: tuple[tuple[int, int, int], dict[str, MarginReport]] | None = None
        self._last_decay = self.clock.now_ms()
        self._last_store = -1
        self.store_interval_ms = int(settings.store.snapshot_interval_s * 1000)
        self.runners: dict[str, Any] = {}
        self._runner_subs: dict[str, Subscription] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.counters = {"orders": 0, "rejects": 0, "fills": 0, "steps": 0}
        self._chain_cache: tuple[int, dict[str, tuple[ChainSlice, ...]]] | None = None
        for base, px in self.venue.index_price.items():
            self.index_prices[base] = px
            self.book.set_index(base, px)
        self.venue.publish_pending()  # the opening quotes, now that we listen

    # -- construction --------------------------------------------------------------------------------
    def _build_venue(self, name: str, sim: Any, replay: Any) -> Any:
        from connectors.sim.venue import SimConfig, SimVenue

        if name == "sim":
            cfg = sim or SimConfig(seed=self.seed, underlyings=tuple(self.settings.sim.underlyings),
                                   margin_model=self.settings.margin.model, params=self.model_params(),
                                   alert_levels=tuple(self.settings.margin.alert_levels),
                                   **({"step_ms": self._step_ms} if self._step_ms else {}))
            start = _start_ms(self.settings)
            if sim is None and start is not None:
                cfg.start_ms = start
            return SimVenue(cfg)
        if name == "replay":
            from connectors.replay import ReplayConfig, ReplayVenue

            return ReplayVenue(replay or ReplayConfig(seed=self.seed, margin_model=self.settings.margin.model))
        if name in self.settings.venues:
            raise ConfigError(f"venue {name!r}: external venues are driven through connectors.ccxt_venue, not yet "
                              "wired into the Desk", key="venue")
        raise ConfigError(f"unknown venue {name!r}: use sim, replay or a [venues.NAME] section", key="venue")

    def model_params(self) -> dict[str, Any]:
        """Market-model parameters per underlying: calibrated defaults with ``[sim.model.<BASE>]`` applied."""
        from connectors.sim.market_model import UnderlyingParams

        out = {}
        for base in self.settings.sim.underlyings:
            changes = dict(self.settings.sim.model.get(base, {}))
            try:
                out[base] = UnderlyingParams.default(base, **changes)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"[sim.model.{base}]: {exc}", key=f"sim.model.{base}") from None
        return out

    # -- time ----------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        """The desk's clock, epoch ms (simulated for sim and replay)."""
        return self.clock.now_ms()

    def advance(self, ms: int) -> int:
        """Run the market ``ms`` simulated milliseconds, deterministically; return the venue steps taken.

        Strategy runners are fed by :meth:`run_for` / :meth:`start` (they are async); here their events queue.
        """
        if not isinstance(ms, int) or ms < 0:
            raise InvalidInput(f"advance needs a non-negative int of ms, got {ms!r}", code="clock.backwards")
        steps = self.venue.advance(ms)
        self.counters["steps"] += steps
        return steps

    async def run_for(self, ms: int) -> int:
        """Run ``ms`` simulated ms step by step, feeding strategies after each step; return the steps taken."""
        step = self.venue.config.step_ms
        end = self.now_ms() + ms
        steps = 0
        while self.now_ms() < end and not self._stopping:
            steps += self.advance(min(step, end - self.now_ms()))
            await self._dispatch_strategies()
        return steps

    async def start(self, duration_ms: int | None = None) -> None:
        """Run the simulated clock at ``speed`` (simulated s per wall s; 0 = as fast as possible) in a task."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        for runner in self.runners.values():
            if not runner.started:
                await runner.start()
        self._task = asyncio.create_task(self._loop(duration_ms), name="desk-market")

    async def _loop(self, duration_ms: int | None) -> None:
        step = self.venue.config.step_ms
        t0_wall = time.perf_counter()
        t0_sim = self.now_ms()
        end = None if duration_ms is None else t0_sim + duration_ms
        while not self._stopping:
            if end is not None and self.now_ms() >= end:
                break
            self.advance(step if end is None else min(step, end - self.now_ms()))
            await self._dispatch_strategies()
            if self.speed > 0:
                due = t0_wall + (self.now_ms() - t0_sim) / 1000.0 / self.speed
                delay = due - time.perf_counter()
                await asyncio.sleep(max(0.0, delay))
            elif self.counters["steps"] % 20 == 0:
                await asyncio.sleep(0)

    async def wait(self) -> None:
        """Wait for the market task started with a duration to finish."""
        if self._task is not None:
            await self._task

    async def close(self) -> None:
        """End the session: :meth:`stop` (the embedded venue holds no connection to release, unlike
        :meth:`app.venue_desk.VenueDesk.close`, whose lifecycle this mirrors so a front can end either alike)."""
        await self.stop()

    async def stop(self) -> None:
        """Stop the market task and the strategies, flush the store; idempotent."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        for run_id, runner in list(self.runners.items()):
            if not runner.stopped:
                await runner.stop()
            sub = self._runner_subs.pop(run_id, None)
            if sub is not None:
                sub.close()
        self._store_history(force=True)
        flush = getattr(self.store, "flush", None)
        if callable(flush):
            flush()

    # -- the step listener ---------------------------------------------------------------------------
    def _on_step(self, events: list[Any]) -> list[Any]:
        book = self.book
        held = book.held
        account = self.account
        out: list[Any] = self._settled
        self._settled = []
        quotes = self.quotes
        fills = False
        for e in events:
            kind = type(e)
            if kind is Quote:
                quotes[e.instrument] = e
                if e.instrument in held:
                    book.mark(e.instrument, e.mark_price if e.mark_price is not None else math.nan, e.mark_iv,
                              e.underlying_price)
            elif kind is IndexPrice:
                if not e.source:
                    base = e.index.split("_")[0].upper()
                    self.index_prices[base] = e.price
                    book.set_index(base, e.price)
            elif kind is FillEvent:
                f = e.fill
                if f.account != account:
                    continue
                inst = self.venue.instruments_by_name.get(f.instrument) or Instrument.parse(f.instrument)
                pos = book.apply_fill(f, inst)
                mark, iv, fwd = self._mark_of(f.instrument)
                book.mark(f.instrument, mark, iv, fwd)
                out.append(PositionUpdate(ts=f.ts, position=pos))
                self.counters["fills"] += 1
                fills = True
                self.recent.append(e)
                if self.store is not None:
                    self.store.record_fill(f)
            elif kind is OrderUpdate:
                if e.order.request.account == account:
                    self.recent.append(e)
                    if self.store is not None:
                        self.store.record_order(e.order, venue=self.venue.name)
            elif kind is Alert:
                self.recent.append(e)
        if held:
            # Quotes of a simulated venue are only built for listeners: what we hold (a handful of instruments)
            # is re-marked from its arrays every step, so greeks follow the forward even between quote changes.
            mark_of = self.venue.mark_of
            for name, h in held.items():
                if h.size:
                    book.mark(name, *mark_of(name))
                    if h.inst.kind is Kind.PERPETUAL:
                        book.set_funding(name, self.venue.funding_of(account, name))
        now = self.now_ms()
        if held and now - self._last_decay >= GREEKS_DECAY_MS:
            book.touch_all()
            self._last_decay = now
        book.flush(now)
        if fills:
            self._margin_dirty = True
            self._chain_cache = None
        if held and (self._margin_dirty or now - self._margin_ts >= MARGIN_INTERVAL_MS):
            self._refresh_margin(with_distance=False)
        self.recent.extend(out)
        if self.store is not None and now - self._last_store >= self.store_interval_ms:
            self._store_history()
        return out

    def _remember(self, event: Event) -> None:
        self.recent.append(event)

    def _on_settlement(self, base: str, delivery: float, insts: list[Instrument]) -> None:
        """Expired instruments were delivered at ``delivery`` (USD): our book realises them."""
        for inst in insts:
            pos = self.book.settle(inst.name, delivery)
            self.quotes.pop(inst.name, None)
            if pos is not None:
                self._settled.append(PositionUpdate(ts=self.now_ms(), position=pos))
                self._margin_dirty = True
        self._chain_cache = None

    def _mark_of(self, name: str) -> tuple[float, float | None, float | None]:
        try:
            return self.venue.mark_of(name)
        except DeskError:
            q = self.quotes.get(name)
            if q is not None and q.mark_price is not None:
                return q.mark_price, q.mark_iv, q.underlying_price
            return math.nan, None, None

    def _refresh_margin(self, *, with_distance: bool) -> dict[str, MarginReport]:
        """Margin reports of our account per currency (the margin engine caches per-instrument margins)."""
        self.venue._mark_margin(self.venue._watched.keys())
        reports: dict[str, MarginReport] = {}
        for ccy in self._currencies():
            try:
                reports[ccy] = self.margin_engine.report(self.account, ccy, with_distance=with_distance)
            except DeskError as exc:
                self.recent.append(Alert(ts=self.now_ms(), source="margin", message=str(exc), severity="warning",
                                         code=exc.code))
        self._margin = reports
        self._margin_ts = self.now_ms()
        self._margin_dirty = False
        return reports

    def _currencies(self) -> list[str]:
        ccys = set(self.venue.config.funding.get(self.account, {}))
        ccys.update(h.inst.settlement for h in self.book.held.values())
        return sorted(ccys)

    def _store_history(self, force: bool = False) -> None:
        if self.store is None:
            return
        now = self.now_ms()
        if not force and now - self._last_store < self.store_interval_ms:
            return
        if now == self._last_store:
            return
        from app.analytics import history_row

        self._last_store = now
        margin = self._margin if self._margin and not self._margin_dirty else self._refresh_margin(with_distance=False)
        lite = DeskSnapshot(ts=now, venue=self.venue.name, index_prices=self._index_by_name(), instruments=(), chains={},
                            quotes={}, positions=self.book.views(), portfolio=self._portfolio(), margin=margin)
        self.store.record_snapshot("desk", now, history_row(lite))

    async def _dispatch_strategies(self) -> None:
        for run_id, runner in list(self.runners.items()):
            sub = self._runner_subs.get(run_id)
            if sub is None or runner.stopped:
                continue
            for event in sub.drain():
                await runner.on_event(event)
            await runner.tick()

    # -- trading -------------------------------------------------------------------------------------
    async def place(self, req: OrderRequest) -> Order:
        """Send an order (pre-trade margin checked); raises OrderRejected / InsufficientMargin / UnknownInstrument."""
        return self.place_now(req)

    def place_now(self, req: OrderRequest) -> Order:
        """Synchronous :meth:`place` (tests and backtests)."""
        if not isinstance(req, OrderRequest):
            raise InvalidInput(f"place needs an OrderRequest, got {type(req).__name__}", code="input.type")
        if req.account != self.account:
            req = replace(req, account=self.account) if req.account == DEFAULT_ACCOUNT else req
        self.counters["orders"] += 1
        try:
            return self.venue.place_now(req)
        except DeskError:
            self.counters["rejects"] += 1
            raise

    async def cancel(self, order_id: str) -> Order:
        """Cancel one of our orders; raises NotFound / OrderRejected."""
        return self.venue.cancel_now(order_id)

    async def amend(self, order_id: str, amount: Decimal | None = None, price: Decimal | None = None) -> Order:
        """Change size and/or price of one of our open orders (margin checked)."""
        return self.venue.amend_now(order_id, amount, price)

    async def cancel_all(self, instrument: str | None = None) -> int:
        """Cancel every open order (of one instrument); return how many."""
        return await self.venue.cancel_all(instrument)

    async def order_reports(self, open_only: bool = False) -> Sequence[OrderStatusReport]:
        """The venue's view of our orders (strategy runners reconcile with it)."""
        return await self.venue.order_reports(open_only)

    async def fill_reports(self, since_ms: int = 0) -> Sequence[Any]:
        """Our fills since ``since_ms`` as the venue reports them."""
        return await self.venue.fill_reports(since_ms)

    def open_orders(self) -> list[Order]:
        """Our open orders, oldest first."""
        return self.venue.orders(open_only=True)

    def what_if(self, orders: list[OrderRequest]) -> dict[str, MarginReport]:
        """Margin reports per currency as if ``orders`` had traded; changes nothing."""
        names = [o.instrument for o in orders]
        for n in names:
            if n not in self.venue.instruments_by_name:
                raise UnknownInstrument(f"{n} is not listed", name=n)
        self.venue._mark_margin(set(names) | set(self.venue._watched))
        return self.margin_engine.what_if(self.account, [replace(o, account=self.account) for o in orders])

    # -- strategies ----------------------------------------------------------------------------------
    def add_strategy(self, strategy: Any, run_id: str, *, active: bool = False, **runner_kwargs: Any) -> Any:
        """Run ``strategy`` (strategies.base.Strategy) under a crash-safe runner fed from the bus; needs a store."""
        if self.store is None:
            raise ConfigError("strategies need a store (pass --db or store=...)", key="store")
        if run_id in self.runners:
            raise InvalidInput(f"strategy run {run_id!r} already exists", code="run.exists", run_id=run_id)
        from strategies.runner import Runner

        runner = Runner(strategy, self, self.store, self, run_id=run_id, clock=self.clock, venue=self.venue.name,
                        active=active, **runner_kwargs)
        self.runners[run_id] = runner
        self._runner_subs[run_id] = self.bus.subscribe(_STRATEGY_TOPICS, maxsize=100_000)
        return runner

    async def strategy_control(self, run_id: str, action: str) -> StrategyStatus:
        """``activate``, ``pause``, ``kill`` or ``hedge_now`` a strategy run; returns its status."""
        runner = self.runners.get(run_id)
        if runner is None:
            raise NotFound(f"no strategy run {run_id!r}", code="run.not_found", run_id=run_id)
        if not runner.started:
            await runner.start()
        if action in ("activate", "pause", "kill"):
            from strategies.runner import set_run_mode

            mode = {"activate": "active", "pause": "paused", "kill": "killed"}[action]
            set_run_mode(self.store, run_id, mode)
            # The runner polls the store's status between decisions; a control from the desk applies at once.
            setter = getattr(runner, "set_mode", None) or runner._set_mode
            if runner.mode != mode:
                await setter(mode)
        elif action == "hedge_now":
            from app.domain import Timer

            await runner.on_event(Timer(self.now_ms(), "hedge_now"))
        else:
            raise InvalidInput(f"unknown strategy action {action!r}: activate, pause, kill or hedge_now",
                               code="run.action", action=action)
        return runner.status()

    # -- DeskView (what strategies read) --------------------------------------------------------------
    def positions(self) -> tuple[PositionView, ...]:
        """Our positions with marks, PnL (coin and USD) and greeks."""
        return self.book.views()

    def quote(self, instrument: str, venue: str | None = None) -> Quote | None:
        """Current quote of ``instrument`` (top of book, mark, IV, forward), or None when it is not listed."""
        if instrument in self.venue.instruments_by_name:
            return self.venue.quote(instrument)
        return self.quotes.get(instrument)

    def index_price(self, underlying: str) -> float | None:
        """Index price (USD) of ``BTC`` or ``btc_usd``."""
        return self.index_prices.get(underlying.split("_")[0].upper())

    def margin(self) -> dict[str, MarginReport]:
        """Margin reports of our account per currency (with distance to liquidation; cached per instant)."""
        key = (self.now_ms(), self.counters["fills"], self.engine.seq if self.open_orders() else 0)
        if self._margin_full is not None and self._margin_full[0] == key and not self._margin_dirty:
            return self._margin_full[1]
        reports = self._refresh_margin(with_distance=True)
        self._margin_full = (key, reports)
        return reports

    # -- reading -------------------------------------------------------------------------------------
    def subscribe(self, topics: Iterable[str] | None = None, maxsize: int = 10_000) -> Subscription:
        """A bus subscription to event ``topics`` (``quote``, ``fill_event``, ``alert``...; None for all)."""
        return self.bus.subscribe(topics, maxsize=maxsize)

    def instruments(self, underlying: str | None = None) -> list[Instrument]:
        """Listed instruments (of ``underlying``), perpetual and futures first, options by expiry and strike."""
        from connectors.sim.venue import _listing_key

        insts = [i for i in self.venue.instruments_by_name.values() if underlying is None or i.base == underlying]
        return sorted(insts, key=lambda i: (i.base, *_listing_key(i)))

    def depth(self, instrument: str, levels: int = 10) -> tuple[list[tuple[Decimal, Decimal, int]], list[tuple[Decimal, Decimal, int]]]:
        """Top ``levels`` of the order book per side as (price, amount, orders), the makers' quotes brought up to
        date first (read books through this, not the engine, when the venue quotes lazily)."""
        if instrument not in self.venue.instruments_by_name:
            raise UnknownInstrument(f"{instrument} is not listed", name=instrument)
        self.venue.sync(instrument)
        return self.engine.depth(instrument, levels)

    def expiries(self, underlying: str) -> list[int]:
        """Listed option expiries of ``underlying`` (epoch ms), sorted."""
        return sorted({i.expiry_ms for i in self.instruments(underlying) if i.is_option and i.expiry_ms})

    def chain(self, underlying: str, expiry_ms: int) -> ChainSlice:
        """One expiry of an underlying's option chain with bid/ask, IVs and greeks (coin)."""
        opts = [i for i in self.instruments(underlying) if i.is_option and i.expiry_ms == expiry_ms]
        if not opts:
            raise NotFound(f"no {underlying} options expiring at {expiry_ms}", code="chain.not_found")
        return self._slice(underlying, expiry_ms, opts)

    def _slice(self, underlying: str, expiry_ms: int, opts: list[Instrument]) -> ChainSlice:
        now = self.now_ms()
        qs = [self.quote(i.name) for i in opts]
        idx = self.index_prices.get(underlying, math.nan)
        fwd = np.array([q.underlying_price if q and q.underlying_price else idx for q in qs], dtype=float)
        strike = np.array([float(i.strike or 0) for i in opts])
        t = np.full(len(opts), max(opts[0].years_to_expiry(now), 1e-9))
        iv = np.array([q.mark_iv if q and q.mark_iv else np.nan for q in qs], dtype=float)
        call = np.array([i.is_call for i in opts])
        g = inverse_greeks(fwd, strike, t, iv, call)
        bid = np.array([q.bid if q and q.bid is not None else np.nan for q in qs], dtype=float)
        ask = np.array([q.ask if q and q.ask is not None else np.nan for q in qs], dtype=float)
        with np.errstate(all="ignore"):
            bid_iv = implied_vol_coin(bid, fwd, strike, t, call)
            ask_iv = implied_vol_coin(ask, fwd, strike, t, call)
        rows = []
        for k, inst in enumerate(opts):
            q = qs[k]
            rows.append(ChainRow(
                instrument=inst.name, strike=float(strike[k]),
                option_type=OptionType.CALL if call[k] else OptionType.PUT,
                bid=None if q is None or q.bid is None else q.bid, ask=None if q is None or q.ask is None else q.ask,
                bid_size=0.0 if q is None else q.bid_size, ask_size=0.0 if q is None else q.ask_size,
                mark=float(g.price[k]) if q is None or q.mark_price is None else q.mark_price,
                bid_iv=_finite(bid_iv[k]), ask_iv=_finite(ask_iv[k]), mark_iv=float(iv[k]),
                delta=float(g.delta[k]), gamma=float(g.gamma[k]), vega=float(g.vega[k]) * 0.01,
                theta=float(g.theta[k]) / 365.0, open_interest=0.0 if q is None else q.open_interest))
        f = float(np.nanmedian(fwd)) if len(fwd) else idx
        atm = float(strike[np.nanargmin(np.abs(strike - f))]) if len(strike) else f
        return ChainSlice(underlying, expiry_ms, f, idx, atm, tuple(rows))

    def chains(self) -> dict[str, tuple[ChainSlice, ...]]:
        """Every expiry of every underlying (cached per simulated instant)."""
        now = self.now_ms()
        if self._chain_cache is not None and self._chain_cache[0] == now:
            return self._chain_cache[1]
        by: dict[tuple[str, int], list[Instrument]] = {}
        for inst in self.instruments():
            if inst.is_option and inst.expiry_ms is not None:
                by.setdefault((inst.base, inst.expiry_ms), []).append(inst)
        out: dict[str, list[ChainSlice]] = {}
        for (base, exp), opts in sorted(by.items()):
            out.setdefault(base, []).append(self._slice(base, exp, opts))
        chains = {b: tuple(v) for b, v in out.items()}
        self._chain_cache = (now, chains)
        return chains

    def _portfolio(self) -> dict[str, GreeksView]:
        bases = sorted(set(self.venue.config.underlyings) | {h.inst.base for h in self.book.held.values()})
        return {b: self.book.greeks(b) for b in bases}

    def _index_by_name(self) -> dict[str, float]:
        return {f"{b.lower()}_usd": px for b, px in self.index_prices.items()}

    def portfolio(self) -> dict[str, GreeksView]:
        """Portfolio greeks per underlying (coin and USD), kept up to date on fills and marks."""
        return self._portfolio()

    def snapshot(self, *, chains: bool = True) -> DeskSnapshot:
        """Everything a front draws at this instant (``chains=False`` skips the option chains)."""
        strategies = tuple(r.status() for r in self.runners.values())
        return DeskSnapshot(
            ts=self.now_ms(), venue=self.venue.name, index_prices=self._index_by_name(),
            instruments=tuple(i.name for i in self.instruments()), chains=self.chains() if chains else {},
            quotes={i.name: self.venue.quote(i.name) for i in self.venue.instruments_by_name.values()},
            positions=self.book.views(), portfolio=self._portfolio(), margin=self.margin(),
            strategies=strategies, recent_events=tuple(self.recent),
        )

    def summary(self) -> dict[str, Any]:
        """Run summary: orders, fills, events, positions, equity per currency and the fill-stream digest."""
        margin = self._refresh_margin(with_distance=False)
        return {
            "ts": self.now_ms(),
            "time": utc_from_ms(self.now_ms()).isoformat(),
            "venue": self.venue.name,
            "seed": self.seed,
            "steps": self.counters["steps"],
            "orders": self.counters["orders"],
            "rejects": self.counters["rejects"],
            "our_fills": self.counters["fills"],
            "fills": self.venue.fill_count,
            "events": self.venue.market_events,
            "positions": {p.instrument: str(p.size) for p in self.book.positions()},
            "equity": {c: r.equity for c, r in margin.items()},
            "index": {b: round(px, 6) for b, px in self.index_prices.items()},
            "fills_sha256": self.venue.fills_sha256(),
        }


def _finite(x: float) -> float | None:
    return float(x) if x == x and math.isfinite(x) else None
