"""The Desk (app.desk.Desk) seen through :class:`ApiBackend`, without importing app.desk.

``desk serve`` builds a Desk on the simulated market and hands it here; :class:`DeskLike` lists exactly what
is used, so the import rules hold (connectors never import the composition root).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, Protocol

import numpy as np

from app.bus import Subscription
from app.domain import Fill, Instrument, Kind, MarginReport, Order, OrderRequest, Quote
from app.domain import PositionView as DeskPosition
from app.engine.settlement import funding_rate_8h
from app.errors import DeskError, NotFound
from app.pricing import black76
from app.pricing.black import bsm
from app.pricing.implied import implied_vol, implied_vol_coin
from connectors.base import Credentials
from connectors.deribit_api.backend import BookView, Greeks, PlaceResult, PositionView, TickerView
from connectors.deribit_api.server import DeribitApiServer


class DeskLike(Protocol):
    """The part of app.desk.Desk the API server needs."""

    account: str
    engine: Any  # app.engine.matching.MatchingEngine: depth(name, n)
    venue: Any  # connectors.sim.venue.SimVenue: orders(open_only)

    def now_ms(self) -> int: ...
    def instruments(self, underlying: str | None = None) -> list[Instrument]: ...
    def quote(self, instrument: str, venue: str | None = None) -> Quote | None: ...
    def depth(self, instrument: str, levels: int = 10) -> tuple[list[Any], list[Any]]: ...
    def index_price(self, underlying: str) -> float | None: ...
    async def place(self, req: OrderRequest) -> Order: ...
    async def cancel(self, order_id: str) -> Order: ...
    async def amend(self, order_id: str, amount: Decimal | None = None, price: Decimal | None = None) -> Order: ...
    async def cancel_all(self, instrument: str | None = None) -> int: ...
    async def fill_reports(self, since_ms: int = 0) -> Sequence[Any]: ...
    def positions(self) -> tuple[DeskPosition, ...]: ...
    def margin(self) -> dict[str, MarginReport]: ...
    def subscribe(self, topics: Iterable[str] | None = None, maxsize: int = 10_000) -> Subscription: ...
    async def start(self, duration_ms: int | None = None) -> None: ...
    async def stop(self) -> None: ...


async def serve_desk(
    desk: DeskLike,
    credentials: Credentials,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    ready: Callable[[DeribitApiServer], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the desk's market and serve it over Deribit's API until ``stop`` is set (or SIGINT/SIGTERM)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await desk.start()
    server = DeribitApiServer(DeskBackend(desk), credentials=credentials)
    try:
        await server.start(host, port)
        if ready is not None:
            ready(server)
        await stop.wait()
    finally:
        await server.stop()
        await desk.stop()


class DeskBackend:
    """Serves one Desk account (``desk.account``) as the Deribit account behind every API key."""

    def __init__(self, desk: DeskLike) -> None:
        self.desk = desk
        self._listed: dict[str, Instrument] = {}
        self._futures: dict[tuple[str, str, int | None], str] = {}  # (base, settlement, expiry) -> future name
        self._indices: set[str] = set()

    def _check(self, account: str) -> None:
        if account != self.desk.account:
            raise NotFound(f"no account {account!r} on this venue", code="not_found.account")

    def now_ms(self) -> int:
        """The desk's (simulated) clock."""
        return self.desk.now_ms()

    def listed(self) -> Sequence[Instrument]:
        """Every listed instrument."""
        insts = self.desk.instruments()
        self._listed = {i.name: i for i in insts}
        self._futures = {(i.base, i.settlement, i.expiry_ms): i.name for i in insts if i.kind is Kind.FUTURE}
        self._indices = {i.underlying for i in insts}
        return insts

    def _inst(self, name: str) -> Instrument | None:
        if name not in self._listed:
            self.listed()
        return self._listed.get(name)

    def ticker(self, instrument: str) -> TickerView | None:
        """Ticker from the desk's quote: the engine's price band, Black greeks of options as Deribit shows them
        (USD; vega and rho per 1%, theta per day), bid/ask IVs solved from the best prices (fractions)."""
        inst = self._inst(instrument)
        q = self.desk.quote(instrument)
        if inst is None or q is None:
            return None
        index = self.desk.index_price(inst.base) or q.index_price or 0.0
        mark = q.mark_price if q.mark_price is not None else ((q.bid or 0.0) + (q.ask or 0.0)) / 2
        band = self.desk.engine.band(instrument)
        greeks = None
        underlying = None
        bid_iv = ask_iv = None
        funding = None
        if inst.is_option and inst.strike is not None:
            underlying = q.underlying_price or index
            t = inst.years_to_expiry(self.now_ms())
            if q.mark_iv and t > 0 and underlying > 0:
                g = black76(underlying, float(inst.strike), t, q.mark_iv, inst.is_call)
                # Deribit's rho is the spot-fixed one (positive for calls: 130.6 for the deribit.md 5.4 call);
                # Black-76's own rho holds the forward fixed and is -T·V.
                rho = bsm(underlying, float(inst.strike), t, q.mark_iv, inst.is_call).rho
                greeks = Greeks(
                    delta=round(float(np.asarray(g.delta)), 5),
                    gamma=round(float(np.asarray(g.gamma)), 8),
                    vega=round(float(np.asarray(g.vega)) * 0.01, 5),
                    theta=round(float(np.asarray(g.theta)) / 365.0, 5),
                    rho=round(float(np.asarray(rho)) * 0.01, 5),
                )
            bid_iv = q.bid_iv if q.bid_iv is not None else self._iv(inst, q.bid, underlying, t)
            ask_iv = q.ask_iv if q.ask_iv is not None else self._iv(inst, q.ask, underlying, t)
        elif inst.kind is Kind.PERPETUAL and index > 0 and mark > 0:
            funding = funding_rate_8h(float(mark), float(index))
        return TickerView(
            instrument=instrument,
            ts=q.ts or self.now_ms(),
            best_bid=q.bid,
            best_ask=q.ask,
            bid_size=q.bid_size,
            ask_size=q.ask_size,
            mark_price=float(mark),
            index_price=float(index),
            underlying_price=underlying,
            underlying_index=self._underlying_index(inst, underlying, index) if inst.is_option else "",
            mark_iv=q.mark_iv if inst.is_option else None,
            bid_iv=bid_iv,
            ask_iv=ask_iv,
            greeks=greeks,
            open_interest=q.open_interest,
            min_price=float(band[0]) if band is not None else None,
            max_price=float(band[1]) if band is not None else None,
            funding_8h=funding,
        )

    @staticmethod
    def _iv(inst: Instrument, price: float | None, underlying: float, t: float) -> float | None:
        """Implied vol (fraction) of an option price (coin for inverse options, USD for linear); None if none."""
        if price is None or price <= 0 or t <= 0 or underlying <= 0 or inst.strike is None:
            return None
        solve = implied_vol_coin if inst.inverse else implied_vol
        with np.errstate(all="ignore"):
            iv = float(np.asarray(solve(price, underlying, float(inst.strike), t, inst.is_call)))
        return iv if math.isfinite(iv) and iv > 0 else None

    def _underlying_index(self, inst: Instrument, underlying: float | None, index: float) -> str:
        """Deribit's ``underlying_index`` of an option: the future of its expiry when one is listed, else the
        synthetic ``SYN.{prefix}-{expiry}`` forward, or ``index_price`` when the forward is the index itself."""
        future = self._futures.get((inst.base, inst.settlement, inst.expiry_ms))
        if future is not None:
            return future
        if underlying is None or index <= 0 or abs(underlying - index) <= 1e-9 * index:
            return "index_price"
        prefix, expiry = inst.name.split("-")[:2]
        return f"SYN.{prefix}-{expiry}"

    def marks(self, instrument: str) -> tuple[float, float | None, float | None] | None:
        """The venue's (mark, mark IV fraction, forward USD) of ``instrument`` now; None if it has none."""
        try:
            mark, iv, forward = self.desk.venue.mark_of(instrument)
        except DeskError:
            return None
        return float(mark), iv, forward

    def depth(self, instrument: str, levels: int) -> BookView:
        """The venue's book, ``levels`` per side, its makers' quotes brought up to date first (lazy quoting)."""
        bids, asks = self.desk.depth(instrument, levels)
        return BookView(
            instrument,
            self.now_ms(),
            [(float(p), float(a)) for p, a, _ in bids],
            [(float(p), float(a)) for p, a, _ in asks],
        )

    def index_price(self, index: str) -> float | None:
        """Index of ``btc_usd`` (USD); None for an index no listed instrument uses."""
        # Asked once per public trade: the listing is re-read only for an index not seen in it.
        if index not in self._indices and not any(i.underlying == index for i in self.listed()):
            return None
        return self.desk.index_price(index)

    async def place(self, request: OrderRequest) -> PlaceResult:
        """Place through the desk (pre-trade margin checked) and collect the fills it made at once."""
        self._check(request.account)
        before = self.now_ms()
        order = await self.desk.place(request)
        fills = [f for f in await self.desk.fill_reports(before) if f.order_id == order.order_id]
        return PlaceResult(order, tuple(fills))

    async def cancel(self, account: str, order_id: str) -> Order:
        """Cancel an order of the account."""
        self._check(account)
        return await self.desk.cancel(order_id)

    async def amend(self, account: str, order_id: str, amount: Decimal | None, price: Decimal | None) -> Order:
        """Amend an order of the account (margin checked)."""
        self._check(account)
        return await self.desk.amend(order_id, amount, price)

    async def cancel_all(self, account: str, instrument: str | None = None) -> int:
        """Cancel every open order (of one instrument)."""
        self._check(account)
        return await self.desk.cancel_all(instrument)

    def orders(self, account: str, open_only: bool = True) -> Sequence[Order]:
        """Orders of the account, oldest first."""
        self._check(account)
        return list(self.desk.venue.orders(open_only=open_only))

    def order(self, account: str, order_id: str) -> Order:
        """One order of the account."""
        for o in self.orders(account, open_only=False):
            if o.order_id == order_id:
                return o
        raise NotFound(f"no order {order_id!r}", code="order.not_found", order_id=order_id)

    async def fills(self, account: str, since_ms: int = 0) -> Sequence[Fill]:
        """Fills of the account since ``since_ms``."""
        self._check(account)
        return list(await self.desk.fill_reports(since_ms))

    def positions(self, account: str) -> Sequence[PositionView]:
        """Positions with marks, PnL, greeks, the margin engine's per-position IM/MM and, for futures, its
        estimated liquidation price (None where no move within its search range liquidates)."""
        self._check(account)
        per: dict[str, dict[str, float]] = {}
        liquidation: dict[str, float | None] = {}
        for report in self.desk.margin().values():
            details = report.details or {}
            per.update(details.get("positions", {}))
            liquidation.update((details.get("liquidation") or {}).get("estimated_liquidation_price", {}))
        out = []
        for p in self.desk.positions():
            if p.size == 0:
                continue
            inst = self._inst(p.instrument)
            index = self.desk.index_price(inst.base) if inst else None
            m = per.get(p.instrument, {})
            out.append(
                PositionView(
                    instrument=p.instrument,
                    size=Decimal(str(p.size)),
                    average_price=Decimal(str(p.average_price)),
                    mark_price=p.mark,
                    index_price=float(index or 0.0),
                    floating_pnl=p.pnl,
                    realized_pnl=p.realized_pnl + p.funding,
                    realized_funding=p.funding,
                    delta=p.greeks.delta,
                    gamma=p.greeks.gamma,
                    vega=p.greeks.vega,
                    theta=p.greeks.theta,
                    initial_margin=float(m.get("initial_margin", 0.0)),
                    maintenance_margin=float(m.get("maintenance_margin", 0.0)),
                    open_orders_margin=float(m.get("open_orders_margin", 0.0)),
                    estimated_liquidation_price=liquidation.get(p.instrument),
                )
            )
        return out

    def account_summary(self, account: str, currency: str) -> MarginReport:
        """The margin engine's report of the account in ``currency`` (zero when it holds none), its details
        completed with Deribit's PnL split, greeks and estimated liquidation ratio (see :meth:`_summary`)."""
        self._check(account)
        report = self.desk.margin().get(currency)
        if report is None:
            return MarginReport(account, currency, "sm", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return replace(report, details={**(report.details or {}), **self._summary(report)})

    def _summary(self, report: MarginReport) -> dict[str, Any]:
        """Deribit's account figures the margin report lacks, from the desk's positions in the report's currency.

        Amounts in the currency. ``delta_total``: futures' coin size plus options' premium-adjusted delta (Deribit's
        "net transaction delta"). Options' upl is their mark value less the premium paid; options' "session" rpl
        is what closing option trades realised since the desk first saw the position (the venue keeps no option
        session). ``futures_pl``/``options_pl``: unrealised + realised (+ funding) of the open positions.
        Options' gamma is per USD (coin), vega per 1% and theta per day in USD, as the ticker's greeks.
        ``estimated_liquidation_ratio``: 1 + the spot move at which the margin engine finds MM reaching the margin
        balance, in the direction the account loses (down when delta_total > 0, up when < 0), so that ratio ×
        a future's price is its estimated liquidation price (deribit.md 1.2); 0 without delta or without a
        liquidating move in the engine's search range ([-95%, +400%]).
        """
        ccy = report.currency
        fut_pl = opt_upl = opt_rpl = 0.0
        delta: dict[str, float] = {}
        greeks: dict[str, dict[str, float]] = {"delta": {}, "gamma": {}, "vega": {}, "theta": {}}
        for p in self.desk.positions():
            inst = self._inst(p.instrument)
            if inst is None or inst.settlement != ccy:
                continue
            idx = inst.underlying
            delta[idx] = delta.get(idx, 0.0) + p.greeks.delta
            if inst.is_option:
                opt_upl += p.pnl
                opt_rpl += p.realized_pnl
                for name, value in (
                    ("delta", p.greeks.delta),
                    ("gamma", p.greeks.gamma),
                    ("vega", p.greeks.vega_usd),
                    ("theta", p.greeks.theta_usd),
                ):
                    greeks[name][idx] = greeks[name].get(idx, 0.0) + value
            else:
                fut_pl += p.pnl + p.realized_pnl + p.funding
        delta_total = sum(delta.values())
        dist = (report.details or {}).get("liquidation") or {}
        move = dist.get("down") if delta_total > 0 else dist.get("up") if delta_total < 0 else None
        ratio = 1.0 + move if move is not None else 0.0
        out: dict[str, Any] = {
            "options_session_upl": opt_upl,
            "options_session_rpl": opt_rpl,
            "options_pl": opt_upl + opt_rpl,
            "futures_pl": fut_pl,
            "delta_total": delta_total,
            "delta_total_map": delta,
            "estimated_liquidation_ratio": ratio,
            "estimated_liquidation_ratio_map": {idx: ratio for idx in delta},
        }
        for name, by_index in greeks.items():
            out[f"options_{name}"] = sum(by_index.values())
            if name != "delta":
                out[f"options_{name}_map"] = by_index
        return out

    def subscribe(self, topics: Sequence[str]) -> Subscription:
        """The desk's bus."""
        return self.desk.subscribe(topics)
