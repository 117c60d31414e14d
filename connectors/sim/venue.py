"""The embedded simulated venue: market model + listing + index sources + makers and takers in our matching engine.

:class:`SimVenue` implements :class:`app.ports.Venue`. Time moves only through :meth:`SimVenue.advance` (the
Desk calls it, from a task at the configured speed or directly in tests and backtests). One step of
``step_ms`` simulated milliseconds:

1. the market model moves spot, vol and skew stress; the index sources observe spot and the oracle
   aggregates them into the index;
2. listings are refreshed (new expiries and strikes) and expired instruments settled, once per simulated hour
   and whenever an expiry passes;
3. forwards, model IVs (SSVI, per expiry) and marks and greeks of every option of every underlying are
   computed in one vectorised pass and one call of the compiled pricing kernel (:mod:`app.fast_greeks`);
4. the market makers' target quotes for every instrument (vectorised over makers and instruments); with
   *eager* quoting every maker re-quotes in the engine only those that must move (amend in place;
   away-from-mid moves first so makers never cross each other); with *lazy* quoting (the default while nobody
   on the bus listens to quotes: headless runs and backtests) a book is brought to the targets only when it is
   used — an order of ours, of a taker or of the liquidator, a quote or depth read — and each step for books
   where we have a resting order (so the market moving through it fills it), so whoever looks sees the makers'
   current quotes at a fraction of the cost; the targets themselves are computed when a step first needs them;
5. takers send immediate-or-cancel orders through the book;
6. a :class:`app.domain.Quote` is published for each instrument whose top of book or mark moved, plus the
   index, the trades and our fills.

Everything random comes from generators seeded from ``seed``; the same seed gives the same fills byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from app.bus import Bus
from app.clock import SimClock
from app.domain import (
    MS_PER_YEAR,
    Alert,
    Fill,
    FillEvent,
    IndexPrice,
    Instrument,
    InstrumentState,
    Kind,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Quote,
    Trade,
)
from app.engine import events as ev
from app.engine.accounts import AccountBook
from app.engine.ledger import EntryKind
from app.engine.liquidation import LiquidationEnded, LiquidationStarted, Liquidator
from app.engine.margin import MarginEngine
from app.engine.margin_params import ALERT_LEVELS
from app.engine.matching import MatchingEngine
from app.engine.oracle import Oracle
from app.engine.settlement import Settlement, funding_rate_8h, next_settlement_ms
from app.errors import DeskError, InsufficientMargin, InvalidInput, NotFound, OrderRejected, UnknownInstrument
from app.ports import AccountReport, OrderStatusReport, PositionStatusReport
from app.pricing.inverse_flat import inverse_greeks_1d
from connectors.sim.index_sources import IndexSources, SourceParams
from connectors.sim.listing import ListingConfig, ListingSchedule
from connectors.sim.market_makers import (
    DEFAULT_MAKERS,
    FutureQuotes,
    MakerParams,
    OptionQuotes,
    needs_requote,
    to_requote,
)
from connectors.sim.market_model import MarketModel, UnderlyingParams
from connectors.sim.smile import MIN_YEARS, atm_total_variance_of, ssvi_phi, ssvi_rhos, ssvi_total_variance_phi
from connectors.sim.takers import TakerParams, Takers

HOUR_MS = 3_600_000
_SINGLE_SYNCS = 3  # books a lazy step brings to the targets one by one before it computes them all
# Options' marks move a tick or more on hundreds of instruments a step, and a band costs a few microseconds to
# move: with eager quoting a step moves an option's band (mark ± 50 %, deribit.md §3.7, matching.DEFAULT_BANDS) only
# when its mark moved by 1 % of itself (its edges then lag by at most 2 % of its half-width); with lazy quoting no
# order reaches an option's book but through ``sync``, which re-centres the band on the current mark first.
_OPTION_MARK_SLACK = 0.01


@dataclass
class SimConfig:
    """Everything that shapes the simulated market; ``funding`` is each account's opening deposit per currency."""

    seed: int = 7
    start_ms: int = 1_704_067_200_000  # 2024-01-01 00:00 UTC
    step_ms: int = 1_000
    underlyings: tuple[str, ...] = ("BTC", "ETH")
    params: dict[str, UnderlyingParams] = field(default_factory=dict)
    listing: ListingConfig = field(default_factory=ListingConfig)
    makers: tuple[MakerParams, ...] = DEFAULT_MAKERS
    takers: TakerParams = field(default_factory=TakerParams)
    sources: SourceParams = field(default_factory=SourceParams)
    funding: dict[str, dict[str, Decimal]] = field(
        default_factory=lambda: {"main": {"BTC": Decimal(10), "ETH": Decimal(100)}}
    )
    margin_model: str = "sm"
    alert_levels: tuple[float, ...] = ALERT_LEVELS  # MM usage levels the margin engine alerts at (fractions)
    perp_premium_std: float = 0.0006  # stationary std of the perpetual's premium over the index (fraction)
    perp_premium_halflife_s: float = 4 * 3600.0
    funding_interval_ms: int = 60_000  # funding is accrued continuously on Deribit; booked here this often
    liquidation_interval_ms: int = 1_000  # our accounts' margin is checked for liquidation this often (Deribit: 1 s)
    quoting: str = "auto"  # eager: every book re-quoted every step; lazy: on use; auto: lazy while nobody reads quotes
    agent_funding: Decimal = Decimal(1_000_000)  # coin per currency for each simulated agent (never margin-checked)

    def __post_init__(self) -> None:
        if self.step_ms <= 0:
            raise InvalidInput(f"step_ms must be positive, got {self.step_ms}", code="config.invalid")
        if self.quoting not in ("auto", "eager", "lazy"):
            raise InvalidInput(f"quoting must be auto, eager or lazy, got {self.quoting!r}", code="config.invalid")
        for base in self.underlyings:
            self.params.setdefault(base, UnderlyingParams.default(base))


class _Side:
    """One maker's resting quotes on one side of every instrument of an underlying (engine ticks and lots)."""

    __slots__ = ("ticks", "lots", "oid", "filled")

    def __init__(self, n: int) -> None:
        self.ticks = np.zeros(n, dtype=np.int64)
        self.lots = np.zeros(n, dtype=np.int64)  # remaining lots resting
        self.oid = np.zeros(n, dtype=np.int64)
        self.filled = np.zeros(n, dtype=np.int64)  # lots of the resting order already filled


class _Market:
    """Per-underlying arrays over its listed instruments (rebuilt when the listing changes)."""

    def __init__(self, base: str, insts: list[Instrument], makers: Sequence[MakerParams]) -> None:
        self.base = base
        self.insts = insts
        self.names = [i.name for i in insts]
        self.pos = {n: k for k, n in enumerate(self.names)}
        n = len(insts)
        self.opt = np.array([k for k, i in enumerate(insts) if i.is_option], dtype=np.int64)
        # Listing order puts the options last (see _listing_key): they are one slice of every per-instrument array.
        self.opt_slice = slice(int(self.opt[0]), n) if len(self.opt) else slice(n, n)
        if len(self.opt) and not np.array_equal(self.opt, np.arange(self.opt_slice.start, n)):
            raise ValueError("options must come last in a market's listing")
        self.fut = np.array([k for k, i in enumerate(insts) if not i.is_option], dtype=np.int64)
        self.perp = next(k for k, i in enumerate(insts) if i.kind is Kind.PERPETUAL)
        self.dated = np.array([k for k, i in enumerate(insts) if i.kind is Kind.FUTURE], dtype=np.int64)
        opts = [insts[k] for k in self.opt]
        self.strike = np.array([float(i.strike or 0) for i in opts])
        self.call = np.array([i.is_call for i in opts])
        self.expiry = np.array([i.expiry_ms for i in opts], dtype=np.int64)
        self.fut_expiry = np.array([insts[k].expiry_ms or 0 for k in self.fut], dtype=np.int64)
        self.fut_quotes = FutureQuotes([insts[k] for k in self.fut], makers)
        self.bids = [_Side(n) for _ in makers]
        self.asks = [_Side(n) for _ in makers]
        self.mark = np.full(n, np.nan)
        self.iv = np.full(n, np.nan)
        self.fwd = np.full(n, np.nan)
        self.delta = np.zeros(n)
        self.vega = np.zeros(n)
        self.pub_mark = np.full(n, np.nan)  # mark last published
        self.pub_top: list[tuple[int, int, int, int]] = [(-1, -1, 0, 0)] * n  # top of book last published (ints)
        self.oi = np.zeros(n)
        self.tick = np.array([float(i.tick_size) for i in insts])
        self.tick_list = self.tick.tolist()
        self.half_tick = self.tick * 0.5
        self.name_array = np.array(self.names, dtype=object)
        # Exact float prices and sizes: ticks·num/den with integers, so 0.0525 prints as 0.0525, not 0.052500000001.
        self.tick_frac = [i.tick_size.as_integer_ratio() for i in insts]
        self.lot_frac = [i.min_amount.as_integer_ratio() for i in insts]
        self.step_above = np.array([int(round(float(i.tick_steps[0][0] / i.tick_size))) if i.tick_steps else 1 << 60
                                    for i in insts], dtype=np.int64)
        self.step_mult = np.array([int(round(float(i.tick_steps[0][1] / i.tick_size))) if i.tick_steps else 1
                                   for i in insts], dtype=np.int64)
        self.books: list[Any] = []  # the engine's order book of each instrument (set by the venue)
        self.targets: list[Any] = []  # per maker: ((bid ticks, lots, edge, step), (ask ...)) arrays, set each step
        # Makers x instruments arrays the targets are views of.
        self._target_rows = tuple(np.zeros((len(makers), n), dtype=np.int64) for _ in range(4))
        self.target_step = -1
        self.synced = np.full(n, -1, dtype=np.int64)  # step at which each book was last brought to the targets
        self.mark_set = np.full(n, np.nan)  # mark last given to the engine (its price band)


class _OptionBlock:
    """Every listed option (and future) of every underlying in one set of arrays, so a step prices them in one call."""

    def __init__(self, markets: dict[str, _Market], model: MarketModel, makers: Sequence[MakerParams]) -> None:
        parts = [(base, mk) for base, mk in markets.items() if len(mk.opt)]
        self.slices: list[tuple[_Market, slice]] = []
        start = 0
        for _, mk in parts:
            n = len(mk.opt)
            self.slices.append((mk, slice(start, start + n)))
            start += n
        cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0))  # noqa: E731
        self.strike = cat([mk.strike for _, mk in parts])
        self.call = np.ascontiguousarray(cat([mk.call for _, mk in parts]).astype(bool))
        self.expiry = cat([mk.expiry for _, mk in parts]).astype(np.int64)
        which = cat([np.full(len(mk.opt), model.index(base)) for base, mk in parts]).astype(np.int64)
        # Forward, ATM variance and smile curvature are per expiry: computed on (underlying, expiry) pairs, then
        # spread to the options through ``expiry_of``.
        pairs, expiry_of = np.unique(np.stack([which, self.expiry], axis=1).reshape(-1, 2), axis=0,
                                     return_inverse=True)
        self.expiry_of = np.asarray(expiry_of, dtype=np.int64).reshape(-1)
        self.which_e = np.ascontiguousarray(pairs[:, 0])
        self.expiry_e = np.ascontiguousarray(pairs[:, 1])
        self.which = which
        params = [model.params[name] for name in model.names]
        per = lambda attr: np.array([getattr(p, attr) for p in params], dtype=float)[self.which_e]  # noqa: E731
        self.carry, self.wing, self.gamma = per("carry"), per("wing"), per("gamma")
        self.mark = np.zeros(start)  # coin, set with the markets' marks
        # Perpetuals and futures: (market, slice of this block) and per-future arrays.
        self.fut_slices: list[tuple[_Market, slice]] = []
        start_f = 0
        for _, mk in markets.items():
            nf = mk.opt_slice.start
            self.fut_slices.append((mk, slice(start_f, start_f + nf)))
            start_f += nf
        fut_parts = list(markets.items())
        self.fut_expiry = cat([mk.fut_expiry for _, mk in fut_parts]).astype(np.int64)
        self.fut_which = cat([np.full(mk.opt_slice.start, model.index(b)) for b, mk in fut_parts]).astype(np.int64)
        self.fut_perp = self.fut_expiry == 0
        self.fut_carry = np.array([model.params[name].carry for name in model.names], dtype=float)[self.fut_which]
        self.vega = np.zeros(start)  # coin per 1.0 vol
        # One quoting call per group of consecutive underlyings whose options share a tick grid (BTC and ETH do).
        self.quotes: list[tuple[slice, OptionQuotes]] = []
        group: list[Instrument] = []
        group_start = 0
        for _, mk in parts:
            opts = [mk.insts[k] for k in mk.opt]
            if group and (opts[0].tick_size, opts[0].tick_steps) != (group[0].tick_size, group[0].tick_steps):
                self.quotes.append((slice(group_start, group_start + len(group)), OptionQuotes(group, makers)))
                group_start += len(group)
                group = []
            group.extend(opts)
        if group:
            self.quotes.append((slice(group_start, group_start + len(group)), OptionQuotes(group, makers)))


class _SyncingEngine:
    """The matching engine as the liquidator sees it: a book is brought to the makers' targets before an order."""

    def __init__(self, engine: MatchingEngine, sync: Callable[[str], None]) -> None:
        self._engine = engine
        self._sync = sync

    def submit(self, request: OrderRequest) -> list[Any]:
        """Sync the instrument's book, then submit (see MatchingEngine.submit)."""
        self._sync(request.instrument)
        return self._engine.submit(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


class SimVenue:
    """The embedded simulated venue (an :class:`app.ports.Venue`), deterministic for a given seed."""

    name = "sim"

    def __init__(self, config: SimConfig | None = None, *, clock: SimClock | None = None,
                 pre_trade_check: Callable[[OrderRequest, Any], Any] | None = None) -> None:
        self.config = cfg = config or SimConfig()
        self.clock = clock or SimClock(cfg.start_ms)
        seeds = np.random.SeedSequence(cfg.seed).spawn(4)
        self.model = self._make_model(cfg, int(seeds[0].generate_state(1)[0]))
        self.sources = IndexSources(cfg.underlyings, params=cfg.sources, seed=int(seeds[1].generate_state(1)[0]))
        self.takers = Takers(cfg.takers, seed=int(seeds[2].generate_state(1)[0]))
        self._premium_rng = np.random.Generator(np.random.PCG64(int(seeds[3].generate_state(1)[0])))
        self.perp_premium = np.zeros(len(cfg.underlyings))  # perpetual over index, fraction (an OU process)
        self._last_funding = cfg.start_ms
        self.funding_rates: dict[str, float] = {}  # last 8-hour funding rate per underlying (fraction)
        self.schedule = ListingSchedule(cfg.listing)
        self._user_check = pre_trade_check
        self.makers = tuple(cfg.makers)
        self._maker_accounts = {f"{m.name}" for m in self.makers} | {"takers"}
        self.accounts = AccountBook()
        self.margin = MarginEngine(self.accounts, clock=self.clock, alert_levels=cfg.alert_levels)
        for agent in sorted(self._maker_accounts):
            self.margin.open_account(agent, "sm", {b: cfg.agent_funding for b in cfg.underlyings})
        for account, deposits in cfg.funding.items():
            self.margin.open_account(account, cfg.margin_model, deposits)  # type: ignore[arg-type]
        self._watched: dict[str, set[str]] = {}  # instrument -> our accounts with a position or an open order there
        self.engine = MatchingEngine(self.clock, pre_trade_check=self._pre_trade_check)
        self.engine.on_event(self._on_engine_event)
        self.markets: dict[str, _Market] = {}
        self._block: _OptionBlock | None = None
        self._marks_epoch = 0  # bumped whenever the marks are recomputed
        self._margin_epoch: dict[str, int] = {}  # instrument -> marks epoch last given to the margin engine
        self.instruments_by_name: dict[str, Instrument] = {}
        self.oracle = Oracle(self.clock)
        self.settlement = Settlement(self.accounts)
        self.liquidator = Liquidator(self.margin, _SyncingEngine(self.engine, self.sync))  # type: ignore[arg-type]
        self._last_liquidation_check = self.clock.now_ms()
        self._index_names = [f"{b.lower()}_usd" for b in cfg.underlyings]
        self._index_base = {f"{b.lower()}_usd": b for b in cfg.underlyings}
        self._index_stale: dict[str, bool] = {}
        # Before the first observation the index is the model's spot (the oracle needs a step of sources).
        self.index_price = {b: float(self.model.s[i]) for i, b in enumerate(cfg.underlyings)}
        self._oid_slot: dict[int, tuple[str, int, int, int]] = {}  # order id -> (base, maker, side, position)
        self._orders: dict[int, Order] = {}  # our (non-agent) orders by engine id
        self._resting: dict[int, str] = {}  # our open orders: engine id -> instrument
        self._our_fills: list[Fill] = []
        self._bus: Bus | None = None
        self._touched: set[tuple[str, int]] = set()
        self._pending: list[Any] = []
        self.fill_digest = hashlib.sha256()
        self.fill_count = 0
        self.trade_count = 0
        self.events_published = 0
        self.unbuilt_quotes = 0  # quote changes nobody listened to (counted as market events, not built)
        self.settlements: list[dict[str, Any]] = []
        self._listeners: list[Callable[[list[Any]], list[Any] | None]] = []
        self._settlement_listeners: list[Callable[[str, float, list[Instrument]], None]] = []
        self._last_request: OrderRequest | None = None
        self._step_no = 0
        self._targets_step = -1  # step whose makers' targets are computed
        self._single_step = self._single_count = 0  # books given targets of their own in that step (lazy quoting)
        self.quotes_wanted = False  # build Quote objects even without a bus listener (a step listener wants them)
        # Instruments whose quote changed in the current step, and in the step last emitted, as chunks of names
        # (lists or arrays: a lazy step changes hundreds, and nobody may ask for them); see ``changed``.
        self._changed: list[Any] = []
        self._last_changed: list[Any] = []
        self._last_listing_ms = -1
        self._next_expiry_ms = 0
        # The 08:00 UTC daily settlement is due on its own clock: a day without expiries (a listing without
        # dailies, as backtests use) still books every futures session PnL.
        self._next_daily_ms = next_settlement_ms(self.clock.now_ms())
        self.daily_settlements: list[int] = []  # epoch ms of each daily settlement run
        self._last_return = np.zeros(len(cfg.underlyings))
        self._refresh_listing(initial=True)
        self._observe_index(0.0)
        self._compute_marks()
        self._set_engine_marks()
        self._requote()
        self._publish_quotes()

    def _make_model(self, cfg: SimConfig, seed: int) -> MarketModel:
        """The model that moves the underlyings (replay substitutes the real path)."""
        return MarketModel({b: cfg.params[b] for b in cfg.underlyings}, seed=seed)

    # -- Venue protocol ------------------------------------------------------------------------------
    async def connect(self, bus: Bus) -> None:
        """Start publishing market data and our order events onto ``bus``."""
        self._bus = bus

    def attach(self, bus: Bus) -> None:
        """Synchronous :meth:`connect` (the Desk wires the bus before its loop runs)."""
        self._bus = bus

    async def close(self) -> None:
        """Nothing to close: the venue lives in this process."""
        self._bus = None

    async def instruments(self) -> Sequence[Instrument]:
        """Every listed instrument."""
        return list(self.instruments_by_name.values())

    async def subscribe(self, instruments: Sequence[str], channels: Sequence[str] = ("ticker",)) -> None:
        """Every listed instrument is always streamed; unknown names are refused."""
        for name in instruments:
            if name not in self.instruments_by_name:
                raise UnknownInstrument(f"{name} is not listed on the simulated venue", name=name)

    async def place(self, request: OrderRequest) -> Order:
        """Send an order of one of our accounts; return it after matching (raises OrderRejected)."""
        return self.place_now(request)

    async def cancel(self, order_id: str) -> Order:
        """Cancel one of our orders."""
        return self.cancel_now(order_id)

    async def amend(self, order_id: str, amount: Decimal | None = None, price: Decimal | None = None) -> Order:
        """Change size and/or price of one of our open orders."""
        return self.amend_now(order_id, amount, price)

    async def cancel_all(self, instrument: str | None = None) -> int:
        """Cancel every open order of our accounts (of one instrument)."""
        count = 0
        for oid, order in list(self._orders.items()):
            if order.status is OrderStatus.OPEN and (instrument is None or order.instrument == instrument):
                self.cancel_now(str(oid))
                count += 1
        return count

    async def order_reports(self, open_only: bool = False) -> Sequence[OrderStatusReport]:
        """Our orders as the venue knows them."""
        return [OrderStatusReport(o.order_id, o.request.client_order_id, o.instrument, o.status.value, o.filled,
                                  o.request.amount, o.request.price, o.ts)
                for o in self._orders.values() if not open_only or o.status is OrderStatus.OPEN]

    async def fill_reports(self, since_ms: int = 0) -> Sequence[Fill]:
        """Our fills since ``since_ms``."""
        return [f for f in self._our_fills if f.ts >= since_ms]

    async def position_reports(self) -> Sequence[PositionStatusReport]:
        """Positions of our accounts as the venue's account book holds them."""
        now = self.clock.now_ms()
        out = []
        for account in self.config.funding:
            for p in self.accounts.domain_positions(account):
                out.append(PositionStatusReport(p.instrument, p.size, p.average_price, now))
        return out

    async def account(self, currency: str, account: str = "main") -> AccountReport:
        """Balances and margin figures of ``account`` in ``currency`` from the venue's margin engine."""
        self._mark_margin(self._watched.keys())
        rep = self.margin.report(account, currency, with_distance=False, publish=False)

        def dec(x: float) -> Decimal:
            return Decimal(repr(x)).quantize(Decimal("1e-10"))

        return AccountReport(rep.currency, dec(rep.balance), dec(rep.equity), dec(rep.initial_margin),
                             dec(rep.maintenance_margin), dec(rep.available_funds),
                             {"margin_balance": rep.margin_balance, "mm_usage": rep.mm_usage, "model": rep.model})

    # -- our orders ----------------------------------------------------------------------------------
    def _inst(self, name: str) -> Instrument:
        inst = self.instruments_by_name.get(name)
        if inst is None:
            raise UnknownInstrument(f"{name} is not listed on the simulated venue", name=name)
        return inst

    def place_now(self, request: OrderRequest) -> Order:
        """Synchronous :meth:`place`."""
        if request.account in self._maker_accounts:
            raise OrderRejected(f"account {request.account} belongs to a simulated agent", code="order.rejected.account")
        self._inst(request.instrument)
        self.sync(request.instrument)
        self._last_request = request
        try:
            events = self.engine.submit(request)
        finally:
            self._last_request = None
        self._flush_engine_events(events)
        for e in events:
            if isinstance(e, ev.Rejected):
                cls = InsufficientMargin if e.code.startswith("margin.") else OrderRejected
                raise cls(e.message or e.code, code=e.code, instrument=request.instrument)
        acc = next((e for e in events if isinstance(e, ev.Accepted)), None)
        if acc is None:  # pragma: no cover - the engine answers every submit with Accepted or Rejected
            raise OrderRejected("the engine neither accepted nor rejected the order", code="order.rejected")
        return self._orders[acc.order_id]

    def cancel_now(self, order_id: str) -> Order:
        """Synchronous :meth:`cancel`."""
        oid = self._our_oid(order_id)
        order = self._orders[oid]
        events = self.engine.cancel(order.request.account, oid)
        self._flush_engine_events(events)
        for e in events:
            if isinstance(e, ev.Rejected):
                raise OrderRejected(e.message or e.code, code=e.code, order_id=order_id)
        return self._orders[oid]

    def amend_now(self, order_id: str, amount: Decimal | None = None, price: Decimal | None = None) -> Order:
        """Synchronous :meth:`amend`."""
        oid = self._our_oid(order_id)
        order = self._orders[oid]
        self._mark_margin([order.instrument])
        self.sync(order.instrument)
        events = self.engine.amend(order.request.account, oid, amount=amount, price=price)
        self._flush_engine_events(events)
        for e in events:
            if isinstance(e, ev.Rejected):
                cls = InsufficientMargin if e.code.startswith("margin.") else OrderRejected
                raise cls(e.message or e.code, code=e.code, order_id=order_id)
        return self._orders[oid]

    def _our_oid(self, order_id: str) -> int:
        try:
            oid = int(order_id)
        except (TypeError, ValueError):
            raise NotFound(f"no order {order_id!r}", code="order.not_found", order_id=order_id) from None
        if oid not in self._orders:
            raise NotFound(f"no order {order_id!r}", code="order.not_found", order_id=order_id)
        return oid

    def orders(self, open_only: bool = True) -> list[Order]:
        """Our orders (open ones by default), oldest first."""
        return [o for o in self._orders.values() if not open_only or o.status is OrderStatus.OPEN]

    def publish_pending(self) -> None:
        """Emit what was produced outside a step (the opening quotes) to the listeners and the bus."""
        self._emit([])

    def on_step(self, listener: Callable[[list[Any]], list[Any] | None]) -> None:
        """Call ``listener`` with the domain events of each step before they go on the bus; events it returns
        are published after them."""
        self._listeners.append(listener)

    def _pre_trade_check(self, req: OrderRequest, ctx: Any) -> Any:
        if req.account in self._maker_accounts:
            return None
        self._mark_margin([req.instrument])
        reason = self.margin.pre_trade_check(req, ctx)
        if reason is None and self._user_check is not None:
            reason = self._user_check(req, ctx)
        return reason

    def _mark_margin(self, names: Iterable[str]) -> None:
        """Give the margin engine the current marks of ``names`` (only what our accounts touch is marked, and
        only once per recomputation of the marks)."""
        marks = {}
        epoch = self._marks_epoch
        given = self._margin_epoch
        for name in names:
            if given.get(name) == epoch:
                continue
            inst = self.instruments_by_name.get(name)
            if inst is None:
                continue
            mk = self.markets[inst.base]
            k = mk.pos[name]
            mark = float(mk.mark[k])
            iv = float(mk.iv[k])
            marks[name] = (mark, iv if iv == iv and iv > 0 else None, float(mk.fwd[k]))
        if marks:
            self.margin.set_marks(marks)
            for name in marks:
                given[name] = epoch

    # -- engine events -------------------------------------------------------------------------------
    def _on_engine_event(self, e: Any) -> None:
        """Engine callback (every event, agents' included): keep slots, our orders and the fill digest current."""
        kind = type(e)
        if kind is ev.Filled:
            self.margin.on_engine_event(e)
            self._on_filled(e)
            return
        account = getattr(e, "account", None)
        if account is not None and account not in self._maker_accounts and kind is not ev.Rejected:
            self.margin.on_engine_event(e)
            if kind is ev.Accepted:
                self._watched.setdefault(e.inst.name, set()).add(account)
        if kind is ev.Accepted:
            if e.account not in self._maker_accounts:
                req = self._pending_request(e)
                self._orders[e.order_id] = Order(str(e.order_id), req, OrderStatus.OPEN, Decimal(0), None, e.ts)
                self._resting[e.order_id] = e.inst.name
                self._pending.append(OrderUpdate(ts=e.ts, order=self._orders[e.order_id]))
        elif isinstance(e, (ev.Cancelled, ev.Expired)):
            slot = self._oid_slot.get(e.order_id)
            remaining = getattr(e, "remaining", 0)
            if slot is not None and remaining == 0:
                self._clear_slot(e.order_id)
            order = self._orders.get(e.order_id)
            if order is not None and remaining == 0 and not order.status.is_terminal:
                status = OrderStatus.EXPIRED if isinstance(e, ev.Expired) else OrderStatus.CANCELLED
                if order.filled == order.request.amount:
                    status = OrderStatus.FILLED
                self._orders[e.order_id] = o = _replace_order(order, status=status, ts=e.ts)
                self._resting.pop(e.order_id, None)
                self._pending.append(OrderUpdate(ts=e.ts, order=o))
        elif isinstance(e, ev.Amended):
            order = self._orders.get(e.order_id)
            if order is not None:
                inst = e.inst
                req = _replace_request(order.request, price=inst.from_ticks(e.price_ticks),
                                       amount=order.filled + inst.from_lots(e.lots))
                self._orders[e.order_id] = o = _replace_order(order, request=req, ts=e.ts)
                self._pending.append(OrderUpdate(ts=e.ts, order=o))

    def _pending_request(self, e: Any) -> OrderRequest:
        req = self._last_request
        if req is not None and req.instrument == e.inst.name and req.account == e.account:
            return req
        side = e.side
        return OrderRequest(e.inst.name, side, e.amount, e.price, OrderType.MARKET if e.price is None else OrderType.LIMIT,
                            account=e.account, client_order_id=e.client_order_id)

    def _on_filled(self, e: Any) -> None:
        self.trade_count += 1
        # The digest covers what a fill is (time, trade, instrument, price, size, side, accounts, fees), not the
        # engine's internal numbering (sequence numbers, order ids), which quote syncing may shift.
        self.fill_digest.update(f"{e.ts}|{e.trade_id}|{e.inst.name}|{e.price_ticks}|{e.lots}|{e.taker_side.value}|"
                                f"{e.maker_account}|{e.taker_account}|{e.maker_fee_units}|{e.taker_fee_units}\n".encode())
        self.fill_count += 1
        base = e.inst.base
        market = self.markets.get(base)
        if market is not None:
            k = market.pos.get(e.inst.name)
            if k is not None:
                market.oi[k] += float(e.inst.from_lots(e.lots))
                self._touched.add((base, k))
        slot = self._oid_slot.get(e.maker_order_id)
        if slot is not None:
            b, m, side, k = slot
            book = (self.markets[b].bids if side > 0 else self.markets[b].asks)[m]
            book.lots[k] = e.maker_remaining
            book.filled[k] += e.lots
            if e.maker_remaining == 0:
                self._clear_slot(e.maker_order_id)
        for acct in (e.maker_account, e.taker_account):
            if acct not in self._maker_accounts:
                self._watched.setdefault(e.inst.name, set()).add(acct)
        price = float(e.inst.from_ticks(e.price_ticks))
        self._pending.append(Trade(ts=e.ts, instrument=e.inst.name, price=price, amount=float(e.inst.from_lots(e.lots)),
                                   side=e.taker_side, trade_id=str(e.trade_id)))
        if e.maker_account not in self._maker_accounts or e.taker_account not in self._maker_accounts:
            maker, taker = ev.to_fills(e)
            idx = self.index_price.get(base)
            for fill, oid in ((maker, e.maker_order_id), (taker, e.taker_order_id)):
                if fill.account in self._maker_accounts:
                    continue
                order = self._orders.get(oid)
                cid = order.request.client_order_id if order else None
                fill = _replace_fill(fill, client_order_id=cid, index_price=idx)
                self._our_fills.append(fill)
                self._pending.append(FillEvent(ts=e.ts, fill=fill))
                if order is not None:
                    filled = order.filled + fill.amount
                    total = (order.average_price or Decimal(0)) * order.filled + fill.price * fill.amount
                    status = OrderStatus.FILLED if filled >= order.request.amount else order.status
                    self._orders[oid] = o = _replace_order(order, filled=filled, average_price=total / filled,
                                                           status=status, ts=e.ts)
                    if status.is_terminal:
                        self._resting.pop(oid, None)
                    self._pending.append(OrderUpdate(ts=e.ts, order=o))

    def _clear_slot(self, oid: int) -> None:
        slot = self._oid_slot.pop(oid, None)
        if slot is None:
            return
        b, m, side, k = slot
        market = self.markets.get(b)
        if market is None:
            return
        book = (market.bids if side > 0 else market.asks)[m]
        if k < len(book.oid) and book.oid[k] == oid:
            book.oid[k] = 0
            book.lots[k] = 0
            book.ticks[k] = 0
            book.filled[k] = 0
        self._touched.add((b, k))

    def _flush_engine_events(self, events: Sequence[Any]) -> None:
        """Publish what our own order produced (fills, order updates, trades) right away."""
        for e in events:
            if isinstance(e, (ev.Filled, ev.BookChanged)):
                inst = e.inst
                market = self.markets.get(inst.base)
                if market is not None and inst.name in market.pos:
                    self._touched.add((inst.base, market.pos[inst.name]))
        self._publish_quotes()
        self._emit([])

    # -- the step ------------------------------------------------------------------------------------
    def advance(self, ms: int) -> int:
        """Run the market for ``ms`` simulated milliseconds in steps of ``step_ms``; return the steps taken."""
        if ms < 0:
            raise InvalidInput(f"cannot advance by {ms} ms", code="clock.backwards")
        step = self.config.step_ms
        steps = 0
        end = self.clock.now_ms() + ms
        while self.clock.now_ms() + step <= end:
            self.step(step)
            steps += 1
        rest = end - self.clock.now_ms()
        if rest > 0:
            self.step(rest)
            steps += 1
        return steps

    def step(self, ms: int) -> None:
        """One step of ``ms`` simulated milliseconds (see the module docstring)."""
        dt_s = ms / 1000.0
        self.clock.advance(ms)
        now = self.clock.now_ms()
        self._last_return = self.model.step(ms / MS_PER_YEAR)
        cfg = self.config
        decay = np.exp(-np.log(2.0) * dt_s / cfg.perp_premium_halflife_s)
        shock = self._premium_rng.standard_normal(len(self.perp_premium))
        self.perp_premium = self.perp_premium * decay + cfg.perp_premium_std * np.sqrt(1.0 - decay * decay) * shock
        self._observe_index(dt_s)
        if now >= self._next_expiry_ms or now - self._last_listing_ms >= HOUR_MS:
            self._settle_expired(now)
            self._refresh_listing()
        elif now >= self._next_daily_ms:
            self._settle_daily(now)
        self._compute_marks()
        self._set_engine_marks()
        if self._watched:
            self._mark_margin(self._watched.keys())
        self._requote()
        self._take(dt_s)
        if now - self._last_funding >= cfg.funding_interval_ms:
            self._fund(now - self._last_funding, now)
            self._last_funding = now
        if now - self._last_liquidation_check >= self.config.liquidation_interval_ms:
            self._last_liquidation_check = now
            self._liquidate()
        self._publish_quotes()
        self._emit([])

    def _fund(self, elapsed_ms: int, now: int) -> None:
        """Book perpetual funding over ``elapsed_ms`` at Deribit's 8-hour rate from the mark's premium."""
        for base, mk in self.markets.items():
            inst = mk.insts[mk.perp]
            mark = float(mk.mark[mk.perp])
            index = self.index_price[base]
            rate = funding_rate_8h(mark, index)
            self.funding_rates[base] = rate
            if rate:
                self.settlement.funding(inst, rate, index, elapsed_ms, now)

    def _liquidate(self) -> None:
        """One liquidation round for each of our accounts and currencies whose MM reached the margin balance."""
        for account in self.config.funding:
            for ccy in self.config.underlyings:
                active = (account, ccy) in self.liquidator.active
                if not active and not any(p.size for p in self.accounts.positions(account, ccy)):
                    continue
                self._mark_margin(self._watched.keys())
                try:
                    events = self.liquidator.run(account, ccy, max_rounds=1)
                except DeskError as exc:  # missing marks or a stale index pause liquidations
                    self._pending.append(Alert(ts=self.clock.now_ms(), source="liquidation", message=str(exc),
                                               severity="warning", code=exc.code))
                    continue
                for e in events:
                    self._pending.append(e)
                    if isinstance(e, LiquidationStarted):
                        self._pending.append(Alert(
                            ts=e.ts, source="liquidation", severity="error", code="liquidation.started",
                            message=f"{account} {ccy}: liquidation started, MM {e.maintenance_margin:.6f} >= "
                                    f"margin balance {e.margin_balance:.6f}"))
                    elif isinstance(e, LiquidationEnded):
                        self._pending.append(Alert(
                            ts=e.ts, source="liquidation", severity="warning", code="liquidation.ended",
                            message=f"{account} {ccy}: liquidation ended ({e.outcome}) after {e.rounds} rounds"))

    def _observe_index(self, dt_s: float) -> None:
        """Observe the spot venues and let the oracle aggregate them (median, clamp, staleness, quorum)."""
        now = self.clock.now_ms()
        oracle = self.oracle
        for index, source, price, ts, _ in self.sources.observe_raw(now, self.model.s, max(dt_s, 1e-3)):
            oracle.update(index, source, price=price, ts=ts)
        for res in oracle.tick(self._index_names):
            base = self._index_base[res.index]
            was_stale = self._index_stale.get(res.index, False)
            if res.stale != was_stale:
                self._index_stale[res.index] = res.stale
                self._pending.append(Alert(
                    ts=now, source="oracle", severity="warning" if res.stale else "info",
                    code="data.stale_index" if res.stale else "data.index_ok",
                    message=f"index {res.index} {'is stale: ' + str(len(res.used)) + ' usable sources' if res.stale else 'is live again'}"))
                if res.stale:
                    self.margin.mark_index_stale(res.index)
            if res.price is None:
                continue
            self.index_price[base] = res.price
            self._pending.append(IndexPrice(ts=now, index=res.index, price=res.price, stale=res.stale))
            if not res.stale:
                self.margin.set_index(res.index, res.price, ts=now)

    def _refresh_listing(self, initial: bool = False) -> None:
        now = self.clock.now_ms()
        self._last_listing_ms = now
        changed_bases = []
        for base in self.config.underlyings:
            spot = self.index_price.get(base, self.model.spot[base])
            vol = float(self.model.implied_atm_all(30 / 365)[self.model.index(base)])
            new = self.schedule.refresh(base, now, spot, vol)
            if new or base not in self.markets:
                changed_bases.append(base)
            for inst in new:
                self.instruments_by_name[inst.name] = inst
                self.engine.add_instrument(inst)
                self.margin.add_instrument(inst)
                if not initial:
                    self._pending.append(Alert(ts=now, source="sim", message=f"listed {inst.name}", code="instrument.listed"))
        for base in changed_bases:
            self._rebuild(base)
        expiries = [i.expiry_ms for i in self.instruments_by_name.values() if i.expiry_ms is not None]
        self._next_expiry_ms = min(expiries) if expiries else 1 << 62

    def _rebuild(self, base: str) -> None:
        insts = sorted(self.schedule.listed(base), key=_listing_key)
        old = self.markets.get(base)
        market = _Market(base, insts, self.makers)
        if old is not None:
            for name, k_old in old.pos.items():
                k = market.pos.get(name)
                if k is None:
                    continue
                for sides_old, sides_new in ((old.bids, market.bids), (old.asks, market.asks)):
                    for s_old, s_new in zip(sides_old, sides_new):
                        s_new.ticks[k], s_new.lots[k] = s_old.ticks[k_old], s_old.lots[k_old]
                        s_new.oid[k], s_new.filled[k] = s_old.oid[k_old], s_old.filled[k_old]
                market.pub_mark[k] = old.pub_mark[k_old]
                market.pub_top[k] = old.pub_top[k_old]
                market.oi[k] = old.oi[k_old]
                market.mark_set[k] = old.mark_set[k_old]
        market.books = [self.engine.market(n).book for n in market.names]
        self.markets[base] = market
        self._block = None
        self._targets_step = -1
        for mk in range(len(self.makers)):
            for sign, sides in ((1, market.bids), (-1, market.asks)):
                s = sides[mk]
                for k in np.flatnonzero(s.oid):
                    self._oid_slot[int(s.oid[k])] = (base, mk, sign, int(k))

    def _settle_expired(self, now: int) -> None:
        """Deliver expired instruments at the 30-minute index TWAP, then book the daily settlement when 08:00 UTC
        was crossed (so an 08:00 expiry is delivered before the other futures' session PnL is booked)."""
        gone = self.schedule.expire(now)
        by_base: dict[str, list[Instrument]] = {}
        for inst in gone:
            by_base.setdefault(inst.base, []).append(inst)
        for base, insts in by_base.items():
            index = f"{base.lower()}_usd"
            expiry = min(i.expiry_ms or now for i in insts)
            try:
                delivery = self.oracle.twap.delivery_price(index, expiry)
            except DeskError:
                delivery = Decimal(repr(self.index_price[base])).quantize(Decimal("1e-8"))
            for inst in insts:
                self.engine.set_state(inst.name, InstrumentState.EXPIRED)
                self.settlement.expire(inst, delivery, now)
                self.instruments_by_name.pop(inst.name, None)
                self._watched.pop(inst.name, None)
                self._margin_epoch.pop(inst.name, None)
            names = [i.name for i in insts]
            price = float(delivery)
            self.settlements.append({"ts": now, "underlying": base, "delivery_price": price, "instruments": names})
            self._pending.append(Alert(ts=now, source="sim", severity="info", code="instrument.settled",
                                       message=f"{len(names)} {base} instruments delivered at {price:.2f}"))
            for fn in self._settlement_listeners:
                fn(base, price, insts)
        self._settle_daily(now)

    def _settle_daily(self, now: int) -> None:
        """Book every futures session PnL at the current marks once ``now`` (epoch ms) passed 08:00 UTC."""
        if now < self._next_daily_ms:
            return
        prices = {}
        for name, inst in self.instruments_by_name.items():
            if not inst.is_option:
                mark, _, _ = self.mark_of(name)
                prices[name] = Decimal(repr(mark)).quantize(inst.tick_size)
        self.settlement.daily(prices, now)
        self.daily_settlements.append(now)
        # One booking per step even if a (very long) step crossed several 08:00s: they would all book at the same
        # instant and prices, and every one after the first books nothing.
        self._next_daily_ms = next_settlement_ms(now)

    def on_settlement(self, listener: Callable[[str, float, list[Instrument]], None]) -> None:
        """Call ``listener(base, delivery_price_usd, instruments)`` when instruments expire."""
        self._settlement_listeners.append(listener)

    def _compute_marks(self) -> None:
        """Forwards of every instrument, and model IVs (SSVI), marks, deltas and vegas of every option in one pass."""
        now = self.clock.now_ms()
        self._marks_epoch += 1
        model = self.model
        spot = np.array([self.index_price.get(b, float(model.s[i])) for i, b in enumerate(model.names)])
        block = self._block
        if block is None:
            block = self._block = _OptionBlock(self.markets, model, self.makers)
        if len(block.fut_expiry):
            fw, perp = block.fut_which, block.fut_perp
            fut_t = np.maximum((block.fut_expiry - now) / MS_PER_YEAR, 0.0)
            fut_t[perp] = 0.0
            fwd_f = spot[fw] * np.exp(block.fut_carry * fut_t) * np.where(perp, 1.0 + self.perp_premium[fw], 1.0)
            for mk, sl in block.fut_slices:
                fs = slice(0, mk.opt_slice.start)
                mk.fwd[fs] = fwd_f[sl]
                mk.mark[fs] = fwd_f[sl]
        if not len(block.strike):
            return
        which, per = block.which_e, block.expiry_of
        t_e = np.maximum((block.expiry_e - now) / MS_PER_YEAR, MIN_YEARS)
        fwd_e = spot[which] * np.exp(block.carry * t_e)
        theta = atm_total_variance_of(model, which, t_e)
        rho = ssvi_rhos(model)[which]
        phi = ssvi_phi(theta, block.wing, block.gamma)
        t, fwd = t_e[per], fwd_e[per]
        w = ssvi_total_variance_phi(np.log(block.strike / fwd), theta[per], rho[per], phi[per])
        iv = np.sqrt(w / t)
        g = inverse_greeks_1d(fwd, block.strike, t, iv, block.call)
        price = block.mark = np.maximum(g.price, 0.0)
        block.vega = g.vega
        for mk, sl in block.slices:
            o = mk.opt_slice
            mk.fwd[o] = fwd[sl]
            mk.iv[o] = iv[sl]
            mk.mark[o] = price[sl]
            mk.delta[o] = g.delta[sl]
            mk.vega[o] = g.vega[sl]

    def _set_engine_marks(self) -> None:
        """Centre the matching engine's price bands (deribit.md §3.7) on the marks just computed: a perpetual's or
        future's whenever its mark moved by a tick; an option's, with eager quoting, when its mark moved by a tick and
        by 1 % of itself (with lazy quoting an option's band is moved when its book is used: :meth:`sync`)."""
        lazy = self._lazy_now()
        for mk in self.markets.values():
            o = mk.opt_slice
            # The few perpetuals and futures in plain floats (cheaper than array operations on a handful).
            n = o.start
            for k, (m, last, tick) in enumerate(zip(mk.mark[:n].tolist(), mk.mark_set[:n].tolist(), mk.tick_list)):
                if not abs(m - last) < tick:  # never set (NaN) counts as due
                    self._set_mark(mk, k)
            if lazy or o.start == len(mk.mark):
                continue
            mark = mk.mark[o]
            gap = np.abs(mark - mk.mark_set[o])
            due = ~(gap < mk.tick[o]) & ~(gap < _OPTION_MARK_SLACK * mark)
            for k in (np.flatnonzero(due) + o.start).tolist():
                self._set_mark(mk, k)

    def _set_mark(self, mk: _Market, k: int) -> None:
        """Give the engine the mark of instrument ``k`` of ``mk`` (price units)."""
        x = float(mk.mark[k])
        if x != x:
            return
        # An option worth nothing still gets a band: the engine's minimum ticks around half a tick.
        self.engine.set_mark(mk.names[k], Decimal(repr(max(x, float(mk.half_tick[k])))))
        mk.mark_set[k] = x

    def _lazy_now(self) -> bool:
        """Lazy quoting: books are brought to the makers' targets only when someone trades or reads them."""
        mode = self.config.quoting
        if mode == "lazy":
            return True
        if mode == "eager":
            return False
        return not self.quotes_wanted and not (self._bus is not None and self._bus.has_listeners("quote"))

    def _targets(self) -> None:
        """Every maker's target quotes (ticks, lots, edge to model value) for every instrument, vectorised over
        makers and over the options of every underlying."""
        model = self.model
        vol_ratio = model.sigma / np.array([model.params[b].theta for b in model.names])
        stress = model.z
        spot = np.array([self.index_price[b] for b in model.names])
        block = self._block
        opt_q: list[tuple[slice, tuple[np.ndarray, ...]]] = []
        if block is not None and len(block.strike):
            which = block.which
            for sl, quotes in block.quotes:
                w = which[sl]
                opt_q.append((sl, quotes.quote(block.mark[sl], block.vega[sl], spot[w], vol_ratio[w], stress[w])))
        for base, mk in self.markets.items():
            i = model.index(base)
            rows = mk._target_rows
            fs = slice(0, mk.opt_slice.start)
            for row, q in zip(rows, mk.fut_quotes.quote(mk.fwd[fs], float(vol_ratio[i]), float(stress[i]))):
                row[:, fs] = q
            if block is not None:
                for mkb, bsl in block.slices:
                    if mkb is not mk:
                        continue
                    for sl, q in opt_q:
                        lo, hi = max(sl.start, bsl.start), min(sl.stop, bsl.stop)
                        if lo >= hi:
                            continue
                        dst = slice(mk.opt_slice.start + lo - bsl.start, mk.opt_slice.start + hi - bsl.start)
                        src = slice(lo - sl.start, hi - sl.start)
                        for row, part in zip(rows, q):
                            row[:, dst] = part[:, src]
            bt, bl, at, al = rows
            theo_ticks = mk.mark / mk.tick
            bstep = np.where(bt > mk.step_above, mk.step_mult, 1)
            astep = np.where(at > mk.step_above, mk.step_mult, 1)
            bedge = theo_ticks - bt
            aedge = at - theo_ticks
            mk.targets = [((bt[m], bl[m], bedge[m], bstep[m]), (at[m], al[m], aedge[m], astep[m]))
                          for m in range(len(self.makers))]
            mk.target_step = self._step_no
        self._targets_step = self._step_no

    def _targets_of(self, mk: _Market, k: int) -> list[tuple[tuple[int, int, float, int], tuple[int, int, float, int]]]:
        """Each maker's ((bid ticks, lots, edge, step), (ask ...)) for instrument ``k`` of ``mk`` (lazy quoting).

        The first few books a step uses get targets of their own (a taker's order, one of ours); past
        ``_SINGLE_SYNCS`` the step computes every instrument's at once (a snapshot reads every quote). Both give the
        same numbers: the same vectorised formulas, on one column or on all.
        """
        if self._targets_step != self._step_no:
            if self._single_step != self._step_no:
                self._single_step, self._single_count = self._step_no, 0
            self._single_count += 1
            if self._single_count <= _SINGLE_SYNCS:
                return self._targets_one(mk, k)
            self._targets()
        return [tuple((int(nt[k]), int(nl[k]), float(edge[k]), int(step[k])) for nt, nl, edge, step in sides)  # type: ignore[misc]
                for sides in mk.targets]

    def _targets_one(self, mk: _Market, k: int) -> list[tuple[tuple[int, int, float, int], tuple[int, int, float, int]]]:
        """:meth:`_targets` of one instrument."""
        model = self.model
        i = model.index(mk.base)
        vol_ratio = (model.sigma / np.array([model.params[b].theta for b in model.names]))[i]
        stress = model.z[i]
        o = mk.opt_slice
        if k >= o.start:
            block = self._block
            assert block is not None
            bsl = next(sl for mkb, sl in block.slices if mkb is mk)
            j = bsl.start + k - o.start
            sl, quotes = next((sl, q) for sl, q in block.quotes if sl.start <= j < sl.stop)
            local = j - sl.start
            q = quotes.quote(block.mark[j:j + 1], block.vega[j:j + 1], self.index_price[mk.base], vol_ratio, stress,
                             part=slice(local, local + 1))
        else:
            q = mk.fut_quotes.quote(mk.fwd[k:k + 1], float(vol_ratio), float(stress), part=slice(k, k + 1))
        theo = float(mk.mark[k] / mk.tick[k])
        above, mult = int(mk.step_above[k]), int(mk.step_mult[k])
        out = []
        for m in range(len(self.makers)):
            bt, bl, at, al = (int(x[m, 0]) for x in q)
            out.append(((bt, bl, theo - bt, mult if bt > above else 1), (at, al, at - theo, mult if at > above else 1)))
        return out

    def _requote(self) -> None:
        """Compute the makers' targets; in eager mode bring every book to them (re-quoting only what must move)."""
        self._step_no += 1
        lazy = self._lazy_now()
        if not lazy:
            self._targets()
        for base, mk in self.markets.items():
            if lazy:
                continue
            ops_away: list[tuple[int, int, int, int, int]] = []
            ops_in: list[tuple[int, int, int, int, int]] = []
            for m, maker in enumerate(self.makers):
                for sign, side, (nt, nl, edge, step) in ((1, mk.bids[m], mk.targets[m][0]), (-1, mk.asks[m], mk.targets[m][1])):
                    cur_t = side.ticks
                    for k in to_requote(sign, cur_t, side.lots, nt, nl, step, maker, edge).tolist():
                        away = (nt[k] - cur_t[k]) * sign < 0 or side.oid[k] == 0 or nl[k] == 0
                        (ops_away if away else ops_in).append((m, sign, k, int(nt[k]), int(nl[k])))
            for m, sign, k, ticks, lots in ops_away + ops_in:
                self._apply_quote(base, mk, m, sign, k, ticks, lots)
            mk.synced[:] = self._step_no
        if lazy:
            # Books where our accounts have resting orders are kept current every step, so an order of ours is
            # hit when the market moves through it, as it would be with eager quoting. Books where we only hold
            # a position are brought up to date when they are used (liquidation orders included).
            for name in dict.fromkeys(self._resting.values()):
                self.sync(name)

    def sync(self, name: str) -> None:
        """Bring one instrument's book to the makers' current targets (lazy quoting) and its price band to the current
        mark; no-op when already there."""
        inst = self.instruments_by_name.get(name)
        if inst is None:
            return
        mk = self.markets[inst.base]
        k = mk.pos[name]
        if not abs(mk.mark[k] - mk.mark_set[k]) < mk.tick[k]:
            self._set_mark(mk, k)  # an order is coming: its band is centred on the current mark to the tick
        if mk.synced[k] == self._step_no:
            return
        mk.synced[k] = self._step_no
        ops_away = []
        ops_in = []
        for m, (maker, (bid_target, ask_target)) in enumerate(zip(self.makers, self._targets_of(mk, k))):
            for sign, side, (new_t, new_l, edge, step) in ((1, mk.bids[m], bid_target), (-1, mk.asks[m], ask_target)):
                cur_t, cur_l = int(side.ticks[k]), int(side.lots[k])
                if needs_requote(sign, cur_t, cur_l, new_t, new_l, step, edge, maker):
                    away = (new_t - cur_t) * sign < 0 or side.oid[k] == 0 or new_l == 0
                    (ops_away if away else ops_in).append((m, sign, new_t, new_l))
        for m, sign, ticks, lots in ops_away + ops_in:
            self._apply_quote(inst.base, mk, m, sign, k, ticks, lots)

    def _apply_quote(self, base: str, mk: _Market, m: int, sign: int, k: int, ticks: int, lots: int) -> None:
        side = (mk.bids if sign > 0 else mk.asks)[m]
        name = mk.names[k]
        oid = int(side.oid[k])
        account = self.makers[m].name
        self._touched.add((base, k))
        if oid and lots == 0:
            self.engine.cancel(account, oid)
            self._clear_slot(oid)
            return
        if oid:
            res = self.engine.amend_lots(account, oid, int(side.filled[k]) + lots, ticks)
            if res and type(res[0]) is ev.Rejected:
                self.engine.cancel(account, oid)
                self._clear_slot(oid)
                return
            done = sum(x.lots for x in res if type(x) is ev.Filled and x.taker_order_id == oid)
            if done >= lots:  # the amend crossed and filled completely: nothing rests any more
                self._clear_slot(oid)
            elif oid in self._oid_slot:
                side.ticks[k] = ticks
                side.lots[k] = lots - done
                side.filled[k] += done
            return
        if lots <= 0 or ticks <= 0:
            return
        res = self.engine.place(account, name, sign, ticks, lots)
        acc = res[0]
        if type(acc) is not ev.Accepted:
            return
        done = sum(x.lots for x in res if type(x) is ev.Filled and x.taker_order_id == acc.order_id)
        if done < lots:
            side.oid[k] = acc.order_id
            side.ticks[k] = ticks
            side.lots[k] = lots - done
            side.filled[k] = done
            self._oid_slot[acc.order_id] = (base, m, sign, k)

    def _take(self, dt_s: float) -> None:
        now = self.clock.now_ms()
        for base, mk in self.markets.items():
            count = self.takers.arrivals(dt_s)
            if not count:
                continue
            if len(mk.opt):
                fwd = mk.fwd[mk.opt]
                lm = np.log(mk.strike / fwd)
                yrs = (mk.expiry - now) / MS_PER_YEAR
            else:
                lm = yrs = np.zeros(0)
            for order in self.takers.orders(base, count, float(self._last_return[self.model.index(base)]), mk.perp,
                                            mk.dated, mk.opt, lm, yrs):
                name = mk.names[order.index]
                self.sync(name)
                market = self.engine.market(name)
                sign = order.side.sign
                best = market.book.best_ask() if sign > 0 else market.book.best_bid()
                if best is None:
                    continue
                ticks = best + sign * self.config.takers.slippage_ticks * market.step_at(best)
                mult = market.step_at(ticks)
                ticks = -(-ticks // mult) * mult if sign > 0 else ticks // mult * mult
                if ticks <= 0:
                    continue
                self.engine.place("takers", name, sign, int(ticks), order.lots, ev.F_IOC)
                self._touched.add((base, order.index))

    def _publish_quotes(self) -> None:
        """Find the instruments whose top of book or mark moved; publish their quotes when anyone listens.

        ``changed`` always lists the names; Quote objects are only built when the bus (or a step listener that
        asked for them) has a ``quote`` listener, since building ~500 of them per step is most of a step's cost in
        backtests where nobody reads them.
        """
        now = self.clock.now_ms()
        pending = self._pending
        build = self.quotes_wanted or (self._bus is not None and self._bus.has_listeners("quote"))
        lazy = not build and self._lazy_now()
        changed = self._changed
        for base, mk in self.markets.items():
            idx = self.index_price.get(base)
            # Marks move every step for every option; a quote goes out when the top of book moved or the mark
            # moved by at least half a tick, so the bus carries what changed and nothing else.
            moved = ~(np.abs(mk.mark - mk.pub_mark) < mk.half_tick)
            touched = [k for b, k in self._touched if b == base] if self._touched else []
            mk.pub_mark[moved] = mk.mark[moved]
            if lazy:
                # Books are not kept at the targets: what changed is the marks (and what was traded or synced).
                if touched:
                    moved[touched] = True
                which = np.flatnonzero(moved)
                if len(which):
                    changed.append(mk.name_array[which])
                    self.unbuilt_quotes += len(which)
                continue
            mark_moved = set(np.flatnonzero(moved).tolist())
            cand = mark_moved.union(touched)
            if not cand:
                continue
            names, books, tops = mk.names, mk.books, mk.pub_top
            if build:
                marks, ivs, fwds, ois = mk.mark.tolist(), mk.iv.tolist(), mk.fwd.tolist(), mk.oi.tolist()
            for k in sorted(cand):
                book = books[k]
                bt, at = book.best_bid(), book.best_ask()
                top = (-1 if bt is None else bt, -1 if at is None else at,
                       0 if bt is None else book.bids[bt][0], 0 if at is None else book.asks[at][0])
                if top == tops[k] and k not in mark_moved:
                    continue
                tops[k] = top
                changed.append((names[k],))
                if not build:
                    self.unbuilt_quotes += 1
                    continue
                tn, td = mk.tick_frac[k]
                ln, ld = mk.lot_frac[k]
                iv = ivs[k]
                pending.append(Quote(ts=now, instrument=names[k], bid=None if bt is None else bt * tn / td,
                                     ask=None if at is None else at * tn / td, bid_size=top[2] * ln / ld,
                                     ask_size=top[3] * ln / ld, mark_price=marks[k], mark_iv=None if iv != iv else iv,
                                     underlying_price=fwds[k], index_price=idx, open_interest=ois[k]))
        self._touched.clear()

    def _emit(self, extra: list[Any]) -> None:
        events = self._pending + extra
        self._pending = []
        changed, self._changed = self._changed, []
        self._last_changed = changed
        if not events and not changed:
            return
        for fn in self._listeners:
            more = fn(events)
            if more:
                events.extend(more)
        bus = self._bus
        if bus is not None:
            for e in events:
                bus.publish(e)
        self.events_published += len(events)

    # -- views ---------------------------------------------------------------------------------------
    @property
    def changed(self) -> list[str]:
        """Instruments whose top of book or mark (by half a tick or more) moved in the current step."""
        return [name for chunk in self._changed for name in chunk]

    @property
    def last_changed(self) -> list[str]:
        """:attr:`changed` of the step last emitted."""
        return [name for chunk in self._last_changed for name in chunk]

    @property
    def market_events(self) -> int:
        """Market events so far: everything published plus the quote changes nobody listened to."""
        return self.events_published + self.unbuilt_quotes

    def fills_sha256(self) -> str:
        """SHA-256 of every trade of the venue in order (ts, trade id, instrument, price, size, side, accounts,
        fees): equal for equal seeds and inputs."""
        return self.fill_digest.hexdigest()

    def quote(self, name: str) -> Quote:
        """The current quote of a listed instrument (top of book, mark, IV, forward), built on demand."""
        inst = self._inst(name)
        self.sync(name)
        mk = self.markets[inst.base]
        k = mk.pos[name]
        book = mk.books[k]
        bt, at = book.best_bid(), book.best_ask()
        tn, td = mk.tick_frac[k]
        ln, ld = mk.lot_frac[k]
        iv = float(mk.iv[k])
        return Quote(ts=self.clock.now_ms(), instrument=name, bid=None if bt is None else bt * tn / td,
                     ask=None if at is None else at * tn / td,
                     bid_size=0.0 if bt is None else book.bids[bt][0] * ln / ld,
                     ask_size=0.0 if at is None else book.asks[at][0] * ln / ld, mark_price=float(mk.mark[k]),
                     mark_iv=None if iv != iv else iv, underlying_price=float(mk.fwd[k]),
                     index_price=self.index_price.get(inst.base), open_interest=float(mk.oi[k]))

    def mark_of(self, name: str) -> tuple[float, float | None, float]:
        """(mark price, mark IV or None, forward USD) of a listed instrument."""
        inst = self._inst(name)
        mk = self.markets[inst.base]
        k = mk.pos[name]
        return float(mk.mark[k]), (float(mk.iv[k]) if inst.is_option else None), float(mk.fwd[k])

    def funding_of(self, account: str, name: str) -> Decimal:
        """Funding ``account`` received (negative: paid) on perpetual ``name`` so far, in its settlement coin."""
        inst = self._inst(name)
        return self.accounts.ledger.ref_total(account, inst.settlement, EntryKind.FUNDING, name)


def _listing_key(inst: Instrument) -> tuple[int, int, float, bool]:
    order = {Kind.PERPETUAL: 0, Kind.FUTURE: 1, Kind.OPTION: 2}[inst.kind]
    return (order, inst.expiry_ms or 0, float(inst.strike or 0), not inst.is_call)


def _replace_order(order: Order, **changes: Any) -> Order:
    from dataclasses import replace

    return replace(order, **changes)


def _replace_request(req: OrderRequest, **changes: Any) -> OrderRequest:
    from dataclasses import replace

    return replace(req, **changes)


def _replace_fill(fill: Fill, **changes: Any) -> Fill:
    from dataclasses import replace

    return replace(fill, **changes)


