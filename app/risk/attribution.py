"""PnL attribution between two marks: delta, gamma, theta, vega, and what is left (residual).

Between a start mark (forwards F₀, vols σ₀, times t₀) and an end mark (F₁, σ₁, t₁ = t₀ − elapsed), each
position's PnL is split with its greeks at the start, in the position's settlement currency:

    delta = V_F·ΔF,   gamma = ½·V_FF·ΔF²,   vega = V_σ·Δσ,   theta = Θ·Δt (Θ = ∂V/∂t per calendar year),
    residual = actual PnL − (delta + gamma + vega + theta)   (cross terms, higher orders, rates).

For inverse positions V is the coin value (options V_usd/F, futures −N/F), so the terms are in coin and
include the convexity of 1/F; for linear positions they are in USD. Totals are reported in coin and in
USD, converting each position's terms at its end forward (as the scenario PnL does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from app.errors import InvalidInput
from app.pricing import black76
from app.risk.book import Book, PositionKind
from app.risk.portfolio import settlement_values


@dataclass(frozen=True, slots=True)
class Attribution:
    """PnL split into terms (floats), in one currency."""

    currency: str
    total: float
    delta: float
    gamma: float
    vega: float
    theta: float
    residual: float

    def as_dict(self) -> dict[str, float | str]:
        """The terms by name."""
        return {"currency": self.currency, "total": self.total, "delta": self.delta, "gamma": self.gamma,
                "vega": self.vega, "theta": self.theta, "residual": self.residual}


def _settlement_derivatives(book: Book, f: np.ndarray, v: np.ndarray, rate: ArrayLike
                            ) -> tuple[np.ndarray, ...]:
    """Per position (V_F, V_FF, V_σ, V_t) of the settlement-currency value (coin or USD); V_t = ∂V/∂t_calendar."""
    opt = book.kind == PositionKind.OPTION
    inv = book.inverse
    n = book.size
    g = black76(f, np.where(opt, book.strike, f), np.where(opt, book.t, 0.0), np.where(opt, v, 0.0),
                book.is_call, rate)
    price = np.where(opt, g.price, 0.0)
    # options, USD: V = nP; inverse coin value W = nP/F: W_F = n(Δ − P/F)/F, W_FF = n(Γ − 2·W_F/n)/F
    w_f = n * (g.delta - price / f) / f
    w_ff = (n * g.gamma - 2.0 * w_f) / f
    opt_f = np.where(inv, w_f, n * g.delta)
    opt_ff = np.where(inv, w_ff, n * g.gamma)
    opt_v = np.where(inv, n * g.vega / f, n * g.vega)
    opt_t = np.where(inv, n * g.theta / f, n * g.theta)
    # futures: inverse coin value −N/F → N/F², −2N/F³; linear USD value nF → n, 0
    fut_f = np.where(inv, n / (f * f), n)
    fut_ff = np.where(inv, -2.0 * n / (f * f * f), 0.0)
    zero = np.zeros_like(f)
    return (np.where(opt, opt_f, fut_f), np.where(opt, opt_ff, fut_ff), np.where(opt, opt_v, zero),
            np.where(opt, opt_t, zero))


def attribute_pnl(book: Book, forward_start: ArrayLike, vol_start: ArrayLike, forward_end: ArrayLike,
                  vol_end: ArrayLike, elapsed_years: float, rate: ArrayLike = 0.0) -> tuple[Attribution, Attribution]:
    """(coin, USD) attribution of a book's PnL from the start mark to the end mark ``elapsed_years`` later."""
    n = len(book)
    f0, v0, f1, v1 = (np.broadcast_to(np.asarray(a, dtype=float), (n,)) for a in
                      (forward_start, vol_start, forward_end, vol_end))
    opt = book.kind == PositionKind.OPTION
    if not (np.all(np.isfinite(f0)) and np.all(np.isfinite(f1)) and np.all(f0 > 0) and np.all(f1 > 0)):
        raise InvalidInput("forwards must be positive and finite", code="risk.input")
    if not (np.all(np.isfinite(v0[opt])) and np.all(np.isfinite(v1[opt])) and np.all(v0[opt] >= 0)
            and np.all(v1[opt] >= 0)):
        raise InvalidInput("option vols must be finite and non-negative", code="risk.input")
    if not (np.isfinite(elapsed_years) and elapsed_years >= 0):
        raise InvalidInput("elapsed time must be finite and non-negative", code="risk.input")
    v0 = np.where(opt, v0, 0.0)
    v1 = np.where(opt, v1, 0.0)
    with np.errstate(all="ignore"):
        c0, u0 = settlement_values(book, f0, v0, book.t, rate)
        c1, u1 = settlement_values(book, f1, v1, np.maximum(book.t - elapsed_years, 0.0), rate)
        d_f, d_ff, d_v, d_t = _settlement_derivatives(book, f0, v0, rate)
    df = f1 - f0
    terms = {
        "delta": d_f * df,
        "gamma": 0.5 * d_ff * df * df,
        "vega": d_v * (v1 - v0),
        "theta": d_t * elapsed_years,
    }
    total = (c1 - c0) + (u1 - u0)
    inv = book.inverse

    def view(coin: bool) -> Attribution:
        # settlement amounts → coin (USD ones / F₁) or USD (coin ones × F₁)
        conv = np.where(inv, 1.0, 1.0 / f1) if coin else np.where(inv, f1, 1.0)
        vals = {name: float(np.sum(arr * conv)) for name, arr in terms.items()}
        tot = float(np.sum(total * conv))
        return Attribution("coin" if coin else "usd", tot, vals["delta"], vals["gamma"], vals["vega"],
                           vals["theta"], tot - sum(vals.values()))

    return view(True), view(False)
