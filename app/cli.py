"""The ``desk`` command.

    desk --help
    desk tui                       # the trader's terminal on the simulated market
    desk dash                      # the analyst's dashboard on http://127.0.0.1:8050
    desk run --venue sim --json    # headless desk with strategies
    desk backtest --json           # the default hedger on the default book
    desk db upgrade|current|prune
    desk hedge activate|pause|kill RUN
    desk margin what-if FILE
    desk serve                     # the embedded venue over Deribit's API

Heavy libraries are imported inside the commands so ``desk --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from app import __version__
from app.errors import DeskError, NotBuilt, NotFound

app = typer.Typer(
    name="desk",
    help="deltadesk: a trading desk for crypto derivatives (TUI, dashboard, headless hedging).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The store: migrations, status, retention.", no_args_is_help=True)
hedge_app = typer.Typer(help="Control strategy runs: activate, pause, kill.", no_args_is_help=True)
margin_app = typer.Typer(help="Margin questions answered by the embedded margin engine.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(hedge_app, name="hedge")
app.add_typer(margin_app, name="margin")

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="desk.toml to read (default: user config dir).")]
def _db_value(value: Optional[str]) -> Optional[Path | str]:
    """``--db`` as a Path for a file, or unchanged for a database URL (a Path would collapse its ``//``)."""
    if value is None:
        return None
    return value if "://" in value else Path(value)


DbOpt = Annotated[
    Optional[str],
    typer.Option("--db", help="SQLite file or database URL of the store (default: user data dir).", callback=_db_value),
]


def fail(exc: DeskError) -> None:
    """Print a desk error and exit with status 2 (1 for not-built parts is reserved by typer)."""
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    raise typer.Exit(3 if isinstance(exc, NotBuilt) else 2)


def strict_json(value: object) -> object:
    """``value`` with non-finite floats as null, so ``--json`` output is strict JSON (an unbounded margin usage,
    when the margin balance is zero or below, has no JSON number)."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def not_built(what: str, issue: str) -> None:
    """Say that a part is not built yet and exit non-zero."""
    fail(NotBuilt(f"{what} is not built yet ({issue})"))


@app.command()
def version() -> None:
    """Print the deltadesk version."""
    typer.echo(f"deltadesk {__version__}")


@app.command()
def tui(
    config: ConfigOpt = None,
    db: DbOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated market.")] = 7,
    speed: Annotated[Optional[float], typer.Option(help="Simulated seconds per wall second (default: sim.speed of the config).")] = None,
    venue: Annotated[str, typer.Option(help="sim, replay, or a configured [venues.NAME] to trade there.")] = "sim",
    day: Annotated[Optional[str], typer.Option(help="Replay: the UTC day to replay (default 2020-03-12).")] = None,
) -> None:
    """Open the trader's terminal (option chain, positions, margin, ticket, hedger)."""
    try:
        from functools import partial

        from app.config import load_settings
        from app.terminal import (
            StoredDesk,
            add_default_hedger,
            ccxt_venue,
            close_session,
            open_replay_desk,
            open_sim_desk,
        )
        from ui.tui.app import DeskTui

        settings = load_settings(config)
        if db is not None:
            terminal = DeskTui(StoredDesk.open(db), settings=settings)
        elif venue == "replay":
            from connectors.replay import DEFAULT_DAY

            day = day or DEFAULT_DAY
            terminal = DeskTui(partial(open_replay_desk, settings, day=day, seed=seed, speed=speed), settings=settings,
                               new_hedger=add_default_hedger, start_hedger=True, starting=f"loading {day}…")
        elif venue != "sim":
            from app.venue_desk import VenueDesk

            connector = ccxt_venue(settings, venue)  # a missing section or key is refused before the screen opens
            terminal = DeskTui(partial(VenueDesk, connector, settings), settings=settings, new_hedger=add_default_hedger,
                               start_hedger=True, starting=f"connecting to {venue}…")
        else:
            # The market is built off the event loop once the screen is up (start-up time).
            terminal = DeskTui(partial(open_sim_desk, settings, seed=seed, speed=speed), settings=settings,
                               new_hedger=add_default_hedger, start_hedger=True)
    except DeskError as exc:
        fail(exc)
        return
    try:
        terminal.run()
    finally:
        close_session(terminal.desk)
    if terminal.return_code:
        raise typer.Exit(terminal.return_code)


@app.command()
def dash(
    config: ConfigOpt = None,
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind; other than loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8050,
    allow_trading: Annotated[bool, typer.Option("--allow-trading", help="Let the page send orders.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the simulated market.")] = 7,
    venue: Annotated[str, typer.Option(help="sim, replay, or a configured [venues.NAME] to follow that account.")] = "sim",
    day: Annotated[Optional[str], typer.Option(help="Replay: the UTC day to replay (default 2020-03-12).")] = None,
) -> None:
    """Serve the analyst's dashboard (live beside a Desk, or on a stored run with --db)."""
    try:
        from app.config import load_settings
        from ui.dash.serve import serve_live, serve_stored

        settings = load_settings(config)
        if db is not None:
            from storage.store import open_store

            if isinstance(db, Path) and not db.exists():
                raise NotFound(f"no store at {db}", code="store.missing")
            serve_stored(open_store(db, read_only=True), host=host, port=port, label=f"stored run {db}", echo=typer.echo)
        else:
            from app.terminal import add_default_hedger, open_replay_desk, open_sim_desk, open_venue_desk

            if venue == "sim":
                desk, label = open_sim_desk(settings, seed=seed), "simulated market"
            elif venue == "replay":
                from connectors.replay import DEFAULT_DAY

                day = day or DEFAULT_DAY
                desk, label = open_replay_desk(settings, day=day, seed=seed), f"replay of {day}"
            else:
                desk, label = open_venue_desk(settings, venue), f"{venue} account"
            serve_live(desk, host=host, port=port, allow_trading=allow_trading, setup=add_default_hedger, echo=typer.echo,
                       label=label)
    except DeskError as exc:
        fail(exc)


@app.command()
def run(
    config: ConfigOpt = None,
    db: DbOpt = None,
    venue: Annotated[str, typer.Option(help="sim, replay, or a configured venue name.")] = "sim",
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second (0 = as fast as possible).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated market.")] = 7,
    duration: Annotated[Optional[str], typer.Option(help="Simulated duration, e.g. 10m, 2h, 1d.")] = None,
    strategy: Annotated[Optional[list[str]], typer.Option(help="Strategy (config section) to run; repeatable.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="JSON log lines and a JSON summary.")] = False,
    day: Annotated[Optional[str], typer.Option(help="Replay: the UTC day to replay (e.g. 2020-03-12).")] = None,
    step_ms: Annotated[Optional[int], typer.Option("--step-ms", help="Simulated ms per market step.")] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Run without a store (nothing persisted).")] = False,
) -> None:
    """Run the desk headless with its strategies until stopped or for --duration."""
    import asyncio

    from app.config import load_settings
    from app.desk import Desk
    from app.headless import build_strategies, open_run_store, parse_duration, run_headless

    try:
        settings = load_settings(config)
        duration_ms = parse_duration(duration)
        store = None if no_store else open_run_store(db)
        replay_cfg = None
        if venue == "replay":
            from connectors.replay import DEFAULT_DAY, ReplayConfig

            # A replayed day at 10-second steps runs in minutes; hourly or 5-minute bars have no finer detail.
            replay_cfg = ReplayConfig(day=day or DEFAULT_DAY, seed=seed, margin_model=settings.margin.model,
                                      step_ms=step_ms or 10_000)
            if duration_ms is None:
                duration_ms = replay_cfg.window()[1] - replay_cfg.window()[0]
        if venue not in ("sim", "replay") and venue in settings.venues:
            # An external venue through ccxt: wall clock, the venue's markets, orders and margin.
            from app.headless import run_venue_headless
            from app.terminal import open_venue_desk

            desk = open_venue_desk(settings, venue, store=store)
            asyncio.run(run_venue_headless(desk, list(strategy or []), settings, duration_ms=duration_ms,
                                           json_lines=json_out))
        else:
            desk = Desk(settings, venue=venue, seed=seed, store=store, speed=speed, replay=replay_cfg, step_ms=step_ms)
            build_strategies(desk, list(strategy or []), settings)
            asyncio.run(run_headless(desk, duration_ms=duration_ms, json_lines=json_out))
        if store is not None:
            store.close()
    except DeskError as exc:
        fail(exc)


@app.command()
def backtest(
    config: ConfigOpt = None,
    db: DbOpt = None,
    data: Annotated[Optional[Path], typer.Option(help="OHLC CSV to replay instead of simulated paths.")] = None,
    start: Annotated[Optional[str], typer.Option("--from", help="Start (ISO date/time, UTC).")] = None,
    end: Annotated[Optional[str], typer.Option("--to", help="End (ISO date/time, UTC).")] = None,
    paths: Annotated[int, typer.Option(help="Number of simulated paths.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the first path.")] = 7,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Ray address for sweeps.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print metrics as one JSON object.")] = False,
    day: Annotated[Optional[str], typer.Option(help="Replay one UTC day of history, e.g. 2020-03-12.")] = None,
    days: Annotated[float, typer.Option(help="Simulated days per path.")] = 1.0,
    step: Annotated[float, typer.Option(help="Simulated seconds per market step.")] = 30.0,
    workers: Annotated[Optional[int], typer.Option(help="Parallel processes for several paths (default: CPUs).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the HTML plots.")] = None,
    sweep: Annotated[Optional[list[str]], typer.Option(help="Sweep a config key: KEY=V1,V2 (repeatable; cartesian product).")] = None,
    png: Annotated[bool, typer.Option("--png/--no-png", help="Also draw the plots as PNG (needs Chrome or Chromium).")] = True,
) -> None:
    """Backtest a hedger config (default: the default hedger on a short ATM straddle) over sims or history."""
    import json

    from app.backtest_desk import backtest_command

    try:
        summary = backtest_command(config=config, db=db, data=data, start=start, end=end, day=day, paths=paths, seed=seed,
                                   days=days, step_s=step, workers=workers, ray=ray, out=out, json_out=json_out, sweep=sweep,
                                   png=png)
    except DeskError as exc:
        fail(exc)
        return
    if json_out:
        typer.echo(json.dumps(strict_json(summary), default=str, allow_nan=False))
        return
    m = summary
    typer.echo(f"{m['book']} over {', '.join(m['paths'][:3])}{' ...' if len(m['paths']) > 3 else ''}")
    typer.echo(f"hedges {m['hedges']:g}  hedge cost {m['hedge_cost']:,.2f} USD  PnL {m['pnl']:,.2f} USD  "
               f"hedging error std {m['hedging_error_std']:,.2f} / worst {m['hedging_error_worst']:,.2f} USD")
    typer.echo(f"max |delta| {m['max_abs_delta']:.4f}  time outside band {m['time_outside_band']:.1%}  "
               f"max MM usage {m['max_margin_usage']:.1%}  liquidations {m['liquidations']}")
    typer.echo("attribution (USD): " + ", ".join(f"{k} {v:+,.2f}" for k, v in m["pnl_attribution"].items()))
    for row in m.get("sweep", []):
        typer.echo(f"  {row['settings']}: hedges {row['hedges']:g}  cost {row['hedge_cost']:,.2f}  "
                   f"error std {row['hedging_error_std']:,.2f}  PnL {row['pnl']:,.2f} USD")
    typer.echo(f"stored as {m['backtest_id']}; plots: {', '.join(m['report_files'])}")


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8765,
    seed: Annotated[int, typer.Option(help="Seed of the simulated market.")] = 7,
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second.")] = 1.0,
) -> None:
    """Serve the embedded venue over Deribit's JSON-RPC API (HTTP and websocket)."""
    import asyncio

    from app.config import load_settings
    from app.desk import Desk
    from connectors.base import Credentials
    from connectors.deribit_api.auth import generate_credentials
    from connectors.deribit_api.desk_backend import serve_desk

    try:
        settings = load_settings(config)
        creds = Credentials.from_env("DESK_SERVE", keyring_service=None)
        generated = creds is None
        creds = creds or generate_credentials()
        desk = Desk(settings, venue="sim", seed=seed, speed=speed)
    except DeskError as exc:
        fail(exc)
        return
    if generated:  # shown once; set DESK_SERVE_KEY / DESK_SERVE_SECRET to choose them
        typer.echo(f"client_id:     {creds.key}\nclient_secret: {creds.secret}")

    def ready(server: object) -> None:
        typer.echo(f"Deribit API v2 on http://{host}:{port}/api/v2 and ws://{host}:{port}/ws/api/v2 (Ctrl-C stops)")

    try:
        asyncio.run(serve_desk(desk, creds, host=host, port=port, ready=ready))
    except OSError as exc:
        fail(DeskError(f"cannot serve on {host}:{port}: {exc}", code="serve.bind"))


def _store_target(db: Optional[Path], config: Optional[Path]) -> tuple[str, object]:
    """The store's URL (``--db``, else ``[store] url``, else $DESK_DB_URL or the default file) and the settings."""
    import os

    from app.config import default_db_path, load_settings
    from storage.engine import resolve_url

    settings = load_settings(config)
    target = db or settings.store.url or os.environ.get("DESK_DB_URL") or default_db_path()
    return resolve_url(target), settings


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = None, config: ConfigOpt = None) -> None:
    """Migrate the store to the newest schema (creates the database when it does not exist)."""
    from storage.migrate import upgrade_database

    try:
        url, _ = _store_target(db, config)
        before, after = upgrade_database(url)
    except DeskError as exc:
        fail(exc)
        return
    if before == after:
        typer.echo(f"store already at revision {after} (head)")
    else:
        typer.echo(f"store upgraded from {before or 'empty'} to {after} (head)")


@db_app.command("current")
def db_current(db: DbOpt = None, config: ConfigOpt = None) -> None:
    """Print the store's schema revision (read-only; exit 2 if the schema is newer than this code)."""
    from storage.migrate import database_status

    try:
        url, _ = _store_target(db, config)
        status = database_status(url)
    except DeskError as exc:
        fail(exc)
        return
    note = {"current": "(head)", "behind": f"(behind head {status['head']}; run desk db upgrade)",
            "empty": "(empty; run desk db upgrade)"}[str(status["state"])]
    typer.echo(f"{status['revision'] or 'none'} {note}")


@db_app.command("prune")
def db_prune(
    db: DbOpt = None,
    config: ConfigOpt = None,
    vacuum: Annotated[bool, typer.Option("--vacuum", help="Also give the freed space back to the disk.")] = False,
    thin_after_days: Annotated[
        Optional[float], typer.Option(help="Keep one snapshot per --thin-interval-s for snapshots older than this.")
    ] = None,
    thin_interval_s: Annotated[int, typer.Option(help="Interval of the thinned snapshots, seconds.")] = 60,
) -> None:
    """Delete snapshots and market data older than the retention settings ([store] *_retention_days)."""
    from storage.store import open_store

    try:
        url, settings = _store_target(db, config)
        store_settings = settings.store  # type: ignore[attr-defined]
        with open_store(url) as store:
            deleted = store.prune(
                snapshot_retention_days=store_settings.snapshot_retention_days,
                market_data_retention_days=store_settings.market_data_retention_days,
                vacuum=vacuum,
                thin_after_days=thin_after_days,
                thin_interval_s=thin_interval_s,
            )
            size = store.size_bytes()
    except DeskError as exc:
        fail(exc)
        return
    rows = ", ".join(f"{name} {n}" for name, n in deleted.items())
    typer.echo(f"pruned: {rows} rows; store now {size / 1e6:.1f} MB")


@hedge_app.command("activate")
def hedge_activate(run_id: str, db: DbOpt = None, config: ConfigOpt = None) -> None:
    """Let a strategy run send orders (it starts in dry-run)."""
    _hedge_mode(run_id, db, config, "active")


@hedge_app.command("pause")
def hedge_pause(run_id: str, db: DbOpt = None, config: ConfigOpt = None) -> None:
    """Pause a strategy run (decisions logged, no orders)."""
    _hedge_mode(run_id, db, config, "paused")


@hedge_app.command("kill")
def hedge_kill(run_id: str, db: DbOpt = None, config: ConfigOpt = None) -> None:
    """Kill a strategy run: cancel its orders; it stays killed across restarts."""
    _hedge_mode(run_id, db, config, "killed")


def _store_url(db: Optional[Path], config: Optional[Path]) -> Optional[str | Path]:
    """The store to open: --db, else [store] url of the config, else the default."""
    if db is not None:
        return db
    if config is not None:
        from app.config import load_settings

        return load_settings(config).store.url
    return None


def _hedge_mode(run_id: str, db: Optional[Path], config: Optional[Path], mode: str) -> None:
    """Set a run's mode in the store; the running runner follows it at its next tick (kill cancels its orders)."""
    try:
        from storage.store import open_store
        from strategies.runner import set_run_mode

        store = open_store(_store_url(db, config))
        try:
            prev = set_run_mode(store, run_id, mode)
        finally:
            store.close()
    except DeskError as exc:
        fail(exc)
        return
    after = {"active": "it sends orders from its next tick", "paused": "its orders are cancelled, decisions still logged",
             "killed": "its orders are cancelled and it stops; it stays killed across restarts"}[mode]
    typer.echo(f"run {run_id}: {prev} -> {mode} ({after})")


@margin_app.command("what-if")
def margin_what_if(
    file: Path,
    model: Annotated[Optional[str], typer.Option(help="sm or pm (default: the file's model).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Margin of a hypothetical portfolio described in a JSON file (sizes in base coin, option IV in %)."""
    import json

    from app.engine.whatif_file import evaluate_whatif, load_whatif

    if model is not None and model not in ("sm", "pm"):
        fail(DeskError(f"--model must be sm or pm, got {model!r}", code="margin.model"))
    try:
        result = evaluate_whatif(load_whatif(file), model)
    except DeskError as exc:
        fail(exc)
        return
    if json_out:
        typer.echo(json.dumps(strict_json(result), indent=2, sort_keys=True, allow_nan=False))
        return
    _print_margin_table(result)


def _print_margin_table(result: dict) -> None:
    """A what-if result as rich tables: the margin figures, then (PM) the worst scenario and vectors."""
    from rich.console import Console
    from rich.table import Table

    ccy = result["currency"]
    console = Console()
    table = Table(title=f"what-if margin ({result['model'].upper()}, {ccy})")
    table.add_column("figure")
    table.add_column(ccy, justify="right")
    rows = ["balance", "margin_balance", "initial_margin", "maintenance_margin", "available_funds", "open_orders_margin",
            "risk_matrix_margin", "mmp_margin"]
    for key in rows:
        if key in result:
            table.add_row(key.replace("_", " "), f"{result[key]:.10f}")
    if result.get("mm_usage") is not None:
        table.add_row("MM usage", f"{result['mm_usage']:.2%}")
    details = result.get("risk_matrix_margin_details")
    if details:
        for key in ("worst_case", "delta_shock", "roll_shock"):
            table.add_row(key.replace("_", " "), f"{details[key]:.10f}")
        wb = details["worst_case_bucket"]
        if wb:
            table.add_row("worst bucket", f"{wb['source']} #{wb['bucket']} ({wb['side']}, index {wb['index']})")
    console.print(table)
    for key, vec in (result.get("aggregated_risk_vectors") or {}).items():
        console.print(f"{key} standard: " + " ".join(f"{v:+.6f}" for v in vec["standard"]))
        console.print(f"{key} extended: " + " ".join(f"{v:+.6f}" for v in vec["extended"]))
    for name, per in (result.get("positions") or {}).items():
        console.print(f"{name}: IM {per['initial_margin']:.10f}  MM {per['maintenance_margin']:.10f}")


@margin_app.command("check")
def margin_check(
    config: ConfigOpt = None,
    venue: Annotated[str, typer.Option(help="Configured venue.")] = "deribit",
    json_out: Annotated[bool, typer.Option("--json", help="Print the drift as JSON.")] = False,
) -> None:
    """Compare a venue's reported IM/MM with the embedded engine's for the same positions."""
    import asyncio
    import json

    from app.config import load_settings
    from app.terminal import ccxt_venue
    from connectors.margin_check import check_venue

    try:
        settings = load_settings(config)
        connector = ccxt_venue(settings, venue)
        rows = asyncio.run(check_venue(connector))
    except DeskError as exc:
        fail(exc)
        return
    if json_out:
        typer.echo(json.dumps([r.as_dict() for r in rows]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"margin drift: {venue} vs embedded engine (local - venue)")
    for col in ("currency", "model", "positions", "venue IM", "local IM", "IM drift", "venue MM", "local MM", "MM drift"):
        table.add_column(col, justify="right")
    for r in rows:
        pct = "" if r.im_drift_pct is None else f" ({r.im_drift_pct:+.2%})"
        mpct = "" if r.mm_drift_pct is None else f" ({r.mm_drift_pct:+.2%})"
        table.add_row(r.currency, r.model, str(r.positions), f"{r.venue_im:.6f}", f"{r.local_im:.6f}",
                      f"{r.im_drift:+.6f}{pct}", f"{r.venue_mm:.6f}", f"{r.local_mm:.6f}", f"{r.mm_drift:+.6f}{mpct}")
    Console().print(table)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
