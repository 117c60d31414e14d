"""A small stand-in Desk returning real domain objects (used until/unless the real Desk is importable)."""

from __future__ import annotations

import math
from decimal import Decimal

from app.bus import Bus
from app.domain import (
    ChainRow,
    ChainSlice,
    DeskSnapshot,
    Fill,
    FillEvent,
    GreeksView,
    Instrument,
    Liquidity,
    MarginReport,
    OptionType,
    Order,
    OrderRequest,
    OrderStatus,
    PositionView,
    StrategyStatus,
)
from app.errors import InsufficientMargin, NotFound

T0 = 1_733_212_800_000  # 2024-12-03 08:00 UTC
EXPIRIES = (1_733_385_600_000, 1_733_990_400_000, 1_735_286_400_000)  # 5DEC24, 12DEC24 (W?), 27DEC24 (M)


def _ncdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _b76(f: float, k: float, t: float, v: float, call: bool) -> tuple[float, float]:
    d1 = (math.log(f / k) + 0.5 * v * v * t) / (v * math.sqrt(t))
    d2 = d1 - v * math.sqrt(t)
    if call:
        return f * _ncdf(d1) - k * _ncdf(d2), _ncdf(d1)
    return k * _ncdf(-d2) - f * _ncdf(-d1), _ncdf(d1) - 1


class FakeDesk:
    def __init__(self) -> None:
        self.bus = Bus()
        self.ts = T0
        self.index = 96_000.0
        self.positions: dict[str, tuple[float, float]] = {}
        self.orders = 0
        self.hedger = StrategyStatus("hedge-1", "delta_hedger", "dry_run", {"delta": 0.0, "band": (-0.05, 0.05)})
        self.controls: list[tuple[str, str]] = []

    def now_ms(self) -> int:
        return self.ts

    def advance(self, ms: int) -> None:
        self.ts += ms
        self.index *= 1.0001

    def subscribe(self, topics):
        return self.bus.subscribe(topics)

    def _chain(self, exp: int) -> ChainSlice:
        t = (exp - self.ts) / (365 * 86_400_000)
        f = self.index * 1.001
        rows = []
        for k in range(80_000, 112_001, 2_000):
            for ot in (OptionType.CALL, OptionType.PUT):
                iv = 0.55 + 0.3 * (math.log(k / f)) ** 2
                usd, delta = _b76(f, k, t, iv, ot is OptionType.CALL)
                mark = usd / f
                name = Instrument.parse(f"BTC-{_code(exp)}-{k}-{'C' if ot is OptionType.CALL else 'P'}").name
                rows.append(ChainRow(name, float(k), ot, round(mark * 0.97, 4), round(mark * 1.03 + 0.0001, 4),
                                     1.0, 2.0, mark, iv - 0.02, iv + 0.02, iv, delta, 1e-5, 40.0, -20.0, 10.0))
        atm = min(range(80_000, 112_001, 2_000), key=lambda k: abs(k - f))
        return ChainSlice("BTC", exp, f, self.index, float(atm), tuple(rows))

    def snapshot(self) -> DeskSnapshot:
        chains = {"BTC": tuple(self._chain(e) for e in EXPIRIES)}
        views = []
        for name, (size, avg) in self.positions.items():
            inst = Instrument.parse(name)
            g = GreeksView(delta=-0.25 * size, delta_bs=-0.26 * size, vega=0.001 * size, delta_usd=-0.25 * size * self.index)
            views.append(PositionView(name, size, avg, avg, 0.0, 0.0, g, inst.expiry_ms, "BTC"))
        tot = GreeksView(delta=sum(v.greeks.delta for v in views), delta_usd=sum(v.greeks.delta_usd for v in views))
        return DeskSnapshot(self.ts, "sim", {"btc_usd": self.index}, (), chains, {}, tuple(views), {"BTC": tot},
                            {"BTC": self._margin(0.0)}, (self.hedger,), ())

    def _margin(self, extra_im: float) -> MarginReport:
        im = 0.1 * sum(abs(s) for s, _ in self.positions.values()) + extra_im
        return MarginReport("main", "BTC", "sm", 10.0, 10.0, 10.0, im, im * 0.75, 10.0 - im, im / 10, im * 0.075)

    def what_if(self, orders: list[OrderRequest]) -> dict[str, MarginReport]:
        return {"BTC": self._margin(sum(0.1 * float(o.amount) for o in orders))}

    async def place(self, req: OrderRequest) -> Order:
        if self._margin(0.1 * float(req.amount)).available_funds < 0:
            raise InsufficientMargin("not enough available funds", shortfall=1.0)
        self.orders += 1
        oid = f"o{self.orders}"
        size, _ = self.positions.get(req.instrument, (0.0, 0.0))
        self.positions[req.instrument] = (size + req.side.sign * float(req.amount), float(req.price or 0))
        fill = Fill(f"t{self.orders}", oid, req.instrument, req.side, req.price or Decimal(0), req.amount,
                    Decimal("0.0001"), "BTC", Liquidity.TAKER, self.ts)
        self.bus.publish(FillEvent(ts=self.ts, fill=fill))
        return Order(oid, req, OrderStatus.FILLED, req.amount, req.price, self.ts)

    def strategy_control(self, run_id: str, action: str) -> None:
        if run_id != self.hedger.run_id:
            raise NotFound(f"no run {run_id}")
        self.controls.append((run_id, action))
        status = {"activate": "active", "pause": "paused", "kill": "killed"}.get(action, self.hedger.status)
        self.hedger = StrategyStatus(run_id, self.hedger.name, status, self.hedger.summary)


def _code(exp: int) -> str:
    from app.domain import expiry_code, utc_from_ms

    return expiry_code(utc_from_ms(exp))
