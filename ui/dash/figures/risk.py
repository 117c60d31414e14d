"""Risk figures: scenario heatmap (spot × vol), greeks exposure by strike and expiry, payoff today and at expiry."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ui.dash.figures.style import ACCENT, DOWN, UP, WARN, base_figure, empty_figure


def scenario_heatmap(spot_moves: np.ndarray, vol_moves: np.ndarray, pnl: np.ndarray, *, currency: str = "USD", title: str = "") -> go.Figure:
    """Portfolio PnL over spot moves (fractions, columns) × vol moves (vol points as fractions, rows)."""
    if pnl.size == 0:
        return empty_figure("Scenario PnL", "no positions")
    fig = base_figure(title or f"Scenario PnL ({currency}): spot × vol", height=420)
    limit = float(np.nanmax(np.abs(pnl))) or 1.0
    fig.add_trace(
        go.Heatmap(
            x=[f"{m:+.0%}" for m in spot_moves], y=[f"{v * 100:+.0f} pts" for v in vol_moves], z=pnl,
            colorscale=[[0, DOWN], [0.5, "#1e1e1e"], [1, UP]], zmin=-limit, zmax=limit,
            text=[[f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.4f}" for v in row] for row in pnl], texttemplate="%{text}",
            hovertemplate="spot %{x}<br>vol %{y}<br>PnL %{z:,.4f}<extra></extra>", colorbar=dict(title=currency),
        )
    )
    fig.update_layout(xaxis_title="spot move", yaxis_title="vol shift")
    return fig


def exposure_by(keys: Sequence[str], values: dict[str, np.ndarray], *, title: str, xlabel: str) -> go.Figure:
    """Grouped bars of greeks (delta, gamma, vega, theta…) per strike or expiry bucket."""
    if len(keys) == 0:
        return empty_figure(title, "no positions")
    fig = base_figure(title)
    colors = {"delta": ACCENT, "gamma": WARN, "vega": UP, "theta": DOWN}
    for name, arr in values.items():
        fig.add_trace(go.Bar(x=list(keys), y=np.asarray(arr), name=name, marker_color=colors.get(name)))
    fig.update_layout(barmode="group", xaxis_title=xlabel)
    return fig


def payoff(spots: np.ndarray, at_expiry: np.ndarray, today: np.ndarray, *, spot: float, currency: str = "USD") -> go.Figure:
    """Portfolio value change vs underlying price: at the first expiry and today (model)."""
    if spots.size == 0:
        return empty_figure("Payoff", "no positions")
    fig = base_figure(f"Payoff ({currency})")
    fig.add_trace(go.Scatter(x=spots, y=at_expiry, name="at expiry", line=dict(color=WARN)))
    fig.add_trace(go.Scatter(x=spots, y=today, name="today", line=dict(color=ACCENT)))
    fig.add_vline(x=spot, line=dict(color="#888", dash="dot"))
    fig.add_hline(y=0, line=dict(color="#555"))
    fig.update_layout(xaxis_title="underlying (USD)", yaxis_title=f"PnL ({currency})")
    return fig
