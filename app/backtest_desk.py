"""Composition root of backtests: builds the Desk a backtest path runs on (simulated venue or historical replay).

``strategies.backtest`` may not import the Desk or the connectors; the CLI and the benchmark hand it
:func:`make_desk` (a module-level function, so process pools and Ray can pickle it).

User data (``desk backtest --data FILE.csv``): the documented OHLC layout of ``shared/data`` — a header
``timestamp,open,high,low,close[,volume]``, ISO-8601 UTC open times, one bar per row, hourly or 5-minute bars.
The replay reads it as the path of the book's underlying; the implied-vol level is the trailing 7-day realised
vol of the file (so the file must start a week before ``--from``), or Deribit's DVOL where the shared data has it.
"""

from __future__ import annotations

import csv
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from app.errors import ConfigError, InvalidInput
from app.ports import Store
from strategies.backtest import PathSpec

REQUIRED_COLUMNS = ("timestamp", "open", "high", "low", "close")


def check_ohlc_csv(path: Path) -> int:
    """Validate a user OHLC CSV (header, times, prices); return its bar length in ms (3,600,000 or 300,000)."""
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist", key="--data")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in cols]
        if missing:
            raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}; expected header "
                              "timestamp,open,high,low,close[,volume]", key="--data")
        times: list[int] = []
        for n, row in enumerate(reader, start=2):
            try:
                t = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
                close = float(row["close"])
            except (ValueError, TypeError):
                raise InvalidInput(f"{path}:{n}: bad timestamp or close ({row.get('timestamp')!r}, {row.get('close')!r})",
                                   code="backtest.data_row") from None
            if t.tzinfo is None:
                raise InvalidInput(f"{path}:{n}: timestamp {row['timestamp']!r} has no timezone (use ...Z)", code="backtest.data_row")
            if not close > 0:
                raise InvalidInput(f"{path}:{n}: close {close} is not a positive price", code="backtest.data_row")
            times.append(int(t.timestamp() * 1000))
            if len(times) >= 3:
                break
    if len(times) < 2:
        raise InvalidInput(f"{path}: needs at least two bars", code="backtest.data_rows")
    bar = times[1] - times[0]
    if bar not in (300_000, 3_600_000):
        raise InvalidInput(f"{path}: bars are {bar / 60_000:g} min apart; hourly or 5-minute bars are supported",
                           code="backtest.data_resolution")
    return bar


def _user_data_dir(csv_path: Path, coin: str) -> Path:
    """A folder where the replay finds the user's CSV under the shared-data file name of its resolution."""
    bar = check_ohlc_csv(csv_path)
    folder = Path(tempfile.mkdtemp(prefix="deltadesk-data-"))
    name = f"{coin.lower()}_usdt_binance_spot_1h.csv" if bar == 3_600_000 else f"{coin.lower()}_usdt_binance_spot_5m_user.csv"
    os.symlink(csv_path.resolve(), folder / name)
    return folder


def make_desk(path: PathSpec, store: Store, underlying: str = "BTC") -> Any:
    """The Desk of one backtest path: the simulated venue (seeded) or a replay of history, with ``store``."""
    from app.desk import Desk
    from connectors.replay import ReplayConfig
    from connectors.sim.listing import ListingConfig
    from connectors.sim.market_model import UnderlyingParams
    from connectors.sim.venue import SimConfig

    # A backtest needs the book's monthly and the hedge instruments, not the whole listing: fewer expiries and
    # strikes make each simulated step several times cheaper, with the same makers, engine and margin.
    listing = ListingConfig(dailies=0, weekly_days=0.0, monthly_days=62.0, quarterly_days=120.0, strikes_per_expiry=16)
    if path.kind == "sim":
        sim = SimConfig(seed=path.seed, step_ms=path.step_ms, underlyings=(underlying,),
                        params={underlying: UnderlyingParams.default(underlying)}, listing=listing)
        return Desk(venue="sim", seed=path.seed, store=store, speed=0, sim=sim)
    kwargs: dict[str, Any] = {"seed": path.seed, "step_ms": path.step_ms, "underlyings": (underlying,), "listing": listing}
    if path.data:
        kwargs["data_dir"] = _user_data_dir(Path(path.data), underlying)
    if path.start:
        kwargs.update(day=None, start=path.start, end=path.end)
    else:
        kwargs["day"] = path.day
    return Desk(venue="replay", seed=path.seed, store=store, speed=0, replay=ReplayConfig(**kwargs))


def build_paths(*, data: Path | None, start: str | None, end: str | None, day: str | None, paths: int, seed: int,
                days: float, step_ms: int) -> list[PathSpec]:
    """The paths a `desk backtest` invocation asks for (user CSV, a replay window or stress day, or seeded sims)."""
    if paths < 1:
        raise InvalidInput(f"--paths must be at least 1, got {paths}", code="backtest.paths")
    if data is not None:
        if start is None:
            raise ConfigError("--data needs --from (and optionally --to; default one day)", key="--from")
        check_ohlc_csv(data)
        return [PathSpec(kind="replay", data=str(data), start=start, end=end, seed=seed, step_ms=step_ms)]
    if day is not None or start is not None:
        if day is not None and start is not None:
            raise ConfigError("give either --day or --from/--to, not both", key="--day")
        return [PathSpec(kind="replay", day=day, start=start, end=end, seed=seed, step_ms=step_ms)]
    return [PathSpec(kind="sim", seed=seed + i, days=days, step_ms=step_ms) for i in range(paths)]


def backtest_command(*, config: Path | None, db: Path | str | None, data: Path | None, start: str | None, end: str | None,
                     day: str | None, paths: int, seed: int, days: float, step_s: float, workers: int | None, ray: str | None,
                     out: Path | None, json_out: bool, sweep: list[str] | None = None, save: bool = True,
                     png: bool = True) -> dict[str, Any]:
    """`desk backtest`: run (a sweep of) configs over paths with a progress bar, write plots, store; return the summary.

    The summary's top-level metrics are the first config's (aggregated over paths); ``sweep`` lists every config's.
    """
    import json
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from strategies.backtest import aggregate, default_backtest_config, expand_sweep, run_backtest, run_sweep
    from strategies.hedger_config import load_hedger_config
    from strategies.reports import write_report

    cfg = load_hedger_config(config) if config is not None else default_backtest_config()
    cfg = cfg.model_copy(update={"active": True})  # a backtest trades: there is no dry run to activate
    grid = expand_sweep(cfg, sweep or [])
    specs = build_paths(data=data, start=start, end=end, day=day, paths=paths, seed=seed, days=days, step_ms=int(step_s * 1000))
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]backtest[/] {task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TimeElapsedColumn(), console=console, transient=True, disable=not sys.stderr.isatty()) as bar:
        if len(specs) == 1 and len(grid) == 1 and ray is None:
            task = bar.add_task(specs[0].label, total=1.0)
            runs = [[run_backtest(grid[0][1], specs[0], desk_factory=make_desk, progress=lambda f: bar.update(task, completed=f))]]
        else:
            task = bar.add_task(f"{len(grid)} configs x {len(specs)} paths", total=len(grid) * len(specs))
            runs = run_sweep([c for _, c in grid], specs, desk_factory=make_desk, workers=workers, ray_address=ray,
                             progress=lambda n, _t: bar.update(task, completed=n))
    rows = []
    for (settings, c), results in zip(grid, runs):
        metrics = results[0]["metrics"] if len(results) == 1 else aggregate(results)
        rows.append({"settings": settings, "config": c, "results": results, "metrics": metrics})
    first = rows[0]
    summary: dict[str, Any] = dict(first["metrics"])
    summary["paths"] = [r["label"] for r in first["results"]]
    summary["book"] = first["results"][0]["book"]["description"]
    summary["entry_cost_usd"] = float(sum(r["book"]["entry_cost_usd"] for r in first["results"]) / len(first["results"]))
    ids: list[str | None] = []
    if save:
        from storage.store import open_store

        store = open_store(db)
        try:
            for row in rows:
                m = row["metrics"]
                scalars = {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}
                scalars.update({f"pnl_{k}": float(v) for k, v in m["pnl_attribution"].items()})
                report = {"settings": row["settings"], "metrics": m, "results": row["results"]}
                ids.append(store.save_backtest(row["config"].name, row["config"].to_dict(), scalars,
                                               report=json.loads(json.dumps(report, default=str)),
                                               started_ms=row["results"][0]["start_ms"], finished_ms=row["results"][-1]["end_ms"]))
        finally:
            store.close()
    summary["backtest_id"] = ids[0] if ids else None
    if len(rows) > 1:
        summary["sweep"] = [{"settings": r["settings"], "backtest_id": ids[i] if ids else None,
                             **{k: r["metrics"][k] for k in ("hedges", "hedge_cost", "hedging_error_std", "hedging_error_worst",
                                                             "time_outside_band", "pnl")}} for i, r in enumerate(rows)]
    frontier = None
    if len(rows) > 1:
        frontier = [{"rule": str(r["config"].band.rule), "label": ",".join(f"{k}={v}" for k, v in r["settings"].items()),
                     "cost": r["metrics"]["hedge_cost"], "error": r["metrics"]["hedging_error_std"]} for r in rows]
    out_dir = out or (Path(tempfile.gettempdir()) / "deltadesk-backtests" / (summary["backtest_id"] or f"seed{seed}"))
    summary["report_files"] = [str(p) for p in write_report(first["results"][0], out_dir, frontier=frontier, png=png)]
    return summary
