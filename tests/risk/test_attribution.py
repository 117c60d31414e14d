"""PnL attribution: terms add up, small residual for small moves, exact cases."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import InvalidInput
from app.risk import Book, PositionKind, attribute_pnl, position_greeks

F = 60000.0


def _book(inverse: bool) -> tuple[Book, np.ndarray]:
    rng = np.random.default_rng(4)
    n = 30
    k = F * np.exp(rng.uniform(-0.3, 0.3, n))
    t = rng.uniform(7 / 365, 0.5, n)
    return Book.options(k, t, rng.random(n) < 0.5, rng.uniform(-3, 3, n), inverse), rng.uniform(0.4, 0.8, n)


@pytest.mark.parametrize("inverse", [True, False])
def test_terms_explain_small_moves(inverse: bool) -> None:
    book, vol = _book(inverse)
    coin, usd = attribute_pnl(book, F, vol, F * 1.01, vol + 0.005, 1 / 365)
    for a in (coin, usd):
        parts = a.delta + a.gamma + a.vega + a.theta + a.residual
        assert parts == pytest.approx(a.total, rel=1e-12, abs=1e-12)
        assert abs(a.residual) < 0.05 * (abs(a.delta) + abs(a.gamma) + abs(a.vega) + abs(a.theta))


def test_residual_shrinks_with_the_move() -> None:
    book, vol = _book(True)
    big = attribute_pnl(book, F, vol, F * 1.02, vol, 0.0)[0]
    small = attribute_pnl(book, F, vol, F * 1.002, vol, 0.0)[0]
    assert abs(small.residual) < abs(big.residual) / 100  # third order: (10x smaller)^3


def test_delta_term_is_the_coin_delta() -> None:
    book, vol = _book(True)
    coin = attribute_pnl(book, F, vol, F + 1.0, vol, 0.0)[0]
    # the coin delta is F·∂(value_coin)/∂F, so a 1 USD move gives delta/F coin
    assert coin.delta == pytest.approx(position_greeks(book, F, vol).delta.sum() / F, rel=1e-12)


def test_pure_time_is_theta() -> None:
    book, vol = _book(False)
    usd = attribute_pnl(book, F, vol, F, vol, 1e-6)[1]
    assert usd.delta == 0 and usd.vega == 0
    assert usd.theta == pytest.approx(usd.total, rel=1e-4)


def test_futures_exact() -> None:
    book = Book(np.array([PositionKind.FUTURE] * 2, np.int8), np.full(2, np.nan), np.zeros(2), np.zeros(2, bool),
                np.array([60000.0, 3.0]), np.array([True, False]), np.full(2, -1, np.int64))
    coin, usd = attribute_pnl(book, F, 0.0, F * 1.05, 0.0, 0.0)
    assert usd.vega == 0 and usd.theta == 0
    # linear future: delta is exact; inverse: delta + gamma leave only the third-order term of 1/F
    f1 = F * 1.05
    inverse_coin = 60000.0 * (1 / F - 1 / f1)
    assert coin.total == pytest.approx(inverse_coin + 3.0 * (f1 - F) / f1)
    assert abs(coin.residual) < 0.01 * abs(coin.total)


def test_bad_inputs() -> None:
    book, vol = _book(True)
    with pytest.raises(InvalidInput):
        attribute_pnl(book, F, vol, -F, vol, 0.0)
    with pytest.raises(InvalidInput):
        attribute_pnl(book, F, vol, F, vol, -1.0)
