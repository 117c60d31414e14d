"""Small reusable pieces of dashboard layout (KPI tiles, cards, tables)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from dash import dash_table, dcc, html


def kpi(label: str, value: str, *, id: str | None = None, cls: str = "") -> html.Div:
    """A labelled number tile."""
    attrs: dict[str, Any] = {"className": f"kpi {cls}".strip()}
    if id:
        attrs["id"] = id
    return html.Div([html.Div(label, className="label"), html.Div(value, className="value")], **attrs)


def card(children: Any, className: str = "card", **kwargs: Any) -> html.Div:
    """A bordered panel (``className="card wide"`` spans the whole row)."""
    return html.Div(children, className=className, **kwargs)


def graph(id: str, figure: Any, height: int | None = None) -> dcc.Graph:
    """A plotly graph without the mode bar clutter."""
    extra: dict[str, Any] = {"style": {"height": f"{height}px"}} if height else {}
    return dcc.Graph(id=id, figure=figure, config={"displaylogo": False, "responsive": True}, **extra)


def table(id: str, rows: Sequence[dict[str, Any]], columns: Sequence[str], *, page_size: int = 25, sortable: bool = True, filterable: bool = False) -> dash_table.DataTable:
    """A dark DataTable over ``rows``; sort and filter run in the browser."""
    return dash_table.DataTable(
        id=id,
        data=list(rows),
        columns=[{"name": c, "id": c} for c in columns],
        sort_action="native" if sortable else "none",
        filter_action="native" if filterable else "none",
        page_size=page_size,
        style_table={"overflowX": "auto"},
        style_header={"backgroundColor": "#242a31", "color": "#e0e0e0", "fontWeight": "600"},
        style_cell={"backgroundColor": "#1b1f24", "color": "#e0e0e0", "border": "1px solid #2c3138", "fontFamily": "monospace", "fontSize": "12px"},
        style_filter={"backgroundColor": "#242a31", "color": "#e0e0e0"},
    )


MISSING = "—"
"""What an unknown figure shows (a stored run that did not keep it), as in the terminal."""


def _missing(value: float | None) -> bool:
    return value is None or value != value


def fmt(value: float | None, digits: int = 4, pct: bool = False) -> str:
    """A number for display (``pct``: a fraction shown in percent); ``—`` for missing or unknown (NaN)."""
    if _missing(value):
        return MISSING
    return f"{value * 100:.{max(0, digits - 2)}f}%" if pct else f"{value:,.{digits}f}"  # type: ignore[operator]


def fmt_spec(value: float | None, spec: str) -> str:
    """``value`` formatted with a format ``spec`` (``"+.4f"``, ``".2e"``); ``—`` for missing or unknown (NaN)."""
    return MISSING if _missing(value) else format(value, spec)


def thin(cols: dict[str, Any], max_points: int = 4000) -> dict[str, Any]:
    """Every k-th row of a column set (keeping the last), so a week of 1 s history plots as a few thousand points."""
    n = len(cols.get("ts", ()))
    if n <= max_points:
        return cols
    idx = np.unique(np.append(np.arange(0, n, int(np.ceil(n / max_points))), n - 1))
    return {k: np.asarray(v)[idx] for k, v in cols.items()}
