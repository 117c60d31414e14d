"""`desk tui --db`: a store written by a headless desk, browsed read-only."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from rich.text import Text
from textual.widgets import Static
from typer.testing import CliRunner

from app.cli import app as cli
from app.config import Settings
from app.domain import OrderRequest, Side
from app.terminal import StoredDesk, add_default_hedger, open_sim_desk
from storage.store import SqlStore
from tests.ui.tui_desk import settle, show_tab
from ui.tui.app import DeskTui
from ui.tui.screens.ticket import TicketScreen
from ui.tui.widgets.positions import PositionsTable

SIZE = (150, 42)


def plain(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Text) else Text.from_markup(str(content)).plain


async def _record_run(path: Path) -> str:
    """A short headless run: one option bought, the hedger active for a simulated half minute."""
    store = SqlStore(path)
    desk = open_sim_desk(Settings(), seed=7, store=store)
    desk.advance(2_000)
    chain = desk.chain("BTC", desk.expiries("BTC")[0])
    row = min((r for r in chain.rows if r.option_type.value == "put" and r.ask), key=lambda r: abs(r.delta + 0.25))
    await desk.place(OrderRequest(row.instrument, Side.BUY, Decimal("2"), Decimal(str(row.ask))))
    run_id = await add_default_hedger(desk, "BTC")
    await desk.strategy_control(run_id, "activate")
    await desk.run_for(30_000)
    await desk.stop()
    store.close()
    return row.instrument


async def test_stored_run_is_browsed_read_only(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    name = await _record_run(db)
    desk = StoredDesk.open(db)
    app = DeskTui(desk, refresh_s=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "read-only" in plain(app.query_one("#status", Static))
        assert "stored run" in plain(app.query_one("#chain-info", Static))
        # Each tab is refreshed by a message once it is shown: wait for that, not for a fixed time.
        await show_tab(pilot, "2", "positions-table")
        await settle(pilot, lambda: name in app.query_one(PositionsTable).row_keys, "stored position listed")
        assert name in app.query_one(PositionsTable).row_keys
        await show_tab(pilot, "3", "margin-pane")
        await app.refresh_view()
        await settle(pilot, lambda: bool(app.query(".margin-figures")), "margin card mounted")
        assert "equity" in plain(app.query_one(".margin-figures", Static))
        await show_tab(pilot, "4", "hedger-pane")
        await settle(pilot, lambda: "hedge-btc" in plain(app.query_one("#hedger-status", Static)), "stored run shown")
        assert "hedge-btc" in plain(app.query_one("#hedger-status", Static))
        assert app.snap is not None and app.snap.strategies[0].last_decisions
        app.open_ticket(name)
        await pilot.pause()
        assert not isinstance(app.screen, TicketScreen)  # no orders from a stored run
        assert await app.control_strategy("hedge-btc", "pause") is False
    desk.close()


def test_cli_refuses_a_missing_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["tui", "--db", str(tmp_path / "nope.db")])
    assert result.exit_code == 2 and "does not exist" in result.output


async def test_a_live_session_cleans_up_its_scratch_store() -> None:
    from app.terminal import close_session

    desk = open_sim_desk(Settings(), seed=7)
    run_id = await add_default_hedger(desk, "BTC")
    folder = Path(desk.store.path).parent
    assert run_id == "hedge-btc" and folder.exists()
    assert await add_default_hedger(desk, "BTC") == "hedge-btc-2"  # a second one gets its own run id
    await desk.stop()
    close_session(desk)
    assert not folder.exists()
