"""Volatility: 3-D surface, smiles with the SVI fit over bid/ask IVs, ATM term structure, RR/BF, residuals, arb flags."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from app import analytics
from ui.dash.figures.volatility import fit_residuals, skew_by_expiry, smiles, surface_3d, term_structure
from ui.dash.source import DashSource
from ui.dash.widgets import card, graph

NAME = "volatility"
PATH = "/volatility"
TITLE = "Volatility"


def _underlyings(source: DashSource) -> list[str]:
    snap = source.snapshot()
    return sorted(snap.chains) if snap is not None else []


def figures(source: DashSource, underlying: str | None) -> list[Any]:
    """The page's figures for one underlying (empty explanations when there is no chain)."""
    snap = source.snapshot()
    view = analytics.surface_view(snap, underlying) if (snap is not None and underlying) else None
    if view is None:
        view = analytics.SurfaceView.empty(underlying or "")
    flags = [
        html.Li(f"{s.label}: butterfly {'ok' if s.butterfly_ok else 'ARBITRAGE'}, calendar {'ok' if s.calendar_ok else 'ARBITRAGE'}, "
                f"RMSE {s.rmse * 100:.2f} vol pts, {s.inside_share:.0%} of fits inside bid/ask")
        for s in view.smiles
    ]
    return [
        card(graph("vol-surface", surface_3d(view.grid_strikes, view.labels, view.t, view.grid_iv))),
        card(graph("vol-smiles", smiles(view.smiles))),
        card(graph("vol-term", term_structure(view.labels, view.t, view.atm_iv))),
        card(graph("vol-skew", skew_by_expiry(view.labels, view.rr25, view.bf25))),
        card(graph("vol-residuals", fit_residuals(view.smiles))),
        card([html.H4("Fit quality and arbitrage checks"), html.Ul(flags or [html.Li("no fit")], id="vol-flags")]),
    ]


def layout(source: DashSource) -> html.Div:
    """The volatility page."""
    unds = _underlyings(source)
    first = unds[0] if unds else None
    return html.Div(
        [
            html.Div([html.Label("underlying"), dcc.Dropdown(unds, first, id="vol-underlying", clearable=False, style={"width": "10rem", "color": "#111"})], className="controls"),
            html.Div(figures(source, first), className="grid", id="vol-body"),
        ]
    )


def register(app: Dash, source: DashSource) -> None:
    """Redraw on underlying change (the surface is re-fitted; no per-tick redraw of 3-D figures)."""

    @app.callback(Output("vol-body", "children"), Input("vol-underlying", "value"), prevent_initial_call=True)
    def change(underlying: str | None) -> list[Any]:
        return figures(source, underlying)
