"""Implied volatility: round trips over the whole domain, the mpmath benchmark set, reasons for NaN."""

from __future__ import annotations

import mpmath as mp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.pricing import IVReason, black76, implied_vol, implied_vol_coin, implied_vol_reasons, inverse_greeks

mp.mp.dps = 40


def _mp_price(f: float, k: float, t: float, v: float, r: float, call: bool) -> float:
    F, K, T, s, R = (mp.mpf(a) for a in (f, k, t, v, r))
    sd = s * mp.sqrt(T)
    d1 = mp.log(F / K) / sd + sd / 2
    d2 = d1 - sd
    df = mp.e ** (-R * T)
    val = df * (F * mp.ncdf(d1) - K * mp.ncdf(d2)) if call else df * (K * mp.ncdf(-d2) - F * mp.ncdf(-d1))
    return float(val)


def _benchmark_set(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """pricing.md §4: z uniform on [−8, 8], T log-uniform 1h..2y, vol 5%..250%, r 0..8%, strikes capped at F·e^±2.5."""
    rng = np.random.default_rng(seed)
    f = np.where(rng.random(n) < 0.5, 60000.0, 3000.0) * np.exp(rng.normal(0, 0.1, n))
    t = np.exp(rng.uniform(np.log(1 / 8760), np.log(2), n))
    v = rng.uniform(0.05, 2.5, n)
    r = rng.uniform(0, 0.08, n)
    z = rng.uniform(-8, 8, n)
    k = f * np.exp(np.clip(z * v * np.sqrt(t), -2.5, 2.5))
    c = rng.random(n) < 0.5
    p = np.array([_mp_price(*args) for args in zip(f, k, t, v, r, c)])
    return f, k, t, v, r, c, p


def test_benchmark_set_zero_failures_and_lbr_accuracy() -> None:
    f, k, t, v, r, c, p = _benchmark_set(3000, 20240601)
    iv, why = implied_vol_reasons(p, f, k, t, c, r)
    vega = black76(f, k, t, v, c, r).vega
    well_posed = (p > 0) & (np.spacing(p) / vega < 1e-9)
    assert well_posed.sum() > 2000
    err = np.abs(iv - v)[well_posed]
    assert np.all(why[well_posed] == IVReason.OK)
    assert np.nanmax(err) <= 2e-9
    # ill-posed ones are NaN or finite, never an exception; NaN always comes with a reason
    assert np.all(np.isfinite(iv) == ((why == IVReason.OK) | (why == IVReason.ZERO_TIME_VALUE)))


@settings(max_examples=300, deadline=None)
@given(
    z=st.floats(-8.0, 8.0),
    log_t=st.floats(float(np.log(1 / 8760)), float(np.log(5.0))),
    vol=st.floats(0.01, 4.0),
    rate=st.floats(0.0, 0.1),
    call=st.booleans(),
    forward=st.floats(1.0, 1e6),
)
def test_round_trip_property(z: float, log_t: float, vol: float, rate: float, call: bool, forward: float) -> None:
    t = float(np.exp(log_t))
    strike = forward * float(np.exp(z * vol * np.sqrt(t)))
    g = black76(forward, strike, t, vol, call, rate)
    price = float(g.price)
    iv, why = implied_vol_reasons(price, forward, strike, t, call, rate)
    # only where the double price pins the vol down (with margin for the price's own few-ulp error)
    if price > 0 and 64 * np.spacing(price) / float(g.vega) < 1e-9:
        assert why == IVReason.OK
        assert abs(float(iv) - vol) <= 2e-9
    else:
        assert np.isnan(iv) or iv >= 0


def test_reason_codes() -> None:
    f, k, t = 60000.0, np.array([50000.0, 50000.0, 70000.0, 60000.0, 60000.0, 60000.0]), 0.1
    call = np.array([True, True, True, True, True, False])
    intrinsic_itm = 10000.0
    prices = np.array([intrinsic_itm - 1.0, intrinsic_itm, 60000.0, np.nan, -1.0, 2000.0])
    iv, why = implied_vol_reasons(prices, f, k, t, call)
    assert list(why) == [IVReason.BELOW_INTRINSIC, IVReason.ZERO_TIME_VALUE, IVReason.ABOVE_MAX,
                         IVReason.BAD_INPUT, IVReason.BAD_INPUT, IVReason.OK]
    assert np.isnan(iv[0]) and iv[1] == 0.0 and np.isnan(iv[2]) and np.isnan(iv[3]) and np.isfinite(iv[5])
    bad_t = implied_vol_reasons(100.0, 60000.0, 60000.0, [0.0, -1.0], True)[1]
    assert list(bad_t) == [IVReason.BAD_INPUT, IVReason.BAD_INPUT]
    assert IVReason.BAD_INPUT == implied_vol_reasons(100.0, 0.0, 60000.0, 0.1, True)[1]


def test_coin_prices_and_shapes() -> None:
    k = np.array([40000.0, 55000.0, 60000.0, 65000.0, 90000.0])
    c = k >= 60000.0
    coin = inverse_greeks(60000.0, k, 0.05, 0.7, c).price
    np.testing.assert_allclose(implied_vol_coin(coin, 60000.0, k, 0.05, c), 0.7, atol=1e-12)
    assert implied_vol(1000.0, 60000.0, 60000.0, 0.1, True).shape == ()
    grid = implied_vol(np.full((2, 3), 1000.0), 60000.0, 60000.0, np.array([0.05, 0.1, 0.2]), True)
    assert grid.shape == (2, 3)


def test_at_the_money_and_one_hour() -> None:
    for t in (1 / 8760, 1 / 365, 1.0):
        for v in (0.05, 0.5, 3.0):
            p = black76(60000.0, 60000.0, t, v, True).price
            assert abs(float(implied_vol(p, 60000.0, 60000.0, t, True)) - v) < 1e-12


def test_scalar_and_array_inputs_agree_far_out_of_the_money() -> None:
    """Regression (found by the property test): 0-d inputs took a less accurate log-moneyness path."""
    f, t, v = 1.0, float(np.exp(1.0)), 4.0
    k = f * float(np.exp(3.0 * v * np.sqrt(t)))
    price = black76(f, k, t, v, True).price
    scalar = float(implied_vol(price, f, k, t, True))
    array = float(implied_vol(np.array([price]), np.array([f]), np.array([k]), t, True)[0])
    assert abs(scalar - v) < 1e-12 and scalar == array


def test_nearly_at_the_money_short_expiry() -> None:
    """Regression (found by the property test): |ln(F/K)| ~ 4e-11 was classified with the 1e-7 table row."""
    t = float(np.exp(-9.0))
    k = float(np.exp(1.192092896e-07 * 0.03125 * np.sqrt(t)))
    price = black76(1.0, k, t, 0.03125, False).price
    iv, why = implied_vol_reasons(price, 1.0, k, t, False)
    assert why == IVReason.OK and abs(float(iv) - 0.03125) < 1e-12
