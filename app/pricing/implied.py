"""Black-76 implied volatility, vectorised, to the accuracy of the double-precision price.

Method (after Jäckel, "Let's Be Rational", own implementation). In normalised form ``x = ln(F/K)``,
``β = time value/(DF·√(FK))``, every option becomes an out-of-the-money call ``b(x, s) = β`` with ``x ≤ 0``
and ``s = σ√T``. ``b`` is convex below the inflection point ``s_c = √(2|x|)`` and concave above it. So:

* below ``b(s_c)`` we solve ``ln b(s) = ln β`` (well scaled as β → 0);
* above it we solve ``ln(b_max − b(s)) = ln(b_max − β)`` (well scaled as β → b_max);

from the tabulated guess of :mod:`app.pricing.iv_guess` (about 1e-3 relative), with third-order
Householder steps (b', b'', b''' in closed form), kept inside a bracket that shrinks at every step, with
bisection as the fallback. One step is usually enough (a step below 1e-3 relative leaves an error of
order step⁴, ≤ 2e-13 relative measured), at most two on the benchmark set; the loop runs only on options
not yet converged.

Arrays of ``black.NUMBA_MIN_SIZE`` options or more are solved by :mod:`app.pricing.implied_numba` (the same
guess and steps, per option) when numba is installed and ``DESK_NO_NUMBA`` is unset; smaller ones too once it
is in memory (after such a call, or ``black.warm_compiled``; see :mod:`app.pricing.black`).

Elements that have no implied vol come back NaN; :func:`implied_vol_reasons` says why, with the codes of
:class:`IVReason`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import erfinv

from app.pricing import iv_guess
from app.pricing.black import as_is_call, compiled_for, mark_loaded
from app.pricing.normalised import (
    SQRT2,
    log_moneyness,
    normalised_max_minus_otm,
    normalised_otm_call,
    normalised_vega,
)

_MAX_ITER = 60  # safety net: bisection steps if a guess were ever far off; two steps are the norm
_STEP_DONE = 1e-3  # after a Householder step this small the iterate is within ~C·step⁴ (≤ 2e-13 relative measured)


class IVReason(IntEnum):
    """Why an implied vol is (or is not) available; stable integer codes."""

    OK = 0
    BAD_INPUT = 1  # NaN/inf, forward or strike ≤ 0, t ≤ 0, negative price
    BELOW_INTRINSIC = 2  # price below the discounted intrinsic value
    ABOVE_MAX = 3  # price at or above the upper bound (DF·F for a call, DF·K for a put)
    ZERO_TIME_VALUE = 4  # price equals intrinsic: vol 0 returned
    NO_CONVERGENCE = 5  # iteration did not settle (never seen on the benchmark set)


def _normalise(price: ArrayLike, forward: ArrayLike, strike: ArrayLike, t: ArrayLike, is_call: ArrayLike,
               rate: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """(x ≤ 0, β, sqrt_t, reason, shape), flattened, with reason pre-filled for elements that need no solve."""
    p, f, k, tt, r = (np.asarray(a, dtype=float) for a in (price, forward, strike, t, rate))
    c = as_is_call(is_call)
    shape = np.broadcast_shapes(p.shape, f.shape, k.shape, tt.shape, r.shape, c.shape)
    p, f, k, tt, r, c = (a.ravel() for a in np.broadcast_arrays(p, f, k, tt, r, c))
    with np.errstate(all="ignore"):
        good = (f > 0) & (k > 0) & (tt > 0) & (p >= 0)  # NaN fails every comparison
        if not np.isfinite(p.sum() + f.sum() + k.sum() + tt.sum() + r.sum()):
            good &= np.isfinite(p) & np.isfinite(f) & np.isfinite(k) & np.isfinite(tt) & np.isfinite(r)
        undiscounted = p if not r.any() else p * np.exp(r * tt)
        intrinsic = np.maximum((c * 2.0 - 1.0) * (f - k), 0.0)
        time_value = undiscounted - intrinsic
        x = -np.abs(log_moneyness(f, k))
        beta = time_value / np.sqrt(f * k)
        # β < b_max = e^{x/2} is the upper bound (DF·F for calls, DF·K for puts) in normalised form
        solvable = good & (time_value > 0) & (beta < np.exp(0.5 * x))
        sqrt_t = np.sqrt(tt)
    reason = np.zeros(p.shape, dtype=np.int8)
    if not solvable.all():
        reason[~good] = IVReason.BAD_INPUT
        reason[good & (time_value < 0)] = IVReason.BELOW_INTRINSIC
        reason[good & (time_value == 0)] = IVReason.ZERO_TIME_VALUE
        reason[good & (time_value > 0) & ~solvable] = IVReason.ABOVE_MAX
    return x, beta, sqrt_t, reason, shape


def _householder(nu: np.ndarray, h2: np.ndarray, h3: np.ndarray) -> np.ndarray:
    """Third-order Householder step from the Newton step nu and f''/f', f'''/f'."""
    return nu * (1.0 + 0.5 * h2 * nu) / (1.0 + nu * (h2 + h3 * nu / 6.0))


def _solve(x: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Total vol s with b(x, s) = β for x < 0, 0 < β < e^{x/2}; returns (s, converged)."""
    n = x.size
    log_beta = np.log(beta)
    target_dist = np.exp(0.5 * x) - beta  # b_max − β: exact enough, β is given
    s, lower = iv_guess.guess(x, beta, log_beta, target_dist)
    log_dist = np.log(target_dist)
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    converged = np.zeros(n, dtype=bool)
    active = np.arange(n)
    for _ in range(_MAX_ITER):
        if active.size == 0:
            break
        xa, sa, low_a = x[active], s[active], lower[active]
        with np.errstate(all="ignore"):
            b = normalised_otm_call(xa, sa)
            vega = normalised_vega(xa, sa)
            x2_s3 = xa * xa / (sa * sa * sa)
            a1 = x2_s3 - 0.25 * sa  # b''/b'
            a2 = a1 * a1 - 3.0 * x2_s3 / sa - 0.25  # b'''/b'
            # bracket update from the sign of b − β
            above = b > beta[active]
            lo_a = np.where(above, lo[active], np.maximum(lo[active], sa))
            hi_a = np.where(above, np.minimum(hi[active], sa), hi[active])
            # objective ln b − ln β below the inflection point, ln(b_max − b) − ln(b_max − β) above it
            lam = vega / b
            fval = np.log(b) - log_beta[active]
            if not low_a.all():
                iu = np.flatnonzero(~low_a)
                dist = normalised_max_minus_otm(xa[iu], sa[iu])
                lam[iu] = -vega[iu] / dist
                fval[iu] = np.log(dist) - log_dist[active[iu]]
            nu = -fval / lam
            h2 = a1 - lam
            h3 = a2 - 3.0 * lam * a1 + 2.0 * lam * lam
            step = _householder(nu, h2, h3)
            new = sa + step
            # keep inside the bracket; bisect (geometrically when possible) otherwise
            small = np.abs(step) <= _STEP_DONE * sa
            inside = np.isfinite(new) & (((new > lo_a) & (new < hi_a)) | small)
            if not inside.all():
                fallback = np.where(np.isfinite(hi_a), np.where(lo_a > 0, np.sqrt(lo_a * hi_a), 0.5 * hi_a),
                                    2.0 * sa)
                new = np.where(inside, new, fallback)
            done = (inside & small) | (hi_a - lo_a <= 4e-16 * hi_a) & np.isfinite(hi_a)
        s[active] = new
        lo[active] = lo_a
        hi[active] = hi_a
        converged[active[done]] = True
        active = active[~done]
    return s, converged


@cache
def _compiled_solver() -> Callable[..., Any] | None:
    """The numba solver, imported on first use; None when numba is not installed."""
    try:
        from app.pricing.implied_numba import solve_into
    except ImportError:
        return None
    return solve_into


def _solve_any(x: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_solve`, through the compiled solver for large arrays (see black.NUMBA_MIN_SIZE) and, once
    ``black.warm_compiled`` has loaded it, for every size."""
    kernel = _compiled_solver() if compiled_for(x.size, "implied") else None
    if kernel is None:
        return _solve(x, beta)
    tab = iv_guess._tables()
    s = np.empty(x.size)
    conv = np.empty(x.size, dtype=bool)
    kernel(_writable(x), _writable(beta), tab.lower, tab.upper, tab.log_bc, tab.dist_c, s, conv)
    mark_loaded("implied")
    return s, conv


def _writable(a: np.ndarray) -> np.ndarray:
    """A writable C-contiguous float array: the one type the solver is compiled (and warmed) for."""
    a = np.ascontiguousarray(a, dtype=float)
    return a if a.flags.writeable else a.copy()


def implied_vol_reasons(price: ArrayLike, forward: ArrayLike, strike: ArrayLike, t: ArrayLike,
                        is_call: ArrayLike, rate: ArrayLike = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Implied vols (per 1.00) and an int8 array of :class:`IVReason` codes explaining every NaN."""
    x, beta, sqrt_t, reason, shape = _normalise(price, forward, strike, t, is_call, rate)
    todo = reason == IVReason.OK
    all_todo = bool(todo.all())
    if all_todo:
        xs, bs, st = x, beta, sqrt_t
    else:
        xs, bs, st = x[todo], beta[todo], sqrt_t[todo]
    s = np.empty(xs.shape)
    conv = np.ones(xs.shape, dtype=bool)
    atm = xs == 0.0
    if atm.any():  # b = erf(s/(2√2)) exactly at the money
        s[atm] = 2.0 * SQRT2 * erfinv(bs[atm])
        off = ~atm
        if off.any():
            s[off], conv[off] = _solve_any(xs[off], bs[off])
    elif xs.size:
        s, conv = _solve_any(xs, bs)
    vol_todo = s / st
    if not conv.all():
        vol_todo[~conv] = np.nan
    if all_todo and conv.all():
        return vol_todo.reshape(shape), reason.reshape(shape)
    vol = np.full(x.shape, np.nan)
    vol[reason == IVReason.ZERO_TIME_VALUE] = 0.0
    vol[todo] = vol_todo
    reason[np.flatnonzero(todo)[~conv]] = IVReason.NO_CONVERGENCE
    return vol.reshape(shape), reason.reshape(shape)


def implied_vol(price: ArrayLike, forward: ArrayLike, strike: ArrayLike, t: ArrayLike, is_call: ArrayLike,
                rate: ArrayLike = 0.0) -> np.ndarray:
    """Black-76 implied vol (per 1.00) from USD prices; NaN where none exists (ask why: implied_vol_reasons)."""
    return implied_vol_reasons(price, forward, strike, t, is_call, rate)[0]


def implied_vol_coin(price_coin: ArrayLike, forward: ArrayLike, strike: ArrayLike, t: ArrayLike,
                     is_call: ArrayLike, rate: ArrayLike = 0.0) -> np.ndarray:
    """Implied vol (per 1.00) of an inverse option from its coin price (USD price = coin price × forward)."""
    usd = np.asarray(price_coin, dtype=float) * np.asarray(forward, dtype=float)
    return implied_vol(usd, forward, strike, t, is_call, rate)
