"""The fee the margin engine reserves before a trade is the fee the fill is charged (deribit.md §4.5), and
liquidation fees and steps of linear (USDC) instruments are in the right unit (§3.1-3.2)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.bus import Bus
from app.clock import SimClock
from app.domain import Instrument, OrderRequest, OrderType, Side
from app.engine.fees import FeeSchedule
from app.engine.ledger import EXTERNAL, INSURANCE, EntryKind
from app.engine.liquidation import LiquidationStep, Liquidator
from app.engine.margin import MarginEngine
from app.engine.matching import MatchingEngine

D = Decimal
T0 = 1_718_000_000_000
S = 65_000.0
INV = "BTC-28JUN24-100000-C"
LIN = "BTC_USDC-28JUN24-60000-P"


@pytest.fixture()
def eng() -> MarginEngine:
    e = MarginEngine(clock=SimClock(T0))
    for name in (INV, LIN):
        e.add_instrument(Instrument.parse(name))
    e.set_index("btc_usd", S)
    e.set_index("btc_usdc", S)
    e.set_mark(INV, 0.0001, iv=0.6, underlying=S)
    e.set_mark(LIN, 800.0, iv=0.6, underlying=S)
    e.open_account("a", "sm", {"BTC": D("1"), "USDC": D("100000")})
    return e


def fill_fee(name: str, amount: str, price: str, index: str | None = None) -> float:
    inst = Instrument.parse(name)
    sched = FeeSchedule.for_instrument(inst)
    if index is not None:
        sched.set_index(D(index))
    return float(sched.fee(inst.to_lots(D(amount)), inst.to_ticks(D(price)), maker=False))


@pytest.mark.parametrize(
    ("name", "ccy", "price", "fee"),
    [
        # Deribit's example: an option traded at 0.0001 BTC pays 0.0000125 BTC, not 0.0003.
        (INV, "BTC", "0.0001", 0.0000125),
        # A USDC option pays 0.0005 x index (32.5 USDC), under the cap of 12.5% of 800 (100 USDC).
        (LIN, "USDC", "800", 32.5),
    ],
)
def test_pre_trade_check_and_what_if_reserve_the_fee_the_fill_pays(eng, name, ccy, price, fee) -> None:
    assert eng.taker_fee(eng.instrument(name), 1.0, float(price)) == pytest.approx(fee, rel=1e-12)
    assert fill_fee(name, "1", price, index="65000" if ccy == "USDC" else None) == pytest.approx(fee, rel=1e-12)
    req = OrderRequest(name, Side.BUY, D("1"), D(price), OrderType.LIMIT, account="a")
    before = eng.report("a", ccy, with_distance=False)
    # A buy reserves its premium and its fee.
    assert before.margin_balance - eng.check_order(req) == pytest.approx(float(price) + fee, rel=1e-9)
    after = eng.what_if("a", [req])[ccy]
    assert before.balance - after.balance == pytest.approx(float(price) + fee, rel=1e-9)


def test_an_option_with_a_multiplier_pays_premium_and_fee_per_coin_of_underlying() -> None:
    eng = MarginEngine(clock=SimClock(T0))
    sol = Instrument.parse("SOL_USDC-28JUN24-150-C").with_spec(contract_size=D("10"), min_amount=D("1"))
    eng.add_instrument(sol)
    eng.set_index("sol_usdc", 150.0)
    eng.set_mark(sol.name, 5.0, iv=0.8, underlying=150.0)
    eng.open_account("a", "sm", {"USDC": D("100000")})
    # 2 contracts x 10 SOL at 5 USDC: premium 100; fee min(0.0005 x 150 x 20, 12.5% x 100) = 1.5 USDC.
    req = OrderRequest(sol.name, Side.BUY, D("2"), D("5"), OrderType.LIMIT, account="a")
    assert 100_000 - eng.check_order(req) == pytest.approx(101.5, rel=1e-12)
    eng.add_order("a", "probe", sol.name, Side.BUY, D("2"), D("5"))
    assert eng.report("a", "USDC", with_distance=False, publish=False).initial_margin == pytest.approx(100.0)
    sched = FeeSchedule.for_instrument(sol)
    sched.set_index(D("150"))
    assert sched.fee(sol.to_lots(D("2")), sol.to_ticks(D("5")), maker=False) == D("1.5")


def _world(*names: str) -> tuple[MarginEngine, MatchingEngine, Liquidator]:
    clock = SimClock(T0)
    margin = MarginEngine(clock=clock, bus=Bus())
    engine = MatchingEngine(clock, pre_trade_check=margin.pre_trade_check)
    engine.on_event(margin.on_engine_event)
    for name in names:
        inst = Instrument.parse(name)
        engine.add_instrument(inst, band=None)
        margin.add_instrument(inst)
    margin.accounts.ledger.transfer(T0, EntryKind.INSURANCE, "USDC", EXTERNAL, INSURANCE, D("100000"), "seed")
    return margin, engine, Liquidator(margin, engine)


def _market(margin: MarginEngine, engine: MatchingEngine, s: float, put: float) -> None:
    margin.set_index("btc_usdc", s)
    margin.set_mark(LIN, put, iv=0.6, underlying=s)
    engine.set_mark(LIN, D(repr(put)))
    if "BTC_USDC-PERPETUAL" in margin.instruments:
        margin.set_mark("BTC_USDC-PERPETUAL", s)
        engine.set_mark("BTC_USDC-PERPETUAL", D(repr(s)))


def test_liquidating_a_usdc_option_charges_the_coin_rate_at_the_index() -> None:
    margin, engine, liq = _world(LIN)
    _market(margin, engine, 65_000.0, 1300.0)
    margin.open_account("lev", "sm", {"USDC": D("8000")})
    margin.open_account("mm", "sm", {"USDC": D("10000000")})
    engine.submit(OrderRequest(LIN, Side.BUY, D("1"), D("1300"), account="mm"))
    engine.submit(OrderRequest(LIN, Side.SELL, D("1"), D("1300"), account="lev"))
    _market(margin, engine, 55_250.0, 6500.0)
    engine.submit(OrderRequest(LIN, Side.SELL, D("1"), D("6600"), account="mm"))
    steps = [e for e in liq.scan() if isinstance(e, LiquidationStep)]
    assert steps and steps[0].filled == D("1")
    # 0.0019 BTC per contract of underlying, paid in USDC at the index: 104.975 USDC (not 0.0019 USDC).
    assert float(steps[0].fee) == pytest.approx(0.0019 * 55_250.0, rel=1e-9)


def test_a_pm_delta_hedge_through_a_usdc_perpetual_is_one_usd_step_at_a_time() -> None:
    margin, engine, liq = _world(LIN, "BTC_USDC-PERPETUAL")
    _market(margin, engine, 65_000.0, 1300.0)
    margin.open_account("lev", "pm", {"USDC": D("350000")})
    margin.open_account("mm", "sm", {"USDC": D("100000000")})
    engine.submit(OrderRequest(LIN, Side.BUY, D("10"), D("1300"), account="mm"))
    engine.submit(OrderRequest(LIN, Side.SELL, D("10"), D("1300"), account="lev"))
    _market(margin, engine, 45_000.0, 15_500.0)
    # Nobody offers the option back; the perpetual has a deep bid to take the hedge.
    engine.submit(OrderRequest("BTC_USDC-PERPETUAL", Side.BUY, D("100"), D("44900"), account="mm"))
    steps = [e for e in liq.scan() if isinstance(e, LiquidationStep) and e.reason == "delta_hedge"]
    assert steps
    step_usd = liq.params("USDC").future_step_usd
    # The $2,000 step in coin at the perpetual's mark (0.044 BTC after rounding to the lot), not 9.8 BTC at once.
    assert all(s.amount <= D(repr(step_usd / 45_000.0)) for s in steps)
    assert steps[0].amount == D("0.044")
