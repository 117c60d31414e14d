"""Portfolio greeks: per-position and aggregated, coin and USD views, vega by expiry bucket.

Inputs are a :class:`~app.risk.book.Book` and, per position, the forward of its expiry (USD; the futures
price for futures, the index for perpetuals and spot) and the option's vol (per 1.00; ignored for
non-options). Everything is vectorised; nothing loops over positions in Python.

Coin view (what :class:`app.domain.GreeksView` carries): ``delta`` in coin of underlying exposure,
premium-adjusted for inverse options (Δ_BS − price_coin, Deribit's "net transaction delta"), ``delta_bs``
the plain Black-76 one; ``gamma`` in coin per 1 USD move of the forward; ``vega`` in coin per 1 vol point
(1%); ``theta`` in coin per calendar day. USD view: the same times the index price.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from app.domain import GreeksView
from app.errors import InvalidInput
from app.pricing import DAYS_PER_YEAR, black76, black76_price
from app.pricing.surface import VolSurface
from app.risk.book import Book, PositionKind


def _per_position(book: Book, values: ArrayLike, label: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(values, dtype=float), (len(book),))
    if not np.all(np.isfinite(arr)):
        raise InvalidInput(f"{label} must be finite for every position", code="risk.input")
    return arr


def settlement_values(book: Book, forward: np.ndarray, vol: np.ndarray, t: np.ndarray,
                      rate: ArrayLike = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(coin part, USD part) of each position's value, up to a constant per position; broadcasts.

    Inverse positions are valued in coin (options: size·V_usd/F; futures: −N/F), linear ones in USD
    (options: size·V_usd; futures and spot: size·F). ``forward``, ``vol`` and ``t`` may carry leading
    scenario axes in front of the position axis. Differences of these values are PnL in the settlement
    currency of each position.
    """
    opt = book.kind == PositionKind.OPTION
    inv = book.inverse
    size = book.size
    with np.errstate(all="ignore"):
        price = black76_price(forward, np.where(opt, book.strike, 1.0), t, vol, book.is_call, rate)
        price = np.where(opt, price, 0.0)
        opt_value = size * price
        lin_value = np.where(opt, opt_value, size * forward)
        coin = np.where(inv, np.where(opt, opt_value / forward, -size / forward), 0.0)
    usd = np.where(inv, 0.0, lin_value)
    return coin, usd


def inputs_from_surface(book: Book, surface: VolSurface, index: float) -> tuple[np.ndarray, np.ndarray]:
    """(forward, vol) per position from a surface: the surface's forward at each expiry (``index`` for
    positions without one) and its IV at each option's strike and expiry (0 for non-options)."""
    dated = book.t > 0
    forward = np.where(dated, surface.forward(np.where(dated, book.t, surface.expiries_years[0])), float(index))
    opt = (book.kind == PositionKind.OPTION) & dated
    vol = np.zeros(len(book))
    if opt.any():
        vol[opt] = surface.iv(book.strike[opt], book.t[opt])
    return forward, vol


@dataclass(frozen=True, slots=True)
class PositionGreeks:
    """Greeks per position, coin view (see module docstring); ``forward`` is each position's forward."""

    value_coin: np.ndarray  # mark value in coin (options: premium; futures: 0 at mark)
    delta: np.ndarray
    delta_bs: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    forward: np.ndarray


def position_greeks(book: Book, forward: ArrayLike, vol: ArrayLike, rate: ArrayLike = 0.0) -> PositionGreeks:
    """Greeks of each position in the coin view (coin, per USD, per 1 vol point, per day); inverse options'
    delta and gamma premium-adjusted."""
    f = _per_position(book, forward, "forward")
    if np.any(f <= 0):
        raise InvalidInput("forwards must be positive", code="risk.input")
    opt = book.kind == PositionKind.OPTION
    v = np.where(opt, np.broadcast_to(np.asarray(vol, dtype=float), f.shape), 0.0)
    if np.any(~np.isfinite(v) | (v < 0)):
        raise InvalidInput("option vols must be finite and non-negative", code="risk.input")
    n = book.size
    with np.errstate(all="ignore"):
        g = black76(f, np.where(opt, book.strike, f), np.where(opt, book.t, 0.0), v, book.is_call, rate)
    price_coin = np.where(opt, g.price / f, 0.0)
    delta_bs_opt = n * g.delta
    fut_delta = np.where(book.inverse, n / f, n)  # inverse: USD notional / F coin; linear: coin amount
    delta_bs = np.where(opt, delta_bs_opt, fut_delta)
    pa = opt & book.inverse
    delta = np.where(pa, n * (g.delta - price_coin), delta_bs)
    # Gamma is the change of the delta shown per USD: of the premium-adjusted delta for inverse options
    # (d/dF of delta - V/F), as the chain and the desk's positions show it; plain for linear options.
    gamma = np.where(pa, n * (g.gamma - (g.delta - price_coin) / f), np.where(opt, n * g.gamma, 0.0))
    vega = np.where(opt, n * g.vega / f * 0.01, 0.0)
    theta = np.where(opt, n * g.theta / f / DAYS_PER_YEAR, 0.0)
    return PositionGreeks(n * price_coin, delta, delta_bs, gamma, vega, theta, f)


def aggregate(pg: PositionGreeks, index: float | None = None, mask: ArrayLike | None = None) -> GreeksView:
    """Sum position greeks into a :class:`GreeksView`; USD view at ``index`` (default: each forward)."""
    sel = slice(None) if mask is None else np.asarray(mask, dtype=bool)
    mult = pg.forward[sel] if index is None else float(index)

    def tot(a: np.ndarray) -> float:
        return float(np.sum(a[sel]))

    def usd(a: np.ndarray) -> float:
        return float(np.sum(a[sel] * mult))

    return GreeksView(delta=tot(pg.delta), delta_bs=tot(pg.delta_bs), gamma=tot(pg.gamma), vega=tot(pg.vega),
                      theta=tot(pg.theta), delta_usd=usd(pg.delta), gamma_usd=usd(pg.gamma),
                      vega_usd=usd(pg.vega), theta_usd=usd(pg.theta))


def portfolio_greeks(book: Book, forward: ArrayLike, vol: ArrayLike, index: float | None = None,
                     rate: ArrayLike = 0.0) -> GreeksView:
    """Totals of a book's greeks, coin and USD views (see :func:`position_greeks`, :func:`aggregate`)."""
    return aggregate(position_greeks(book, forward, vol, rate), index)


@dataclass(frozen=True, slots=True)
class VegaBuckets:
    """Vega per expiry: coin per 1 vol point and USD per 1 vol point (at each expiry's forward)."""

    expiry_ms: np.ndarray
    t: np.ndarray
    vega: np.ndarray
    vega_usd: np.ndarray


def vega_by_expiry(book: Book, forward: ArrayLike, vol: ArrayLike, rate: ArrayLike = 0.0) -> VegaBuckets:
    """Option vega summed per expiry (ascending); positions without expiry are left out."""
    pg = position_greeks(book, forward, vol, rate)
    opt = book.kind == PositionKind.OPTION
    expiries, inverse_idx = np.unique(book.expiry_ms[opt], return_inverse=True)
    vega = np.bincount(inverse_idx, weights=pg.vega[opt], minlength=expiries.size).astype(float)
    vega_usd = np.bincount(inverse_idx, weights=(pg.vega * pg.forward)[opt], minlength=expiries.size).astype(float)
    t = np.zeros(expiries.size)
    np.maximum.at(t, inverse_idx, book.t[opt])
    return VegaBuckets(expiries, t, vega, vega_usd)
