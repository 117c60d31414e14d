"""Fixed Black-76/BSM cases (pricing.md §5) and a 40-digit mpmath reference, shared by benchmarks and tests."""

from __future__ import annotations

import mpmath as mp

# (forward or spot, strike, t, vol, rate, carry, is_call, is_bsm)
CASES: list[tuple[float, float, float, float, float, float, bool, bool]] = [
    (60000, 60000, 0.0821918, 0.55, 0, 0, True, False),
    (60000, 60000, 0.0821918, 0.55, 0, 0, False, False),
    (60000, 80000, 0.246575, 0.6, 0, 0, True, False),
    (60000, 40000, 0.246575, 0.7, 0, 0, False, False),
    (60000, 120000, 0.0191781, 0.5, 0, 0, True, False),  # z = +10
    (60000, 30000, 0.0821918, 0.5, 0, 0, True, False),  # deep ITM
    (60000, 60000, 0.000114155, 0.5, 0, 0, True, False),  # 1 hour
    (60000, 60500, 0.000114155, 0.5, 0, 0, True, False),
    (60000, 58000, 0.000456621, 0.8, 0, 0, False, False),
    (60000, 62000, 0.00273973, 0.45, 0, 0, True, False),
    (60000, 100000, 1.0, 0.65, 0.05, 0, True, False),
    (60000, 50000, 2.0, 0.7, 0.05, 0, False, False),
    (3000, 3200, 0.0383562, 0.75, 0.03, 0, True, False),
    (3000, 2500, 0.164384, 0.9, 0.03, 0, False, False),
    (60000, 60000, 0.5, 3.0, 0, 0, True, False),
    (60000, 61000, 0.25, 0.05, 0, 0, True, False),
    (100, 105, 0.5, 0.25, 0.04, 0.01, True, True),
    (100, 90, 1.0, 0.3, 0.04, 0.02, False, True),
    (100, 200, 0.1, 0.3, 0.05, 0, True, True),
    (100, 99, 0.000228311, 0.4, 0.05, 0, False, True),
]

mp.mp.dps = 40


def mp_black76(f: float, k: float, t: float, vol: float, rate: float, is_call: bool) -> dict[str, float]:
    """Black-76 price and greeks (delta, gamma, vega per 1.00, theta per year F fixed, rho = −tV) at 40 digits."""
    F, K, T, s, r = (mp.mpf(v) for v in (f, k, t, vol, rate))
    sd = s * mp.sqrt(T)
    d1 = mp.log(F / K) / sd + sd / 2
    d2 = d1 - sd
    df = mp.e ** (-r * T)
    pdf = mp.npdf(d1)
    if is_call:
        price = df * (F * mp.ncdf(d1) - K * mp.ncdf(d2))
        delta = df * mp.ncdf(d1)
    else:
        price = df * (K * mp.ncdf(-d2) - F * mp.ncdf(-d1))
        delta = -df * mp.ncdf(-d1)
    gamma = df * pdf / (F * sd)
    vega = df * F * pdf * mp.sqrt(T)
    theta = r * price - df * F * pdf * s / (2 * mp.sqrt(T))
    rho = -T * price
    return {k_: float(v) for k_, v in dict(price=price, delta=delta, gamma=gamma, vega=vega, theta=theta,
                                             rho=rho).items()}


def mp_bsm(spot: float, k: float, t: float, vol: float, rate: float, q: float, is_call: bool) -> dict[str, float]:
    """BSM price and greeks on spot (theta with S fixed, rho with S and q fixed) at 40 digits."""
    S, K, T, s, r, Q = (mp.mpf(v) for v in (spot, k, t, vol, rate, q))
    sd = s * mp.sqrt(T)
    d1 = (mp.log(S / K) + (r - Q) * T) / sd + sd / 2
    d2 = d1 - sd
    eq, er = mp.e ** (-Q * T), mp.e ** (-r * T)
    if is_call:
        price = S * eq * mp.ncdf(d1) - K * er * mp.ncdf(d2)
        delta = eq * mp.ncdf(d1)
        theta = -S * eq * mp.npdf(d1) * s / (2 * mp.sqrt(T)) - r * K * er * mp.ncdf(d2) + Q * S * eq * mp.ncdf(d1)
        rho = K * T * er * mp.ncdf(d2)
    else:
        price = K * er * mp.ncdf(-d2) - S * eq * mp.ncdf(-d1)
        delta = -eq * mp.ncdf(-d1)
        theta = -S * eq * mp.npdf(d1) * s / (2 * mp.sqrt(T)) + r * K * er * mp.ncdf(-d2) - Q * S * eq * mp.ncdf(-d1)
        rho = -K * T * er * mp.ncdf(-d2)
    gamma = eq * mp.npdf(d1) / (S * sd)
    vega = S * eq * mp.npdf(d1) * mp.sqrt(T)
    return {k_: float(v) for k_, v in dict(price=price, delta=delta, gamma=gamma, vega=vega, theta=theta,
                                             rho=rho).items()}
