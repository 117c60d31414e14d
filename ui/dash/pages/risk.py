"""Risk: scenario heatmap (spot × vol, with a time slider), greeks by strike and expiry, payoff, what-if trades.

Hypothetical trades added here live only in the page (a ``dcc.Store``); no order is ever sent.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
from dash import Dash, Input, Output, State, dcc, html

from app import analytics
from app.domain import OrderRequest, OrderType, Side
from app.errors import DeskError
from ui.dash.figures.risk import exposure_by, payoff, scenario_heatmap
from ui.dash.source import DashSource
from ui.dash.widgets import card, graph

NAME = "risk"
PATH = "/risk"
TITLE = "Risk"


def _requests(trades: list[dict[str, Any]]) -> list[OrderRequest]:
    return [OrderRequest(t["instrument"], Side(t["side"]), Decimal(str(t["amount"])), None, OrderType.MARKET, reason="what-if") for t in trades]


def figures(source: DashSource, underlying: str | None, days: float, trades: list[dict[str, Any]]) -> dict[str, Any]:
    """All risk figures for an underlying, ``days`` forward, with hypothetical ``trades`` added."""
    snap = source.snapshot()
    extra = _requests(trades)
    grid = analytics.scenario_grid(snap, underlying, days=days, extra=extra) if (snap is not None and underlying) else None
    expo = analytics.exposures(snap, underlying, extra=extra) if (snap is not None and underlying) else None
    pay = analytics.payoff(snap, underlying, extra=extra) if (snap is not None and underlying) else None
    out: dict[str, Any] = {}
    if grid is None:
        out["heat"] = scenario_heatmap(analytics.DEFAULT_SPOT_MOVES, analytics.DEFAULT_VOL_MOVES, np.zeros((0, 0)))
    else:
        out["heat"] = scenario_heatmap(grid.spot_moves, grid.vol_moves, grid.pnl, currency=grid.currency,
                                       title=f"{underlying} scenario PnL ({grid.currency}), {days:g} days forward")
    if expo is None:
        out["strike"] = exposure_by([], {}, title="Greeks by strike", xlabel="strike")
        out["expiry"] = exposure_by([], {}, title="Greeks by expiry", xlabel="expiry")
    else:
        out["strike"] = exposure_by(expo.strike_keys, expo.by_strike, title="Greeks by strike (coin)", xlabel="strike")
        out["expiry"] = exposure_by(expo.expiry_keys, expo.by_expiry, title="Greeks by expiry (coin)", xlabel="expiry")
    if pay is None:
        out["payoff"] = payoff(np.zeros(0), np.zeros(0), np.zeros(0), spot=0.0)
    else:
        out["payoff"] = payoff(pay.spots, pay.at_expiry, pay.today, spot=pay.spot, currency=pay.currency)
    return out


def layout(source: DashSource) -> html.Div:
    """The risk page."""
    snap = source.snapshot()
    unds = sorted(snap.chains) if snap is not None else []
    first = unds[0] if unds else None
    instruments = [n for n in (snap.instruments if snap is not None else ()) if first and n.startswith(first + "-")]
    figs = figures(source, first, 0.0, [])
    return html.Div(
        [
            dcc.Store(id="whatif-trades", data=[]),
            html.Div(
                [
                    html.Label("underlying"), dcc.Dropdown(unds, first, id="risk-underlying", clearable=False, style={"width": "10rem", "color": "#111"}),
                    html.Label("days forward"), html.Div(dcc.Slider(0, 30, 1, value=0, id="risk-days", marks={0: "0", 7: "7", 14: "14", 30: "30"}), style={"width": "18rem"}),
                ],
                className="controls",
            ),
            html.Div(
                [
                    html.Label("what-if"), dcc.Dropdown(instruments, instruments[0] if instruments else None, id="whatif-instrument", style={"width": "18rem", "color": "#111"}),
                    dcc.RadioItems(["buy", "sell"], "buy", id="whatif-side", inline=True),
                    dcc.Input(id="whatif-amount", type="number", value=1, min=0, step=0.1, style={"width": "6rem"}),
                    html.Button("add trade", id="whatif-add", n_clicks=0), html.Button("clear", id="whatif-clear", n_clicks=0),
                    html.Span("no hypothetical trades", id="whatif-list", className="note"),
                ],
                className="controls",
            ),
            html.Div(
                [card(graph("risk-heatmap", figs["heat"])), card(graph("risk-payoff", figs["payoff"])),
                 card(graph("risk-by-strike", figs["strike"])), card(graph("risk-by-expiry", figs["expiry"])),
                 card([html.H4("Margin after the what-if trades"), html.Div("add hypothetical trades above: nothing is sent", id="whatif-margin", className="note")])],
                className="grid",
            ),
        ]
    )


def register(app: Dash, source: DashSource) -> None:
    """What-if trades, underlying and time slider drive all figures; margin after the trades from the Desk."""

    @app.callback(
        Output("whatif-trades", "data"),
        Output("whatif-list", "children"),
        Input("whatif-add", "n_clicks"),
        Input("whatif-clear", "n_clicks"),
        State("whatif-instrument", "value"),
        State("whatif-side", "value"),
        State("whatif-amount", "value"),
        State("whatif-trades", "data"),
        prevent_initial_call=True,
    )
    def edit(add: int, clear: int, instrument: str | None, side: str, amount: float | None, trades: list[dict[str, Any]]) -> tuple[Any, str]:
        from dash import ctx

        trades = list(trades or [])
        if ctx.triggered_id == "whatif-clear":
            trades = []
        elif instrument and amount:
            try:
                Decimal(str(amount))
                trades.append({"instrument": instrument, "side": side, "amount": float(amount)})
            except InvalidOperation:
                pass
        text = ", ".join(f"{t['side']} {t['amount']:g} {t['instrument']}" for t in trades) or "no hypothetical trades"
        return trades, text

    @app.callback(
        Output("risk-heatmap", "figure"),
        Output("risk-payoff", "figure"),
        Output("risk-by-strike", "figure"),
        Output("risk-by-expiry", "figure"),
        Output("whatif-margin", "children"),
        Input("risk-underlying", "value"),
        Input("risk-days", "value"),
        Input("whatif-trades", "data"),
        prevent_initial_call=True,
    )
    def redraw(underlying: str | None, days: float | None, trades: list[dict[str, Any]]) -> tuple[Any, ...]:
        figs = figures(source, underlying, float(days or 0.0), trades or [])
        margin_text = ""
        if trades:
            try:
                reports = source.what_if(_requests(trades))
                margin_text = "; ".join(f"{c}: IM {r.initial_margin:.4f}, MM {r.maintenance_margin:.4f}, available {r.available_funds:.4f}" for c, r in sorted(reports.items()))
            except DeskError as exc:
                margin_text = f"what-if refused: {exc}"
        return figs["heat"], figs["payoff"], figs["strike"], figs["expiry"], margin_text
