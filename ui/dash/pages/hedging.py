"""Hedging: per strategy run, delta over time with bands and hedge markers, decisions with reasons, cost vs error."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from app import analytics
from ui.dash.figures.hedging import cost_vs_error, delta_with_bands
from ui.dash.source import DashSource
from ui.dash.widgets import card, graph, table

NAME = "hedging"
PATH = "/hedging"
TITLE = "Hedging"
DECISION_COLUMNS = ["time", "rule", "action", "delta", "lower", "upper", "size", "reason"]


def body(source: DashSource, run_id: str | None) -> list[Any]:
    """Figures and the decision table of one run."""
    decisions = source.decisions(run_id) if run_id else []
    series = analytics.decision_series(decisions)
    runs = source.strategy_runs()
    frontier = analytics.run_frontier(runs, lambda rid: source.decisions(rid, limit=2000))
    return [
        card(graph("hedge-delta", delta_with_bands(series.ts, series.delta, series.lower, series.upper, series.hedge_ts, series.hedge_delta, unit=series.unit))),
        card(graph("hedge-frontier", cost_vs_error(frontier.labels, frontier.cost, frontier.error, groups=frontier.groups))),
        card([html.H4(f"Decisions ({len(decisions)})"), table("hedge-decisions", analytics.decision_rows(decisions), DECISION_COLUMNS, page_size=20, filterable=True)], className="card wide"),
    ]


def layout(source: DashSource) -> html.Div:
    """The hedging page."""
    runs = source.strategy_runs()
    options = [{"label": " · ".join(x for x in (r.get("name"), r["run_id"], r.get("status")) if x), "value": r["run_id"]} for r in runs]
    first = options[0]["value"] if options else None
    return html.Div(
        [
            html.Div([html.Label("strategy run"), dcc.Dropdown(options, first, id="hedge-run", clearable=False, style={"width": "32rem", "color": "#111"})], className="controls"),
            html.Div(body(source, first), className="grid", id="hedge-body"),
        ]
    )


def register(app: Dash, source: DashSource) -> None:
    """Redraw on run change and every few live ticks."""

    @app.callback(Output("hedge-body", "children"), Input("hedge-run", "value"), Input("tick", "n_intervals"))
    def refresh(run_id: str | None, n: int) -> Any:
        from dash import ctx, no_update

        if ctx.triggered_id == "tick" and n % 5:
            return no_update
        return body(source, run_id)
