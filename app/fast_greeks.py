"""Inverse-option greeks for the desk's per-step loops, through the pricing package's compiled kernel at any size.

:func:`app.pricing.black.inverse_greeks` sends arrays below ``NUMBA_MIN_SIZE`` to numpy, so that a one-off chain
never loads numba. The simulated venue prices its whole listing (~1,100 options) every simulated second and the
Desk re-prices what it holds every step: for them numpy's per-call overhead is most of the cost, so these loops
call the compiled kernel (:func:`app.pricing.black_numba.black76_into`, the same tail-safe formulas) whatever the
size. Without numba, or with ``DESK_NO_NUMBA=1``, they fall back to the numpy path; both agree to ~1e-14.
Loading numba costs ~0.5 s once per process: the simulated venue pays it when it is built; the Desk's book of
positions (``load=False``) only uses the kernel once something else has loaded it, so a desk on an external venue
never stalls on its first held option.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from app.pricing.black import NUMBA_MIN_SIZE, compiled_allowed, inverse_greeks
from app.pricing.greeks import InverseGreeks


@cache
def _kernel() -> Callable[..., Any] | None:
    """The compiled Black-76 kernel, or None without numba or with DESK_NO_NUMBA=1 (read once per process)."""
    if not compiled_allowed(NUMBA_MIN_SIZE):  # the size passes: this asks only about DESK_NO_NUMBA
        return None
    try:
        from app.pricing.black_numba import black76_into
    except ImportError:
        return None
    return black76_into


_MODULE = "app.pricing.black_numba"


def compiled() -> bool:
    """Whether :func:`inverse_greeks_1d` runs the compiled kernel in this process."""
    return _kernel() is not None


def _c_array(a: np.ndarray, dtype: type) -> np.ndarray:
    """A writable C-contiguous 1-D array: the one argument type the kernel is compiled (and warmed) for, so no
    call meets a new specialisation (numba types read-only arrays apart)."""
    a = np.ascontiguousarray(a, dtype=dtype).reshape(-1)
    return a if a.flags.writeable else a.copy()


def inverse_greeks_1d(forward: np.ndarray, strike: np.ndarray, t: np.ndarray, vol: np.ndarray,
                      is_call: np.ndarray, *, load: bool = True) -> InverseGreeks:
    """:func:`app.pricing.black.inverse_greeks` at zero rate on 1-D arrays of one length (forward and strike in
    USD, t in years, vol per 1.0, is_call bool); coin view, vega per 1.0 vol, theta per year; NaN for bad inputs.

    ``load=False``: use the compiled kernel only if this process has already loaded it.
    """
    kernel = _kernel() if load or _MODULE in sys.modules else None
    if kernel is None:
        return inverse_greeks(forward, strike, t, vol, is_call)
    f = _c_array(forward, float)
    n = f.size
    out = np.empty((6, n))
    kernel(f, _c_array(strike, float), _c_array(t, float), _c_array(vol, float), _c_array(is_call, bool), np.zeros(n),
           out, True)
    price_usd, delta_bs, gamma_bs, vega, theta, rho = out
    with np.errstate(all="ignore"):
        price = price_usd / f
        delta = delta_bs - price
        gamma = gamma_bs - delta / f
    return InverseGreeks(price, delta, gamma, vega / f, theta / f, rho / f, delta_bs, gamma_bs)
