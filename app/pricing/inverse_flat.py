"""Inverse-option greeks on flat 1-D arrays for per-step loops: the compiled kernel at any size once it is loaded.

:func:`app.pricing.black.inverse_greeks` is the general entry point (any shapes, broadcasting). The simulated venue
prices its whole listing (~1,100 options) every simulated second and the Desk re-prices what it holds every step;
for them the broadcasting and numpy's per-call overhead are most of the cost, so they call
:func:`inverse_greeks_1d`, which hands flat arrays straight to :func:`app.pricing.black_numba.black76_into` (the
same tail-safe formulas as the numpy path; both agree to ~1e-14).

The kernel is taken only where :func:`app.pricing.black.compiled_for` allows it: arrays of ``NUMBA_MIN_SIZE`` or
more, or any size once :func:`app.pricing.black.warm_compiled` has loaded the kernels from numba's disk cache. So
nothing compiles on a start-up path (a fresh clone stays on numpy until ``make`` or a large call fills the cache),
and without numba, or with ``DESK_NO_NUMBA=1``, this is the numpy path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from app.pricing.black import NUMBA_MIN_SIZE, _compiled, _flat, coin_view, compiled_for, inverse_greeks
from app.pricing.greeks import Greeks, InverseGreeks


def _kernel(size: int) -> Callable[..., Any] | None:
    """The self-contained compiled kernel when ``size`` options may take it now; None for the numpy path."""
    if not compiled_for(size):
        return None
    kernels = _compiled()
    if kernels is None:
        return None
    plain = kernels[0]
    # black's "loaded" flag may come from a large call of the prepared kernel alone: a small array must not be
    # the one that compiles this kernel (every call passes the same argument types, so any overload is ours)
    return plain if size >= NUMBA_MIN_SIZE or plain.overloads else None


def compiled(size: int = 1) -> bool:
    """Whether :func:`inverse_greeks_1d` runs the compiled kernel for ``size`` options in this process now."""
    return _kernel(size) is not None


def inverse_greeks_1d(forward: np.ndarray, strike: np.ndarray, t: np.ndarray, vol: np.ndarray,
                      is_call: np.ndarray) -> InverseGreeks:
    """:func:`app.pricing.black.inverse_greeks` at zero rate on 1-D arrays of one length (forward and strike in
    USD, t in years, vol per 1.0, is_call bool); coin view, vega per 1.0 vol, theta per year; NaN for bad inputs."""
    f = np.asarray(forward, dtype=float)
    shape = (f.size,)
    kernel = _kernel(f.size)
    if kernel is None:
        return inverse_greeks(forward, strike, t, vol, is_call)
    f, k, tt, v = (_flat(np.asarray(a, dtype=float), shape) for a in (f, strike, t, vol))
    out = np.empty((6, f.size))
    kernel(f, k, tt, v, _flat(np.asarray(is_call, dtype=bool), shape), np.zeros(f.size), out, True)
    return coin_view(Greeks(*out), f)
