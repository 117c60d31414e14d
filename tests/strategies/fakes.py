"""In-test fakes: a mutable DeskView for the hedger's decision tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from app.domain import GreeksView, MarginReport, PositionView, Quote


def option_position(instrument: str, size: float, delta: float, gamma: float, *, delta_bs: float | None = None,
                    account: str = "main", tag: str | None = None) -> PositionView:
    """A PositionView of an option with given total greeks (coin; gamma coin per USD)."""
    g = GreeksView(delta=delta, delta_bs=delta if delta_bs is None else delta_bs, gamma=gamma)
    return PositionView(instrument, size, 0.05, 0.05, 0.0, 0.0, g, account=account, tag=tag)


def future_position(instrument: str, size: float, mark: float, account: str = "main") -> PositionView:
    """A PositionView of a future/perpetual (size in USD for inverse ones)."""
    return PositionView(instrument, size, mark, mark, 0.0, 0.0, GreeksView(), account=account)


def margin(mm_usage: float = 0.1) -> MarginReport:
    """A BTC margin report with the given maintenance usage."""
    return MarginReport("main", "BTC", "sm", 10.0, 10.0, 10.0, 1.0, mm_usage * 10, 9.0, 0.1, mm_usage)


@dataclass
class FakeView:
    """A DeskView whose contents a test sets directly."""

    now: int = 1_704_067_200_000
    pos: list[PositionView] = field(default_factory=list)
    quotes: dict[str, Quote] = field(default_factory=dict)
    index: float = 40_000.0
    margins: dict[str, MarginReport] = field(default_factory=lambda: {"BTC": margin()})

    def now_ms(self) -> int:
        return self.now

    def positions(self) -> Sequence[PositionView]:
        return self.pos

    def quote(self, instrument: str, venue: str | None = None) -> Quote | None:
        if venue is not None and f"{venue}:{instrument}" in self.quotes:
            return self.quotes[f"{venue}:{instrument}"]
        q = self.quotes.get(instrument)
        if q is not None and venue is not None and q.venue != venue:
            return None
        return q

    def index_price(self, underlying: str) -> float | None:
        return self.index

    def margin(self) -> Mapping[str, MarginReport]:
        return self.margins

    def set_perp(self, bid: float, ask: float, name: str = "BTC-PERPETUAL", venue: str = "sim", key: str | None = None) -> None:
        self.quotes[key or name] = Quote(self.now, name, bid, ask, 1e6, 1e6, mark_price=(bid + ask) / 2, venue=venue)


class Crash(BaseException):
    """Stands for the process dying at a chosen point (not an Exception, so nothing catches it)."""


class FakeRouter:
    """An in-memory venue for runner tests: orders rest until the test fills or cancels them; IOC fills at once.

    ``crash_after_place`` raises :class:`Crash` after the venue accepted an order (the ack is lost);
    ``on_place(request)`` lets a test look at the store at the moment of sending.
    """

    def __init__(self, clock) -> None:
        from decimal import Decimal

        self.clock = clock
        self.orders: dict[str, dict] = {}
        self.fills: list = []
        self.placed: list = []
        self.crash_after_place = False
        self.reject_next: str | None = None
        self.on_place = None
        self._n = 0
        self._t = 0
        self.D = Decimal

    def _order(self, oid: str):
        from app.domain import Order, OrderStatus

        o = self.orders[oid]
        return Order(oid, o["req"], OrderStatus(o["status"]), o["filled"], None, o["ts"])

    async def place(self, req):
        from app.errors import OrderRejected

        if self.on_place is not None:
            self.on_place(req)
        if any(o["req"].client_order_id == req.client_order_id for o in self.orders.values()):
            raise OrderRejected(f"duplicate client order id {req.client_order_id}", code="order.rejected.duplicate")
        if self.reject_next:
            code, self.reject_next = self.reject_next, None
            raise OrderRejected("refused", code=code)
        self._n += 1
        oid = f"V{self._n}"
        self.orders[oid] = {"req": req, "status": "open", "filled": self.D("0"), "ts": self.clock.now_ms()}
        self.placed.append(req)
        if req.tif.value == "immediate_or_cancel":
            self.fill(oid, req.amount, req.price)
        if self.crash_after_place:
            self.crash_after_place = False
            raise Crash("after place")
        return self._order(oid)

    def fill(self, oid: str, amount, price):
        from app.domain import Fill, Liquidity

        o = self.orders[oid]
        self._t += 1
        amount = self.D(str(amount))
        f = Fill(f"T{self._t}", oid, o["req"].instrument, o["req"].side, self.D(str(price)), amount, self.D("0.00001"), "BTC",
                 Liquidity.MAKER, self.clock.now_ms(), client_order_id=o["req"].client_order_id)
        self.fills.append(f)
        o["filled"] += amount
        if o["filled"] >= o["req"].amount:
            o["status"] = "filled"
        return f

    async def cancel(self, oid):
        from app.errors import NotFound

        if oid not in self.orders:
            raise NotFound(f"no order {oid}")
        o = self.orders[oid]
        if o["status"] == "open":
            o["status"] = "cancelled"
        return self._order(oid)

    async def amend(self, oid, amount=None, price=None):
        return self._order(oid)

    async def order_reports(self, open_only: bool = False):
        from app.ports import OrderStatusReport

        return [OrderStatusReport(oid, o["req"].client_order_id, o["req"].instrument, o["status"], o["filled"], o["req"].amount,
                                  o["req"].price, o["ts"]) for oid, o in self.orders.items() if not open_only or o["status"] == "open"]

    async def fill_reports(self, since_ms: int = 0):
        return [f for f in self.fills if f.ts >= since_ms]

    def perp_position(self) -> float:
        """Signed USD size of the perpetual from all fills."""
        return float(sum((f.amount if f.side.value == "buy" else -f.amount) for f in self.fills))


class RouterView(FakeView):
    """A FakeView whose perpetual position follows a FakeRouter's fills (the venue's truth)."""

    def __init__(self, router: FakeRouter, options: list, **kw) -> None:
        super().__init__(**kw)
        self.router = router
        self.options = options

    def positions(self):
        size = self.router.perp_position()
        pos = list(self.options)
        if size:
            pos.append(future_position("BTC-PERPETUAL", size, self.index))
        return pos

    def now_ms(self) -> int:
        return self.router.clock.now_ms()
