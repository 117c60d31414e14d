"""`desk hedge activate|pause|kill RUN` change a run's mode in the store."""

from __future__ import annotations

from typer.testing import CliRunner

from app.cli import app
from storage.store import SqlStore
from strategies.runner import run_status

cli = CliRunner()


def test_hedge_commands_change_the_stored_mode(tmp_path) -> None:
    db = tmp_path / "desk.db"
    store = SqlStore(db)
    store.create_run("h7", name="delta_hedger")
    store.close()
    r = cli.invoke(app, ["hedge", "activate", "h7", "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "dry_run -> active" in r.output
    r = cli.invoke(app, ["hedge", "pause", "h7", "--db", str(db)])
    assert r.exit_code == 0 and "active -> paused" in r.output
    r = cli.invoke(app, ["hedge", "kill", "h7", "--db", str(db)])
    assert r.exit_code == 0 and "killed" in r.output
    r = cli.invoke(app, ["hedge", "activate", "h7", "--db", str(db)])
    assert r.exit_code == 2 and "strategy.killed" in r.output
    store = SqlStore(db)
    assert run_status(store, "h7") == "killed"
    store.close()


def test_unknown_run_is_an_error(tmp_path) -> None:
    r = cli.invoke(app, ["hedge", "pause", "nope", "--db", str(tmp_path / "d.db")])
    assert r.exit_code == 2 and "run.not_found" in r.output
