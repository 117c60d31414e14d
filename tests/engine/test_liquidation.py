"""Scripted crash: an over-levered account is liquidated step by step through real books; the insurance fund
takes the fees, a bankrupt deficit is covered by the fund and the rest socialised over the session's winners."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.bus import Bus
from app.clock import SimClock
from app.domain import Instrument, OrderRequest, Side
from app.engine.ledger import EXTERNAL, INSURANCE, SOCIALISED, EntryKind
from app.engine.liquidation import Bankruptcy, LiquidationEnded, LiquidationStarted, LiquidationStep, Liquidator
from app.engine.margin import MarginEngine
from app.engine.margin_params import LiquidationParams
from app.engine.matching import MatchingEngine
from app.engine.settlement import Settlement

D = Decimal
T0 = 1_718_000_000_000
PERP = "BTC-PERPETUAL"
OPT = "BTC-28JUN24-60000-P"


class World:
    """Matching engine + margin engine wired as the Desk wires them, with a funded insurance fund."""

    def __init__(self, model: str = "sm", fund: str = "1", step_usd: float = 400_000.0) -> None:
        self.clock = SimClock(T0)
        self.bus = Bus()
        self.sub = self.bus.subscribe()
        self.margin = MarginEngine(clock=self.clock, bus=self.bus)
        self.engine = MatchingEngine(self.clock, pre_trade_check=self.margin.pre_trade_check)
        self.engine.on_event(self.margin.on_engine_event)
        for name in (PERP, OPT):
            inst = Instrument.parse(name)
            self.engine.add_instrument(inst, band=None)
            self.margin.add_instrument(inst)
        params = {"BTC": LiquidationParams(future_fee=0.0075, future_step_usd=step_usd, option_step=1.0)}
        self.liq = Liquidator(self.margin, self.engine, bus=self.bus, params=params)
        self.margin.accounts.ledger.transfer(T0, EntryKind.INSURANCE, "BTC", EXTERNAL, INSURANCE, D(fund), "seed")
        self.market(65_000.0)
        self.margin.open_account("lev", model, {"BTC": D("3")})  # type: ignore[arg-type]
        for mm in ("mm1", "mm2"):
            self.margin.open_account(mm, "sm", {"BTC": D("500")})

    def market(self, btc: float, put_mark: float = 0.02, put_iv: float = 0.6) -> None:
        self.margin.set_index("btc_usd", btc)
        self.margin.set_mark(PERP, btc)
        self.margin.set_mark(OPT, put_mark, iv=put_iv, underlying=btc)
        self.engine.set_mark(PERP, D(repr(btc)))
        self.engine.set_mark(OPT, D(repr(put_mark)))

    def order(self, account: str, name: str, side: Side, amount: str, price: str) -> list:
        return self.engine.submit(OrderRequest(name, side, D(amount), D(price), account=account))

    def conservation(self) -> dict[str, int]:
        c = self.margin.accounts.ledger.conservation("BTC")
        assert c["users"] + c["fees"] + c["insurance"] + c["socialised"] + c["clearing"] == c["deposits"]
        return c


def test_crash_liquidates_step_by_step_fund_takes_fees_loss_is_socialised() -> None:
    w = World(fund="1")
    # Two market makers sell the perpetual to the levered account at 65,000 (60 BTC long on 3 BTC).
    w.order("mm1", PERP, Side.SELL, "2600000", "65000")
    w.order("mm2", PERP, Side.SELL, "1300000", "65000")
    ev = w.order("lev", PERP, Side.BUY, "3900000", "65000")
    assert [type(e).__name__ for e in ev].count("Filled") == 2
    assert w.margin.report("lev", "BTC", with_distance=False).mm_usage < 1.0
    # An order that would overdraw is refused with the shortfall.
    rej = w.order("lev", PERP, Side.BUY, "9000000", "65000")
    assert type(rej[0]).__name__ == "Rejected" and rej[0].code == "margin.insufficient" and "short by" in rej[0].message

    # The crash: the index falls 9 %; the makers quote bids only down to 58,000.
    w.market(59_150.0)
    w.order("mm1", PERP, Side.BUY, "1000000", "59000")
    w.order("mm2", PERP, Side.BUY, "1500000", "58500")
    w.order("mm1", PERP, Side.BUY, "2000000", "58000")
    w.order("lev", PERP, Side.SELL, "10", "70000")  # a resting order the liquidation must cancel
    events = w.liq.scan()
    assert isinstance(events[0], LiquidationStarted)
    assert w.margin.accounts.get("lev").locked
    assert w.engine.open_orders("lev") == []
    # While locked the trader cannot place orders.
    locked = w.order("lev", PERP, Side.SELL, "10", "59100")
    assert type(locked[0]).__name__ == "Rejected" and locked[0].code == "margin.locked"

    events += w.liq.run("lev", "BTC")
    steps = [e for e in events if isinstance(e, LiquidationStep)]
    assert len(steps) >= 8  # 3,900,000 USD in 400,000 USD steps: incremental, not one block
    assert all(s.side == "sell" and s.filled > 0 and s.fee > 0 for s in steps)
    ends = [e for e in events if isinstance(e, LiquidationEnded)]
    bankrupt = [e for e in events if isinstance(e, Bankruptcy)]
    assert len(ends) == 1 and ends[0].outcome == "bankrupt"
    assert len(bankrupt) == 1
    b = bankrupt[0]
    assert b.insurance_paid == D("1") + sum(s.fee for s in steps)  # the fund (seed + fees) is used up first
    assert b.socialised == b.deficit - b.insurance_paid > 0
    ledger = w.margin.accounts.ledger
    assert ledger.balance("lev", "BTC") == 0  # negative balance protection
    assert ledger.balance(INSURANCE, "BTC") == 0
    assert ledger.balance(SOCIALISED, "BTC") == -b.socialised
    assert not w.margin.accounts.get("lev").locked
    fee_entries = [e for e in ledger.entries("lev") if e.kind is EntryKind.LIQUIDATION_FEE]
    assert len(fee_entries) == len(steps)
    w.conservation()

    # Daily settlement: the winners (the makers, short from 65,000) pay the socialised loss pro rata.
    before = {m: ledger.balance(m, "BTC") for m in ("mm1", "mm2")}
    Settlement(w.margin.accounts).daily({PERP: D("59150")}, T0 + 3_600_000)
    assert ledger.balance(SOCIALISED, "BTC") == 0
    gains = {m: ledger.balance(m, "BTC") - before[m] for m in before}
    assert all(g > 0 for g in gains.values())
    c = w.conservation()
    assert c["clearing"] == 0

    published = w.sub.drain()
    topics = {e.topic for e in published}
    assert {"liquidation_started", "liquidation_step", "liquidation_ended", "bankruptcy"} <= topics


def test_partial_liquidation_stops_when_healthy() -> None:
    w = World(fund="1", step_usd=200_000.0)
    w.order("mm1", PERP, Side.SELL, "2600000", "65000")
    w.order("lev", PERP, Side.BUY, "2600000", "65000")  # 40 BTC on 3 BTC
    w.market(61_000.0)  # loss ~2.6 BTC: MM now above the margin balance
    rep = w.margin.report("lev", "BTC", with_distance=False)
    assert rep.mm_usage >= 1.0
    w.order("mm2", PERP, Side.BUY, "3000000", "60990")
    events = w.liq.scan() + w.liq.run("lev", "BTC")
    end = [e for e in events if isinstance(e, LiquidationEnded)]
    assert end and end[0].outcome == "healthy"
    left = w.margin.accounts.position("lev", PERP).size
    assert 0 < left < D("2600000")  # only part of the position was closed
    assert w.margin.report("lev", "BTC", with_distance=False).mm_usage < 1.0
    fees = sum(e.fee for e in events if isinstance(e, LiquidationStep))
    assert w.margin.accounts.ledger.balance(INSURANCE, "BTC") == D("1") + fees
    w.conservation()


def test_liquidation_pauses_on_a_stale_index() -> None:
    w = World()
    w.order("mm1", PERP, Side.SELL, "2600000", "65000")
    w.order("lev", PERP, Side.BUY, "2600000", "65000")
    w.market(60_000.0)
    w.margin.mark_index_stale("btc_usd")
    assert w.liq.scan() == []
    assert not w.margin.accounts.get("lev").locked
    w.margin.mark_index_stale("btc_usd", False)
    w.order("mm2", PERP, Side.BUY, "3000000", "59990")
    assert isinstance(w.liq.scan()[0], LiquidationStarted)


def test_pm_liquidates_largest_risk_contributor_first() -> None:
    w = World(model="pm", fund="1", step_usd=200_000.0)
    w.margin.open_account("opt_mm", "sm", {"BTC": D("500")})
    # Short puts (the big risk contributor in a crash) and a small long perpetual.
    w.order("opt_mm", OPT, Side.BUY, "2", "0.0200")
    w.order("lev", OPT, Side.SELL, "2", "0.0200")
    w.order("mm1", PERP, Side.SELL, "200000", "65000")
    w.order("lev", PERP, Side.BUY, "200000", "65000")
    assert w.margin.accounts.position("lev", OPT).size == D("-2")
    w.market(52_000.0, put_mark=0.18, put_iv=0.9)
    rep = w.margin.report("lev", "BTC", with_distance=False)
    assert rep.mm_usage >= 1.0
    w.order("opt_mm", OPT, Side.SELL, "2", "0.1900")
    w.order("mm2", PERP, Side.BUY, "1000000", "51990")
    events = w.liq.scan()
    steps = [e for e in events if isinstance(e, LiquidationStep)]
    assert steps and steps[0].instrument == OPT and steps[0].side == "buy"
    w.conservation()


@pytest.mark.parametrize("model", ["sm", "pm"])
def test_healthy_accounts_are_left_alone(model: str) -> None:
    w = World(model=model)
    w.order("mm1", PERP, Side.SELL, "100000", "65000")
    w.order("lev", PERP, Side.BUY, "100000", "65000")
    assert w.liq.scan() == []
    assert not w.margin.accounts.get("lev").locked
