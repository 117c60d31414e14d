"""The `desk` command's help and exit codes."""

import subprocess
import sys

from typer.testing import CliRunner

from app import __version__
from app.cli import app

runner = CliRunner()


def test_help_lists_subcommands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("tui", "dash", "run", "backtest", "db", "hedge", "margin", "serve", "version"):
        assert name in result.output


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_unknown_command_exits_non_zero() -> None:
    assert runner.invoke(app, ["nope"]).exit_code != 0


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "app.cli", "version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


def test_strict_json_turns_non_finite_floats_into_null() -> None:
    """An unbounded margin usage (balance at or below zero) prints as null, so --json output is strict JSON."""
    import json
    import math

    from app.cli import strict_json

    summary = {"max_margin_usage": math.inf, "pnl": -12.5, "paths": ["p1"], "rows": [{"x": math.nan, "n": 3}]}
    text = json.dumps(strict_json(summary), allow_nan=False)
    assert json.loads(text) == {"max_margin_usage": None, "pnl": -12.5, "paths": ["p1"], "rows": [{"x": None, "n": 3}]}
