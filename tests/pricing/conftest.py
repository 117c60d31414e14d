"""Every pricing test starts with small arrays on numpy, whatever earlier tests loaded (see black._LOADED)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.pricing import black


@pytest.fixture(autouse=True)
def small_arrays_on_numpy() -> Iterator[None]:
    for event in black._LOADED.values():
        event.clear()
    yield
    for event in black._LOADED.values():
        event.clear()


@pytest.fixture
def run_on_empty_cache(tmp_path: Path) -> Callable[[str, int], list[str]]:
    """``run(code, timeout_s)``: run ``code`` in a fresh interpreter whose numba disk cache is empty (a fresh
    clone), with numba allowed; returns the words it printed."""

    def run(code: str, timeout_s: int) -> list[str]:
        env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
        env.pop("DESK_NO_NUMBA", None)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=timeout_s, env=env
        )
        return out.stdout.split()

    return run
