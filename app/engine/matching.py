"""The matching engine: price-time priority over every listed instrument, deterministic and journaled.

One :class:`MatchingEngine` sequences all instruments. Every command either raises a typed error for
malformed input (unknown instrument, zero/negative/NaN size, off-tick price, unknown order id) and changes
nothing, or yields a list of events (:mod:`app.engine.events`) stamped with a global, gap-free ``seq``.
Business refusals (halted instrument, a buy above or a sell below the price band around the mark, post-only
would cross, reduce-only with nothing to reduce, over the maximum size, the pre-trade check said no) are a
:class:`Rejected` event. The band binds the aggressive side only, as Deribit's clamps do (deribit.md §3.7): a bid
under its bottom or an offer over its top rests, and no trade happens outside it.

Two entry points for orders:

* :meth:`MatchingEngine.submit` takes an ``app.domain.OrderRequest`` (Decimal price and amount);
* :meth:`MatchingEngine.place` takes integer ticks and lots and ``events.F_*`` flags: the hot path used by
  the simulated market, backtests and the benchmark.

Positions. The engine keeps each account's net position per instrument in lots (signed, updated by every
fill; :meth:`position`, seeded with :meth:`set_position`); reduce-only orders are checked against it.
Reduce-only rule: an incoming reduce-only order is rejected unless it reduces the position and is
clipped to it; after every command the resting reduce-only orders of an account on the reducing side
never total more than the position (newest trimmed first) and those on the other side are cancelled.

Self-trade prevention (per account, :meth:`set_stp`, default :attr:`STP.NONE`): the incoming order's
account mode applies when it meets its own resting order: ``cancel_resting`` cancels the resting order
and matching goes on, ``cancel_incoming`` cancels the rest of the incoming order, ``decrement`` takes the
overlap off both without a trade.

Callbacks (:meth:`on_event`, :meth:`on_fill`) run after a command completed, in ``seq`` order; they must
not call back into the engine (that raises). Fills are given to ``on_fill`` as ``app.domain.Fill`` pairs
(maker first), fees in the settlement currency (coin for inverse).

    from decimal import Decimal as D
    from app.clock import SimClock
    from app.domain import Instrument, OrderRequest, Side
    from app.engine.matching import MatchingEngine

    engine = MatchingEngine(SimClock())
    engine.add_instrument(Instrument.parse("BTC-PERPETUAL"))
    engine.set_mark("BTC-PERPETUAL", D("60000"))
    engine.on_fill(lambda fill: print(fill.account, fill.side, fill.amount, fill.price, fill.fee))
    engine.submit(OrderRequest("BTC-PERPETUAL", Side.SELL, D("100"), D("60000"), account="mm"))
    events = engine.submit(OrderRequest("BTC-PERPETUAL", Side.BUY, D("30"), D("60000.5"), account="alice"))
    # -> [Accepted, Filled (30 at 60000.0, taker fee 0.00000025 BTC), BookChanged (asks at 60000.0: 70 left)]
    engine.best_bid_ask("BTC-PERPETUAL")      # (None, Decimal('60000.0'))
    engine.position("alice", "BTC-PERPETUAL") # Decimal('30')
    engine.cancel("mm", events[1].maker_order_id)

    # The integer hot path (ticks of 0.5 USD, lots of 10 USD), flags from app.engine.events:
    engine.place("bob", "BTC-PERPETUAL", -1, 120_010, 5, F_POST_ONLY)

Journal and recovery (:mod:`app.engine.journal`): ``MatchingEngine(clock, journal=Journal(dir),
snapshot_every=100_000)`` appends every accepted command and writes a snapshot after every 100,000 of
them; ``MatchingEngine.recover(dir, clock)`` restarts after a crash; ``MatchingEngine.replay(dir)``
rebuilds the engine and its whole event stream.

Speed (``benchmarks/matching.py``): :meth:`place` and :meth:`cancel` carry a hot path for plain limit
and market orders (also with a pre-trade check) that packs its journal record inline and builds its
events through tuple's C constructor; every other case goes through the general path, which yields the
same events. The typed events are the largest single cost per command.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import Enum
from heapq import heappop, heappush
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from app.clock import Clock, SimClock, WallClock
from app.domain import (
    Instrument,
    InstrumentState,
    Kind,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from app.engine.book import (
    DEAD_SLACK,
    L_COUNT,
    L_DEAD,
    L_LOTS,
    L_QUEUE,
    O_ACCT,
    O_CID,
    O_FILLED,
    O_FLAGS,
    O_ID,
    O_MKT,
    O_PRICE,
    O_REM,
    O_SIDE,
    O_TS,
    OrderBook,
)
from app.engine.events import (
    F_FOK,
    F_IOC,
    F_MARKET,
    F_POST_ONLY,
    F_REDUCE_ONLY,
    F_REPRICE,
    Accepted,
    Amended,
    BookChanged,
    Cancelled,
    EngineEvent,
    Expired,
    Filled,
    Rejected,
    RejectReason,
    StateChanged,
    to_fills,
)
from app.engine.fees import FeeSchedule
from app.engine.journal import CANCEL_T, OP_CANCEL_T, OP_PLACE_T, OP_TIME, PLACE_T, TIME
from app.errors import DeskError, InvalidInput, NotFound, OrderRejected, UnknownInstrument

if TYPE_CHECKING:
    from app.domain import Fill
    from app.engine.journal import Journal

_SIDE = {1: Side.BUY, -1: Side.SELL}
_SD = (None, Side.BUY, Side.SELL)  # _SD[side] for side +1/-1: a tuple index is cheaper than a dict
_UP = 1
_DOWN = -1
_BUY = Side.BUY
_SELL = Side.SELL
_NO_LIMIT = 1 << 62
_FAST_MAX = (1 << 30) - 1  # the hot path's price window stays in one-digit ints (compared fastest by CPython)
_ALL_FLAGS = F_MARKET | F_IOC | F_FOK | F_POST_ONLY | F_REDUCE_ONLY | F_REPRICE
_OPEN = InstrumentState.OPEN
_pack_place = PLACE_T.pack
_pack_cancel = CANCEL_T.pack
_pack_time = TIME.pack

DEFAULT_BANDS: dict[Kind, Decimal | None] = {
    Kind.PERPETUAL: Decimal("0.015"),  # Deribit BTC-PERPETUAL: mark ± 1.5% (deribit.md §3.7)
    Kind.FUTURE: Decimal("0.015"),
    Kind.OPTION: Decimal("0.5"),  # Deribit publishes no option width; wide enough for a quoted smile
    Kind.SPOT: None,
}
"""Half-width of the price band around the mark, as a fraction of the mark, per instrument kind."""

DEFAULT_BAND_MIN_TICKS = 10
"""The band is never narrower than this many ticks each side (options trading near zero)."""

DEFAULT_MAX_LOTS = 10_000_000
"""Largest order, in lots, unless ``add_instrument(max_amount=...)`` says otherwise."""


class STP(str, Enum):
    """Self-trade prevention mode of an account."""

    NONE = "none"
    CANCEL_RESTING = "cancel_resting"
    CANCEL_INCOMING = "cancel_incoming"
    DECREMENT = "decrement"


_STP_CODE = {STP.NONE: 0, STP.CANCEL_RESTING: 1, STP.CANCEL_INCOMING: 2, STP.DECREMENT: 3}


class Market:
    """Trading state of one instrument inside the engine: its book, state, band, fees and positions."""

    __slots__ = (
        "inst",
        "name",
        "book",
        "state",
        "fees",
        "band",
        "band_min_ticks",
        "band_lo",
        "band_hi",
        "mark",
        "max_lots",
        "steps",
        "pos",
        "ro",
        "fast_lo",
        "fast_hi",
        "jsym",
    )

    def __init__(
        self,
        inst: Instrument,
        state: InstrumentState,
        fees: FeeSchedule,
        band: Decimal | None,
        band_min_ticks: int,
        max_lots: int,
    ) -> None:
        self.inst = inst
        self.name = inst.name
        self.book = OrderBook()
        self.state = state
        self.fees = fees
        self.band = band
        self.band_min_ticks = band_min_ticks
        self.band_lo = 1
        self.band_hi = _NO_LIMIT
        self.mark: Decimal | None = None
        self.max_lots = max_lots
        # Tick steps as (above_ticks, multiple) from the highest boundary down.
        steps = []
        for above, tick in inst.tick_steps:
            steps.append((int(above / inst.tick_size), int(tick / inst.tick_size)))
        self.steps = tuple(sorted(steps, reverse=True))
        self.pos: dict[str, int] = {}
        self.ro: dict[str, dict[int, list[Any]]] = {}  # account -> resting reduce-only orders, oldest first
        self.fast_lo = 1
        self.fast_hi = 0
        self.jsym = 0  # the instrument's symbol id in the engine's journal (0: no journal)
        self.refresh()

    def refresh(self) -> None:
        """Recompute the price range the engine's hot path may take without further checks."""
        self.fast_lo = self.band_lo
        self.fast_hi = min(self.band_hi, _FAST_MAX) if self.state is _OPEN and not self.steps else 0

    def step_at(self, ticks: int) -> int:
        """The price grid (in ticks) that applies at ``ticks``."""
        for above, mult in self.steps:
            if ticks > above:
                return mult
        return 1

    def valid_ticks(self, ticks: int) -> bool:
        """True when ``ticks`` is a positive price on the instrument's grid."""
        if ticks <= 0:
            return False
        for above, mult in self.steps:
            if ticks > above:
                return ticks % mult == 0
        return True

    def set_mark(self, mark: Decimal | None) -> None:
        """Move the mark and the band around it (no band without a mark or a band width)."""
        self.mark = mark
        if mark is None or self.band is None:
            self.band_lo, self.band_hi = 1, _NO_LIMIT
            self.refresh()
            return
        tick = self.inst.tick_size
        half = mark * self.band
        lo = int(((mark - half) / tick).to_integral_value(ROUND_CEILING))
        hi = int(((mark + half) / tick).to_integral_value(ROUND_FLOOR))
        mark_ticks = mark / tick
        lo = min(lo, int((mark_ticks - self.band_min_ticks).to_integral_value(ROUND_CEILING)))
        hi = max(hi, int((mark_ticks + self.band_min_ticks).to_integral_value(ROUND_FLOOR)))
        self.band_lo, self.band_hi = max(lo, 1), hi
        self.refresh()


class OrderView:
    """What a pre-trade check sees of an order placed through the integer API: ``OrderRequest``'s fields."""

    __slots__ = ("_m", "_side", "_ticks", "_lots", "_flags", "account", "client_order_id")

    def __init__(self, m: Market, account: str, side: int, ticks: int, lots: int, flags: int, cid: str | None) -> None:
        self._m = m
        self._side = side
        self._ticks = ticks
        self._lots = lots
        self._flags = flags
        self.account = account
        self.client_order_id = cid

    instrument = property(lambda self: self._m.name, doc="Instrument name.")
    side = property(lambda self: _SIDE[self._side], doc="Buy or sell.")
    amount = property(lambda self: self._m.inst.from_lots(self._lots), doc="Amount in the instrument's unit.")
    price = property(
        lambda self: None if self._flags & F_MARKET else self._m.inst.from_ticks(self._ticks),
        doc="Limit price, None for market orders.",
    )
    type = property(lambda self: OrderType.MARKET if self._flags & F_MARKET else OrderType.LIMIT, doc="Order type.")
    tif = property(
        lambda self: (
            TimeInForce.FOK if self._flags & F_FOK else TimeInForce.IOC if self._flags & F_IOC else TimeInForce.GTC
        ),
        doc="Time in force.",
    )
    post_only = property(lambda self: bool(self._flags & F_POST_ONLY), doc="Post-only flag.")
    reduce_only = property(lambda self: bool(self._flags & F_REDUCE_ONLY), doc="Reduce-only flag.")
    reason = ""

    def to_request(self) -> OrderRequest:
        """The equivalent ``app.domain.OrderRequest``."""
        return OrderRequest(
            instrument=self.instrument,
            side=self.side,
            amount=self.amount,
            price=self.price,
            type=self.type,
            tif=self.tif,
            post_only=self.post_only,
            reduce_only=self.reduce_only,
            client_order_id=self.client_order_id,
            account=self.account,
        )


class EngineContext:
    """What a pre-trade check may read: the engine's positions, open orders, marks and the order's ints."""

    __slots__ = ("_engine", "instrument", "side", "price_ticks", "lots", "account", "now_ms")

    def __init__(self, engine: MatchingEngine) -> None:
        self._engine = engine
        self.instrument: Instrument | None = None
        self.side = 0
        self.price_ticks = 0
        self.lots = 0
        self.account = ""
        self.now_ms = 0

    def position(self, account: str, instrument: str) -> Decimal:
        """Net position of ``account`` in ``instrument`` in amount units (signed)."""
        return self._engine.position(account, instrument)

    def positions(self, account: str) -> dict[str, Decimal]:
        """Every non-zero position of ``account`` (amount units, signed)."""
        return self._engine.positions(account)

    def open_orders(self, account: str) -> list[Order]:
        """Resting orders of ``account``."""
        return self._engine.open_orders(account)

    def mark(self, instrument: str) -> Decimal | None:
        """Last mark set for ``instrument``."""
        return self._engine.mark(instrument)


PreTradeCheck = Callable[[Any, EngineContext], "RejectReason | str | None"]
"""``check(req, ctx) -> RejectReason | code | None``: ``req`` is the ``OrderRequest`` given to
``submit`` (or an :class:`OrderView` with the same attributes for ``place``/``amend``); returning a reason or
raising a ``DeskError`` rejects the order with that code."""


class _ReplayClock:
    __slots__ = ("ms",)

    def __init__(self) -> None:
        self.ms = 0

    def now_ms(self) -> int:
        return self.ms


class _ClockTime:
    """Any :class:`Clock` with an ``ms`` attribute, as the engine reads the time (see :func:`_time_of`)."""

    __slots__ = ("now_ms",)

    def __init__(self, clock: Clock) -> None:
        self.now_ms = clock.now_ms

    @property
    def ms(self) -> int:
        return self.now_ms()


def _time_of(clock: Clock) -> Any:
    """An object whose ``ms`` attribute is the clock's time in epoch ms: the clock itself when it has one
    (a ``SimClock`` keeps it as a plain attribute, so a command reads the time without a call, about 3%
    of the hot path), else a wrapper that calls ``now_ms()``."""
    if type(clock) in (SimClock, WallClock, _ReplayClock):
        return clock
    return _ClockTime(clock)


def _bad(message: str, code: str, **details: Any) -> InvalidInput:
    return InvalidInput(message, code=code, **details)


class MatchingEngine:
    """Price-time priority matching for many instruments, with typed events, hooks and a journal."""

    def __init__(
        self,
        clock: Clock,
        *,
        journal: Journal | None = None,
        pre_trade_check: PreTradeCheck | None = None,
        default_stp: STP = STP.NONE,
        post_only_reprice: bool = False,
        snapshot_every: int | None = None,
    ) -> None:
        self._clock = clock
        self._time = _time_of(clock)  # ``self._time.ms``: read on every command
        self._check = pre_trade_check
        self._ctx = EngineContext(self)
        self._markets: dict[str, Market] = {}
        self._orders: dict[int, list[Any]] = {}
        self._stp: dict[str, int] = {}
        self._default_stp = _STP_CODE[STP(default_stp)]
        self._reprice = bool(post_only_reprice)
        self._seq = 0
        self._next_oid = 1
        self._next_trade = 1
        self._volume = 0  # lots traded since the start, all instruments
        self._event_cbs: list[Callable[[EngineEvent], None]] = []
        self._fill_cbs: list[Callable[[Fill], None]] = []
        self._dispatching = False
        self._replay_check: RejectReason | None = None
        self._replaying = False
        self._hooked = False  # replay or callback running: no hot path
        self._snapshot_every = snapshot_every
        self._indexes: dict[str, str] = {}  # underlying -> index price, for linear option fees
        self._journal: Journal | None = None
        self._jbuf = bytearray()
        self._jsyms: dict[str, int] = {}
        self._jlimit = 0
        self._since_snapshot = 0  # commands journaled since the last snapshot (with snapshot_every)
        self._stp_on = self._default_stp != 0  # some account may have self-trade prevention
        self._slow_after = False
        if journal is not None:
            self.attach_journal(journal)

    # ================================================================================ configuration
    def attach_journal(self, journal: Journal, *, resume: bool = False) -> None:
        """Append every accepted command from now on to ``journal`` (starting with the engine settings).

        A journal that already holds commands belongs to the engine :meth:`recover` rebuilds from it
        (``resume=True``); attaching it to a fresh engine would mix two histories and raises."""
        if journal.existing and not resume:
            raise _bad(
                f"the journal at {journal.directory} already holds commands: use MatchingEngine.recover()",
                "journal.not_empty",
                path=str(journal.directory),
            )
        self._journal = journal
        # The hot path packs place/cancel records into the journal's pending frame itself.
        self._jbuf = journal.buf
        self._jsyms = journal.symbols
        self._jlimit = journal.limit
        for m in self._markets.values():
            m.jsym = journal.symbol(m.name)
        self._refresh_after()
        journal.admin(
            self._time.ms,
            "config",
            {"default_stp": self._default_stp, "reprice": self._reprice},
        )

    @property
    def journal(self) -> Journal | None:
        """The attached journal, if any."""
        return self._journal

    @property
    def seq(self) -> int:
        """Sequence number of the last event emitted."""
        return self._seq

    @property
    def now_ms(self) -> int:
        """Current engine time (epoch ms)."""
        return self._time.ms

    def set_pre_trade_check(self, check: PreTradeCheck | None) -> None:
        """Install (or remove) the pre-trade check called before every new order and amend."""
        self._check = check
        self._refresh_hooked()

    def on_event(self, callback: Callable[[EngineEvent], None]) -> None:
        """Call ``callback(event)`` for every event, in seq order, after each command."""
        self._event_cbs.append(callback)
        self._refresh_after()

    def on_fill(self, callback: Callable[[Fill], None]) -> None:
        """Call ``callback(fill)`` with the maker then the taker ``app.domain.Fill`` of every trade."""
        self._fill_cbs.append(callback)
        self._refresh_after()

    def add_instrument(
        self,
        inst: Instrument,
        state: InstrumentState = InstrumentState.OPEN,
        *,
        band: Decimal | None | str = "default",
        band_min_ticks: int = DEFAULT_BAND_MIN_TICKS,
        max_amount: Decimal | None = None,
        maker_fee: Decimal | None = None,
        taker_fee: Decimal | None = None,
    ) -> None:
        """List an instrument. ``band``: half-width as a fraction of the mark (None: no band);
        ``max_amount`` in amount units; fee rates default to the instrument's own."""
        if not isinstance(inst, Instrument):
            raise _bad(f"add_instrument needs an Instrument, got {type(inst).__name__}", "input.type")
        if inst.name in self._markets:
            raise _bad(f"{inst.name} is already listed", "instrument.duplicate", instrument=inst.name)
        state = InstrumentState(state)
        if isinstance(band, str):
            if band != "default":
                raise _bad(f"band {band!r} must be a Decimal, None or 'default'", "input.band")
            band = DEFAULT_BANDS.get(inst.kind)
        if band is not None and (not isinstance(band, Decimal) or not band.is_finite() or band <= 0):
            raise _bad(f"band {band!r} must be a positive Decimal fraction", "input.band")
        if not isinstance(band_min_ticks, int) or band_min_ticks < 0:
            raise _bad(f"band_min_ticks {band_min_ticks!r} must be a non-negative int", "input.band")
        max_lots = DEFAULT_MAX_LOTS if max_amount is None else inst.to_lots(max_amount)
        fees = FeeSchedule.for_instrument(inst, maker_fee, taker_fee)
        if self._journal is not None:
            self._journal.admin(
                self._time.ms,
                "add_instrument",
                {
                    "inst": instrument_to_dict(inst),
                    "state": state.value,
                    "band": None if band is None else str(band),
                    "band_min_ticks": band_min_ticks,
                    "max_lots": max_lots,
                    "maker_fee": str(fees.maker_rate),
                    "taker_fee": str(fees.taker_rate),
                },
            )
        self._add_market(inst, state, fees, band, band_min_ticks, max_lots)

    def _add_market(
        self, inst: Instrument, state: InstrumentState, fees: FeeSchedule, band: Decimal | None, bmt: int, max_lots: int
    ) -> Market:
        m = Market(inst, state, fees, band, bmt, max_lots)
        self._markets[inst.name] = m
        if self._journal is not None:
            m.jsym = self._journal.symbol(inst.name)
        return m

    def instruments(self) -> list[Instrument]:
        """Listed instruments, in listing order."""
        return [m.inst for m in self._markets.values()]

    def instrument(self, name: str) -> Instrument:
        """A listed instrument by name; raises UnknownInstrument."""
        return self._market(name).inst

    def state(self, name: str) -> InstrumentState:
        """Trading state of an instrument."""
        return self._market(name).state

    def _market(self, name: str) -> Market:
        m = self._markets.get(name)
        if m is None:
            raise UnknownInstrument(f"{name!r} is not listed on this engine", name=name)
        return m

    def set_mark(self, name: str, price: Decimal) -> None:
        """Set the mark price (price units) that the band of ``name`` is centred on."""
        m = self._market(name)
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            raise _bad(f"mark {price!r} for {name} must be a positive finite Decimal", "input.mark", instrument=name)
        if self._journal is not None:
            self._journal.admin(self._time.ms, "set_mark", {"name": name, "price": str(price)})
        m.set_mark(price)

    def mark(self, name: str) -> Decimal | None:
        """Last mark of ``name`` (None if never set)."""
        return self._market(name).mark

    def band(self, name: str) -> tuple[Decimal, Decimal] | None:
        """The (low, high) prices an order of ``name`` may have now, or None without a band."""
        m = self._market(name)
        if m.band_hi == _NO_LIMIT:
            return None
        return m.inst.from_ticks(m.band_lo), m.inst.from_ticks(m.band_hi)

    def set_index(self, underlying: str, price: Decimal) -> None:
        """Set the index price (USD) that linear option fees of ``underlying`` (e.g. ``xrp_usdc``) are a share of."""
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            raise _bad(f"index {price!r} must be a positive finite Decimal", "input.index")
        if self._journal is not None:
            self._journal.admin(self._time.ms, "set_index", {"underlying": underlying, "price": str(price)})
        self._apply_index(underlying, price)

    def set_stp(self, account: str, mode: STP) -> None:
        """Choose the self-trade prevention mode of ``account``."""
        mode = STP(mode)
        if self._journal is not None:
            self._journal.admin(self._time.ms, "set_stp", {"account": account, "mode": mode.value})
        self._stp[account] = _STP_CODE[mode]
        self._refresh_stp()

    def _refresh_stp(self) -> None:
        self._stp_on = bool(self._default_stp) or any(self._stp.values())

    def stp(self, account: str) -> STP:
        """Self-trade prevention mode of ``account``."""
        code = self._stp.get(account, self._default_stp)
        return next(k for k, v in _STP_CODE.items() if v == code)

    def position(self, account: str, instrument: str) -> Decimal:
        """Net position of ``account`` in ``instrument``, amount units (signed)."""
        m = self._market(instrument)
        return m.inst.from_lots(m.pos.get(account, 0))

    def position_lots(self, account: str, instrument: str) -> int:
        """Net position of ``account`` in ``instrument``, lots (signed)."""
        return self._market(instrument).pos.get(account, 0)

    def positions(self, account: str) -> dict[str, Decimal]:
        """Every non-zero position of ``account``: instrument -> signed amount."""
        return {m.name: m.inst.from_lots(m.pos[account]) for m in self._markets.values() if m.pos.get(account)}

    def set_position(self, account: str, instrument: str, amount: Decimal) -> list[EngineEvent]:
        """Seed or correct an account's position (after a restart, settlement or liquidation transfer).

        Resting reduce-only orders are trimmed to the new position; returns those events."""
        m = self._market(instrument)
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount % m.inst.min_amount != 0:
            raise _bad(f"position {amount!r} must be a multiple of {m.inst.min_amount}", "input.position")
        lots = int(amount / m.inst.min_amount)
        ts = self._time.ms
        self._guard()
        if self._journal is not None:
            self._journal.admin(ts, "set_position", {"account": account, "name": instrument, "lots": lots})
        return self._set_position(m, account, lots, ts)

    def _set_position(self, m: Market, account: str, lots: int, ts: int) -> list[EngineEvent]:
        if lots:
            m.pos[account] = lots
        else:
            m.pos.pop(account, None)
        out: list[Any] = []
        if account in m.ro:
            self._seq = self._enforce_ro(m, account, ts, out, self._seq)
        self._after(out)
        return out

    # ================================================================================ order entry
    def submit(self, req: OrderRequest) -> list[EngineEvent]:
        """Place an order given as an ``OrderRequest`` (Decimal price/amount); see :meth:`place`."""
        if not isinstance(req, OrderRequest):
            raise _bad(f"submit needs an OrderRequest, got {type(req).__name__}", "input.type")
        m = self._markets.get(req.instrument)
        if m is None:
            raise UnknownInstrument(f"{req.instrument!r} is not listed on this engine", name=req.instrument)
        inst = m.inst
        lots = inst.to_lots(req.amount)
        flags = 0
        if req.type is OrderType.MARKET:
            flags = F_MARKET
            ticks = 0
        else:
            price = req.price
            if price is None or not price.is_finite() or price <= 0:
                raise _bad(f"price {price} must be a positive finite number", "order.rejected.price", field="price")
            ticks = inst.to_ticks(price)
        if req.tif is TimeInForce.IOC:
            flags |= F_IOC
        elif req.tif is TimeInForce.FOK:
            flags |= F_FOK
        if req.post_only:
            flags |= F_POST_ONLY
            if self._reprice:
                flags |= F_REPRICE
        if req.reduce_only:
            flags |= F_REDUCE_ONLY
        side = 1 if req.side is Side.BUY else -1
        return self.place(req.account, m.name, side, ticks, lots, flags, req.client_order_id, req)

    def place(
        self,
        account: str,
        instrument: str,
        side: int,
        price_ticks: int,
        lots: int,
        flags: int = 0,
        client_order_id: str | None = None,
        _req: Any = None,
    ) -> list[EngineEvent]:
        """Place an order in engine units: ``side`` +1 buy / -1 sell, price in ticks (ignored for
        ``F_MARKET``), size in lots, ``flags`` from ``events.F_*``. Returns the events of the command."""
        m = self._markets.get(instrument)
        if m is None:
            raise UnknownInstrument(f"{instrument!r} is not listed on this engine", name=instrument)
        # The hot path: a GTC limit order inside the band of an open instrument without tick steps
        # (``fast_hi`` is 0 otherwise), or a market order on such an instrument; no replay, no callback
        # running (a pre-trade check is run here too). Anything else, including every malformed input,
        # takes the general path (which produces the same events for what both take). Sides are told by
        # identity with the interned +1/-1 (so True or 1.0 go to the general path, which refuses them).
        if (
            (side is not _UP and side is not _DOWN)
            or type(lots) is not int
            or not 0 < lots <= m.max_lots
            or type(account) is not str
            or not account
        ):
            return self._place_general(m, account, side, price_ticks, lots, flags, client_order_id, _req)
        if flags:
            if flags != F_MARKET or not m.fast_hi or self._hooked:
                return self._place_general(m, account, side, price_ticks, lots, flags, client_order_id, _req)
            ticks = 0
            limit = m.band_hi if side is _UP else m.band_lo
        elif type(price_ticks) is int and m.fast_lo <= price_ticks <= m.fast_hi and not self._hooked:
            ticks = limit = price_ticks
        else:
            return self._place_general(m, account, side, price_ticks, lots, flags, client_order_id, _req)
        ts = self._time.ms
        if self._check is not None:
            reason = self._run_check(m, account, side, ticks, lots, flags, client_order_id, _req, ts)
            if reason is not None:
                return self._reject(m, account, side, ticks, lots, flags, client_order_id, reason, ts, reason)
        if self._journal is not None:
            jr = self._journal
            # Write-ahead, inline: Journal.place's common case (no client id, no check answer) without a method
            # call on the most frequent command; the record must stay byte-identical to what Journal.place writes.
            if client_order_id is None:
                jbuf = self._jbuf
                # Same time: most often the very object stored last (identity first, then value).
                if ts is not jr.ts and ts != jr.ts:
                    jbuf += _pack_time(OP_TIME, ts)
                    jr.ts = ts
                a = self._jsyms.get(account)
                if a is None:
                    a = jr.symbol(account)
                jbuf += _pack_place(OP_PLACE_T, m.jsym, a, side, ticks, lots, flags)
                if len(jbuf) >= self._jlimit:
                    jr.write_frame()
            else:
                jr.place(ts, instrument, account, side, ticks, lots, flags, client_order_id, None)
        oid = self._next_oid
        self._next_oid = oid + 1
        seq = self._seq + 1
        inst = m.inst
        book = m.book
        # Does it cross the best opposite price? (Stale heap tops are dropped on the way.) If not, it
        # rests at once at the back of its level.
        if side > 0:
            acc = Accepted((seq, ts, inst, oid, account, _BUY, ticks, lots, flags, client_order_id))
            # The heap's top bounds the best ask from below (stale prices included): above the limit,
            # nothing can cross; at or below it, the live best decides.
            heap = book.ask_heap
            if heap and heap[0] <= limit:
                top = book.best_ask()
                if top is not None and top <= limit:
                    return self._take(m, acc, oid, account, side, ticks, lots, flags, client_order_id, ts, limit, seq)
            if flags:
                return self._take(m, acc, oid, account, side, ticks, lots, flags, client_order_id, ts, limit, seq)
            levels = book.bids
            level = levels.get(ticks)
            if level is None:
                level = levels[ticks] = [lots, 1, None, 0]
                o = [oid, account, 1, ticks, lots, 0, 0, client_order_id, ts, m, level]
                level[L_QUEUE] = deque((o,))
                heappush(book.bid_heap, -ticks)
                count = 1
            else:
                o = [oid, account, 1, ticks, lots, 0, 0, client_order_id, ts, m, level]
                lots = level[L_LOTS] = level[L_LOTS] + lots
                count = level[L_COUNT] = level[L_COUNT] + 1
                level[L_QUEUE].append(o)
            out = [acc, BookChanged((seq + 1, ts, inst, _BUY, ticks, lots, count))]
        else:
            acc = Accepted((seq, ts, inst, oid, account, _SELL, ticks, lots, flags, client_order_id))
            heap = book.bid_heap
            if heap and -heap[0] >= limit:
                top = book.best_bid()
                if top is not None and top >= limit:
                    return self._take(m, acc, oid, account, side, ticks, lots, flags, client_order_id, ts, limit, seq)
            if flags:
                return self._take(m, acc, oid, account, side, ticks, lots, flags, client_order_id, ts, limit, seq)
            levels = book.asks
            level = levels.get(ticks)
            if level is None:
                level = levels[ticks] = [lots, 1, None, 0]
                o = [oid, account, -1, ticks, lots, 0, 0, client_order_id, ts, m, level]
                level[L_QUEUE] = deque((o,))
                heappush(book.ask_heap, ticks)
                count = 1
            else:
                o = [oid, account, -1, ticks, lots, 0, 0, client_order_id, ts, m, level]
                lots = level[L_LOTS] = level[L_LOTS] + lots
                count = level[L_COUNT] = level[L_COUNT] + 1
                level[L_QUEUE].append(o)
            out = [acc, BookChanged((seq + 1, ts, inst, _SELL, ticks, lots, count))]
        self._orders[oid] = o
        if m.ro:
            seq = self._enforce_all_ro(m, ts, out, seq + 1)
            self._seq = seq
        else:
            self._seq = seq + 1
        if self._slow_after:
            self._after(out)
        return out

    def _take(
        self,
        m: Market,
        acc: Accepted,
        oid: int,
        account: str,
        side: int,
        ticks: int,
        lots: int,
        flags: int,
        cid: str | None,
        ts: int,
        limit: int,
        seq: int,
    ) -> list[EngineEvent]:
        """The hot path of an accepted order that crosses (or a market order): match it, then rest or
        cancel what is left, as :meth:`_execute` would; ``acc`` is its Accepted event."""
        out: list[Any] = [acc]
        o = [oid, account, side, ticks, lots, flags, 0, cid, ts, m, None]
        if self._stp_on:
            seq = self._execute(m, o, ts, out, seq)
        else:
            seq = self._match(m, o, limit, ts, out, seq, 0)
            rem = o[O_REM]
            if rem:
                seq += 1
                if flags:
                    o[O_REM] = 0
                    out.append(Cancelled((seq, ts, m.inst, oid, account, rem, 0, "market")))
                else:
                    level = m.book.add(o)
                    self._orders[oid] = o
                    out.append(BookChanged((seq, ts, m.inst, _SD[side], ticks, level[L_LOTS], level[L_COUNT])))
        if m.ro:
            seq = self._enforce_all_ro(m, ts, out, seq)
        self._seq = seq
        if self._slow_after:
            self._after(out)
        return out

    def _place_general(
        self, m: Market, account: str, side: int, ticks: int, lots: int, flags: int, cid: str | None, req: Any
    ) -> list[EngineEvent]:
        """Every order the hot path does not take: validation, states, bands, flags, checks, replay."""
        self._validate(m, account, side, ticks, lots, flags)
        if flags & F_MARKET:
            ticks = 0
        if self._dispatching:
            self._guard()
        ts = self._time.ms
        code, msg, ticks, lots = self._screen(m, account, side, ticks, lots, flags)
        check_reason: RejectReason | None = None
        if code is None:
            if self._replaying:
                check_reason = self._replay_check
            elif self._check is not None:
                check_reason = self._run_check(m, account, side, ticks, lots, flags, cid, req, ts)
            if check_reason is not None:
                code, msg = check_reason
        if code is not None:
            return self._reject(m, account, side, ticks, lots, flags, cid, RejectReason(code, msg), ts, check_reason)
        jr = self._journal
        if jr is not None:
            jr.place(ts, m.name, account, side, ticks, lots, flags, cid, None)
        oid = self._next_oid
        self._next_oid = oid + 1
        seq = self._seq + 1
        out = [Accepted((seq, ts, m.inst, oid, account, _SD[side], ticks, lots, flags, cid))]
        o = [oid, account, side, ticks, lots, flags, 0, cid, ts, m, None]
        seq = self._execute(m, o, ts, out, seq)
        if m.ro:
            seq = self._enforce_all_ro(m, ts, out, seq)
        self._seq = seq
        self._after(out)
        return out

    def _reject(
        self,
        m: Market,
        account: str,
        side: int,
        ticks: int,
        lots: int,
        flags: int,
        cid: str | None,
        reason: RejectReason,
        ts: int,
        check_reason: RejectReason | None,
    ) -> list[EngineEvent]:
        """Journal a refused order with the pre-trade check's answer (``check_reason``: None when the
        engine refused it before the check ran) and emit its Rejected event with ``reason``."""
        jr = self._journal
        if jr is not None:
            jr.place(ts, m.name, account, side, ticks, lots, flags, cid, check_reason)
        self._seq += 1
        out: list[Any] = [Rejected((self._seq, ts, m.name, account, reason[0], reason[1], 0, cid))]
        self._after(out)
        return out

    def _validate(self, m: Market, account: Any, side: Any, ticks: Any, lots: Any, flags: Any) -> None:
        """Raise the typed error that explains why an order is malformed (nothing changes)."""
        if type(lots) is not int or lots <= 0:
            raise _bad(f"size {lots!r} lots must be a positive int", "order.rejected.amount", field="amount")
        if type(side) is not int or (side != 1 and side != -1):
            raise _bad(f"side {side!r} must be +1 (buy) or -1 (sell)", "input.side", field="side")
        if type(flags) is not int or flags & ~_ALL_FLAGS:
            raise _bad(f"flags {flags!r} has unknown bits", "input.flags", field="flags")
        if flags & F_IOC and flags & F_FOK:
            raise _bad("an order cannot be both IOC and FOK", "input.flags", field="tif")
        if flags & F_POST_ONLY and flags & (F_MARKET | F_IOC | F_FOK):
            raise _bad("post-only orders must be GTC limit orders", "order.rejected.post_only", field="post_only")
        if not flags & F_MARKET and (type(ticks) is not int or not m.valid_ticks(ticks)):
            grid = m.step_at(ticks) if type(ticks) is int else 1
            raise _bad(
                f"price {ticks!r} ticks is not a positive multiple of the grid ({grid} ticks) of {m.name}",
                "order.rejected.tick",
                field="price",
            )
        if type(account) is not str or not account:
            raise _bad(f"account {account!r} must be a non-empty string", "input.account", field="account")

    def _screen(
        self, m: Market, account: str, side: int, ticks: int, lots: int, flags: int
    ) -> tuple[str | None, str, int, int]:
        """Business checks of a new order: (reject code or None, message, ticks, lots) after reduce-only
        clipping and post-only repricing."""
        inst = m.inst
        if m.state is not _OPEN:
            return "order.rejected.state", f"{m.name} is {m.state.value}: no new orders", ticks, lots
        if lots > m.max_lots:
            msg = f"size {inst.from_lots(lots)} is above the maximum {inst.from_lots(m.max_lots)} of {m.name}"
            return "order.rejected.max_size", msg, ticks, lots
        if not flags & F_MARKET and (ticks > m.band_hi if side > 0 else ticks < m.band_lo):
            msg = (
                f"{_SIDE[side].value} at {inst.from_ticks(ticks)} is outside the band [{inst.from_ticks(m.band_lo)}, "
                f"{inst.from_ticks(m.band_hi)}] around mark {m.mark} of {m.name}"
            )
            return "order.rejected.band", msg, ticks, lots
        if flags & F_REDUCE_ONLY:
            pos = m.pos.get(account, 0)
            if pos * side >= 0:
                msg = f"reduce-only {_SIDE[side].value} would not reduce position {inst.from_lots(pos)} in {m.name}"
                return "order.rejected.reduce_only", msg, ticks, lots
            if lots > abs(pos):
                lots = abs(pos)
        if flags & F_POST_ONLY:
            best = m.book.best_ask() if side > 0 else m.book.best_bid()
            if best is not None and (ticks >= best if side > 0 else ticks <= best):
                if not flags & F_REPRICE:
                    msg = (
                        f"post-only {_SIDE[side].value} at {inst.from_ticks(ticks)} would take liquidity at "
                        f"{inst.from_ticks(best)} in {m.name}"
                    )
                    return "order.rejected.post_only", msg, ticks, lots
                ticks = self._reprice_away(m, side, best)
                if ticks <= 0:
                    msg = f"post-only {_SIDE[side].value} cannot be repriced one tick away from {inst.from_ticks(best)}"
                    return "order.rejected.post_only", msg, ticks, lots
        return None, "", ticks, lots

    def _reprice_away(self, m: Market, side: int, best: int) -> int:
        """One valid tick passive of the opposite best price."""
        if side > 0:
            t = best - 1
            step = m.step_at(t)
            return t - t % step
        t = best + 1
        step = m.step_at(t)
        return t + (-t) % step

    def _run_check(
        self, m: Market, account: str, side: int, ticks: int, lots: int, flags: int, cid: Any, req: Any, ts: int
    ) -> RejectReason | None:
        ctx = self._ctx
        ctx.instrument = m.inst
        ctx.side = side
        ctx.price_ticks = ticks
        ctx.lots = lots
        ctx.account = account
        ctx.now_ms = ts
        if req is None or lots != m.inst.to_lots(req.amount) or (ticks and ticks != m.inst.to_ticks(req.price)):
            req = OrderView(m, account, side, ticks, lots, flags, cid)
        assert self._check is not None
        try:
            result = self._check(req, ctx)
        except DeskError as exc:
            return RejectReason(exc.code, exc.message)
        if result is None:
            return None
        if isinstance(result, str):
            return RejectReason(result, f"pre-trade check refused the order on {m.name}")
        return RejectReason(str(result[0]), str(result[1]))

    def _execute(self, m: Market, o: list[Any], ts: int, out: list[Any], seq: int) -> int:
        """Match an accepted order, then rest or cancel the remainder; returns the last seq used."""
        side = o[O_SIDE]
        flags = o[O_FLAGS]
        book = m.book
        if flags & F_MARKET:
            limit = m.band_hi if side > 0 else m.band_lo
        else:
            limit = o[O_PRICE]
        # Does it cross? (Best opposite price, dropping stale heap tops.)
        best = book.best_ask() if side > 0 else book.best_bid()
        crosses = best is not None and (best <= limit if side > 0 else best >= limit)
        if flags & F_FOK and not (crosses and self._fok_fillable(m, o, limit)):
            seq += 1
            out.append(Cancelled((seq, ts, m.inst, o[O_ID], o[O_ACCT], o[O_REM], 0, "fok")))
            return seq
        if crosses:
            stp = self._stp.get(o[O_ACCT], self._default_stp) if self._stp_on else 0
            seq = self._match(m, o, limit, ts, out, seq, stp)
        rem = o[O_REM]
        if rem <= 0:
            return seq
        if flags & (F_MARKET | F_IOC | F_FOK) or o[O_TS] < 0:
            # O_TS < 0: self-trade prevention cancelled the rest of the incoming order.
            reason = "stp" if o[O_TS] < 0 else ("market" if flags & F_MARKET else "ioc")
            o[O_REM] = 0
            seq += 1
            out.append(Cancelled((seq, ts, m.inst, o[O_ID], o[O_ACCT], rem, 0, reason)))
            return seq
        level = book.add(o)
        oid = o[O_ID]
        self._orders[oid] = o
        acct = o[O_ACCT]
        if flags & F_REDUCE_ONLY:
            ro = m.ro.get(acct)
            if ro is None:
                ro = m.ro[acct] = {}
            ro[oid] = o
        seq += 1
        out.append(BookChanged((seq, ts, m.inst, _SIDE[side], o[O_PRICE], level[L_LOTS], level[L_COUNT])))
        return seq

    def _fok_fillable(self, m: Market, o: list[Any], limit: int) -> bool:
        """True when the whole order can trade now, as matching would walk the book (STP included)."""
        side = o[O_SIDE]
        need = o[O_REM]
        acct = o[O_ACCT]
        stp = self._stp.get(acct, self._default_stp)
        if side > 0:
            prices = sorted(p for p in m.book.asks if p <= limit)
            levels = m.book.asks
        else:
            prices = sorted((p for p in m.book.bids if p >= limit), reverse=True)
            levels = m.book.bids
        for p in prices:
            level = levels[p]
            if not stp:
                need -= level[L_LOTS]
            else:
                for r in level[L_QUEUE]:
                    rem = r[O_REM]
                    if not rem:
                        continue
                    if r[O_ACCT] == acct:
                        if stp != 1:  # cancel-incoming or decrement: the order cannot fill completely past it
                            return False
                        continue
                    need -= rem
                    if need <= 0:
                        return True
            if need <= 0:
                return True
        return need <= 0

    def _match(self, m: Market, o: list[Any], limit: int, ts: int, out: list[Any], seq: int, stp: int) -> int:
        """Trade ``o`` against the opposite side up to ``limit`` ticks under self-trade mode ``stp`` of its
        account (0: none); returns the last seq used."""
        side = o[O_SIDE]
        book = m.book
        if side > 0:
            levels = book.asks
            heap = book.ask_heap
            opp = _SELL
            tside = _BUY
        else:
            levels = book.bids
            heap = book.bid_heap
            opp = _BUY
            tside = _SELL
        klim = side * limit
        q = o[O_REM]
        oid = o[O_ID]
        acct = o[O_ACCT]
        cid = o[O_CID]
        inst = m.inst
        coefficients = m.fees.coefficients
        pos = m.pos
        orders = self._orders
        tid = self._next_trade
        q0 = q
        dec = 0  # lots self-trade prevention took off the incoming order without a trade
        ap = out.append
        while heap:
            k = heap[0]
            if k > klim:
                break
            p = side * k
            level = levels.get(p)
            if level is None:
                heappop(heap)
                continue
            queue = level[L_QUEUE]
            # The level's totals live in locals while its queue is walked.
            before = lots = level[L_LOTS]
            count = level[L_COUNT]
            # Fees: coefficients once per level, integer rounding per fill (half up).
            fm, ft, fden = coefficients(p)
            fm *= 2
            ft *= 2
            fd2 = 2 * fden
            while queue:
                r = queue[0]
                rr = r[O_REM]
                if not rr:
                    queue.popleft()
                    level[L_DEAD] -= 1
                    continue
                racct = r[O_ACCT]
                if stp and racct == acct:
                    if stp == 2:  # cancel incoming: stop here, the rest is cancelled
                        o[O_TS] = -1
                        break
                    if stp == 1:
                        take = rr
                    else:
                        take = rr if rr < q else q
                    # Cancel-resting takes the whole resting order; decrement takes the overlap off both.
                    r[O_REM] = rr - take
                    lots -= take
                    if rr == take:
                        queue.popleft()
                        count -= 1
                        self._forget(r, orders, m)
                    seq += 1
                    ap(Cancelled((seq, ts, inst, r[O_ID], racct, take, rr - take, "stp")))
                    if stp == 3:
                        q -= take
                        dec += take
                        seq += 1
                        ap(Cancelled((seq, ts, inst, oid, acct, take, q, "stp")))
                        if not q:
                            break
                    continue
                rid, _, _, _, _, rflags, rfilled, rcid, _, _, _ = r
                take = rr if rr < q else q
                r[O_FILLED] = rfilled + take
                rr -= take
                q -= take
                lots -= take
                r[O_REM] = rr
                if not rr:
                    queue.popleft()
                    count -= 1
                    del orders[rid]
                    if rflags & F_REDUCE_ONLY:
                        ro = m.ro[racct]
                        del ro[rid]
                        if not ro:
                            del m.ro[racct]
                pos[racct] = pos.get(racct, 0) - side * take
                seq += 1
                ap(
                    Filled(
                        (
                            seq,
                            ts,
                            inst,
                            tid,
                            p,
                            take,
                            tside,
                            rid,
                            racct,
                            oid,
                            acct,
                            (fm * take + fden) // fd2,
                            (ft * take + fden) // fd2,
                            rr,
                            q,
                            rcid,
                            cid,
                        ),
                    )
                )
                tid += 1
                if not q:
                    break
            level[L_LOTS] = lots
            level[L_COUNT] = count
            if lots != before:
                seq += 1
                ap(BookChanged((seq, ts, inst, opp, p, lots, count)))
            if not count:
                del levels[p]
                heappop(heap)
            if not q or o[O_TS] < 0:
                break
        self._next_trade = tid
        filled = q0 - q - dec
        if filled:
            self._volume += filled
            o[O_FILLED] += filled
            pos[acct] = pos.get(acct, 0) + side * filled
        o[O_REM] = q
        return seq

    def _forget(self, r: list[Any], orders: dict[int, Any], m: Market) -> None:
        """Drop a dead order from the engine's indexes (not from its queue)."""
        rid = r[O_ID]
        del orders[rid]
        acct = r[O_ACCT]
        if r[O_FLAGS] & F_REDUCE_ONLY:
            ro = m.ro[acct]
            del ro[rid]
            if not ro:
                del m.ro[acct]

    def _enforce_all_ro(self, m: Market, ts: int, out: list[Any], seq: int) -> int:
        for acct in sorted(m.ro):
            seq = self._enforce_ro(m, acct, ts, out, seq)
        return seq

    def _enforce_ro(self, m: Market, acct: str, ts: int, out: list[Any], seq: int) -> int:
        """Trim ``acct``'s resting reduce-only orders in ``m`` to its position (oldest keep priority)."""
        ro = m.ro.get(acct)
        if not ro:
            return seq
        pos = m.pos.get(acct, 0)
        allowed = abs(pos)
        reducing = -1 if pos > 0 else 1
        book = m.book
        for o in list(ro.values()):
            rem = o[O_REM]
            if pos and o[O_SIDE] == reducing and rem <= allowed:
                allowed -= rem
                continue
            if pos and o[O_SIDE] == reducing and allowed > 0:
                cut = rem - allowed
                level = book.reduce(o, cut)
                allowed = 0
                seq += 1
                out.append(Cancelled((seq, ts, m.inst, o[O_ID], acct, cut, o[O_REM], "reduce_only")))
            else:
                level = book.remove(o)
                self._forget(o, self._orders, m)
                seq += 1
                out.append(Cancelled((seq, ts, m.inst, o[O_ID], acct, rem, 0, "reduce_only")))
            seq += 1
            out.append(BookChanged((seq, ts, m.inst, _SIDE[o[O_SIDE]], o[O_PRICE], level[L_LOTS], level[L_COUNT])))
        return seq

    # ================================================================================ cancel / amend
    def _own(self, account: str, order_id: int | str) -> list[Any]:
        try:
            oid = int(order_id)
        except (TypeError, ValueError):
            raise NotFound(f"order id {order_id!r} is not an engine order id", code="order.unknown") from None
        o = self._orders.get(oid)
        if o is None or o[O_ACCT] != account:
            raise NotFound(
                f"order {order_id} of {account!r} is not open (unknown, filled or cancelled)",
                code="order.unknown",
                order_id=str(order_id),
            )
        return o

    def cancel(self, account: str, order_id: int | str) -> list[EngineEvent]:
        """Cancel an open order; raises NotFound for an unknown, filled or cancelled order."""
        orders = self._orders
        o = orders.pop(order_id, None)  # type: ignore[call-overload]
        if o is None or o[O_ACCT] != account or self._dispatching:
            if o is not None:
                orders[o[O_ID]] = o  # not this caller's to cancel (or a callback is running): put it back
            self._guard()
            o = self._own(account, order_id)
            del orders[o[O_ID]]
        # Inline of OrderBook.remove plus the index clean-up: the second most frequent command.
        oid, _, side, price, rem, flags, _, _, _, m, level = o
        ts = self._time.ms
        if self._journal is not None:  # Journal.cancel inline, as in place()
            jr = self._journal
            jbuf = self._jbuf
            if ts is not jr.ts and ts != jr.ts:
                jbuf += _pack_time(OP_TIME, ts)
                jr.ts = ts
            jbuf += _pack_cancel(OP_CANCEL_T, oid)
            if len(jbuf) >= self._jlimit:
                jr.write_frame()
        lots = level[L_LOTS] - rem
        level[L_LOTS] = lots
        o[O_REM] = 0
        count = level[L_COUNT] - 1
        level[L_COUNT] = count
        if count:
            dead = level[L_DEAD] + 1
            if dead > count + DEAD_SLACK:
                level[L_QUEUE] = deque([x for x in level[L_QUEUE] if x[O_REM]])
                dead = 0
            level[L_DEAD] = dead
        else:
            del (m.book.bids if side > 0 else m.book.asks)[price]
        if flags and flags & F_REDUCE_ONLY:  # most resting orders have no flags
            ro = m.ro[account]
            del ro[oid]
            if not ro:
                del m.ro[account]
        seq = self._seq + 2
        self._seq = seq
        inst = m.inst
        out: list[Any] = [
            Cancelled((seq - 1, ts, inst, oid, account, rem, 0, "user")),
            BookChanged((seq, ts, inst, _SD[side], price, lots, count)),
        ]
        if self._slow_after:
            self._after(out)
        return out

    def _remove(self, o: list[Any], ts: int, out: list[Any], seq: int, reason: str) -> int:
        m = o[O_MKT]
        rem = o[O_REM]
        level = m.book.remove(o)
        self._forget(o, self._orders, m)
        seq += 1
        out.append(Cancelled((seq, ts, m.inst, o[O_ID], o[O_ACCT], rem, 0, reason)))
        seq += 1
        out.append(BookChanged((seq, ts, m.inst, _SIDE[o[O_SIDE]], o[O_PRICE], level[L_LOTS], level[L_COUNT])))
        return seq

    def cancel_all(self, account: str, instrument: str | None = None) -> list[EngineEvent]:
        """Cancel every open order of ``account`` (in one instrument if given), oldest first."""
        self._guard()
        if instrument is not None:
            self._market(instrument)
        mine = self._account_orders(account)
        victims = [o for oid, o in sorted(mine.items()) if instrument is None or o[O_MKT].name == instrument]
        if not victims:
            return []
        ts = self._time.ms
        if self._journal is not None:
            self._journal.admin(ts, "cancel_all", {"account": account, "name": instrument})
        return self._cancel_orders(victims, ts)

    def _cancel_orders(self, victims: list[list[Any]], ts: int) -> list[EngineEvent]:
        out: list[Any] = []
        seq = self._seq
        for o in victims:
            seq = self._remove(o, ts, out, seq, "mass")
        self._seq = seq
        self._after(out)
        return out

    def amend(
        self, account: str, order_id: int | str, amount: Decimal | None = None, price: Decimal | None = None
    ) -> list[EngineEvent]:
        """Change an open order's total ``amount`` (incl. what is filled) and/or ``price``.

        Size down at the same price keeps time priority; anything else re-queues it at the back (and it
        may trade if the new price crosses)."""
        o = self._own(account, order_id)
        inst = o[O_MKT].inst
        lots = None if amount is None else inst.to_lots(amount)
        ticks = None
        if price is not None:
            if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
                raise _bad(f"price {price!r} must be a positive finite Decimal", "order.rejected.price", field="price")
            ticks = inst.to_ticks(price)
        return self.amend_lots(account, o[O_ID], lots, ticks)

    def amend_lots(
        self, account: str, order_id: int | str, lots: int | None = None, price_ticks: int | None = None
    ) -> list[EngineEvent]:
        """:meth:`amend` in engine units: ``lots`` is the new total size (incl. filled), price in ticks."""
        self._guard()
        o = self._own(account, order_id)
        m: Market = o[O_MKT]
        if lots is not None and (type(lots) is not int or lots <= 0):
            raise _bad(f"size {lots!r} lots must be a positive int", "order.rejected.amount", field="amount")
        if price_ticks is not None and (type(price_ticks) is not int or not m.valid_ticks(price_ticks)):
            raise _bad(f"price {price_ticks!r} ticks is off the grid of {m.name}", "order.rejected.tick", field="price")
        if lots is None and price_ticks is None:
            raise _bad("amend needs a new amount or a new price", "input.amend")
        ts = self._time.ms
        new_ticks = o[O_PRICE] if price_ticks is None else price_ticks
        new_rem = o[O_REM] if lots is None else lots - o[O_FILLED]
        side = o[O_SIDE]
        code = None
        if m.state is not _OPEN:
            code, msg = "order.rejected.state", f"{m.name} is {m.state.value}: orders cannot be amended"
        elif new_rem <= 0:
            code = "order.rejected.amount"
            msg = f"new amount {m.inst.from_lots(lots or 0)} is not above the filled {m.inst.from_lots(o[O_FILLED])}"
        elif new_rem > m.max_lots:
            code = "order.rejected.max_size"
            msg = f"size {m.inst.from_lots(new_rem)} is above the maximum {m.inst.from_lots(m.max_lots)} of {m.name}"
        elif new_ticks != o[O_PRICE] and (new_ticks > m.band_hi if side > 0 else new_ticks < m.band_lo):
            code = "order.rejected.band"
            msg = (
                f"{_SIDE[side].value} at {m.inst.from_ticks(new_ticks)} is outside the band [{m.inst.from_ticks(m.band_lo)}, "
                f"{m.inst.from_ticks(m.band_hi)}] around mark {m.mark} of {m.name}"
            )
        elif o[O_FLAGS] & F_POST_ONLY:
            best = m.book.best_ask() if side > 0 else m.book.best_bid()
            if best is not None and (new_ticks >= best if side > 0 else new_ticks <= best):
                if o[O_FLAGS] & F_REPRICE:
                    new_ticks = self._reprice_away(m, side, best)
                    if new_ticks <= 0:
                        code, msg = "order.rejected.post_only", "post-only amend cannot be repriced"
                else:
                    code = "order.rejected.post_only"
                    msg = f"post-only amend to {m.inst.from_ticks(new_ticks)} would take liquidity at {m.inst.from_ticks(best)}"
        keeps = new_ticks == o[O_PRICE] and new_rem <= o[O_REM]
        check_reason: RejectReason | None = None
        if code is None and not keeps:
            if self._replaying:
                check_reason = self._replay_check
            elif self._check is not None:
                check_reason = self._run_check(m, account, side, new_ticks, new_rem, o[O_FLAGS], o[O_CID], None, ts)
            if check_reason is not None:
                code, msg = check_reason
        if self._journal is not None:
            self._journal.amend(ts, account, o[O_ID], lots, price_ticks, check_reason)
        out: list[Any] = []
        seq = self._seq
        if code is not None:
            seq += 1
            out.append(Rejected((seq, ts, m.name, account, code, msg, o[O_ID], o[O_CID])))
        elif keeps:
            cut = o[O_REM] - new_rem
            seq += 1
            out.append(Amended((seq, ts, m.inst, o[O_ID], account, new_ticks, new_rem, True)))
            if cut:
                level = m.book.reduce(o, cut)
                seq += 1
                out.append(BookChanged((seq, ts, m.inst, _SIDE[side], new_ticks, level[L_LOTS], level[L_COUNT])))
        else:
            level = m.book.remove(o)
            self._forget(o, self._orders, m)
            seq += 1
            out.append(Amended((seq, ts, m.inst, o[O_ID], account, new_ticks, new_rem, False)))
            seq += 1
            out.append(BookChanged((seq, ts, m.inst, _SIDE[side], o[O_PRICE], level[L_LOTS], level[L_COUNT])))
            fresh = [o[O_ID], account, side, new_ticks, new_rem, o[O_FLAGS], o[O_FILLED], o[O_CID], ts, m, None]
            seq = self._execute(m, fresh, ts, out, seq)
            if m.ro or fresh[O_FLAGS] & F_REDUCE_ONLY:
                seq = self._enforce_all_ro(m, ts, out, seq)
        self._seq = seq
        self._after(out)
        return out

    # ================================================================================ instrument states
    def set_state(self, name: str, state: InstrumentState) -> list[EngineEvent]:
        """Move an instrument to open, halted, expired or settled; expiring removes its resting orders.

        Expired and settled are final (expired may only become settled)."""
        self._guard()
        m = self._market(name)
        state = InstrumentState(state)
        old = m.state
        if old in (InstrumentState.EXPIRED, InstrumentState.SETTLED) and not (
            old is InstrumentState.EXPIRED and state is InstrumentState.SETTLED
        ):
            raise _bad(f"{name} is {old.value}: it cannot become {state.value}", "instrument.state", instrument=name)
        ts = self._time.ms
        if self._journal is not None:
            self._journal.admin(ts, "set_state", {"name": name, "state": state.value})
        return self._set_state(m, state, ts)

    def _set_state(self, m: Market, state: InstrumentState, ts: int) -> list[EngineEvent]:
        out: list[Any] = []
        seq = self._seq
        if state is not m.state:
            m.state = state
            m.refresh()
            seq += 1
            out.append(StateChanged((seq, ts, m.inst, state.value)))
            if state in (InstrumentState.EXPIRED, InstrumentState.SETTLED):
                live = m.book.clear()
                for o in sorted(live, key=lambda r: r[O_ID]):
                    rem = o[O_REM]
                    o[O_REM] = 0
                    self._forget(o, self._orders, m)
                    seq += 1
                    out.append(Expired((seq, ts, m.inst, o[O_ID], o[O_ACCT], rem)))
                levels: dict[tuple[int, int], None] = {}
                for o in live:
                    levels[(o[O_SIDE], o[O_PRICE])] = None
                for side, price in sorted(levels, key=lambda k: (-k[0], -k[1] if k[0] > 0 else k[1])):
                    seq += 1
                    out.append(BookChanged((seq, ts, m.inst, _SIDE[side], price, 0, 0)))
        self._seq = seq
        self._after(out)
        return out

    def expire(self, name: str) -> list[EngineEvent]:
        """Expire an instrument: every resting order gets an Expired event; no new orders."""
        return self.set_state(name, InstrumentState.EXPIRED)

    # ================================================================================ reading
    def book(self, name: str) -> OrderBook:
        """The order book of ``name`` (read it, do not change it)."""
        return self._market(name).book

    def market(self, name: str) -> Market:
        """The engine's record of ``name`` (book, state, band, fees, positions)."""
        return self._market(name)

    def depth(
        self, name: str, n: int = 10
    ) -> tuple[list[tuple[Decimal, Decimal, int]], list[tuple[Decimal, Decimal, int]]]:
        """Top ``n`` levels per side as ``(price, amount, order_count)`` in instrument units, best first."""
        m = self._market(name)
        bids, asks = m.book.depth(n)
        f, g = m.inst.from_ticks, m.inst.from_lots
        return [(f(p), g(q), c) for p, q, c in bids], [(f(p), g(q), c) for p, q, c in asks]

    def best_bid_ask(self, name: str) -> tuple[Decimal | None, Decimal | None]:
        """Best bid and best ask prices (None for an empty side)."""
        m = self._market(name)
        bid, ask = m.book.best_bid(), m.book.best_ask()
        return (
            None if bid is None else m.inst.from_ticks(bid),
            None if ask is None else m.inst.from_ticks(ask),
        )

    def open_orders(self, account: str, instrument: str | None = None) -> list[Order]:
        """Resting orders of ``account`` as ``app.domain.Order``, oldest id first."""
        mine = self._account_orders(account)
        return [self._to_order(o) for _, o in sorted(mine.items()) if instrument is None or o[O_MKT].name == instrument]

    def order(self, order_id: int | str) -> Order | None:
        """An open order by id, or None when it is not resting."""
        try:
            o = self._orders.get(int(order_id))
        except (TypeError, ValueError):
            return None
        return None if o is None else self._to_order(o)

    def _to_order(self, o: list[Any]) -> Order:
        m: Market = o[O_MKT]
        inst = m.inst
        flags = o[O_FLAGS]
        req = OrderRequest(
            instrument=m.name,
            side=_SIDE[o[O_SIDE]],
            amount=inst.from_lots(o[O_REM] + o[O_FILLED]),
            price=inst.from_ticks(o[O_PRICE]),
            type=OrderType.LIMIT,
            tif=TimeInForce.GTC,
            post_only=bool(flags & F_POST_ONLY),
            reduce_only=bool(flags & F_REDUCE_ONLY),
            client_order_id=o[O_CID],
            account=o[O_ACCT],
        )
        return Order(
            order_id=str(o[O_ID]), request=req, status=OrderStatus.OPEN, filled=inst.from_lots(o[O_FILLED]), ts=o[O_TS]
        )

    def _account_orders(self, account: str) -> dict[int, list[Any]]:
        """Resting orders of one account by id (a scan: cancel-all and queries are rare, the hot path
        keeps no per-account index)."""
        return {oid: o for oid, o in self._orders.items() if o[O_ACCT] == account}

    def stats(self) -> dict[str, int]:
        """Counters since the start: trades, lots traded (all instruments), resting orders, last seq."""
        return {
            "trades": self._next_trade - 1,
            "volume_lots": self._volume,
            "resting_orders": len(self._orders),
            "seq": self._seq,
        }

    def order_count(self) -> int:
        """Number of resting orders over all instruments."""
        return len(self._orders)

    # ================================================================================ events
    def _guard(self) -> None:
        if self._dispatching:
            raise OrderRejected(
                "engine callbacks must not call back into the engine; queue the command and run it after",
                code="engine.reentrant",
            )

    def _refresh_hooked(self) -> None:
        self._hooked = self._replaying or self._dispatching

    def _refresh_after(self) -> None:
        self._slow_after = bool(self._event_cbs or self._fill_cbs) or (
            self._journal is not None and bool(self._snapshot_every)
        )

    def _after(self, out: list[Any]) -> None:
        """Deliver a command's events to the callbacks, then take a snapshot if one is due."""
        if out and (self._event_cbs or self._fill_cbs):
            self._emit(out)
        if self._journal is not None and self._snapshot_every:
            self._since_snapshot += 1
            if self._since_snapshot >= self._snapshot_every:
                self.snapshot()

    def _emit(self, out: list[Any]) -> None:
        self._dispatching = True
        self._hooked = True
        try:
            for cb in self._event_cbs:
                for ev in out:
                    cb(ev)
            if self._fill_cbs:
                for ev in out:
                    if type(ev) is Filled:
                        maker, taker = to_fills(ev)
                        for cb in self._fill_cbs:
                            cb(maker)
                            cb(taker)
        finally:
            self._dispatching = False
            self._refresh_hooked()

    # ================================================================================ snapshot / replay
    def snapshot_state(self) -> dict[str, Any]:
        """The engine's whole state as JSON-friendly data (books in priority order, positions, counters)."""
        markets = []
        for m in self._markets.values():
            markets.append(
                {
                    "inst": instrument_to_dict(m.inst),
                    "state": m.state.value,
                    "band": None if m.band is None else str(m.band),
                    "band_min_ticks": m.band_min_ticks,
                    "max_lots": m.max_lots,
                    "maker_fee": str(m.fees.maker_rate),
                    "taker_fee": str(m.fees.taker_rate),
                    "mark": None if m.mark is None else str(m.mark),
                    "pos": dict(sorted(m.pos.items())),
                    "orders": [
                        [
                            o[O_ID],
                            o[O_ACCT],
                            o[O_SIDE],
                            o[O_PRICE],
                            o[O_REM],
                            o[O_FLAGS],
                            o[O_FILLED],
                            o[O_CID],
                            o[O_TS],
                        ]
                        for o in m.book.iter_orders()
                    ],
                    "ro": {a: list(d) for a, d in m.ro.items()},
                }
            )
        return {
            "version": 1,
            "seq": self._seq,
            "next_oid": self._next_oid,
            "next_trade": self._next_trade,
            "volume": self._volume,
            "default_stp": self._default_stp,
            "reprice": self._reprice,
            "stp": dict(sorted(self._stp.items())),
            "index": dict(sorted(self._indexes.items())),
            "markets": markets,
        }

    def snapshot(self) -> None:
        """Write a snapshot of the whole state to the journal (recovery starts from the latest one)."""
        if self._journal is None:
            raise _bad("snapshot needs an attached journal", "journal.none")
        self._journal.write_snapshot(self.snapshot_state())
        self._since_snapshot = 0

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`snapshot_state` into this (empty) engine."""
        if self._markets or self._orders:
            raise _bad("load_state needs an empty engine", "journal.state")
        self._seq = state["seq"]
        self._next_oid = state["next_oid"]
        self._next_trade = state["next_trade"]
        self._volume = state.get("volume", 0)
        self._default_stp = state["default_stp"]
        self._reprice = state["reprice"]
        self._stp = dict(state["stp"])
        self._refresh_stp()
        for rec in state["markets"]:
            inst = instrument_from_dict(rec["inst"])
            fees = FeeSchedule.for_instrument(inst, Decimal(rec["maker_fee"]), Decimal(rec["taker_fee"]))
            band = None if rec["band"] is None else Decimal(rec["band"])
            m = Market(inst, InstrumentState(rec["state"]), fees, band, rec["band_min_ticks"], rec["max_lots"])
            self._markets[inst.name] = m
            m.set_mark(None if rec["mark"] is None else Decimal(rec["mark"]))
            m.pos = dict(rec["pos"])
            for oid, acct, side, price, rem, flags, filled, cid, ts in rec["orders"]:
                o = [oid, acct, side, price, rem, flags, filled, cid, ts, m, None]
                m.book.add(o)
                self._orders[oid] = o
            for acct, oids in rec["ro"].items():
                m.ro[acct] = {oid: self._orders[oid] for oid in oids}
        for underlying, price in state.get("index", {}).items():
            self._apply_index(underlying, Decimal(price))

    def _apply_index(self, underlying: str, price: Decimal) -> None:
        self._indexes[underlying] = str(price)
        for m in self._markets.values():
            if m.inst.underlying == underlying:
                m.fees.set_index(price)

    def apply_record(self, rec: tuple[Any, ...]) -> list[EngineEvent]:
        """Re-run one journal command (from :meth:`Journal.load`) with its recorded time and check outcome."""
        kind, ts = rec[0], rec[1]
        clock = self._clock
        if not isinstance(clock, _ReplayClock):
            raise _bad("apply_record needs an engine made by MatchingEngine.replaying()", "journal.state")
        clock.ms = ts
        self._replaying = True
        self._hooked = True
        try:
            if kind == "place":
                _, _, name, account, side, ticks, lots, flags, cid, check = rec
                self._replay_check = None if check is None else RejectReason(*check)
                return self.place(account, name, side, ticks, lots, flags, cid)
            if kind == "cancel":
                _, _, account, oid = rec
                if account is None:  # a compact record: the owner cancelled it
                    o = self._orders.get(oid)
                    account = "" if o is None else o[O_ACCT]
                return self.cancel(account, oid)
            if kind == "amend":
                _, _, account, oid, lots, ticks, check = rec
                self._replay_check = None if check is None else RejectReason(*check)
                return self.amend_lots(account, oid, lots, ticks)
            if kind == "admin":
                return self._apply_admin(rec[2], rec[3], ts)
            raise _bad(f"unknown journal record {kind!r}", "journal.record")
        finally:
            self._replaying = False
            self._replay_check = None
            self._refresh_hooked()

    def _apply_admin(self, op: str, args: dict[str, Any], ts: int) -> list[EngineEvent]:
        if op == "add_instrument":
            inst = instrument_from_dict(args["inst"])
            fees = FeeSchedule.for_instrument(inst, Decimal(args["maker_fee"]), Decimal(args["taker_fee"]))
            band = None if args["band"] is None else Decimal(args["band"])
            self._add_market(inst, InstrumentState(args["state"]), fees, band, args["band_min_ticks"], args["max_lots"])
            return []
        if op == "config":
            self._default_stp = int(args["default_stp"])
            self._reprice = bool(args["reprice"])
            self._refresh_stp()
            return []
        if op == "set_mark":
            self._market(args["name"]).set_mark(Decimal(args["price"]))
            return []
        if op == "set_index":
            self._apply_index(args["underlying"], Decimal(args["price"]))
            return []
        if op == "set_stp":
            self._stp[args["account"]] = _STP_CODE[STP(args["mode"])]
            self._refresh_stp()
            return []
        if op == "set_position":
            return self._set_position(self._market(args["name"]), args["account"], args["lots"], ts)
        if op == "set_state":
            return self._set_state(self._market(args["name"]), InstrumentState(args["state"]), ts)
        if op == "cancel_all":
            name = args["name"]
            mine = self._account_orders(args["account"])
            victims = [o for _, o in sorted(mine.items()) if name is None or o[O_MKT].name == name]
            return self._cancel_orders(victims, ts)
        raise _bad(f"unknown journal admin command {op!r}", "journal.record")

    @classmethod
    def replaying(cls, **kwargs: Any) -> MatchingEngine:
        """An empty engine whose clock follows the journal's recorded times (for :meth:`apply_record`)."""
        return cls(_ReplayClock(), **kwargs)  # type: ignore[arg-type]

    def use_clock(self, clock: Clock) -> None:
        """Swap the clock (after a replay, hand the engine back to live time)."""
        self._clock = clock
        self._time = _time_of(clock)

    @classmethod
    def replay(cls, directory: str | Path, *, from_snapshot: bool = False) -> tuple[MatchingEngine, list[EngineEvent]]:
        """Rebuild an engine from a journal directory; returns it (clock frozen at the last record) and the
        events the replayed commands produced (from the first command, or after the newest snapshot)."""
        from app.engine.journal import Journal

        state, records = Journal.load(directory, from_snapshot=from_snapshot)
        engine = cls.replaying()
        if state is not None:
            engine.load_state(state)
        events: list[EngineEvent] = []
        for rec in records:
            events.extend(engine.apply_record(rec))
        return engine, events

    @classmethod
    def recover(
        cls,
        directory: str | Path,
        clock: Clock,
        *,
        pre_trade_check: PreTradeCheck | None = None,
        sync: Literal["buffered", "flush", "fsync"] = "buffered",
        snapshot_every: int | None = None,
    ) -> MatchingEngine:
        """Restart after a crash: drop a torn last record, load the newest snapshot, replay the commands
        after it, and keep journaling into the same directory."""
        from app.engine.journal import Journal

        journal = Journal(directory, sync=sync)
        try:
            engine, _ = cls.replay(directory, from_snapshot=True)
        except BaseException:
            journal.close()
            raise
        engine.use_clock(clock)
        engine.set_pre_trade_check(pre_trade_check)
        engine._snapshot_every = snapshot_every
        engine.attach_journal(journal, resume=True)
        return engine


def instrument_to_dict(inst: Instrument) -> dict[str, Any]:
    """An instrument's full specification as JSON-friendly data (Decimals as strings)."""
    return {
        "kind": inst.kind.value,
        "base": inst.base,
        "quote": inst.quote,
        "settlement": inst.settlement,
        "inverse": inst.inverse,
        "tick_size": str(inst.tick_size),
        "min_amount": str(inst.min_amount),
        "contract_size": str(inst.contract_size),
        "tick_steps": [[str(a), str(t)] for a, t in inst.tick_steps],
        "expiry_ms": inst.expiry_ms,
        "strike": None if inst.strike is None else str(inst.strike),
        "option_type": None if inst.option_type is None else inst.option_type.value,
        "maker_fee": str(inst.maker_fee),
        "taker_fee": str(inst.taker_fee),
        "linear_tag": inst.linear_tag,
    }


def instrument_from_dict(d: dict[str, Any]) -> Instrument:
    """Inverse of :func:`instrument_to_dict`."""
    from app.domain import OptionType, utc_from_ms

    return Instrument(
        kind=Kind(d["kind"]),
        base=d["base"],
        quote=d["quote"],
        settlement=d["settlement"],
        inverse=d["inverse"],
        tick_size=Decimal(d["tick_size"]),
        min_amount=Decimal(d["min_amount"]),
        contract_size=Decimal(d["contract_size"]),
        tick_steps=tuple((Decimal(a), Decimal(t)) for a, t in d["tick_steps"]),
        expiry=None if d["expiry_ms"] is None else utc_from_ms(d["expiry_ms"]),
        strike=None if d["strike"] is None else Decimal(d["strike"]),
        option_type=None if d["option_type"] is None else OptionType(d["option_type"]),
        maker_fee=Decimal(d["maker_fee"]),
        taker_fee=Decimal(d["taker_fee"]),
        linear_tag=d["linear_tag"],
    )
