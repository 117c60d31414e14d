"""Volatility surface: raw SVI per expiry, interpolated in total variance, with arbitrage checks and shifts.

``VolSurface.from_quotes`` fits one SVI slice per expiry to bid/ask implied vols (mid, weighted by the
inverse spread), in expiry order so that each slice is kept above the previous one (calendar repair),
choosing among the candidates that are free of butterfly arbitrage. ``iv(strike, t)`` interpolates total
variance linearly in t at fixed log-forward moneyness between slices (which keeps calendar no-arbitrage),
scales it by t before the first expiry, and keeps each k's vol constant after the last. ``shifted``
returns a scenario surface (parallel, skew and term shocks to the vols).

Units: strikes and forwards in USD, t in years, vols per 1.00, total variance vol²·years.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import ArrayLike

from app.domain import MS_PER_YEAR, Instrument
from app.errors import InvalidInput
from app.pricing.black import black76_price
from app.pricing.svi import SVIFit, SVIParams, butterfly_ok, calendar_ok, fit_svi, fit_svi_slice

__all__ = [
    "ArbitrageReport",
    "Marks",
    "SVIParams",
    "VolSurface",
    "butterfly_ok",
    "calendar_ok",
    "fit_svi",
]

TERM_REFERENCE_YEARS = 30.0 / 365.0
"""A term shock of x moves the 30-day vol by x, shorter expiries by more (x·√(30d/t)), longer by less."""
_MIN_IV = 1e-4
_REPAIR_SWEEPS = 4


@dataclass(frozen=True, slots=True)
class Marks:
    """Model marks: implied vol (per 1.00), price in USD, and price in coin (USD / forward)."""

    iv: np.ndarray
    price_usd: np.ndarray
    price_coin: np.ndarray
    forward: np.ndarray


@dataclass(frozen=True, slots=True)
class ArbitrageReport:
    """Per-slice butterfly flags and per-adjacent-pair calendar flags on the check grids."""

    butterfly: tuple[bool, ...]
    calendar: tuple[bool, ...]
    wing_slopes: tuple[tuple[float, float], ...]

    @property
    def ok(self) -> bool:
        """True when no arbitrage was found."""
        return all(self.butterfly) and all(self.calendar)


@dataclass(frozen=True)
class VolSurface:
    """SVI slices at increasing expiries (years) with their forwards (USD), plus optional vol shocks."""

    expiries_years: np.ndarray
    params: tuple[SVIParams, ...]
    forwards: np.ndarray
    parallel: float = 0.0
    skew: float = 0.0
    term: float = 0.0
    fits: tuple[SVIFit, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        t = np.asarray(self.expiries_years, dtype=float)
        f = np.asarray(self.forwards, dtype=float)
        if t.ndim != 1 or t.size == 0 or t.size != len(self.params) or f.shape != t.shape:
            raise InvalidInput("VolSurface needs one expiry, one SVI slice and one forward per expiry",
                               code="surface.shape")
        if not (np.all(np.diff(t) > 0) and t[0] > 0 and np.all(f > 0)):
            raise InvalidInput("VolSurface expiries must be positive and increasing, forwards positive",
                               code="surface.order")
        object.__setattr__(self, "expiries_years", t)
        object.__setattr__(self, "forwards", f)
        stacked = np.array([[p.a, p.b, p.rho, p.m, p.sigma] for p in self.params], dtype=float)
        object.__setattr__(self, "_stack", stacked)

    # -- evaluation -------------------------------------------------------------------------------
    def forward(self, t: ArrayLike) -> np.ndarray:
        """Forward (USD) at t years: log-linear in t between expiries, flat outside."""
        tt = np.asarray(t, dtype=float)
        return np.exp(np.interp(tt, self.expiries_years, np.log(self.forwards)))

    def _slice_w(self, i: np.ndarray, k: np.ndarray) -> np.ndarray:
        a, b, rho, m, sig = (self._stack[i, j] for j in range(5))  # type: ignore[attr-defined]
        km = k - m
        return a + b * (rho * km + np.sqrt(km * km + sig * sig))

    def total_variance(self, k: ArrayLike, t: ArrayLike) -> np.ndarray:
        """Unshocked total variance at log-forward moneyness k and t years (linear in t between slices)."""
        kk, tt = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(t, dtype=float))
        te = self.expiries_years
        n = te.size
        j = np.clip(np.searchsorted(te, tt, side="left"), 0, n - 1)  # first slice with T_j ≥ t
        i = np.clip(j - 1, 0, n - 1)
        w_j = self._slice_w(j, kk)
        w_i = self._slice_w(i, kk)
        t_i, t_j = te[i], te[j]
        with np.errstate(all="ignore"):
            frac = np.where(t_j > t_i, (tt - t_i) / (t_j - t_i), 1.0)
            inside = w_i + frac * (w_j - w_i)
            before = w_j * tt / t_j  # before the first expiry: the first slice's vol
            after = w_j * tt / t_j  # after the last: each k keeps the last slice's vol
        return np.where(tt <= te[0], before, np.where(tt >= te[-1], after, inside))

    def iv_k(self, k: ArrayLike, t: ArrayLike) -> np.ndarray:
        """Implied vol (per 1.00) at log-forward moneyness k and t years, shocks included."""
        kk, tt = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(t, dtype=float))
        with np.errstate(all="ignore"):
            vol = np.sqrt(np.maximum(self.total_variance(kk, tt), 0.0) / tt)
            if self.parallel or self.skew or self.term:
                vol = vol + self.parallel + self.skew * kk + self.term * np.sqrt(TERM_REFERENCE_YEARS / tt)
                vol = np.maximum(vol, _MIN_IV)
        return np.where(tt > 0, vol, np.nan)

    def iv(self, strike: ArrayLike, t: ArrayLike) -> np.ndarray:
        """Implied vol (per 1.00) at strike (USD) and t years."""
        kk = np.log(np.asarray(strike, dtype=float) / self.forward(t))
        return self.iv_k(kk, t)

    def marks(self, strike: ArrayLike, t: ArrayLike, is_call: ArrayLike, rate: ArrayLike = 0.0) -> Marks:
        """Model IVs and Black-76 prices (USD and coin = USD/forward) of options, vectorised."""
        f = self.forward(t)
        vol = self.iv(strike, t)
        usd = black76_price(f, strike, t, vol, is_call, rate)
        return Marks(vol, usd, usd / f, np.broadcast_to(f, usd.shape))

    def marks_for(self, instruments: list[Instrument], now_ms: int, rate: float = 0.0) -> Marks:
        """Marks of listed options (in the order given); prices in USD and coin."""
        opts = [inst for inst in instruments if inst.is_option]
        if len(opts) != len(instruments):
            raise InvalidInput("marks_for takes options only", code="surface.not_option")
        strikes = np.array([float(inst.strike) for inst in opts])  # type: ignore[arg-type]
        t = np.array([(inst.expiry_ms - now_ms) / MS_PER_YEAR for inst in opts])  # type: ignore[operator]
        calls = np.array([inst.is_call for inst in opts], dtype=bool)
        return self.marks(strikes, t, calls, rate)

    # -- scenarios --------------------------------------------------------------------------------
    def shifted(self, parallel: float = 0.0, skew: float = 0.0, term: float = 0.0) -> VolSurface:
        """A shocked copy: vol += parallel + skew·k + term·√(30d/t) (per 1.00; k = ln(K/F)), floored at 0.01%."""
        return replace(self, parallel=self.parallel + parallel, skew=self.skew + skew, term=self.term + term)

    def with_forwards(self, forwards: ArrayLike) -> VolSurface:
        """The same smiles in moneyness around new forwards (a sticky-moneyness spot move)."""
        return replace(self, forwards=np.asarray(forwards, dtype=float))

    # -- checks -----------------------------------------------------------------------------------
    def arbitrage(self, k_grid: ArrayLike | None = None) -> ArbitrageReport:
        """Butterfly check per slice (g ≥ 0) and calendar check per adjacent pair (w non-decreasing in t)."""
        if k_grid is not None:
            grids = [np.asarray(k_grid, dtype=float)] * len(self.params)
        elif self.fits:
            grids = [fit.check_grid for fit in self.fits]  # twice each slice's quoted range
        else:
            grids = [np.linspace(-1.5, 1.5, 121)] * len(self.params)
        bfly = tuple(butterfly_ok(p, g) for p, g in zip(self.params, grids))
        cal = tuple(calendar_ok(self.params[i], self.params[i + 1], np.union1d(grids[i], grids[i + 1]))
                    for i in range(len(self.params) - 1))
        return ArbitrageReport(bfly, cal, tuple(p.wing_slopes() for p in self.params))

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_quotes(cls, strike: ArrayLike, t: ArrayLike, bid_iv: ArrayLike, ask_iv: ArrayLike,
                    forward: ArrayLike, *, weighting: str = "spread", calendar_repair: bool = True,
                    min_spread: float = 0.005) -> VolSurface:
        """Fit a surface to option quotes given as bid/ask implied vols (per 1.00), one row per quote.

        ``t`` (years) groups quotes into expiries; ``forward`` is each quote's forward (USD, the same for
        an expiry; the median is used). Rows without a two-sided quote are ignored. ``weighting``:
        "spread" (squared vol errors over the spread, spreads floored at ``min_spread``), "vega", or
        "equal". Every slice is chosen free of butterfly arbitrage on twice its quoted range. With
        ``calendar_repair``, each adjacent pair whose total variances cross is refitted: the earlier slice
        under the later one as a ceiling, or the later above the earlier as a floor, whichever costs less
        fit; flags that remain are in :meth:`arbitrage`.
        """
        kk_strike, tt, bid, ask, fwd = np.broadcast_arrays(*(np.asarray(a, dtype=float)
                                                           for a in (strike, t, bid_iv, ask_iv, forward)))
        good = np.isfinite(kk_strike) & np.isfinite(tt) & np.isfinite(bid) & np.isfinite(ask) & np.isfinite(fwd) \
            & (bid > 0) & (ask >= bid) & (tt > 0) & (fwd > 0) & (kk_strike > 0)
        if not good.any():
            raise InvalidInput("no usable two-sided quotes for a surface", code="surface.no_quotes")
        expiries = np.unique(tt[good])
        data: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = []
        forwards: list[float] = []
        for te in expiries:
            sel = good & (tt == te)
            f = float(np.median(fwd[sel]))
            k = np.log(kk_strike[sel] / f)
            mid = 0.5 * (bid[sel] + ask[sel])
            spread = np.maximum(ask[sel] - bid[sel], min_spread)
            to_w = 1.0 / (2.0 * mid * te) ** 2  # a vol error e is a total-variance error ≈ 2·iv·t·e
            if weighting == "spread":
                wts = to_w / spread**2
            elif weighting == "vega":
                wts = to_w * np.exp(-0.5 * (k / (mid * np.sqrt(te))) ** 2)
            elif weighting == "equal":
                wts = to_w
            else:
                raise InvalidInput(f"unknown weighting {weighting!r}", code="surface.weighting")
            data.append((k, mid, wts, float(te)))
            forwards.append(f)
        fits = [fit_svi_slice(k, mid, wts, te) for k, mid, wts, te in data]
        if calendar_repair:
            fits = _repair_calendar(data, fits)
        return cls(expiries, tuple(f.params for f in fits), np.array(forwards), fits=tuple(fits))


def _repair_calendar(data: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]],
                     fits: list[SVIFit]) -> list[SVIFit]:
    """Refit slices of crossing adjacent pairs (a few sweeps), keeping each slice's butterfly screening."""
    fits = list(fits)
    n = len(fits)

    def refit(i: int, ceiling_from: int | None, floor_from: int | None) -> SVIFit:
        grids = [fits[j].check_grid for j in (i, ceiling_from, floor_from) if j is not None]
        grid = np.unique(np.concatenate(grids))
        k, mid, wts, te = data[i]
        return fit_svi_slice(k, mid, wts, te, k_grid=grid,
                             floor=None if floor_from is None else fits[floor_from].params.total_variance(grid),
                             ceiling=None if ceiling_from is None else fits[ceiling_from].params.total_variance(grid))

    for _ in range(_REPAIR_SWEEPS):
        changed = False
        for i in range(n - 1):
            grid = np.union1d(fits[i].check_grid, fits[i + 1].check_grid)
            if calendar_ok(fits[i].params, fits[i + 1].params, grid):
                continue
            lower = refit(i, i + 1, i - 1 if i > 0 else None)  # earlier slice under the later one
            upper = refit(i + 1, i + 2 if i + 2 < n else None, i)  # later slice above the earlier one
            if not (lower.calendar_free or upper.calendar_free):  # boxed in: fix this pair, the next sweep the rest
                lower = refit(i, i + 1, None)
                upper = refit(i + 1, None, i)
            cost_lower = lower.rmse_w**2 - fits[i].rmse_w**2 if lower.calendar_free else np.inf
            cost_upper = upper.rmse_w**2 - fits[i + 1].rmse_w**2 if upper.calendar_free else np.inf
            if cost_lower <= cost_upper and np.isfinite(cost_lower):
                fits[i] = lower
                changed = True
            elif np.isfinite(cost_upper):
                fits[i + 1] = upper
                changed = True
        if not changed:
            break
    return fits
