"""Raw SVI smiles: the parametrisation, its no-arbitrage checks, and a fast quasi-explicit fit.

Raw SVI (Gatheral 2004) gives the total implied variance of one expiry at log-forward moneyness
``k = ln(K/F)``:

    w(k) = a + b·(ρ·(k − m) + √((k − m)² + σ²)),     iv(k) = √(w(k)/t).

Fit (De Marco & Martini's quasi-explicit method, vectorised). With ``y = (k − m)/σ`` the model is
``w = a + d·y + c·√(y² + 1)`` (``c = bσ``, ``d = ρbσ``), linear in ``(a, c, d)`` for fixed ``(m, σ)``.
Substituting ``u = c + d``, ``v = c − d`` turns the wing-slope bounds into a box: Lee's moment bound
``b·(1 ± ρ) ≤ 2`` is ``0 ≤ u, v ≤ 2σ``. For every ``(m, σ)`` of a candidate grid the box-constrained
weighted least squares in ``(a, u, v)`` is solved exactly from nine closed-form active-set solutions
(all candidates at once, from weighted moment sums), then ``a`` is raised if needed so that
``min w = a + √(uv) ≥ 0``. Candidates are also screened for butterfly arbitrage (Gatheral-Jacquier's
``g(k) ≥ 0`` on a grid twice as wide as the quotes) and, when a floor is given, for calendar arbitrage
against the previous expiry. The best arbitrage-free candidate wins; the grid is refined four times
around it. No per-candidate Python loop: a 40-strike slice takes about a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar

_LEE_SLOPE = 2.0  # max wing slope of total variance (Lee 2004)
_G_TOL = -1e-9  # butterfly density tolerance
_CAL_TOL = 1e-9  # calendar tolerance in total variance
_SCREEN = 24  # candidates screened for arbitrage per round before falling back to all
_SHRINK_FROM = 8  # best candidates that also get flattened copies
_SHRINK_FACTORS = np.geomspace(0.05, 0.95, 12)


@dataclass(frozen=True, slots=True)
class SVIParams:
    """Raw SVI parameters of one expiry: w(k) = a + b·(ρ·(k − m) + √((k − m)² + σ²)), k = ln(K/F)."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def total_variance(self, k: ArrayLike) -> np.ndarray:
        """w(k), total implied variance (vol² × years) at log-forward moneyness k."""
        km = np.asarray(k, dtype=float) - self.m
        return self.a + self.b * (self.rho * km + np.sqrt(km * km + self.sigma * self.sigma))

    def iv(self, k: ArrayLike, t: float) -> np.ndarray:
        """Implied vol (per 1.00) at log-forward moneyness k for this slice's expiry t (years)."""
        return np.sqrt(np.maximum(self.total_variance(k), 0.0) / t)

    def derivatives(self, k: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(w, ∂w/∂k, ∂²w/∂k²) at k."""
        km = np.asarray(k, dtype=float) - self.m
        root = np.sqrt(km * km + self.sigma * self.sigma)
        w = self.a + self.b * (self.rho * km + root)
        w1 = self.b * (self.rho + km / root)
        w2 = self.b * self.sigma * self.sigma / root**3
        return w, w1, w2

    def density_g(self, k: ArrayLike) -> np.ndarray:
        """Gatheral-Jacquier g(k); the slice is free of butterfly arbitrage iff g ≥ 0 everywhere."""
        w, w1, w2 = self.derivatives(k)
        return _g(np.asarray(k, dtype=float), w, w1, w2)

    def wing_slopes(self) -> tuple[float, float]:
        """(left, right) asymptotic slopes of w in k: b(1 − ρ), b(1 + ρ); Lee requires both ≤ 2."""
        return self.b * (1.0 - self.rho), self.b * (1.0 + self.rho)

    def min_variance(self) -> float:
        """Minimum total variance over k: a + bσ√(1 − ρ²)."""
        return self.a + self.b * self.sigma * float(np.sqrt(max(1.0 - self.rho * self.rho, 0.0)))


def _g(k: np.ndarray, w: np.ndarray, w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        g = (1.0 - k * w1 / (2.0 * w)) ** 2 - 0.25 * w1 * w1 * (1.0 / w + 0.25) + 0.5 * w2
    return np.where(w > 0, g, -np.inf)


_LOCAL = np.linspace(-10.0, 10.0, 801)
"""Extra check points around a slice's vertex, in units of its σ: g(k) changes over a few σ around m, which a
fixed grid misses when σ is below its step (very short expiries; a dip of g below 0 can be 0.1σ wide)."""


def _with_vertex_points(params: SVIParams, k_grid: np.ndarray) -> np.ndarray:
    """``k_grid`` plus points within 10 σ of the slice's vertex m that fall inside the grid's range, sorted."""
    local = params.m + params.sigma * _LOCAL
    local = local[(local >= k_grid.min()) & (local <= k_grid.max())]
    return np.sort(np.concatenate([k_grid, local]))


def min_density_g(params: SVIParams, k_grid: ArrayLike) -> float:
    """Smallest g(k) over the grid's range: sampled on the grid and near the vertex, then minimised between the
    neighbours of the lowest sample (so a dip narrower than the sampling is still found)."""
    k = _with_vertex_points(params, np.asarray(k_grid, dtype=float))
    g = params.density_g(k)
    i = int(np.argmin(g))
    if not np.isfinite(g[i]) or k.size < 3:
        return float(g[i])
    lo, hi = k[max(i - 1, 0)], k[min(i + 1, k.size - 1)]
    res = minimize_scalar(lambda x: float(params.density_g(x)), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-12 + 1e-6 * params.sigma})
    return float(min(g[i], res.fun))


def butterfly_ok(params: SVIParams, k_grid: ArrayLike) -> bool:
    """True when g(k) ≥ 0 (no butterfly arbitrage) and w(k) > 0 over the grid's range (see :func:`min_density_g`)."""
    return min_density_g(params, k_grid) >= _G_TOL


def calendar_ok(earlier: SVIParams, later: SVIParams, k_grid: ArrayLike) -> bool:
    """True when total variance does not decrease from the earlier to the later expiry at any k of the grid."""
    return bool(np.all(later.total_variance(k_grid) >= earlier.total_variance(k_grid) - _CAL_TOL))


@dataclass(frozen=True, slots=True)
class SVIFit:
    """A fitted slice with its diagnostics (vol errors per 1.00 at the fitted points)."""

    params: SVIParams
    rmse_w: float  # weighted RMSE in total variance
    butterfly_free: bool  # g ≥ 0 on the check grid
    calendar_free: bool  # between the given floor and ceiling on the check grid (True when none given)
    check_grid: np.ndarray


def _candidate_solve(k: np.ndarray, w: np.ndarray, wt: np.ndarray, m: np.ndarray,
                     sig: np.ndarray) -> tuple[np.ndarray, ...]:
    """Exact box-constrained weighted LS of (a, u, v) for every candidate (m, σ); returns a, c, d, loss."""
    y = (k[None, :] - m[:, None]) / sig[:, None]
    z = np.sqrt(y * y + 1.0)
    p = 0.5 * (z + y)
    q = 0.5 * (z - y)
    wp = wt * p
    wq = wt * q
    s0 = 1.0  # weights are normalised to sum 1
    sp = wp.sum(axis=1)
    sq = wq.sum(axis=1)
    spp = (wp * p).sum(axis=1)
    sqq = (wq * q).sum(axis=1)
    spq = (wp * q).sum(axis=1)
    sw = float(wt @ w)
    sww = float(wt @ (w * w))
    spw = wp @ w
    sqw = wq @ w
    cap = _LEE_SLOPE * sig
    zero = np.zeros_like(cap)
    with np.errstate(all="ignore"):
        # u and v each free, at 0, or at the cap: nine active sets stacked on a leading axis
        det3 = s0 * (spp * sqq - spq * spq) - sp * (sp * sqq - spq * sq) + sq * (sp * spq - spp * sq)
        a_ff = (sw * (spp * sqq - spq * spq) - sp * (spw * sqq - spq * sqw) + sq * (spw * spq - spp * sqw)) / det3
        u_ff = (s0 * (spw * sqq - spq * sqw) - sw * (sp * sqq - spq * sq) + sq * (sp * sqw - spw * sq)) / det3
        v_ff = (s0 * (spp * sqw - spw * spq) - sp * (sp * sqw - spw * sq) + sw * (sp * spq - spp * sq)) / det3
        vfix = np.stack([zero, cap])  # u free, v fixed
        r1, r2 = sw - vfix * sq, spw - vfix * spq
        det_u = s0 * spp - sp * sp
        a_uf = (r1 * spp - sp * r2) / det_u
        u_uf = (s0 * r2 - sp * r1) / det_u
        ufix = np.stack([zero, cap])  # v free, u fixed
        r1, r2 = sw - ufix * sp, sqw - ufix * spq
        det_v = s0 * sqq - sq * sq
        a_vf = (r1 * sqq - sq * r2) / det_v
        v_vf = (s0 * r2 - sq * r1) / det_v
        u_bb = np.stack([zero, zero, cap, cap])  # both fixed
        v_bb = np.stack([zero, cap, zero, cap])
        a_bb = (sw - u_bb * sp - v_bb * sq) / s0
        a = np.concatenate([a_ff[None], a_uf, a_vf, a_bb])
        u = np.concatenate([u_ff[None], u_uf, ufix, u_bb])
        v = np.concatenate([v_ff[None], vfix, v_vf, v_bb])
        tol = cap * 1e-12 + 1e-14
        feasible = (u >= -tol) & (u <= cap + tol) & (v >= -tol) & (v <= cap + tol) & np.isfinite(a)
        u = np.clip(u, 0.0, cap)
        v = np.clip(v, 0.0, cap)
        a = np.maximum(a, -np.sqrt(u * v))  # keep min w ≥ 0
        loss = (sww - 2.0 * (a * sw + u * spw + v * sqw) + a * a * s0 + u * u * spp + v * v * sqq
                + 2.0 * (a * u * sp + a * v * sq + u * v * spq))
        loss = np.where(feasible, loss, np.inf)
    pick = np.argmin(loss, axis=0)
    cols = np.arange(m.size)
    a, u, v, loss = a[pick, cols], u[pick, cols], v[pick, cols], loss[pick, cols]
    return a, 0.5 * (u + v), 0.5 * (u - v), loss


def _with_shrunk(k: np.ndarray, w: np.ndarray, wt: np.ndarray, a: np.ndarray, c: np.ndarray, d: np.ndarray,
                 m: np.ndarray, sig: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, ...]:
    """Candidates plus, for the best few by loss, copies with (c, d) scaled by λ < 1 and a refitted."""
    order = np.argsort(loss)[:_SHRINK_FROM]
    lam = _SHRINK_FACTORS[:, None]
    c2 = (lam * c[order]).ravel()
    d2 = (lam * d[order]).ravel()
    m2 = np.tile(m[order], _SHRINK_FACTORS.size)
    s2 = np.tile(sig[order], _SHRINK_FACTORS.size)
    y = (k[None, :] - m2[:, None]) / s2[:, None]
    shape = d2[:, None] * y + c2[:, None] * np.sqrt(y * y + 1.0)
    a2 = np.maximum((w[None, :] - shape) @ wt, -np.sqrt(np.maximum(c2 * c2 - d2 * d2, 0.0)))  # Σwt = 1
    resid = a2[:, None] + shape - w[None, :]
    loss2 = (resid * resid) @ wt
    return (np.concatenate([a, a2]), np.concatenate([c, c2]), np.concatenate([d, d2]), np.concatenate([m, m2]),
            np.concatenate([sig, s2]), np.concatenate([loss, loss2]))


def _candidate_arbitrage(a: np.ndarray, c: np.ndarray, d: np.ndarray, m: np.ndarray, sig: np.ndarray,
                         k_grid: np.ndarray, floor: np.ndarray | None, ceiling: np.ndarray | None) -> np.ndarray:
    """Arbitrage measure per candidate: max(−min g, 0) + calendar breaches of floor/ceiling (0 = free); g is
    checked on the grid and near each candidate's vertex (see :func:`butterfly_ok`)."""
    y = (k_grid[None, :] - m[:, None]) / sig[:, None]
    z = np.sqrt(y * y + 1.0)
    w = a[:, None] + d[:, None] * y + c[:, None] * z
    w1 = (d[:, None] + c[:, None] * y / z) / sig[:, None]
    w2 = c[:, None] / (sig[:, None] ** 2 * z**3)
    g = _g(k_grid[None, :], w, w1, w2)
    g_min = g.min(axis=1)
    # In the candidate's own coordinates y = (k - m) / σ the vertex points are the same for all of them.
    yl = np.broadcast_to(_LOCAL, (m.size, _LOCAL.size))
    kl = m[:, None] + sig[:, None] * yl
    zl = np.sqrt(yl * yl + 1.0)
    wl = a[:, None] + d[:, None] * yl + c[:, None] * zl
    gl = _g(kl, wl, (d[:, None] + c[:, None] * yl / zl) / sig[:, None], c[:, None] / (sig[:, None] ** 2 * zl**3))
    inside = (kl >= k_grid.min()) & (kl <= k_grid.max())
    g_min = np.minimum(g_min, np.where(inside, gl, np.inf).min(axis=1))
    arb = np.maximum(-(g_min - _G_TOL), 0.0)
    if floor is not None:
        arb = arb + np.maximum((floor[None, :] - w).max(axis=1) - _CAL_TOL, 0.0)
    if ceiling is not None:
        arb = arb + np.maximum((w - ceiling[None, :]).max(axis=1) - _CAL_TOL, 0.0)
    return arb


def check_grid(k: np.ndarray) -> np.ndarray:
    """k grid for the arbitrage checks: the quoted range widened to twice its width, 61 points."""
    lo, hi = float(np.min(k)), float(np.max(k))
    mid, half = 0.5 * (lo + hi), max(0.5 * (hi - lo), 0.05)
    return np.linspace(mid - 2.0 * half, mid + 2.0 * half, 61)


def fit_svi(k: ArrayLike, w_or_iv: ArrayLike, weights: ArrayLike | None = None, t: float | None = None, *,
            floor: ArrayLike | None = None, ceiling: ArrayLike | None = None,
            k_grid: ArrayLike | None = None) -> SVIParams:
    """Fit raw SVI to one expiry; ``w_or_iv`` are IVs (per 1.00) when ``t`` (years) is given, else total variances.

    ``weights`` multiply squared errors in total variance (default equal); ``floor`` / ``ceiling`` are the
    previous / next expiry's total variance on ``k_grid`` (calendar no-arbitrage). See
    :func:`fit_svi_slice` for diagnostics.
    """
    return fit_svi_slice(k, w_or_iv, weights, t, floor=floor, ceiling=ceiling, k_grid=k_grid).params


def fit_svi_slice(k: ArrayLike, w_or_iv: ArrayLike, weights: ArrayLike | None = None, t: float | None = None, *,
                  floor: ArrayLike | None = None, ceiling: ArrayLike | None = None,
                  k_grid: ArrayLike | None = None) -> SVIFit:
    """Like :func:`fit_svi`, returning the fit with its RMSE and arbitrage flags."""
    kk = np.asarray(k, dtype=float)
    vals = np.asarray(w_or_iv, dtype=float)
    w = vals * vals * t if t is not None else vals
    wt = np.ones_like(kk) if weights is None else np.asarray(weights, dtype=float)
    ok = np.isfinite(kk) & np.isfinite(w) & np.isfinite(wt) & (wt > 0) & (w > 0)
    kk, w, wt = kk[ok], w[ok], wt[ok]
    if kk.size == 0:
        raise ValueError("fit_svi needs at least one finite (k, w) point")
    grid = check_grid(kk) if k_grid is None else np.asarray(k_grid, dtype=float)
    fl = None if floor is None else np.asarray(floor, dtype=float)
    cl = None if ceiling is None else np.asarray(ceiling, dtype=float)
    wt = wt / wt.sum()
    if kk.size < 3:  # too few points for a smile: a flat one
        p = SVIParams(float(np.sum(wt * w)), 0.0, 0.0, 0.0, 0.1)
        cal = (fl is None or bool(np.all(p.a >= fl - _CAL_TOL))) and (cl is None or bool(np.all(p.a <= cl + _CAL_TOL)))
        return SVIFit(p, float(np.sqrt(np.sum(wt * (w - p.a) ** 2))), True, cal, grid)

    k_lo, k_hi = float(kk.min()), float(kk.max())
    span = max(k_hi - k_lo, 0.05)
    m_axis = np.linspace(k_lo - 0.25 * span, k_hi + 0.25 * span, 15)
    s_axis = span * np.exp(np.linspace(np.log(0.005), np.log(2.0), 14))
    best = None
    for _ in range(5):
        mm, ss = (arr.ravel() for arr in np.meshgrid(m_axis, s_axis, indexing="ij"))
        a, c, d, loss = _candidate_solve(kk, w, wt, mm, ss)
        # where the data themselves carry arbitrage, the least-squares candidates all do: add flattened
        # copies (b scaled down, ρ kept, a refitted) of the best few, which trade fit for a density ≥ 0
        a, c, d, mm, ss, loss = _with_shrunk(kk, w, wt, a, c, d, mm, ss, loss)
        # arbitrage screening is the costly part: try the best few by loss first, all only if none passes
        top = np.argsort(loss)[:_SCREEN]
        arb = _candidate_arbitrage(a[top], c[top], d[top], mm[top], ss[top], grid, fl, cl)
        if not (arb <= 0.0).any():
            top = np.arange(loss.size)
            arb = _candidate_arbitrage(a, c, d, mm, ss, grid, fl, cl)
        lt = loss[top]
        free = arb <= 0.0
        finite = np.isfinite(lt)
        score = np.where(free, lt, (np.max(lt[finite]) if finite.any() else 0.0) + 1.0 + arb)
        score = np.where(np.isfinite(score), score, np.inf)
        jt = int(np.argmin(score))
        j = int(top[jt])
        best = (a[j], c[j], d[j], mm[j], ss[j], loss[j], bool(free[jt]))
        # refine around the winner: a 7 x 7 grid spanning one cell either side
        dm = m_axis[1] - m_axis[0]
        ratio = s_axis[1] / s_axis[0]
        m_axis = np.linspace(mm[j] - dm, mm[j] + dm, 7)
        s_axis = ss[j] * np.exp(np.linspace(-np.log(ratio), np.log(ratio), 7))
    assert best is not None
    a_, c_, d_, m_, s_, loss_, free_ = best
    b = c_ / s_
    rho = d_ / c_ if c_ > 0 else 0.0
    params = SVIParams(float(a_), float(b), float(np.clip(rho, -1.0, 1.0)), float(m_), float(s_))
    bfly = butterfly_ok(params, grid)
    wg = params.total_variance(grid)
    cal = (fl is None or bool(np.all(wg >= fl - _CAL_TOL))) and (cl is None or bool(np.all(wg <= cl + _CAL_TOL)))
    return SVIFit(params, float(np.sqrt(max(loss_, 0.0))), bfly, cal, grid)
