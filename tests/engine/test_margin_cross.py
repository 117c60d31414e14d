"""Cross margin: currencies collateralise each other in USD (after haircuts); segregated accounts do not."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from app.domain import Instrument, OrderRequest, Side
from app.engine import margin_params
from app.errors import InsufficientMargin
from tests.engine.margin_world import BTC_INDEX, ETH_INDEX, make_engine
from tests.engine.test_liquidation import World

D = Decimal


def _engine():
    eng = make_engine()
    eng.open_account("seg", "sm", {"BTC": D("0.1"), "ETH": D("100")})
    eng.open_account("x", "sm", {"BTC": D("0.1"), "ETH": D("100")}, cross=True)
    eng.open_account("mm", "sm", {"BTC": D("1000"), "ETH": D("100000")})
    return eng


def test_cross_totals_in_usd() -> None:
    eng = _engine()
    tot = eng.cross_summary("x")
    assert tot["total_margin_balance_usd"] == pytest.approx(0.1 * BTC_INDEX + 100 * ETH_INDEX)
    assert tot["total_initial_margin_usd"] == 0
    rep = eng.report("x", "BTC", with_distance=False)
    assert rep.details["cross"]["total_available_funds_usd"] == pytest.approx(tot["total_available_funds_usd"])
    assert "cross" not in eng.report("seg", "BTC", with_distance=False).details


def test_other_currencies_back_an_order_only_under_cross() -> None:
    eng = _engine()
    req = OrderRequest("BTC-PERPETUAL", Side.BUY, D("1000000"), D("65000"), account="seg")  # ~15 BTC: IM ~0.32 BTC
    with pytest.raises(InsufficientMargin):
        eng.check_order(req)
    avail = eng.check_order(replace(req, account="x"))
    eth_free = 100 * ETH_INDEX / BTC_INDEX
    assert avail == pytest.approx(eth_free + 0.1 - (0.32 + 0.0077), abs=0.01)


def test_haircut_reduces_cross_collateral(monkeypatch: pytest.MonkeyPatch) -> None:
    eng = _engine()
    eth = margin_params.MARGIN_PARAMS["ETH"]
    monkeypatch.setitem(margin_params.MARGIN_PARAMS, "ETH", replace(eth, haircut=0.5))
    tot = eng.cross_summary("x")
    assert tot["total_margin_balance_usd"] == pytest.approx(0.1 * BTC_INDEX + 0.5 * 100 * ETH_INDEX)
    req = OrderRequest("BTC-PERPETUAL", Side.BUY, D("1000000"), D("65000"), account="x")
    full = 100 * ETH_INDEX / BTC_INDEX
    assert eng.check_order(req) == pytest.approx(0.5 * full + 0.1 - (0.32 + 0.0077), abs=0.01)


def test_cross_account_is_liquidated_on_totals() -> None:
    for cross, liquidated in ((False, True), (True, False)):
        w = World()
        w.margin.add_instrument(Instrument.parse("ETH-PERPETUAL"))
        w.margin.set_index("eth_usd", ETH_INDEX)
        w.margin.open_account("c", "sm", {"BTC": D("0.5"), "ETH": D("50")}, cross=cross)
        w.order("mm1", "BTC-PERPETUAL", Side.SELL, "600000", "65000")
        w.margin.liquidating = "c"  # seed the position without a pre-trade check (the test is about the trigger)
        w.order("c", "BTC-PERPETUAL", Side.BUY, "600000", "65000")
        w.margin.liquidating = None
        w.market(60_500.0)  # ~0.68 BTC loss on 0.5 BTC: bankrupt in BTC alone, small against 50 ETH
        w.order("mm2", "BTC-PERPETUAL", Side.BUY, "1000000", "60400")
        events = w.liq.scan()
        assert bool(events) is liquidated, cross
