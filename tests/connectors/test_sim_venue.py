"""The embedded simulated venue: books quoted by makers, takers trading, our orders matching, listing over time."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.bus import Bus
from app.domain import IndexPrice, Kind, OrderRequest, OrderStatus, Quote, Side, Trade
from app.errors import InsufficientMargin, NotFound, OrderRejected, UnknownInstrument
from connectors.sim.listing import ListingConfig
from connectors.sim.market_makers import MakerParams, OptionQuotes, needs_requote, to_requote
from connectors.sim.venue import SimConfig, SimVenue

SMALL = ListingConfig(weekly_days=8, monthly_days=0, quarterly_days=100, strikes_per_expiry=12)


def _venue(seed: int = 7, **kw) -> SimVenue:
    return SimVenue(SimConfig(seed=seed, listing=SMALL, **kw))


def test_same_seed_same_fills_other_seed_other_fills() -> None:
    a, b, c = _venue(3), _venue(3), _venue(4)
    for v in (a, b, c):
        v.advance(120_000)
    assert a.trade_count > 0
    assert a.fills_sha256() == b.fills_sha256() != c.fills_sha256()
    assert a.index_price == b.index_price


def test_books_are_two_sided_uncrossed_and_around_the_mark() -> None:
    v = _venue(quoting="eager")
    v.advance(5_000)
    checked = 0
    for mk in v.markets.values():
        for k, name in enumerate(mk.names):
            book = v.engine.market(name).book
            bid, ask = book.best_bid(), book.best_ask()
            assert ask is not None
            inst = mk.insts[k]
            if bid is not None:
                assert bid < ask
                mid = (bid + ask) / 2 * float(inst.tick_size)
                assert abs(mid - mk.mark[k]) <= (ask - bid) * float(inst.tick_size) + 2 * float(inst.tick_size)
                checked += 1
    assert checked > 100


def test_spread_widens_with_vol_and_stress() -> None:
    v = _venue()
    mk = v.markets["BTC"]
    quoter = OptionQuotes([mk.insts[k] for k in mk.opt], (MakerParams(),))
    theo, vega = mk.mark[mk.opt], mk.vega[mk.opt]
    calm = [side[0] for side in quoter.quote(theo, vega, 60_000.0, 1.0, 0.0)]  # the one maker's row
    wild = [side[0] for side in quoter.quote(theo, vega, 60_000.0, 2.0, 3.0)]
    assert np.all(wild[2] - wild[0] >= calm[2] - calm[0])
    assert np.mean(wild[2] - wild[0]) > 2 * np.mean(calm[2] - calm[0])


def test_requote_only_moves_what_must_move() -> None:
    p = MakerParams(passive_tolerance=2)
    old_t = np.array([100, 100, 100, 100, 0])
    old_l = np.array([5, 5, 5, 5, 0])
    new_t = np.array([100, 101, 103, 99, 100])  # same, 1 passive, 3 passive, too aggressive (bid), new quote
    new_l = np.array([5, 5, 5, 5, 5])
    assert to_requote(1, old_t, old_l, new_t, new_l, np.ones(5, dtype=np.int64), p).tolist() == [2, 3, 4]
    # with edge known, a bid one step too rich but still two steps from model value stays; with thin edge it moves
    one = np.ones(2, dtype=np.int64)
    rich_t, rich_l = np.array([101, 101]), np.array([5, 5])
    target_t = np.array([100, 100])
    assert to_requote(1, rich_t, rich_l, target_t, rich_l, one, p, edge=np.array([3.0, 1.5])).tolist() == [1]
    assert to_requote(1, rich_t + 1, rich_l, target_t, rich_l, one, p, edge=np.array([9.0, 9.0])).tolist() == [0, 1]
    # a size far from target moves even at the same price
    assert to_requote(1, old_t[:1], old_l[:1], old_t[:1], np.array([20]), np.ones(1, dtype=np.int64), p).tolist() == [0]


def test_a_step_requotes_a_fraction_of_the_quotes() -> None:
    v = _venue(quoting="eager")
    v.advance(2_000)
    before = v.engine.seq
    v.advance(1_000)
    slots = sum(len(mk.names) for mk in v.markets.values()) * 2 * len(v.makers)
    assert v.engine.seq - before < slots  # most quotes stay where they are


def test_our_order_matches_partially_fills_and_moves_the_book() -> None:
    v = _venue()
    v.advance(2_000)
    name = "BTC-PERPETUAL"
    v.sync(name)  # lazy quoting: bring the book to the makers' targets before reading it
    book = v.engine.market(name).book
    ask = book.best_ask()
    top = book.asks[ask][0]
    inst = v.instruments_by_name[name]
    req = OrderRequest(name, Side.BUY, inst.from_lots(top + 5), inst.from_ticks(ask), account="main")
    order = v.place_now(req)
    assert order.status is OrderStatus.OPEN and order.filled == inst.from_lots(top)  # partial: rest joins the bids
    assert book.best_bid() == ask and book.best_ask() > ask
    fills = [f for f in v._our_fills if f.order_id == order.order_id]
    assert sum(f.amount for f in fills) == order.filled and all(f.account == "main" for f in fills)
    cancelled = v.cancel_now(order.order_id)
    assert cancelled.status is OrderStatus.CANCELLED
    with pytest.raises(NotFound):
        v.cancel_now("999999")


def test_orders_are_margin_checked_and_refusals_change_nothing() -> None:
    v = _venue()
    v.advance(1_000)
    name = "BTC-PERPETUAL"
    v.sync(name)
    book = v.engine.market(name).book
    inst = v.instruments_by_name[name]
    seq = v.engine.seq
    with pytest.raises(InsufficientMargin) as err:
        v.place_now(OrderRequest(name, Side.BUY, Decimal(50_000_000), inst.from_ticks(book.best_bid() - 200), account="main"))
    assert err.value.code.startswith("margin.")
    assert v.engine.open_orders("main") == []
    with pytest.raises(OrderRejected):
        v.place_now(OrderRequest(name, Side.BUY, Decimal(10), Decimal(60_000), account="mm1"))
    with pytest.raises(UnknownInstrument):
        v.place_now(OrderRequest("BTC-1JAN30-1000-C", Side.BUY, Decimal(1), Decimal("0.1"), account="main"))
    assert v.engine.seq == seq + 1  # only the rejection event


@pytest.mark.asyncio
async def test_venue_protocol_and_bus() -> None:
    from app.ports import Venue

    v = _venue()
    assert isinstance(v, Venue)
    bus = Bus()
    sub = bus.subscribe(None)
    await v.connect(bus)
    v.advance(3_000)
    events = sub.drain()
    kinds = {type(e) for e in events}
    assert Quote in kinds and IndexPrice in kinds
    assert len(await v.instruments()) == len(v.instruments_by_name)
    quotes = [e for e in events if isinstance(e, Quote) and e.mark_iv is not None]
    assert quotes and all(0.05 < q.mark_iv < 5 for q in quotes)
    await v.close()


def test_listing_rolls_and_expired_instruments_settle() -> None:
    # start five minutes before the 08:00 UTC expiry of the first daily
    v = _venue(start_ms=1_704_095_700_000, step_ms=10_000)
    first = min(i.expiry_ms for i in v.instruments_by_name.values() if i.expiry_ms)
    doomed = [n for n, i in v.instruments_by_name.items() if i.expiry_ms == first]
    assert doomed
    v.advance(600_000)
    assert not any(n in v.instruments_by_name for n in doomed)
    assert v.settlements and v.settlements[0]["delivery_price"] > 0
    assert v.engine.market(doomed[0]).state.value == "expired"
    assert v.engine.open_orders("mm1", doomed[0]) == []
    assert any(i.expiry_ms and i.expiry_ms > first + 86_400_000 for i in v.instruments_by_name.values()
               if i.kind is Kind.OPTION)


def test_takers_trade_and_trades_are_published() -> None:
    v = _venue()
    bus = Bus()
    v.attach(bus)
    sub = bus.subscribe({"trade"})
    v.advance(180_000)
    trades = [e for e in sub.drain() if isinstance(e, Trade)]
    assert len(trades) == v.trade_count > 0


@pytest.mark.asyncio
async def test_account_and_position_reports_come_from_the_account_book() -> None:
    v = _venue()
    v.advance(1_000)
    v.sync("ETH-PERPETUAL")
    book = v.engine.market("ETH-PERPETUAL").book
    inst = v.instruments_by_name["ETH-PERPETUAL"]
    v.place_now(OrderRequest("ETH-PERPETUAL", Side.SELL, Decimal(3_000), inst.from_ticks(book.best_bid()), account="main"))
    reports = await v.position_reports()
    assert [(r.instrument, r.size) for r in reports] == [("ETH-PERPETUAL", Decimal(-3_000))]
    acct = await v.account("ETH")
    assert acct.currency == "ETH" and Decimal(99) < acct.equity <= Decimal(100) and acct.initial_margin > 0
    assert acct.available_funds < acct.equity


@settings(max_examples=300, deadline=None)
@given(sign=st.sampled_from([1, -1]), old_t=st.integers(1, 80), old_l=st.integers(0, 20), new_t=st.integers(1, 80),
       new_l=st.integers(0, 20), step=st.sampled_from([1, 5]), edge=st.floats(-5, 30))
def test_scalar_and_vector_requote_rules_agree(sign: int, old_t: int, old_l: int, new_t: int, new_l: int, step: int,
                                               edge: float) -> None:
    p = MakerParams()
    vec = to_requote(sign, np.array([old_t]), np.array([old_l]), np.array([new_t]), np.array([new_l]),
                     np.array([step]), p, np.array([edge])).tolist() == [0]
    assert needs_requote(sign, old_t, old_l, new_t, new_l, step, edge, p) == vec


def test_lazy_quoting_touches_books_only_on_use_and_stays_deterministic() -> None:
    eager, lazy, lazy2 = _venue(quoting="eager"), _venue(quoting="lazy"), _venue(quoting="lazy")
    s_eager, s_lazy = eager.engine.seq, lazy.engine.seq
    for v in (eager, lazy, lazy2):
        v.advance(60_000)
    assert lazy.engine.seq - s_lazy < (eager.engine.seq - s_eager) / 3
    assert lazy.fills_sha256() == lazy2.fills_sha256() and lazy.trade_count > 0
    # a book read through the venue is brought to the makers' targets first
    for name in list(lazy.instruments_by_name)[:40]:
        q = lazy.quote(name)
        assert q.ask is not None and (q.bid is None or q.bid < q.ask)
        if q.bid is not None:
            assert q.bid <= q.mark_price + 2 * float(lazy.instruments_by_name[name].tick_size) <= q.ask + 4 * float(
                lazy.instruments_by_name[name].tick_size)
    # a listener on the bus switches "auto" to eager quoting
    auto = _venue()
    bus = Bus()
    auto.attach(bus)
    assert auto._lazy_now()
    sub = bus.subscribe({"quote"})
    assert not auto._lazy_now()
    sub.close()
    assert auto._lazy_now()


def test_lazy_quoting_still_fills_our_resting_order_when_the_market_moves_through_it() -> None:
    from connectors.sim.takers import TakerParams

    v = _venue(quoting="lazy", takers=TakerParams(rate_per_min=0.0))  # no taker touches the book: only our order
    v.advance(1_000)
    name = "BTC-PERPETUAL"
    v.sync(name)
    inst = v.instruments_by_name[name]
    bid = v.engine.market(name).book.best_bid()
    order = v.place_now(OrderRequest(name, Side.BUY, Decimal(1000), inst.from_ticks(bid - 200), account="main"))
    assert order.status is OrderStatus.OPEN
    v.model.s[v.model.index("BTC")] *= 0.98  # spot drops 2 %: the makers' asks come down through our bid
    v.advance(20_000)
    assert v.orders(open_only=False)[0].status is OrderStatus.FILLED


def test_an_account_past_its_maintenance_margin_is_liquidated_through_the_book() -> None:
    v = _venue(quoting="lazy", funding={"main": {"BTC": Decimal("0.05"), "ETH": Decimal(1)}})
    v.advance(1_000)
    name = "BTC-PERPETUAL"
    v.sync(name)
    inst = v.instruments_by_name[name]
    ask = v.engine.market(name).book.best_ask()
    # 0.05 BTC of margin carries about $60,000 of perpetual at 50x (IM ~2%): buy close to the limit...
    v.place_now(OrderRequest(name, Side.BUY, Decimal(100_000), inst.from_ticks(ask + 20), account="main"))
    assert v.accounts.position("main", name).size == Decimal(100_000)
    v.model.s[v.model.index("BTC")] *= 0.97  # ...and let spot fall 3 %
    bus = Bus()
    v.attach(bus)
    sub = bus.subscribe({"alert", "liquidation_started", "liquidation_step"})
    v.advance(30_000)
    topics = [e.topic for e in sub.drain()]
    assert "liquidation_started" in topics and "liquidation_step" in topics
    pos = v.accounts.position("main", name)
    assert pos is None or pos.size < Decimal(100_000)
    assert any(f.liquidity.value == "taker" and f.side is Side.SELL for f in v._our_fills)


def test_perpetual_funding_follows_the_premium_and_longs_pay() -> None:
    v = _venue(perp_premium_std=0.0, perp_premium_halflife_s=1e12)
    v.perp_premium[v.model.index("BTC")] = 0.002  # the perpetual trades 0.2 % over the index
    v.advance(2_000)
    name = "BTC-PERPETUAL"
    v.sync(name)
    inst = v.instruments_by_name[name]
    ask = v.engine.market(name).book.best_ask()
    v.place_now(OrderRequest(name, Side.BUY, Decimal(60_000), inst.from_ticks(ask), account="main"))
    assert v.accounts.position("main", name).size == Decimal(60_000)
    before = v.accounts.balance("main", "BTC")
    v.advance(600_000)
    paid = before - v.accounts.balance("main", "BTC")
    rate = v.funding_rates["BTC"]
    assert rate == pytest.approx(0.002 - 0.00025, rel=0.05)  # Deribit's dampener takes 0.025 %
    expected = rate * 60_000 / v.index_price["BTC"] * 600_000 / 28_800_000
    assert float(paid) == pytest.approx(expected, rel=0.1)
    assert v.quote(name).mark_price == pytest.approx(v.index_price["BTC"] * 1.002, rel=1e-3)
