"""`desk tui --db`: a store written by a headless desk, browsed read-only."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import Static
from typer.testing import CliRunner

from app.cli import app as cli
from app.config import Settings
from app.domain import DeskSnapshot, OrderRequest, Side
from app.terminal import StoredDesk, add_default_hedger, open_sim_desk
from storage.store import SqlStore
from tests.ui.tui_desk import settle, show_tab
from ui.tui.app import DeskTui
from ui.tui.format import DASH, fmt_coin, fmt_sig, fmt_signed
from ui.tui.screens.ticket import TicketScreen
from ui.tui.widgets.positions import PositionsTable

SIZE = (150, 42)


def plain(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Text) else Text.from_markup(str(content)).plain


async def _record_run(path: Path) -> tuple[str, DeskSnapshot]:
    """A short headless run: one option bought, the hedger active for a simulated half minute; the last live view."""
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
    last = desk.snapshot(chains=False)
    store.close()
    return row.instrument, last


async def test_stored_run_is_browsed_read_only(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    name, live = await _record_run(db)
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
        # The store keeps a position's size and average only: its mark, PnL and greeks are unknown, not zero.
        table = app.query_one(PositionsTable)
        cells = {c: str(table.get_cell(name, c)) for c in ("size", "mark", "pnl", "pnl_usd", "delta", "theta")}
        assert cells["size"] == "2" and all(cells[c] == DASH for c in ("mark", "pnl", "pnl_usd", "delta", "theta"))
        # The portfolio line carries the greeks the desk stored, the BS delta and theta included.
        g = live.portfolio["BTC"]
        line = plain(app.query_one("#portfolio", Static))
        assert f"BS {fmt_signed(g.delta_bs)}" in line and f"Θ {fmt_sig(g.theta, 3)} BTC/day" in line and g.theta != 0
        await show_tab(pilot, "3", "margin-pane")
        await app.refresh_view()
        await settle(pilot, lambda: bool(app.query(".margin-figures")), "margin card mounted")
        figures = plain(app.query_one("#margin-BTC .margin-figures", Static))
        row = desk.store.latest_snapshot("desk")  # what the run stored, written by the desk from its own report
        m = live.margin["BTC"]
        assert row["BTC.margin_balance"] == pytest.approx(m.margin_balance, abs=1e-4) and row["BTC.balance"] == m.balance
        assert abs(m.margin_balance - m.equity) > 1e-4  # the option's value: margin balance and equity differ
        for shown in (f"equity {fmt_coin(row['BTC.equity'])}", f"margin balance {fmt_coin(row['BTC.margin_balance'])}",
                      f"balance {fmt_coin(row['BTC.balance'])}", f"available funds {fmt_coin(row['BTC.available'])}"):
            assert shown in figures, (shown, figures)
        assert f"{row['BTC.mm_usage'] * 100:.1f}%" in plain(app.query_one("#margin-BTC .margin-bars", Static))
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
