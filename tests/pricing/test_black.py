"""Black-76, BSM and inverse greeks: parity, finite differences, QuantLib, mpmath tails, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from app.pricing import (
    Greeks,
    black76,
    black76_price,
    bsm,
    deribit_theta,
    inverse_greeks,
    theta_per_day,
    vega_per_pct,
)
from benchmarks._pricing_cases import CASES, mp_black76, mp_bsm

FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho")


def _close(actual: np.ndarray, desired: np.ndarray, rtol: float, atol: np.ndarray | float) -> None:
    bad = np.abs(actual - desired) > rtol * np.abs(desired) + atol
    assert not bad.any(), (actual[bad][:5], desired[bad][:5])


def _random_book(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    f = rng.uniform(1000, 90000, n)
    vol = rng.uniform(0.05, 2.0, n)
    t = np.exp(rng.uniform(np.log(1 / 8760), np.log(2), n))
    k = f * np.exp(rng.uniform(-3, 3, n) * vol * np.sqrt(t))
    r = rng.uniform(0, 0.08, n)
    c = rng.random(n) < 0.5
    return f, k, t, vol, r, c


def test_put_call_parity() -> None:
    f, k, t, v, r, _ = _random_book(2000, 3)
    call = black76(f, k, t, v, True, r)
    put = black76(f, k, t, v, False, r)
    df = np.exp(-r * t)
    assert np.all(np.abs((call.price - put.price) - df * (f - k)) <= 1e-12 * (call.price + put.price + f))
    np.testing.assert_allclose(call.delta - put.delta, df, rtol=1e-13)
    np.testing.assert_allclose(call.gamma, put.gamma, rtol=1e-13)
    np.testing.assert_allclose(call.vega, put.vega, rtol=1e-13)


@pytest.mark.parametrize("i", range(len(CASES)))
def test_against_mpmath_reference(i: int) -> None:
    f, k, t, v, r, q, c, is_bsm = CASES[i]
    ref = mp_bsm(f, k, t, v, r, q, c) if is_bsm else mp_black76(f, k, t, v, r, c)
    g = bsm(f, k, t, v, c, r, q) if is_bsm else black76(f, k, t, v, c, r)
    for name in FIELDS:
        got = float(getattr(g, name))
        assert abs(got - ref[name]) <= 1e-13 * abs(ref[name]), (name, got, ref[name])


@pytest.mark.parametrize("i", [j for j, case in enumerate(CASES) if not case[7]])
def test_against_quantlib(i: int) -> None:
    ql = pytest.importorskip("QuantLib")
    f, k, t, v, r, _, c, _ = CASES[i]
    calc = ql.BlackCalculator(ql.PlainVanillaPayoff(ql.Option.Call if c else ql.Option.Put, k), f,
                              v * np.sqrt(t), float(np.exp(-r * t)))
    g = black76(f, k, t, v, c, r)
    # QuantLib itself is good to ~1e-12 relative (1.3e-12 against mpmath in the deep tail, case 5)
    tol = 1e-9 if i in (4, 5) else 1e-12
    for ours, theirs in ((g.price, calc.value()), (g.delta, calc.deltaForward()), (g.gamma, calc.gammaForward()),
                         (g.vega, calc.vega(t))):
        assert abs(float(ours) - theirs) <= tol * abs(theirs) + 1e-300
    # Black-76 rho with F fixed is rho + dividend rho in QuantLib's BlackCalculator
    assert abs(float(g.rho) - (calc.rho(t) + calc.dividendRho(t))) <= 1e-9 * abs(float(g.rho)) + 1e-300


def test_greeks_against_finite_differences() -> None:
    f, k, t, v, r, c = _random_book(300, 11)
    keep = (np.abs(np.log(k / f)) < 2.0 * v * np.sqrt(t)) & (t > 1 / 365)  # away from kinks and 0-values
    f, k, t, v, r, c = (a[keep] for a in (f, k, t, v, r, c))
    g = black76(f, k, t, v, c, r)
    hf = 1e-3 * f * v * np.sqrt(t)  # steps scale with the width of the distribution
    up, dn = black76_price(f + hf, k, t, v, c, r), black76_price(f - hf, k, t, v, c, r)
    np.testing.assert_allclose(g.delta, (up - dn) / (2 * hf), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(g.gamma, (up - 2 * g.price + dn) / hf**2, rtol=1e-4, atol=1e-12)
    hv = 1e-5
    vega_fd = (black76_price(f, k, t, v + hv, c, r) - black76_price(f, k, t, v - hv, c, r)) / (2 * hv)
    _close(g.vega, vega_fd, 1e-6, 1e-8 * f)
    ht = 1e-6 * t
    theta_fd = -(black76_price(f, k, t + ht, v, c, r) - black76_price(f, k, t - ht, v, c, r)) / (2 * ht)
    _close(g.theta, theta_fd, 1e-5, 1e-8 * f)
    hr = 1e-6
    rho_fd = (black76_price(f, k, t, v, c, r + hr) - black76_price(f, k, t, v, c, r - hr)) / (2 * hr)
    _close(g.rho, rho_fd, 1e-6, 1e-8 * f)


def test_bsm_greeks_against_finite_differences() -> None:
    s, k, t, v, r, c = _random_book(200, 12)
    q = np.linspace(0.0, 0.05, s.size)
    keep = (np.abs(np.log(k / s)) < 2.0 * v * np.sqrt(t)) & (t > 1 / 365)
    s, k, t, v, r, c, q = (a[keep] for a in (s, k, t, v, r, c, q))
    g = bsm(s, k, t, v, c, r, q)
    h = 1e-3 * s * v * np.sqrt(t)
    up, dn = bsm(s + h, k, t, v, c, r, q).price, bsm(s - h, k, t, v, c, r, q).price
    np.testing.assert_allclose(g.delta, (up - dn) / (2 * h), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(g.gamma, (up - 2 * g.price + dn) / h**2, rtol=1e-4, atol=1e-12)
    ht = 1e-6 * t
    theta_fd = -(bsm(s, k, t + ht, v, c, r, q).price - bsm(s, k, t - ht, v, c, r, q).price) / (2 * ht)
    _close(g.theta, theta_fd, 1e-5, 1e-8 * s)
    hr = 1e-6
    rho_fd = (bsm(s, k, t, v, c, r + hr, q).price - bsm(s, k, t, v, c, r - hr, q).price) / (2 * hr)
    _close(g.rho, rho_fd, 1e-6, 1e-8 * s)


def test_tails_keep_relative_accuracy_against_mpmath() -> None:
    """±5 to ±12 standard deviations, expiries from one hour: every greek to ≤ 1e-13 relative."""
    rng = np.random.default_rng(5)
    for _ in range(60):
        z = rng.choice([-1.0, 1.0]) * rng.uniform(5, 12)
        t = float(np.exp(rng.uniform(np.log(1 / 8760), np.log(2))))
        v = rng.uniform(0.2, 1.5)
        f = 60000.0
        k = f * float(np.exp(z * v * np.sqrt(t)))
        c = bool(rng.random() < 0.5)
        ref = mp_black76(f, k, t, v, 0.0, c)
        g = black76(f, k, t, v, c)
        for name in FIELDS:
            if ref[name] != 0.0:
                assert abs(float(getattr(g, name)) - ref[name]) <= 1e-13 * abs(ref[name]), (name, z, t, v, c)


def test_extreme_total_vol_and_strike_keep_price_accuracy() -> None:
    """Strikes e^{700} above the forward at total vol ~40: erfc(q₂) would be subnormal, the price is still exact."""
    for v in (20.0, 21.0, 22.0):
        f, k, t = 1e-100, 1e-100 * float(np.exp(700.0)), 4.0
        ref = mp_black76(f, k, t, v, 0.0, True)
        got = float(black76_price(f, k, t, v, True))
        assert abs(got - ref["price"]) <= 1e-13 * abs(ref["price"]), (v, got, ref["price"])


def test_inverse_delta_is_derivative_of_coin_price() -> None:
    f, k, t, v, _, c = _random_book(300, 21)
    g = inverse_greeks(f, k, t, v, c)
    h = 1e-3 * f * v * np.sqrt(t)
    coin = lambda ff: black76_price(ff, k, t, v, c) / ff  # noqa: E731
    np.testing.assert_allclose(g.delta, f * (coin(f + h) - coin(f - h)) / (2 * h), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(g.delta, g.delta_bs - g.price, rtol=0, atol=1e-15)
    np.testing.assert_allclose(g.price, black76(f, k, t, v, c).price / f, rtol=1e-15)
    delta_of = lambda ff: inverse_greeks(ff, k, t, v, c).delta  # noqa: E731
    np.testing.assert_allclose(g.gamma, (delta_of(f + h) - delta_of(f - h)) / (2 * h), rtol=1e-5, atol=1e-12)
    usd = black76(f, k, t, v, c)
    np.testing.assert_allclose(g.vega, usd.vega / f, rtol=1e-15)
    np.testing.assert_allclose(g.theta, usd.theta / f, rtol=1e-15)


def test_deribit_example_call_delta_total() -> None:
    # a 0.5-delta call bought for 0.10 BTC adds 0.40 BTC of delta
    g = inverse_greeks(60000.0, 60000.0, 0.0821918, 0.55, True)
    assert abs(float(g.delta) - (float(g.delta_bs) - float(g.price))) < 1e-15
    assert float(g.delta) < float(g.delta_bs)


def test_unit_helpers_and_deribit_theta() -> None:
    g = black76(60000.0, 60000.0, 30 / 365, 0.5, True)
    assert float(vega_per_pct(g.vega)) == pytest.approx(float(g.vega) / 100)
    assert float(theta_per_day(g.theta)) == pytest.approx(float(g.theta) / 365)
    day = deribit_theta(60000.0, 60000.0, 30 / 365, 0.5, True)
    assert float(day) == pytest.approx(float(black76_price(60000.0, 60000.0, 29 / 365, 0.5, True) - g.price))
    # under one day: the whole remaining time value (not the infinite-looking derivative)
    short = deribit_theta(60000.0, 61000.0, 2 / 24 / 365, 0.5, True)
    assert float(short) == pytest.approx(-float(black76_price(60000.0, 61000.0, 2 / 24 / 365, 0.5, True)))


def test_bad_inputs_give_nan_not_exceptions() -> None:
    f = np.array([60000.0, 0.0, -1.0, np.nan, 60000.0, 60000.0, 60000.0, np.inf])
    t = np.array([0.1, 0.1, 0.1, 0.1, -0.5, 0.1, 0.1, 0.1])
    v = np.array([0.5, 0.5, 0.5, 0.5, 0.5, -0.2, np.nan, 0.5])
    g = black76(f, 60000.0, t, v, True)
    assert isinstance(g, Greeks)
    assert np.isfinite(g.price[0])
    for name in FIELDS:
        assert np.all(np.isnan(getattr(g, name)[1:])), name
    r = black76(60000.0, 60000.0, 0.1, 0.5, True, [0.01, np.nan])
    assert np.isfinite(r.price[0]) and np.isnan(r.price[1]) and np.isnan(r.rho[1])


def test_expiry_and_zero_vol_give_intrinsic() -> None:
    g = black76([70000.0, 50000.0, 60000.0], 60000.0, 0.0, 0.5, True)
    np.testing.assert_allclose(g.price, [10000.0, 0.0, 0.0])
    np.testing.assert_allclose(g.delta, [1.0, 0.0, 0.5])
    assert np.all(g.gamma == 0) and np.all(g.vega == 0)
    p = black76(50000.0, 60000.0, 1.0, 0.0, False, 0.05)
    assert float(p.price) == pytest.approx(10000.0 * np.exp(-0.05))
    assert float(p.delta) == pytest.approx(-np.exp(-0.05))


def test_broadcasting_and_string_flags() -> None:
    g = black76(60000.0, np.array([[50000.0], [70000.0]]), np.array([0.1, 0.2, 0.3]), 0.6, np.array(["C", "P", "call"]))
    assert g.price.shape == (2, 3)
    assert float(g.delta[0, 1]) < 0 < float(g.delta[0, 0])
