"""The desk the TUI tests drive: the real Desk on the seeded simulated market when it is importable."""

from __future__ import annotations

from typing import Any


def make_desk(seed: int = 7) -> Any:
    """A seeded desk (stand-in until app.desk.Desk exists)."""
    from tests.ui.tui_fake_desk import FakeDesk

    return FakeDesk()
