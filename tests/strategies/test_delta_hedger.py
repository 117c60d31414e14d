"""The delta hedger's decisions on a fake desk view: bands, units, limits, pauses, execution, state."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import (
    Fill,
    FillEvent,
    IndexPrice,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    TimeInForce,
    Timer,
)
from strategies.bands import hedge_size, make_band, ww_half_width
from strategies.base import IntentKind
from strategies.delta_hedger import DeltaHedger, key_of
from strategies.hedger_config import parse_hedger_config
from tests.strategies.fakes import FakeView, future_position, margin, option_position

CALL = "BTC-26JAN24-40000-C"


def make(view: FakeView | None = None, **cfg):
    view = view or FakeView()
    if "BTC-PERPETUAL" not in view.quotes:
        view.set_perp(39_999.5, 40_000.5)
    h = DeltaHedger(parse_hedger_config(cfg))
    h.on_event(IndexPrice(view.now, "btc_usd", view.index), view)
    return h, view


def check(h: DeltaHedger, view: FakeView, advance_ms: int = 5_000):
    view.now += advance_ms
    h.on_event(IndexPrice(view.now, "btc_usd", view.index), view)
    h.take_decisions()  # those of order events fed since the last check
    intents = h.on_event(Timer(view.now, "check"), view)
    decisions = h.take_decisions()
    assert len(decisions) == 1
    return intents, decisions[0]


def test_inside_band_no_hedge_recorded_with_inputs() -> None:
    h, view = make()
    view.pos = [option_position(CALL, -1, delta=-0.05, gamma=-1e-4)]
    intents, d = check(h, view)
    assert intents == []
    assert d["action"] == "none" and d["code"] == "none.inside_band"
    assert d["inputs"]["delta"] == pytest.approx(-0.05)
    assert d["inputs"]["band_lower"] == pytest.approx(-0.1) and d["inputs"]["band_upper"] == pytest.approx(0.1)
    json.dumps(d)  # a decision is storable as JSON


def test_outside_band_sells_perp_to_target_maker_first() -> None:
    h, view = make()
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=1e-4)]
    intents, d = check(h, view)
    assert d["action"] == "hedge"
    assert len(intents) == 1 and intents[0].kind is IntentKind.PLACE
    req = intents[0].request
    # 0.5 BTC at 40,000 = 20,000 USD of an inverse perpetual.
    assert req.instrument == "BTC-PERPETUAL" and req.side is Side.SELL and req.amount == Decimal("20000")
    assert req.post_only and req.price == Decimal("40000.5")
    assert intents[0].key == f"{d['seq']}.1"
    assert h.working


def test_asymmetric_bands() -> None:
    h, view = make(band={"upper": 0.1, "lower": 0.5})
    view.pos = [option_position(CALL, -1, delta=-0.3, gamma=0.0)]
    assert check(h, view)[1]["action"] == "none"
    view.pos = [option_position(CALL, 1, delta=0.3, gamma=0.0)]
    intents, d = check(h, view)
    assert d["action"] == "hedge" and intents[0].request.side is Side.SELL


def test_hedge_ratio_and_target_delta() -> None:
    h, view = make(hedge_ratio=0.5, target_delta=0.1)
    view.pos = [option_position(CALL, -1, delta=-0.9, gamma=0.0)]
    intents, d = check(h, view)
    # deviation -1.0 from the target; half of it: buy 0.5 BTC = 20,000 USD.
    assert intents[0].request.side is Side.BUY and intents[0].request.amount == Decimal("20000")
    assert "50%" in d["reason"]


def test_premium_adjusted_vs_bs_basis() -> None:
    pos = [option_position(CALL, 1, delta=0.08, gamma=0.0, delta_bs=0.2)]
    h, view = make(delta_basis="premium_adjusted")
    view.pos = pos
    assert check(h, view)[1]["action"] == "none"
    h2, view2 = make(delta_basis="bs")
    view2.pos = pos
    intents, d = check(h2, view2)
    assert d["action"] == "hedge" and d["inputs"]["delta"] == pytest.approx(0.2)


def test_usd_delta_unit() -> None:
    h, view = make(delta_unit="usd", band={"upper": 5_000, "lower": 5_000})
    view.pos = [option_position(CALL, 1, delta=0.1, gamma=0.0)]  # 4,000 USD
    assert check(h, view)[1]["action"] == "none"
    view.pos = [option_position(CALL, 1, delta=0.2, gamma=0.0)]  # 8,000 USD
    intents, d = check(h, view)
    assert d["inputs"]["delta"] == pytest.approx(8_000) and intents[0].request.amount == Decimal("8000")


def test_futures_count_in_delta() -> None:
    h, view = make()
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0), future_position("BTC-PERPETUAL", -20_000, 40_000)]
    _, d = check(h, view)
    assert d["inputs"]["delta"] == pytest.approx(0.0) and d["action"] == "none"


def test_scope_account_counts_only_the_hedgers_account() -> None:
    h, view = make(account="sub")
    view.pos = [
        option_position(CALL, 1, delta=0.5, gamma=0.0),
        option_position(CALL, 1, delta=0.05, gamma=0.0, account="sub"),
    ]
    _, d = check(h, view)
    assert d["inputs"]["delta"] == pytest.approx(0.05)


def test_scope_tag_is_refused_not_silently_zero() -> None:
    # No desk position carries a book tag: a tag-scoped hedger measured delta 0 and never hedged. Refused instead.
    from app.errors import ConfigError

    for cfg, key in (({"scope": "tag", "tag": "book1"}, "strategies.h.scope"), ({"scope": "tag"}, "strategies.h.scope"),
                     ({"tag": "book1"}, "strategies.h.tag")):
        with pytest.raises(ConfigError) as e:
            parse_hedger_config(cfg, prefix="strategies.h")
        assert e.value.code == "config.unsupported" and e.value.details["key"] == key
        assert "not supported" in e.value.message and e.value.message.startswith(key)


def test_scope_all_never_adds_other_coins_deltas() -> None:
    # 10 ETH calls (+5 ETH of delta) must not be hedged with the BTC perpetual as if they were +5 BTC.
    for scope in ("all", "underlying"):
        h, view = make(scope=scope)
        view.pos = [
            option_position("ETH-26JAN24-2000-C", 10, delta=5.0, gamma=0.0),
            future_position("ETH-PERPETUAL", -40_000, 2_000),
            option_position(CALL, 1, delta=0.05, gamma=0.0),
        ]
        intents, d = check(h, view)
        assert d["inputs"]["delta_coin"] == pytest.approx(0.05) and d["code"] == "none.inside_band" and intents == []


def test_ww_half_width_matches_reference_example() -> None:
    # pricing.md §7.3: 100 short ATM calls, F 60,000, gamma 0.0080 BTC/USD, 5 bp, gamma_ra 1e-5 -> H ~ 6.6 BTC.
    assert ww_half_width(0.0080, 60_000, 5e-4, 1e-5) == pytest.approx(6.6, abs=0.05)
    assert ww_half_width(0.0, 60_000, 5e-4, 1e-5) == 0.0


def test_whalley_wilmott_band_trades_to_edge() -> None:
    h, view = make(band={"rule": "whalley_wilmott", "risk_aversion": 1e-5, "cost": 5e-4})
    gamma = -0.0080 / 100  # one call's gamma: H = 6.6 * (1/100)^(2/3) ~ 0.306
    view.index = 60_000
    view.set_perp(59_999.5, 60_000.5)
    view.pos = [option_position(CALL, -1, delta=-0.25, gamma=gamma)]
    _, d = check(h, view)
    assert d["action"] == "none" and d["inputs"]["half_width"] == pytest.approx(0.306, abs=0.005)
    view.pos = [option_position(CALL, -1, delta=-0.5, gamma=gamma)]
    intents, d = check(h, view)
    # to the nearest edge: buy 0.5 - 0.306 = 0.194 BTC ~ 11,640 USD, rounded down to 10 USD lots.
    amt = intents[0].request.amount
    assert intents[0].request.side is Side.BUY and Decimal("11500") <= amt <= Decimal("11700")


def test_time_rule_hedges_inner_band_on_schedule() -> None:
    h, view = make(band={"rule": "time", "upper": 0.5, "lower": 0.5, "inner_upper": 0.05, "inner_lower": 0.05, "interval_s": 60})
    view.pos = [option_position(CALL, 1, delta=0.2, gamma=0.0)]
    assert check(h, view)[1]["action"] == "none"  # starts the schedule
    assert check(h, view, 30_000)[1]["action"] == "none"  # inside outer band, not yet due
    intents, d = check(h, view, 30_000)
    assert d["action"] == "hedge" and d["code"] == "hedge.scheduled_hedge"
    assert intents[0].request.amount == Decimal("8000")


def test_skip_small_move_since_last_hedge() -> None:
    h, view = make(band={"min_move_pct": 1.0}, execution={"style": "market"})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, d = check(h, view)
    assert d["action"] == "hedge"
    _finish_ioc(h, view, intents[0])
    view.index = 40_100  # +0.25 %
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    _, d = check(h, view)
    assert d["code"] == "none.small_move"
    view.index = 40_500  # +1.25 %
    _, d = check(h, view)
    assert d["action"] == "hedge"


def _order(intent, status, filled="0", reject=None, run="r1"):
    req = intent.request
    req = type(req)(req.instrument, req.side, req.amount, req.price, req.type, req.tif, req.post_only, req.reduce_only,
                    client_order_id=f"{run}-{intent.key}")
    return Order(f"o{intent.key}", req, status, Decimal(filled), req.price, 0, reject)


def _fill(intent, amount, price, trade_id):
    req = intent.request
    return Fill(trade_id, f"o{intent.key}", req.instrument, req.side, Decimal(price), Decimal(amount), Decimal("0.0001"),
                "BTC", Liquidity.TAKER, 0, client_order_id=f"r1-{intent.key}")


def _finish_ioc(h, view, intent):
    h.on_event(FillEvent(view.now, _fill(intent, intent.request.amount, intent.request.price, f"t{intent.key}")), view)
    h.on_event(OrderUpdate(view.now, _order(intent, OrderStatus.FILLED, intent.request.amount)), view)


def test_market_style_is_ioc_at_slippage_cap_and_costs_accounted() -> None:
    h, view = make(execution={"style": "market", "max_slippage_bps": 10})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    req = intents[0].request
    assert req.tif is TimeInForce.IOC and req.type is OrderType.LIMIT
    assert req.price == Decimal("39960.0")  # mid 40,000 less 10 bp, rounded up for a sell
    h.on_event(FillEvent(view.now, _fill(intents[0], "20000", "39990", "t1")), view)
    h.on_event(FillEvent(view.now, _fill(intents[0], "20000", "39990", "t1")), view)  # duplicate report: ignored
    h.on_event(OrderUpdate(view.now, _order(intents[0], OrderStatus.FILLED, "20000")), view)
    tot = h.totals
    assert tot["fills"] == 1
    assert tot["slippage_usd"] == pytest.approx(20_000 * 10 / 40_000)
    assert tot["fees_usd"] == pytest.approx(0.0001 * 40_000)
    assert not h.working


def test_maker_timeout_pays_up_then_ioc() -> None:
    h, view = make(execution={"maker_timeout_s": 10, "payup_ticks": 2, "max_payups": 1, "max_slippage_bps": 50})
    view.pos = [option_position(CALL, -1, delta=-0.5, gamma=0.0)]
    intents, _ = check(h, view)
    first = intents[0]
    assert first.request.side is Side.BUY and first.request.post_only and first.request.price == Decimal("39999.5")
    h.on_event(OrderUpdate(view.now, _order(first, OrderStatus.OPEN)), view)
    assert check(h, view, 5_000)[0] == []  # not yet timed out
    intents, _ = check(h, view, 5_000)
    assert [i.kind for i in intents] == [IntentKind.CANCEL] and intents[0].key == first.key
    follow = h.on_event(OrderUpdate(view.now, _order(first, OrderStatus.CANCELLED)), view)
    assert follow[0].request.price == Decimal("40000.5") and not follow[0].request.post_only  # 2 ticks up
    h.on_event(OrderUpdate(view.now, _order(follow[0], OrderStatus.OPEN)), view)
    intents, _ = check(h, view, 10_000)
    assert intents[0].kind is IntentKind.CANCEL
    last = h.on_event(OrderUpdate(view.now, _order(follow[0], OrderStatus.CANCELLED)), view)
    assert last[0].request.tif is TimeInForce.IOC and last[0].request.price == Decimal("40200.0")
    h.on_event(OrderUpdate(view.now, _order(last[0], OrderStatus.CANCELLED)), view)
    assert not h.working  # the cap was reached: what is left is dropped, the next check re-decides
    assert h.state()["last"]["work"]["outcome"] if h.state()["work"] is None else h.state()["work"]["done"]


def test_twap_clips_by_max_order_size() -> None:
    h, view = make(limits={"max_order_size": 0.2}, execution={"style": "market", "twap_interval_s": 30})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    assert intents[0].request.amount == Decimal("8000")
    _finish_ioc(h, view, intents[0])
    assert check(h, view, 10_000)[0] == []  # waits for the clip interval
    intents, _ = check(h, view, 25_000)
    assert intents[0].request.amount == Decimal("8000") and intents[0].key.endswith(".2")
    _finish_ioc(h, view, intents[0])
    intents, _ = check(h, view, 30_000)
    assert intents[0].request.amount == Decimal("4000")


def test_max_position_limits_hedge() -> None:
    h, view = make(limits={"max_position": 0.6})
    view.pos = [option_position(CALL, 1, delta=1.0, gamma=0.0), future_position("BTC-PERPETUAL", -20_000, 40_000)]
    intents, d = check(h, view)
    assert intents[0].request.amount == Decimal("4000") and "max position" in d["reason"]
    view.pos = [option_position(CALL, 1, delta=1.0, gamma=0.0), future_position("BTC-PERPETUAL", -24_000, 40_000)]
    h2, view2 = make(limits={"max_position": 0.6})
    view2.pos = view.pos
    _, d = check(h2, view2)
    assert d["code"] == "none.limit"


def test_hedges_per_hour_limit() -> None:
    h, view = make(limits={"max_hedges_per_hour": 1}, execution={"style": "market"})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    _finish_ioc(h, view, intents[0])
    _, d = check(h, view)
    assert d["code"] == "none.limit_rate"
    _, d = check(h, view, 3_600_000)
    assert d["action"] == "hedge"


def test_pauses_on_stale_index_and_margin() -> None:
    h, view = make(safety={"max_index_age_s": 30})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    view.now += 60_000
    h.on_event(Timer(view.now), view)
    assert h.take_decisions()[0]["code"] == "pause.stale_index"
    view.margins = {"BTC": margin(0.95)}
    _, d = check(h, view)
    assert d["code"] == "pause.margin"
    view.margins = {"BTC": margin(0.1)}
    assert check(h, view)[1]["action"] == "hedge"


def test_no_index_pauses() -> None:
    h = DeltaHedger(parse_hedger_config({}))
    view = FakeView()
    view.set_perp(1, 2)
    assert h.on_event(Timer(view.now), view) == []
    assert h.take_decisions()[0]["code"] == "pause.no_index"


def test_repeated_rejects_pause_then_resume() -> None:
    h, view = make(safety={"max_rejects": 2, "reject_cooldown_s": 60}, execution={"style": "market"})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    nxt = h.on_event(OrderUpdate(view.now, _order(intents[0], OrderStatus.REJECTED, reject="margin.insufficient")), view)
    assert nxt and nxt[0].kind is IntentKind.PLACE  # retried once
    h.on_event(OrderUpdate(view.now, _order(nxt[0], OrderStatus.REJECTED, reject="margin.insufficient")), view)
    _, d = check(h, view)
    assert d["code"] == "pause.rejects"
    _, d = check(h, view, 60_000)
    assert d["action"] == "hedge"


def test_dry_run_answer_ends_work_without_counting_a_reject() -> None:
    h, view = make()
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    h.on_event(OrderUpdate(view.now, _order(intents[0], OrderStatus.REJECTED, reject="dry_run")), view)
    assert not h.working and h.state()["rejects"] == 0
    assert check(h, view)[1]["action"] == "hedge"  # still outside: decides again


def test_cheapest_carry_and_venue_choice() -> None:
    view = FakeView()
    view.set_perp(40_199.5, 40_200.5)  # rich perp: +0.5 % premium, annualised as funding
    view.set_perp(40_399.5, 40_400.5, name="BTC-29MAR24")  # +1 % over ~3 months
    h, view = make(view, instrument={"mode": "cheapest_carry", "candidates": ["BTC-PERPETUAL", "BTC-29MAR24"]})
    view.pos = [option_position(CALL, -1, delta=-0.5, gamma=0.0)]
    intents, _ = check(h, view)
    assert intents[0].request.instrument == "BTC-29MAR24"  # buying: the cheaper carry
    view2 = FakeView()
    view2.set_perp(39_990, 40_010, venue="a", key="a:BTC-PERPETUAL")
    view2.set_perp(39_999, 40_001, venue="b", key="b:BTC-PERPETUAL")
    h2, view2 = make(view2, instrument={"venues": ["a", "b"]})
    view2.pos = [option_position(CALL, -1, delta=-0.5, gamma=0.0)]
    intents, _ = check(h2, view2)
    assert intents[0].venue == "b"


def test_delta_crossing_target_drops_rest_of_hedge() -> None:
    h, view = make()
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    h.on_event(OrderUpdate(view.now, _order(intents[0], OrderStatus.OPEN)), view)
    view.pos = [option_position(CALL, 1, delta=-0.2, gamma=0.0)]
    intents2, d = check(h, view)
    assert d["code"] == "hedge.crossed" and intents2[0].kind is IntentKind.CANCEL


def test_state_round_trips_through_json() -> None:
    h, view = make()
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    saved = json.loads(json.dumps(h.state()))
    h2 = DeltaHedger(h.cfg)
    h2.restore(saved)
    assert h2.state() == h.state() and h2.working
    a = h.on_event(OrderUpdate(view.now, _order(intents[0], OrderStatus.CANCELLED)), view)
    b = h2.on_event(OrderUpdate(view.now, _order(intents[0], OrderStatus.CANCELLED)), view)
    assert [i.to_dict() for i in a] == [i.to_dict() for i in b]


def test_key_of() -> None:
    assert key_of("run-a-b-12.3") == "12.3" and key_of(None) is None and key_of("nodash") is None


@settings(max_examples=200, deadline=None)
@given(
    delta=st.floats(-5, 5),
    upper=st.floats(0.01, 2),
    lower=st.floats(0.01, 2),
    target=st.floats(-1, 1),
    ratio=st.floats(0, 1.5),
    to=st.sampled_from(["target", "edge"]),
)
def test_hedge_size_property(delta, upper, lower, target, ratio, to) -> None:
    from strategies.hedger_config import BandConfig

    band = make_band(BandConfig(upper=upper, lower=lower), target, gamma_coin=0, spot=1, cost=0, unit="coin")
    size = hedge_size(delta, band, target, ratio, to)
    if not band.outside(delta):
        assert to == "target" or size == 0
        return
    # Always trades against the deviation, never beyond the goal at ratio <= 1.
    assert size * (delta - target) <= 0
    goal = target if to == "target" else (band.upper if delta > band.upper else band.lower)
    assert size == pytest.approx((goal - delta) * ratio)


@settings(max_examples=100, deadline=None)
@given(delta=st.floats(-3, 3), upper=st.floats(0.01, 1), lower=st.floats(0.01, 1))
def test_hedger_decides_iff_outside_band(delta, upper, lower) -> None:
    h, view = make(band={"upper": upper, "lower": lower})
    view.pos = [option_position(CALL, 1, delta=delta, gamma=0.0)]
    intents, d = check(h, view)
    outside = delta > upper or delta < -lower
    if not outside:
        assert d["action"] == "none" and intents == []
    elif abs(delta) * 40_000 >= 10:
        assert d["action"] == "hedge"
        assert intents[0].request.side is (Side.SELL if delta > 0 else Side.BUY)
        assert intents[0].request.amount <= Decimal(repr(abs(delta) * 40_000)) + 1


def test_config_rejections_name_the_key(tmp_path) -> None:
    from app.errors import ConfigError
    from strategies.hedger_config import load_hedger_config

    with pytest.raises(ConfigError) as e:
        parse_hedger_config({"band": {"upper": -0.1}}, prefix="strategies.h")
    assert e.value.details["key"] == "strategies.h.band.upper" and "strategies.h.band.upper" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_hedger_config({"hedge_ratio": 1.6})
    assert e.value.details["key"] == "hedge_ratio"
    with pytest.raises(ConfigError) as e:
        parse_hedger_config({"instrument": {"name": "BTC-PERPETUAL"}}, known_instruments=["ETH-PERPETUAL"])
    assert e.value.details["key"] == "instrument.name" and "unknown instrument" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_hedger_config({"instrument": {"mode": "cheapest_carry", "candidates": ["BTC-PERPETUAL", "ETH-PERPETUAL"]}})
    assert e.value.details["key"] == "instrument.candidates.1"
    with pytest.raises(ConfigError) as e:
        parse_hedger_config({"limits": {"max_hedges": 3}})
    assert e.value.details["key"] == "limits.max_hedges" and "unknown key" in str(e.value)
    f = tmp_path / "desk.toml"
    f.write_text('[strategies.hedge1]\nunderlying = "BTC"\n[strategies.hedge1.band]\nrule = "whalley_wilmott"\nlower = -1\n')
    with pytest.raises(ConfigError) as e:
        load_hedger_config(f)
    assert e.value.details["key"] == "strategies.hedge1.band.lower"
    f.write_text('[strategies.hedge1.band]\nrule = "whalley_wilmott"\n')
    assert load_hedger_config(f).band.rule == "whalley_wilmott"


def test_order_update_before_fill_event_does_not_resend() -> None:
    # The venue answers an IOC with "filled" before its fill event reaches the strategy; a later stale update of
    # the same order must not make the hedger send the hedge again.
    h, view = make(execution={"style": "market", "twap_interval_s": 0})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    ioc = intents[0]
    assert h.on_event(OrderUpdate(view.now, _order(ioc, OrderStatus.FILLED, ioc.request.amount)), view) == []
    view.now += 60_000
    assert h.on_event(OrderUpdate(view.now, _order(ioc, OrderStatus.OPEN)), view) == []
    assert h.on_event(FillEvent(view.now, _fill(ioc, ioc.request.amount, ioc.request.price, "t9")), view) == []
    assert not h.working and h.totals["orders"] == 1 and h.totals["fills"] == 1


def test_partial_fills_by_update_and_by_fill_count_once() -> None:
    h, view = make(execution={"style": "market", "twap_interval_s": 0})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    ioc = intents[0]
    h.on_event(FillEvent(view.now, _fill(ioc, "5000", ioc.request.price, "t1")), view)
    nxt = h.on_event(OrderUpdate(view.now, _order(ioc, OrderStatus.CANCELLED, "5000")), view)
    # IOC left 15,000 at the cap: the hedge stops there (the next check re-decides), nothing is double counted.
    assert nxt == [] and h.state()["work"]["remaining"] == "15000"


def test_hedge_now_ignores_the_band_but_not_the_pauses() -> None:
    h, view = make()
    view.pos = [option_position(CALL, 1, delta=0.05, gamma=0.0)]
    view.now += 5_000
    h.on_event(IndexPrice(view.now, "btc_usd", view.index), view)
    intents = h.on_event(Timer(view.now, "hedge_now"), view)
    d = h.take_decisions()[0]
    assert d["code"] == "hedge.manual_hedge" and intents[0].request.amount == Decimal("2000")
    view.now += 120_000  # index now stale
    out = h.on_event(Timer(view.now, "hedge_now"), view)
    assert [i.kind for i in out] == [IntentKind.CANCEL]  # the working hedge is withdrawn, nothing new is sent
    assert h.take_decisions()[0]["code"] == "pause.stale_index"


def test_snapshot_view_reads_a_desk_snapshot() -> None:
    from app.domain import DeskSnapshot, Quote
    from strategies.base import SnapshotView

    q = Quote(1, "BTC-PERPETUAL", 1.0, 2.0, venue="b")
    snap = DeskSnapshot(1, "sim", {"btc_usd": 40_000.0}, (), {}, {"b:BTC-PERPETUAL": q, "BTC-PERPETUAL": q}, (), {},
                        {"BTC": margin()})
    v = SnapshotView(snap)
    assert v.now_ms() == 1 and v.index_price("BTC") == 40_000.0 and v.quote("BTC-PERPETUAL", "b") is q
    assert v.quote("BTC-PERPETUAL") is q and v.margin()["BTC"].mm_usage == pytest.approx(0.1)


# -- regressions of the hedger audit ---------------------------------------------------------------------------


def test_no_market_fallback_cancels_the_last_payup_and_ends_the_hedge() -> None:
    h, view = make(execution={"maker_timeout_s": 10, "max_payups": 1, "payup_ticks": 1, "market_fallback": False})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    maker = intents[0]
    h.on_event(OrderUpdate(view.now, _order(maker, OrderStatus.OPEN)), view)
    intents, _ = check(h, view, 10_000)
    assert [i.kind for i in intents] == [IntentKind.CANCEL]
    payup = h.on_event(OrderUpdate(view.now, _order(maker, OrderStatus.CANCELLED)), view)[0]
    assert not payup.request.post_only and payup.request.tif is TimeInForce.GTC
    h.on_event(OrderUpdate(view.now, _order(payup, OrderStatus.OPEN)), view)
    assert check(h, view, 5_000)[0] == []  # not yet timed out
    # The last pay-up timed out: cancelled, not left resting until the market trades through it.
    intents, d = check(h, view, 5_000)
    assert [i.kind for i in intents] == [IntentKind.CANCEL] and intents[0].key == payup.key
    assert "no market fallback" in d["reason"]
    assert h.on_event(OrderUpdate(view.now, _order(payup, OrderStatus.CANCELLED)), view) == []
    assert not h.working
    intents, d = check(h, view)
    assert h.state()["last"]["work"]["outcome"] == "unfilled: no market fallback"
    assert d["action"] == "hedge" and intents[0].request.post_only  # the next check decides afresh


def test_twap_clips_each_start_maker_first() -> None:
    # 0.5 BTC in 0.25 clips: the first clip pays up to the IOC; the second must still start as a post-only maker.
    h, view = make(execution={"maker_timeout_s": 5, "max_payups": 1, "twap_clip": 0.25, "twap_interval_s": 10})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    maker = intents[0]
    assert maker.request.post_only and maker.request.amount == Decimal("10000")
    h.on_event(OrderUpdate(view.now, _order(maker, OrderStatus.OPEN)), view)
    check(h, view)
    payup = h.on_event(OrderUpdate(view.now, _order(maker, OrderStatus.CANCELLED)), view)[0]
    h.on_event(OrderUpdate(view.now, _order(payup, OrderStatus.OPEN)), view)
    check(h, view)
    ioc = h.on_event(OrderUpdate(view.now, _order(payup, OrderStatus.CANCELLED)), view)[0]
    assert ioc.request.tif is TimeInForce.IOC
    _finish_ioc(h, view, ioc)
    intents, _ = check(h, view, 10_000)
    clip2 = intents[0]
    assert clip2.request.post_only and clip2.request.tif is TimeInForce.GTC and clip2.request.amount == Decimal("10000")
    # A maker clip that fills at once: the next clip is a maker again.
    h.on_event(FillEvent(view.now, _fill(clip2, "10000", "40000.5", "tc2")), view)
    h.on_event(OrderUpdate(view.now, _order(clip2, OrderStatus.FILLED, "10000")), view)
    assert not h.working


def test_orders_placed_from_order_events_are_journaled() -> None:
    h, view = make(execution={"maker_timeout_s": 5, "max_payups": 1, "twap_clip": 0.25, "twap_interval_s": 0})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    maker = intents[0]
    h.on_event(OrderUpdate(view.now, _order(maker, OrderStatus.OPEN)), view)
    check(h, view)
    payup = h.on_event(OrderUpdate(view.now, _order(maker, OrderStatus.CANCELLED)), view)[0]
    [d_payup] = h.take_decisions()
    h.on_event(OrderUpdate(view.now, _order(payup, OrderStatus.OPEN)), view)
    check(h, view)
    ioc = h.on_event(OrderUpdate(view.now, _order(payup, OrderStatus.CANCELLED)), view)[0]
    [d_ioc] = h.take_decisions()
    h.on_event(FillEvent(view.now, _fill(ioc, ioc.request.amount, ioc.request.price, "tj1")), view)
    clip = h.on_event(OrderUpdate(view.now, _order(ioc, OrderStatus.FILLED, ioc.request.amount)), view)[0]
    [d_clip] = h.take_decisions()
    for d, code, intent in ((d_payup, "hedge.payup", payup), (d_ioc, "hedge.ioc", ioc), (d_clip, "hedge.clip", clip)):
        assert d["code"] == code and d["action"] == "working"
        assert [i["key"] for i in d["intents"]] == [intent.key]
        assert d["inputs"]["hedge"] == int(maker.key.split(".")[0]) and "remaining" in d["inputs"] and "bid" in d["inputs"]
        assert "delta" not in d["inputs"]  # not a measurement: keeps the journal's delta series to the checks
        json.dumps(d)
    assert d_clip["inputs"]["previous"] == "ioc" and d_payup["inputs"]["payups"] == 1


def test_rejects_pause_is_journaled_from_the_order_event() -> None:
    h, view = make(safety={"max_rejects": 1, "reject_cooldown_s": 60}, execution={"style": "market"})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    h.on_event(OrderUpdate(view.now, _order(intents[0], OrderStatus.REJECTED, reject="margin.insufficient")), view)
    [d] = h.take_decisions()
    assert d["code"] == "pause.rejects" and d["inputs"]["reject_code"] == "margin.insufficient"


def _fill_perp(view: FakeView, usd: float) -> None:
    """Let the book hold ``usd`` (signed) of the perpetual besides its options."""
    view.pos = [p for p in view.pos if p.instrument != "BTC-PERPETUAL"] + [future_position("BTC-PERPETUAL", usd, 40_000)]


def test_hedge_ratio_above_one_is_not_cut_at_the_target_nor_bought_back() -> None:
    # delta +0.5, ratio 1.5: sell 0.75 BTC (30,000 USD) in 0.2 BTC clips, to an end point of -0.25.
    h, view = make(hedge_ratio=1.5, execution={"style": "market", "twap_clip": 0.2, "twap_interval_s": 5})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, d = check(h, view)
    assert d["inputs"]["end"] == pytest.approx(-0.25)
    sold = 0
    deltas = []
    while True:
        assert intents and intents[0].kind is IntentKind.PLACE
        _finish_ioc(h, view, intents[0])
        sold += int(intents[0].request.amount)
        _fill_perp(view, -sold)
        if sold == 30_000:
            break
        # Delta passes the target (-0.1 after the third clip) on its way to the end point: the hedge goes on.
        intents, d = check(h, view)
        deltas.append(d["inputs"]["delta"])
        assert d["code"] == "hedge.working"
    assert min(deltas) == pytest.approx(-0.1)
    assert not h.working and h.totals["hedges"] == 1 and h.state()["work"]["outcome"] == "filled"
    intents, d = check(h, view)
    # Delta -0.25 is outside the +-0.1 band, but it is where the over-hedge meant to go: no buy-back.
    assert intents == [] and d["code"] == "none.over_hedged"
    # Further out than the end point plus the band's width: hedged back to the target.
    view.pos = [option_position(CALL, 1, delta=0.1, gamma=0.0)]
    _fill_perp(view, -30_000)
    intents, d = check(h, view)
    assert d["action"] == "hedge" and intents[0].request.side is Side.BUY


def test_over_hedge_memory_ends_when_delta_comes_back_across_the_target() -> None:
    h, view = make(hedge_ratio=1.5, execution={"style": "market"})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    _finish_ioc(h, view, intents[0])
    _fill_perp(view, -30_000)
    assert check(h, view)[1]["code"] == "none.over_hedged"
    view.pos = [option_position(CALL, 1, delta=0.8, gamma=0.0)]
    _fill_perp(view, -30_000)  # delta +0.05: back across the target
    assert check(h, view)[1]["code"] == "none.inside_band"
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    _fill_perp(view, -30_000)  # -0.25 again, but after the book came back: an ordinary excursion
    assert check(h, view)[1]["action"] == "hedge"


def test_over_hedge_rest_dropped_once_delta_passes_its_end_point() -> None:
    h, view = make(hedge_ratio=1.5, execution={"style": "market", "twap_clip": 0.25, "twap_interval_s": 0})
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, _ = check(h, view)
    _finish_ioc(h, view, intents[0])  # the next clip goes out at once (twap_interval_s = 0)
    h.on_event(OrderUpdate(view.now, _order(_clip_of(h), OrderStatus.OPEN)), view)
    view.pos = [option_position(CALL, 1, delta=-0.05, gamma=0.0)]
    _fill_perp(view, -10_000)  # delta -0.3: past the end point -0.25, the rest would add risk
    intents, d = check(h, view)
    assert d["code"] == "hedge.crossed" and "end point" in d["reason"] and intents[0].kind is IntentKind.CANCEL


def _clip_of(h: DeltaHedger):
    """An intent-like stand-in for the hedger's working child (for building its order events)."""
    from types import SimpleNamespace

    from app.domain import OrderRequest

    ch = h.state()["work"]["child"]
    req = OrderRequest("BTC-PERPETUAL", Side.SELL, Decimal(ch["amount"]), Decimal(ch["price"]), OrderType.LIMIT, TimeInForce.IOC)
    return SimpleNamespace(key=ch["key"], request=req)


def test_ratio_at_most_one_still_guards_at_the_target() -> None:
    h, view = make(hedge_ratio=0.5)
    view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0)]
    intents, d = check(h, view)
    assert d["inputs"]["end"] == pytest.approx(0.25)
    h.on_event(OrderUpdate(view.now, _order(intents[0], OrderStatus.OPEN)), view)
    view.pos = [option_position(CALL, 1, delta=0.2, gamma=0.0)]  # past the end point, not the target: keep going
    assert check(h, view)[1]["code"] == "hedge.working"
    view.pos = [option_position(CALL, 1, delta=-0.01, gamma=0.0)]
    assert check(h, view)[1]["code"] == "hedge.crossed"


def test_expiring_future_delta_decays_in_the_settlement_window() -> None:
    # deribit.md §1.7: an expiring future's delta decays linearly to 0 over the 30 minutes before its expiry.
    from app.domain import Instrument
    from app.portfolio_view import delta_decay

    expiry = Instrument.parse("BTC-26JAN24").expiry_ms
    view = FakeView(now=expiry - 15 * 60_000 - 5_000)  # check() advances 5 s: 15 minutes before the expiry
    h, view = make(view)
    view.pos = [future_position("BTC-26JAN24", 20_000, 40_000), future_position("BTC-PERPETUAL", 4_000, 40_000)]
    _, d = check(h, view)
    assert d["inputs"]["delta_futures"] == pytest.approx(0.5 * 0.5 + 0.1)  # half of the future, all of the perpetual
    assert delta_decay(expiry, expiry - 31 * 60_000) == 1.0 and delta_decay(None, expiry) == 1.0
    assert delta_decay(expiry, expiry - 6 * 60_000) == pytest.approx(0.2) and delta_decay(expiry, expiry) == 0.0


def test_orders_trade_in_the_hedgers_account() -> None:
    for style in ("maker_first", "market"):
        h, view = make(account="sub", execution={"style": style})
        view.pos = [option_position(CALL, 1, delta=0.5, gamma=0.0, account="sub")]
        intents, _ = check(h, view)
        assert intents[0].request.account == "sub"
