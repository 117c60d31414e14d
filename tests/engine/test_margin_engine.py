"""MarginEngine: account identities, what-if without state change, incremental pre-trade check, distance, alerts."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from app.bus import Bus
from app.domain import Instrument, OrderRequest, OrderType, Side
from app.errors import InsufficientMargin, InvalidInput, StaleData, UnknownInstrument
from tests.engine.margin_world import funded, make_engine, set_market

D = Decimal


def trade(eng, name: str, buyer: str, seller: str, amount: str, price: str | float) -> None:
    inst = eng.instrument(name)
    eng.accounts.apply_trade(inst, buyer, seller, D(amount), D(str(price)), eng.clock.now_ms())


def rounded_price(eng, name: str) -> Decimal:
    inst = eng.instrument(name)
    return inst.round_price(D(repr(eng.mark_of(name))))


@pytest.fixture()
def eng():
    e = make_engine()
    funded(e, "alice")
    funded(e, "bob")
    funded(e, "mm", btc="1000", eth="10000")
    return e


def test_deribit_identities_hold(eng) -> None:
    trade(eng, "BTC-PERPETUAL", "alice", "mm", "20000", 64_000)
    trade(eng, "BTC-28JUN24-70000-C", "mm", "alice", "2", rounded_price(eng, "BTC-28JUN24-70000-C"))
    rep = eng.report("alice", "BTC", with_distance=False)
    d = rep.details
    assert rep.equity == pytest.approx(rep.balance + d["futures_session_upl"] + d["futures_session_rpl"] + d["options_value"], abs=1e-12)
    assert rep.margin_balance == pytest.approx(rep.equity - d["options_value"], abs=1e-12)
    assert rep.available_funds == pytest.approx(rep.margin_balance - rep.initial_margin, abs=1e-12)
    assert rep.mm_usage == pytest.approx(rep.maintenance_margin / rep.margin_balance)
    # Session PnL of the long perpetual bought below the mark is positive and in coin.
    assert d["futures_session_upl"] == pytest.approx(20_000 / 64_000 - 20_000 / eng.mark_of("BTC-PERPETUAL"), rel=1e-9)
    # Options value of a short call is negative; premium received is in the balance.
    assert d["options_value"] < 0
    assert rep.balance > 10


def test_sm_report_sums_positions(eng) -> None:
    trade(eng, "BTC-28JUN24", "alice", "mm", "65000", 65_400)
    rep = eng.report("alice", "BTC", with_distance=False)
    coin = 65_000 / eng.mark_of("BTC-28JUN24")
    assert rep.initial_margin == pytest.approx(coin * (0.02 + coin * 0.00005), rel=1e-12)
    assert rep.maintenance_margin == pytest.approx(coin * (0.01 + coin * 0.00005), rel=1e-12)


def test_what_if_changes_nothing_and_matches_the_trade(eng) -> None:
    before_ledger = len(eng.accounts.ledger)
    before = eng.report("alice", "BTC", with_distance=False)
    price = rounded_price(eng, "BTC-28JUN24-70000-C")
    req = OrderRequest("BTC-28JUN24-70000-C", Side.SELL, D("3"), price, account="alice")
    wi = eng.what_if("alice", [req])["BTC"]
    after = eng.report("alice", "BTC", with_distance=False)
    assert len(eng.accounts.ledger) == before_ledger
    assert after == before
    # Trading for real gives the what-if's margin (fees aside: the what-if charges the taker fee).
    trade(eng, "BTC-28JUN24-70000-C", "mm", "alice", "3", price)
    real = eng.report("alice", "BTC", with_distance=False)
    assert wi.initial_margin == pytest.approx(real.initial_margin, rel=1e-12)
    assert wi.maintenance_margin == pytest.approx(real.maintenance_margin, rel=1e-12)
    fee = 0.0003 * 3
    assert wi.balance == pytest.approx(real.balance - fee, abs=1e-9)


@pytest.mark.parametrize("model", ["sm", "pm"])
def test_incremental_check_equals_full_evaluation(eng, model: str) -> None:
    eng.set_model("alice", model)
    trade(eng, "BTC-PERPETUAL", "alice", "mm", "30000", 65_000)
    trade(eng, "BTC-28JUN24-60000-P", "mm", "alice", "2", rounded_price(eng, "BTC-28JUN24-60000-P"))
    eng.add_order("alice", 1, "BTC-28JUN24-70000-C", Side.SELL, D("1"), D("0.02"))
    eng.add_order("alice", 2, "BTC-27SEP24", Side.BUY, D("10000"), D("66000"))
    for name, side, amount, price in [
        ("BTC-28JUN24-70000-C", Side.SELL, "2", "0.0150"),
        ("BTC-27SEP24-80000-C", Side.SELL, "1.5", "0.0200"),
        ("BTC-27SEP24-80000-C", Side.BUY, "1", "0.0200"),
        ("BTC-PERPETUAL", Side.SELL, "50000", "65000"),
        ("BTC-28JUN24", Side.BUY, "20000", "65400"),
    ]:
        req = OrderRequest(name, side, D(amount), D(price), account="alice")
        avail = eng.check_order(req)
        # Full: the order resting as an open order.
        eng.add_order("alice", "probe", name, side, D(amount), D(price))
        full = eng.report("alice", "BTC", with_distance=False, publish=False)
        eng.remove_order("alice", "probe")
        inst = Instrument.parse(name)
        fee = float(inst.taker_fee) * (float(amount) if inst.is_option else float(amount) / float(price))
        base_im = eng.report("alice", "BTC", with_distance=False, publish=False).initial_margin
        fee_part = fee if full.initial_margin > base_im else 0.0
        assert avail == pytest.approx(full.available_funds - fee_part, abs=1e-10), (model, name, side)


@pytest.mark.parametrize("model", ["sm", "pm"])
def test_rejection_carries_the_shortfall(model: str) -> None:
    eng = make_engine()
    funded(eng, "small", model, btc="0.05", eth="0")
    req = OrderRequest("BTC-PERPETUAL", Side.BUY, D("200000"), D("65000"), account="small")
    with pytest.raises(InsufficientMargin) as exc:
        eng.check_order(req)
    shortfall = exc.value.details["shortfall"]
    assert shortfall > 0
    assert exc.value.details["currency"] == "BTC"
    # Adding exactly the shortfall (plus dust) makes the same order pass.
    eng.accounts.deposit("small", "BTC", D(str(round(shortfall + 1e-9, 10))))
    assert eng.check_order(req) >= -1e-12
    reason = eng.pre_trade_check(OrderRequest("BTC-PERPETUAL", Side.BUY, D("2000000"), D("65000"), account="small"))
    assert reason is not None and reason[0] == "margin.insufficient"


def test_reducing_order_passes_even_underwater(eng) -> None:
    trade(eng, "BTC-PERPETUAL", "bob", "mm", "3000000", 65_000)  # ~46 BTC long on 10 BTC
    set_market(eng, 50_000.0, 3_500.0)
    rep = eng.report("bob", "BTC", with_distance=False)
    assert rep.available_funds < 0
    eng.check_order(OrderRequest("BTC-PERPETUAL", Side.SELL, D("100000"), D("50000"), account="bob"))
    with pytest.raises(InsufficientMargin):
        eng.check_order(OrderRequest("BTC-PERPETUAL", Side.BUY, D("100000"), D("50000"), account="bob"))


def test_bad_input_is_typed_and_changes_nothing(eng) -> None:
    version = eng.marks_version
    marks = dict(eng.marks)
    index = dict(eng.index)
    with pytest.raises(InvalidInput):
        eng.set_mark("BTC-PERPETUAL", math.nan)
    with pytest.raises(InvalidInput):
        eng.set_index("btc_usd", -5.0)
    with pytest.raises(InvalidInput):
        eng.set_marks({"BTC-PERPETUAL": (66_000.0, None, None), "BTC-28JUN24": (math.inf, None, None)})
    with pytest.raises(UnknownInstrument):
        eng.set_mark("BTC-1JAN30", 1.0)
    with pytest.raises(UnknownInstrument):
        eng.what_if("alice", [OrderRequest("BTC-1JAN30", Side.BUY, D("10"), D("1"), account="alice")])
    with pytest.raises(InvalidInput):
        OrderRequest("BTC-PERPETUAL", Side.BUY, D("-10"), D("1"), account="alice")
    with pytest.raises(InvalidInput):
        eng.accounts.deposit("alice", "BTC", D("-1"))
    assert eng.marks_version == version and eng.marks == marks and eng.index == index
    ledger_len = len(eng.accounts.ledger)
    eng.mark_index_stale("btc_usd")
    req = OrderRequest("BTC-PERPETUAL", Side.BUY, D("10"), D("65000"), account="alice")
    with pytest.raises(StaleData):
        eng.check_order(req)
    with pytest.raises(StaleData):
        eng.what_if("alice", [req])
    assert eng.pre_trade_check(req)[0] == "data.stale_index"
    assert len(eng.accounts.ledger) == ledger_len
    eng.mark_index_stale("btc_usd", False)
    eng.check_order(req)


@pytest.mark.parametrize(("model", "usd"), [("sm", "2000000"), ("pm", "600000")])
def test_distance_to_liquidation_is_a_root_of_the_model(eng, model: str, usd: str) -> None:
    eng.set_model("alice", model)
    trade(eng, "BTC-PERPETUAL", "alice", "mm", usd, 65_000)  # a leveraged long on 10 BTC
    trade(eng, "BTC-28JUN24-60000-P", "mm", "alice", "5", rounded_price(eng, "BTC-28JUN24-60000-P"))
    rep = eng.report("alice", "BTC")
    assert rep.distance_down is not None and -0.5 < rep.distance_down < 0
    ev = eng.evaluate("alice", "BTC", move=rep.distance_down)
    assert ev.margin_balance - ev.maintenance_margin == pytest.approx(0.0, abs=1e-6)
    # Just before the root the account is still safe, just after it is liquidatable.
    safe = eng.evaluate("alice", "BTC", move=rep.distance_down * 0.98)
    assert safe.margin_balance > safe.maintenance_margin
    est = rep.details["liquidation"]["estimated_liquidation_price"]["BTC-PERPETUAL"]
    assert est == pytest.approx(eng.mark_of("BTC-PERPETUAL") * (1 + rep.distance_down))
    # Moving the market to the root makes MM usage reach 100 %.
    set_market(eng, 65_000.0 * (1 + rep.distance_down * 1.01), 3_500.0)
    assert eng.report("alice", "BTC", with_distance=False).mm_usage >= 1.0


def test_pm_region_over_vol_shifts(eng) -> None:
    eng.set_model("alice", "pm")
    # 14 short inverse calls on 10 BTC: the loss is bounded by 14 coin, so a large enough rally liquidates.
    trade(eng, "BTC-28JUN24-70000-C", "mm", "alice", "14", rounded_price(eng, "BTC-28JUN24-70000-C"))
    dist = eng.distance_to_liquidation("alice", "BTC", vol_shifts=(0.0, 0.5, 1.0))
    ups = [r["up"] for r in dist["region"]]
    assert all(u is not None and u > 0 for u in ups)
    # More vol brings a short-call book's liquidation closer.
    assert ups[0] >= ups[1] >= ups[2] and ups[0] > ups[2]
    for r in dist["region"]:
        ev = eng.evaluate("alice", "BTC", move=r["up"], vol_shift=r["vol_shift"])
        assert ev.margin_balance == pytest.approx(ev.maintenance_margin, abs=1e-6)


def test_alerts_are_published_on_level_changes() -> None:
    bus = Bus()
    sub = bus.subscribe({"margin_alert"})
    eng = make_engine(bus)
    funded(eng, "alice")
    funded(eng, "mm", btc="1000")
    # ~215 BTC long on 10 BTC: MM usage ~45 % at 65,000; ~70 % at 64,000; ~95 % at 63,500.
    eng.accounts.apply_trade(eng.instrument("BTC-PERPETUAL"), "alice", "mm", D("14000000"), D("65000"), eng.clock.now_ms())
    usages = []
    for btc in (65_000.0, 64_000.0, 63_500.0, 65_000.0):
        set_market(eng, btc, 3_500.0)
        usages.append(eng.report("alice", "BTC", with_distance=False).mm_usage)
    assert usages[0] < 0.5 <= usages[1] < 0.8 <= usages[2] < 1.0
    events = sub.drain()
    assert [e.level for e in events] == [0.5, 0.8, 0.0]
    assert "back below" in events[-1].message
    assert all(e.account == "alice" and e.currency == "BTC" for e in events)


def test_market_order_what_if_uses_the_mark(eng) -> None:
    req = OrderRequest("BTC-PERPETUAL", Side.BUY, D("10000"), None, OrderType.MARKET, account="alice")
    rep = eng.what_if("alice", [req])["BTC"]
    coin = 10_000 / eng.mark_of("BTC-PERPETUAL")
    assert rep.initial_margin == pytest.approx(coin * (0.02 + coin * 0.00005), rel=1e-12)


def test_futures_increment_on_the_currency_total_when_configured(eng, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from app.engine import margin_params

    btc = margin_params.MARGIN_PARAMS["BTC"]
    trade(eng, "BTC-PERPETUAL", "alice", "mm", "650000", 65_000)
    trade(eng, "BTC-28JUN24", "mm", "alice", "327000", 65_400)
    per_instrument = eng.report("alice", "BTC", with_distance=False).initial_margin
    monkeypatch.setitem(margin_params.MARGIN_PARAMS, "BTC", replace(btc, sm=replace(btc.sm, increment_per_instrument=False)))
    eng.set_model("alice", "sm")  # invalidates caches
    q1 = 650_000 / eng.mark_of("BTC-PERPETUAL")
    q2 = 327_000 / eng.mark_of("BTC-28JUN24")
    rep = eng.report("alice", "BTC", with_distance=False)
    assert rep.initial_margin == pytest.approx((q1 + q2) * (0.02 + (q1 + q2) * 0.00005), rel=1e-12)
    assert rep.initial_margin > per_instrument
    req = OrderRequest("BTC-PERPETUAL", Side.BUY, D("100000"), D("65000"), account="alice")
    avail = eng.check_order(req)
    eng.add_order("alice", "p", "BTC-PERPETUAL", Side.BUY, D("100000"), D("65000"))
    full = eng.report("alice", "BTC", with_distance=False, publish=False)
    assert avail == pytest.approx(full.available_funds - 0.0005 * 100_000 / 65_000, abs=1e-10)


def test_deribit_account_summary_identities_on_the_official_example() -> None:
    from app.engine.accounts import deribit_summary

    # get_account_summary docs example (deribit.md §1.2): the derived figures match to 1e-8.
    d = deribit_summary(302.60065765, 0.05921555, -0.03258105, -0.0086, 1.24669592)
    assert d["equity"] == pytest.approx(302.61869214, abs=2e-8)
    assert d["margin_balance"] == pytest.approx(302.62729214, abs=2e-8)
    assert d["available_funds"] == pytest.approx(301.38059622, abs=2e-8)
    assert d["available_withdrawal_funds"] == pytest.approx(301.35396172, abs=2e-8)


def test_withdrawal_is_limited_to_available_withdrawal_funds(eng) -> None:
    trade(eng, "BTC-PERPETUAL", "alice", "mm", "650000", 65_000)  # IM ~0.2 BTC of 10 BTC
    rep = eng.report("alice", "BTC", with_distance=False)
    limit = rep.details["available_withdrawal_funds"]
    assert limit == pytest.approx(rep.balance - rep.initial_margin)
    n = len(eng.accounts.ledger)
    with pytest.raises(InvalidInput) as exc:
        eng.withdraw("alice", "BTC", D(str(round(limit + 0.001, 6))))
    assert exc.value.code == "account.withdrawal" and len(eng.accounts.ledger) == n
    eng.withdraw("alice", "BTC", D("5"))
    assert eng.accounts.balance("alice", "BTC") == D("5")
    kinds = [e.kind.value for e in eng.accounts.ledger.entries("alice")]
    assert kinds[0] == "deposit" and kinds[-1] == "withdrawal"


def test_report_with_region(eng) -> None:
    eng.set_model("alice", "pm")
    trade(eng, "BTC-PERPETUAL", "alice", "mm", "600000", 65_000)
    rep = eng.report("alice", "BTC", with_region=True)
    region = rep.details["liquidation"]["region"]
    assert [r["vol_shift"] for r in region] == [-0.5, -0.25, 0.0, 0.25, 0.5, 1.0]
    same = next(r for r in region if r["vol_shift"] == 0.0)
    assert same["down"] == pytest.approx(rep.distance_down, abs=1e-6)  # futures only: vol does not matter
