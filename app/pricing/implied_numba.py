"""Compiled (numba) implied-vol solver: :func:`app.pricing.implied._solve` and :func:`app.pricing.iv_guess.guess`
one option at a time, so each stops after its own one or two Householder steps.

Imported lazily by :mod:`app.pricing.implied` for large arrays only; ``cache=True`` keeps the machine code on
disk. The iteration (objectives, bracket, step acceptance, bisection fallback) mirrors the numpy solver step
for step; the tables are the numpy path's (passed in), and Φ⁻¹ for the upper-region guess is Acklam's
rational approximation polished by one Halley step on erfc (full double accuracy).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from app.pricing.black_numba import REVISION, normalised_otm_call
from app.pricing.implied import _MAX_ITER, _STEP_DONE
from app.pricing.iv_guess import _A0, _A1, _NA, _NE
from app.pricing.normalised import INV_SQRT2, INV_SQRT_2PI

# constants frozen into the cached machine code (the cache is keyed on this file only; see black_numba)
if (_MAX_ITER, _STEP_DONE, _A0, _A1, _NA, _NE) != (60, 1e-3, math.log(1e-12), math.log(40.0), 201, 257):
    raise ImportError("app.pricing.implied_numba is out of date with app.pricing.implied / iv_guess constants")
if REVISION != 5:  # this file's cache holds black_numba's code of that revision: editing here invalidates it
    raise ImportError("app.pricing.implied_numba is out of date with app.pricing.black_numba")

_JIT = {"cache": True, "fastmath": False, "nogil": True, "error_model": "numpy"}
_SQRT_2PI = math.sqrt(2.0 * math.pi)

# Acklam's inverse-normal approximation (relative error ≤ 1.2e-9 before the Halley step)
_A = np.array([-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
               -3.066479806614716e01, 2.506628277459239e00])
_B = np.array([-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
               -1.328068155288572e01])
_C = np.array([-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549671010506108e00,
               4.374664141464968e00, 2.938163982698783e00])
_D = np.array([7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00])
_P_LOW = 0.02425


@njit(**_JIT)
def ndtr(z: float) -> float:
    """Standard normal CDF Φ(z), through erfc so the lower tail keeps relative accuracy."""
    return 0.5 * math.erfc(-z * INV_SQRT2)


@njit(**_JIT)
def ndtri(p: float) -> float:
    """Φ⁻¹(p) for 0 < p < 1 (NaN outside, ±inf at 0 and 1)."""
    if not (p > 0.0 and p < 1.0):
        if p == 0.0:
            return -np.inf
        if p == 1.0:
            return np.inf
        return np.nan
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        z = ((((( _C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / \
            ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
    elif p <= 1.0 - _P_LOW:
        q = p - 0.5
        r = q * q
        z = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q / \
            (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
    else:
        q = math.sqrt(-2.0 * math.log1p(-p))
        z = -((((( _C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / \
            ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
    # one Halley step on the residual; the upper tail from the complement so it keeps its digits
    if z <= 0.0:
        e = ndtr(z) - p
    else:
        e = (1.0 - p) - ndtr(-z)
    u = e * _SQRT_2PI * math.exp(0.5 * z * z)
    return z - u / (1.0 + 0.5 * z * u)


@njit(**_JIT)
def _bilinear(table: np.ndarray, i: int, fr: float, col: float) -> float:
    col = min(max(col, 0.0), _NE - 1.000001)
    j = int(col)
    fc = col - j
    base = i * _NE + j
    v00 = table[base]
    v01 = table[base + 1]
    v10 = table[base + _NE]
    v11 = table[base + _NE + 1]
    top = v00 + fc * (v01 - v00)
    bottom = v10 + fc * (v11 - v10)
    return top + fr * (bottom - top)


@njit(**_JIT)
def _guess(x: float, log_beta: float, dist: float, lower_tab: np.ndarray, upper_tab: np.ndarray,
           log_bc_tab: np.ndarray, dist_c_tab: np.ndarray) -> tuple[float, bool]:
    """(initial total vol, lower-region flag), as iv_guess.guess for one option."""
    row = (math.log(-x) - _A0) * ((_NA - 1) / (_A1 - _A0))
    row = min(max(row, 0.0), _NA - 1.000001)
    i = int(row)
    fr = row - i
    log_bc = log_bc_tab[i] + fr * (log_bc_tab[i + 1] - log_bc_tab[i])
    if log_beta < log_bc:
        eta = min(x / (2.0 * log_beta), 1.0)
        base = math.sqrt(-2.0 * x * eta / (1.0 + math.sqrt(max(1.0 - eta * eta, 0.0))))
        return base * math.exp(_bilinear(lower_tab, i, fr, (log_bc / log_beta) * (_NE - 1))), True
    dist_c = (dist_c_tab[i] + fr * (dist_c_tab[i + 1] - dist_c_tab[i])) * math.exp(0.5 * x)
    nu = min(dist / dist_c, 1.0)
    base = -2.0 * ndtri(dist / (2.0 * math.cosh(0.5 * x)))
    return base * math.exp(_bilinear(upper_tab, i, fr, nu * (_NE - 1))), False


@njit(**_JIT)
def solve_into(x: np.ndarray, beta: np.ndarray, lower_tab: np.ndarray, upper_tab: np.ndarray,
               log_bc_tab: np.ndarray, dist_c_tab: np.ndarray, s_out: np.ndarray, conv_out: np.ndarray) -> None:
    """Total vol s with b(x, s) = β for x < 0, 0 < β < e^{x/2} (dimensionless), into s_out; conv_out flags."""
    for n in range(x.size):
        xi = x[n]
        bi = beta[n]
        log_beta = math.log(bi)
        target_dist = math.exp(0.5 * xi) - bi
        s, lower = _guess(xi, log_beta, target_dist, lower_tab, upper_tab, log_bc_tab, dist_c_tab)
        log_dist = math.log(target_dist)
        lo = 0.0
        hi = np.inf
        converged = False
        for _ in range(_MAX_ITER):
            h = xi / s
            t = 0.5 * s
            b = normalised_otm_call(xi, h, t)
            vega = INV_SQRT_2PI * math.exp(-0.5 * (h * h + t * t))
            x2_s3 = xi * xi / (s * s * s)
            a1 = x2_s3 - 0.25 * s
            a2 = a1 * a1 - 3.0 * x2_s3 / s - 0.25
            if b > bi:
                hi = min(hi, s)
            else:
                lo = max(lo, s)
            if lower:
                lam = vega / b
                fval = math.log(b) - log_beta
            else:
                dist = math.exp(0.5 * xi) * ndtr(-(h + t)) + math.exp(-0.5 * xi) * ndtr(h - t)
                lam = -vega / dist
                fval = math.log(dist) - log_dist
            nu = -fval / lam
            h2 = a1 - lam
            h3 = a2 - 3.0 * lam * a1 + 2.0 * lam * lam
            step = nu * (1.0 + 0.5 * h2 * nu) / (1.0 + nu * (h2 + h3 * nu / 6.0))
            new = s + step
            small = abs(step) <= _STEP_DONE * s
            inside = math.isfinite(new) and ((new > lo and new < hi) or small)
            if not inside:
                if math.isfinite(hi):
                    new = math.sqrt(lo * hi) if lo > 0 else 0.5 * hi
                else:
                    new = 2.0 * s
            done = (inside and small) or (hi - lo <= 4e-16 * hi and math.isfinite(hi))
            s = new
            if done:
                converged = True
                break
        s_out[n] = s
        conv_out[n] = converged
