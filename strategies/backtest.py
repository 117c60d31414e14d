"""Backtests: a hedger config over simulated or historical paths, through the Desk, its matching and margin engines.

There is no separate fill model: the composition root hands :func:`run_backtest` a ``desk_factory`` that builds
an ``app.desk.Desk`` on the simulated venue (``PathSpec(kind="sim", seed=...)``) or on a historical replay
(``PathSpec(kind="replay", day="2020-03-12")`` or a user CSV), and the hedger runs under the same crash-safe
:class:`strategies.runner.Runner` it runs under live, fed by the Desk step by step.

The book. By default (:class:`BookSpec`): short an ATM straddle (call and put at the strike nearest the forward)
of the nearest monthly expiry, 1 BTC each leg, sold into the simulated market makers' bids at the start.

Metrics (all money in USD at the index of the moment; coin PnL times index, interval by interval):

- ``pnl``: PnL of the hedged book from inception: options at the venue's theoretical marks, hedges, fees
  (the change of the account's equity, in coin, valued in USD interval by interval).
- ``hedging_error_std`` / ``hedging_error_worst``: std over the sampled times of that PnL (the book was sold at
  its theoretical value, so a perfect hedge keeps it at the carry), and its worst (lowest) value. Across
  several paths (:func:`aggregate`), the std and the worst of the paths' final PnL.
- ``hedge_cost``: fees plus slippage against the decision mid of the hedge fills (the hedger's accounting).
- ``hedges``: hedge decisions that traded; ``orders``, ``fills``.
- ``max_abs_delta`` and ``time_outside_band`` (fraction of samples outside the band), in the hedger's unit.
- ``pnl_attribution``: delta, gamma, theta, vega, fees and residual. Each sample interval is split by
  :func:`app.risk.attribute_pnl` (inverse-aware Taylor terms with the greeks at the interval's start) over the
  positions held at its start (options and hedges), from each instrument's forward and mark IV at both ends; coin
  terms valued at the index of the interval's end, like the PnL. Fees are their own line; the residual is what the
  terms leave of the interval's PnL (cross and higher-order terms, trades inside the interval, funding).
- ``max_margin_usage`` (maintenance margin / margin balance) and ``liquidations`` (liquidations of the backtest's
  account the venue's liquidator started: ``LiquidationStarted`` events on the Desk's bus).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal, Protocol

import numpy as np

from app.domain import (
    MS_PER_YEAR,
    FillEvent,
    GreeksView,
    Instrument,
    Kind,
    MarginAlert,
    OrderRequest,
    OrderType,
    Side,
    TimeInForce,
)
from app.errors import DeskError, InvalidInput
from app.ports import Store
from app.risk import Book, attribute_pnl
from strategies.delta_hedger import DeltaHedger
from strategies.hedger_config import HedgerConfig, parse_hedger_config
from strategies.memory_store import MemoryStore

DAY_MS = 86_400_000
LIQUIDATION_TOPIC = "liquidation_started"  # app.engine.liquidation.LiquidationStarted on the Desk's bus
ATTRIBUTION_KEYS = ("delta", "gamma", "theta", "vega", "fees", "residual")
METRIC_KEYS = ("hedges", "hedge_cost", "hedging_error_std", "hedging_error_worst", "max_abs_delta", "time_outside_band",
               "pnl", "pnl_attribution", "max_margin_usage", "liquidations")


@dataclass(frozen=True)
class PathSpec:
    """One market path: a seeded simulation, a stress day / window of history, or a user OHLC CSV."""

    kind: Literal["sim", "replay"] = "sim"
    seed: int = 7
    days: float = 1.0
    day: str | None = None
    start: str | None = None
    end: str | None = None
    data: str | None = None
    step_ms: int = 30_000

    def __post_init__(self) -> None:
        if self.kind not in ("sim", "replay"):
            raise InvalidInput(f"path kind must be sim or replay, got {self.kind!r}", code="backtest.path")
        if not (self.days > 0 and math.isfinite(self.days)):
            raise InvalidInput(f"days must be positive, got {self.days}", code="backtest.days")
        if self.step_ms <= 0:
            raise InvalidInput(f"step_ms must be positive, got {self.step_ms}", code="backtest.step")
        if self.kind == "replay" and not (self.day or self.start):
            raise InvalidInput("a replay path needs a day or a start", code="backtest.path")

    @property
    def label(self) -> str:
        """Short name for reports."""
        if self.kind == "sim":
            return f"sim seed {self.seed}, {self.days:g} d"
        if self.data:
            return f"{self.data} {self.start}..{self.end}"
        return f"replay {self.day or f'{self.start}..{self.end}'}"


@dataclass(frozen=True)
class BookSpec:
    """The book to hedge: a straddle (or one leg, or none) of the nearest monthly, sold (or bought) at the start.

    ``perpetual``: USD notional of the perpetual bought (+) or sold (-) at the start on top of the options
    (leverage, or a pure perpetual book with ``structure="none"``); 0 by default.
    """

    underlying: str = "BTC"
    structure: Literal["straddle", "call", "put", "none"] = "straddle"
    size: float = 1.0
    side: Literal["sell", "buy"] = "sell"
    min_days: float = 2.0
    perpetual: float = 0.0

    def __post_init__(self) -> None:
        if self.structure not in ("straddle", "call", "put", "none"):
            raise InvalidInput(f"book structure must be straddle, call, put or none, got {self.structure!r}", code="backtest.book")
        if not (math.isfinite(self.size) and self.size > 0) or not math.isfinite(self.perpetual):
            raise InvalidInput(f"book size must be positive and perpetual finite, got {self.size}, {self.perpetual}",
                               code="backtest.book")
        if self.structure == "none" and not self.perpetual:
            raise InvalidInput("a book without options needs a perpetual notional", code="backtest.book")

    def describe(self) -> str:
        """One line for reports."""
        perp = f"{'long' if self.perpetual > 0 else 'short'} {abs(self.perpetual):,.0f} USD of the {self.underlying} perpetual"
        if self.structure == "none":
            return perp
        opts = f"{'short' if self.side == 'sell' else 'long'} ATM {self.structure} of the nearest monthly, {self.size:g} {self.underlying} per leg"
        return f"{opts}, {perp}" if self.perpetual else opts


class BacktestDesk(Protocol):
    """What the backtester drives; ``app.desk.Desk`` satisfies it."""

    def now_ms(self) -> int: ...  # noqa: D102
    async def run_for(self, ms: int) -> int: ...  # noqa: D102
    def instruments(self, underlying: str | None = None) -> list[Instrument]: ...  # noqa: D102
    def quote(self, instrument: str, venue: str | None = None) -> Any: ...  # noqa: D102
    def index_price(self, underlying: str) -> float | None: ...  # noqa: D102
    def positions(self) -> Sequence[Any]: ...  # noqa: D102
    def margin(self) -> dict[str, Any]: ...  # noqa: D102
    def portfolio(self) -> dict[str, GreeksView]: ...  # noqa: D102
    async def place(self, req: OrderRequest) -> Any: ...  # noqa: D102
    def add_strategy(self, strategy: Any, run_id: str, *, active: bool = False, **kw: Any) -> Any: ...  # noqa: D102
    def subscribe(self, topics: Any = None, maxsize: int = 10_000) -> Any: ...  # noqa: D102
    async def stop(self) -> None: ...  # noqa: D102


DeskFactory = Callable[[PathSpec, Store], BacktestDesk]


@dataclass
class _Series:
    ts: list[int] = field(default_factory=list)
    spot: list[float] = field(default_factory=list)
    delta: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    pnl: list[float] = field(default_factory=list)
    hedge_position: list[float] = field(default_factory=list)
    mm_usage: list[float] = field(default_factory=list)


def pick_legs(desk: BacktestDesk, book: BookSpec) -> list[Instrument]:
    """The legs of the book: ATM call/put of the nearest monthly expiry at least ``min_days`` away."""
    if book.structure == "none":
        return []
    now = desk.now_ms()
    opts = [i for i in desk.instruments(book.underlying) if i.is_option and i.expiry_ms is not None
            and i.expiry_ms - now >= book.min_days * DAY_MS and _is_monthly(i.expiry_ms)]
    if not opts:
        raise DeskError(f"no monthly {book.underlying} option at least {book.min_days:g} days out is listed", code="backtest.no_book")
    expiry = min(i.expiry_ms for i in opts if i.expiry_ms is not None)
    chain = [i for i in opts if i.expiry_ms == expiry]
    fwd = None
    for i in chain:
        q = desk.quote(i.name)
        if q is not None and q.underlying_price:
            fwd = q.underlying_price
            break
    fwd = fwd or desk.index_price(book.underlying) or float(chain[0].strike or 0)
    strike = min({float(i.strike or 0) for i in chain}, key=lambda k: abs(k - fwd))
    want = {"straddle": (True, False), "call": (True,), "put": (False,)}[book.structure]
    return [i for i in chain if float(i.strike or 0) == strike and i.is_call in want]


def _is_monthly(expiry_ms: int) -> bool:
    d = datetime.fromtimestamp(expiry_ms / 1000, tz=timezone.utc)
    return d.weekday() == 4 and (d.day + 7) > _days_in_month(d.year, d.month)


def _days_in_month(year: int, month: int) -> int:
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    return (nxt - datetime(year, month, 1, tzinfo=timezone.utc)).days


async def _open_book(desk: BacktestDesk, book: BookSpec) -> dict[str, Any]:
    legs = pick_legs(desk, book)
    side = Side.SELL if book.side == "sell" else Side.BUY
    out = {"legs": [], "premium_coin": 0.0, "fees_coin": 0.0}
    for inst in legs:
        amount = (Decimal(repr(book.size)) / inst.min_amount).to_integral_value() * inst.min_amount
        req = OrderRequest(inst.name, side, amount, None, OrderType.MARKET, TimeInForce.IOC, reason="backtest book")
        order = await desk.place(req)
        filled = float(order.filled)
        px = float(order.average_price or 0)
        out["legs"].append({"instrument": inst.name, "side": side.value, "amount": filled, "price": px})
        out["premium_coin"] += filled * px * (1 if side is Side.SELL else -1)
    if book.perpetual:
        perp = next((i for i in desk.instruments(book.underlying) if i.kind is Kind.PERPETUAL), None)
        if perp is None:
            raise DeskError(f"no {book.underlying} perpetual is listed", code="backtest.no_book")
        pside = Side.BUY if book.perpetual > 0 else Side.SELL
        amount = (Decimal(repr(abs(book.perpetual))) / perp.min_amount).to_integral_value() * perp.min_amount
        order = await desk.place(OrderRequest(perp.name, pside, amount, None, OrderType.MARKET, TimeInForce.IOC, reason="backtest book"))
        out["legs"].append({"instrument": perp.name, "side": pside.value, "amount": float(order.filled),
                            "price": float(order.average_price or 0)})
    if not any(leg["amount"] > 0 for leg in out["legs"]):
        raise DeskError("the book could not be traded: no fills against the market makers", code="backtest.no_book")
    return out


async def _run_async(config: HedgerConfig, path: PathSpec, desk_factory: DeskFactory, book: BookSpec, sample_ms: int,
                     progress: Callable[[float], None] | None) -> dict[str, Any]:
    t_wall = time.perf_counter()
    store = MemoryStore(keep_decisions=False)
    desk = desk_factory(path, store)
    try:
        ul = book.underlying
        fills_sub = desk.subscribe({"fill_event", "margin_alert", LIQUIDATION_TOPIC}, maxsize=1_000_000)
        account = getattr(desk, "account", None)
        eq_before = _equity(desk, ul)
        opened = await _open_book(desk, book)
        fills_sub.drain()
        # Selling at the makers' bids costs the spread against the theoretical marks at once: that is the entry
        # cost, reported apart; the hedging error is measured from the book's theoretical value onwards.
        eq0 = _equity(desk, ul)
        opened["entry_cost_usd"] = (eq_before - eq0) * float(desk.index_price(ul) or 0.0)
        hedger = DeltaHedger(config)
        runner = desk.add_strategy(hedger, "backtest", active=True, check_interval_ms=int(config.check_interval_s * 1000))
        view = BacktestView(desk)
        runner.set_view(view)
        duration = _duration_ms(desk, path)
        start = desk.now_ms()
        series = _Series()
        attr = dict.fromkeys(ATTRIBUTION_KEYS, 0.0)
        fees_coin = 0.0
        liquidations: list[dict[str, float]] = []
        alerts_max = 0.0
        prev = _sample(desk, hedger, ul)
        prev_eq = eq0
        pnl_usd = 0.0
        _append(series, prev, 0.0)
        while desk.now_ms() - start < duration:
            step = min(sample_ms, duration - (desk.now_ms() - start))
            await desk.run_for(step)
            d_fees = 0.0
            for e in fills_sub.drain():
                if isinstance(e, FillEvent) and e.fill.fee_currency == ul:
                    d_fees += float(e.fill.fee)
                elif isinstance(e, MarginAlert):
                    alerts_max = max(alerts_max, e.mm_usage)
                elif e.topic == LIQUIDATION_TOPIC and getattr(e, "currency", ul) == ul \
                        and (account is None or getattr(e, "account", account) == account):
                    liquidations.append({"ts": int(e.ts), "margin_balance": float(getattr(e, "margin_balance", math.nan)),
                                         "maintenance_margin": float(getattr(e, "maintenance_margin", math.nan))})
            fees_coin += d_fees
            cur = _sample(desk, hedger, ul)
            eq = cur["equity"]
            s1 = cur["spot"]
            d_coin = eq - prev_eq
            pnl_usd += d_coin * s1
            held = prev["held"]
            terms = attribute_interval(held, prev["marks"], _marks(desk, held), prev["ts"], cur["ts"])
            parts = {**terms, "fees": -d_fees}
            for k, v in parts.items():
                attr[k] += v * s1
            attr["residual"] += d_coin * s1 - sum(parts.values()) * s1
            _append(series, cur, pnl_usd)
            prev, prev_eq = cur, eq
            if progress is not None:
                progress(min(1.0, (desk.now_ms() - start) / duration))
        totals = hedger.totals
        days = (desk.now_ms() - start) / DAY_MS
        wall = time.perf_counter() - t_wall
        metrics = _metrics(series, totals, attr, len(liquidations), max(alerts_max, max(series.mm_usage, default=0.0)))
        metrics.update({
            "orders": totals["orders"], "fills": totals["fills"], "fees_usd": totals["fees_usd"], "slippage_usd": totals["slippage_usd"],
            "hedge_notional_usd": totals["notional_usd"], "decisions": store.decision_count, "sim_days": days, "wall_s": wall,
            "days_per_s": days / wall if wall > 0 else float("nan"),
        })
        return {
            "path": asdict(path), "label": path.label, "book": {**opened, "spec": asdict(book), "description": book.describe()},
            "config": config.to_dict(), "metrics": metrics,
            "series": asdict(series), "liquidation_events": liquidations, "start_ms": start, "end_ms": desk.now_ms(),
        }
    finally:
        await desk.stop()


def run_backtest(config: HedgerConfig | dict[str, Any] | None, path: PathSpec, *, desk_factory: DeskFactory,
                 book: BookSpec | None = None, sample_ms: int = 300_000, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Run one hedger config over one path; returns ``{"metrics": ..., "series": ..., "book": ..., ...}`` (USD).

    ``liquidation_events`` lists the liquidations the venue started on the account: time (epoch ms), margin
    balance and maintenance margin (coin) at the start.
    """
    cfg = _config(config)
    if sample_ms <= 0:
        raise InvalidInput(f"sample_ms must be positive, got {sample_ms}", code="backtest.sample")
    return asyncio.run(_run_async(cfg, path, desk_factory, book or BookSpec(), int(sample_ms), progress))


def _config(config: HedgerConfig | dict[str, Any] | None) -> HedgerConfig:
    if config is None:
        return default_backtest_config()
    if isinstance(config, HedgerConfig):
        return config
    return parse_hedger_config(config)


def default_backtest_config() -> HedgerConfig:
    """The default hedger, active (a backtest has no dry run): fixed ±0.1 BTC band on the perpetual."""
    return parse_hedger_config({"active": True, "check_interval_s": 60.0})


def _duration_ms(desk: Any, path: PathSpec) -> int:
    remaining = getattr(getattr(desk, "venue", None), "remaining_ms", None)
    if path.kind == "replay" and callable(remaining):
        return int(remaining())
    return int(path.days * DAY_MS)


def _equity(desk: BacktestDesk, ul: str) -> float:
    rep = _fast_margin(desk).get(ul)
    return float(rep.equity) if rep is not None else 0.0


def _margin_of(desk: BacktestDesk, ul: str) -> Any:
    return _fast_margin(desk).get(ul)


def _fast_margin(desk: Any) -> dict[str, Any]:
    # Maintenance-margin usage is what the backtest and the hedger's margin pause read; the distance to
    # liquidation (a root search over spot moves) is what makes Desk.margin() slow, so skip it when the desk can.
    fast = getattr(desk, "_refresh_margin", None)
    return fast(with_distance=False) if callable(fast) else desk.margin()


class BacktestView:
    """The desk as the hedger sees it in a backtest: the same positions, quotes and index; margin without distance."""

    def __init__(self, desk: BacktestDesk) -> None:
        self.desk = desk

    def now_ms(self) -> int:
        """Simulated time."""
        return self.desk.now_ms()

    def positions(self) -> Sequence[Any]:
        """The desk's positions."""
        return self.desk.positions()

    def quote(self, instrument: str, venue: str | None = None) -> Any:
        """The desk's quote."""
        return self.desk.quote(instrument, venue)

    def index_price(self, underlying: str) -> float | None:
        """The desk's index."""
        return self.desk.index_price(underlying)

    def margin(self) -> dict[str, Any]:
        """Margin reports (maintenance usage), without the distance to liquidation."""
        return _fast_margin(self.desk)


def _sample(desk: BacktestDesk, hedger: DeltaHedger, ul: str) -> dict[str, Any]:
    m = hedger.measure(BacktestView(desk))
    unit = m["delta_coin"] if hedger.cfg.delta_unit == "coin" else m["delta_usd"]
    band = hedger.last_band or {}
    rep = _margin_of(desk, ul)
    positions = desk.positions()
    hedge_pos = sum(float(p.size) for p in positions if not Instrument.parse(p.instrument).is_option)
    held = {p.instrument: float(p.size) for p in positions if float(p.size) and Instrument.parse(p.instrument).base == ul}
    return {
        "ts": desk.now_ms(), "spot": float(desk.index_price(ul) or m["spot"]), "delta": unit,
        "lower": band.get("lower", hedger.cfg.target_delta - hedger.cfg.band.lower),
        "upper": band.get("upper", hedger.cfg.target_delta + hedger.cfg.band.upper),
        "mm_usage": float(rep.mm_usage) if rep is not None else 0.0, "hedge_position": hedge_pos,
        "equity": float(rep.equity) if rep is not None else 0.0, "held": held, "marks": _marks(desk, held),
    }


def _marks(desk: BacktestDesk, names: dict[str, float]) -> dict[str, tuple[float, float]]:
    """(forward USD, mark IV per 1.0) of each instrument: an option's expiry forward, a future's own mark price."""
    out = {}
    for name in names:
        q = desk.quote(name)
        if q is None:
            continue
        if Instrument.parse(name).is_option:
            fwd, iv = q.underlying_price, q.mark_iv
        else:
            fwd, iv = q.mark_price, 0.0
        if fwd and iv is not None and math.isfinite(fwd) and fwd > 0 and math.isfinite(iv):
            out[name] = (float(fwd), float(iv))
    return out


def attribute_interval(held: dict[str, float], marks0: dict[str, tuple[float, float]], marks1: dict[str, tuple[float, float]],
                       t0_ms: int, t1_ms: int) -> dict[str, float]:
    """Delta, gamma, theta and vega PnL (coin) of the positions ``held`` at ``t0_ms`` (signed sizes: options in coin,
    inverse perpetuals/futures in USD) from their (forward USD, IV per 1.0) marks at ``t0_ms`` to those at ``t1_ms``.

    :func:`app.risk.attribute_pnl` does the split (inverse-aware, greeks at the start); positions without a mark at
    either end, or expired by ``t1_ms``, are left out, so their PnL falls to the caller's residual.
    """
    insts = {n: Instrument.parse(n) for n in held if n in marks0 and n in marks1}
    # an instrument that expired inside the interval settled: its PnL is no Taylor term of its last marks
    names = [n for n, i in insts.items() if i.expiry_ms is None or i.expiry_ms > t1_ms]
    zero = dict.fromkeys(("delta", "gamma", "theta", "vega"), 0.0)
    if not names or t1_ms < t0_ms:
        return zero
    book = Book.from_instruments(((insts[n], held[n]) for n in names), t0_ms)
    f0, v0 = (np.array([marks0[n][i] for n in names]) for i in (0, 1))
    f1, v1 = (np.array([marks1[n][i] for n in names]) for i in (0, 1))
    coin, _usd = attribute_pnl(book, f0, v0, f1, v1, (t1_ms - t0_ms) / MS_PER_YEAR)
    return {"delta": coin.delta, "gamma": coin.gamma, "theta": coin.theta, "vega": coin.vega}


def _append(s: _Series, x: dict[str, Any], pnl: float) -> None:
    s.ts.append(int(x["ts"]))
    s.spot.append(x["spot"])
    s.delta.append(x["delta"])
    s.lower.append(x["lower"])
    s.upper.append(x["upper"])
    s.pnl.append(pnl)
    s.hedge_position.append(x["hedge_position"])
    s.mm_usage.append(x["mm_usage"])


def _metrics(s: _Series, totals: dict[str, Any], attr: dict[str, float], liquidations: int, max_mm: float) -> dict[str, Any]:
    pnl = np.array(s.pnl)
    delta = np.array(s.delta)
    outside = (delta > np.array(s.upper)) | (delta < np.array(s.lower))
    return {
        "hedges": int(totals["hedges"]),
        "hedge_cost": float(totals["fees_usd"] + totals["slippage_usd"]),
        "hedging_error_std": float(np.std(pnl)) if len(pnl) else 0.0,
        "hedging_error_worst": float(np.min(pnl)) if len(pnl) else 0.0,
        "max_abs_delta": float(np.max(np.abs(delta))) if len(delta) else 0.0,
        "time_outside_band": float(np.mean(outside[1:])) if len(outside) > 1 else 0.0,
        "pnl": float(pnl[-1]) if len(pnl) else 0.0,
        "pnl_attribution": {k: float(v) for k, v in attr.items()},
        "max_margin_usage": float(max_mm),
        "liquidations": int(liquidations),
    }


def aggregate(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Metrics over several paths: hedging error = std and worst of the paths' final PnL; others averaged or summed."""
    if not results:
        raise InvalidInput("nothing to aggregate", code="backtest.empty")
    ms = [r["metrics"] for r in results]
    final = np.array([m["pnl"] for m in ms])
    attr_keys = ms[0]["pnl_attribution"].keys()
    return {
        "paths": len(ms),
        "hedges": float(np.mean([m["hedges"] for m in ms])),
        "hedge_cost": float(np.mean([m["hedge_cost"] for m in ms])),
        "hedging_error_std": float(np.std(final)) if len(final) > 1 else ms[0]["hedging_error_std"],
        "hedging_error_worst": float(np.min(final)) if len(final) > 1 else ms[0]["hedging_error_worst"],
        "max_abs_delta": float(np.max([m["max_abs_delta"] for m in ms])),
        "time_outside_band": float(np.mean([m["time_outside_band"] for m in ms])),
        "pnl": float(np.mean(final)),
        "pnl_attribution": {k: float(np.mean([m["pnl_attribution"][k] for m in ms])) for k in attr_keys},
        "max_margin_usage": float(np.max([m["max_margin_usage"] for m in ms])),
        "liquidations": int(np.sum([m["liquidations"] for m in ms])),
        "sim_days": float(np.sum([m["sim_days"] for m in ms])),
        "wall_s": float(np.sum([m["wall_s"] for m in ms])),
    }


# -- sweeps ------------------------------------------------------------------------------------------


def _job(args: tuple[dict[str, Any], PathSpec, DeskFactory, BookSpec, int]) -> dict[str, Any]:
    cfg, path, factory, book, sample_ms = args
    return run_backtest(cfg, path, desk_factory=factory, book=book, sample_ms=sample_ms)


def run_sweep(configs: Sequence[HedgerConfig | dict[str, Any]], paths: Sequence[PathSpec], *, desk_factory: DeskFactory,
              book: BookSpec | None = None, sample_ms: int = 300_000, workers: int | None = None, ray_address: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> list[list[dict[str, Any]]]:
    """Every config over every path, in parallel processes (or on Ray at ``ray_address``); results[config][path].

    ``desk_factory`` must be picklable (a module-level function) to cross process boundaries.
    """
    cfgs = [_config(c).to_dict() for c in configs]
    book = book or BookSpec()
    jobs = [(c, p, desk_factory, book, sample_ms) for c in cfgs for p in paths]
    total = len(jobs)
    if ray_address is not None:
        flat = _run_on_ray(jobs, ray_address, progress)
    elif workers == 1 or total == 1:
        flat = []
        for i, j in enumerate(jobs):
            flat.append(_job(j))
            if progress is not None:
                progress(i + 1, total)
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        flat_d: dict[int, dict[str, Any]] = {}
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futs = {pool.submit(_job, j): i for i, j in enumerate(jobs)}
            for n, fut in enumerate(as_completed(futs)):
                flat_d[futs[fut]] = fut.result()
                if progress is not None:
                    progress(n + 1, total)
        flat = [flat_d[i] for i in range(total)]
    return [flat[i * len(paths):(i + 1) * len(paths)] for i in range(len(cfgs))]


def _run_on_ray(jobs: list[Any], address: str, progress: Callable[[int, int], None] | None) -> list[dict[str, Any]]:
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError:
        raise DeskError("--ray needs the ray package: pip install 'ray[default]' (or run without --ray for local processes)",
                        code="backtest.ray_missing") from None
    ray.init(address=address, ignore_reinit_error=True)
    remote = ray.remote(_job)
    refs = [remote.remote(j) for j in jobs]
    out: list[dict[str, Any]] = []
    for i, ref in enumerate(refs):
        out.append(ray.get(ref))
        if progress is not None:
            progress(i + 1, len(refs))
    return out


def expand_sweep(base: HedgerConfig | dict[str, Any] | None, sweeps: Sequence[str]) -> list[tuple[dict[str, Any], HedgerConfig]]:
    """Configs of a sweep: ``["band.upper=0.05,0.1", "band.rule=fixed,whalley_wilmott"]`` -> the cartesian product.

    Values are read as JSON scalars (``0.1``, ``true``) or else as strings; each config is validated (the error
    names the swept key). Returns ``(settings, config)`` pairs; no sweep gives ``[({}, base)]``.
    """
    import itertools
    import json

    cfg = _config(base)
    axes: list[tuple[str, list[Any]]] = []
    for item in sweeps:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise InvalidInput(f"sweep {item!r}: expected KEY=V1,V2,... (e.g. band.upper=0.05,0.1)", code="backtest.sweep")
        vals: list[Any] = []
        for v in values.split(","):
            try:
                vals.append(json.loads(v))
            except json.JSONDecodeError:
                vals.append(v.strip())
        axes.append((key.strip(), vals))
    out = []
    for combo in itertools.product(*[vals for _, vals in axes]):
        data = cfg.to_dict()
        settings = {}
        for (key, _), value in zip(axes, combo):
            node = data
            parts = key.split(".")
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    raise InvalidInput(f"sweep key {key!r}: {p!r} is not a section of the hedger config", code="backtest.sweep")
                node = node[p]
            node[parts[-1]] = value
            settings[key] = value
        out.append((settings, parse_hedger_config(data)))
    return out
