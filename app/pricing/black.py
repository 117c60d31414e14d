"""Black-76 (options on forwards), Black-Scholes-Merton, and inverse (coin-settled) options.

All functions broadcast their array arguments like numpy ufuncs and return arrays of the broadcast shape.
Conventions: ``t`` in years (365 days), ``vol`` per 1.00 (0.55 = 55%), ``rate`` continuously compounded per
year. Bad inputs (non-finite values, forward/spot or strike ≤ 0, t < 0, vol < 0) give NaN in every output
of that element, never an exception. At ``t = 0`` or ``vol = 0`` the option is worth its (discounted
forward) intrinsic value; delta is 0 or ±DF (±DF/2 exactly at the money), gamma and vega are 0.

Prices are tail-safe: the time value comes from :func:`app.pricing.normalised.normalised_otm_call`,
never from ``F·N(d1) − K·N(d2)``, so a 10-standard-deviation one-hour option keeps full relative accuracy.

Arrays of ``NUMBA_MIN_SIZE`` elements or more run through the compiled kernels of
:mod:`app.pricing.black_numba` (same regions, Cody's rational erfc, branch-free SIMD loop; ln(F/K) and the
exponentials from numpy's SIMD log1p/exp, chunk by chunk) when numba is installed; ``DESK_NO_NUMBA=1`` keeps
everything on numpy. The two paths agree to about 1e-14 relative within three standard deviations and to the
accuracy (≤ 1e-13) further out.

Smaller arrays, such as the TUI's 1,000-option chain, stay on numpy (no numba import, no compile on a start-up
path) until the kernels are in memory with every specialisation they would call: after a compiled call on a large
array (that path's: prices and greeks, or implied vols; every size calls the same specialisations), or once
:func:`warm_compiled` has loaded both. That imports numba and loads the machine code from numba's disk cache (in a
daemon thread by default), compiling nothing unless asked, so on a fresh clone it leaves chains on numpy. From
then on every size uses the kernels (a 1,000-option chain's greeks: ~0.05 ms against numpy's ~0.2 ms; its IVs
~0.2 ms against ~0.4 ms). Whoever owns a start-up path calls it after start-up, when half a second of background
CPU does not matter; the benchmark calls it with ``compile=True``, which also fills the cache.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import erfc

from app.pricing.greeks import DAYS_PER_YEAR, Greeks, InverseGreeks
from app.pricing.normalised import INV_SQRT2, INV_SQRT_2PI, log_moneyness, normalised_otm_call_ht

ONE_DAY = 1.0 / DAYS_PER_YEAR
NUMBA_MIN_SIZE = 2048
"""Arrays of at least this many elements go to the compiled kernel (when numba imports and DESK_NO_NUMBA is
unset); smaller ones, such as the TUI's chain, stay on numpy so nothing is loaded or compiled for them, until the
kernels are in memory anyway (see the module docstring)."""


_CHUNK = 16384
"""Options per chunk of the prepared kernel: numpy's scratch arrays for one chunk stay in the core's L2 cache."""


Kernels = tuple[Callable[..., Any], ...]


@cache
def _compiled() -> Kernels | None:
    """The numba kernels (self-contained; prepared and its two numpy-side helpers), imported on first use; None
    when numba is not installed."""
    try:
        from app.pricing.black_numba import black76_into, black76_prepared_into, exponents_into, ratios_into
    except ImportError:
        return None
    return black76_into, black76_prepared_into, ratios_into, exponents_into


_LOADED = {"black": threading.Event(), "implied": threading.Event()}
"""Per compiled path (prices and greeks; implied vols), set once its kernels are in memory with every
specialisation a call of any size makes — by :func:`warm_compiled` (both), or by a finished compiled call on a
large array (that path's; all sizes call the same specialisations). From then on arrays of any size take it (a
1,000-option chain costs ~0.05 ms there against numpy's ~0.2 ms of ~150 ufunc passes): no call can compile."""


def compiled_allowed(size: int) -> bool:
    """Whether an array of ``size`` elements may take a compiled path (size and DESK_NO_NUMBA; not numba itself)."""
    return size >= NUMBA_MIN_SIZE and os.environ.get("DESK_NO_NUMBA", "") in ("", "0")


def compiled_for(size: int, path: str = "black") -> bool:
    """Whether ``size`` elements take the compiled ``path`` ("black" or "implied") now: large enough, or its
    kernels already loaded (DESK_NO_NUMBA unset either way); whether numba imports is the kernels' getter's."""
    if compiled_allowed(size):
        return True
    return _LOADED[path].is_set() and os.environ.get("DESK_NO_NUMBA", "") in ("", "0")


def mark_loaded(path: str) -> None:
    """Note that ``path``'s kernels ran (so are in memory): small arrays may take them from now on."""
    _LOADED[path].set()


def _kernel_for(size: int) -> Kernels | None:
    return _compiled() if compiled_for(size) else None


def _warm_signatures() -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
    """(kernel, example arguments) for every specialisation :func:`_run_compiled` and the implied-vol solver call
    (plus the self-contained kernel, for app.pricing.inverse_flat)."""
    kernels = _compiled()
    if kernels is None:
        return []
    plain, prepared, ratios, exponents = kernels
    a, c, flag = np.ones(2), np.ones(2, dtype=bool), np.ones(2, dtype=bool)
    grid = np.empty((6, 2))
    pairs: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (plain, (a, a, a, a, c, a, grid, True)),
        (prepared, (a, a, a, a, c, a, a, a, a, a, grid, 0, True, flag)),
        (ratios, (a, a, a, a)),
        (exponents, (a, a, a, a, a, a, a, a, a)),
    ]
    from app.pricing import implied, iv_guess  # here, not at the top: implied imports this module

    solver = implied._compiled_solver()
    if solver is not None:
        tab = iv_guess._tables()
        pairs.append((solver, (a, a, tab.lower, tab.upper, tab.log_bc, tab.dist_c, a, flag)))
    return pairs


def warm_compiled(background: bool = True, compile: bool = False) -> threading.Thread | None:
    """Load numba and the compiled kernels so that small arrays (a TUI chain) use them too; a daemon thread if
    ``background``.

    Loads machine code from numba's disk cache only: where a specialisation is not cached it compiles nothing
    (unless ``compile``) and small arrays stay on numpy, so it is safe on a fresh clone and on a start-up path.
    Large arrays compile on first use as before. No-op under DESK_NO_NUMBA=1 or without numba.
    """
    if os.environ.get("DESK_NO_NUMBA", "") not in ("", "0"):
        return None

    def load() -> None:
        try:
            pairs = _warm_signatures()
            if not pairs:
                return
            from numba import typeof

            for kernel, args in pairs:
                sig = tuple(typeof(arg) for arg in args)
                if sig in kernel.overloads:
                    continue
                if not compile and kernel._cache.load_overload(sig, kernel.targetctx) is None:
                    return  # not on disk: leave small arrays on numpy rather than compile here
                kernel.compile(sig)  # from the disk cache just checked (or a compile, when asked to)
        except Exception:  # noqa: BLE001 - warming is an optimisation; numpy stays correct without it
            return
        for event in _LOADED.values():
            event.set()

    if not background:
        load()
        return None
    thread = threading.Thread(target=load, name="pricing-warm", daemon=True)
    thread.start()
    return thread


def compiled_ready() -> bool:
    """Whether every compiled path is loaded (:func:`warm_compiled` has finished), so arrays of every size use it."""
    return all(event.is_set() for event in _LOADED.values())


def _flat(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` broadcast to ``shape`` as a writable C-contiguous 1-D array: the one array type the kernels are
    compiled (and warmed) for, so no call meets a new specialisation (numba types read-only arrays apart)."""
    if a.shape != shape:
        a = np.broadcast_to(a, shape)
    a = np.ascontiguousarray(a).reshape(-1)
    return a if a.flags.writeable else a.copy()


def _run_compiled(kernels: Kernels, forward: ArrayLike, strike: ArrayLike,
                  t: ArrayLike, vol: ArrayLike, is_call: ArrayLike, rate: ArrayLike, shape: tuple[int, ...],
                  greeks: bool) -> list[np.ndarray]:
    """Broadcast, flatten and run the compiled kernel; one array of ``shape`` per output.

    ln(F/K), e^{−(h²+t²)/2}, e^{−|x|/2} and the discount factor come from numpy chunk by chunk (its SIMD log1p
    and exp take under a nanosecond an element, libm's 6 to 14; even at 1,000 options this beats the
    self-contained kernel's libm pre-pass) and the prepared kernel does the rest.
    """
    f, k, tt, v, r = (np.asarray(a, dtype=float) for a in (forward, strike, t, vol, rate))
    c = as_is_call(is_call)
    f, k, tt, v, c = (_flat(a, shape) for a in (f, k, tt, v, c))
    r = _flat(r, r.shape) if r.size == 1 else _flat(r, shape)
    n = f.size
    out = np.empty((6 if greeks else 1, n))
    prepared = kernels[1]
    ratios, exponents = kernels[2], kernels[3]
    size = min(n, _CHUNK)
    u, q, x, g, ex, df, rc, spare = (np.empty(size) for _ in range(8))
    special = np.empty(size, dtype=bool)
    one_rate = r.size == 1
    discount = not (one_rate and r[0] == 0.0)
    if one_rate:
        rc.fill(r[0])
    if not discount:
        df.fill(1.0)
    with np.errstate(all="ignore"):
        for lo in range(0, n, _CHUNK):
            hi = min(lo + _CHUNK, n)
            m = hi - lo
            fc, kc, tc, vc = f[lo:hi], k[lo:hi], tt[lo:hi], v[lo:hi]
            uc, qc, xc, gc, exc, dfc = u[:m], q[:m], x[:m], g[:m], ex[:m], df[:m]
            rr = rc[:m] if one_rate else r[lo:hi]
            ratios(fc, kc, uc, qc)
            np.log1p(uc, out=xc)
            np.log(qc, out=qc)
            exponents(uc, xc, qc, tc, vc, rr, gc, exc, dfc if discount else spare[:m])
            np.exp(gc, out=gc)
            np.exp(exc, out=exc)
            if discount:
                np.exp(dfc, out=dfc)
            prepared(fc, kc, tc, vc, c[lo:hi], rr, dfc, xc, gc, exc, out, lo, greeks, special)
    mark_loaded("black")
    return [row.reshape(shape) for row in out]


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
    shape = np.broadcast_shapes(f.shape, k.shape, tt.shape, v.shape, c.shape, r.shape)
    # flat views; broadcast (a copy) only what needs it, and a single rate stays a scalar (it broadcasts)
    f, k, tt, v, c = (np.broadcast_to(a, shape).ravel() if a.shape != shape else a.ravel() for a in (f, k, tt, v, c))
    r = r.reshape(()) if r.size == 1 else np.broadcast_to(r, shape).ravel()
    with np.errstate(all="ignore"):
        valid = f > 0  # NaN fails every comparison
        valid &= k > 0
        valid &= tt >= 0
        valid &= v >= 0
        if not np.isfinite(f.sum() + k.sum() + tt.sum() + v.sum() + r.sum()):  # an inf (or NaN rate) somewhere
            valid &= np.isfinite(f) & np.isfinite(k) & np.isfinite(tt) & np.isfinite(v) & np.isfinite(r)
    return f, k, tt, v, c, r, valid


def _shape(*args: ArrayLike) -> tuple[int, ...]:
    return np.broadcast_shapes(*(np.shape(a) for a in args))


def _core(f: np.ndarray, k: np.ndarray, tt: np.ndarray, v: np.ndarray, c: np.ndarray, r: np.ndarray,
          greeks: bool) -> tuple[np.ndarray, ...]:
    """Undiscounted-to-discounted Black-76 on broadcast arrays; dead (s = 0) and bad elements are fixed later."""
    sqrt_t = np.sqrt(tt)
    s = v * sqrt_t
    live = s > 0
    all_live = bool(live.all())
    s_safe = s if all_live else np.where(live, s, 1.0)
    x = log_moneyness(f, k)
    ax = -np.abs(x)
    h = ax / s_safe
    t_half = 0.5 * s_safe
    b = normalised_otm_call_ht(ax, h, t_half)
    sqrt_fk = np.sqrt(f * k)
    cs = c * 2.0 - 1.0  # +1 call, -1 put
    itm = (x * cs) > 0
    time_value = sqrt_fk * b
    if not all_live:
        time_value[~live] = 0.0
    price = np.abs(f - k) * itm + time_value
    zero_rate = not r.any()
    df = 1.0 if zero_rate else np.exp(-r * tt)
    if not zero_rate:
        price *= df
    if not greeks:
        return (price,)
    # Φ(d1) for calls, Φ(−d1) for puts: Φ(h ± t) of the OTM side (+ for an OTM call or ITM put), or one
    # minus it in the money; erfc of the OTM side's argument keeps full relative accuracy in the tail
    side = cs * (1.0 - 2.0 * itm)
    e = erfc((h + side * t_half) * -INV_SQRT2)
    prob = 0.5 * e + itm * (1.0 - e)
    f_pdf = sqrt_fk * (INV_SQRT_2PI * np.exp(-0.5 * (h * h + t_half * t_half)))  # F·φ(d1) = K·φ(d2)
    if not zero_rate:
        f_pdf *= df
        prob *= df
    delta = prob * cs
    gamma = f_pdf / (f * f * s_safe)
    vega = f_pdf * sqrt_t
    theta = -f_pdf * v / (2.0 * sqrt_t)
    if not zero_rate:
        theta += r * price
    rho = -tt * price
    if not all_live:
        dead = ~live
        step = np.where(x == 0, 0.5, (np.where(c, x, -x) > 0).astype(float))
        delta[dead] = (np.where(c, step, -step) * df)[dead]
        gamma[dead] = 0.0
        vega[dead] = 0.0
        theta[dead] = 0.0 if zero_rate else (r * price)[dead]
    return price, delta, gamma, vega, theta, rho


def black76_price(forward: ArrayLike, strike: ArrayLike, t: ArrayLike, vol: ArrayLike, is_call: ArrayLike,
                  rate: ArrayLike = 0.0) -> np.ndarray:
    """Black-76 price only, in the currency of the forward (USD); NaN for bad inputs (scenario grids)."""
    shape = _shape(forward, strike, t, vol, is_call, rate)
    kernel = _kernel_for(int(np.prod(shape)))
    if kernel is not None:
        return _run_compiled(kernel, forward, strike, t, vol, is_call, rate, shape, greeks=False)[0]
    f, k, tt, v, c, r, valid = _prepare(forward, strike, t, vol, is_call, rate)
    with np.errstate(all="ignore"):
        (price,) = _core(f, k, tt, v, c, r, greeks=False)
    if not valid.all():
        price[~valid] = np.nan
    return price.reshape(shape)


def black76(forward: ArrayLike, strike: ArrayLike, t: ArrayLike, vol: ArrayLike, is_call: ArrayLike,
            rate: ArrayLike = 0.0) -> Greeks:
    """Black-76 price and greeks on the forward, USD view.

    price in USD; delta ∂V/∂F; gamma ∂²V/∂F² (per USD); vega per 1.00 vol; theta ∂V/∂t per year with F
    fixed; rho per 1.00 rate with F fixed (= −t·V). NaN where inputs are bad (see module docstring).
    """
    shape = _shape(forward, strike, t, vol, is_call, rate)
    kernel = _kernel_for(int(np.prod(shape)))
    if kernel is not None:
        return Greeks(*_run_compiled(kernel, forward, strike, t, vol, is_call, rate, shape, greeks=True))
    f, k, tt, v, c, r, valid = _prepare(forward, strike, t, vol, is_call, rate)
    with np.errstate(all="ignore"):
        out = _core(f, k, tt, v, c, r, greeks=True)
    if not valid.all():
        bad = ~valid
        for arr in out:
            arr[bad] = np.nan
    return Greeks(*(a.reshape(shape) for a in out))


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
    return coin_view(g, np.broadcast_to(np.asarray(forward, dtype=float), g.price.shape))


def coin_view(g: Greeks, forward: np.ndarray) -> InverseGreeks:
    """The coin view (see :func:`inverse_greeks`) of Black-76 greeks ``g`` in USD at ``forward`` (USD, g's shape)."""
    f = forward
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
