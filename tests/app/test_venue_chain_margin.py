"""The venue desk's pure parts: chain rows from venue quotes (greeks converted to the desk's units) and margin from
the venue's account figures and the local replica."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from app.domain import Instrument, OrderRequest, OrderType, Position, Quote, Side
from app.ports import AccountReport
from app.pricing import black76, implied_vol_coin, inverse_greeks
from app.venue_chain import chain_slice
from app.venue_margin import build_replica, report_from_account

NOW = int(datetime(2024, 1, 1, 8, tzinfo=timezone.utc).timestamp() * 1000)
F, K, IV = 61_000.0, 60_000.0, 0.6


def _opt(name: str) -> Instrument:
    return Instrument.parse(name)


def _usd_greeks(inst: Instrument) -> tuple[float, ...]:
    t = inst.years_to_expiry(NOW)
    g = black76(F, K, t, IV, inst.is_call)
    return float(g.price), float(g.delta), float(g.gamma), float(g.vega) * 0.01, float(g.theta) / 365.0


def test_venue_greeks_of_an_inverse_option_become_the_desks_coin_greeks() -> None:
    call = _opt("BTC-26JAN24-60000-C")
    price, delta, gamma, vega, theta = _usd_greeks(call)
    sent = Quote(NOW, call.name, bid=0.05, ask=0.052, mark_price=price / F, mark_iv=IV, bid_iv=0.59,
                 underlying_price=F, venue_delta=delta, venue_gamma=gamma, venue_vega=vega, venue_theta=theta)
    bare = Quote(NOW, call.name, bid=0.05, ask=0.052, mark_price=price / F, mark_iv=IV, underlying_price=F)
    t = call.years_to_expiry(NOW)
    coin = inverse_greeks(F, K, t, IV, True)
    for q in (sent, bare):
        (row,) = chain_slice("BTC", call.expiry_ms or 0, [call], {call.name: q}, 60_900.0, NOW).rows
        assert row.delta == pytest.approx(float(coin.delta), rel=1e-9)  # Black-Scholes delta minus the coin price
        assert row.gamma == pytest.approx(float(coin.gamma), rel=1e-9)
        assert row.vega == pytest.approx(float(coin.vega) * 0.01, rel=1e-9)
        assert row.theta == pytest.approx(float(coin.theta) / 365.0, rel=1e-9)
        assert row.mark == pytest.approx(price / F) and row.mark_iv == IV
    (sent_row,) = chain_slice("BTC", call.expiry_ms or 0, [call], {call.name: sent}, 60_900.0, NOW).rows
    (bare_row,) = chain_slice("BTC", call.expiry_ms or 0, [call], {call.name: bare}, 60_900.0, NOW).rows
    assert sent_row.bid_iv == 0.59  # the venue's when it sends one, else implied from its bid
    assert bare_row.bid_iv == pytest.approx(float(implied_vol_coin(0.05, F, K, t, True)))


def test_a_linear_option_keeps_the_venues_usd_greeks_and_computes_black76_without_them() -> None:
    put = _opt("BTC_USDC-26JAN24-60000-P")
    price, delta, gamma, vega, theta = _usd_greeks(put)
    sent = Quote(NOW, put.name, bid=price - 20, ask=price + 20, mark_price=price, mark_iv=IV, underlying_price=F,
                 venue_delta=-0.4, venue_gamma=0.00002, venue_vega=70.0, venue_theta=-30.0)
    bare = Quote(NOW, put.name, bid=price - 20, ask=price + 20, mark_price=price, mark_iv=IV, underlying_price=F)
    (a,) = chain_slice("BTC", put.expiry_ms or 0, [put], {put.name: sent}, F, NOW).rows
    (b,) = chain_slice("BTC", put.expiry_ms or 0, [put], {put.name: bare}, F, NOW).rows
    assert (a.delta, a.gamma, a.vega, a.theta) == (-0.4, 0.00002, 70.0, -30.0)
    assert (b.delta, b.gamma, b.vega, b.theta) == pytest.approx((delta, gamma, vega, theta), rel=1e-9)
    assert a.bid_iv is not None and a.bid_iv < IV < a.ask_iv  # implied from USDC prices around the mark


def test_a_slice_orders_strikes_finds_the_atm_and_leaves_unquoted_rows_empty() -> None:
    names = ["BTC-26JAN24-65000-C", "BTC-26JAN24-55000-P", "BTC-26JAN24-60000-C", "BTC-26JAN24-60000-P"]
    insts = [_opt(n) for n in names]
    q = Quote(NOW, names[2], bid=0.05, ask=0.052, mark_price=0.051, mark_iv=IV, underlying_price=F)
    sl = chain_slice("BTC", insts[0].expiry_ms or 0, insts, {names[2]: q}, 60_900.0, NOW)
    assert [r.instrument for r in sl.rows] == [names[1], names[2], names[3], names[0]]
    assert sl.atm_strike == 60_000.0 and sl.forward == F and sl.index_price == 60_900.0
    empty = sl.rows[0]
    assert empty.bid is None and empty.ask is None and empty.bid_iv is None and empty.mark_iv != empty.mark_iv


def test_the_venues_account_figures_as_a_margin_report() -> None:
    acct = AccountReport("BTC", Decimal("10"), Decimal("9.5"), Decimal("1"), Decimal("5"), Decimal("8.5"),
                         raw={"margin_balance": 9.5, "margin_model": "segregated_pm"})
    rep = report_from_account(acct, "main")
    assert rep.model == "pm" and rep.margin_balance == 9.5 and rep.details["source"] == "venue"
    assert rep.im_usage == pytest.approx(1 / 9.5) and rep.mm_usage == pytest.approx(5 / 9.5) and rep.alert_level == 0.5
    broke = report_from_account(AccountReport("BTC", Decimal(0), Decimal(0), Decimal("1"), Decimal("1"), Decimal(0)),
                                "main")
    assert broke.model == "sm" and broke.mm_usage == float("inf") and broke.alert_level == 1.0


def test_the_replica_holds_the_venues_account_and_answers_what_if() -> None:
    perp = Instrument.parse("BTC-PERPETUAL")
    acct = AccountReport("BTC", Decimal("1"), Decimal("1"), Decimal(0), Decimal(0), Decimal("1"))
    quotes = {perp.name: Quote(NOW, perp.name, bid=59_999.5, ask=60_000.5, mark_price=60_000.0)}
    held = [Position(perp.name, Decimal("10000"), Decimal("60000"))]
    engine = build_replica("main", {"BTC": acct}, {perp.name: perp}, held, quotes, {"BTC": 60_000.0})
    now = engine.report("main", "BTC", with_distance=False, publish=False)
    assert now.initial_margin > 0 and now.equity == pytest.approx(1.0, abs=1e-9)  # bought at the mark: no PnL yet
    more = engine.what_if("main", [OrderRequest(perp.name, Side.BUY, Decimal("10000"), None, OrderType.MARKET)])
    flat = engine.what_if("main", [OrderRequest(perp.name, Side.SELL, Decimal("10000"), None, OrderType.MARKET)])
    assert more["BTC"].initial_margin == pytest.approx(2 * now.initial_margin, rel=0.05)
    assert flat["BTC"].initial_margin < now.initial_margin / 10
    assert engine.report("main", "BTC", with_distance=False, publish=False) == now  # what-if changed nothing
