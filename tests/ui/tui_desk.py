"""The desk the TUI tests drive (the real Desk on the seeded simulated market, seed 7), and pilot helpers that
wait for the state a key leads to instead of for a fixed time."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from app.config import Settings
from app.terminal import add_default_hedger, open_sim_desk
from ui.tui.app import DeskTui
from ui.tui.screens.dialogs import PromptScreen
from ui.tui.screens.ticket import TicketScreen


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


async def settle(pilot, done: Callable[[], bool], what: str, tries: int = 1500) -> None:  # type: ignore[no-untyped-def]
    """Let the app process its messages, workers and threads until ``done()`` holds.

    Work started by a key (messages bubbling to the app, a palette command run after the palette closes, a store
    opened in a thread) finishes after an unknown number of event-loop turns on a loaded machine, so tests wait
    for the state itself; the bound (tens of seconds) only turns a hang into a failure with a message.
    """
    for _ in range(tries):
        if done():
            return
        await pilot.pause(0.02)
    assert done(), f"never reached: {what}"


async def show_tab(pilot, key: str, widget_id: str) -> None:  # type: ignore[no-untyped-def]
    """Press a tab key and wait until the tab's main widget has the focus (moved after the next refresh),
    so the keys that follow reach that widget and not the one of the tab before."""
    await pilot.press(key)
    await settle(pilot, lambda: pilot.app.focused is not None and pilot.app.focused.id == widget_id,
                 f"focus on #{widget_id}")


async def goto_25_delta_put(pilot) -> None:  # type: ignore[no-untyped-def]
    """``d`` then Enter on the offered -0.25: the prompt is pushed by a message, so wait for it before Enter,
    and the cursor moves in the prompt's result callback, which says so: wait for that too."""
    await pilot.press("d")
    await settle(pilot, lambda: isinstance(pilot.app.screen, PromptScreen), "delta prompt")
    await pilot.press("enter")
    await settle(pilot, lambda: not isinstance(pilot.app.screen, PromptScreen)
                 and any("delta nearest -0.25" in n.message for n in pilot.app._notifications), "cursor moved")


async def open_ticket(pilot, key: str) -> TicketScreen:  # type: ignore[no-untyped-def]
    """Press ``key`` on the chain and return the ticket it opens (pushed by a message: waited for)."""
    await pilot.press(key)
    await settle(pilot, lambda: isinstance(pilot.app.screen, TicketScreen), f"ticket from {key!r}")
    ticket = pilot.app.screen
    assert isinstance(ticket, TicketScreen)
    await settle(pilot, lambda: ticket.is_mounted and ticket.request is not None, "ticket ready")
    return ticket


def tables_laid_out(app: Any) -> bool:
    """True when every shown table of the active screen has been measured for the rows it holds.

    A DataTable re-measures its rows when the app is next idle, so right after rows are set the picture can
    still show the table as it was (or nothing at all): snapshots wait for this before they are taken.
    """
    from textual.widgets import DataTable

    for table in app.screen.query(DataTable):
        if not table.display or not table.is_on_screen:
            continue
        header = table.header_height if table.show_header else 0
        if table.region.height == 0 or table.virtual_size.height < table.row_count + header:
            return False
    return True
