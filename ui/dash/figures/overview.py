"""Overview figures: equity and PnL over time."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ui.dash.figures.style import ACCENT, UP, base_figure


def equity_pnl(ts_ms: Sequence[int], equity: Sequence[float], pnl: Sequence[float], *, currency: str) -> go.Figure:
    """Equity and PnL over time in ``currency``: always two traces, so live refresh can extend them in place."""
    fig = base_figure(f"Equity and PnL ({currency})", height=300)
    # Plain lists, not numpy arrays: plotly ships arrays as typed buffers, which extendData cannot extend.
    x = np.asarray(ts_ms, dtype="datetime64[ms]").astype(str).tolist()
    fig.add_trace(go.Scatter(x=x, y=np.asarray(equity, dtype=float).tolist(), name="equity", line=dict(color=UP)))
    fig.add_trace(go.Scatter(x=x, y=np.asarray(pnl, dtype=float).tolist(), name="PnL", line=dict(color=ACCENT), yaxis="y2"))
    fig.update_layout(yaxis=dict(title="equity"), yaxis2=dict(title="PnL", overlaying="y", side="right"))
    if len(ts_ms) == 0:
        fig.add_annotation(text="waiting for data", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return fig
