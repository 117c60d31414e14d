"""Overview: equity, PnL, portfolio greeks (coin and USD), margin usage and distance to liquidation, alerts, positions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from dash import Dash, Input, Output, html

from app import analytics
from app.domain import Alert, DeskSnapshot, MarginAlert, MarginReport
from ui.dash.figures.margin import usage_gauge
from ui.dash.figures.overview import equity_pnl
from ui.dash.figures.style import empty_figure
from ui.dash.source import DashSource
from ui.dash.widgets import card, fmt, fmt_spec, graph, kpi, table, thin

NAME = "overview"
PATH = "/"
TITLE = "Overview"
POSITION_COLUMNS = ["instrument", "size", "average", "mark", "pnl", "pnl_usd", "realised", "funding", "delta", "gamma",
                    "vega", "theta"]


def kpis(snap: DeskSnapshot | None, alert_levels: Sequence[float] = analytics.DEFAULT_ALERT_LEVELS) -> list[Any]:
    """KPI tiles of a snapshot: equity, PnL, greeks per underlying, margin per currency (warned past the first
    MM-usage alert level, a fraction)."""
    if snap is None:
        return [kpi("status", "waiting for data")]
    tiles: list[Any] = []
    for ccy, m in sorted(snap.margin.items()):
        tiles.append(kpi(f"{ccy} equity", fmt(m.equity), id=f"kpi-equity-{ccy}"))
        tiles.append(kpi(f"{ccy} IM / MM", f"{fmt(m.initial_margin)} / {fmt(m.maintenance_margin)}"))
        tiles.append(kpi(f"{ccy} available", fmt(m.available_funds)))
        dist = liquidation_text(m)
        warn = m.mm_usage >= min(alert_levels, default=analytics.DEFAULT_ALERT_LEVELS[0])
        tiles.append(kpi(f"{ccy} liquidation at spot", dist, cls="alert-warning" if warn else ""))
    # A stored run keeps the book's total PnL in its row (no positions with marks): unknown shows as a dash, not 0.
    tiles.append(kpi("PnL (USD)", fmt_spec(analytics.total_pnl_usd(snap), ",.2f"), id="kpi-pnl"))
    for und, g in sorted(snap.portfolio.items()):
        tiles.append(kpi(f"{und} Δ coin / USD", f"{fmt_spec(g.delta, '+.4f')} / {fmt_spec(g.delta_usd, '+,.0f')}"))
        tiles.append(kpi(f"{und} Γ / vega / θ (coin)",
                         f"{fmt_spec(g.gamma, '.2e')} / {fmt_spec(g.vega, '+.4f')} / {fmt_spec(g.theta, '+.4f')}"))
    return tiles


def liquidation_text(report: MarginReport) -> str:
    """The nearer spot move to liquidation with its direction (``up +9.7%``, ``down -23.0%``), as text."""
    move = analytics.nearest_liquidation(report)
    if move is None:
        return "none in range"
    return fmt_spec(move, "+.1%") if move != move else f"{'down' if move < 0 else 'up'} {move:+.1%}"


def alerts(snap: DeskSnapshot | None) -> list[Any]:
    """The latest alerts and margin alerts, newest first."""
    if snap is None:
        return [html.Li("no events yet", className="alert-info")]
    items = []
    for ev in reversed(snap.recent_events):
        if isinstance(ev, Alert):
            items.append(html.Li(f"{ev.source}: {ev.message}", className=f"alert-{ev.severity}"))
        elif isinstance(ev, MarginAlert):
            items.append(html.Li(f"{ev.currency} margin at {ev.mm_usage:.0%} MM: {ev.message}", className="alert-warning"))
    return items[:20] or [html.Li("no alerts", className="alert-info")]


def gauges(snap: DeskSnapshot | None, alert_levels: Sequence[float] = analytics.DEFAULT_ALERT_LEVELS) -> list[Any]:
    """An MM-usage gauge per currency (IM usage in its title, bands at the alert levels); a placeholder with no accounts."""
    if snap is None or not snap.margin:
        return [graph("gauge-none", empty_figure("Margin usage", "no accounts"))]
    return [graph(f"gauge-{ccy}", usage_gauge(m.mm_usage, m.im_usage, currency=ccy, alert_levels=alert_levels))
            for ccy, m in sorted(snap.margin.items())]


def _levels(source: DashSource) -> tuple[float, ...]:
    # The levels the desk's margin engine alerts at (a stored run: the engine defaults), as the TUI colours.
    return analytics.alert_levels(getattr(source, "desk", None))


def _history(source: DashSource) -> tuple[Any, Any, Any, str]:
    cols = thin(source.series("desk"))
    if "equity_usd" not in cols:
        return [], [], [], "USD"
    return cols["ts"], cols["equity_usd"], cols.get("pnl_usd", np.zeros(cols["ts"].size)), "USD"


def layout(source: DashSource) -> html.Div:
    """The overview page."""
    snap = source.snapshot()
    levels = _levels(source)
    ts, eq, pnl, ccy = _history(source)
    return html.Div(
        [
            html.Div(kpis(snap, levels), className="kpis", id="overview-kpis"),
            html.Div(
                [
                    card(graph("equity-graph", equity_pnl(ts, eq, pnl, currency=ccy))),
                    card(html.Div(gauges(snap, levels), id="overview-gauges")),
                    card([html.H4("Alerts"), html.Ul(alerts(snap), id="overview-alerts")]),
                ],
                className="grid",
            ),
            card([html.H4("Positions"),
                  html.Span("PnL, realised (closing trades plus funding minus fees) and funding in the settlement coin; "
                            "greeks in coin, vega per 1 %, theta per day", className="note"),
                  table("overview-positions", analytics.positions_table(snap), POSITION_COLUMNS, page_size=20)]),
        ]
    )


def register(app: Dash, source: DashSource) -> None:
    """Live refresh: KPIs, margin gauges and alerts re-rendered, the equity line extended in place (no full redraw)."""

    @app.callback(
        Output("overview-kpis", "children"),
        Output("overview-gauges", "children"),
        Output("overview-alerts", "children"),
        Output("equity-graph", "extendData"),
        Output("overview-positions", "data"),
        Input("tick", "n_intervals"),
        prevent_initial_call=True,
    )
    def refresh(_: int) -> tuple[Any, Any, Any, Any, Any]:
        snap = source.snapshot()
        extend = None
        if snap is not None and snap.margin:
            equity_usd = sum(m.equity * snap.index_prices.get(f"{c.lower()}_usd", 1.0 if c.startswith("USD") else 0.0) for c, m in snap.margin.items())
            pnl_usd = sum(p.pnl_usd for p in snap.positions)
            x = str(_iso(snap.ts))
            extend = ({"x": [[x], [x]], "y": [[equity_usd], [pnl_usd]]}, [0, 1], 5000)
        levels = _levels(source)
        return kpis(snap, levels), gauges(snap, levels), alerts(snap), extend, analytics.positions_table(snap)


def _iso(ts_ms: int) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(ts_ms / 1000, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
