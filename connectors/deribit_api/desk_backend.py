"""The Desk (app.desk.Desk) seen through :class:`ApiBackend`, without importing app.desk.

``desk serve`` builds a Desk on the simulated market and hands it here; :class:`DeskLike` lists exactly what
is used, so the import rules hold (connectors never import the composition root).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Protocol

import numpy as np

from app.bus import Subscription
from app.domain import Fill, Instrument, MarginReport, Order, OrderRequest, Quote
from app.domain import PositionView as DeskPosition
from app.errors import NotFound
from app.pricing import black76
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
        return insts

    def _inst(self, name: str) -> Instrument | None:
        if name not in self._listed:
            self.listed()
        return self._listed.get(name)

    def ticker(self, instrument: str) -> TickerView | None:
        """Ticker from the desk's quote, with Black-76 greeks (USD; vega per 1%, theta per day) for options."""
        inst = self._inst(instrument)
        q = self.desk.quote(instrument)
        if inst is None or q is None:
            return None
        index = self.desk.index_price(inst.base) or q.index_price or 0.0
        mark = q.mark_price if q.mark_price is not None else ((q.bid or 0.0) + (q.ask or 0.0)) / 2
        greeks = None
        underlying = None
        if inst.is_option and inst.strike is not None:
            underlying = q.underlying_price or index
            t = inst.years_to_expiry(self.now_ms())
            if q.mark_iv and t > 0 and underlying > 0:
                g = black76(underlying, float(inst.strike), t, q.mark_iv, inst.is_call)
                greeks = Greeks(
                    delta=round(float(np.asarray(g.delta)), 5),
                    gamma=round(float(np.asarray(g.gamma)), 8),
                    vega=round(float(np.asarray(g.vega)) * 0.01, 5),
                    theta=round(float(np.asarray(g.theta)) / 365.0, 5),
                    rho=round(float(np.asarray(g.rho)) * 0.01, 5),
                )
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
            underlying_index=f"index_price:{inst.underlying}" if inst.is_option else "",
            mark_iv=q.mark_iv if inst.is_option else None,
            bid_iv=q.bid_iv if inst.is_option else None,
            ask_iv=q.ask_iv if inst.is_option else None,
            greeks=greeks,
            open_interest=q.open_interest,
        )

    def depth(self, instrument: str, levels: int) -> BookView:
        """The engine's book, ``levels`` per side."""
        bids, asks = self.desk.engine.depth(instrument, levels)
        return BookView(
            instrument,
            self.now_ms(),
            [(float(p), float(a)) for p, a, _ in bids],
            [(float(p), float(a)) for p, a, _ in asks],
            change_id=self.now_ms(),
        )

    def index_price(self, index: str) -> float | None:
        """Index of ``btc_usd``."""
        if not any(i.underlying == index for i in self.listed()):
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
        """Positions with marks, PnL, greeks and the margin engine's per-position IM/MM."""
        self._check(account)
        per: dict[str, dict[str, float]] = {}
        for report in self.desk.margin().values():
            per.update(report.details.get("positions", {}) if report.details else {})
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
                )
            )
        return out

    def account_summary(self, account: str, currency: str) -> MarginReport:
        """The margin engine's report of the account in ``currency`` (zero when it holds none)."""
        self._check(account)
        report = self.desk.margin().get(currency)
        if report is None:
            return MarginReport(account, currency, "sm", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return report

    def subscribe(self, topics: Sequence[str]) -> Subscription:
        """The desk's bus."""
        return self.desk.subscribe(topics)
