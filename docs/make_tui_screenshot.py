"""Regenerate the README's terminal screenshots from the seeded simulated market (headless, deterministic).

    .venv/bin/python docs/make_tui_screenshot.py          # writes docs/tui.svg and docs/tui-hedger.svg
"""

from __future__ import annotations

import asyncio
import tempfile
from functools import partial
from pathlib import Path

from app.config import Settings
from app.terminal import add_default_hedger, open_sim_desk
from ui.tui.app import DeskTui

DOCS = Path(__file__).resolve().parent


async def main() -> None:
    desk = open_sim_desk(Settings(), seed=7)
    desk.advance(2_000)
    with tempfile.TemporaryDirectory() as tmp:
        app = DeskTui(desk, refresh_s=None, manage_desk=False, new_hedger=partial(add_default_hedger, store_dir=Path(tmp)))
        async with app.run_test(size=(150, 44)) as pilot:
            await pilot.pause()
            await pilot.press("m", "d", "enter", "b")  # next monthly, 25-delta put, buy ticket
            ticket = app.screen
            ticket.query_one("#amount").value = "2"  # type: ignore[attr-defined]
            await pilot.press("ctrl+o", "ctrl+o")  # price as IV
            await pilot.pause()
            app.save_screenshot("tui.svg", str(DOCS))
            await pilot.press("ctrl+s")
            await pilot.pause()
            await desk.run_for(2_000)
            await app.start_default_hedger("BTC")
            await pilot.press("4")
            await pilot.pause()
            await pilot.press("a")
            for _ in range(12):
                await desk.run_for(5_000)
            await app.refresh_view()
            await pilot.pause()
            app.clear_notifications()
            await pilot.pause()
            app.save_screenshot("tui-hedger.svg", str(DOCS))
            await pilot.press("q")
            await pilot.press("y")


if __name__ == "__main__":
    asyncio.run(main())
