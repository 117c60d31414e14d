"""``desk run``: headless runs with JSON logs, a summary, a store the dashboard reads, clean stops on signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.errors import InvalidInput
from app.headless import parse_duration

runner = CliRunner()


def _run(args: list[str]) -> list[dict]:
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]


def test_two_runs_with_the_same_seed_have_the_same_fills(tmp_path: Path) -> None:
    a = _run(["--venue", "sim", "--duration", "1m", "--speed", "0", "--seed", "7", "--db", str(tmp_path / "a.db"), "--json"])
    b = _run(["--venue", "sim", "--duration", "1m", "--speed", "0", "--seed", "7", "--db", str(tmp_path / "b.db"), "--json"])
    c = _run(["--venue", "sim", "--duration", "1m", "--speed", "0", "--seed", "8", "--no-store", "--json"])
    sa, sb, sc = a[-1], b[-1], c[-1]
    assert sa["type"] == "summary" and a[0]["type"] == "start"
    for key in ("orders", "fills", "events", "positions", "equity", "fills_sha256", "duration_ms"):
        assert key in sa
    assert sa["duration_ms"] == 60_000 and sa["fills"] > 0 and sa["events"] > 1000
    assert sa["fills_sha256"] == sb["fills_sha256"] and sa["events"] == sb["events"]
    assert sa["fills_sha256"] != sc["fills_sha256"]
    assert any(r["type"] == "status" for r in a)


def test_the_store_of_a_run_is_readable_by_the_dashboard(tmp_path: Path) -> None:
    from app.analytics import snapshot_from_row
    from storage.store import open_store

    db = tmp_path / "run.db"
    _run(["--duration", "61s", "--speed", "0", "--seed", "3", "--db", str(db), "--json", "--strategy", "hedger"])
    store = open_store(db, read_only=True)
    try:
        rows = store.snapshots("desk", 0, 2**62)
        assert len(rows) >= 55
        snap = snapshot_from_row(store.latest_snapshot("desk"))
        assert snap.margin["BTC"].equity == pytest.approx(10.0) and "BTC" in snap.portfolio
        assert store.get_run("hedger") is not None
    finally:
        store.close()


def test_human_log_lines() -> None:
    result = runner.invoke(app, ["run", "--duration", "61s", "--speed", "0", "--no-store"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(" STATUS " in ln for ln in lines) and " SUMMARY " in lines[-1]


def test_bad_flags_exit_with_a_clear_error() -> None:
    result = runner.invoke(app, ["run", "--duration", "ten minutes", "--no-store"])
    assert result.exit_code == 2 and "input.duration" in result.output
    result = runner.invoke(app, ["run", "--venue", "nowhere", "--no-store", "--duration", "1s"])
    assert result.exit_code == 2 and "config.invalid" in result.output
    result = runner.invoke(app, ["run", "--strategy", "nosuch", "--no-store", "--duration", "1s"])
    assert result.exit_code == 2


@pytest.mark.parametrize(("text", "ms"), [("10m", 600_000), ("2h", 7_200_000), ("1d", 86_400_000), ("90s", 90_000),
                                          ("250ms", 250), ("30", 30_000)])
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


def test_parse_duration_refuses_nonsense() -> None:
    for bad in ("", "-5m", "0s", "1 week"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)


def test_sigterm_stops_cleanly_and_flushes_the_store(tmp_path: Path) -> None:
    db = tmp_path / "sig.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--speed", "20", "--db", str(db), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()  # the start line: the market runs
        assert json.loads(first)["type"] == "start"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not db.exists():
            time.sleep(0.1)
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["type"] == "summary" and summary["stopped_by_signal"] is True and summary["duration_ms"] > 0
    from storage.store import open_store

    store = open_store(db, read_only=True)
    try:
        assert store.latest_snapshot("desk")["ts"] == summary["ts"]  # the final row was flushed
    finally:
        store.close()


@pytest.mark.asyncio
async def test_headless_logs_fills_orders_and_hedge_decisions() -> None:
    import io
    from decimal import Decimal

    from app.desk import Desk
    from app.domain import OrderRequest, Side
    from app.headless import run_headless
    from connectors.sim.listing import ListingConfig
    from connectors.sim.venue import SimConfig
    from strategies.delta_hedger import DeltaHedger
    from strategies.hedger_config import parse_hedger_config
    from strategies.memory_store import MemoryStore

    listing = ListingConfig(weekly_days=8, monthly_days=0, quarterly_days=100, strikes_per_expiry=12)
    desk = Desk(seed=7, store=MemoryStore(), speed=0, sim=SimConfig(seed=7, listing=listing))
    exp = desk.expiries("BTC")[2]
    sl = desk.chain("BTC", exp)
    row = min((r for r in sl.rows if r.option_type.value == "call"), key=lambda r: abs(r.strike - sl.forward))
    desk.place_now(OrderRequest(row.instrument, Side.BUY, Decimal(5), Decimal(repr(row.ask))))
    cfg = parse_hedger_config({"underlying": "BTC", "check_interval_s": 1.0, "active": True,
                               "band": {"rule": "fixed", "upper": 0.2}})
    desk.add_strategy(DeltaHedger(cfg), "h1", active=True, check_interval_ms=1_000)
    out = io.StringIO()
    summary = await run_headless(desk, duration_ms=20_000, json_lines=True, out=out, install_signals=False)
    recs = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = {r["type"] for r in recs}
    assert {"start", "fill", "order", "position", "decision", "summary"} <= kinds
    hedges = [r for r in recs if r["type"] == "decision" and r["action"] == "hedge"]
    assert hedges and all(r["run_id"] == "h1" for r in hedges)
    assert summary["our_fills"] >= 2 and "BTC-PERPETUAL" in summary["positions"]
