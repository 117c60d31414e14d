"""Chain: a sortable, filterable table of the option chain with IVs and greeks."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from app import analytics
from ui.dash.source import DashSource
from ui.dash.widgets import table

NAME = "chain"
PATH = "/chain"
TITLE = "Chain"
COLUMNS = ["instrument", "expiry", "strike", "type", "bid", "ask", "mark", "bid_iv", "mark_iv", "ask_iv", "delta", "gamma", "vega", "theta", "open_interest"]


def layout(source: DashSource) -> html.Div:
    """The chain page: all expiries of an underlying, filter with the column boxes (e.g. `> 0.25` on delta)."""
    snap = source.snapshot()
    unds = sorted(snap.chains) if snap is not None else []
    first = unds[0] if unds else None
    rows = analytics.chain_table(snap, first) if (snap is not None and first) else []
    return html.Div(
        [
            html.Div([html.Label("underlying"), dcc.Dropdown(unds, first, id="chain-underlying", clearable=False, style={"width": "10rem", "color": "#111"}),
                      html.Span(f"{len(rows)} options; IVs in %, prices in coin", className="note", id="chain-count")], className="controls"),
            table("chain-table", rows, COLUMNS, page_size=40, filterable=True),
        ]
    )


def register(app: Dash, source: DashSource) -> None:
    """Refresh the rows on underlying change and on the live tick (data only; sort/filter state is kept)."""

    @app.callback(Output("chain-table", "data"), Output("chain-count", "children"), Input("chain-underlying", "value"), Input("tick", "n_intervals"))
    def rows(underlying: str | None, _: int) -> tuple[list[dict[str, Any]], str]:
        snap = source.snapshot()
        data = analytics.chain_table(snap, underlying) if (snap is not None and underlying) else []
        return data, f"{len(data)} options; IVs in %, prices in coin"
