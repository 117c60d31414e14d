"""Black-76 (options on forwards), Black-Scholes-Merton, and inverse (coin-settled) options.

All functions broadcast their array arguments like numpy ufuncs and return arrays of the broadcast shape.
Conventions: ``t`` in years (365 days), ``vol`` per 1.00 (0.55 = 55%), ``rate`` continuously compounded per
year. Bad inputs (non-finite values, forward/spot or strike ≤ 0, t < 0, vol < 0) give NaN in every output
of that element, never an exception. At ``t = 0`` or ``vol = 0`` the option is worth its (discounted
forward) intrinsic value; delta is 0 or ±DF (±DF/2 exactly at the money), gamma and vega are 0.

Prices are tail-safe: the time value comes from :func:`app.pricing.normalised.normalised_otm_call`,
never from ``F·N(d1) − K·N(d2)``, so a 10-standard-deviation one-hour option keeps full relative accuracy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from app.pricing.greeks import DAYS_PER_YEAR, Greeks, InverseGreeks
from app.pricing.normalised import INV_SQRT_2PI, normalised_otm_call

ONE_DAY = 1.0 / DAYS_PER_YEAR


def as_is_call(is_call: ArrayLike) -> np.ndarray:
    """Call flags as a bool array; accepts bools or strings starting with c/C (call) or p/P (put)."""
    arr = np.asarray(is_call)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind in "USO":
        first = np.char.lower(np.char.strip(arr.astype(str)))
        return np.char.startswith(first, "c")
    return arr.astype(bool)


def _prepare(forward: ArrayLike, strike: ArrayLike, t: ArrayLike, vol: ArrayLike, is_call: ArrayLike,
             rate: ArrayLike) -> tuple[np.ndarray, ...]:
    f, k, tt, v, r = (np.asarray(a, dtype=float) for a in (forward, strike, t, vol, rate))
    c = as_is_call(is_call)
    f, k, tt, v, c, r = np.broadcast_arrays(f, k, tt, v, c, r)
    valid = (f > 0) & (k > 0) & (tt >= 0) & (v >= 0) & np.isfinite(f) & np.isfinite(k) & np.isfinite(tt) \
        & np.isfinite(v) & np.isfinite(r)
    return f, k, tt, v, c, r, valid


def _undiscounted(f: np.ndarray, k: np.ndarray, s: np.ndarray, x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Undiscounted Black price: intrinsic of the forward plus √(FK)·b(−|x|, s) (s > 0 entries only)."""
    intrinsic = np.where(c, np.maximum(f - k, 0.0), np.maximum(k - f, 0.0))
    tv = np.zeros_like(f)
    live = s > 0
    if live.all():
        tv = np.sqrt(f * k) * normalised_otm_call(-np.abs(x), s)
    elif live.any():
        tv[live] = np.sqrt(f[live] * k[live]) * normalised_otm_call(-np.abs(x[live]), s[live])
    return intrinsic + tv


def black76_price(forward: ArrayLike, strike: ArrayLike, t: ArrayLike, vol: ArrayLike, is_call: ArrayLike,
                  rate: ArrayLike = 0.0) -> np.ndarray:
    """Black-76 price only, in the currency of the forward (USD); NaN for bad inputs (scenario grids)."""
    f, k, tt, v, c, r, valid = _prepare(forward, strike, t, vol, is_call, rate)
    with np.errstate(all="ignore"):
        s = v * np.sqrt(tt)
        x = np.log(f / k)
        price = np.exp(-r * tt) * _undiscounted(f, k, s, x, c)
    return np.where(valid, price, np.nan)


def black76(forward: ArrayLike, strike: ArrayLike, t: ArrayLike, vol: ArrayLike, is_call: ArrayLike,
            rate: ArrayLike = 0.0) -> Greeks:
    """Black-76 price and greeks on the forward, USD view.

    price in USD; delta ∂V/∂F; gamma ∂²V/∂F² (per USD); vega per 1.00 vol; theta ∂V/∂t per year with F
    fixed; rho per 1.00 rate with F fixed (= −t·V). NaN where inputs are bad (see module docstring).
    """
    f, k, tt, v, c, r, valid = _prepare(forward, strike, t, vol, is_call, rate)
    with np.errstate(all="ignore"):
        sqrt_t = np.sqrt(tt)
        s = v * sqrt_t
        x = np.log(f / k)
        df = np.exp(-r * tt)
        price = df * _undiscounted(f, k, s, x, c)
        live = s > 0
        d1 = x / s + 0.5 * s
        n_d1 = ndtr(np.where(c, d1, -d1))
        sign = np.where(c, 1.0, -1.0)
        pdf = INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
        delta = np.where(live, sign * df * n_d1,
                         sign * df * np.where(x == 0, 0.5, (sign * x > 0).astype(float)))
        gamma = np.where(live, df * pdf / (f * s), 0.0)
        vega = np.where(live, df * f * pdf * sqrt_t, 0.0)
        theta = r * price - np.where(live, df * f * pdf * v / (2.0 * sqrt_t), 0.0)
        rho = -tt * price
    nan = ~valid
    if nan.any():
        for arr in (price, delta, gamma, vega, theta, rho):
            arr[nan] = np.nan
    return Greeks(price, delta, gamma, vega, theta, rho)


def bsm(spot: ArrayLike, strike: ArrayLike, t: ArrayLike, vol: ArrayLike, is_call: ArrayLike,
        rate: ArrayLike = 0.0, carry: ArrayLike = 0.0) -> Greeks:
    """Black-Scholes-Merton price and greeks on spot, USD view.

    ``carry`` is the continuous yield earned by holding the underlying (dividend, staking or foreign
    rate; q in Merton's notation), so the forward is S·e^{(rate − carry)·t}. price in USD; delta ∂V/∂S;
    gamma ∂²V/∂S² (per USD); vega per 1.00 vol; theta ∂V/∂t per year with S fixed; rho ∂V/∂r per 1.00 of
    rate with S and carry fixed.
    """
    s0 = np.asarray(spot, dtype=float)
    tt = np.asarray(t, dtype=float)
    r = np.asarray(rate, dtype=float)
    q = np.asarray(carry, dtype=float)
    with np.errstate(all="ignore"):
        growth = np.exp((r - q) * tt)
        fwd = s0 * growth
        g = black76(fwd, strike, tt, vol, is_call, r)
        delta = g.delta * growth
        gamma = g.gamma * growth * growth
        # the forward moves with t and r when S is held: chain rule through F = S·e^{(r−q)t}
        theta = g.theta - (r - q) * fwd * g.delta
        rho = g.rho + tt * fwd * g.delta
    return Greeks(g.price, delta, gamma, g.vega, theta, rho)


def inverse_greeks(forward: ArrayLike, strike: ArrayLike, t: ArrayLike, vol: ArrayLike, is_call: ArrayLike,
                   rate: ArrayLike = 0.0) -> InverseGreeks:
    """Coin view of an inverse option (1 coin notional, premium in coin).

    price = V_usd/F (coin); delta = Δ_BS − price (coin, premium-adjusted); gamma = ∂delta/∂F (coin per
    USD); vega, theta, rho = USD greeks / F (coin per 1.00 vol, per year, per 1.00 rate); ``delta_bs`` and
    ``gamma_bs`` are the plain Black-76 ones.
    """
    g = black76(forward, strike, t, vol, is_call, rate)
    f = np.broadcast_to(np.asarray(forward, dtype=float), g.price.shape)
    with np.errstate(all="ignore"):
        price = g.price / f
        delta = g.delta - price
        gamma = g.gamma - delta / f
    return InverseGreeks(price, delta, gamma, g.vega / f, g.theta / f, g.rho / f, g.delta, g.gamma)


def deribit_theta(forward: ArrayLike, strike: ArrayLike, t: ArrayLike, vol: ArrayLike, is_call: ArrayLike,
                  rate: ArrayLike = 0.0) -> np.ndarray:
    """Deribit's theta in USD per day: V(t − min(1 day, t)) − V(t), the decay over one day or the lifetime.

    Differs from ``theta_per_day(black76(...).theta)`` only for short expiries, where the derivative
    overstates a day's decay (and is infinite at the money at expiry).
    """
    tt = np.asarray(t, dtype=float)
    with np.errstate(all="ignore"):
        later = tt - np.minimum(ONE_DAY, tt)
        now = black76_price(forward, strike, tt, vol, is_call, rate)
        then = black76_price(forward, strike, later, vol, is_call, rate)
    return then - now
