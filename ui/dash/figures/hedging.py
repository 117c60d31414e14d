"""Hedging figures: delta over time with bands and hedge markers, cost vs hedging error, backtest comparisons."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ui.dash.figures.style import ACCENT, DOWN, UP, WARN, base_figure, empty_figure


def delta_with_bands(
    ts_ms: Sequence[int], delta: Sequence[float], lower: Sequence[float], upper: Sequence[float],
    hedge_ts_ms: Sequence[int] = (), hedge_delta: Sequence[float] = (), *, unit: str = "coin", title: str | None = None,
) -> go.Figure:
    """Portfolio delta over time inside its band; hedges as markers at the delta they left."""
    title = title or f"Delta ({unit}) with bands"
    if len(ts_ms) == 0:
        return empty_figure(title, "no hedge decisions yet")
    x = np.asarray(ts_ms, dtype="datetime64[ms]")
    fig = base_figure(title)
    fig.add_trace(go.Scatter(x=x, y=list(upper), name="upper band", line=dict(color="#666", dash="dash")))
    fig.add_trace(go.Scatter(x=x, y=list(lower), name="lower band", line=dict(color="#666", dash="dash"), fill="tonexty", fillcolor="rgba(66,165,245,0.08)"))
    fig.add_trace(go.Scatter(x=x, y=list(delta), name="delta", line=dict(color=ACCENT)))
    if len(hedge_ts_ms):
        fig.add_trace(
            go.Scatter(x=np.asarray(hedge_ts_ms, dtype="datetime64[ms]"), y=list(hedge_delta), mode="markers", name="hedge",
                       marker=dict(symbol="triangle-up", size=9, color=WARN))
        )
    fig.update_layout(yaxis_title=f"delta ({unit})")
    return fig


def cost_vs_error(labels: Sequence[str], cost: Sequence[float], error: Sequence[float], *, groups: Sequence[str] | None = None) -> go.Figure:
    """Hedge cost vs hedging-error std per run or setting: the frontier traders tune along."""
    if len(labels) == 0:
        return empty_figure("Cost vs hedging error", "no runs")
    fig = base_figure("Hedge cost vs hedging error")
    groups = list(groups) if groups is not None else ["runs"] * len(labels)
    palette = {g: c for g, c in zip(sorted(set(groups)), [ACCENT, WARN, UP, DOWN, "#ab47bc", "#8d6e63"] * 4)}
    for g in sorted(set(groups)):
        idx = [i for i, gg in enumerate(groups) if gg == g]
        fig.add_trace(
            go.Scatter(x=[error[i] for i in idx], y=[cost[i] for i in idx], text=[labels[i] for i in idx], mode="markers+text",
                       textposition="top center", name=g, marker=dict(size=10, color=palette[g]))
        )
    fig.update_layout(xaxis_title="hedging error (std)", yaxis_title="hedge cost")
    return fig


def metrics_bars(run_labels: Sequence[str], metrics: dict[str, Sequence[float]]) -> go.Figure:
    """Backtest metrics side by side, one bar group per metric, one bar per run."""
    if not run_labels:
        return empty_figure("Backtests compared", "no stored backtests")
    fig = base_figure("Backtests compared", height=400)
    names = list(metrics)
    for i, label in enumerate(run_labels):
        fig.add_trace(go.Bar(x=names, y=[metrics[m][i] for m in names], name=label))
    fig.update_layout(barmode="group")
    return fig


def pnl_path(ts_ms: Sequence[int], pnl: Sequence[float], *, title: str = "PnL") -> go.Figure:
    """PnL over time (USD), zero line marked."""
    if len(ts_ms) == 0:
        return empty_figure(title, "no series stored")
    fig = base_figure(title)
    fig.add_trace(go.Scatter(x=np.asarray(ts_ms, dtype="datetime64[ms]"), y=np.asarray(pnl, dtype=float), name="PnL", line=dict(color=UP)))
    fig.add_hline(y=0, line=dict(color="#555"))
    fig.update_layout(yaxis_title="USD")
    return fig
