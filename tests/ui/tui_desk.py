"""The desk the TUI tests drive: the real Desk on the seeded simulated market (seed 7)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from app.config import Settings
from app.terminal import add_default_hedger, open_sim_desk
from ui.tui.app import DeskTui


def make_desk(seed: int = 7, settings: Settings | None = None) -> Any:
    """A fresh Desk on the simulated market, account "main" funded, two simulated seconds in (books quoted)."""
    desk = open_sim_desk(settings or Settings(), seed=seed)
    desk.advance(2_000)
    return desk


def make_app(desk: Any = None, *, store_dir: Path | None = None, **kwargs: Any) -> DeskTui:
    """A terminal over ``desk`` with no refresh timer (tests refresh by hand: deterministic)."""
    desk = desk if desk is not None else make_desk(settings=kwargs.get("settings"))
    hedger = partial(add_default_hedger, store_dir=store_dir) if store_dir is not None else None
    return DeskTui(desk, refresh_s=None, manage_desk=False, new_hedger=hedger, **kwargs)
