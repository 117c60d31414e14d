"""A small, self-contained ApiBackend for the server's protocol tests: price-time books, a resting market maker.

It is deliberately independent of the Desk so the wire format can be tested on its own; the end-to-end tests
(test_ccxt_deribit_desk.py) serve the real Desk through app.deribit_backend.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from app.bus import Bus, Subscription
from app.clock import WallClock
from app.domain import (
    BookUpdate,
    Fill,
    FillEvent,
    IndexPrice,
    Instrument,
    Liquidity,
    MarginReport,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Quote,
    Side,
    TimeInForce,
    Trade,
)
from app.errors import InsufficientMargin, NotFound, OrderRejected
from connectors.deribit_api.backend import BookView, Greeks, PlaceResult, PositionView, TickerView

D = Decimal


def next_friday_expiry(now_ms: int, weeks: int = 2) -> datetime:
    """An 08:00 UTC Friday at least ``weeks`` weeks after ``now_ms``."""
    now = datetime.fromtimestamp(now_ms / 1000, timezone.utc)
    day = (now + timedelta(days=7 * weeks)).replace(hour=8, minute=0, second=0, microsecond=0)
    while day.weekday() != 4:
        day += timedelta(days=1)
    return day


class PaperBackend:
    """Books for a perpetual and two options; account ``mm`` quotes them, ``main`` trades."""

    def __init__(self, *, balance: Decimal = D("10"), index: float = 60000.0) -> None:
        self.clock = WallClock()
        self.bus = Bus()
        self.index = index
        exp = next_friday_expiry(self.clock.now_ms())
        perp = Instrument.parse("BTC-PERPETUAL")
        code = f"{exp.day}{exp.strftime('%b').upper()}{exp.year % 100:02d}"
        call = Instrument.parse(f"BTC-{code}-60000-C")
        put = Instrument.parse(f"BTC-{code}-60000-P")
        self.insts = {i.name: i for i in (perp, call, put)}
        self.perp, self.call, self.put = perp.name, call.name, put.name
        self._ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self.orders_: dict[str, Order] = {}
        self.fills_: list[Fill] = []
        self.cash = {"main": balance, "mm": D("1000000")}
        self.positions_: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        self.last: dict[str, float] = {}
        self.change = 0
        self._quote_mm()

    # -- market maker -------------------------------------------------------------------------------
    def _quote_mm(self) -> None:
        book = {
            self.perp: [(Side.BUY, D("59999.5"), D("10000")), (Side.SELL, D("60000.5"), D("10000"))],
            self.call: [(Side.BUY, D("0.0400"), D("5")), (Side.SELL, D("0.0420"), D("5"))],
            self.put: [(Side.BUY, D("0.0300"), D("5")), (Side.SELL, D("0.0320"), D("5"))],
        }
        for name, levels in book.items():
            for side, price, amount in levels:
                self._rest(OrderRequest(name, side, amount, price, account="mm"))

    def _rest(self, req: OrderRequest) -> Order:
        order = Order(f"BTC-{next(self._ids)}", req, OrderStatus.OPEN, ts=self.clock.now_ms())
        self.orders_[order.order_id] = order
        return order

    # -- ApiBackend -----------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return self.clock.now_ms()

    def listed(self) -> Sequence[Instrument]:
        return list(self.insts.values())

    def _side(self, name: str, side: Side) -> list[Order]:
        rows = [
            o
            for o in self.orders_.values()
            if o.instrument == name and o.status is OrderStatus.OPEN and o.request.side is side
        ]
        key = (lambda o: (-o.request.price, o.ts)) if side is Side.BUY else (lambda o: (o.request.price, o.ts))
        return sorted(rows, key=key)

    def depth(self, instrument: str, levels: int) -> BookView:
        def agg(side: Side) -> list[tuple[float, float]]:
            out: dict[Decimal, Decimal] = {}
            for o in self._side(instrument, side):
                out[o.request.price] = out.get(o.request.price, D(0)) + o.remaining
            return [(float(p), float(a)) for p, a in out.items()][:levels]

        return BookView(instrument, self.now_ms(), agg(Side.BUY), agg(Side.SELL), self.change)

    def ticker(self, instrument: str) -> TickerView | None:
        inst = self.insts.get(instrument)
        if inst is None:
            return None
        b = self.depth(instrument, 1)
        bid = b.bids[0] if b.bids else (None, 0.0)
        ask = b.asks[0] if b.asks else (None, 0.0)
        mark = (bid[0] + ask[0]) / 2 if bid[0] and ask[0] else (bid[0] or ask[0] or 0.0)
        opt = inst.is_option
        return TickerView(
            instrument,
            self.now_ms(),
            bid[0],
            ask[0],
            bid[1],
            ask[1],
            mark,
            self.index,
            last_price=self.last.get(instrument),
            underlying_price=self.index if opt else None,
            mark_iv=0.55 if opt else None,
            bid_iv=0.54 if opt else None,
            ask_iv=0.56 if opt else None,
            greeks=Greeks(0.5 if inst.is_call else -0.5, 0.00002, 60.0, -40.0, 5.0) if opt else None,
        )

    def index_price(self, index: str) -> float | None:
        return self.index if index == "btc_usd" else None

    def publish_index(self, price: float) -> None:
        self.index = price
        self.bus.publish(IndexPrice(self.now_ms(), "btc_usd", price))

    def _im(self, account: str, extra: OrderRequest | None = None) -> Decimal:
        im = D(0)
        orders = [
            o.request for o in self.orders_.values() if o.status is OrderStatus.OPEN and o.request.account == account
        ]
        if extra is not None:
            orders.append(extra)
        for req in orders:
            inst = self.insts[req.instrument]
            px = req.price or D("0.05")
            if inst.is_option:
                im += req.amount * px if req.side is Side.BUY else req.amount * D("0.15")
            else:
                im += req.amount / D(60000) * D("0.02")
        return im

    async def place(self, request: OrderRequest) -> PlaceResult:
        if request.instrument not in self.insts:
            raise OrderRejected("unknown", code="instrument.unknown")
        if request.account != "mm" and self._im(request.account, request) > self.cash[request.account]:
            raise InsufficientMargin("not enough funds", shortfall=str(self._im(request.account, request)))
        order = self._rest(request)
        fills = self._match(order)
        order = self.orders_[order.order_id]
        if order.status is OrderStatus.OPEN and (
            request.type is OrderType.MARKET or request.tif is not TimeInForce.GTC
        ):
            order = replace(
                order, status=OrderStatus.CANCELLED if order.filled < request.amount else OrderStatus.FILLED
            )
            self.orders_[order.order_id] = order
        self.bus.publish(OrderUpdate(self.now_ms(), order))
        self._book_changed(request.instrument)
        return PlaceResult(order, tuple(fills))

    def _book_changed(self, name: str) -> None:
        self.change += 1
        self.bus.publish(BookUpdate(self.now_ms(), name, (), (), snapshot=False, sequence=self.change))
        t = self.ticker(name)
        assert t is not None
        self.bus.publish(Quote(self.now_ms(), name, t.best_bid, t.best_ask, t.bid_size, t.ask_size, t.mark_price))

    def _match(self, taker: Order) -> list[Fill]:
        req = taker.request
        fills: list[Fill] = []
        for maker in self._side(req.instrument, req.side.opposite):
            taker = self.orders_[taker.order_id]
            left = taker.remaining
            if left <= 0:
                break
            mp = maker.request.price
            if req.type is OrderType.LIMIT and (mp > req.price if req.side is Side.BUY else mp < req.price):
                break
            qty = min(left, maker.remaining)
            for o, liq in ((taker, Liquidity.TAKER), (maker, Liquidity.MAKER)):
                cur = self.orders_[o.order_id]
                filled = cur.filled + qty
                status = OrderStatus.FILLED if filled == cur.request.amount else OrderStatus.OPEN
                avg = ((cur.average_price or D(0)) * cur.filled + mp * qty) / filled
                self.orders_[o.order_id] = replace(
                    cur, filled=filled, status=status, average_price=avg, ts=self.now_ms()
                )
                fill = Fill(
                    f"BTC-T{next(self._trade_ids)}",
                    o.order_id,
                    req.instrument,
                    o.request.side,
                    mp,
                    qty,
                    D("0.0003") * qty if liq is Liquidity.TAKER else D(0),
                    "BTC",
                    liq,
                    self.now_ms(),
                    account=o.request.account,
                    client_order_id=o.request.client_order_id,
                    venue="paper",
                    index_price=self.index,
                )
                self.fills_.append(fill)
                size, avgp = self.positions_.get((o.request.account, req.instrument), (D(0), D(0)))
                signed = qty * o.request.side.sign
                new = size + signed
                self.positions_[(o.request.account, req.instrument)] = (new, mp if size == 0 else avgp)
                if o.request.account == "main" or liq is Liquidity.TAKER:
                    self.bus.publish(FillEvent(self.now_ms(), fill))
                if o is maker:
                    self.bus.publish(OrderUpdate(self.now_ms(), self.orders_[o.order_id]))
                else:
                    fills.append(fill)
            self.last[req.instrument] = float(mp)
            self.bus.publish(Trade(self.now_ms(), req.instrument, float(mp), float(qty), req.side))
        return fills

    def _own(self, account: str, order_id: str) -> Order:
        order = self.orders_.get(order_id)
        if order is None or order.request.account != account:
            raise NotFound(f"order {order_id} not found")
        return order

    async def cancel(self, account: str, order_id: str) -> Order:
        order = self._own(account, order_id)
        if order.status.is_terminal:
            raise OrderRejected("closed", code="order.rejected.closed")
        order = replace(order, status=OrderStatus.CANCELLED, ts=self.now_ms())
        self.orders_[order_id] = order
        self.bus.publish(OrderUpdate(self.now_ms(), order))
        self._book_changed(order.instrument)
        return order

    async def amend(self, account: str, order_id: str, amount: Decimal | None, price: Decimal | None) -> Order:
        order = self._own(account, order_id)
        req = replace(order.request, amount=amount or order.request.amount, price=price or order.request.price)
        order = replace(order, request=req, ts=self.now_ms())
        self.orders_[order_id] = order
        self._match(order)
        order = self.orders_[order_id]
        self.bus.publish(OrderUpdate(self.now_ms(), order))
        self._book_changed(order.instrument)
        return order

    async def cancel_all(self, account: str, instrument: str | None = None) -> int:
        todo = [o for o in self.orders(account) if instrument is None or o.instrument == instrument]
        for o in todo:
            await self.cancel(account, o.order_id)
        return len(todo)

    def orders(self, account: str, open_only: bool = True) -> Sequence[Order]:
        return [
            o
            for o in self.orders_.values()
            if o.request.account == account and (not open_only or o.status is OrderStatus.OPEN)
        ]

    def order(self, account: str, order_id: str) -> Order:
        return self._own(account, order_id)

    async def fills(self, account: str, since_ms: int = 0) -> Sequence[Fill]:
        return [f for f in self.fills_ if f.account == account and f.ts >= since_ms]

    def positions(self, account: str) -> Sequence[PositionView]:
        out = []
        for (acc, name), (size, avg) in self.positions_.items():
            if acc == account and size != 0:
                t = self.ticker(name)
                assert t is not None
                out.append(
                    PositionView(
                        name, size, avg, t.mark_price, self.index, initial_margin=0.01, maintenance_margin=0.005
                    )
                )
        return out

    def account_summary(self, account: str, currency: str) -> MarginReport:
        bal = float(self.cash.get(account, D(0)))
        im = float(self._im(account))
        return MarginReport(
            account, currency, "sm", bal, bal, bal, im, im * 0.75, bal - im, im / bal if bal else 0.0, 0.0
        )

    def subscribe(self, topics: Sequence[str]) -> Subscription:
        return self.bus.subscribe(topics)
