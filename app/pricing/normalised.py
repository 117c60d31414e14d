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

The bracket is evaluated in one of four ways, whichever has no cancellation:

* ``q₁ < −0.6`` (price close to its maximum): the plain CDF form, whose first term dominates;
* ``q₁ ≥ 7``: the asymptotic (Mills-ratio) series of erfcx, differenced term by term in closed form;
* ``q₂ − q₁`` small against ``max(q₁, 1)``: for ``q₁ < 2`` a Taylor series of erfcx around the midpoint,
  with the derivatives from the erfcx recurrence (their rounding errors are damped by powers of the
  half-width); for ``q₁ ≥ 2``, where that recurrence amplifies rounding, a 5-point Gauss-Legendre rule
  on ``erfcx(q₁) − erfcx(q₂) = ∫ (2/√π − 2u·erfcx(u)) du``, whose integrand is positive;
* otherwise: the erfcx difference itself, which then cancels by at most a factor of about 20.

All functions are vectorised over numpy arrays and never loop in Python over options.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfcx, ndtr

SQRT2 = float(np.sqrt(2.0))
SQRT_PI = float(np.sqrt(np.pi))
TWO_OVER_SQRT_PI = 2.0 / SQRT_PI
INV_SQRT_2PI = 1.0 / float(np.sqrt(2.0 * np.pi))

_ASYMPTOTIC_Q = 7.0  # erfcx's asymptotic series reaches 1e-17 here with 30 terms
_ASYMPTOTIC_TERMS = 30
_TAYLOR_RATIO = 0.05  # half-width / max(q, 1) below which the midpoint Taylor series is used
_CDF_Q = -0.6  # h + t > 0.85: price above ~60% of its maximum, plain CDF form is exact enough
_TAYLOR_MAX_Q = 2.0  # above this the derivative recurrence loses more than ~1e-15
_GL_X, _GL_W = np.polynomial.legendre.leggauss(5)


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
    term_pow = delta.copy()
    total = z * term_pow
    fact = 1.0
    n = 1
    for _ in range(5):  # odd orders 3, 5, 7, 9, 11
        z_next = two_m * z + 2.0 * n * z_prev  # z_{n+1}
        z_next2 = two_m * z_next + 2.0 * (n + 1) * z  # z_{n+2}
        z_prev, z = z_next, z_next2
        n += 2
        fact *= (n - 1) * n
        term_pow = term_pow * d2
        total = total + z * term_pow / fact
    return 2.0 * total


def _erfcx_difference_quadrature(m: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """erfcx(m − δ) − erfcx(m + δ) = ∫ −erfcx'(u) du over [m − δ, m + δ] by 5-point Gauss-Legendre."""
    total = np.zeros_like(m)
    for node, weight in zip(_GL_X, _GL_W):
        u = m + delta * node
        total += weight * (TWO_OVER_SQRT_PI - 2.0 * u * erfcx(u))
    return delta * total


def normalised_otm_call(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """b(x, s) for x ≤ 0 and s > 0 (dimensionless; multiply by DF·√(FK) for a price)."""
    x = np.asarray(x, dtype=float)
    s = np.asarray(s, dtype=float)
    h = x / s
    t = 0.5 * s
    q1 = -(h + t) / SQRT2
    eps = SQRT2 * t
    out = np.empty(np.broadcast(x, s).shape)

    cdf = q1 < _CDF_Q
    asym = q1 >= _ASYMPTOTIC_Q
    taylor = ~cdf & ~asym & (0.5 * eps < _TAYLOR_RATIO * np.maximum(q1, 1.0))
    plain = ~(cdf | asym | taylor)

    if cdf.any():
        xc, hc, tc = x[cdf], h[cdf], t[cdf]
        out[cdf] = np.exp(0.5 * xc) * ndtr(hc + tc) - np.exp(-0.5 * xc) * ndtr(hc - tc)
    rest = ~cdf
    if rest.any():
        pref = 0.5 * np.exp(-0.5 * (h * h + t * t))
        if asym.any():
            out[asym] = pref[asym] * _erfcx_difference_asymptotic(q1[asym], eps[asym])
        if taylor.any():
            series = taylor & (q1 < _TAYLOR_MAX_Q)
            quad = taylor & ~series
            if series.any():
                half = 0.5 * eps[series]
                out[series] = pref[series] * _erfcx_difference_taylor(q1[series] + half, half)
            if quad.any():
                half = 0.5 * eps[quad]
                out[quad] = pref[quad] * _erfcx_difference_quadrature(q1[quad] + half, half)
        if plain.any():
            qp, ep = q1[plain], eps[plain]
            out[plain] = pref[plain] * (erfcx(qp) - erfcx(qp + ep))
    return out


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
