"""The compiled (numba) implied-vol solver: same vols and reasons as the numpy solver, the IV suite on it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from scipy.special import ndtri as scipy_ndtri  # noqa: E402

from app.pricing import black, black76, implied, implied_vol_reasons  # noqa: E402
from app.pricing.implied_numba import ndtri  # noqa: E402
from tests.pricing import test_implied  # noqa: E402


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every size, scalars included, through the compiled solver."""
    monkeypatch.delenv("DESK_NO_NUMBA", raising=False)
    monkeypatch.setattr(black, "NUMBA_MIN_SIZE", 1)


def test_ndtri_matches_scipy() -> None:
    p = np.concatenate([np.geomspace(1e-300, 0.5, 400), np.linspace(1e-6, 1 - 1e-6, 400), 1 - np.geomspace(1e-15, 0.02, 50)])
    ours = np.array([ndtri(v) for v in p])
    ref = scipy_ndtri(p)
    assert np.all(np.abs(ours - ref) <= 1e-14 * np.abs(ref) + 1e-15)
    assert ndtri(0.0) == -np.inf and ndtri(1.0) == np.inf and np.isnan(ndtri(-0.1)) and np.isnan(ndtri(np.nan))


def test_agrees_with_numpy_solver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same NaNs and reasons everywhere; vols within 1e-12 of each other where the price pins them to 1e-9."""
    monkeypatch.delenv("DESK_NO_NUMBA", raising=False)
    assert implied._compiled_solver() is not None  # imports (its frozen constants match implied/iv_guess)
    rng = np.random.default_rng(17)
    n = 20_000
    f = rng.uniform(1000, 90000, n)
    v = rng.uniform(0.02, 3.0, n)
    t = np.exp(rng.uniform(np.log(1 / 8760), np.log(3), n))
    t[: n // 10] = 1 / 8760
    k = f * np.exp(rng.uniform(-10, 10, n) * v * np.sqrt(t))
    r = rng.uniform(0, 0.08, n)
    c = rng.random(n) < 0.5
    g = black76(f, k, t, v, c, r)
    price = g.price * np.where(rng.random(n) < 0.02, rng.uniform(0.0, 1.5, n), 1.0)  # some below intrinsic/above max
    fast, why_fast = implied_vol_reasons(price, f, k, t, c, r)
    with monkeypatch.context() as m:
        m.setenv("DESK_NO_NUMBA", "1")
        slow, why_slow = implied_vol_reasons(price, f, k, t, c, r)
    np.testing.assert_array_equal(why_fast, why_slow)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    well = (price > 0) & (np.spacing(price) / g.vega < 1e-9) & np.isfinite(slow)
    assert well.sum() > n // 2
    assert np.max(np.abs(fast - slow)[well]) <= 1e-12


@pytest.mark.parametrize("test", [
    test_implied.test_benchmark_set_zero_failures_and_lbr_accuracy,
    test_implied.test_round_trip_property,
    test_implied.test_reason_codes,
    test_implied.test_coin_prices_and_shapes,
    test_implied.test_at_the_money_and_one_hour,
    test_implied.test_scalar_and_array_inputs_agree_far_out_of_the_money,
    test_implied.test_nearly_at_the_money_short_expiry,
], ids=lambda f: f.__name__)
def test_implied_suite_on_compiled_path(test, compiled: None) -> None:  # type: ignore[no-untyped-def]
    test()
