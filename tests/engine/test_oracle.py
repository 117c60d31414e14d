"""Oracle: median + clamp index, staleness/deviation/quorum, stale published on the bus; futures and option marks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.bus import Bus
from app.clock import SimClock
from app.domain import Instrument
from app.engine.oracle import FuturesMarker, Oracle, OracleParams, option_marks
from app.pricing import black76

T0 = 1_718_000_000_000


def make(quorum: int = 1, **params):
    clock = SimClock(T0)
    bus = Bus()
    sub = bus.subscribe({"index_price", "alert"})
    return clock, bus, sub, Oracle(clock, bus, OracleParams(quorum=quorum, **params))


def test_equal_weight_average_of_clamped_mids() -> None:
    clock, _, _, o = make()
    o.update("btc_usd", "a", 64_990, 65_010)  # mid 65,000
    o.update("btc_usd", "b", 65_090, 65_110)  # 65,100
    o.update("btc_usd", "c", 65_900, 66_100)  # 66,000: +1.38 % from the median, clamped to +0.5 %
    res = o.compute("btc_usd")
    med = 65_100.0
    want = (65_000 + 65_100 + med * 1.005) / 3
    assert not res.stale and res.price == pytest.approx(want, rel=1e-12)


def test_stale_nan_and_crossed_are_dropped_and_counted_and_a_crash_is_clamped_not_dropped() -> None:
    clock, _, _, o = make()
    o.update("btc_usd", "a", 65_000, 65_010)
    o.update("btc_usd", "b", 65_020, 65_030)
    o.update("btc_usd", "c", 30_000, 30_010)  # flash crash on one venue: held at the -0.5 % band (§3.4)
    assert not o.update("btc_usd", "d", math.nan, 65_000)
    assert not o.update("btc_usd", "e", 65_100, 65_000)
    o.update("btc_usd", "f", 65_000, 65_010, ts=T0 - 60_000)  # a minute old
    res = o.compute("btc_usd")
    assert res.used == ("a", "b", "c")
    assert res.dropped == {"f": "stale"}
    assert o.drops["nan"] == 1 and o.drops["crossed"] == 1
    med = 65_005.0
    assert res.price == pytest.approx((65_005 + 65_025 + med * 0.995) / 3, rel=1e-12)


def test_one_exchange_printing_zero_among_five_moves_the_index_a_tenth_of_a_percent() -> None:
    # Deribit's flash-crash note: one exchange going to ~0 moves the BTC index by ~0.1 %.
    _, _, _, o = make()
    for name in "abcd":
        o.update("btc_usd", name, price=100.0)
    o.update("btc_usd", "e", price=0.01)
    assert o.compute("btc_usd").price == pytest.approx(99.9, rel=1e-12)


def test_an_optional_deviation_bound_drops_far_sources_before_the_clamp() -> None:
    _, _, _, o = make(max_deviation=0.05)
    o.update("btc_usd", "a", price=65_000.0)
    o.update("btc_usd", "b", price=65_020.0)
    o.update("btc_usd", "c", price=30_000.0)
    res = o.compute("btc_usd")
    assert res.used == ("a", "b") and res.dropped == {"c": "deviation"}
    assert res.price == pytest.approx(65_010.0)


def test_quorum_loss_marks_the_index_stale_and_says_so() -> None:
    clock, _, sub, o = make(quorum=2)  # a desk may ask for two sources
    o.update("btc_usd", "a", 65_000, 65_010)
    o.update("btc_usd", "b", 65_020, 65_030)
    first = o.tick()[0]
    assert not first.stale
    clock.advance(20_000)  # both sources go stale
    o.update("btc_usd", "a", 64_000, 64_010)
    res = o.tick()[0]
    assert res.stale and res.price == first.price  # last good price kept
    assert o.is_stale("btc_usd")
    events = sub.drain()
    idx = [e for e in events if e.topic == "index_price"]
    alerts = [e for e in events if e.topic == "alert"]
    assert [e.stale for e in idx] == [False, True]
    assert len(alerts) == 1 and alerts[0].code == "data.stale_index"
    o.update("btc_usd", "b", 64_020, 64_030)
    assert not o.tick()[0].stale
    assert sub.drain()[-1].code == "data.index_ok"


def test_two_sources_that_disagree_lock_the_index_and_one_valid_feed_is_the_index() -> None:
    _, _, _, o = make()
    o.update("eth_usd", "a", 3_500, 3_501)
    o.update("eth_usd", "b", 3_560, 3_561)  # 1.7 % apart
    assert o.compute("eth_usd").stale
    _, _, _, single = make()  # the default: Deribit's "one valid feed -> that feed is the index"
    single.update("eth_usd", "a", 3_500, 3_502)
    res = single.compute("eth_usd")
    assert res.price == 3_501 and not res.stale


def test_samples_every_four_seconds_feed_the_twap() -> None:
    clock, _, _, o = make()
    for i in range(500):
        o.update("btc_usd", "a", price=60_000 + i)
        o.tick()
        clock.advance(4_000)
    expiry = clock.now_ms() - 4_000
    xs = o.twap.samples("btc_usd", expiry)
    assert len(xs) == 450
    assert float(o.twap.delivery_price("btc_usd", expiry)) == pytest.approx(np.mean(xs), abs=1e-8)


def test_futures_mark_follows_basis_ema_within_band() -> None:
    m = FuturesMarker(ema_ms=30_000, band=0.015)
    assert m.update("BTC-PERPETUAL", 65_000, T0, bid=65_100, ask=65_110) == pytest.approx(65_105)
    # One trade far away moves the EMA only partly; the band caps the mark.
    mark = m.update("BTC-PERPETUAL", 65_000, T0 + 1_000, last=70_000, bid=69_000, ask=71_000)
    assert 65_105 < mark < 65_000 * 1.015
    assert m.update("BTC-PERPETUAL", 65_000, T0 + 3_600_000, last=70_000, bid=69_000, ask=71_000) == pytest.approx(65_975)


class FlatSurface:
    def __init__(self, vol: float) -> None:
        self.vol = vol

    def iv(self, strike, t):
        return np.full(np.shape(strike), self.vol)


def test_option_marks_from_a_surface() -> None:
    inst = Instrument.parse("BTC-28JUN24-70000-C")
    out = option_marks(FlatSurface(0.55), [inst, Instrument.parse("BTC-28JUN24")], {"BTC-28JUN24": 66_000.0}, T0)
    mark, iv, fwd = out[inst.name]
    t = inst.years_to_expiry(T0)
    assert iv == 0.55 and fwd == 66_000.0
    assert mark == pytest.approx(float(black76(66_000.0, 70_000.0, t, 0.55, True).price) / 66_000.0, rel=1e-12)


def test_index_is_numpys_median_clamp_and_mean_of_the_sources() -> None:
    rng = np.random.default_rng(11)
    checked = 0
    for n in range(1, 8):
        for _ in range(20):
            clock, _, _, o = make()
            mids = 65_000 * (1 + rng.normal(0, 0.004, n))
            for j, m in enumerate(mids):
                o.update("btc_usd", f"s{j}", price=float(m))
            res = o.compute("btc_usd")
            if res.stale:
                continue
            med = float(np.median(mids))
            want = float(np.clip(mids, med * (1 - o.params.clamp), med * (1 + o.params.clamp)).mean())
            assert res.price == want
            checked += 1
    assert checked > 100
