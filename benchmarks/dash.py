"""Dashboard speed on the simulated market: first page load and the scenario heatmap of a 200-position book.

    python -m benchmarks dash [--json FILE] [--repeats N]

- first page load: the server-side work of the first request (the app's layout, the routing callback that
  builds the Overview, and the Volatility page with its surface fit), measured through Flask's test client —
  the browser's own rendering is not included;
- scenario heatmap: ``app.analytics.scenario_grid`` (9 spot moves × 7 vol shifts) for a 200-position book of
  options and futures, plus the plotly figure built from it.

Targets (issue 11): first page load under 1 s; the heatmap for a 200-position book under 300 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from typing import Any

import numpy as np

from app import analytics
from app.desk import Desk
from app.domain import GreeksView, PositionView
from connectors.sim.venue import SimConfig
from ui.dash.app import create_app
from ui.dash.figures.risk import scenario_heatmap
from ui.dash.source import LiveSource


def _timed(fn: Any, repeats: int) -> tuple[float, float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out), min(out)


def _book_of(snap: Any, n: int) -> Any:
    """A snapshot holding ``n`` positions spread over the BTC chain and the perpetual."""
    rows = [r for sl in snap.chains["BTC"] for r in sl.rows]
    rng = np.random.default_rng(3)
    picks = rng.choice(len(rows), size=min(n - 1, len(rows)), replace=False)
    positions = [PositionView(rows[i].instrument, float(rng.choice([-2, -1, 1, 2])), rows[i].mark, rows[i].mark, 0.0, 0.0,
                              GreeksView()) for i in picks]
    positions.append(PositionView("BTC-PERPETUAL", 50_000.0, 60_000.0, 60_000.0, 0.0, 0.0, GreeksView()))
    return replace(snap, positions=tuple(positions))


def main(argv: list[str]) -> int:
    """Run the dashboard benchmark; print a table and optionally write JSON records."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks dash")
    ap.add_argument("--json", dest="json_path")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    desk = Desk(seed=7, sim=SimConfig(seed=7))
    desk.advance(5_000)
    source = LiveSource(desk)
    source.publish()
    records = []

    def first_load() -> None:
        app = create_app(source)
        client = app.server.test_client()
        assert client.get("/").status_code == 200
        assert client.get("/_dash-layout").status_code == 200
        for path in ("/", "/volatility"):
            body = {"output": "page.children", "outputs": {"id": "page", "property": "children"},
                    "inputs": [{"id": "url", "property": "pathname", "value": path}], "changedPropIds": ["url.pathname"]}
            assert client.post("/_dash-update-component", json=body).status_code == 200

    med, best = _timed(first_load, args.repeats)
    records.append({"case": "first_page_load", "seconds": med, "best": best, "target_s": 1.0, "instruments": len(desk.instruments())})

    snap = _book_of(source.snapshot(), 200)
    n_pos = len(snap.positions)

    def heatmap() -> None:
        grid = analytics.scenario_grid(snap, "BTC")
        scenario_heatmap(grid.spot_moves, grid.vol_moves, grid.pnl, currency=grid.currency)

    med, best = _timed(heatmap, args.repeats)
    records.append({"case": "heatmap_200", "seconds": med, "best": best, "target_s": 0.3, "positions": n_pos})

    print(f"{'case':<18}{'median s':>10}{'best s':>10}{'target s':>10}")
    for r in records:
        print(f"{r['case']:<18}{r['seconds']:>10.4f}{r['best']:>10.4f}{r['target_s']:>10.2f}")
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump(records, fh, indent=1)
    return 0
