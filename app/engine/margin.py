"""MarginEngine: margin health, what-if and the pre-trade check of the embedded venue's accounts.

The engine sits next to the matching engine. It learns open orders and trades from the matching engine's
events (:meth:`MarginEngine.on_engine_event`), index prices from the oracle (:meth:`set_index`) and marks
from the surface and books (:meth:`set_mark`). It answers:

- :meth:`report` / :meth:`reports`: Deribit's account figures with IM, MM, usage and distance to liquidation;
- :meth:`what_if`: the same for hypothetical trades, changing no state;
- :meth:`pre_trade_check`: the hook the matching engine calls for every order; incremental: the cached
  per-instrument margins (SM) or risk vectors (PM) are adjusted by the order alone;
- :meth:`distance_to_liquidation`: spot moves (and, under PM, the spot x vol region) at which MM reaches the
  margin balance, solved on the same model with every position revalued.

Amounts are floats in the settlement currency (coin for inverse BTC/ETH, USDC for linear); the ledger
underneath stays exact.

Wiring (what the Desk does)::

    margin = MarginEngine(clock=clock, bus=bus)
    margin.wire(matching_engine, bus)      # pre-trade check, engine events (orders, fills), oracle index
    oracle = Oracle(clock, bus)            # publishes IndexPrice (stale flag) that margin follows
    liquidator = Liquidator(margin, matching_engine, bus=bus)
    settlement = Settlement(margin.accounts)
    margin.open_account("main", "sm", {"BTC": Decimal("10"), "ETH": Decimal("100")})
    # every tick: oracle.tick(); margin.set_marks({...}); margin.refresh(); liquidator.scan()
    # 08:00 UTC: settlement.daily(prices, ts); settlement.expire(inst, oracle.twap.delivery_price(index, expiry), ts)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

import numpy as np
from scipy.optimize import brentq

from app.bus import Bus
from app.clock import Clock
from app.domain import Instrument, Kind, MarginAlert, MarginReport, OrderRequest, OrderType, Side
from app.engine.accounts import AccountBook, PositionState
from app.engine.fees import OPTION_FEE_CAP
from app.engine.margin_params import ALERT_LEVELS, DEFAULT_PM, MARGIN_PARAMS, PMParams
from app.engine.margin_pm import (
    MarkInput,
    PairRisk,
    PMPortfolio,
    PMResult,
    UnitRisk,
    delta_shock,
    pair_margin,
    price_moves,
    roll_shock,
    unit_risk,
    vector_key,
)
from app.engine.margin_sm import option_buy_premium, position_margin, sm_params_for
from app.errors import InsufficientMargin, InvalidInput, StaleData, UnknownInstrument
from app.pricing import black76_price

Model = Literal["sm", "pm"]
REGION_VOL_SHIFTS = (-0.5, -0.25, 0.0, 0.25, 0.5, 1.0)
"""Relative IV shifts of the PM spot x vol liquidation region."""
_OPTION_FEE_CAP = float(OPTION_FEE_CAP)
_DOWN_GRID = -np.array([0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
_UP_GRID = np.array([0.0025, 0.00625, 0.0125, 0.01875, 0.025, 0.0375, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0])


@dataclass(slots=True)
class OpenOrder:
    """A resting order as margin sees it: signed remaining amount (instrument units) and limit price."""

    instrument: Instrument
    side: Side
    remaining: Decimal
    price: Decimal | None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One full margin evaluation of an account and currency (settlement-currency floats)."""

    balance: float
    equity: float
    margin_balance: float
    initial_margin: float
    maintenance_margin: float
    options_value: float
    futures_session_upl: float
    futures_session_rpl: float
    open_orders_margin: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _InstInfo:
    """Per-instrument constants the pre-trade check needs, precomputed (Decimal -> float, names)."""

    inst: Instrument
    name: str
    currency: str
    index: str
    futures_inverse: bool
    is_option: bool
    contract_size: float
    taker_fee: float


@dataclass(slots=True)
class _PMSide:
    """Raw risk of one pair for positions (+ one side's orders): vectors, deltas, and their shock terms."""

    std: np.ndarray
    ext: np.ndarray
    deltas: dict[int | None, float]
    years: dict[int | None, float]
    roll: float  # coin
    net: float  # coin
    rmm: float  # currency units


@dataclass(slots=True)
class _Cache:
    """Incremental state of one (account, currency) at one marks version."""

    key: tuple[int, int]
    margin_balance: float
    im: float
    mm: float
    # SM: per instrument (position IM, open-orders IM)
    pos_im: dict[str, float] = field(default_factory=dict)
    oo_im: dict[str, float] = field(default_factory=dict)
    # PM: per pair: raw vectors for pos / pos+buys / pos+sells and deltas by expiry
    pm_pairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    rmm_pos: float = 0.0
    rmm_side: dict[int, float] = field(default_factory=dict)


class MarginEngine:
    """Standard and portfolio margin of accounts held in an :class:`AccountBook`."""

    def __init__(
        self,
        accounts: AccountBook | None = None,
        *,
        clock: Clock,
        bus: Bus | None = None,
        pm_params: PMParams = DEFAULT_PM,
        alert_levels: Sequence[float] = ALERT_LEVELS,
        index_max_age_ms: int | None = None,
    ) -> None:
        self.accounts = accounts or AccountBook()
        self.clock = clock
        self.bus = bus
        self.pm_params = pm_params
        self.alert_levels = tuple(sorted(alert_levels))
        self.index_max_age_ms = index_max_age_ms
        self.instruments: dict[str, Instrument] = {}
        self.index: dict[str, float] = {}
        self.index_ts: dict[str, int] = {}
        self.stale_index: set[str] = set()
        self.marks: dict[str, MarkInput] = {}
        self.marks_version = 0
        self.orders: dict[str, dict[int | str, OpenOrder]] = {}
        self._by_inst: dict[tuple[str, str], dict[int | str, OpenOrder]] = {}
        self.mmp_margin: dict[tuple[str, str], float] = {}
        self._acct_version: dict[tuple[str, str], int] = {}
        self._cache: dict[tuple[str, str], _Cache] = {}
        self._units: dict[str, tuple[int, UnitRisk]] = {}  # pair -> (marks_version, unit risk of its instruments)
        self._unit_row: dict[str, tuple[str, int]] = {}
        self._alert: dict[tuple[str, str], float] = {}
        self.liquidating: str | None = None  # set by the Liquidator while it sends an account's orders
        self._ccy_indices: dict[str, set[str]] = {}
        self._fast: dict[str, _InstInfo] = {}
        self.accounts.on_change(self._touch)

    # ------------------------------------------------------------------------------------------------
    # market data
    # ------------------------------------------------------------------------------------------------
    def add_instrument(self, inst: Instrument) -> None:
        """Make ``inst`` known (orders and positions on unknown instruments are rejected)."""
        name = inst.name
        self.instruments[name] = inst
        self._ccy_indices.setdefault(inst.settlement, set()).add(inst.underlying)
        futures_inverse = inst.kind in (Kind.FUTURE, Kind.PERPETUAL) and inst.inverse
        self._fast[name] = _InstInfo(
            inst, name, inst.settlement, inst.underlying, futures_inverse, inst.kind is Kind.OPTION,
            float(inst.contract_size), float(inst.taker_fee),
        )

    def instrument(self, name: str) -> Instrument:
        """A known instrument; raise UnknownInstrument."""
        inst = self.instruments.get(name)
        if inst is None:
            raise UnknownInstrument(f"{name!r} is not listed on this venue", name=name)
        return inst

    def set_index(self, index: str, price: float, *, ts: int | None = None, stale: bool = False) -> None:
        """Set an index price (USD); NaN or non-positive raises InvalidInput and changes nothing."""
        _positive_float(f"index {index}", price)
        self.index[index] = float(price)
        self.index_ts[index] = self.clock.now_ms() if ts is None else int(ts)
        if stale:
            self.stale_index.add(index)
        else:
            self.stale_index.discard(index)
        self.marks_version += 1

    def mark_index_stale(self, index: str, stale: bool = True) -> None:
        """Flag an index stale (the oracle lost its quorum): checks and liquidations pause on it."""
        if stale:
            self.stale_index.add(index)
        else:
            self.stale_index.discard(index)

    def on_index_event(self, event: Any) -> None:
        """Bus handler for app.domain.IndexPrice of the aggregated oracle index (``source`` empty)."""
        if getattr(event, "source", "") != "":
            return
        if event.stale:
            self.mark_index_stale(event.index)
            return
        self.set_index(event.index, event.price, ts=event.ts)

    def set_mark(self, name: str, mark_price: float, *, iv: float | None = None, underlying: float | None = None) -> None:
        """Set an instrument's mark (coin for inverse options, USD for futures), IV fraction, forward USD."""
        inst = self.instrument(name)
        _finite_float(f"{name} mark", mark_price)
        if mark_price < 0 or (inst.kind is not Kind.OPTION and mark_price <= 0):
            raise InvalidInput(f"{name} mark must be positive, got {mark_price}", code="input.negative", field=name)
        if iv is not None:
            _positive_float(f"{name} mark IV", iv)
        if underlying is not None:
            _positive_float(f"{name} underlying price", underlying)
        self.marks[name] = MarkInput(float(mark_price), None if iv is None else float(iv), None if underlying is None else float(underlying))
        self.marks_version += 1

    def set_marks(self, marks: Mapping[str, tuple[float, float | None, float | None]]) -> None:
        """Set many marks at once: name -> (mark_price, iv or None, underlying or None); all or nothing."""
        staged = {}
        for name, (px, iv, und) in marks.items():
            inst = self.instrument(name)
            if _plain_mark(px, iv, und, inst.kind is Kind.OPTION):
                staged[name] = MarkInput(px, iv, und)
                continue
            _finite_float(f"{name} mark", px)
            if px < 0 or (inst.kind is not Kind.OPTION and px <= 0):
                raise InvalidInput(f"{name} mark must be positive, got {px}", code="input.negative", field=name)
            if iv is not None:
                _positive_float(f"{name} mark IV", iv)
            if und is not None:
                _positive_float(f"{name} underlying price", und)
            staged[name] = MarkInput(float(px), iv, und)
        self.marks.update(staged)
        self.marks_version += 1

    def mark_of(self, name: str) -> float:
        """The mark price of ``name`` (price units); raise StaleData if none is set."""
        mk = self.marks.get(name)
        if mk is None:
            raise StaleData(f"no mark price for {name}", code="margin.no_mark", name=name)
        return mk.mark_price

    def _index_for(self, inst: Instrument) -> float:
        idx = self.index.get(inst.underlying)
        if idx is None:
            raise StaleData(f"no index price for {inst.underlying}", code="margin.no_index", index=inst.underlying)
        return idx

    def _forward(self, inst: Instrument) -> float:
        mk = self.marks.get(inst.name)
        if mk is not None and mk.underlying_price is not None:
            return mk.underlying_price
        if inst.kind is Kind.OPTION:
            fut = self.marks.get(inst.name.rsplit("-", 2)[0])
            if fut is not None:
                return fut.mark_price
            return self._index_for(inst)
        if mk is not None:
            return mk.mark_price
        return self._index_for(inst)

    def check_fresh(self, currency: str) -> None:
        """Raise StaleData when an index that ``currency`` depends on is stale or too old."""
        now = self.clock.now_ms()
        for index in self._indices_of(currency):
            if index in self.stale_index:
                raise StaleData(f"index {index} is stale", code="data.stale_index", index=index)
            if self.index_max_age_ms is not None and now - self.index_ts.get(index, now) > self.index_max_age_ms:
                raise StaleData(f"index {index} is older than {self.index_max_age_ms} ms", code="data.stale_index", index=index)

    def _indices_of(self, currency: str) -> set[str]:
        return self._ccy_indices.get(currency.upper(), set())

    def wire(self, engine: Any, bus: Bus | None = None) -> None:
        """Plug into a MatchingEngine (pre-trade check, event feed, listed instruments) and a bus (oracle index)."""
        for inst in engine.instruments():
            if inst.name not in self.instruments:
                self.add_instrument(inst)
        engine.set_pre_trade_check(self.pre_trade_check)
        engine.on_event(self.on_engine_event)
        bus = bus or self.bus
        if bus is not None:
            bus.on({"index_price"}, self.on_index_event)

    def refresh(self, accounts: Iterable[str] | None = None, *, with_distance: bool = False) -> dict[str, dict[str, MarginReport]]:
        """Reports for every account (publishing MarginAlert on level changes); call it on each market tick."""
        names = list(accounts) if accounts is not None else self.accounts.trading_accounts()
        out: dict[str, dict[str, MarginReport]] = {}
        for name in names:
            try:
                out[name] = self.reports(name, with_distance=with_distance)
            except StaleData:
                continue  # marks or index missing: no verdict until they arrive
        return out

    # ------------------------------------------------------------------------------------------------
    # accounts and orders
    # ------------------------------------------------------------------------------------------------
    def open_account(
        self, name: str, model: Model = "sm", deposits: Mapping[str, Decimal] | None = None, *, cross: bool = False
    ) -> None:
        """Create an account with a margin model (segregated, or ``cross``) and optional deposits (Decimal per currency)."""
        self.accounts.open(name, model).cross = bool(cross)
        self.orders.setdefault(name, {})
        for ccy, amount in (deposits or {}).items():
            self.accounts.deposit(name, ccy, amount, self.clock.now_ms())

    def deposit(self, account: str, currency: str, amount: Decimal) -> None:
        """Credit ``amount`` (Decimal, > 0) of ``currency`` to ``account``."""
        self.accounts.deposit(account, currency, amount, self.clock.now_ms())

    def withdraw(self, account: str, currency: str, amount: Decimal) -> None:
        """Debit ``amount`` if it does not exceed the available withdrawal funds; InvalidInput otherwise."""
        ccy = currency.upper()
        rep = self.report(account, ccy, with_distance=False, publish=False)
        limit = Decimal(repr(rep.details["available_withdrawal_funds"])).quantize(self.accounts.ledger.unit(ccy))
        self.accounts.withdraw(account, ccy, amount, self.clock.now_ms(), limit=max(limit, Decimal(0)))

    def set_model(self, name: str, model: Model, *, cross: bool | None = None) -> None:
        """Switch an account between standard (sm) and portfolio (pm) margin, segregated or cross."""
        if model not in ("sm", "pm"):
            raise InvalidInput(f"margin model must be sm or pm, got {model!r}", code="margin.model")
        acct = self.accounts.get(name)
        acct.model = model
        if cross is not None:
            acct.cross = bool(cross)
        for ccy in self._currencies_of(name):
            self._touch(name, ccy)

    def set_mmp_margin(self, account: str, currency: str, amount: float) -> None:
        """Margin held for market-maker-protection quotes (PM IM only), in the currency."""
        _finite_float("mmp margin", amount)
        self.mmp_margin[(account, currency.upper())] = float(amount)
        self._touch(account, currency.upper())

    def _touch(self, account: str, currency: str) -> None:
        key = (account, currency.upper())
        self._acct_version[key] = self._acct_version.get(key, 0) + 1

    def add_order(self, account: str, order_id: int | str, instrument: str, side: Side, amount: Decimal, price: Decimal | None) -> None:
        """Record a resting order (amount in instrument units, remaining)."""
        inst = self.instrument(instrument)
        order = OpenOrder(inst, side, amount, price)
        self.orders.setdefault(account, {})[order_id] = order
        self._by_inst.setdefault((account, inst.name), {})[order_id] = order
        self._touch(account, inst.settlement)

    def update_order(self, account: str, order_id: int | str, remaining: Decimal, price: Decimal | None = None) -> None:
        """Set an order's remaining amount (0 removes it) and optionally its price."""
        book = self.orders.get(account, {})
        order = book.get(order_id)
        if order is None:
            return
        if remaining <= 0:
            del book[order_id]
            self._by_inst.get((account, order.instrument.name), {}).pop(order_id, None)
        else:
            order.remaining = remaining
            if price is not None:
                order.price = price
        self._touch(account, order.instrument.settlement)

    def remove_order(self, account: str, order_id: int | str) -> None:
        """Forget an order (cancelled, filled or expired)."""
        self.update_order(account, order_id, Decimal(0))

    def open_orders(self, account: str, currency: str | None = None) -> list[OpenOrder]:
        """Open orders of ``account`` (settling in ``currency`` if given)."""
        ccy = None if currency is None else currency.upper()
        return [o for o in self.orders.get(account, {}).values() if ccy is None or o.instrument.settlement == ccy]

    def on_engine_event(self, ev: Any) -> None:
        """Follow the matching engine: resting orders (Accepted/Cancelled/Amended/Expired) and trades (Filled)."""
        kind = type(ev).__name__
        if kind == "Accepted":
            if ev.inst.name not in self.instruments:
                self.add_instrument(ev.inst)
            self.add_order(ev.account, ev.order_id, ev.inst.name, ev.side, ev.amount, ev.price)
        elif kind == "Filled":
            inst = ev.inst
            for acct in (ev.maker_account, ev.taker_account):
                if acct not in self.accounts:
                    self.open_account(acct)
            taker_buys = ev.taker_side is Side.BUY
            buyer, seller = (ev.taker_account, ev.maker_account) if taker_buys else (ev.maker_account, ev.taker_account)
            bfee, sfee = (ev.taker_fee, ev.maker_fee) if taker_buys else (ev.maker_fee, ev.taker_fee)
            self.accounts.apply_trade(inst, buyer, seller, ev.amount, ev.price, ev.ts, buyer_fee=bfee, seller_fee=sfee, ref=str(ev.trade_id))
            self.update_order(ev.maker_account, ev.maker_order_id, inst.from_lots(ev.maker_remaining))
            self.update_order(ev.taker_account, ev.taker_order_id, inst.from_lots(ev.taker_remaining))
        elif kind == "Cancelled":
            self.update_order(ev.account, ev.order_id, ev.inst.from_lots(ev.remaining))
        elif kind == "Amended":
            self.update_order(ev.account, ev.order_id, ev.inst.from_lots(ev.lots), ev.inst.from_ticks(ev.price_ticks))
        elif kind == "Expired":
            self.remove_order(ev.account, ev.order_id)

    def _currencies_of(self, account: str) -> set[str]:
        ccys = {p.instrument.settlement for p in self.accounts.positions(account)}
        ccys |= {o.instrument.settlement for o in self.open_orders(account)}
        ccys |= {c for c in self.accounts.ledger.currencies() if self.accounts.ledger.balance_units(account, c)}
        return ccys

    # ------------------------------------------------------------------------------------------------
    # full evaluation (also on shifted markets, for distance to liquidation and what-if)
    # ------------------------------------------------------------------------------------------------
    def _coin_size(self, inst: Instrument, amount: float, mark: float) -> float:
        if inst.kind in (Kind.FUTURE, Kind.PERPETUAL) and inst.inverse:
            return amount / mark
        return amount * float(inst.contract_size)

    def _shifted_marks(self, insts: Iterable[Instrument], move: float, vol_shift: float) -> dict[str, MarkInput]:
        """Marks after a relative spot move (all forwards move alike) and a relative IV shift."""
        out: dict[str, MarkInput] = {}
        opts: list[tuple[Instrument, float, float]] = []
        now = self.clock.now_ms()
        for inst in insts:
            if inst.name in out:
                continue
            if inst.kind is Kind.OPTION:
                mk = self.marks.get(inst.name)
                if mk is None or mk.mark_iv is None:
                    raise StaleData(f"{inst.name} has no mark IV", code="margin.no_mark", name=inst.name)
                opts.append((inst, self._forward(inst), mk.mark_iv))
            else:
                out[inst.name] = MarkInput(self.mark_of(inst.name) * (1.0 + move))
        if opts:
            if move == 0.0 and vol_shift == 0.0:
                for inst, f, iv in opts:
                    out[inst.name] = MarkInput(self.marks[inst.name].mark_price, iv, f)
            else:
                f = np.array([o[1] for o in opts]) * (1.0 + move)
                iv = np.array([o[2] for o in opts]) * (1.0 + vol_shift)
                k = np.array([float(o[0].strike) for o in opts])  # type: ignore[arg-type]
                t = np.array([max(o[0].years_to_expiry(now), 1e-12) for o in opts])
                c = np.array([o[0].is_call for o in opts])
                px = black76_price(f, k, t, iv, c)
                inv = np.array([o[0].inverse for o in opts])
                px = np.where(inv, px / f, px)
                for j, (inst, _, _) in enumerate(opts):
                    out[inst.name] = MarkInput(float(px[j]), float(iv[j]), float(f[j]))
        return out

    def evaluate(
        self,
        account: str,
        currency: str,
        *,
        extra: Mapping[str, Decimal] | None = None,
        extra_cash: float = 0.0,
        move: float = 0.0,
        vol_shift: float = 0.0,
        include_orders: bool = True,
    ) -> Evaluation:
        """Full evaluation; ``extra`` adds hypothetical positions (instrument units), ``move`` shifts spot."""
        ccy = currency.upper()
        acct = self.accounts.get(account)
        positions: dict[str, float] = {}
        insts: dict[str, Instrument] = {}
        for pos in self.accounts.positions(account, ccy):
            insts[pos.instrument.name] = pos.instrument
            positions[pos.instrument.name] = float(pos.size)
        for name, amt in (extra or {}).items():
            inst = self.instrument(name)
            if inst.settlement != ccy:
                continue
            insts[name] = inst
            positions[name] = positions.get(name, 0.0) + float(amt)
        orders = self.open_orders(account, ccy) if include_orders else []
        for o in orders:
            insts.setdefault(o.instrument.name, o.instrument)
        marks = self._shifted_marks(insts.values(), move, vol_shift)
        index = {i.underlying: self._index_for(i) * (1.0 + move) for i in insts.values()}

        def mark_of(name: str) -> float:
            return marks[name].mark_price if name in marks else self.mark_of(name)

        pm = acct.model == "pm"
        fig = self.accounts.figures(
            account, ccy, mark_of, margin_balance_includes_options=pm and self.pm_params.choices.margin_balance_includes_options
        )
        # Hypothetical positions: session PnL from their price, option value and premium.
        balance, equity, mb, ov = fig.balance + extra_cash, fig.equity + extra_cash, fig.margin_balance + extra_cash, fig.options_value
        for name, amt in (extra or {}).items():
            inst = insts.get(name)
            if inst is None:
                continue
            if inst.kind in (Kind.FUTURE, Kind.PERPETUAL):
                m0, m1 = self.mark_of(name), marks[name].mark_price
                pnl = float(amt) * (1.0 / m0 - 1.0 / m1) if inst.inverse else float(amt) * (m1 - m0)
                equity += pnl
                mb += pnl
                continue
            if inst.kind is not Kind.OPTION:
                continue
            value = float(amt) * marks[name].mark_price * float(inst.contract_size)
            ov += value
            equity += value
            if pm and self.pm_params.choices.margin_balance_includes_options:
                mb += value
        if pm:
            im, mm, oom, details = self._pm_margin(account, ccy, positions, insts, marks, index, orders)
        else:
            im, mm, oom, details = self._sm_margin(positions, insts, marks, index, orders)
        return Evaluation(balance, equity, mb, im, mm, ov, fig.futures_session_upl, fig.futures_session_rpl, oom, details)

    def _sm_margin(
        self,
        positions: Mapping[str, float],
        insts: Mapping[str, Instrument],
        marks: Mapping[str, MarkInput],
        index: Mapping[str, float],
        orders: Sequence[OpenOrder],
    ) -> tuple[float, float, float, dict[str, Any]]:
        im = mm = 0.0
        per: dict[str, dict[str, float]] = {}
        buys: dict[str, list[OpenOrder]] = {}
        sells: dict[str, list[OpenOrder]] = {}
        for o in orders:
            (buys if o.side is Side.BUY else sells).setdefault(o.instrument.name, []).append(o)
        oom_total = 0.0
        # Futures size per currency, for the increment term when it is not per instrument (UNCONFIRMED, §1.5).
        total_fut = 0.0
        for name, inst in insts.items():
            if inst.kind in (Kind.FUTURE, Kind.PERPETUAL):
                total_fut += abs(self._coin_size(inst, positions.get(name, 0.0), marks[name].mark_price))
        for name, inst in insts.items():
            mk = marks[name]
            n_coin = self._coin_size(inst, positions.get(name, 0.0), mk.mark_price)
            und = mk.underlying_price or index[inst.underlying]
            pim, pmm = position_margin(inst, n_coin, mk.mark_price, und, index[inst.underlying], total_fut)
            oom = self._sm_orders_margin(inst, n_coin, pim, mk, und, index[inst.underlying], buys.get(name, []), sells.get(name, []))
            im += pim + oom
            mm += pmm
            oom_total += oom
            per[name] = {"initial_margin": pim, "maintenance_margin": pmm, "open_orders_margin": oom}
        return im, mm, oom_total, {"positions": per}

    def _sm_orders_margin(
        self, inst: Instrument, n_coin: float, pim: float, mk: MarkInput, und: float, idx: float,
        buys: Sequence[OpenOrder], sells: Sequence[OpenOrder],
    ) -> float:
        if not buys and not sells:
            return 0.0
        b = sum(self._coin_size(inst, float(o.remaining), mk.mark_price) for o in buys)
        s = sum(self._coin_size(inst, float(o.remaining), mk.mark_price) for o in sells)
        return self._sm_side_margin(inst, n_coin, pim, mk, und, idx, b, s, buys)

    def _sm_side_margin(
        self, inst: Instrument, n_coin: float, pim: float, mk: MarkInput, und: float, idx: float,
        b: float, s: float, buys: Sequence[OpenOrder],
    ) -> float:
        im_b = position_margin(inst, n_coin + b, mk.mark_price, und, idx)[0] - pim if b else 0.0
        im_s = position_margin(inst, n_coin - s, mk.mark_price, und, idx)[0] - pim if s else 0.0
        extra = max(im_b, im_s, 0.0)
        if inst.kind is Kind.OPTION:
            extra += sum(option_buy_premium(inst, float(o.remaining), float(o.price or Decimal(repr(mk.mark_price)))) for o in buys)
        return extra

    def _pm_margin(
        self,
        account: str,
        ccy: str,
        positions: Mapping[str, float],
        insts: Mapping[str, Instrument],
        marks: Mapping[str, MarkInput],
        index: Mapping[str, float],
        orders: Sequence[OpenOrder],
    ) -> tuple[float, float, float, dict[str, Any]]:
        coin = {n: self._coin_size(insts[n], a, marks[n].mark_price) for n, a in positions.items()}
        # Instruments with orders but no position enter the portfolio at size 0 (their vectors are needed).
        for o in orders:
            coin.setdefault(o.instrument.name, 0.0)
        pf = PMPortfolio(coin, marks, index, self.clock.now_ms(), self.pm_params)
        oo = [(o.instrument.name, o.side.sign * self._coin_size(o.instrument, float(o.remaining), marks[o.instrument.name].mark_price)) for o in orders]
        res = pf.result(ccy, mmp_margin=self.mmp_margin.get((account, ccy), 0.0), open_orders=oo)
        details = {"pm": res.margins_dict(), "portfolio": pf, "pm_result": res}
        return res.initial_margin, res.maintenance_margin, res.open_orders_margin, details

    # ------------------------------------------------------------------------------------------------
    # reports
    # ------------------------------------------------------------------------------------------------
    def report(
        self, account: str, currency: str, *, with_distance: bool = True, with_region: bool = False, publish: bool = True
    ) -> MarginReport:
        """Margin health of ``account`` in ``currency`` (settlement-currency amounts).

        ``with_distance``: spot moves to liquidation (``distance_down``/``distance_up``); ``with_region``: also the
        spot x vol region (``details['liquidation']['region']`` over :data:`REGION_VOL_SHIFTS`), slower.
        """
        ccy = currency.upper()
        ev = self.evaluate(account, ccy)
        rep = self._to_report(account, ccy, ev)
        if with_distance or with_region:
            shifts = REGION_VOL_SHIFTS if with_region else None
            dist = self.distance_to_liquidation(account, ccy, vol_shifts=shifts, _base=ev)
            # Deribit's estimated_liquidation_price of futures positions: the mark after the solved move.
            est: dict[str, float | None] = {}
            for pos in self.accounts.positions(account, ccy):
                if pos.is_futures_like and pos.size != 0:
                    d = dist["down"] if pos.size > 0 else dist["up"]
                    est[pos.instrument.name] = None if d is None else self.mark_of(pos.instrument.name) * (1.0 + d)
            dist["estimated_liquidation_price"] = est
            rep = replace(rep, distance_down=dist["down"], distance_up=dist["up"], details={**rep.details, "liquidation": dist})
        if self.accounts.get(account).cross:
            rep = replace(rep, details={**rep.details, "cross": self.cross_summary(account)})
        if publish:
            self._publish_alert(account, ccy, rep)
        return rep

    def reports(self, account: str, *, with_distance: bool = True) -> dict[str, MarginReport]:
        """Reports for every currency the account holds or trades."""
        return {c: self.report(account, c, with_distance=with_distance) for c in sorted(self._currencies_of(account))}

    def usd_per_unit(self, currency: str) -> float:
        """USD value of one unit of ``currency`` (1 for USD stable coins, else its ``<ccy>_usd`` index)."""
        ccy = currency.upper()
        fixed = MARGIN_PARAMS[ccy].usd_per_unit_fixed if ccy in MARGIN_PARAMS else None
        if fixed is not None:
            return fixed
        idx = self.index.get(f"{ccy.lower()}_usd")
        if idx is None:
            raise StaleData(f"no index price to value {ccy} in USD", code="margin.no_index", index=f"{ccy.lower()}_usd")
        return idx

    def cross_summary(self, account: str) -> dict[str, float]:
        """Cross-margin totals in USD over every currency (margin balance after haircuts; Deribit's ``total_*_usd``)."""
        tot = {"total_equity_usd": 0.0, "total_margin_balance_usd": 0.0, "total_initial_margin_usd": 0.0,
               "total_maintenance_margin_usd": 0.0}
        for ccy in sorted(self._currencies_of(account)):
            ev = self.evaluate(account, ccy)
            usd = self.usd_per_unit(ccy)
            haircut = MARGIN_PARAMS[ccy].haircut if ccy in MARGIN_PARAMS else 0.0
            tot["total_equity_usd"] += ev.equity * usd
            mb = ev.margin_balance * usd
            tot["total_margin_balance_usd"] += mb * (1.0 - haircut) if mb > 0 else mb
            tot["total_initial_margin_usd"] += ev.initial_margin * usd
            tot["total_maintenance_margin_usd"] += ev.maintenance_margin * usd
        tot["total_available_funds_usd"] = tot["total_margin_balance_usd"] - tot["total_initial_margin_usd"]
        mb = tot["total_margin_balance_usd"]
        tot["total_mm_usage"] = tot["total_maintenance_margin_usd"] / mb if mb > 0 else math.inf
        return tot

    def margin_reports(self, account: str) -> dict[str, MarginReport]:
        """Reports without distance to liquidation (cheap enough for every tick)."""
        return self.reports(account, with_distance=False)

    def _to_report(self, account: str, ccy: str, ev: Evaluation) -> MarginReport:
        model: Model = self.accounts.get(account).model
        mb = ev.margin_balance
        im_usage = ev.initial_margin / mb if mb > 0 else (math.inf if ev.initial_margin > 0 else 0.0)
        mm_usage = ev.maintenance_margin / mb if mb > 0 else (math.inf if ev.maintenance_margin > 0 else 0.0)
        details: dict[str, Any] = {
            "options_value": ev.options_value,
            "futures_session_upl": ev.futures_session_upl,
            "futures_session_rpl": ev.futures_session_rpl,
            "open_orders_margin": ev.open_orders_margin,
            "available_withdrawal_funds": float(min(ev.balance - ev.initial_margin, mb - ev.initial_margin)),
            "stale_index": any(i in self.stale_index for i in self._indices_of(ccy)),
        }
        worst = None
        if model == "pm":
            pm = ev.details["pm"]
            details["pm"] = pm
            wb = pm["initial_margin_details"]["risk_matrix_margin_details"]["worst_case_bucket"]
            worst = None if wb is None else f"{wb['source']}:{wb['bucket']}:{wb['side']}:{wb['index']}"
            res = ev.details.get("pm_result")
            if isinstance(res, PMResult):
                # The fronts draw the risk matrix the worst case is read from: Deribit's aggregated_risk_vectors
                # (after offsets; keys as simulate_pm's), as the evaluation computed them, and their axes.
                params = self.pm_params
                vectors = res.aggregated_vectors()
                details["aggregated_risk_vectors"] = vectors
                details["risk_matrix_axes"] = {
                    vector_key(pair, ccy): {
                        "price_moves": price_moves(params.pair(pair), params.general.buckets_count).tolist(),
                        "vol_scenarios": list(params.choices.vol_order),
                        "extended_moves": list(params.choices.extended_moves),
                    }
                    for pair in res.pairs
                }
        else:
            details["positions"] = ev.details["positions"]
        level = 0.0
        for lv in self.alert_levels:
            if mm_usage >= lv:
                level = lv
        return MarginReport(
            account=account, currency=ccy, model=model, balance=float(ev.balance), equity=float(ev.equity),
            margin_balance=float(mb), initial_margin=float(ev.initial_margin), maintenance_margin=float(ev.maintenance_margin),
            available_funds=float(mb - ev.initial_margin), im_usage=float(im_usage), mm_usage=float(mm_usage), worst_bucket=worst,
            alert_level=level, details=details,
        )

    def _publish_alert(self, account: str, ccy: str, rep: MarginReport) -> None:
        key = (account, ccy)
        prev = self._alert.get(key, 0.0)
        if rep.alert_level == prev:
            return
        self._alert[key] = rep.alert_level
        if self.bus is not None:
            direction = "reached" if rep.alert_level > prev else "back below"
            lv = rep.alert_level if rep.alert_level > prev else prev
            self.bus.publish(
                MarginAlert(
                    ts=self.clock.now_ms(), account=account, currency=ccy, level=rep.alert_level, mm_usage=rep.mm_usage,
                    message=f"{account} {ccy}: MM usage {rep.mm_usage:.1%} {direction} {lv:.0%}",
                )
            )

    # ------------------------------------------------------------------------------------------------
    # what-if
    # ------------------------------------------------------------------------------------------------
    def what_if(self, account: str, orders: Sequence[OrderRequest], *, with_distance: bool = False) -> dict[str, MarginReport]:
        """Reports as if ``orders`` had traded in full at their price (market orders at mark); no state change."""
        extra: dict[str, Decimal] = {}
        cash: dict[str, float] = {}
        ccys: set[str] = set()
        for req in orders:
            if not isinstance(req, OrderRequest):
                raise InvalidInput(f"what_if takes OrderRequest objects, got {type(req).__name__}", code="input.type")
            inst = self.instrument(req.instrument)
            self.check_fresh(inst.settlement)
            self.mark_of(inst.name)
            signed = req.amount * req.side.sign
            extra[inst.name] = extra.get(inst.name, Decimal(0)) + signed
            ccys.add(inst.settlement)
            price = float(req.price) if req.price is not None and req.type is OrderType.LIMIT else self.mark_of(inst.name)
            fee = self.taker_fee(inst, float(req.amount), price)
            c = -fee
            if inst.kind is Kind.OPTION:
                c -= float(signed) * price * float(inst.contract_size)
            elif inst.kind in (Kind.FUTURE, Kind.PERPETUAL):
                # Trading away from the mark is an immediate session PnL.
                m = self.mark_of(inst.name)
                c += float(signed) * (1.0 / price - 1.0 / m) if inst.inverse else float(signed) * (m - price)
            cash[inst.settlement] = cash.get(inst.settlement, 0.0) + c
        out = {}
        for ccy in sorted(ccys | self._currencies_of(account)):
            ev = self.evaluate(account, ccy, extra=extra, extra_cash=cash.get(ccy, 0.0))
            rep = self._to_report(account, ccy, ev)
            if with_distance:
                dist = self._distance(
                    lambda mv, vs, c=ccy: self.evaluate(account, c, extra=extra, extra_cash=cash.get(c, 0.0), move=mv, vol_shift=vs),
                    base=ev,
                )
                rep = replace(rep, distance_down=dist["down"], distance_up=dist["up"])
            out[ccy] = rep
        return out

    def taker_fee(self, inst: Instrument, amount: float, price: float) -> float:
        """Taker fee of ``amount`` (the instrument's amount unit) at ``price``, in the settlement currency, as a
        fill is charged (``fees.FeeSchedule``, deribit.md §4.5): options pay ``rate × coin`` (× index for linear
        ones) capped at 12.5% of the premium; inverse futures ``rate × USD / price``; linear ``rate × amount × price``."""
        info = self._fast.get(inst.name)
        rate = info.taker_fee if info is not None else float(inst.taker_fee)  # precomputed: the pre-trade check's path
        if inst.kind is Kind.OPTION:
            coin = amount * float(inst.contract_size)
            base = coin if inst.inverse else coin * self.index.get(inst.underlying, float(inst.strike or 0))
            return min(rate * base, _OPTION_FEE_CAP * price * coin)
        if inst.inverse:
            return rate * amount / price
        return rate * amount * price

    # ------------------------------------------------------------------------------------------------
    # distance to liquidation
    # ------------------------------------------------------------------------------------------------
    def distance_to_liquidation(
        self, account: str, currency: str, *, vol_shifts: Sequence[float] | None = None, _base: Evaluation | None = None
    ) -> dict[str, Any]:
        """Spot moves (fractions) at which MM reaches the margin balance; PM: also per vol shift (region)."""
        ccy = currency.upper()
        dist = self._distance(lambda mv, vs: self.evaluate(account, ccy, move=mv, vol_shift=vs), base=_base)
        if vol_shifts:
            region = []
            for vs in vol_shifts:
                d = self._distance(lambda mv, _vs, vs=vs: self.evaluate(account, ccy, move=mv, vol_shift=vs), vol_shift=vs)
                region.append({"vol_shift": vs, "down": d["down"], "up": d["up"]})
            dist["region"] = region
        return dist

    @staticmethod
    def _distance(
        evaluate: Callable[[float, float], Evaluation], *, base: Evaluation | None = None, vol_shift: float = 0.0,
        lo: float = -0.95, hi: float = 4.0,
    ) -> dict[str, Any]:
        """Solve MM(m) = margin_balance(m) for the nearest move m below and above 0 (None: not in [lo, hi])."""

        def gap(m: float) -> float:
            ev = evaluate(m, vol_shift)
            return ev.margin_balance - ev.maintenance_margin

        g0 = gap(0.0) if base is None or vol_shift else base.margin_balance - base.maintenance_margin
        if g0 <= 0:
            return {"down": 0.0, "up": 0.0, "gap": g0, "liquidatable": True}
        out: dict[str, Any] = {"gap": g0, "liquidatable": False}
        for name, grid in (("down", _DOWN_GRID * -lo), ("up", _UP_GRID * hi)):
            prev_m, found = 0.0, None
            for m in grid:
                g = gap(float(m))
                if g <= 0:
                    found = float(brentq(gap, prev_m, float(m), xtol=1e-7)) if g < 0 else float(m)
                    break
                prev_m = float(m)
            out[name] = found
        return out

    # ------------------------------------------------------------------------------------------------
    # incremental pre-trade check
    # ------------------------------------------------------------------------------------------------
    def pre_trade_check(self, req: OrderRequest, ctx: Any = None) -> Any:
        """MatchingEngine hook: None to accept, or a RejectReason(code, message) carrying the shortfall."""
        if self.liquidating is not None and req.account == self.liquidating:
            return None  # the liquidation engine's own orders
        try:
            self.check_order(req)
        except InsufficientMargin as exc:
            return _reject(exc.code, exc.message)
        except (StaleData, UnknownInstrument, InvalidInput) as exc:
            return _reject(exc.code, exc.message)
        return None

    def check_order(self, req: OrderRequest, *, liquidation: bool = False) -> float:
        """Raise InsufficientMargin (details: shortfall, currency) if ``req`` would take IM above margin balance.

        Returns the available funds left after the order (currency units). Orders that do not raise IM (risk
        reducing) always pass; a locked (liquidating) account may only send liquidation orders.
        """
        info = self._fast.get(req.instrument)
        if info is None:
            raise UnknownInstrument(f"{req.instrument!r} is not listed on this venue", name=req.instrument)
        account = req.account
        acct = self.accounts.get(account)
        ccy = info.currency
        if acct.locked and not liquidation:
            raise InsufficientMargin(f"account {account} is being liquidated", code="margin.locked", shortfall=0.0, currency=ccy)
        if self.stale_index or self.index_max_age_ms is not None:
            self.check_fresh(ccy)
        cache = self._cache_for(account, ccy)
        mk = self.marks.get(req.instrument)
        if mk is None:
            raise StaleData(f"no mark price for {req.instrument}", code="margin.no_mark", name=req.instrument)
        mark = mk.mark_price
        price = float(req.price) if req.price is not None else mark
        amount = float(req.amount)
        q = amount / mark if info.futures_inverse else amount * info.contract_size
        buy = req.side is Side.BUY
        if acct.model == "pm":
            im_new = self._pm_check_im(cache, info, q if buy else -q, account, ccy)
        elif not sm_params_for(info.inst).increment_per_instrument and not info.is_option:
            # Aggregated increments couple every futures position: no incremental shortcut, evaluate in full.
            self.add_order(account, "__probe__", info.name, req.side, req.amount, req.price)
            try:
                im_new = self.evaluate(account, ccy).initial_margin
            finally:
                self.remove_order(account, "__probe__")
        else:
            im_new = self._sm_check_im(account, cache, info, buy, q, amount, price, mk)
        fee = self.taker_fee(info.inst, amount, price)
        need = im_new + (fee if im_new > cache.im else 0.0)
        avail = cache.margin_balance - need
        if acct.cross and avail < 0:
            avail += self._cross_headroom(account, ccy)
        if avail < 0 and need > cache.im + 1e-15:
            raise InsufficientMargin(
                f"{req.side.value} {req.amount} {req.instrument} needs initial margin {need:.10f} {ccy}, "
                f"margin balance is {cache.margin_balance:.10f} (short by {-avail:.10f})",
                shortfall=-avail, currency=ccy, initial_margin=need, margin_balance=cache.margin_balance,
            )
        return avail

    def _cross_headroom(self, account: str, ccy: str) -> float:
        """Other currencies' available funds (after haircut) in units of ``ccy``: cross-margin collateral."""
        usd_here = self.usd_per_unit(ccy)
        extra = 0.0
        for other in self._currencies_of(account):
            if other == ccy:
                continue
            c = self._cache_for(account, other)
            free = c.margin_balance - c.im
            if free > 0:
                haircut = MARGIN_PARAMS[other].haircut if other in MARGIN_PARAMS else 0.0
                extra += free * (1.0 - haircut) * self.usd_per_unit(other) / usd_here
        return extra

    def _cache_for(self, account: str, ccy: str) -> _Cache:
        key = (self.marks_version, self._acct_version.get((account, ccy), 0))
        cache = self._cache.get((account, ccy))
        if cache is not None and cache.key == key:
            return cache
        cache = self._build_cache(account, ccy, key)
        self._cache[(account, ccy)] = cache
        return cache

    def _build_cache(self, account: str, ccy: str, key: tuple[int, int]) -> _Cache:
        acct = self.accounts.get(account)
        ev = self.evaluate(account, ccy)
        cache = _Cache(key, ev.margin_balance, ev.initial_margin, ev.maintenance_margin)
        if acct.model == "sm":
            for name, d in ev.details["positions"].items():
                cache.pos_im[name] = d["initial_margin"]
                cache.oo_im[name] = d["open_orders_margin"]
            return cache
        # PM: raw vectors of the positions, and of the positions plus each side's orders, per pair.
        pf: PMPortfolio = ev.details["portfolio"]
        side_extra: dict[int, dict[str, float]] = {1: {}, -1: {}}
        for o in self.open_orders(account, ccy):
            q = self._coin_size(o.instrument, float(o.remaining), self.marks[o.instrument.name].mark_price)
            d = side_extra[o.side.sign]
            d[o.instrument.name] = d.get(o.instrument.name, 0.0) + o.side.sign * q
        for pair in pf.pairs_of(ccy):
            base = self._pm_side(pf.pair_risk(pair, ccy), ccy)
            entry: dict[Any, Any] = {"pos": base}
            for sign in (1, -1):
                entry[sign] = self._pm_side(pf.pair_risk(pair, ccy, side_extra[sign]), ccy) if side_extra[sign] else base
            entry["risk"] = pf.pair_risk(pair, ccy)
            cache.pm_pairs[pair] = entry
        cache.rmm_pos = sum(e["pos"].rmm for e in cache.pm_pairs.values())
        for sign in (1, -1):
            cache.rmm_side[sign] = sum(e[sign].rmm for e in cache.pm_pairs.values())
        return cache

    def _pm_side(self, risk: PairRisk, ccy: str) -> _PMSide:
        c = self.pm_params.ccy(ccy)
        roll = roll_shock(risk.delta_by_expiry, risk.years_by_expiry, c)
        net = float(sum(risk.delta_by_expiry.values()))
        side = _PMSide(risk.standard, risk.extended, dict(risk.delta_by_expiry), dict(risk.years_by_expiry), roll, net, 0.0)
        side.rmm = self._side_rmm(risk.pair, ccy, float(risk.standard.min()), float(risk.extended.min()), roll, net,
                                  risk.index_price, risk.coin_to_ccy, risk.usd_per_ccy)
        return side

    def _side_rmm(self, pair_name: str, ccy: str, std_min: float, ext_min: float, roll: float, net: float,
                  index: float, coin_to_ccy: float, usd_per_ccy: float) -> float:
        """Risk-matrix margin from the two minima (gains never lower the worst case), roll and net delta."""
        pair = self.pm_params.pair(pair_name)
        c = self.pm_params.ccy(ccy)
        worst = max(0.0, -std_min, -(ext_min * pair.extended_table_factor + c.extended_dampener / usd_per_ccy))
        dshock = delta_shock(net, index, pair, self.pm_params.choices.delta_shock_rate)
        return worst + (roll + dshock) * coin_to_ccy

    def _sm_check_im(
        self, account: str, cache: _Cache, info: _InstInfo, buy: bool, q: float, amount: float, price: float, mk: MarkInput
    ) -> float:
        inst = info.inst
        name = info.name
        pos = self.accounts.get(account).positions.get(name)
        mark = mk.mark_price
        n_coin = 0.0
        if pos is not None and pos.size:
            n_coin = float(pos.size) / mark if info.futures_inverse else float(pos.size) * info.contract_size
        idx = self.index.get(info.index)
        if idx is None:
            raise StaleData(f"no index price for {info.index}", code="margin.no_index", index=info.index)
        und = mk.underlying_price or (self._forward(inst) if info.is_option else idx)
        pim = cache.pos_im.get(name)
        if pim is None:
            pim = position_margin(inst, n_coin, mark, und, idx)[0]
        b = s = 0.0
        buys: list[OpenOrder] = []
        mine = self._by_inst.get((account, name))
        if mine:
            for o in mine.values():
                size = float(o.remaining) / mark if info.futures_inverse else float(o.remaining) * info.contract_size
                if o.side is Side.BUY:
                    b += size
                    buys.append(o)
                else:
                    s += size
        if buy:
            b += q
            if info.is_option:
                # In amount units like the resting orders (q is coin): option_buy_premium scales by contract size.
                buys.append(OpenOrder(inst, Side.BUY, Decimal(repr(amount)), Decimal(repr(price))))
        else:
            s += q
        oo_new = self._sm_side_margin(inst, n_coin, pim, mk, und, idx, b, s, buys)
        return cache.im - cache.oo_im.get(name, 0.0) + oo_new

    def _pm_check_im(self, cache: _Cache, info: _InstInfo, dq: float, account: str, ccy: str) -> float:
        pair = info.index
        u_std, u_ext, u_delta, u_exp, u_years = self._unit_of(info)
        sign = 1 if dq > 0 else -1
        entry = cache.pm_pairs.get(pair)
        if entry is None:
            # The account's first instrument on this index: start from an empty portfolio.
            s = self.index.get(pair)
            if s is None:
                raise StaleData(f"no index price for {pair}", code="margin.no_index", index=pair)
            inverse = pair.endswith("_usd")
            z = PairRisk(pair, np.zeros_like(u_std), np.zeros_like(u_ext), {}, {}, s, 1.0 if inverse else s, s if inverse else 1.0)
            base = self._pm_side(z, ccy)
            entry = {"pos": base, 1: base, -1: base, "risk": z}
            rmm_side_old = 0.0
        else:
            rmm_side_old = entry[sign].rmm
        side: _PMSide = entry[sign]
        risk: PairRisk = entry["risk"]
        roll, net = side.roll, side.net
        if not info.is_option or self.pm_params.choices.roll_shock_includes_options:
            c = self.pm_params.ccy(ccy)
            d_old = side.deltas.get(u_exp, 0.0)
            d_new = d_old + dq * u_delta
            if u_exp is None:
                roll += c.min_annualised_move * (abs(d_new) - abs(d_old))
            else:
                rate = max(math.expm1(c.annualised_move_risk * u_years), c.min_annualised_move)
                roll += rate * (abs(d_new) - abs(d_old))
            net += dq * u_delta
        std_min = float((side.std + dq * u_std).min())
        ext_min = float((side.ext + dq * u_ext).min())
        rmm_new = self._side_rmm(pair, ccy, std_min, ext_min, roll, net, risk.index_price, risk.coin_to_ccy, risk.usd_per_ccy)
        rmm_side_new = cache.rmm_side[sign] - rmm_side_old + rmm_new
        oom = max(rmm_side_new, cache.rmm_side[-sign]) - cache.rmm_pos
        return cache.rmm_pos + self.mmp_margin.get((account, ccy), 0.0) + max(oom, 0.0)

    def _unit_of(self, info: _InstInfo) -> tuple[np.ndarray, np.ndarray, float, int | None, float]:
        """Unit risk vector of one instrument at the current marks (cached per marks version)."""
        name = info.name
        hit = self._units.get(name)
        if hit is None or hit[0] != self.marks_version:
            inst = info.inst
            mk = self.marks[name]
            iv = np.array([mk.mark_iv if mk.mark_iv is not None else np.nan])
            ur = unit_risk([inst], np.array([self._forward(inst)]), iv, self.clock.now_ms(), self.pm_params, info.index)
            hit = (self.marks_version, (ur.standard[0], ur.extended[0], float(ur.delta[0]), ur.expiry[0], float(ur.years[0])))
            self._units[name] = hit
        return hit[1]

    # ------------------------------------------------------------------------------------------------
    def position_states(self, account: str, currency: str | None = None) -> list[PositionState]:
        """Open positions of an account (accounts' internal state; read only)."""
        return [p for p in self.accounts.positions(account, currency) if p.size != 0]


def _reject(code: str, message: str) -> Any:
    try:
        from app.engine.events import RejectReason

        return RejectReason(code, message)
    except ImportError:  # pragma: no cover - the events module ships with the engine
        return (code, message)


def _finite_float(label: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise InvalidInput(f"{label} must be a finite number, got {value!r}", code="input.nan", field=label)


def _plain_mark(px: Any, iv: Any, und: Any, option: bool) -> bool:
    """True for a mark that passes every check of set_marks at a glance (floats, finite, positive; an option's
    price may be 0), so a venue marking hundreds of instruments a second builds no error labels."""
    return (type(px) is float and (px > 0.0 or (option and px == 0.0)) and px < math.inf
            and (iv is None or (type(iv) is float and 0.0 < iv < math.inf))
            and (und is None or (type(und) is float and 0.0 < und < math.inf)))


def _positive_float(label: str, value: Any) -> None:
    _finite_float(label, value)
    if float(value) <= 0:
        raise InvalidInput(f"{label} must be positive, got {value!r}", code="input.negative", field=label)


__all__ = ["Evaluation", "MarginEngine", "OpenOrder", "pair_margin"]
