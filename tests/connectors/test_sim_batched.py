"""The simulated venue's batched paths agree with the plain ones: marks of every option in one call, every maker's
quotes in one call, taker draws split in two, margin marked once per step, books synced on use."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from app.domain import MS_PER_YEAR, OrderRequest, OrderType, Side, TimeInForce
from app.pricing.black import inverse_greeks
from connectors.sim.listing import ListingConfig
from connectors.sim.market_makers import DEFAULT_MAKERS, FutureQuotes, OptionQuotes
from connectors.sim.smile import MIN_YEARS, implied_vols
from connectors.sim.takers import TakerParams, Takers
from connectors.sim.venue import SimConfig, SimVenue

SMALL = ListingConfig(weekly_days=8, monthly_days=0, quarterly_days=100, strikes_per_expiry=12)


def _venue(seed: int = 7, **kw) -> SimVenue:
    return SimVenue(SimConfig(seed=seed, listing=SMALL, **kw))


def test_one_pricing_call_marks_every_option_as_the_smile_of_its_underlying_does() -> None:
    v = _venue()
    v.advance(30_000)
    now = v.clock.now_ms()
    for base, mk in v.markets.items():
        o = mk.opt
        years = np.maximum((mk.expiry - now) / MS_PER_YEAR, MIN_YEARS)
        spot = v.index_price[base]
        fwd = spot * np.exp(v.model.params[base].carry * years)
        iv = implied_vols(v.model, base, mk.strike, fwd, years)
        np.testing.assert_allclose(mk.fwd[o], fwd, rtol=1e-14)
        np.testing.assert_allclose(mk.iv[o], iv, rtol=1e-13)
        g = inverse_greeks(fwd, mk.strike, years, iv, mk.call)  # the numpy path, whatever the size
        np.testing.assert_allclose(mk.mark[o], np.maximum(g.price, 0.0), rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(mk.vega[o], g.vega, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(mk.delta[o], g.delta, rtol=1e-10, atol=1e-13)


def test_every_makers_quotes_in_one_call_are_each_makers_own() -> None:
    v = _venue()
    v.advance(5_000)
    mk = v.markets["BTC"]
    opts = [mk.insts[k] for k in mk.opt]
    theo, vega = mk.mark[mk.opt], mk.vega[mk.opt]
    n = len(opts)
    many = OptionQuotes(opts, DEFAULT_MAKERS)
    # per-option spot, vol ratio and stress (several underlyings at once) give what one scalar each gives
    rows = many.quote(theo, vega, np.full(n, 61_000.0), np.full(n, 1.3), np.full(n, 0.7))
    futs = [mk.insts[k] for k in mk.fut]
    fut_rows = FutureQuotes(futs, DEFAULT_MAKERS).quote(mk.fwd[mk.fut], 1.3, 0.7)
    for m, params in enumerate(DEFAULT_MAKERS):
        one = OptionQuotes(opts, (params,)).quote(theo, vega, 61_000.0, 1.3, 0.7)  # this maker alone
        for got, want in zip(rows, one):
            np.testing.assert_array_equal(got[m], want[0])
        one_f = FutureQuotes(futs, (params,)).quote(mk.fwd[mk.fut], 1.3, 0.7)
        for got, want in zip(fut_rows, one_f):
            np.testing.assert_array_equal(got[m], want[0])
    assert not np.array_equal(rows[0][0], rows[0][1])  # the makers differ


def test_arrivals_then_orders_draw_exactly_what_draw_draws() -> None:
    a, b = Takers(TakerParams(rate_per_min=30.0), seed=5), Takers(TakerParams(rate_per_min=30.0), seed=5)
    opts = np.arange(3, 40)
    lm = np.linspace(-0.3, 0.3, len(opts))
    years = np.linspace(0.01, 0.5, len(opts))
    futs = np.array([1, 2])
    seen = 0
    for step in range(200):
        ret = 0.001 * np.sin(step)
        want = a.draw("BTC", 1.0, ret, 0, futs, opts, lm, years)
        got = b.orders("BTC", b.arrivals(1.0), ret, 0, futs, opts, lm, years)
        assert got == want
        seen += len(got)
    assert seen > 50


def test_margin_gets_the_marks_once_per_step_and_they_follow_the_market() -> None:
    v = _venue(quoting="lazy")
    v.advance(1_000)
    v.sync("BTC-PERPETUAL")
    ask = v.engine.market("BTC-PERPETUAL").book.best_ask()
    inst = v.instruments_by_name["BTC-PERPETUAL"]
    v.place_now(OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal(1000), inst.from_ticks(ask), account="main"))
    for _ in range(3):
        v.advance(1_000)
        assert v.margin.marks["BTC-PERPETUAL"].mark_price == v.mark_of("BTC-PERPETUAL")[0]
        version = v.margin.marks_version
        v._mark_margin(v._watched.keys())  # the marks did not move since: nothing is set again
        assert v.margin.marks_version == version


def test_a_book_we_only_hold_is_synced_when_used_and_before_the_liquidator_trades() -> None:
    v = _venue(quoting="lazy", takers=TakerParams(rate_per_min=0.0))
    v.advance(1_000)
    name = "BTC-PERPETUAL"
    v.sync(name)
    inst = v.instruments_by_name[name]
    ask = v.engine.market(name).book.best_ask()
    v.place_now(OrderRequest(name, Side.BUY, Decimal(1000), inst.from_ticks(ask + 20), account="main"))
    assert not v.orders() and v.accounts.position("main", name).size == Decimal(1000)
    mk = v.markets["BTC"]
    k = mk.pos[name]
    v.advance(3_000)
    assert mk.synced[k] < v._step_no  # held without resting orders: not brought to the targets every step
    v.quote(name)
    assert mk.synced[k] == v._step_no
    v.advance(1_000)
    v.liquidator.engine.submit(OrderRequest(name, Side.SELL, Decimal(10), None, OrderType.MARKET, TimeInForce.IOC,
                                            account="main"))
    assert mk.synced[k] == v._step_no


def test_a_books_own_targets_are_the_column_of_everyones() -> None:
    v = _venue(quoting="lazy")
    v.advance(3_000)
    v._targets()
    checked = 0
    for mk in v.markets.values():
        for k in range(len(mk.names)):
            every = [tuple((int(t[k]), int(n[k]), float(e[k]), int(s[k])) for t, n, e, s in sides) for sides in mk.targets]
            assert v._targets_one(mk, k) == every
            checked += 1
    assert checked > 100
