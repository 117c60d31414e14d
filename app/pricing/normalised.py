"""Tail-safe normalised Black function and its derivatives in total volatility.

Notation (Jäckel, "Let's Be Rational"): ``x = ln(F/K)``, ``s = σ·√T`` (total volatility), ``h = x/s``,
``t = s/2``. The normalised undiscounted call price is

    b(x, s) = e^{x/2}·Φ(h + t) − e^{−x/2}·Φ(h − t),     so that   C = DF·√(F·K)·b(x, s).

Everything here works on out-of-the-money calls (``x ≤ 0``); in-the-money prices are the intrinsic value
plus the OTM value of the other side (put-call parity, exact in this normalisation).

Why not ``F·N(d1) − K·N(d2)``: for OTM options both terms are nearly equal and the subtraction loses
``log10(|h|/s²)`` digits (1e-12 at 10 standard deviations, worse for one-hour expiries). Instead, with
``Φ(−z) = ½·erfcx(z/√2)·e^{−z²/2}`` both terms share the factor ``e^{−(h²+t²)/2}``, and

    b = ½·e^{−(h²+t²)/2}·[erfcx(q₁) − erfcx(q₂)],   q₁ = −(h+t)/√2,  q₂ = −(h−t)/√2 = q₁ + √2·t.

Each element takes the cheapest form that is exact for it:

* ``q₁ < 0.5``: the plain form ``½·(e^{x/2}·erfc(q₁) − e^{−x/2}·erfc(q₂))``; for ``q₁ < −0.6`` the first term
  dominates, otherwise the gap ``q₂ − q₁`` is wide enough that it cancels by less than ~100 ulps;
* ``0.5 ≤ q₁ < 7`` with a wide gap: the erfcx difference (erfc itself would add ~q²·ulp from e^{−q²});
* ``q₁ ≥ 7``: the asymptotic (Mills-ratio) series of erfcx, differenced term by term in closed form;
* ``q₂ − q₁ < 0.1·max(q₁, 1)`` (``< 0.01·q₁`` for ``q₁ ≥ 4``): a Taylor series of erfcx around the
  midpoint, the derivatives from the erfcx recurrence; the recurrence amplifies rounding for large q,
  but those errors are damped by powers of the half-width.

All functions are vectorised over numpy arrays and never loop in Python over options.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfc, erfcx, ndtr

SQRT2 = float(np.sqrt(2.0))
INV_SQRT2 = 1.0 / SQRT2
SQRT_PI = float(np.sqrt(np.pi))
TWO_OVER_SQRT_PI = 2.0 / SQRT_PI
INV_SQRT_2PI = 1.0 / float(np.sqrt(2.0 * np.pi))

_ASYMPTOTIC_Q = 7.0  # erfcx's asymptotic series reaches 1e-17 here with 30 terms
_ASYMPTOTIC_TERMS = 30
_TAYLOR_RATIO = 0.05  # half-width / max(q, 1) below which the midpoint Taylor series is used (q < 4) ...
_TAYLOR_RATIO_FAR = 0.005  # ... and for 4 ≤ q < 7, where its derivative recurrence amplifies rounding
_TAYLOR_FAR_Q = 4.0
_CDF_Q = -0.6  # h + t > 0.85: price above ~60% of its maximum, plain CDF form is exact enough
_PLAIN_Q = 0.5  # above this erfc's own error (~q²·ulp, from e^{−q²}) times the cancellation gets too big
_ERFC_SUBNORMAL_Q = 26.0  # erfc(26.55) ≈ 2.2e-308: beyond, erfc(q) is subnormal (only for F/K beyond e^{±600})
# 2·limit, formed as the numba kernel forms it (limit = far + (near − far)·[q₁ < 4]), so both split alike
_TWICE_LIMIT_NEAR = 2.0 * (_TAYLOR_RATIO_FAR + (_TAYLOR_RATIO - _TAYLOR_RATIO_FAR) * 1.0)
_TWICE_LIMIT_FAR = 2.0 * (_TAYLOR_RATIO_FAR + (_TAYLOR_RATIO - _TAYLOR_RATIO_FAR) * 0.0)


def _asymptotic_coefficients(n: int) -> np.ndarray:
    """c_k = (−1)^k (2k−1)!! / 2^k, the Mills-ratio series erfcx(q)·√π = Σ c_k q^{−(2k+1)}."""
    c = np.empty(n)
    c[0] = 1.0
    for k in range(1, n):
        c[k] = -c[k - 1] * (2 * k - 1) / 2.0
    return c


_C_ASYM = _asymptotic_coefficients(_ASYMPTOTIC_TERMS)


def _erfcx_difference_asymptotic(q1: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """erfcx(q1) − erfcx(q1 + eps) for q1 ≥ 7 from the asymptotic series, without subtraction."""
    q2 = q1 + eps
    r = q1 / q2
    one_minus_r = eps / q2
    r2 = r * r
    inv_q1 = 1.0 / q1
    inv_q1_sq = inv_q1 * inv_q1
    # Σ_k c_k q1^{-(2k+1)} (1 − r^{2k+1});  1 − r^p = (1 − r)·S_p,  S_p = 1 + r + … + r^{p−1}
    geo = np.ones_like(q1)  # S_1
    r_pow = r.copy()  # r^1
    q_pow = inv_q1.copy()  # q1^{-1}
    total = _C_ASYM[0] * q_pow * geo
    for k in range(1, _ASYMPTOTIC_TERMS):
        geo = geo + r_pow * (1.0 + r)  # S_{p+2} = S_p + r^p + r^{p+1}
        r_pow = r_pow * r2
        q_pow = q_pow * inv_q1_sq
        total = total + _C_ASYM[k] * q_pow * geo
    return total * one_minus_r / SQRT_PI


def _erfcx_difference_taylor(m: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """erfcx(m − δ) − erfcx(m + δ) for small δ: 2·Σ_{n odd} z_n δⁿ/n!, z_n = −erfcx⁽ⁿ⁾(m)."""
    y = erfcx(m)
    z_prev = -y  # z_0
    z = TWO_OVER_SQRT_PI - 2.0 * m * y  # z_1 = −erfcx'(m) > 0
    two_m = 2.0 * m
    d2 = delta * delta
    term = delta.copy()  # δⁿ/n!
    total = z * term
    tmp = np.empty_like(m)
    n = 1
    # terms fall like (δ/max(m, 1))²: orders up to 7 suffice below 0.005, 9 below 0.02, 11 up to 0.05
    ratio = float(np.max(delta / np.maximum(m, 1.0))) if m.size else 0.0
    for _ in range(3 if ratio <= 0.005 else 4 if ratio <= 0.02 else 5):
        # recurrence z_{n+1} = 2m·z_n + 2n·z_{n−1}, in place (this loop is the hot part of short expiries)
        np.multiply(z_prev, 2.0 * n, out=z_prev)
        np.multiply(two_m, z, out=tmp)
        z_prev += tmp  # z_{n+1}
        np.multiply(z, 2.0 * (n + 1), out=z)
        np.multiply(two_m, z_prev, out=tmp)
        z += tmp  # z_{n+2}
        n += 2
        term *= d2
        term *= 1.0 / ((n - 1) * n)
        np.multiply(z, term, out=tmp)
        total += tmp
    return 2.0 * total


def normalised_otm_call(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """b(x, s) for x ≤ 0 and s > 0 (dimensionless; multiply by DF·√(FK) for a price)."""
    x, s = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(s, dtype=float))
    return normalised_otm_call_ht(x, x / s, 0.5 * s)


def normalised_otm_call_ht(x: np.ndarray, h: np.ndarray, t: np.ndarray) -> np.ndarray:
    """b for x ≤ 0 from precomputed h = x/s and t = s/2 (arrays of one shape; saves two passes)."""
    shape = x.shape
    x = x.ravel()
    h = h.ravel()
    t = t.ravel()
    q1 = h + t
    q1 *= -INV_SQRT2
    eps = SQRT2 * t
    out = np.empty(x.shape)
    # series: eps < 2·limit·max(q₁, 1) and q₁ ≥ −0.6, off the asymptotic region (few passes: chains are small)
    bound = np.where(q1 < _TAYLOR_FAR_Q, _TWICE_LIMIT_NEAR, _TWICE_LIMIT_FAR)
    bound *= np.maximum(q1, 1.0)
    series = eps < bound
    series &= q1 >= _CDF_Q
    asym = q1 >= _ASYMPTOTIC_Q
    any_asym = bool(asym.any())
    if any_asym:
        series &= ~asym
    plain = q1 < _PLAIN_Q  # q₁ < 0.5: never asymptotic
    plain &= ~series
    shared = ~(series | plain)
    if any_asym:
        shared &= ~asym
    # each region gathers only what its formula reads
    if plain.any():
        idx = np.flatnonzero(plain)
        out[idx] = _plain(x[idx], q1[idx], eps[idx])
    for region, kernel in ((shared, _shared), (series, _series), (asym, _asym)):
        if (region is not asym or any_asym) and region.any():
            idx = np.flatnonzero(region)
            out[idx] = kernel(h[idx], t[idx])
    return out.reshape(shape)


def _plain(x: np.ndarray, q1: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """½·(e^{x/2}·erfc(q₁) − e^{−x/2}·erfc(q₂)): exact for small q₁ with a wide gap (or q₁ < −0.6)."""
    q2 = q1 + eps
    second = np.exp(-0.5 * x) * erfc(q2)
    deep = q2 > _ERFC_SUBNORMAL_Q
    if deep.any():  # erfc(q₂) would be subnormal (digits lost): e^{−x/2−q₂²}·erfcx(q₂), a small term there
        second[deep] = np.exp(-0.5 * x[deep] - q2[deep] * q2[deep]) * erfcx(q2[deep])
    return 0.5 * (np.exp(0.5 * x) * erfc(q1) - second)


def _prefactor(h: np.ndarray, t: np.ndarray) -> np.ndarray:
    return 0.5 * np.exp(-0.5 * (h * h + t * t))


def _shared(h: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Shared-exponent erfcx difference: cancels by at most ~1/(2·gap/q), exact with erfcx's accuracy."""
    q1 = (h + t) * -INV_SQRT2
    return _prefactor(h, t) * (erfcx(q1) - erfcx(q1 + SQRT2 * t))


def _series(h: np.ndarray, t: np.ndarray) -> np.ndarray:
    half = t * INV_SQRT2  # half of the gap q₂ − q₁ = √2·t; the midpoint is −h/√2
    return _prefactor(h, t) * _erfcx_difference_taylor(h * -INV_SQRT2, half)


def _asym(h: np.ndarray, t: np.ndarray) -> np.ndarray:
    return _prefactor(h, t) * _erfcx_difference_asymptotic((h + t) * -INV_SQRT2, SQRT2 * t)


def log_moneyness(forward: np.ndarray, strike: np.ndarray) -> np.ndarray:
    """x = ln(F/K), to a few ulps relative even near the money (where ln of the rounded ratio is not).

    In the tails the price depends on x through e^{−x²/(2s²)}, so a rounding of F/K by one ulp, relative
    error ulp/|x| in x, would cost h²·ulp/|x| in the price; log1p of the exact difference avoids that. It
    is itself inexact only for F < K/2 (1 + u far below 1), where ln(F/K) is used instead.
    """
    fwd, k = np.asarray(forward, float), np.asarray(strike, float)
    shape = fwd.shape
    if fwd.shape != k.shape or fwd.ndim != 1:
        shape = np.broadcast_shapes(fwd.shape, k.shape)
        fwd, k = (a.ravel() for a in np.broadcast_arrays(fwd, k))
    u = fwd - k
    u /= k
    far = u < -0.5
    x = np.log1p(u, out=u)
    if far.any():
        idx = np.flatnonzero(far)
        x[idx] = np.log(fwd[idx] / k[idx])
    return x.reshape(shape)


def normalised_vega(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """∂b/∂s = e^{−(h²+t²)/2}/√(2π), the same for calls and puts."""
    h = x / s
    t = 0.5 * s
    return INV_SQRT_2PI * np.exp(-0.5 * (h * h + t * t))


def normalised_max_minus_otm(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """e^{x/2} − b(x, s) for x ≤ 0 without cancellation (the distance of the price to its upper bound)."""
    h = x / s
    t = 0.5 * s
    return np.exp(0.5 * x) * ndtr(-(h + t)) + np.exp(-0.5 * x) * ndtr(h - t)
