"""Scenario revaluation: a book's PnL over a grid of spot moves × vol shocks (× time), fully vectorised.

Every position is repriced at once for every scenario (one Black-76 call over a scenarios × positions
array), so a 200-position book over the 9 × 5 stress grid costs about a millisecond.

Conventions: a spot move ``s`` multiplies every forward by ``1 + s`` (sticky-moneyness surfaces move with
it only if the caller passes shocked vols); a vol shock adds ``dv`` (per 1.00, absolute) to every option's
vol, or multiplies it by ``1 + dv`` with ``relative=True``; a time step removes ``dt`` years from every
expiry (floored at 0). PnL is computed in each position's settlement currency (coin for inverse, USD for
linear) and converted at the scenario's prices: ``pnl_coin`` in coin, ``pnl_usd`` in USD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from app.errors import InvalidInput
from app.risk.book import Book, PositionKind
from app.risk.portfolio import settlement_values

STRESS_SPOT_SHOCKS: tuple[float, ...] = (-0.30, -0.20, -0.10, -0.05, 0.0, 0.05, 0.10, 0.20, 0.30)
"""Spot moves of the TUI stress table and dashboard heatmap (fractions)."""
STRESS_VOL_SHOCKS: tuple[float, ...] = (-0.10, -0.05, 0.0, 0.05, 0.10)
"""Absolute vol shocks (per 1.00: 0.05 = +5 vol points)."""


@dataclass(frozen=True, slots=True)
class ScenarioGrid:
    """PnL of a book per scenario: arrays shaped (spot shocks, vol shocks) or (…, time steps)."""

    spot_shocks: np.ndarray
    vol_shocks: np.ndarray
    time_steps: np.ndarray  # years
    pnl_coin: np.ndarray
    pnl_usd: np.ndarray

    def worst(self, currency: str = "coin") -> tuple[float, float, float]:
        """(pnl, spot shock, vol shock) of the worst scenario, in coin or USD."""
        pnl = self.pnl_coin if currency == "coin" else self.pnl_usd
        idx = np.unravel_index(int(np.argmin(pnl)), pnl.shape)
        return float(pnl[idx]), float(self.spot_shocks[idx[0]]), float(self.vol_shocks[idx[1]])


def _shocked_pnl(book: Book, forward: np.ndarray, vol: np.ndarray, spot: np.ndarray, dvol: np.ndarray,
                 dt: np.ndarray, relative: bool, rate: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """PnL arrays shaped (spot, vol, time): settlement-currency PnL summed over positions, converted."""
    base_coin, base_usd = settlement_values(book, forward, vol, book.t, rate)
    s = spot[:, None, None, None]
    f1 = forward * (1.0 + s)  # (S, 1, 1, N)
    v = dvol[None, :, None, None]
    v1 = np.maximum(vol * (1.0 + v), 0.0) if relative else np.maximum(vol + v, 0.0)  # (1, V, 1, N)
    t1 = np.maximum(book.t - dt[None, None, :, None], 0.0)  # (1, 1, T, N)
    shape = (spot.size, dvol.size, dt.size, len(book))
    coin, usd = settlement_values(book, np.broadcast_to(f1, shape), np.broadcast_to(v1, shape),
                                  np.broadcast_to(t1, shape), rate)
    d_coin = coin - base_coin
    d_usd = usd - base_usd
    f_index = f1  # settlement conversion at each position's scenario forward
    pnl_coin = (d_coin + d_usd / f_index).sum(axis=-1)
    pnl_usd = (d_coin * f_index + d_usd).sum(axis=-1)
    return pnl_coin, pnl_usd


def scenario_grid(book: Book, forward: ArrayLike, vol: ArrayLike,
                  spot_shocks: ArrayLike = STRESS_SPOT_SHOCKS, vol_shocks: ArrayLike = STRESS_VOL_SHOCKS,
                  time_steps: ArrayLike | None = None, *, relative_vol: bool = False,
                  rate: ArrayLike = 0.0) -> ScenarioGrid:
    """PnL over spot × vol (× time) scenarios; forward (USD) and vol (per 1.00) per position.

    Without ``time_steps`` the PnL arrays are (spot, vol); with them, (spot, vol, time), a time step in
    years (e.g. 1/365 for one day of decay).
    """
    n = len(book)
    f = np.broadcast_to(np.asarray(forward, dtype=float), (n,))
    opt = book.kind == PositionKind.OPTION
    v = np.where(opt, np.broadcast_to(np.asarray(vol, dtype=float), (n,)), 0.0)
    if not (np.all(np.isfinite(f)) and np.all(f > 0) and np.all(np.isfinite(v)) and np.all(v >= 0)):
        raise InvalidInput("scenario inputs need positive finite forwards and finite non-negative vols",
                           code="risk.input")
    spot = np.atleast_1d(np.asarray(spot_shocks, dtype=float))
    dv = np.atleast_1d(np.asarray(vol_shocks, dtype=float))
    if np.any(spot <= -1.0) or not np.all(np.isfinite(spot)) or not np.all(np.isfinite(dv)):
        raise InvalidInput("spot shocks must be finite and above -100%", code="risk.input")
    dt = np.atleast_1d(np.asarray(0.0 if time_steps is None else time_steps, dtype=float))
    if np.any(dt < 0) or not np.all(np.isfinite(dt)):
        raise InvalidInput("time steps must be finite and non-negative", code="risk.input")
    pnl_coin, pnl_usd = _shocked_pnl(book, f, v, spot, dv, dt, relative_vol, rate)
    if time_steps is None:
        pnl_coin, pnl_usd = pnl_coin[..., 0], pnl_usd[..., 0]
    return ScenarioGrid(spot, dv, dt, pnl_coin, pnl_usd)
