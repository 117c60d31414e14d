"""Portfolio greeks: agreement with the pricing library, coin/USD views, futures, vega buckets, bad input."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from app.domain import Instrument, Position
from app.errors import InvalidInput
from app.pricing import black76, inverse_greeks
from app.risk import (
    Book,
    PositionKind,
    aggregate,
    inputs_from_surface,
    portfolio_greeks,
    position_greeks,
    vega_by_expiry,
)

F = 60000.0


def _book(n: int = 50, seed: int = 0) -> tuple[Book, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = F * np.exp(rng.uniform(-0.5, 0.5, n))
    t = rng.choice([7 / 365, 30 / 365, 90 / 365], n)
    c = rng.random(n) < 0.5
    size = rng.uniform(-10, 10, n)
    book = Book.options(k, t, c, size, True, (t * 365).astype(np.int64))
    return book, rng.uniform(0.4, 0.9, n)


def test_option_greeks_match_pricing_library() -> None:
    book, vol = _book()
    pg = position_greeks(book, F, vol)
    inv = inverse_greeks(F, book.strike, book.t, vol, book.is_call)
    usd = black76(F, book.strike, book.t, vol, book.is_call)
    np.testing.assert_allclose(pg.delta, book.size * inv.delta, rtol=1e-14)
    np.testing.assert_allclose(pg.delta_bs, book.size * usd.delta, rtol=1e-14)
    np.testing.assert_allclose(pg.gamma, book.size * inv.gamma, rtol=1e-12)  # of the premium-adjusted delta
    bump = 1e-5 * F
    up, down = position_greeks(book, F + bump, vol), position_greeks(book, F - bump, vol)
    np.testing.assert_allclose(pg.gamma, (up.delta - down.delta) / (2 * bump), rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(pg.vega, book.size * usd.vega / F / 100, rtol=1e-14)
    np.testing.assert_allclose(pg.theta, book.size * usd.theta / F / 365, rtol=1e-14)


def test_aggregate_views() -> None:
    book, vol = _book()
    view = portfolio_greeks(book, F, vol, index=F)
    pg = position_greeks(book, F, vol)
    assert view.delta == pytest.approx(pg.delta.sum())
    assert view.delta_usd == pytest.approx(pg.delta.sum() * F)
    assert view.vega_usd == pytest.approx(view.vega * F)
    calls = aggregate(pg, F, mask=book.is_call)
    puts = aggregate(pg, F, mask=~book.is_call)
    assert calls.gamma + puts.gamma == pytest.approx(view.gamma)


def test_linear_options_are_not_premium_adjusted() -> None:
    book = Book.options([55000.0, 65000.0], 0.1, [False, True], [2.0, -1.0], inverse=False)
    pg = position_greeks(book, F, 0.6)
    np.testing.assert_allclose(pg.delta, pg.delta_bs)
    usd = black76(F, book.strike, book.t, 0.6, book.is_call)
    np.testing.assert_allclose(pg.gamma, book.size * usd.gamma, rtol=1e-14)


def test_futures_and_perpetuals() -> None:
    items = [(Instrument.parse("BTC-PERPETUAL"), -30000.0), (Instrument.parse("BTC_USDC-PERPETUAL"), 0.25),
             (Instrument.parse("BTC-27DEC24-60000-C"), 1.0)]
    book = Book.from_instruments(items, now_ms=1_700_000_000_000)
    assert list(book.kind) == [PositionKind.FUTURE, PositionKind.FUTURE, PositionKind.OPTION]
    pg = position_greeks(book, [F, F, F], [0.0, 0.0, 0.5])
    assert pg.delta[0] == pytest.approx(-0.5)  # 30,000 USD short inverse = 0.5 BTC
    assert pg.delta[1] == pytest.approx(0.25)
    assert pg.gamma[0] == 0 and pg.vega[1] == 0
    positions = [Position("BTC-PERPETUAL", size=Decimal("-30000"), average_price=Decimal("60000"))]
    assert Book.from_positions(positions, 1_700_000_000_000).names == ("BTC-PERPETUAL",)


def test_vega_by_expiry_sums_to_total() -> None:
    book, vol = _book()
    buckets = vega_by_expiry(book, F, vol)
    assert buckets.expiry_ms.size == 3
    assert np.all(np.diff(buckets.t) > 0)
    assert buckets.vega.sum() == pytest.approx(position_greeks(book, F, vol).vega.sum())


def test_bad_inputs_raise_typed_errors() -> None:
    book, vol = _book(3)
    with pytest.raises(InvalidInput):
        position_greeks(book, [F, np.nan, F], vol)
    with pytest.raises(InvalidInput):
        position_greeks(book, F, [0.5, -0.1, 0.5])
    with pytest.raises(InvalidInput):
        Book.options([1.0, 2.0], 0.1, True, [1.0, np.inf])


def test_inputs_from_surface() -> None:
    from app.pricing.surface import SVIParams, VolSurface

    surf = VolSurface(np.array([0.1, 0.5]), (SVIParams(0.5**2 * 0.1, 0, 0, 0, 0.1), SVIParams(0.6**2 * 0.5, 0, 0, 0, 0.1)),
                      np.array([60000.0, 61000.0]))
    items = [(Instrument.parse("BTC-PERPETUAL"), 100.0)]
    book = Book.from_instruments(items, 0)
    opts = Book.options([60000.0, 61000.0], [0.1, 0.5], True, 1.0)
    f, v = inputs_from_surface(opts, surf, 59000.0)
    np.testing.assert_allclose(f, [60000.0, 61000.0])
    np.testing.assert_allclose(v, [0.5, 0.6])
    f, v = inputs_from_surface(book, surf, 59000.0)
    assert f[0] == 59000.0 and v[0] == 0.0
