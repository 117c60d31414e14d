"""Compiled (numba) Black-76 kernels: the same tail-safe formulas as :mod:`app.pricing.black`, one pass per option.

Imported lazily by :mod:`app.pricing.black` for large arrays only (see ``black.NUMBA_MIN_SIZE``), so the TUI's
start-up never loads numba nor compiles anything; ``cache=True`` keeps the machine code on disk after the
first large call. Every branch mirrors :func:`app.pricing.normalised.normalised_otm_call_ht` and
``black._core`` operation for operation; only erfc and erfcx come from elsewhere: ``math.erfc`` (libm) and
erfcx(q) = e^{q²}·erfc(q) with q² split exactly, so e^{q²} carries no rounding of q² (both within a few ulps
of scipy's, which the numpy path uses).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from app.pricing.normalised import (
    _ASYMPTOTIC_Q,
    _ASYMPTOTIC_TERMS,
    _C_ASYM,
    _CDF_Q,
    _PLAIN_Q,
    _TAYLOR_FAR_Q,
    _TAYLOR_RATIO,
    _TAYLOR_RATIO_FAR,
    INV_SQRT2,
    INV_SQRT_2PI,
    SQRT2,
    SQRT_PI,
    TWO_OVER_SQRT_PI,
)

# numba's on-disk cache is keyed on this file only: constants imported from normalised.py are frozen into the
# cached machine code, so a change there must show here too (the import fails and black.py stays on numpy)
_FROZEN = (_ASYMPTOTIC_Q, _ASYMPTOTIC_TERMS, _TAYLOR_RATIO, _TAYLOR_RATIO_FAR, _TAYLOR_FAR_Q, _CDF_Q, _PLAIN_Q)
if _FROZEN != (7.0, 30, 0.05, 0.005, 4.0, -0.6, 0.5):
    raise ImportError("app.pricing.black_numba is out of date with app.pricing.normalised's constants")

_SPLIT = 134217729.0  # 2^27 + 1: Dekker's splitter, q = hi + lo with hi·hi exact
_ERFCX_DIRECT_MAX = 26.0  # below this e^{q²} does not overflow and erfc(q) does not underflow
_C = np.ascontiguousarray(_C_ASYM)
_JIT = {"cache": True, "fastmath": False, "nogil": True, "error_model": "numpy"}


@njit(**_JIT)
def erfcx(q: float) -> float:
    """Scaled complementary error function e^{q²}·erfc(q), to a few ulps (q ≤ 26; asymptotic above)."""
    if q < 0.5:
        return math.exp(q * q) * math.erfc(q)  # q² < 0.25: its rounding costs < ulp/4
    if q < _ERFCX_DIRECT_MAX:
        c = _SPLIT * q
        hi = c - (c - q)
        lo = q - hi
        p = q * q
        err = ((hi * hi - p) + 2.0 * hi * lo) + lo * lo  # q² = p + err exactly
        return math.exp(p) * math.erfc(q) * (1.0 + err)
    inv2 = 1.0 / (q * q)
    total = 0.0
    term = 1.0 / q
    for k in range(_ASYMPTOTIC_TERMS):  # converges fast at q ≥ 26: 1e-17 after a handful of terms
        total += _C[k] * term
        term *= inv2
        if abs(term) < 1e-18 * abs(total):
            break
    return total / SQRT_PI


@njit(**_JIT)
def _difference_asymptotic(q1: float, eps: float) -> float:
    """erfcx(q1) − erfcx(q1 + eps) for q1 ≥ 7 (normalised._erfcx_difference_asymptotic, one element)."""
    q2 = q1 + eps
    r = q1 / q2
    one_minus_r = eps / q2
    r2 = r * r
    inv_q1 = 1.0 / q1
    inv_q1_sq = inv_q1 * inv_q1
    geo = 1.0
    r_pow = r
    q_pow = inv_q1
    total = _C[0] * q_pow * geo
    for k in range(1, _ASYMPTOTIC_TERMS):
        geo = geo + r_pow * (1.0 + r)
        r_pow = r_pow * r2
        q_pow = q_pow * inv_q1_sq
        total = total + _C[k] * q_pow * geo
    return total * one_minus_r / SQRT_PI


@njit(**_JIT)
def _taylor_sums(m: float, delta: float) -> tuple[float, float, float]:
    """(erfcx(m), O, E) with erfcx(m ∓ δ) = erfcx(m) ± O − E: the odd and even Taylor sums Σ z_n δⁿ/n!.

    z_n = −erfcx⁽ⁿ⁾(m) from the erfcx recurrence; erfcx(m − δ) − erfcx(m + δ) = 2·O exactly as
    normalised._erfcx_difference_taylor sums it (same terms, same order).
    """
    y = erfcx(m)
    z_prev = -y
    z = TWO_OVER_SQRT_PI - 2.0 * m * y
    two_m = 2.0 * m
    d2 = delta * delta
    term = delta
    total = z * term
    even = 0.0
    ratio = delta / max(m, 1.0)
    loops = 3 if ratio <= 0.005 else 4 if ratio <= 0.02 else 5
    n = 1
    for _ in range(loops):
        z_prev = z_prev * (2.0 * n) + two_m * z
        z = z * (2.0 * (n + 1)) + two_m * z_prev
        even += z_prev * (term * delta / (n + 1))
        n += 2
        term = term * d2
        term = term * (1.0 / ((n - 1) * n))
        total = total + z * term
    return y, total, even


@njit(**_JIT)
def _erfc_from_erfcx(scaled: float, q: float) -> float:
    """erfc(q) = erfcx(q)·e^{−q²}, with q² split exactly so the exponential adds no rounding of q²."""
    c = _SPLIT * q
    hi = c - (c - q)
    lo = q - hi
    p = q * q
    err = ((hi * hi - p) + 2.0 * hi * lo) + lo * lo
    return scaled * math.exp(-p) * (1.0 - err)


@njit(**_JIT)
def _otm_call_and_tails(x: float, h: float, t: float, side: float) -> tuple[float, float, float]:
    """(b, erfc(q), e^{−(h²+t²)/2}) for x ≤ 0, q = q₁ = −(h+t)/√2 for side +1, q₂ = −(h−t)/√2 for side −1.

    erfc(q) comes from what the region computed anyway (the plain form's erfc, the shared form's erfcx, the
    Taylor form's sums); NaN where not available (the asymptotic region, or side 0: price only); the
    exponential is NaN in the plain region, which does not compute it.
    """
    q1 = (h + t) * -INV_SQRT2
    eps = SQRT2 * t
    asym = q1 >= _ASYMPTOTIC_Q
    limit = _TAYLOR_RATIO_FAR + (_TAYLOR_RATIO - _TAYLOR_RATIO_FAR) * (1.0 if q1 < _TAYLOR_FAR_Q else 0.0)
    series = (eps < 2.0 * limit * max(q1, 1.0)) and q1 >= _CDF_Q and not asym
    if q1 < _PLAIN_Q and not series:
        e1 = math.erfc(q1)
        e2 = math.erfc(q1 + eps)
        return 0.5 * (math.exp(0.5 * x) * e1 - math.exp(-0.5 * x) * e2), e1 if side > 0 else e2, np.nan
    g = math.exp(-0.5 * (h * h + t * t))
    pre = 0.5 * g
    e = np.nan
    if asym:
        b = pre * _difference_asymptotic(q1, eps)
    elif series:
        m = h * -INV_SQRT2
        y, odd, even = _taylor_sums(m, t * INV_SQRT2)
        b = pre * (2.0 * odd)
        if side > 0:
            e = _erfc_from_erfcx(y + odd - even, q1)
        elif side < 0:
            e = _erfc_from_erfcx(y - odd - even, (h - t) * -INV_SQRT2)
    else:
        x1 = erfcx(q1)
        q2 = q1 + SQRT2 * t
        x2 = erfcx(q2)
        b = pre * (x1 - x2)
        if side > 0:
            e = _erfc_from_erfcx(x1, q1)
        elif side < 0:
            e = _erfc_from_erfcx(x2, q2)
    return b, e, g


@njit(**_JIT)
def normalised_otm_call(x: float, h: float, t: float) -> float:
    """b(x, s) for x ≤ 0 from h = x/s and t = s/2 (dimensionless), by the same regions as the numpy path."""
    return _otm_call_and_tails(x, h, t, 0.0)[0]


@njit(**_JIT)
def _log_moneyness(f: float, k: float) -> float:
    u = (f - k) / k
    if u < -0.5:
        return math.log(f / k)
    return math.log1p(u)


@njit(**_JIT)
def black76_into(f: np.ndarray, k: np.ndarray, tt: np.ndarray, v: np.ndarray, c: np.ndarray, r: np.ndarray,
                 out: np.ndarray, greeks: bool) -> None:
    """Black-76 on flat arrays of one length into out[0..5] (price, delta, gamma, vega, theta, rho; USD view).

    Units as :func:`app.pricing.black.black76`; out[0] only when ``greeks`` is false. NaN for bad inputs.
    """
    nan = np.nan
    for i in range(f.size):
        fi, ki, ti, vi, ri = f[i], k[i], tt[i], v[i], r[i]
        ok = fi > 0 and ki > 0 and ti >= 0 and vi >= 0
        ok = ok and math.isfinite(fi) and math.isfinite(ki) and math.isfinite(ti) and math.isfinite(vi)
        if not (ok and math.isfinite(ri)):
            out[0, i] = nan
            if greeks:
                for j in range(1, 6):
                    out[j, i] = nan
            continue
        sqrt_t = math.sqrt(ti)
        s = vi * sqrt_t
        live = s > 0
        s_safe = s if live else 1.0
        x = _log_moneyness(fi, ki)
        ax = -abs(x)
        h = ax / s_safe
        t_half = 0.5 * s_safe
        cs = 1.0 if c[i] else -1.0
        itm = 1.0 if x * cs > 0 else 0.0
        sqrt_fk = math.sqrt(fi * ki)
        side = cs * (1.0 - 2.0 * itm)
        e = g = np.nan
        time_value = 0.0
        if live:
            b, e, g = _otm_call_and_tails(ax, h, t_half, side if greeks else 0.0)
            time_value = sqrt_fk * b
        price = abs(fi - ki) * itm + time_value
        df = 1.0
        if ri != 0.0:
            df = math.exp(-ri * ti)
            price *= df
        out[0, i] = price
        if not greeks:
            continue
        if live:
            # Φ(d1) of a call, Φ(−d1) of a put: erfc of the OTM side's argument, q₁ or q₂ (see black._core),
            # which the region has usually just computed
            if math.isnan(e):
                e = math.erfc((h + side * t_half) * -INV_SQRT2)
            prob = 0.5 * e + itm * (1.0 - e)
            if math.isnan(g):
                g = math.exp(-0.5 * (h * h + t_half * t_half))
            f_pdf = sqrt_fk * (INV_SQRT_2PI * g)
            if ri != 0.0:
                f_pdf *= df
                prob *= df
            out[1, i] = prob * cs
            out[2, i] = f_pdf / (fi * fi * s_safe)
            out[3, i] = f_pdf * sqrt_t
            theta = -f_pdf * vi / (2.0 * sqrt_t)
            if ri != 0.0:
                theta += ri * price
            out[4, i] = theta
        else:
            if x == 0:
                step = 0.5
            else:
                step = 1.0 if (x if c[i] else -x) > 0 else 0.0
            out[1, i] = (step if c[i] else -step) * df
            out[2, i] = 0.0
            out[3, i] = 0.0
            out[4, i] = ri * price if ri != 0.0 else 0.0
        out[5, i] = -ti * price
