"""Compiled (numba) Black-76 kernels: the tail-safe formulas of :mod:`app.pricing.black`, vectorised.

Imported lazily by :mod:`app.pricing.black` (see ``black.NUMBA_MIN_SIZE`` and ``black.warm_compiled``), so the
TUI's start-up never loads numba nor compiles anything; ``cache=True`` keeps the machine code on disk after the
first compile. The regions (asymptotic, Taylor, and the rest) and their thresholds are those of
:func:`app.pricing.normalised.normalised_otm_call_ht`; what differs from the numpy path is how erfc is taken and
that the loop has no branches:

* erf, erfc and erfcx come from W. J. Cody's rational Chebyshev approximations (the ones Jäckel's "Let's Be
  Rational" uses), inlined: a rational function each, no libm call and no exponential inside;
* the exponentials they would need are products of two that the option needs anyway: with g = e^{−(h²+t²)/2}
  (the density factor), e^{x/2}·e^{−q₁²} = e^{−x/2}·e^{−q₂²} = g. Writing erfc(q) = a + c·e^{−q²} (a = 1 − erf(q),
  c = 0 for |q| ≤ 0.46875; a = 0, c = erfcx(q) above; a = 2, c = −erfcx(−q) below), the numpy path's plain form
  ½·(e^{x/2}·erfc(q₁) − e^{−x/2}·erfc(q₂)) and its shared-exponent form ½·g·(erfcx(q₁) − erfcx(q₂)) are one
  formula, ½·((e^{x/2}·a₁ − e^{−x/2}·a₂) + g·(c₁ − c₂)), with the same cancellation as each;
* delta's Φ of the OTM side is erfc(q₁) = a₁ + c₁·g·e^{−x/2} or erfc(q₂) = a₂ + c₂·g·e^{x/2}, from the same parts;
* every element evaluates every piece (Cody's three rationals, the plain/shared form and an order-11 Taylor
  sum) and selects its own, so the loop compiles to SIMD code (AVX-512 here); the few elements no select
  serves (bad inputs, zero total vol, the asymptotic region q₁ ≥ 7) are redone one by one by the scalar
  :func:`_option_into`, which branches like the numpy path.

ln(F/K), g, e^{−|x|/2} and the discount factor are the only transcendental calls: :func:`black76_into` takes
them from libm in a pre-pass (small arrays, a chain), ``black._run_compiled`` from numpy's SIMD log1p/exp chunk
by chunk and hands them to :func:`black76_prepared_into`. Both stay within 1e-13 of mpmath everywhere and
≲ 1e-14 within three standard deviations (tests/pricing), as the numpy path.
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
_FROZEN = (_ASYMPTOTIC_Q, _ASYMPTOTIC_TERMS, _TAYLOR_RATIO, _TAYLOR_RATIO_FAR, _TAYLOR_FAR_Q, _CDF_Q)
if _FROZEN != (7.0, 30, 0.05, 0.005, 4.0, -0.6):
    raise ImportError("app.pricing.black_numba is out of date with app.pricing.normalised's constants")

REVISION = 5
"""Bumped with every change of this file's functions: implied_numba, whose cached machine code inlines
:func:`normalised_otm_call`, checks it (numba's cache is keyed on the caller's file only)."""
_SPLIT = 134217729.0  # 2^27 + 1: Dekker's splitter, q = hi + lo with hi·hi exact
_C = np.ascontiguousarray(_C_ASYM)
_JIT = {"cache": True, "fastmath": False, "nogil": True, "error_model": "numpy"}


# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969) 631-638: the
# coefficients of his CALERF (netlib specfun, as in Jäckel's LBR erf_cody.cpp); erf on |q| ≤ 0.46875, erfcx on
# 0.46875..4 and, in 1/q², beyond 4, each a rational function: no exp, no libm call
_THRESH = 0.46875
_A0, _A1, _A2, _A3, _A4 = (3.1611237438705656, 113.864154151050156, 377.485237685302021, 3209.37758913846947,
                           0.185777706184603153)
_B0, _B1, _B2, _B3 = (23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062)
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8 = (
    0.564188496988670089, 8.88314979438837594, 66.1191906371416295, 298.635138197400131, 881.95222124176909,
    1712.04761263407058, 2051.07837782607147, 1230.33935479799725, 2.15311535474403846e-8)
_D0, _D1, _D2, _D3, _D4, _D5, _D6, _D7 = (
    15.7449261107098347, 117.693950891312499, 537.181101862009858, 1621.38957456669019, 3290.79923573345963,
    4362.61909014324716, 3439.36767414372164, 1230.33935480374942)
_P0, _P1, _P2, _P3, _P4, _P5 = (0.305326634961232344, 0.360344899949804439, 0.125781726111229246,
                                0.0160837851487422766, 6.58749161529837803e-4, 0.0163153871373020978)
_Q0, _Q1, _Q2, _Q3, _Q4 = (2.56852019228982242, 1.87295284992346047, 0.527905102951428412,
                           0.0605183413124413191, 0.00233520497626869185)
_INV_SQRT_PI = 0.56418958354775628695


@njit(inline="always", **_JIT)
def erf_small(q: float) -> float:
    """erf(q) for |q| ≤ 0.46875 (Cody's first rational, relative)."""
    z = q * q
    num = (((_A4 * z + _A0) * z + _A1) * z + _A2) * z + _A3
    den = (((z + _B0) * z + _B1) * z + _B2) * z + _B3
    return q * num / den


@njit(inline="always", **_JIT)
def _erfcx_rational(y: float) -> float:
    """erfcx(y) for y > 0.46875 (Cody's second and third rationals)."""
    if y <= 4.0:
        num = (((((((_C8 * y + _C0) * y + _C1) * y + _C2) * y + _C3) * y + _C4) * y + _C5) * y + _C6) * y + _C7
        den = (((((((y + _D0) * y + _D1) * y + _D2) * y + _D3) * y + _D4) * y + _D5) * y + _D6) * y + _D7
        return num / den
    z = 1.0 / (y * y)
    num = ((((_P5 * z + _P0) * z + _P1) * z + _P2) * z + _P3) * z + _P4
    den = ((((z + _Q0) * z + _Q1) * z + _Q2) * z + _Q3) * z + _Q4
    return (_INV_SQRT_PI - z * num / den) / y


@njit(**_JIT)
def erfcx(q: float) -> float:
    """Scaled complementary error function e^{q²}·erfc(q) (Cody; relative accuracy a few ulps, q ≥ −26)."""
    y = abs(q)
    if y <= _THRESH:
        return math.exp(q * q) * (1.0 - erf_small(q))  # q² < 0.22: its rounding costs < ulp/4
    r = _erfcx_rational(y)
    if q > 0.0:
        return r
    c = _SPLIT * q
    hi = c - (c - q)
    lo = q - hi
    p = q * q
    err = ((hi * hi - p) + 2.0 * hi * lo) + lo * lo  # q² = p + err exactly
    return 2.0 * math.exp(p) * (1.0 + err) - r


@njit(inline="always", **_JIT)
def _erfc_parts(q: float) -> tuple[float, float]:
    """(a, c) with erfc(q) = a + c·e^{−q²}: no exponential is taken here, the caller has e^{−q²} as a product."""
    y = abs(q)
    if y <= _THRESH:
        return 1.0 - erf_small(q), 0.0
    r = _erfcx_rational(y)
    if q > 0.0:
        return 0.0, r
    return 2.0, -r


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


@njit(inline="always", **_JIT)
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


@njit(inline="always", **_JIT)
def _otm_call_and_tails(x: float, h: float, t: float, side: float, g: float, ex: float) -> tuple[float, float]:
    """(b, erfc(q)) for x ≤ 0; q = q₁ = −(h+t)/√2 for side +1, q₂ = q₁ + √2·t for side −1.

    g = e^{−(h²+t²)/2} and ex = e^{x/2} come from the caller (ex ≤ 0: not computed, taken here if needed); side 0
    (price only) skips what only the greeks need and leaves erfc(q) NaN.
    """
    q1 = (h + t) * -INV_SQRT2
    eps = SQRT2 * t
    if q1 >= _ASYMPTOTIC_Q:
        b = 0.5 * g * _difference_asymptotic(q1, eps)
        if side == 0.0:
            return b, np.nan
        q = q1 if side > 0 else q1 + eps
        return b, _erfc_from_erfcx(_erfcx_rational(q), q)
    limit = _TAYLOR_RATIO_FAR + (_TAYLOR_RATIO - _TAYLOR_RATIO_FAR) * (1.0 if q1 < _TAYLOR_FAR_Q else 0.0)
    if eps < 2.0 * limit * max(q1, 1.0) and q1 >= _CDF_Q:
        y, odd, even = _taylor_sums(h * -INV_SQRT2, t * INV_SQRT2)
        b = g * odd
        if side == 0.0:
            return b, np.nan
        if ex <= 0.0:
            ex = math.exp(0.5 * x)
        # erfcx(q₁) = y + O − E and erfcx(q₂) = y − O − E; e^{−q₁²} = g·e^{−x/2}, e^{−q₂²} = g·e^{x/2}
        if side > 0:
            return b, (y + odd - even) * (g / ex)
        return b, (y - odd - even) * (g * ex)
    q2 = q1 + eps
    a1, c1 = _erfc_parts(q1)
    a2, c2 = _erfc_parts(q2)  # q₂ > 0 always (h ≤ 0 < t): a₂ is 0 or 1 − erf(q₂)
    if q1 > _THRESH:  # a₁ = a₂ = 0: the shared-exponent form
        b = 0.5 * g * (c1 - c2)
        if side == 0.0:
            return b, np.nan
        if ex <= 0.0:
            ex = math.exp(0.5 * x)
        if side > 0:
            return b, c1 * (g / ex)
        return b, c2 * (g * ex)
    if ex <= 0.0:
        ex = math.exp(0.5 * x)
    emx = 1.0 / ex
    b = 0.5 * ((ex * a1 - emx * a2) + g * (c1 - c2))
    if side > 0:
        return b, a1 + c1 * (g * emx)
    return b, a2 + c2 * (g * ex)


@njit(**_JIT)
def normalised_otm_call(x: float, h: float, t: float) -> float:
    """b(x, s) for x ≤ 0 from h = x/s and t = s/2 (dimensionless), by the same regions as the numpy path."""
    return _otm_call_and_tails(x, h, t, 0.0, math.exp(-0.5 * (h * h + t * t)), 0.0)[0]


@njit(**_JIT)
def _log_moneyness(f: float, k: float) -> float:
    u = (f - k) / k
    if u < -0.5:
        return math.log(f / k)
    return math.log1p(u)


@njit(inline="always", **_JIT)
def _option_into(out: np.ndarray, i: int, fi: float, ki: float, ti: float, vi: float, call: bool, ri: float,
                 x: float, g: float, ex: float, greeks: bool) -> None:
    """One option into out[:, i] (see :func:`black76_into`), given x = ln(F/K), g = e^{−(h²+t²)/2} and e^{−|x|/2}."""
    ok = fi > 0 and ki > 0 and ti >= 0 and vi >= 0
    ok = ok and math.isfinite(fi) and math.isfinite(ki) and math.isfinite(ti) and math.isfinite(vi)
    if not (ok and math.isfinite(ri)):
        out[0, i] = np.nan
        if greeks:
            for j in range(1, 6):
                out[j, i] = np.nan
        return
    sqrt_t = math.sqrt(ti)
    s = vi * sqrt_t
    live = s > 0
    s_safe = s if live else 1.0
    ax = -abs(x)
    h = ax / s_safe
    t_half = 0.5 * s_safe
    cs = 1.0 if call else -1.0
    itm = 1.0 if x * cs > 0 else 0.0
    sqrt_fk = math.sqrt(fi * ki)
    side = cs * (1.0 - 2.0 * itm)
    e = 0.0
    time_value = 0.0
    if live:
        b, e = _otm_call_and_tails(ax, h, t_half, side if greeks else 0.0, g, ex)
        time_value = sqrt_fk * b
    price = abs(fi - ki) * itm + time_value
    df = 1.0
    if ri != 0.0:
        df = math.exp(-ri * ti)
        price *= df
    out[0, i] = price
    if not greeks:
        return
    if live:
        # Φ(d1) of a call, Φ(−d1) of a put: erfc of the OTM side's argument, q₁ or q₂ (see black._core),
        # from the parts the price took; libm's erfc only where e^{∓x/2} overflowed (F/K beyond 1e±300)
        if math.isnan(e):
            e = math.erfc((h + side * t_half) * -INV_SQRT2)
        prob = 0.5 * e + itm * (1.0 - e)
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
            step = 1.0 if (x if call else -x) > 0 else 0.0
        out[1, i] = (step if call else -step) * df
        out[2, i] = 0.0
        out[3, i] = 0.0
        out[4, i] = ri * price if ri != 0.0 else 0.0
    out[5, i] = -ti * price


# ---- the vectorised kernel: every element takes every branch-free formula, selects keep its region's ----
# (LLVM turns the loop into AVX2/AVX-512 code; elements the selects cannot serve, bad inputs, zero total vol and
# q₁ ≥ 7, i.e. ten standard deviations or more out, none in the benchmark's set, are redone by _option_into)

_INV_FACT = tuple(1.0 / math.factorial(n) for n in range(14))


@njit(inline="always", **_JIT)
def _exp_small(z: float) -> float:
    """e^z for 0 ≤ z ≤ 0.22 (Taylor to z¹³/13!: truncation below 1e-18 relative)."""
    p = _INV_FACT[13]
    p = p * z + _INV_FACT[12]
    p = p * z + _INV_FACT[11]
    p = p * z + _INV_FACT[10]
    p = p * z + _INV_FACT[9]
    p = p * z + _INV_FACT[8]
    p = p * z + _INV_FACT[7]
    p = p * z + _INV_FACT[6]
    p = p * z + _INV_FACT[5]
    p = p * z + _INV_FACT[4]
    p = p * z + _INV_FACT[3]
    p = p * z + _INV_FACT[2]
    p = p * z + 1.0
    return p * z + 1.0


@njit(inline="always", **_JIT)
def _erfcx_rational_sel(y: float) -> float:
    """:func:`_erfcx_rational` with both rationals taken and one selected (no branch)."""
    num = (((((((_C8 * y + _C0) * y + _C1) * y + _C2) * y + _C3) * y + _C4) * y + _C5) * y + _C6) * y + _C7
    den = (((((((y + _D0) * y + _D1) * y + _D2) * y + _D3) * y + _D4) * y + _D5) * y + _D6) * y + _D7
    mid = num / den
    z = 1.0 / (y * y)
    num = ((((_P5 * z + _P0) * z + _P1) * z + _P2) * z + _P3) * z + _P4
    den = ((((z + _Q0) * z + _Q1) * z + _Q2) * z + _Q3) * z + _Q4
    far = (_INV_SQRT_PI - z * num / den) / y
    return mid if y <= 4.0 else far


@njit(inline="always", **_JIT)
def _erfc_parts_sel(q: float) -> tuple[float, float]:
    """:func:`_erfc_parts` without branches."""
    y = abs(q)
    near = 1.0 - erf_small(q)
    r = _erfcx_rational_sel(y)
    small = y <= _THRESH
    a = near if small else (0.0 if q > 0.0 else 2.0)
    c = 0.0 if small else (r if q > 0.0 else -r)
    return a, c


@njit(inline="always", **_JIT)
def _taylor_sums_sel(m: float, delta: float) -> tuple[float, float, float]:
    """:func:`_taylor_sums` for m ≥ 0 without branches: always to order 11 (the most the scalar form takes)."""
    small = _exp_small(m * m) * (1.0 - erf_small(m))
    y = small if m <= _THRESH else _erfcx_rational_sel(m)
    z_prev = -y
    z = TWO_OVER_SQRT_PI - 2.0 * m * y
    two_m = 2.0 * m
    d2 = delta * delta
    term = delta
    total = z * term
    even = 0.0
    n = 1
    for _ in range(5):
        z_prev = z_prev * (2.0 * n) + two_m * z
        z = z * (2.0 * (n + 1)) + two_m * z_prev
        even += z_prev * (term * delta / (n + 1))
        n += 2
        term = term * d2
        term = term * (1.0 / ((n - 1) * n))
        total = total + z * term
    return y, total, even


@njit(inline="always", **_JIT)
def _vector_element(f: float, k: float, tt: float, v: float, call: bool, r: float, df: float, x: float, g: float,
                    ex: float, greeks: bool) -> tuple[float, float, float, float, float, float, bool]:
    """(price, delta, gamma, vega, theta, rho, special) of one option, branch-free; ``special``: redo it with
    :func:`_option_into` (bad input, zero total vol, the asymptotic region, e^{x/2} underflowed)."""
    sqrt_t = math.sqrt(tt)
    s = v * sqrt_t
    ax = -abs(x)
    h = ax / s
    t = 0.5 * s
    q1 = (h + t) * -INV_SQRT2
    eps = SQRT2 * t
    cs = 1.0 if call else -1.0
    itm = 1.0 if x * cs > 0 else 0.0
    side_up = cs * (1.0 - 2.0 * itm) > 0.0  # OTM side's argument is q₁ (else q₂)
    sqrt_fk = math.sqrt(f * k)
    emx = 1.0 / ex
    a1, c1 = _erfc_parts_sel(q1)
    a2, c2 = _erfc_parts_sel(q1 + eps)
    b_rest = 0.5 * ((ex * a1 - emx * a2) + g * (c1 - c2))
    y, odd, even = _taylor_sums_sel(h * -INV_SQRT2, t * INV_SQRT2)
    limit = _TAYLOR_RATIO_FAR + (_TAYLOR_RATIO - _TAYLOR_RATIO_FAR) * (1.0 if q1 < _TAYLOR_FAR_Q else 0.0)
    series = (eps < 2.0 * limit * max(q1, 1.0)) & (q1 >= _CDF_Q)
    b = g * odd if series else b_rest
    price = (abs(f - k) * itm + sqrt_fk * b) * df
    ok = (f > 0.0) & (k > 0.0) & (tt >= 0.0) & (v >= 0.0) & (abs(f) < np.inf) & (abs(k) < np.inf)
    ok = ok & (abs(tt) < np.inf) & (abs(v) < np.inf) & (abs(r) < np.inf)
    special = not (ok & (s > 0.0) & (q1 < _ASYMPTOTIC_Q) & (ex > 0.0))
    if not greeks:
        return price, 0.0, 0.0, 0.0, 0.0, 0.0, special
    if series:
        e = (y + odd - even) * (g * emx) if side_up else (y - odd - even) * (g * ex)
    else:
        e = a1 + c1 * (g * emx) if side_up else a2 + c2 * (g * ex)
    prob = (0.5 * e + itm * (1.0 - e)) * df
    f_pdf = sqrt_fk * (INV_SQRT_2PI * g) * df
    theta = -f_pdf * v / (2.0 * sqrt_t) + r * price
    return price, prob * cs, f_pdf / (f * f * s), f_pdf * sqrt_t, theta, -tt * price, special


@njit(**_JIT)
def _chunk_into(f: np.ndarray, k: np.ndarray, tt: np.ndarray, v: np.ndarray, c: np.ndarray, r: np.ndarray,
                df: np.ndarray, x: np.ndarray, g: np.ndarray, ex: np.ndarray, out: np.ndarray, lo: int,
                greeks: bool, special: np.ndarray) -> None:
    """Options 0..len(f) of a chunk into out[:, lo + i]: the vector loop, then the special elements one by one."""
    n = f.size
    o0 = out[0, lo:lo + n]
    if greeks:
        o1 = out[1, lo:lo + n]
        o2 = out[2, lo:lo + n]
        o3 = out[3, lo:lo + n]
        o4 = out[4, lo:lo + n]
        o5 = out[5, lo:lo + n]
        for i in range(n):
            p, d1, d2, d3, d4, d5, sp = _vector_element(f[i], k[i], tt[i], v[i], c[i], r[i], df[i], x[i], g[i],
                                                        ex[i], True)
            o0[i] = p
            o1[i] = d1
            o2[i] = d2
            o3[i] = d3
            o4[i] = d4
            o5[i] = d5
            special[i] = sp
    else:
        for i in range(n):
            p, _, _, _, _, _, sp = _vector_element(f[i], k[i], tt[i], v[i], c[i], r[i], df[i], x[i], g[i],
                                                   ex[i], False)
            o0[i] = p
            special[i] = sp
    for i in range(n):
        if special[i]:
            _option_into(out, lo + i, f[i], k[i], tt[i], v[i], c[i], r[i], x[i], g[i], ex[i], greeks)


_SCRATCH = 512  # options per chunk of black76_into's libm pre-pass (its scratch stays in L1)


@njit(**_JIT)
def black76_into(f: np.ndarray, k: np.ndarray, tt: np.ndarray, v: np.ndarray, c: np.ndarray, r: np.ndarray,
                 out: np.ndarray, greeks: bool) -> None:
    """Black-76 on flat arrays of one length into out[0..5] (price, delta, gamma, vega, theta, rho; USD view).

    Units as :func:`app.pricing.black.black76`; out[0] only when ``greeks`` is false. NaN for bad inputs.
    ``r`` may have one element (the same rate for all). Self-contained: ln(F/K) and the exponentials from libm.
    """
    n = f.size
    m = min(n, _SCRATCH)
    x = np.empty(m)
    g = np.empty(m)
    ex = np.empty(m)
    df = np.empty(m)
    rr = np.empty(m)
    special = np.empty(m, dtype=np.bool_)
    for lo in range(0, n, m):
        w = min(m, n - lo)
        for j in range(w):
            i = lo + j
            xi = _log_moneyness(f[i], k[i])
            s = v[i] * math.sqrt(tt[i])
            h = -abs(xi) / s
            t = 0.5 * s
            ri = r[0] if r.size == 1 else r[i]
            x[j] = xi
            g[j] = math.exp(-0.5 * (h * h + t * t))
            ex[j] = math.exp(-0.5 * abs(xi))
            df[j] = math.exp(-ri * tt[i]) if ri != 0.0 else 1.0
            rr[j] = ri
        _chunk_into(f[lo:lo + w], k[lo:lo + w], tt[lo:lo + w], v[lo:lo + w], c[lo:lo + w], rr[:w], df[:w], x[:w],
                    g[:w], ex[:w], out, lo, greeks, special[:w])


@njit(**_JIT)
def ratios_into(f: np.ndarray, k: np.ndarray, u: np.ndarray, q: np.ndarray) -> None:
    """u = (F − K)/K and q = F/K, for numpy's log1p(u) and log(q) (see :func:`_log_moneyness`)."""
    for i in range(f.size):
        u[i] = (f[i] - k[i]) / k[i]
        q[i] = f[i] / k[i]


@njit(**_JIT)
def exponents_into(u: np.ndarray, x: np.ndarray, lq: np.ndarray, tt: np.ndarray, v: np.ndarray, r: np.ndarray,
                   arg_g: np.ndarray, arg_ex: np.ndarray, arg_df: np.ndarray) -> None:
    """x = ln(F/K) from log1p(u) or, for u < −0.5, ln(q); the arguments of g, e^{−|x|/2} and the discount factor,
    as :func:`black76_into` forms them (``r`` of one element: one rate for all)."""
    one_rate = r.size == 1
    for i in range(u.size):
        xi = lq[i] if u[i] < -0.5 else x[i]
        x[i] = xi
        s = v[i] * math.sqrt(tt[i])
        h = -abs(xi) / s
        t = 0.5 * s
        arg_g[i] = -0.5 * (h * h + t * t)
        arg_ex[i] = -0.5 * abs(xi)
        arg_df[i] = -(r[0] if one_rate else r[i]) * tt[i]


@njit(**_JIT)
def black76_prepared_into(f: np.ndarray, k: np.ndarray, tt: np.ndarray, v: np.ndarray, c: np.ndarray,
                          r: np.ndarray, df: np.ndarray, x: np.ndarray, g: np.ndarray, ex: np.ndarray,
                          out: np.ndarray, lo: int, greeks: bool, special: np.ndarray) -> None:
    """:func:`black76_into` for one chunk, out[:, lo:lo + len(f)], with ln(F/K), e^{−(h²+t²)/2}, e^{−|x|/2} and the
    discount factor computed beforehand (numpy's SIMD log1p and exp: see ``black._run_compiled``), elementwise as
    :func:`black76_into` computes them; ``special`` is scratch of at least len(f)."""
    _chunk_into(f, k, tt, v, c, r, df, x, g, ex, out, lo, greeks, special[:f.size])
