"""Order types, amend priority, self-trade prevention, reduce-only, bands, states, fees and hooks."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from app.clock import SimClock
from app.domain import Instrument, InstrumentState, OrderRequest, OrderType, Side, TimeInForce
from app.engine.events import (
    F_FOK,
    F_IOC,
    F_MARKET,
    F_POST_ONLY,
    F_REDUCE_ONLY,
    F_REPRICE,
    Accepted,
    Amended,
    BookChanged,
    Cancelled,
    Expired,
    Filled,
    Rejected,
    RejectReason,
    StateChanged,
)
from app.engine.fees import FeeSchedule
from app.engine.matching import STP, MatchingEngine
from app.errors import InsufficientMargin, InvalidInput, OrderRejected

PERP = "BTC_USDC-PERPETUAL"  # linear: tick 0.01, lot 0.001, no default band without a mark
OPT = "BTC-27DEC24-60000-C"  # inverse option: tick 0.0001, 0.0005 above 0.005; lot 0.1


@pytest.fixture
def eng() -> MatchingEngine:
    e = MatchingEngine(SimClock(1_700_000_000_000))
    e.add_instrument(Instrument.parse(PERP), band=None)
    e.add_instrument(Instrument.parse(OPT))
    return e


def kinds(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def fills(events: list[Any]) -> list[tuple[int, int, int, int]]:
    """(maker order, taker order, price ticks, lots) of each trade."""
    return [(e.maker_order_id, e.taker_order_id, e.price_ticks, e.lots) for e in events if isinstance(e, Filled)]


def oid(events: list[Any]) -> int:
    return next(e.order_id for e in events if isinstance(e, Accepted))


# ---------------------------------------------------------------------------------- priority
def test_price_then_time_priority(eng: MatchingEngine) -> None:
    a = oid(eng.place("m1", PERP, -1, 1001, 5))
    b = oid(eng.place("m2", PERP, -1, 1000, 5))
    c = oid(eng.place("m3", PERP, -1, 1000, 5))
    out = eng.place("t", PERP, 1, 1001, 12)
    assert fills(out) == [(b, 4, 1000, 5), (c, 4, 1000, 5), (a, 4, 1001, 2)]
    assert eng.book(PERP).level(-1, 1001) == (3, 1)


def test_fok_is_all_or_nothing_before_any_fill(eng: MatchingEngine) -> None:
    eng.place("m", PERP, -1, 1000, 5)
    eng.place("m", PERP, -1, 1002, 5)
    before = eng.snapshot_state()
    out = eng.place("t", PERP, 1, 1001, 6, F_FOK)  # only 5 within the limit
    assert kinds(out) == ["Accepted", "Cancelled"] and out[1].reason == "fok" and out[1].lots == 6
    after = eng.snapshot_state()
    assert after["markets"] == before["markets"]
    out = eng.place("t", PERP, 1, 1002, 10, F_FOK)
    assert sum(e.lots for e in out if isinstance(e, Filled)) == 10


def test_fok_counts_own_orders_as_unavailable_under_stp(eng: MatchingEngine) -> None:
    eng.set_stp("t", STP.CANCEL_INCOMING)
    eng.place("t", PERP, -1, 1000, 5)
    eng.place("m", PERP, -1, 1000, 5)
    out = eng.place("t", PERP, 1, 1000, 5, F_FOK)
    assert not fills(out) and out[-1].reason == "fok"
    eng.set_stp("t", STP.CANCEL_RESTING)
    out = eng.place("t", PERP, 1, 1000, 5, F_FOK)
    assert [f[3] for f in fills(out)] == [5]  # own order cancelled, the other one fills it all


def test_ioc_and_market(eng: MatchingEngine) -> None:
    eng.place("m", PERP, -1, 1000, 5)
    out = eng.place("t", PERP, 1, 999, 5, F_IOC)
    assert kinds(out) == ["Accepted", "Cancelled"] and out[1].reason == "ioc"
    out = eng.place("t", PERP, 1, 0, 7, F_MARKET)
    assert fills(out)[0][3] == 5 and out[-1].reason == "market" and out[-1].lots == 2
    assert out[0].price is None
    assert len(eng.book(PERP)) == 0


def test_market_order_stops_at_the_band(eng: MatchingEngine) -> None:
    eng.add_instrument(Instrument.parse("ETH_USDC-PERPETUAL"), band=D("0.01"), band_min_ticks=0)
    name = "ETH_USDC-PERPETUAL"
    eng.place("m", name, -1, 100_000, 5)  # 1000.00
    eng.set_mark(name, D("990"))  # band 980.10 .. 999.90: the resting ask is now outside it
    out = eng.place("t", name, 1, 0, 5, F_MARKET)
    assert not fills(out) and out[-1].reason == "market"


# ---------------------------------------------------------------------------------- post-only
def test_post_only_rejects_or_reprices(eng: MatchingEngine) -> None:
    eng.place("m", PERP, -1, 1000, 5)
    out = eng.place("p", PERP, 1, 1000, 5, F_POST_ONLY)
    assert kinds(out) == ["Rejected"] and out[0].code == "order.rejected.post_only"
    out = eng.place("p", PERP, 1, 1005, 5, F_POST_ONLY | F_REPRICE)
    assert out[0].price_ticks == 999 and not fills(out)
    assert eng.book(PERP).best_bid() == 999


def test_post_only_reprice_respects_option_tick_steps(eng: MatchingEngine) -> None:
    inst = eng.instrument(OPT)
    eng.set_mark(OPT, D("0.02"))
    ask = inst.to_ticks(D("0.0200"))
    eng.place("m", OPT, -1, ask, 10)
    out = eng.place("p", OPT, 1, ask, 10, F_POST_ONLY | F_REPRICE)
    # Above 0.005 the grid is 0.0005: one tick below 0.0200 is 0.0195, not 0.0199.
    assert inst.from_ticks(out[0].price_ticks) == D("0.0195")


def test_engine_default_reprice_for_order_requests() -> None:
    e = MatchingEngine(SimClock(), post_only_reprice=True)
    e.add_instrument(Instrument.parse(PERP), band=None)
    e.submit(OrderRequest(PERP, Side.SELL, D("0.001"), D("10.00"), account="m"))
    out = e.submit(OrderRequest(PERP, Side.BUY, D("0.001"), D("10.05"), post_only=True, account="p"))
    assert out[0].price == D("9.99")


# ---------------------------------------------------------------------------------- amend
def test_amend_size_down_keeps_priority_anything_else_loses_it(eng: MatchingEngine) -> None:
    a = oid(eng.place("a", PERP, -1, 1000, 10))
    b = oid(eng.place("b", PERP, -1, 1000, 10))
    out = eng.amend_lots("a", a, lots=6)
    assert kinds(out) == ["Amended", "BookChanged"] and out[0].kept_priority and out[0].lots == 6
    assert [o[0] for o in eng.book(PERP).orders_at(-1, 1000)] == [a, b]
    out = eng.amend_lots("a", a, lots=8)  # size up: to the back
    assert not out[0].kept_priority
    assert [o[0] for o in eng.book(PERP).orders_at(-1, 1000)] == [b, a]
    out = eng.amend_lots("b", b, price_ticks=1001)  # price change: loses priority
    assert not out[0].kept_priority and eng.book(PERP).orders_at(-1, 1001)[0][0] == b


def test_amend_is_total_amount_and_may_trade(eng: MatchingEngine) -> None:
    s = oid(eng.place("s", PERP, -1, 1000, 10))
    eng.place("t", PERP, 1, 1000, 4)  # s has 4 filled, 6 left
    out = eng.amend_lots("s", s, lots=4)
    assert kinds(out) == ["Rejected"] and out[0].code == "order.rejected.amount"
    out = eng.amend_lots("s", s, lots=5)  # total 5 = 4 filled + 1 left
    assert out[0].lots == 1 and eng.book(PERP).level(-1, 1000) == (1, 1)
    b = oid(eng.place("b", PERP, 1, 990, 3))
    out = eng.amend_lots("b", b, price_ticks=1000)
    assert fills(out) == [(s, b, 1000, 1)]
    assert eng.book(PERP).best_bid() == 1000 and eng.book(PERP).level(1, 1000) == (2, 1)


def test_amend_decimal_api_and_reject_paths(eng: MatchingEngine) -> None:
    a = oid(eng.submit(OrderRequest(PERP, Side.BUY, D("0.010"), D("9.00"), account="a")))
    out = eng.amend("a", str(a), price=D("9.50"))
    assert isinstance(out[0], Amended) and out[0].price_ticks == 950
    with pytest.raises(InvalidInput):
        eng.amend("a", a, price=D("9.505"))
    with pytest.raises(InvalidInput):
        eng.amend("a", a)


# ---------------------------------------------------------------------------------- STP
@pytest.mark.parametrize(
    ("mode", "expect_fill", "rest_incoming", "resting_left"),
    [
        (STP.NONE, 5, 0, 0),
        (STP.CANCEL_RESTING, 0, 5, 0),
        (STP.CANCEL_INCOMING, 0, 0, 5),
        (STP.DECREMENT, 0, 0, 0),
    ],
)
def test_self_trade_prevention(
    eng: MatchingEngine, mode: STP, expect_fill: int, rest_incoming: int, resting_left: int
) -> None:
    eng.set_stp("x", mode)
    eng.place("x", PERP, -1, 1000, 5)
    out = eng.place("x", PERP, 1, 1000, 5)
    assert sum(e.lots for e in out if isinstance(e, Filled)) == expect_fill
    assert eng.book(PERP).level(1, 1000)[0] == rest_incoming
    assert eng.book(PERP).level(-1, 1000)[0] == resting_left
    assert eng.position_lots("x", PERP) == 0
    if mode is not STP.NONE:
        assert any(isinstance(e, Cancelled) and e.reason == "stp" for e in out)


def test_stp_decrement_partial(eng: MatchingEngine) -> None:
    eng.set_stp("x", STP.DECREMENT)
    r = oid(eng.place("x", PERP, -1, 1000, 8))
    eng.place("y", PERP, -1, 1000, 4)
    out = eng.place("x", PERP, 1, 1000, 5)
    # 5 decremented off both (no trade); the incoming is used up before reaching y.
    assert not fills(out)
    assert [o[0] for o in eng.book(PERP).orders_at(-1, 1000)][0] == r
    assert eng.book(PERP).level(-1, 1000) == (7, 2)


# ---------------------------------------------------------------------------------- reduce-only
def test_reduce_only_rejected_without_position_and_clipped_to_it(eng: MatchingEngine) -> None:
    out = eng.place("r", PERP, -1, 1000, 5, F_REDUCE_ONLY)
    assert out[0].code == "order.rejected.reduce_only"
    eng.place("m", PERP, -1, 1000, 3)
    eng.place("r", PERP, 1, 1000, 3)  # long 3
    out = eng.place("r", PERP, -1, 1100, 10, F_REDUCE_ONLY)
    assert out[0].lots == 3
    out = eng.place("r", PERP, 1, 900, 1, F_REDUCE_ONLY)  # buying more is not reducing
    assert out[0].code == "order.rejected.reduce_only"


def test_resting_reduce_only_trimmed_when_position_shrinks(eng: MatchingEngine) -> None:
    eng.place("m", PERP, -1, 1000, 10)
    eng.place("r", PERP, 1, 1000, 10)  # long 10
    first = oid(eng.place("r", PERP, -1, 1100, 6, F_REDUCE_ONLY))
    second = oid(eng.place("r", PERP, -1, 1200, 4, F_REDUCE_ONLY))
    eng.place("m", PERP, 1, 1000, 3)
    out = eng.place("r", PERP, -1, 1000, 3)  # r sells 3 to m: long 7 now
    trims = [e for e in out if isinstance(e, Cancelled) and e.reason == "reduce_only"]
    assert [(e.order_id, e.lots, e.remaining) for e in trims] == [(second, 3, 1)]
    assert eng.book(PERP).level(-1, 1100) == (6, 1)
    eng.set_position("r", PERP, D("0"))
    assert eng.open_orders("r") == []
    assert first not in [int(o.order_id) for o in eng.open_orders("r")]


def test_resting_reduce_only_fill_never_flips_position(eng: MatchingEngine) -> None:
    eng.place("m", PERP, -1, 1000, 5)
    eng.place("r", PERP, 1, 1000, 5)
    eng.place("r", PERP, -1, 1010, 5, F_REDUCE_ONLY)
    eng.place("r", PERP, -1, 1020, 5, F_REDUCE_ONLY)  # trimmed away at once: 5 already cover the position
    assert eng.book(PERP).level(-1, 1020) == (0, 0)
    eng.place("t", PERP, 1, 1020, 20)
    assert eng.position_lots("r", PERP) == 0


# ---------------------------------------------------------------------------------- bands, sizes, states
def test_price_band_reject_names_the_band(eng: MatchingEngine) -> None:
    eng.add_instrument(Instrument.parse("BTC-PERPETUAL"))
    eng.set_mark("BTC-PERPETUAL", D("60000"))
    assert eng.band("BTC-PERPETUAL") == (D("59100.0"), D("60900.0"))
    out = eng.submit(OrderRequest("BTC-PERPETUAL", Side.BUY, D("10"), D("61000"), account="a"))
    assert out[0].code == "order.rejected.band"
    assert "59100.0" in out[0].message and "60900.0" in out[0].message
    out = eng.submit(OrderRequest("BTC-PERPETUAL", Side.BUY, D("10"), D("60900"), account="a"))
    assert isinstance(out[0], Accepted)
    out = eng.submit(OrderRequest("BTC-PERPETUAL", Side.SELL, D("10"), D("59000"), account="a"))
    assert out[0].code == "order.rejected.band" and out[0].message.startswith("sell at 59000")


def test_a_passive_order_beyond_the_far_edge_of_the_band_rests_and_trades_only_inside_it(eng: MatchingEngine) -> None:
    # Deribit §3.7: the band clamps buys above its top and sells below its bottom; a bid far under the market
    # (a resting "catch the wick" order) is no trade outside the band, so it rests.
    eng.add_instrument(Instrument.parse("BTC-PERPETUAL"))
    eng.set_mark("BTC-PERPETUAL", D("60000"))
    bid = eng.submit(OrderRequest("BTC-PERPETUAL", Side.BUY, D("10"), D("48000"), account="a"))
    ask = eng.submit(OrderRequest("BTC-PERPETUAL", Side.SELL, D("10"), D("72000"), account="b"))
    assert isinstance(bid[0], Accepted) and isinstance(ask[0], Accepted)
    assert eng.best_bid_ask("BTC-PERPETUAL") == (D("48000.0"), D("72000.0"))
    # A market sell stops at the band's bottom: it does not reach the bid at 48,000.
    out = eng.submit(OrderRequest("BTC-PERPETUAL", Side.SELL, D("10"), None, OrderType.MARKET, TimeInForce.IOC, account="c"))
    assert not any(isinstance(e, Filled) for e in out)
    # Amending it further away is allowed too; amending it across the top of the band is not.
    oid = bid[0].order_id
    assert isinstance(eng.amend("a", oid, price=D("47000"))[0], Amended)
    assert eng.amend("a", oid, price=D("61000"))[0].code == "order.rejected.band"


def test_max_order_size() -> None:
    e = MatchingEngine(SimClock())
    e.add_instrument(Instrument.parse(PERP), band=None, max_amount=D("1"))
    out = e.place("a", PERP, 1, 100, 1001)
    assert out[0].code == "order.rejected.max_size"
    assert isinstance(e.place("a", PERP, 1, 100, 1000)[0], Accepted)


def test_instrument_states(eng: MatchingEngine) -> None:
    a = oid(eng.place("a", PERP, 1, 1000, 5))
    out = eng.set_state(PERP, InstrumentState.HALTED)
    assert kinds(out) == ["StateChanged"]
    out = eng.place("a", PERP, 1, 1000, 5)
    assert out[0].code == "order.rejected.state" and "halted" in out[0].message
    assert eng.amend_lots("a", a, lots=3)[0].code == "order.rejected.state"
    assert isinstance(eng.cancel("a", a)[0], Cancelled)  # cancels still work while halted
    eng.set_state(PERP, InstrumentState.OPEN)
    b = oid(eng.place("a", PERP, 1, 1000, 5))
    c = oid(eng.place("b", PERP, -1, 1001, 5))
    out = eng.expire(PERP)
    assert kinds(out) == ["StateChanged", "Expired", "Expired", "BookChanged", "BookChanged"]
    assert [e.order_id for e in out if isinstance(e, Expired)] == [b, c]
    assert len(eng.book(PERP)) == 0 and eng.order_count() == 0
    assert eng.place("a", PERP, 1, 1000, 5)[0].code == "order.rejected.state"
    assert isinstance(eng.set_state(PERP, InstrumentState.SETTLED)[0], StateChanged)
    with pytest.raises(InvalidInput):
        eng.set_state(PERP, InstrumentState.OPEN)


# ---------------------------------------------------------------------------------- fees
def test_option_fee_cap_is_12_5_percent_of_price() -> None:
    inst = Instrument.parse(OPT)
    sched = FeeSchedule.for_instrument(inst)
    # Deribit's example: an option at 0.0001 BTC pays 0.0000125 BTC per contract instead of 0.0003.
    assert sched.fee(10, inst.to_ticks(D("0.0001")), maker=False) == D("0.0000125")
    # At 0.05 BTC the 0.03% rate applies: 0.0003 BTC per 1 BTC contract.
    assert sched.fee(10, inst.to_ticks(D("0.05")), maker=True) == D("0.0003")
    assert sched.fee(25, inst.to_ticks(D("0.05")), maker=False) == D("0.00075")


def test_inverse_future_and_linear_fees_and_rebates() -> None:
    fut = Instrument.parse("BTC-27DEC24")
    sched = FeeSchedule.for_instrument(fut, maker_rate=D("-0.0001"))
    lots, ticks = fut.to_lots(D("10000")), fut.to_ticks(D("100000"))
    maker, taker = sched.fees(lots, ticks)
    assert (maker, taker) == (-100_000, 500_000)  # -0.00001 BTC rebate, 0.00005 BTC (deribit.md example)
    lin = Instrument.parse(PERP)
    s2 = FeeSchedule.for_instrument(lin)
    assert s2.fee(lin.to_lots(D("2")), lin.to_ticks(D("50000")), maker=False) == D("50")


def test_linear_option_fee_follows_the_index() -> None:
    inst = Instrument.parse("XRP_USDC-30JUN23-0d625-C")
    e = MatchingEngine(SimClock())
    e.add_instrument(inst, band=None, taker_fee=D("0.0005"), maker_fee=D("0.0001"))
    e.set_index(inst.underlying, D("0.6"))
    sched = e.market(inst.name).fees
    lots = inst.to_lots(D("1000"))
    ticks = inst.to_ticks(D("0.05"))
    # 0.0005 x 0.6 USDC x 1000 = 0.3 USDC, under the cap 0.125 x 0.05 x 1000 = 6.25.
    assert sched.fee(lots, ticks, maker=False) == D("0.3")
    assert sched.fee(lots, ticks, maker=True) == D("0.06")
    e.set_index(inst.underlying, D("100"))
    # 0.0005 x 100 x 1000 = 50 USDC would exceed 12.5% of the 50 USDC premium: capped at 6.25.
    assert sched.fee(lots, ticks, maker=False) == D("6.25")


def test_fills_carry_fees_to_domain_fills(eng: MatchingEngine) -> None:
    got: list[Any] = []
    eng.on_fill(got.append)
    inst = eng.instrument(OPT)
    eng.set_mark(OPT, D("0.05"))
    eng.submit(OrderRequest(OPT, Side.SELL, D("1"), D("0.05"), account="m", client_order_id="q1"))
    eng.submit(OrderRequest(OPT, Side.BUY, D("1"), D("0.05"), account="t", client_order_id="h1"))
    maker, taker = got
    assert (maker.fee, taker.fee, maker.fee_currency) == (D("0.0003"), D("0.0003"), "BTC")
    assert (maker.client_order_id, taker.client_order_id) == ("q1", "h1")
    assert maker.price == D("0.05") and inst.name == maker.instrument


# ---------------------------------------------------------------------------------- hooks
def test_pre_trade_check_rejects_with_its_reason(eng: MatchingEngine) -> None:
    seen: list[Any] = []

    def check(req: Any, ctx: Any) -> RejectReason | None:
        seen.append((req.instrument, req.side, req.amount, req.price, ctx.position(req.account, req.instrument)))
        if req.amount > D("0.005"):
            return RejectReason("margin.insufficient", "needs 1 BTC more")
        return None

    eng.set_pre_trade_check(check)
    out = eng.place("a", PERP, 1, 1000, 6)
    assert kinds(out) == ["Rejected"] and out[0].code == "margin.insufficient" and out[0].message == "needs 1 BTC more"
    out = eng.submit(OrderRequest(PERP, Side.BUY, D("0.005"), D("10"), account="a"))
    assert isinstance(out[0], Accepted)
    assert seen[-1] == (PERP, Side.BUY, D("0.005"), D("10.00"), D("0"))


def test_pre_trade_check_may_raise_typed_errors(eng: MatchingEngine) -> None:
    def check(req: Any, ctx: Any) -> None:
        raise InsufficientMargin("short 0.5 BTC", shortfall="0.5")

    eng.set_pre_trade_check(check)
    out = eng.place("a", PERP, 1, 1000, 6)
    assert out[0].code == "margin.insufficient"


def test_callbacks_get_every_event_in_seq_order_and_may_not_reenter(eng: MatchingEngine) -> None:
    events: list[Any] = []
    eng.on_event(events.append)
    eng.place("m", PERP, -1, 1000, 5)
    eng.place("t", PERP, 1, 1000, 2)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))

    def reenter(ev: Any) -> None:
        eng.place("x", PERP, 1, 900, 1)

    eng.on_event(reenter)
    with pytest.raises(OrderRejected):
        eng.place("m", PERP, -1, 1000, 5)


def test_order_request_types_map_to_flags(eng: MatchingEngine) -> None:
    eng.submit(OrderRequest(PERP, Side.SELL, D("0.005"), D("10"), account="m"))
    out = eng.submit(OrderRequest(PERP, Side.BUY, D("0.010"), None, type=OrderType.MARKET, account="t"))
    assert out[0].flags & F_MARKET and out[-1].reason == "market"
    out = eng.submit(OrderRequest(PERP, Side.BUY, D("0.010"), D("10"), tif=TimeInForce.FOK, account="t"))
    assert out[0].flags & F_FOK and out[-1].reason == "fok"
    [o] = [o for o in eng.open_orders("m")] or [None]
    assert o is None
    eng.submit(OrderRequest(PERP, Side.BUY, D("0.010"), D("9"), account="t", client_order_id="c1"))
    [o] = eng.open_orders("t")
    assert o.request.client_order_id == "c1" and o.request.amount == D("0.010") and o.request.price == D("9.00")
    assert isinstance(eng.place("t", PERP, 1, 800, 1)[-1], BookChanged)
    assert isinstance(eng.place("t", PERP, 1, 800, 1, F_IOC)[-1], Cancelled)
    assert isinstance(eng.place("t", PERP, 1, 800, 1, F_POST_ONLY)[-1], BookChanged)
    assert not any(isinstance(e, Rejected) for e in eng.place("t", PERP, 1, 800, 1))
