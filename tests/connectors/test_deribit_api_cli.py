"""`desk serve` and `desk margin check` as a user runs them (subprocess server, CLI client)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app

pytest.importorskip("app.desk")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served():  # type: ignore[no-untyped-def]
    port = free_port()
    env = {**os.environ, "DESK_SERVE_KEY": "cli-key", "DESK_SERVE_SECRET": "cli-secret", "DESK_CONFIG": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--seed", "3", "--speed", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the server is up (or the process died)
    try:
        assert "Deribit API v2 on" in line, line + (proc.stdout.read() if proc.poll() is not None else "")
        assert "cli-secret" not in line
        yield port
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_serve_answers_ccxt_and_margin_check_reports_drift(served: int, tmp_path: Path) -> None:
    import ccxt

    ex = ccxt.deribit({"apiKey": "cli-key", "secret": "cli-secret", "enableRateLimit": False})
    ex.urls["api"] = {"rest": f"http://127.0.0.1:{served}", "ws": f"ws://127.0.0.1:{served}/ws/api/v2"}
    markets = ex.load_markets()
    assert "BTC/USD:BTC" in markets and any(m["option"] for m in markets.values())
    ex.create_order("BTC/USD:BTC", "market", "buy", 1000)
    cfg = tmp_path / "desk.toml"
    cfg.write_text(
        f'[venues.local]\nexchange = "deribit"\nrest_url = "http://127.0.0.1:{served}"\n'
        f'ws_url = "ws://127.0.0.1:{served}/ws/api/v2"\n'
    )
    env = {"DESK_LOCAL_KEY": "cli-key", "DESK_LOCAL_SECRET": "cli-secret"}
    result = CliRunner().invoke(app, ["margin", "check", "--config", str(cfg), "--venue", "local", "--json"], env=env)
    assert result.exit_code == 0, result.output
    rows = {r["currency"]: r for r in json.loads(result.output)}
    assert rows["BTC"]["positions"] == 1 and rows["BTC"]["venue_im"] > 0
    # both sides come from the same engine: the drift is small (the market moves between the two reads)
    assert abs(rows["BTC"]["im_drift"]) <= 0.05 * rows["BTC"]["venue_im"]
    table = CliRunner().invoke(app, ["margin", "check", "--config", str(cfg), "--venue", "local"], env=env)
    assert table.exit_code == 0 and "margin drift: local" in table.output and "BTC" in table.output


def test_margin_check_explains_a_missing_venue(tmp_path: Path) -> None:
    cfg = tmp_path / "desk.toml"
    cfg.write_text("")
    result = CliRunner().invoke(app, ["margin", "check", "--config", str(cfg), "--venue", "nowhere"])
    assert result.exit_code == 2 and "venues.nowhere" in result.output


def test_serve_prints_generated_credentials_once(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESK_SERVE")}
    env["DESK_CONFIG"] = ""
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert lines[0].startswith("client_id:") and lines[1].startswith("client_secret:")
    assert "Deribit API v2" in lines[2]
