"""Volatility figures: 3-D surface, smiles with the SVI fit over bid/ask IVs, term structure, RR/BF, residuals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from app.analytics import SmileFit
from ui.dash.figures.style import ACCENT, DOWN, UP, WARN, base_figure, empty_figure


def surface_3d(strikes: np.ndarray, labels: Sequence[str], t: np.ndarray, iv: np.ndarray, *, by_moneyness: bool = False) -> go.Figure:
    """IV surface over strike (or log-moneyness) × expiry; ``iv`` shape (len(t), len(strikes)), as fractions."""
    if iv.size == 0:
        return empty_figure("Volatility surface", "no option quotes yet")
    fig = base_figure("Volatility surface (IV %)", height=480)
    fig.add_trace(
        go.Surface(
            x=strikes, y=np.asarray(t) * 365.0, z=np.asarray(iv) * 100.0, colorscale="Viridis",
            colorbar=dict(title="IV %"), hovertemplate="K %{x}<br>%{y:.1f} d<br>IV %{z:.1f}%<extra></extra>",
        )
    )
    fig.update_layout(scene=dict(xaxis_title="log(K/F)" if by_moneyness else "strike", yaxis_title="days", zaxis_title="IV %"))
    return fig


def smiles(data: Sequence[SmileFit]) -> go.Figure:
    """Per-expiry smiles: market bid/ask IVs as error bars around the mark, SVI fit as a line."""
    if not data:
        return empty_figure("Smiles", "no option quotes yet")
    fig = base_figure("Smiles: market bid/ask IV and SVI fit", height=460)
    palette = ["#42a5f5", "#ab47bc", "#26a69a", "#ffa726", "#ef5350", "#8d6e63", "#78909c", "#d4e157"]
    for i, s in enumerate(data):
        color = palette[i % len(palette)]
        mid = np.where(np.isfinite(s.bid_iv) & np.isfinite(s.ask_iv), (s.bid_iv + s.ask_iv) / 2, s.mark_iv)
        up = np.where(np.isfinite(s.ask_iv), s.ask_iv - mid, 0.0)
        down = np.where(np.isfinite(s.bid_iv), mid - s.bid_iv, 0.0)
        flag = "" if (s.butterfly_ok and s.calendar_ok) else " ⚠ arb"
        fig.add_trace(
            go.Scatter(
                x=s.strikes, y=mid * 100, mode="markers", name=f"{s.label} market{flag}", marker=dict(color=color, size=5),
                error_y=dict(type="data", symmetric=False, array=up * 100, arrayminus=down * 100, thickness=1),
                legendgroup=s.label,
            )
        )
        fig.add_trace(
            go.Scatter(x=s.fit_strikes, y=s.fit_iv * 100, mode="lines", name=f"{s.label} SVI", line=dict(color=color), legendgroup=s.label)
        )
    fig.update_layout(xaxis_title="strike", yaxis_title="IV %")
    return fig


def term_structure(labels: Sequence[str], t: np.ndarray, atm_iv: np.ndarray) -> go.Figure:
    """ATM IV by expiry (fractions in, percent shown)."""
    if len(labels) == 0:
        return empty_figure("ATM term structure", "no expiries")
    fig = base_figure("ATM term structure")
    fig.add_trace(go.Scatter(x=np.asarray(t) * 365, y=np.asarray(atm_iv) * 100, mode="lines+markers", text=list(labels), name="ATM IV", line=dict(color=ACCENT)))
    fig.update_layout(xaxis_title="days to expiry", yaxis_title="IV %")
    return fig


def skew_by_expiry(labels: Sequence[str], rr25: np.ndarray, bf25: np.ndarray) -> go.Figure:
    """25-delta risk reversal (call − put IV) and butterfly (wings − ATM) by expiry, in vol points."""
    if len(labels) == 0:
        return empty_figure("25Δ risk reversal and butterfly", "no expiries")
    fig = base_figure("25Δ risk reversal and butterfly (vol points)")
    fig.add_trace(go.Bar(x=list(labels), y=np.asarray(rr25) * 100, name="RR25", marker_color=[UP if v >= 0 else DOWN for v in rr25]))
    fig.add_trace(go.Scatter(x=list(labels), y=np.asarray(bf25) * 100, name="BF25", mode="lines+markers", line=dict(color=WARN)))
    fig.update_layout(barmode="group", yaxis_title="vol points")
    return fig


def fit_residuals(data: Sequence[SmileFit]) -> go.Figure:
    """Fit minus market mid IV per option, in vol points; outside-the-spread points are flagged."""
    if not data:
        return empty_figure("SVI fit residuals", "no fit")
    fig = base_figure("SVI fit residuals (vol points)")
    for s in data:
        fit_at = np.interp(s.strikes, s.fit_strikes, s.fit_iv)
        mid = np.where(np.isfinite(s.bid_iv) & np.isfinite(s.ask_iv), (s.bid_iv + s.ask_iv) / 2, s.mark_iv)
        inside = (~np.isfinite(s.bid_iv) | (fit_at >= s.bid_iv)) & (~np.isfinite(s.ask_iv) | (fit_at <= s.ask_iv))
        fig.add_trace(
            go.Scatter(
                x=s.strikes, y=(fit_at - mid) * 100, mode="markers", name=s.label,
                marker=dict(symbol=np.where(inside, "circle", "x").tolist(), size=6),
            )
        )
    fig.add_hline(y=0, line=dict(color="#888", dash="dot"))
    fig.update_layout(xaxis_title="strike", yaxis_title="fit − mid (vol points)")
    return fig
