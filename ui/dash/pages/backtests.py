"""Backtests: stored backtest runs compared side by side, with their plots (delta in its bands, PnL over time)."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from app import analytics
from ui.dash.figures.hedging import cost_vs_error, delta_with_bands, metrics_bars, pnl_path
from ui.dash.source import DashSource
from ui.dash.widgets import card, graph, table

NAME = "backtests"
PATH = "/backtests"
TITLE = "Backtests"


def body(source: DashSource, selected: list[str] | None) -> list[Any]:
    """Comparison figures and table of the selected backtests (all when none selected)."""
    runs = source.backtests()
    if selected:
        runs = [r for r in runs if r["id"] in selected]
    cmp = analytics.backtest_comparison(runs)
    out = [
        card(graph("bt-metrics", metrics_bars(cmp.labels, cmp.metrics))),
        card(graph("bt-frontier", cost_vs_error(cmp.labels, cmp.cost, cmp.error, groups=cmp.groups))),
        card([html.H4(f"{len(runs)} backtests"), table("bt-table", cmp.rows, cmp.columns, page_size=20, filterable=True)], className="card wide"),
    ]
    for i, run in enumerate(runs[:4]):
        report = source.backtest_report(run["id"]) or {}
        for j, res in enumerate((report.get("report") or {}).get("results", [])[:1]):
            s = res.get("series") or {}
            label = f"{run.get('name', '')} · {res.get('label', run['id'])}"
            out.append(card(graph(f"bt-delta-{i}-{j}", delta_with_bands(s.get("ts", []), s.get("delta", []), s.get("lower", []), s.get("upper", []),
                                                                          title=f"Delta and bands: {label}"))))
            out.append(card(graph(f"bt-pnl-{i}-{j}", pnl_path(s.get("ts", []), s.get("pnl", []), title=f"PnL (USD): {label}"))))
    return out


def layout(source: DashSource) -> html.Div:
    """The backtests page."""
    runs = source.backtests()
    options = [{"label": f"{r.get('name', '')} · {r['id']}", "value": r["id"]} for r in runs]
    return html.Div(
        [
            html.Div([html.Label("compare"), dcc.Dropdown(options, [o["value"] for o in options[:4]], id="bt-select", multi=True, style={"minWidth": "32rem", "color": "#111"})], className="controls"),
            html.Div(body(source, [o["value"] for o in options[:4]]), className="grid", id="bt-body"),
        ]
    )


def register(app: Dash, source: DashSource) -> None:
    """Redraw on selection change."""

    @app.callback(Output("bt-body", "children"), Input("bt-select", "value"), prevent_initial_call=True)
    def change(selected: list[str] | None) -> Any:
        return body(source, selected)
