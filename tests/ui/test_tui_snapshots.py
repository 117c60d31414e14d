"""SVG snapshots of the main screens on the seeded simulated market (no timers: the view refreshes by hand).

Regenerate after an intended change of the look: ``pytest tests/ui/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from decimal import Decimal

from textual.pilot import Pilot

from app.domain import OrderRequest, Side
from tests.ui.tui_desk import make_desk
from ui.tui.app import DeskTui

SIZE = (150, 42)


def _app() -> DeskTui:
    return DeskTui(make_desk(), refresh_s=None, manage_desk=False)


async def _buy_25_delta_put(pilot: Pilot) -> None:
    app: DeskTui = pilot.app  # type: ignore[assignment]
    await pilot.pause()
    row = app.chain.table.nearest_delta(-0.25)
    assert row is not None and row.ask is not None
    await app.desk.place(OrderRequest(row.instrument, Side.BUY, Decimal("1"), Decimal(str(row.ask))))
    await app.refresh_view()


def test_chain_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(), terminal_size=SIZE, run_before=lambda pilot: pilot.pause())


def test_positions_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot: Pilot) -> None:
        await _buy_25_delta_put(pilot)
        await pilot.press("2")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=SIZE, run_before=before)


def test_margin_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot: Pilot) -> None:
        await _buy_25_delta_put(pilot)
        await pilot.press("3")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=SIZE, run_before=before)


def test_hedger_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot: Pilot) -> None:
        await pilot.pause()
        await pilot.press("4")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=SIZE, run_before=before)


def test_ticket_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot: Pilot) -> None:
        await pilot.pause()
        await pilot.press("d", "enter", "b")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=SIZE, run_before=before)
