"""Margin: IM / MM / equity history per currency and the portfolio-margin risk matrix with the worst bucket."""

from __future__ import annotations

from typing import Any

import numpy as np
from dash import Dash, Input, Output, html

from app import analytics
from ui.dash.figures.margin import history, risk_matrix
from ui.dash.source import DashSource
from ui.dash.widgets import MISSING, card, fmt, graph, table, thin

NAME = "margin"
PATH = "/margin"
TITLE = "Margin"


def body(source: DashSource) -> list[Any]:
    """History and risk-matrix cards for every currency with an account."""
    snap = source.snapshot()
    cols = thin(source.series("desk"))
    out: list[Any] = []
    currencies = sorted(snap.margin) if snap is not None else sorted(k.split(".")[0] for k in cols if k.endswith(".mm"))
    for ccy in currencies:
        has = f"{ccy}.mm" in cols
        ts = cols["ts"] if has else []
        series = {name: (cols[f"{ccy}.{key}"] if has else []) for name, key in
                  (("equity", "equity"), ("initial_margin", "im"), ("maintenance_margin", "mm"))}
        out.append(card(graph(f"margin-history-{ccy}", history(ts, series, title=f"{ccy} equity, IM and MM", yaxis=ccy))))
        report = snap.margin.get(ccy) if snap is not None else None
        matrix = analytics.risk_matrix(report) if report is not None else None
        if matrix is None:
            out.append(card(graph(f"margin-matrix-{ccy}", risk_matrix([], [], np.zeros((0, 0)), None, currency=ccy))))
        else:
            out.append(card(graph(f"margin-matrix-{ccy}", risk_matrix(matrix.rows, matrix.columns, matrix.pnl, matrix.worst, currency=ccy))))
        if report is not None:
            figures = [
                {"figure": "model", "value": (analytics.model_label(report) or MISSING).upper()},
                {"figure": "equity", "value": fmt(report.equity)},
                {"figure": "margin balance", "value": fmt(report.margin_balance)},
                {"figure": "initial margin", "value": fmt(report.initial_margin)},
                {"figure": "maintenance margin", "value": fmt(report.maintenance_margin)},
                {"figure": "available funds", "value": fmt(report.available_funds)},
                {"figure": "MM usage", "value": fmt(report.mm_usage, pct=True)},
                {"figure": "liquidation (spot down / up)", "value": f"{fmt(report.distance_down, pct=True)} / {fmt(report.distance_up, pct=True)}"},
                {"figure": "worst bucket", "value": report.worst_bucket or "–"},
            ]
            out.append(card([html.H4(f"{ccy} margin now"), table(f"margin-figures-{ccy}", figures, ["figure", "value"], sortable=False)]))
    return out or [card(html.P("no accounts yet", className="note"))]


def layout(source: DashSource) -> html.Div:
    """The margin page."""
    return html.Div(body(source), className="grid", id="margin-body")


def register(app: Dash, source: DashSource) -> None:
    """Refresh every few ticks (histories are small; a redraw every 5 s is enough)."""

    @app.callback(Output("margin-body", "children"), Input("tick", "n_intervals"), prevent_initial_call=True)
    def refresh(n: int) -> Any:
        from dash import no_update

        return body(source) if n % 5 == 0 else no_update
