"""SVG snapshots of the main screens on the seeded simulated market.

No timers run into a picture: the view refreshes by hand, keys are followed by a wait for the state they lead to
(focus, pushed screens), toasts are cleared and the ticket's text cursor does not blink.

Regenerate after an intended change of the look: ``pytest tests/ui/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from decimal import Decimal

from textual.pilot import Pilot
from textual.widgets import Input

from app.domain import OrderRequest, Side
from tests.ui.tui_desk import goto_25_delta_put, make_app, open_ticket, settle, show_tab, tables_laid_out
from ui.tui.app import DeskTui
from ui.tui.widgets.margin import StressTable

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
    async def before(pilot: Pilot) -> None:
        await settle(pilot, lambda: pilot.app.focused is not None and pilot.app.focused.id == "chain-table"
                     and tables_laid_out(pilot.app), "chain focused and drawn")

    assert snap_compare(_app(), terminal_size=SIZE, run_before=before)


def test_positions_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot: Pilot) -> None:
        await _buy_25_delta_put(pilot)
        await show_tab(pilot, "2", "positions-table")
        await pilot.app.refresh_view()  # type: ignore[attr-defined]
        await settle(pilot, lambda: pilot.app.query_one("#positions-table").row_count > 0  # type: ignore[attr-defined]
                     and tables_laid_out(pilot.app), "positions drawn")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=SIZE, run_before=before)


def test_margin_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot: Pilot) -> None:
        await _buy_25_delta_put(pilot)
        await show_tab(pilot, "3", "margin-pane")
        await pilot.app.refresh_view()  # type: ignore[attr-defined]  # the margin cards are mounted on first show
        await settle(pilot, lambda: any(t.row_count for t in pilot.app.query(StressTable)) and tables_laid_out(pilot.app),
                     "stress table drawn")
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
        await show_tab(pilot, "4", "hedger-pane")
        await settle(pilot, lambda: tables_laid_out(app), "hedger tables drawn")
        app.clear_notifications()
        await settle(pilot, lambda: not app.screen.query("Toast"), "toasts gone")

    app = make_app(store_dir=tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_ticket_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def before(pilot: Pilot) -> None:
        await pilot.pause()
        await goto_25_delta_put(pilot)
        # The "delta nearest" toast times out after a few (loaded) seconds: cleared while its screen is shown,
        # since under the modal ticket it stays on the chain screen, out of reach of clear_notifications().
        pilot.app.clear_notifications()
        await settle(pilot, lambda: not pilot.app.screen.query("Toast"), "toast gone")
        ticket = await open_ticket(pilot, "b")
        for field in ticket.query(Input):
            field.cursor_blink = False  # a blinking cursor is on or off depending on when the picture is taken
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=SIZE, run_before=before)
