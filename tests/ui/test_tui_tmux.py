"""The real `desk tui` in a terminal (tmux): navigate, buy the 25-delta put through the ticket, quit cleanly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_tmux_smoke(tmp_path: Path) -> None:
    script = ROOT / "tests" / "ui" / "tmux_smoke.sh"
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "PY": sys.executable, "HOME": str(tmp_path)}
    out = subprocess.run(["bash", str(script), str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    for step in ("OK chain", "OK ticket", "OK positions", "OK log", "OK exited"):
        assert step in out.stdout, out.stdout
