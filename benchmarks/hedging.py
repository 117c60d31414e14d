"""Hedging benchmark: cost vs hedging-error frontier of fixed, time-based and Whalley–Wilmott bands; throughput.

    python -m benchmarks hedging                 # a small run: 4 paths x 0.25 simulated days per setting
    python -m benchmarks hedging --paths 500     # the issue's 500 seeded paths (hours on a laptop; use --workers)
    python -m benchmarks hedging --json out.json --html out/

Every setting hedges the same default book (short ATM straddle of the nearest monthly, 1 BTC per leg) on the same
seeded simulated paths (common random numbers), through the Desk, the matching engine and the margin engine.
Hedging error = std across paths of the final PnL of the hedged book (USD, options at theoretical marks); "ex-vega"
is the same without the vega term of the PnL attribution (the simulated vol moves, which no delta hedge removes); cost =
mean fees plus slippage of the hedge fills per path (USD). A setting dominates another when it is no worse on
both and better on one; "WW dominates" compares, at each Whalley–Wilmott point's error, the cost of the other
rules' frontiers interpolated there.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

SETTINGS: list[tuple[str, str, dict[str, Any]]] = [
    *[("fixed", f"±{b:g}", {"band": {"rule": "fixed", "upper": b, "lower": b}}) for b in (0.025, 0.05, 0.1, 0.2, 0.4)],
    *[("time", f"{h:g}h", {"band": {"rule": "time", "upper": 0.5, "lower": 0.5, "inner_upper": 0.02, "inner_lower": 0.02,
                                    "interval_s": h * 3600}}) for h in (0.25, 1.0, 4.0)],
    *[("whalley_wilmott", f"γ={g:g}", {"band": {"rule": "whalley_wilmott", "risk_aversion": g}}) for g in (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)],
]


COST_TIE_USD = 0.005
"""Costs closer than half a cent (USD per path) compare as the same."""


def _config(extra: dict[str, Any]) -> dict[str, Any]:
    return {"active": True, "check_interval_s": 60.0, "execution": {"style": "market", "max_slippage_bps": 100}, **extra}


def frontier_points(results: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One point per setting: rule, label, cost (mean USD per path), error (std of final PnL), worst, hedges."""
    from strategies.backtest import aggregate

    pts = []
    for (rule, label, _), res in zip(SETTINGS, results):
        agg = aggregate(res)
        # The same error without the vega term: what delta hedging can act on (vol moves it cannot hedge).
        ex_vega = np.array([r["metrics"]["pnl"] - r["metrics"]["pnl_attribution"]["vega"] for r in res])
        costs = np.array([r["metrics"]["hedge_cost"] for r in res])
        n = len(res)
        # Standard error of a mean: std/sqrt(n).
        pts.append({"rule": rule, "label": label, "cost": agg["hedge_cost"], "error": agg["hedging_error_std"],
                    "cost_se": float(np.std(costs, ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
                    "error_se": std_se(agg["hedging_error_std"], n),
                    "error_ex_vega": float(np.std(ex_vega)),
                    "error_ex_vega_se": std_se(float(np.std(ex_vega)), n),
                    "worst": agg["hedging_error_worst"], "hedges": agg["hedges"], "time_outside_band": agg["time_outside_band"]})
    return pts


def std_se(std: float, n: int) -> float:
    """Standard error of a standard deviation ``std`` of ``n`` normal samples, std/sqrt(2(n-1)) (same unit)."""
    return std / np.sqrt(2 * (n - 1)) if n > 1 else float("nan")


def _per_path(results: list[list[dict[str, Any]]]) -> list[dict[str, list[float]]]:
    """Per setting, each path's final PnL, its vega term, hedge cost and hedge count (USD; to redo the analysis)."""
    keys = ("pnl", "hedge_cost", "hedges")
    return [{**{k: [r["metrics"][k] for r in res] for k in keys},
             "vega": [r["metrics"]["pnl_attribution"]["vega"] for r in res]} for res in results]


def dominance(points: list[dict[str, Any]], key: str = "error") -> dict[str, Any]:
    """For each WW point, the other rules' cost at the same error ``key`` (interpolated along their lower frontier)."""
    out: dict[str, Any] = {"error": key, "comparisons": []}
    for other in ("fixed", "time"):
        pts = sorted((p for p in points if p["rule"] == other), key=lambda p: p[key])
        # The lower frontier: along increasing error, keep only points cheaper than every point of lower error.
        front = []
        for p in pts:
            if not front or p["cost"] < front[-1]["cost"]:
                front.append(p)
        errs = np.array([p[key] for p in front])
        costs = np.array([p["cost"] for p in front])
        for w in (p for p in points if p["rule"] == "whalley_wilmott"):
            if len(errs) < 2 or not (errs[0] <= w[key] <= errs[-1]):
                continue
            c = float(np.interp(w[key], errs, costs))
            # Two settings that never hedged both cost 0: that is a tie, not a loss for WW.
            outcome = "cheaper" if w["cost"] < c - COST_TIE_USD else "dearer" if w["cost"] > c + COST_TIE_USD else "same"
            out["comparisons"].append({"ww": w["label"], "vs": other, "error": w[key], "ww_cost": w["cost"], "other_cost": c,
                                       "ww_cheaper": outcome == "cheaper", "outcome": outcome})
    comps = out["comparisons"]
    out["ww_cheaper_share"] = float(np.mean([c["ww_cheaper"] for c in comps])) if comps else float("nan")
    dominated = []
    for p in points:
        for q in points:
            if q is not p and q["cost"] <= p["cost"] and q[key] <= p[key] and (q["cost"] < p["cost"] or q[key] < p[key]):
                dominated.append(p["rule"] + " " + p["label"])
                break
    out["dominated"] = dominated
    return out


def main(argv: list[str]) -> int:
    """Run the frontier and throughput benchmark; print a table; optionally write JSON and the frontier plots."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks hedging", description=__doc__.split("\n")[0])
    ap.add_argument("--paths", type=int, default=4, help="seeded simulated paths per setting (the issue: 500)")
    ap.add_argument("--days", type=float, default=0.25, help="simulated days per path")
    ap.add_argument("--step", type=float, default=60.0, help="simulated seconds per market step")
    ap.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPUs)")
    ap.add_argument("--seed", type=int, default=100, help="seed of the first path")
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    ap.add_argument("--html", type=Path, default=None, help="write the frontier plots (HTML, and PNG with a browser) here")
    ap.add_argument("--from-json", type=Path, default=None, help="report a run saved with --json instead of running")
    args = ap.parse_args(argv)

    if args.from_json is not None:
        run = json.loads(args.from_json.read_text())
    else:
        run = _run(args)
        if args.json:
            args.json.write_text(json.dumps(run, indent=1))
    pts = run["points"]
    for p, pp in zip(pts, run["per_path"]):  # runs saved before the ex-vega standard error was kept
        n = len(pp["pnl"])
        p.setdefault("error_ex_vega_se", std_se(p["error_ex_vega"], n))
    _print(pts, [dominance(pts, "error"), dominance(pts, "error_ex_vega")], run)
    if args.html:
        _plots(pts, args.html)
    return 0


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from app.backtest_desk import make_desk
    from strategies.backtest import PathSpec, run_sweep

    paths = [PathSpec(kind="sim", seed=args.seed + i, days=args.days, step_ms=int(args.step * 1000)) for i in range(args.paths)]
    configs = [_config(extra) for _, _, extra in SETTINGS]
    total = len(configs) * len(paths)
    print(f"{len(SETTINGS)} settings x {len(paths)} paths x {args.days:g} simulated days, step {args.step:g}s ({total} backtests)",
          flush=True)
    t0 = time.perf_counter()

    def progress(n: int, tot: int) -> None:
        if n == tot or n % max(1, tot // 10) == 0:
            print(f"  {n}/{tot} backtests, {time.perf_counter() - t0:.0f}s", flush=True)

    results = run_sweep(configs, paths, desk_factory=make_desk, workers=args.workers, progress=progress, sample_ms=600_000)
    wall = time.perf_counter() - t0
    sim_days = sum(r["metrics"]["sim_days"] for res in results for r in res)
    busy = sum(r["metrics"]["wall_s"] for res in results for r in res)
    return {"settings": [s[:2] for s in SETTINGS], "points": frontier_points(results), "sim_days": sim_days, "wall_s": wall,
            "days_per_s": sim_days / wall, "days_per_process_s": sim_days / busy, "paths": args.paths, "days": args.days,
            "step_s": args.step, "per_path": _per_path(results)}


def _print(pts: list[dict[str, Any]], doms: list[dict[str, Any]], run: dict[str, Any]) -> None:
    print(f"\n{run['paths']} paths x {run['days']:g} simulated days per setting; USD; ±se = standard error")
    print(f"{'rule':<16}{'setting':<10}{'cost':>8}{'±se':>6}{'error':>9}{'±se':>6}{'ex-vega':>9}{'±se':>6}{'worst':>10}"
          f"{'hedges':>8}{'outside':>9}")
    for p in pts:
        print(f"{p['rule']:<16}{p['label']:<10}{p['cost']:>8.2f}{p['cost_se']:>6.2f}{p['error']:>9.2f}{p['error_se']:>6.2f}"
              f"{p['error_ex_vega']:>9.2f}{p['error_ex_vega_se']:>6.2f}{p['worst']:>10.2f}{p['hedges']:>8.1f}"
              f"{p['time_outside_band']:>9.1%}")
    for dom in doms:
        print(f"\nWhalley–Wilmott vs the other rules' frontiers at equal hedging error ({dom['error']}):")
        for c in dom["comparisons"]:
            print(f"  WW {c['ww']:<9} error {c['error']:8.2f}: WW cost {c['ww_cost']:8.2f} vs {c['vs']:<5} {c['other_cost']:8.2f} "
                  f"-> WW {c['outcome']}")
        if not dom["comparisons"]:
            print("  (no WW point falls inside the error range of the other frontiers)")
        same = sum(c["outcome"] == "same" for c in dom["comparisons"])
        print(f"  WW cheaper in {dom['ww_cheaper_share']:.0%} of comparisons ({same} at the same cost); "
              f"dominated settings: {', '.join(dom['dominated']) or 'none'}")
    print(f"\nthroughput: {run['sim_days']:.2f} simulated days in {run['wall_s']:.1f}s wall = {run['days_per_s']:.3f} "
          f"simulated days/s ({run['days_per_process_s']:.3f} per busy process-second)")


def _plots(pts: list[dict[str, Any]], out: Path) -> None:
    """The frontier on the total error and on the error without the vega term (what delta hedging acts on)."""
    from strategies.reports import frontier_figure, write_pngs

    out.mkdir(parents=True, exist_ok=True)
    ex_vega = [{**p, "error": p["error_ex_vega"], "error_se": p["error_ex_vega_se"]} for p in pts]
    figs = {"frontier": frontier_figure(pts), "frontier-ex-vega": frontier_figure(ex_vega)}
    figs["frontier-ex-vega"].update_layout(title="Hedge cost vs hedging error without the vega term (lower-left is better)",
                                           yaxis_title="std of final PnL minus its vega term, across paths (USD)")
    for name, fig in figs.items():
        fig.write_html(str(out / f"{name}.html"), include_plotlyjs="directory")
    pngs, why = write_pngs(figs, out, width=1000, height=600)
    print(f"frontier plots in {out}: " + ", ".join(f"{n}.html" for n in figs) + (f", {len(pngs)} PNG" if pngs else f" (no PNG: {why})"))


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
