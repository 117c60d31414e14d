"""Scenario grids: zero shock, direct revaluation, futures in coin and USD, time steps, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import InvalidInput
from app.pricing import black76_price
from app.risk import STRESS_SPOT_SHOCKS, STRESS_VOL_SHOCKS, Book, PositionKind, scenario_grid

F = 60000.0


def _options(n: int = 200, seed: int = 1) -> tuple[Book, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = F * np.exp(rng.uniform(-0.6, 0.6, n))
    t = rng.uniform(1 / 365, 1.0, n)
    return Book.options(k, t, rng.random(n) < 0.5, rng.uniform(-5, 5, n)), rng.uniform(0.3, 1.2, n)


def test_grid_shape_and_zero_scenario() -> None:
    book, vol = _options()
    grid = scenario_grid(book, F, vol)
    assert grid.pnl_coin.shape == (len(STRESS_SPOT_SHOCKS), len(STRESS_VOL_SHOCKS))
    i0 = STRESS_SPOT_SHOCKS.index(0.0)
    j0 = STRESS_VOL_SHOCKS.index(0.0)
    assert grid.pnl_coin[i0, j0] == pytest.approx(0.0, abs=1e-9)


def test_matches_direct_revaluation_of_inverse_options() -> None:
    book, vol = _options(40)
    grid = scenario_grid(book, F, vol, spot_shocks=[-0.2, 0.1], vol_shocks=[0.05])
    for i, s in enumerate((-0.2, 0.1)):
        f1 = F * (1 + s)
        before = book.size * black76_price(F, book.strike, book.t, vol, book.is_call) / F
        after = book.size * black76_price(f1, book.strike, book.t, vol + 0.05, book.is_call) / f1
        assert grid.pnl_coin[i, 0] == pytest.approx(np.sum(after - before), rel=1e-12)
        assert grid.pnl_usd[i, 0] == pytest.approx(np.sum(after - before) * f1, rel=1e-12)


def test_futures_pnl_in_coin_and_usd() -> None:
    book = Book(np.array([PositionKind.FUTURE, PositionKind.FUTURE], np.int8), np.array([np.nan, np.nan]),
                np.zeros(2), np.zeros(2, bool), np.array([60000.0, 2.0]), np.array([True, False]),
                np.array([-1, -1], np.int64))
    grid = scenario_grid(book, F, 0.0, spot_shocks=[0.1], vol_shocks=[0.0])
    f1 = F * 1.1
    inverse_coin = 60000.0 * (1 / F - 1 / f1)
    linear_usd = 2.0 * (f1 - F)
    assert grid.pnl_coin[0, 0] == pytest.approx(inverse_coin + linear_usd / f1)
    assert grid.pnl_usd[0, 0] == pytest.approx(inverse_coin * f1 + linear_usd)


def test_time_steps_and_relative_vol() -> None:
    book, vol = _options(30)
    long_only = Book.options(book.strike, book.t, book.is_call, np.abs(book.size))
    grid = scenario_grid(long_only, F, vol, [0.0], [0.0], time_steps=[0.0, 1 / 365, 7 / 365])
    assert grid.pnl_coin.shape == (1, 1, 3)
    assert grid.pnl_coin[0, 0, 0] == pytest.approx(0.0, abs=1e-12)
    assert grid.pnl_coin[0, 0, 2] < grid.pnl_coin[0, 0, 1] < 0  # long options decay
    rel = scenario_grid(long_only, F, vol, [0.0], [0.1], relative_vol=True)
    absolute = scenario_grid(long_only, F, vol * 1.1, [0.0], [0.0])
    base = scenario_grid(long_only, F, vol, [0.0], [0.0])
    assert rel.pnl_coin[0, 0] > 0
    assert base.pnl_coin[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert absolute.pnl_coin[0, 0] == pytest.approx(0.0, abs=1e-12)


def test_worst_scenario_of_short_straddle() -> None:
    book = Book.options([F, F], 30 / 365, [True, False], [-1.0, -1.0])
    grid = scenario_grid(book, F, 0.6)
    pnl, spot, dvol = grid.worst()
    assert abs(spot) == 0.3 and dvol == 0.1 and pnl < 0


def test_bad_inputs() -> None:
    book, vol = _options(5)
    with pytest.raises(InvalidInput):
        scenario_grid(book, -F, vol)
    with pytest.raises(InvalidInput):
        scenario_grid(book, F, vol, spot_shocks=[-1.5])
    with pytest.raises(InvalidInput):
        scenario_grid(book, F, vol, time_steps=[-0.1])


def test_empty_book_is_all_zeros() -> None:
    from app.risk import attribute_pnl, portfolio_greeks, vega_by_expiry

    book = Book.from_instruments([], now_ms=0)
    none = np.zeros(0)
    assert portfolio_greeks(book, none, none).delta == 0.0
    grid = scenario_grid(book, none, none)
    assert grid.pnl_coin.shape == (len(STRESS_SPOT_SHOCKS), len(STRESS_VOL_SHOCKS)) and not grid.pnl_usd.any()
    assert attribute_pnl(book, none, none, none, none, 0.0)[0].total == 0.0
    assert vega_by_expiry(book, none, none).vega.dtype == float
