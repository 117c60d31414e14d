"""Margin figures: usage gauge, IM/MM/equity history, the portfolio-margin risk matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from app.analytics import DEFAULT_ALERT_LEVELS
from ui.dash.figures.style import ACCENT, DOWN, UP, WARN, base_figure, empty_figure


def usage_gauge(mm_usage: float, im_usage: float, *, currency: str, alert_levels: Sequence[float] = DEFAULT_ALERT_LEVELS) -> go.Figure:
    """MM usage gauge (0–120%) banded green / yellow / red at the first two ``alert_levels`` (fractions), a line at
    100% (liquidation), IM usage in the title; usages as fractions (NaN: unknown)."""
    levels = sorted(alert_levels) or [0.5, 0.8, 1.0]
    top = max(120.0, levels[-1] * 100)
    first = levels[0] * 100
    second = levels[1] * 100 if len(levels) > 1 else top
    fig = go.Figure(
        go.Indicator(
            mode="gauge+number", value=mm_usage * 100, number=dict(suffix="% MM", valueformat=".1f"),
            title=dict(text=f"{currency} margin usage · IM {'—' if im_usage != im_usage else f'{im_usage:.1%}'}"),
            gauge=dict(
                axis=dict(range=[0, top]), bar=dict(color=ACCENT),
                steps=[dict(range=[0, first], color="#1b3b2f"), dict(range=[first, second], color="#4a3b10"),
                       dict(range=[second, top], color="#4a1b1b")],
                threshold=dict(line=dict(color=DOWN, width=3), value=100),
            ),
        )
    )
    fig.update_layout(template="plotly_dark", height=260, margin=dict(l=20, r=20, t=50, b=10))
    return fig


def history(ts_ms: Sequence[int], series: dict[str, Sequence[float]], *, title: str, yaxis: str) -> go.Figure:
    """Lines over time (epoch ms) for each named series (equity, IM, MM...)."""
    if len(ts_ms) == 0:
        return empty_figure(title, "no history stored yet")
    x = np.asarray(ts_ms, dtype="datetime64[ms]")
    fig = base_figure(title)
    colors = {"equity": UP, "initial_margin": WARN, "maintenance_margin": DOWN}
    for name, ys in series.items():
        fig.add_trace(go.Scatter(x=x, y=np.asarray(ys, dtype=float), name=name, mode="lines", line=dict(color=colors.get(name))))
    fig.update_layout(yaxis_title=yaxis)
    return fig


def risk_matrix(rows: Sequence[str], columns: Sequence[str], pnl: np.ndarray, worst: tuple[int, int] | None, *, currency: str) -> go.Figure:
    """PM risk matrix (vol scenario rows × price-move columns, coin PnL) with the worst bucket outlined."""
    if pnl.size == 0:
        return empty_figure("Portfolio-margin risk matrix", "no PM details (standard margin or no positions)")
    fig = base_figure(f"Portfolio-margin risk matrix ({currency})", height=320)
    limit = float(np.nanmax(np.abs(pnl))) or 1.0
    fig.add_trace(
        go.Heatmap(
            x=list(columns), y=list(rows), z=pnl, zmin=-limit, zmax=limit, colorscale=[[0, DOWN], [0.5, "#1e1e1e"], [1, UP]],
            texttemplate="%{z:.4f}", colorbar=dict(title=currency),
        )
    )
    if worst is not None:
        r, c = worst
        fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5, line=dict(color=WARN, width=3))
        fig.add_annotation(x=columns[c], y=rows[r], text="worst", showarrow=True, arrowcolor=WARN, font=dict(color=WARN))
    return fig
