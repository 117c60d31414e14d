"""``desk run --venue deribit``: a subprocess pointed by desk.toml at the embedded desk served over Deribit's API on
loopback; it loads the markets, reconciles the account, streams, and prints a JSON summary."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from app.desk import Desk
from app.domain import OrderRequest, OrderType, Side
from connectors.base import Credentials
from connectors.deribit_api.desk_backend import DeskBackend
from connectors.deribit_api.server import DeribitApiServer

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "cli-key", "cli-secret-value"


async def _run(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "app.cli", "run", *args, cwd=ROOT, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_desk_run_venue_deribit_prints_a_json_summary(tmp_path: Path) -> None:
    desk = Desk(seed=11, speed=30.0)
    # a position made before the run: the run must find it at the venue, not trade it
    desk.place_now(OrderRequest("BTC-PERPETUAL", Side.SELL, Decimal("300"), None, OrderType.MARKET,
                                client_order_id="before"))
    await desk.start()
    server = await DeribitApiServer(DeskBackend(desk), credentials=Credentials(KEY, SECRET)).start()
    try:
        config = tmp_path / "desk.toml"
        config.write_text(f'[venues.deribit]\nexchange = "deribit"\nrest_url = "{server.rest_url}"\n'
                          f'ws_url = "{server.ws_url}"\napi_key = "{KEY}"\napi_secret = "{SECRET}"\n')
        env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
        env.pop("DESK_CONFIG", None)
        code, out, err = await _run(["--venue", "deribit", "--config", str(config), "--duration", "2s", "--json",
                                     "--db", str(tmp_path / "run.db")], env)
        assert code == 0, err[-2000:]
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        start, summary = lines[0], lines[-1]
        assert start["type"] == "start" and start["venue"] == "deribit"
        assert summary["type"] == "summary" and summary["venue"] == "deribit"
        assert summary["instruments"] == len(desk.instruments()) and summary["quotes"] > 100
        assert summary["positions"] == {"BTC-PERPETUAL": "-300.0"} and summary["reconciled"]["positions"] == 1
        assert summary["orders"] == 0 and summary["our_fills"] == 0 and summary["events"] > 0
        assert summary["equity"]["BTC"] > 0 and summary["index"]["BTC"] > 0
        assert {"disconnects", "reconnects", "resyncs", "gaps"} <= set(summary["connection"])
        assert SECRET not in out and SECRET not in err
        from storage.store import open_store

        store = open_store(tmp_path / "run.db", read_only=True)
        try:  # the dashboard's stored view of the run: equity and deltas from the venue's figures
            row = store.latest_snapshot("desk")
        finally:
            store.close()
        assert row is not None and row["BTC.delta"] == pytest.approx(-300 / summary["index"]["BTC"], rel=0.02)
    finally:
        await server.stop()
        await desk.stop()


def test_an_unconfigured_venue_is_a_clear_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from app.cli import app

    config = tmp_path / "desk.toml"
    config.write_text("")
    result = CliRunner().invoke(app, ["run", "--venue", "kraken", "--config", str(config), "--no-store"])
    assert result.exit_code == 2 and "unknown venue 'kraken'" in result.output


@pytest.mark.parametrize("body", ['[venues.deribit]\nexchange = "ftx"\n'])
def test_a_bad_venue_section_is_refused(tmp_path: Path, body: str) -> None:
    from typer.testing import CliRunner

    from app.cli import app

    config = tmp_path / "desk.toml"
    config.write_text(body)
    result = CliRunner().invoke(app, ["run", "--venue", "deribit", "--config", str(config), "--no-store"])
    assert result.exit_code == 2 and "venues.deribit.exchange" in result.output


async def test_refused_credentials_stop_the_run_with_a_clear_error_and_no_secret(tmp_path: Path) -> None:
    desk = Desk(seed=12, speed=30.0)
    server = await DeribitApiServer(DeskBackend(desk), credentials=Credentials(KEY, SECRET)).start()
    try:
        config = tmp_path / "desk.toml"
        config.write_text(f'[venues.deribit]\nrest_url = "{server.rest_url}"\nws_url = "{server.ws_url}"\n'
                          f'api_key = "{KEY}"\napi_secret = "not-the-secret-123"\n')
        env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
        code, out, err = await _run(["--venue", "deribit", "--config", str(config), "--duration", "1s", "--json",
                                     "--no-store"], env)
        assert code == 2 and "error:" in err and "summary" not in out, err[-1500:]
        assert "not-the-secret-123" not in out + err
    finally:
        await server.stop()
