"""SVG snapshots of the main screens on the seeded simulated market (no timers: the view refreshes by hand).

Regenerate after an intended change of the look: ``pytest tests/ui/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from decimal import Decimal

from textual.pilot import Pilot

from app.domain import OrderRequest, Side
from tests.ui.tui_desk import make_app
from ui.tui.app import DeskTui

SIZE = (150, 42)


def _app() -> DeskTui:
    return make_app()


async def _buy_25_delta_put(pilot: Pilot) -> None:
    app: DeskTui = pilot.app  # type: ignore[assignment]
    await pilot.pause()
    row = app.chain.table.nearest_delta(-0.25)
    assert row is not None and row.ask is not None
    await app.desk.place(OrderRequest(row.instrument, Side.BUY, Decimal("1"), Decimal(str(row.ask))))
    app.desk.advance(1_000)  # type: ignore[attr-defined]  # fills are booked on the next market step
    await app.refresh_view()


def test_chain_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(), terminal_size=SIZE, run_before=lambda pilot: pilot.pause())


def test_positions_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot: Pilot) -> None:
        await _buy_25_delta_put(pilot)
        await pilot.press("2")
        await pilot.pause()
        await pilot.app.refresh_view()  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=SIZE, run_before=before)


def test_margin_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot: Pilot) -> None:
        await _buy_25_delta_put(pilot)
        await pilot.press("3")
        await pilot.pause()
        await pilot.app.refresh_view()  # type: ignore[attr-defined]  # the margin cards are mounted on first show
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=SIZE, run_before=before)


def test_hedger_screen(snap_compare, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot: Pilot) -> None:
        app: DeskTui = pilot.app  # type: ignore[assignment]
        await _buy_25_delta_put(pilot)
        await app.start_default_hedger("BTC")
        await app.control_strategy("hedge-btc", "activate")
        for _ in range(6):
            await app.desk.run_for(5_000)  # type: ignore[attr-defined]
        await pilot.press("4")
        await pilot.pause()
        app.clear_notifications()
        await pilot.pause()

    app = make_app(store_dir=tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_ticket_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot: Pilot) -> None:
        await pilot.pause()
        await pilot.press("d", "enter", "b")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=SIZE, run_before=before)
