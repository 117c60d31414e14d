"""Backtest reports: plotly HTML (and PNG when a browser is there) of delta with bands, PnL, cost vs error.

plotly is imported inside the functions, so importing strategies stays light. PNGs are drawn by kaleido, which
drives the machine's Chrome or Chromium (Debian's ``chromium`` will do); without one the report keeps its HTML
and says why it has no PNG.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _times(ts: Sequence[int]) -> list[datetime]:
    return [datetime.fromtimestamp(t / 1000, tz=timezone.utc) for t in ts]


def delta_figure(result: dict[str, Any]) -> Any:
    """Delta of the book over time with the band's lower and upper edges (hedger's delta unit)."""
    import plotly.graph_objects as go

    s = result["series"]
    x = _times(s["ts"])
    unit = result["config"].get("delta_unit", "coin")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=s["upper"], name="band upper", line={"dash": "dot", "color": "#888"}))
    fig.add_trace(go.Scatter(x=x, y=s["lower"], name="band lower", line={"dash": "dot", "color": "#888"}, fill="tonexty",
                             fillcolor="rgba(120,120,120,0.12)"))
    fig.add_trace(go.Scatter(x=x, y=s["delta"], name="delta", line={"color": "#1f77b4"}))
    fig.update_layout(title=f"Delta ({unit}) with bands - {result['label']}", xaxis_title="time (UTC)", yaxis_title=f"delta ({unit})",
                      template="plotly_white")
    return fig


def pnl_figure(result: dict[str, Any]) -> Any:
    """Hedged book PnL vs theoretical value (USD), with the index on a second axis and liquidation starts marked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s = result["series"]
    x = _times(s["ts"])
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=x, y=s["pnl"], name="PnL (USD)", line={"color": "#2ca02c"}), secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=s["spot"], name="index (USD)", line={"color": "#ff7f0e", "width": 1}), secondary_y=True)
    for ev in result.get("liquidation_events", ()):
        # where the venue's liquidator took over the account: the PnL after it is not the hedger's doing
        fig.add_vline(x=_times([ev["ts"]])[0], line={"color": "#d62728", "dash": "dash"})
    if result.get("liquidation_events"):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="liquidation started",
                                 line={"color": "#d62728", "dash": "dash"}), secondary_y=False)
    a = result["metrics"]["pnl_attribution"]
    parts = ", ".join(f"{k} {v:+,.0f}" for k, v in a.items())
    fig.update_layout(title=f"PnL of the hedged book - {result['label']}<br><sup>attribution (USD): {parts}</sup>",
                      template="plotly_white", xaxis_title="time (UTC)",
                      # the legend above the plot: at the right it sat on the index axis' tick labels
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0})
    fig.update_yaxes(title_text="PnL (USD)", secondary_y=False)
    fig.update_yaxes(title_text="index (USD)", tickformat=",.0f", secondary_y=True)
    return fig


def frontier_figure(points: Sequence[dict[str, Any]]) -> Any:
    """Cost vs hedging error, one marker per setting, one colour per rule: ``{"rule", "label", "cost", "error"}``,
    with ``cost_se`` / ``error_se`` drawn as error bars when given (USD)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for rule in sorted({p["rule"] for p in points}):
        pts = sorted((p for p in points if p["rule"] == rule), key=lambda p: p["cost"])
        bars = {}
        if all("cost_se" in p and "error_se" in p for p in pts):
            bars = {"error_x": {"type": "data", "array": [p["cost_se"] for p in pts], "thickness": 1},
                    "error_y": {"type": "data", "array": [p["error_se"] for p in pts], "thickness": 1}}
        fig.add_trace(go.Scatter(x=[p["cost"] for p in pts], y=[p["error"] for p in pts], mode="lines+markers+text", name=rule,
                                 text=[p["label"] for p in pts], textposition="top center", **bars))
    fig.update_layout(title="Hedge cost vs hedging error (lower-left is better)", xaxis_title="hedge cost per path (USD)",
                      yaxis_title="hedging error: std of final PnL across paths (USD)", template="plotly_white")
    return fig


def write_pngs(figs: dict[str, Any], out_dir: Path, *, width: int | None = None,
               height: int | None = None) -> tuple[list[Path], str | None]:
    """Each figure as ``out_dir/NAME.png`` (``width`` x ``height`` px, plotly's defaults if not given) in one browser
    session; the files drawn and, when one is missing, why (None when all were drawn)."""
    try:
        import kaleido  # type: ignore[import-not-found]
        import plotly.io as pio
    except ImportError:
        return [], "kaleido is not installed"
    opts = {"format": "png", "width": width or pio.defaults.default_width, "height": height or pio.defaults.default_height,
            "scale": 1}
    todo = {out_dir / f"{name}.png": fig for name, fig in figs.items()}
    why = ""
    for _ in range(2):  # a figure the browser failed to draw (seen now and then on a loaded machine) gets a retry
        for path in todo:
            path.unlink(missing_ok=True)
        specs = [{"fig": fig.to_dict(), "path": path, "opts": opts} for path, fig in todo.items()]
        try:
            # Called directly, not through plotly.io.write_images, which drops the errors kaleido returns.
            errors = kaleido.write_fig_from_object_sync(specs, cancel_on_error=False)
        except Exception as exc:  # noqa: BLE001 - kaleido raises its own and choreographer's types for a missing browser
            errors = (exc,)
        todo = {path: fig for path, fig in todo.items() if not path.exists()}
        if not todo:
            return [out_dir / f"{name}.png" for name in figs], None
        why = "; ".join(f"{type(e).__name__}: {e}" for e in errors or ()) or "no file written"
        log.info("PNG not drawn (%s): %s", ", ".join(p.name for p in todo), why)
    return [p for p in (out_dir / f"{name}.png" for name in figs) if p.exists()], why


def write_report(result: dict[str, Any], out_dir: Path, frontier: Sequence[dict[str, Any]] | None = None, *,
                 png: bool = True) -> list[Path]:
    """Write the HTML plots of one backtest (and the frontier if given) into ``out_dir``, and PNGs when ``png``
    and a browser allow; the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = {"delta": delta_figure(result), "pnl": pnl_figure(result)}
    if frontier:
        figs["frontier"] = frontier_figure(frontier)
    written = []
    for name, fig in figs.items():
        path = out_dir / f"{name}.html"
        fig.write_html(str(path), include_plotlyjs="directory")  # plotly.min.js once, beside: works offline
        written.append(path)
    if png:
        pngs, why = write_pngs(figs, out_dir)
        if why is not None:
            log.warning("backtest report without PNG: %s", why)
        written += pngs
    return written
