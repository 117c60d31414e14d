"""Shared look of every dashboard figure."""

from __future__ import annotations

import plotly.graph_objects as go

TEMPLATE = "plotly_dark"
MARGIN = dict(l=50, r=20, t=40, b=40)
UP = "#26a69a"
DOWN = "#ef5350"
ACCENT = "#42a5f5"
WARN = "#ffb300"


def base_figure(title: str, height: int = 360) -> go.Figure:
    """An empty figure with the dashboard's template, margins and title."""
    fig = go.Figure()
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.01, font=dict(size=14)), margin=MARGIN, height=height)
    return fig


def empty_figure(title: str, message: str, height: int = 360) -> go.Figure:
    """A figure that says why there is nothing to plot (no data yet, live only)."""
    fig = base_figure(title, height)
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=14))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
