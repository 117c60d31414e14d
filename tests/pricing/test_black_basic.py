"""Black-76 / BSM basics: put-call parity, known values, bad inputs."""

from __future__ import annotations

import numpy as np

from app.pricing import black76, bsm, implied_vol, inverse_greeks


def test_put_call_parity_black76() -> None:
    rng = np.random.default_rng(3)
    f = rng.uniform(1000, 90000, 500)
    k = f * np.exp(rng.uniform(-1.5, 1.5, 500))
    t = np.exp(rng.uniform(np.log(1 / 8760), np.log(2), 500))
    v = rng.uniform(0.05, 2.0, 500)
    r = rng.uniform(0, 0.08, 500)
    c = black76(f, k, t, v, True, r).price
    p = black76(f, k, t, v, False, r).price
    assert np.all(np.abs((c - p) - np.exp(-r * t) * (f - k)) <= 1e-12 * (c + p + f))


def test_reference_case_btc_atm_call() -> None:
    g = black76(60000.0, 60000.0, 0.0821918, 0.55, True)
    assert abs(g.price / 3770.41 - 1) < 2e-6
    assert abs(g.delta - 0.53142) < 1e-5
    assert abs(g.vega / 6841.1 - 1) < 1e-5


def test_bad_inputs_give_nan() -> None:
    g = black76([60000.0, 0.0, np.nan, 60000.0], 60000.0, [0.1, 0.1, 0.1, -1.0], 0.5, True)
    assert np.isfinite(g.price[0])
    assert np.all(np.isnan(g.price[1:])) and np.all(np.isnan(g.delta[1:]))


def test_bsm_reduces_to_black76_on_forward() -> None:
    s, k, t, v, r, q = 100.0, 105.0, 0.5, 0.25, 0.04, 0.01
    a = bsm(s, k, t, v, True, r, q)
    b = black76(s * np.exp((r - q) * t), k, t, v, True, r)
    assert abs(a.price - b.price) < 1e-12


def test_iv_round_trip_smoke() -> None:
    p = black76(60000.0, [50000.0, 60000.0, 70000.0], 0.1, 0.6, [False, True, True]).price
    np.testing.assert_allclose(implied_vol(p, 60000.0, [50000.0, 60000.0, 70000.0], 0.1, [False, True, True]),
                               0.6, atol=1e-12)


def test_inverse_delta_is_premium_adjusted() -> None:
    g = inverse_greeks(60000.0, 60000.0, 0.0821918, 0.55, True)
    assert abs(g.delta - (g.delta_bs - g.price)) < 1e-15
