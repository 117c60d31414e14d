"""Pilot tests of the trader's terminal: keys pressed, cells read, orders through the ticket."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rich.text import Text
from textual.widgets import Static

from app.config import Settings, UiSettings
from app.domain import OptionType
from app.errors import ConfigError
from tests.ui.tui_desk import goto_25_delta_put, make_app, make_desk, open_ticket, settle, show_tab
from ui.tui.screens.dialogs import ConfirmScreen, PromptScreen
from ui.tui.screens.ticket import TicketScreen
from ui.tui.widgets.chain import ChainTable
from ui.tui.widgets.positions import PositionsTable

SIZE = (160, 45)


def plain(widget: Static) -> str:
    content = widget.content
    if isinstance(content, Text):
        return content.plain
    return Text.from_markup(str(content)).plain




async def test_opens_on_the_front_btc_chain_at_the_money() -> None:
    app = make_app()
    async with app.run_test(size=SIZE):
        chain = app.chain.current
        assert chain is not None and chain.underlying == "BTC"
        assert chain.expiry_ms == app.feed.expiries("BTC")[0]
        table = app.query_one(ChainTable)
        assert table.row_count == len({r.strike for r in chain.rows}) > 5
        assert table.strikes[table.cursor_row] == chain.atm_strike
        assert app.focused is table
        row = table.row_at_cursor()
        assert row is not None
        assert str(table.get_cell(table.coordinate_to_cell_key(table.cursor_coordinate).row_key, "c_mark")) != ""


async def test_expiry_keys_and_next_monthly() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        expiries = app.feed.expiries("BTC")
        await pilot.press("right_square_bracket")
        await settle(pilot, lambda: app.chain.expiry_ms != expiries[0], "next expiry")
        assert app.chain.expiry_ms == expiries[1]
        await pilot.press("left_square_bracket")
        await settle(pilot, lambda: app.chain.expiry_ms != expiries[1], "previous expiry")
        assert app.chain.expiry_ms == expiries[0]
        await pilot.press("m")
        from ui.tui.format import is_monthly

        await settle(pilot, lambda: app.chain.expiry_ms != expiries[0], "next monthly")
        assert app.chain.expiry_ms is not None and is_monthly(app.chain.expiry_ms)
        assert app.chain.current.expiry_ms == app.chain.expiry_ms  # type: ignore[union-attr]


async def test_find_the_25_delta_put() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("d")
        await settle(pilot, lambda: isinstance(app.screen, PromptScreen), "delta prompt")
        await pilot.press("enter")  # the prompt offers -0.25
        await settle(pilot, lambda: not isinstance(app.screen, PromptScreen), "prompt answered")
        await settle(pilot, lambda: app.chain.table.row_at_cursor().option_type is OptionType.PUT, "cursor on a put")  # type: ignore[union-attr]
        row = app.chain.table.row_at_cursor()
        assert row is not None and row.option_type is OptionType.PUT
        puts = [r for r in app.chain.current.rows if r.option_type is OptionType.PUT]  # type: ignore[union-attr]
        assert abs(row.delta + 0.25) == min(abs(r.delta + 0.25) for r in puts)


async def test_usd_toggle_rewrites_prices() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = app.chain.table
        chain = app.chain.current
        row = next(r for r in chain.rows if r.strike == chain.atm_strike and r.option_type is OptionType.CALL)  # type: ignore[union-attr]
        key = table.strikes.index(row.strike)
        col = [c.key.value for c in table.ordered_columns].index("c_mark")
        coin = table.get_cell_at((key, col)).plain
        await pilot.press("u")
        await settle(pilot, lambda: app.show_usd and table.get_cell_at((key, col)).plain != coin, "USD shown")
        usd = table.get_cell_at((key, col)).plain
        assert coin != usd and float(usd.replace(",", "")) == pytest.approx(row.mark * chain.forward, rel=0.01)  # type: ignore[union-attr]
    # The greeks follow (README: "prices and greeks in coin or USD"): gamma, vega and theta at the forward, delta a ratio.
    from ui.tui.format import fmt_sig
    from ui.tui.widgets.chain import COLUMNS

    f = chain.forward  # type: ignore[union-attr]
    for key, digits in (("gamma", 3), ("vega", 3), ("theta", 3)):
        assert COLUMNS[key].render(row, f, True, 0.0) == fmt_sig(getattr(row, key) * f, digits)
        assert COLUMNS[key].render(row, f, False, 0.0) == fmt_sig(getattr(row, key), digits)
    assert COLUMNS["delta"].render(row, f, True, 0.0) == COLUMNS["delta"].render(row, f, False, 0.0)


async def test_refresh_writes_only_changed_cells() -> None:
    desk = make_desk()
    app = make_app(desk)
    async with app.run_test(size=SIZE):
        total = app.chain.table.row_count * len(app.chain.table.columns)
        before = app.cells_written
        await app.refresh_view()
        assert app.cells_written == before  # nothing moved, nothing written
        desk.advance(1_000)  # one market second: some quotes move, most cells stay
        await app.refresh_view()
        assert 0 < app.cells_written - before < total / 2


async def test_buy_through_the_ticket_shows_whatif_and_position() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto_25_delta_put(pilot)
        name = app.chain.table.instrument_at_cursor()
        ticket = await open_ticket(pilot, "b")
        assert ticket.ctx.instrument.name == name
        assert "initial margin" in plain(ticket.query_one("#ticket-whatif", Static))
        assert ticket.preview and ticket.request is not None
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: not isinstance(app.screen, TicketScreen), "ticket sent and closed")
        assert any("SENT" in line and name in line for line in app.event_log.lines_written)
        app.desk.advance(1_000)  # the desk books its fills on the next market step
        await show_tab(pilot, "2", "positions-table")
        table = app.query_one(PositionsTable)
        await settle(pilot, lambda: name in table.row_keys, "position listed")
        await app.refresh_view()
        assert any("FILL" in line and name in line for line in app.event_log.lines_written)
        table.move_cursor(row=table.row_keys.index(name))
        await pilot.press("s")  # sell from the positions table
        await settle(pilot, lambda: isinstance(app.screen, TicketScreen), "closing ticket")
        closing = app.screen
        assert isinstance(closing, TicketScreen) and closing.ctx.instrument.name == name
        assert closing.side.value == "sell"
        await pilot.press("escape")


async def test_iv_priced_order() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto_25_delta_put(pilot)
        ticket = await open_ticket(pilot, "b")
        await pilot.press("ctrl+o", "ctrl+o")  # coin → USD → IV, keys as fast as a trader's
        await settle(pilot, lambda: ticket.price_mode == "iv" and "IV" in plain(ticket.query_one("#ticket-order", Static)),
                     "price in IV")
        assert ticket.price_mode == "iv"
        price_text = ticket.query_one("#price").value  # type: ignore[attr-defined]
        assert 5 < float(price_text) < 300  # an IV in percent, not a coin price
        assert "IV" in plain(ticket.query_one("#ticket-order", Static))
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: not isinstance(app.screen, TicketScreen) or ticket.last_error is not None, "sent")
        assert not isinstance(app.screen, TicketScreen)


async def test_reject_is_shown_with_its_code() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        ticket = await open_ticket(pilot, "b")
        amount = ticket.query_one("#amount")
        amount.value = "5000"  # type: ignore[attr-defined]
        await settle(pilot, lambda: ticket.request is not None and ticket.request.amount == 5000, "order rebuilt")
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: ticket.last_error is not None or app.screen is not ticket, "send answered")
        assert app.screen is ticket and ticket.last_error is not None
        assert ticket.last_error.code == "margin.insufficient"
        assert ticket.last_error.code in plain(ticket.query_one("#ticket-error", Static))
        assert not app.desk.snapshot().positions


async def test_hedger_controls_and_quit_confirmation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(store_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await show_tab(pilot, "4", "hedger-pane")
        assert "no hedger" in plain(app.query_one("#hedger-status", Static))
        await pilot.press("n")  # the hedger's store is opened in a thread
        await settle(pilot, lambda: bool(app.snap and app.snap.strategies), "hedger started")
        assert app.snap.strategies[0].status == "dry_run"  # type: ignore[union-attr]
        run = app.snap.strategies[0]  # type: ignore[union-attr]
        await pilot.press("a")
        await settle(pilot, lambda: app.snap.strategies[0].status != "dry_run", "activate applied")  # type: ignore[union-attr]
        assert app.snap.strategies[0].status == "active"  # type: ignore[union-attr]
        assert "ACTIVE" in plain(app.query_one("#hedger-status", Static))
        await pilot.press("q")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen), "quit asks")
        await pilot.press("n")
        await settle(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "quit answered")
        assert app.is_running
        await pilot.press("ctrl+q")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen), "ctrl+q asks")
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "ctrl+q answered")
        assert app.is_running
        await pilot.press("p")
        await settle(pilot, lambda: app.snap.strategies[0].status != "active", "pause applied")  # type: ignore[union-attr]
        assert app.snap.strategies[0].status == "paused"  # type: ignore[union-attr]
        assert run.run_id in "\n".join(app.event_log.lines_written)
        await pilot.press("k")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen), "kill asks")  # killing asks first
        await pilot.press("y")  # the kill runs in a worker once the dialog has closed
        await settle(pilot, lambda: app.snap.strategies[0].status != "paused", "kill applied")  # type: ignore[union-attr]
        assert app.snap.strategies[0].status == "killed"  # type: ignore[union-attr]
        await pilot.press("q")  # nothing active: quits without asking
    assert app.return_code == 0


async def run_palette(pilot, query: str, title: str, done: Callable[[], bool]) -> None:  # type: ignore[no-untyped-def]
    """Open the command palette, type ``query``, run the hit ``title`` once the search has settled on it,
    and let the app work until ``done()`` holds (the palette runs its command after it has closed)."""
    from textual.command import CommandPalette
    from textual.widgets import OptionList
    from textual.worker import WorkerState

    def hit_ready() -> bool:
        palette = pilot.app.screen
        if not isinstance(palette, CommandPalette):
            return False
        # The search runs in a worker and may still re-order its hits: wait until it has finished.
        if any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in pilot.app.workers
               if w.group == CommandPalette._GATHER_COMMANDS_GROUP):
            return False
        options = palette.query_one(OptionList)
        index = options.highlighted
        return index is not None and title in str(options.get_option_at_index(index).prompt)

    await pilot.press("ctrl+p")
    # Typed before the palette has its input focused, the letters would be the chain's own keys.
    await settle(pilot, lambda: isinstance(pilot.app.screen, CommandPalette) and pilot.app.focused is not None
                 and pilot.app.focused.screen is pilot.app.screen, "palette open")
    await pilot.press(*query)
    await settle(pilot, hit_ready, f"palette hit {title!r} for {query!r}")
    await pilot.press("enter")
    await settle(pilot, done, f"palette command {title!r} done")


async def test_palette_pause_hedger(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(store_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await app.start_default_hedger()
        assert run_id is not None
        await app.control_strategy(run_id, "activate")
        await run_palette(pilot, "pause hedger", "Pause hedger", lambda: app.snap.strategies[0].status == "paused")  # type: ignore[union-attr]
        assert app.snap.strategies[0].status == "paused"  # type: ignore[union-attr]


async def test_help_and_margin_tab() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await settle(pilot, lambda: bool(app.screen.query("HelpPanel")), "help shown")
        panel = app.screen.query_one("HelpPanel")
        await settle(pilot, lambda: panel.has_class("-show-help"), "chain help")
        assert panel.has_class("-show-help")  # the chain's own help, not only the key list
        await pilot.press("f1")
        await settle(pilot, lambda: not app.screen.query("HelpPanel"), "help hidden")
        await show_tab(pilot, "3", "margin-pane")
        await settle(pilot, lambda: "equity" in plain(app.query_one(".margin-figures", Static)), "margin figures")
        text = plain(app.query_one(".margin-figures", Static))
        assert "equity" in text and "available funds" in text
        from app.domain import MarginAlert

        app.desk.bus.publish(MarginAlert(ts=app.desk.now_ms(), account="main", currency="BTC", level=0.8,  # type: ignore[attr-defined]
                                         mm_usage=0.82))
        await app.refresh_view()
        await settle(pilot, lambda: bool(app._notifications), "alert popped up")
        assert any(line.split(" ", 1)[1].startswith("MARGIN") for line in app.event_log.lines_written)
        assert any("MM usage 82.0%" in n.message for n in app._notifications)  # popped up too


def test_bad_theme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown theme"):
        make_app(settings=Settings(ui=UiSettings(theme="no-such-theme")))


async def test_done_when_walkthrough(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The issue's "done when": next monthly, 25-delta put, IV-priced buy with what-if, position, hedger in band."""
    desk = make_desk()
    app = make_app(desk, store_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        front = app.chain.expiry_ms
        await pilot.press("m")  # next monthly expiry
        from ui.tui.format import is_monthly

        await settle(pilot, lambda: app.chain.expiry_ms != front, "next monthly")
        assert app.chain.expiry_ms is not None and is_monthly(app.chain.expiry_ms)
        await goto_25_delta_put(pilot)
        row = app.chain.table.row_at_cursor()
        assert row is not None and row.option_type is OptionType.PUT and abs(row.delta + 0.25) < 0.1
        ticket = await open_ticket(pilot, "b")
        ticket.query_one("#amount").value = "2"  # type: ignore[attr-defined]
        await settle(pilot, lambda: ticket.request is not None and ticket.request.amount == 2, "two contracts")
        await pilot.press("ctrl+o", "ctrl+o")  # price as IV
        await settle(pilot, lambda: ticket.price_mode == "iv" and ticket.request is not None
                     and "IV" in plain(ticket.query_one("#ticket-order", Static)), "priced in IV")
        assert ticket.price_mode == "iv"
        whatif = plain(ticket.query_one("#ticket-whatif", Static))
        assert "available funds" in whatif and "→" in whatif  # margin impact before sending
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: not isinstance(app.screen, TicketScreen) or ticket.last_error is not None, "sent")
        assert not isinstance(app.screen, TicketScreen), plain(ticket.query_one("#ticket-error", Static))
        await desk.run_for(2_000)
        await show_tab(pilot, "2", "positions-table")
        await settle(pilot, lambda: row.instrument in app.query_one(PositionsTable).row_keys, "position listed")
        assert row.instrument in app.query_one(PositionsTable).row_keys
        delta_before = app.snap.portfolio["BTC"].delta  # type: ignore[union-attr]
        assert delta_before < -0.2  # two 25-delta puts
        run_id = await app.start_default_hedger("BTC")
        assert run_id
        await show_tab(pilot, "4", "hedger-pane")  # "a" on the chain would go to the ATM strike instead
        await pilot.press("a")  # activate
        await settle(pilot, lambda: app.snap.strategies[0].status == "active", "activated")  # type: ignore[union-attr]
        for _ in range(12):  # a simulated minute, strategies fed step by step
            await desk.run_for(5_000)
        await app.refresh_view()
        run = app.snap.strategies[0]  # type: ignore[union-attr]
        assert run.status == "active"
        assert any(d.get("action") == "hedge" for d in run.last_decisions), run.last_decisions
        delta_after = app.snap.portfolio["BTC"].delta  # type: ignore[union-attr]
        assert abs(delta_after) <= 0.1 < abs(delta_before)  # back inside the default ±0.1 band
        assert "inside band" in plain(app.query_one("#hedger-summary", Static))


async def test_palette_flatten_delta_and_go_to_expiry() -> None:
    from decimal import Decimal

    from app.domain import OrderRequest, Side

    desk = make_desk()
    app = make_app(desk)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        row = app.chain.table.nearest_delta(-0.25)
        assert row is not None and row.ask is not None
        await desk.place(OrderRequest(row.instrument, Side.BUY, Decimal("3"), Decimal(str(row.ask))))
        desk.advance(1_000)
        await app.refresh_view()
        delta_usd = app.snap.portfolio["BTC"].delta_usd  # type: ignore[union-attr]
        assert delta_usd < 0
        await run_palette(pilot, "flatten delta", "Flatten delta", lambda: isinstance(app.screen, TicketScreen))
        ticket = app.screen
        assert isinstance(ticket, TicketScreen) and ticket.ctx.instrument.name == "BTC-PERPETUAL"
        assert ticket.side is Side.BUY
        amount = Decimal(ticket.query_one("#amount").value)  # type: ignore[attr-defined]
        assert amount % 10 == 0 and abs(float(amount) + delta_usd) <= 10  # USD contracts of 10, delta flat
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, TicketScreen), "ticket closed")
        target = app.feed.expiries("BTC")[3]
        from ui.tui.format import expiry_label

        label = expiry_label(target)
        await run_palette(pilot, f"go to expiry btc {label.lower()}", f"BTC {label}",
                          lambda: app.chain.expiry_ms == target and app.chain.current.expiry_ms == target)  # type: ignore[union-attr]
        assert app.chain.expiry_ms == target and app.chain.current.expiry_ms == target  # type: ignore[union-attr]


async def test_portfolio_margin_shows_the_worst_scenario() -> None:
    from decimal import Decimal

    from app.config import MarginSettings
    from app.domain import OrderRequest, Side

    settings = Settings(margin=MarginSettings(model="pm"))
    desk = make_desk(settings=settings)
    app = make_app(desk, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        row = app.chain.table.nearest_delta(-0.25)
        assert row is not None and row.bid is not None
        await desk.place(OrderRequest(row.instrument, Side.SELL, Decimal("1"), Decimal(str(row.bid))))
        desk.advance(1_000)
        await show_tab(pilot, "3", "margin-pane")
        await app.refresh_view()
        figures = plain(app.query_one(".margin-figures", Static))
        distance = plain(app.query_one(".margin-distance", Static))
        assert "portfolio margin" in figures
        assert "worst scenario" in distance and "loss" in distance, distance
        bars = plain(app.query_one(".margin-bars", Static))
        assert "IM" in bars and "%" in bars


async def test_margin_colours_follow_the_levels_the_engine_alerts_at() -> None:
    from decimal import Decimal

    from app.config import MarginSettings
    from app.domain import OrderRequest, Side
    from ui.tui.widgets.log import StatusLine
    from ui.tui.widgets.margin import level_style

    # Levels far below the book's usage in the settings; the engine alerts at its own (the same ones, once the
    # venue passes the settings on): the bars must colour as the report's alert_level says, never as a third opinion.
    settings = Settings(margin=MarginSettings(alert_levels=[0.002, 0.005, 0.01]))
    desk = make_desk(settings=settings)
    app = make_app(desk, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        row = app.chain.table.nearest_delta(-0.25)
        assert row is not None and row.bid is not None
        await desk.place(OrderRequest(row.instrument, Side.SELL, Decimal("2"), Decimal(str(row.bid))))
        desk.advance(1_000)
        await show_tab(pilot, "3", "margin-pane")
        await app.refresh_view()
        report = app.snap.margin["BTC"]  # type: ignore[union-attr]
        engine = desk.margin_engine.alert_levels
        assert report.mm_usage > 0.01
        crossed = [lv for lv in engine if report.mm_usage >= lv]
        assert report.alert_level == (crossed[-1] if crossed else 0.0)
        want = level_style(report.mm_usage, engine)
        bars = app.query_one("#margin-BTC .margin-bars", Static).content
        assert isinstance(bars, Text)
        mm_at = bars.plain.index("MM")
        assert {str(s.style) for s in bars.spans if s.start >= mm_at and s.style != "dim"} == {want}
        status = app.query_one(StatusLine).content
        assert isinstance(status, Text)
        at = status.plain.index(f"{report.mm_usage * 100:.1f}%")
        styles = {str(s.style) for s in status.spans if s.start <= at < s.end} - {""}
        assert styles == ({want} if crossed else set())  # coloured only once past the engine's first level
        assert app.alert_levels == engine


async def test_opening_the_margin_tab_while_a_refresh_is_due() -> None:
    import asyncio

    from textual.widgets import TabbedContent

    from ui.tui.widgets.margin import MarginCard

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        # The tab opens with no card yet, and two refreshes come due at once (the tab's and the timer's). The first
        # mounts the cards and awaits their compose; the second finds them meanwhile, with no parts to update yet.
        # Tasks run in the order they are made, so this interleaving is the same on every run.
        with app.prevent(TabbedContent.TabActivated):
            app.query_one(TabbedContent).active = "margin"
        assert app.active_tab == "margin" and not app.query(MarginCard)
        await asyncio.gather(app.refresh_view(), app.refresh_view())
        currencies = sorted(app.snap.margin)  # type: ignore[union-attr]

        def drawn() -> bool:
            cards = list(app.query(MarginCard))
            return [c.currency for c in cards] == currencies and all(
                "equity" in plain(c.query_one(".margin-figures", Static)) for c in cards)

        await settle(pilot, drawn, "every card drawn once composed")
        assert len(currencies) == 2


async def test_a_refresh_due_while_the_app_exits_does_nothing() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        refreshes = app.refreshes
        await app.screen.remove_children()  # what the exit does to the screen before the timers stop
        await app.refresh_view()
        assert app.refreshes == refreshes


async def test_chain_moves_on_when_the_front_expiry_settles() -> None:
    from app.desk import Desk
    from connectors.sim.venue import SimConfig

    desk = Desk(Settings(), sim=SimConfig(seed=7, step_ms=600_000, underlyings=("BTC",)))
    desk.advance(600_000)
    app = make_app(desk)
    async with app.run_test(size=SIZE):
        front = app.chain.expiry_ms
        assert front is not None and front == app.feed.expiries("BTC")[0]
        desk.advance(front - desk.now_ms() + 1_200_000)  # 20 simulated minutes past 08:00 UTC settlement
        await app.refresh_view()  # the listing is re-read: the settled expiry is gone, not an error
        await app.refresh_view()
        assert app.chain.expiry_ms is not None and app.chain.expiry_ms > front
        assert app.chain.current is not None and app.chain.current.expiry_ms == app.chain.expiry_ms
        assert front not in app.feed.expiries("BTC")


async def test_theme_keymap_and_chain_columns_from_config() -> None:
    settings = Settings(ui=UiSettings(theme="nord", chain_columns=["bid", "ask", "vega", "oi"],
                                      keymap={"buy": "ctrl+b"}))
    app = make_app(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "nord"
        await pilot.press("b")  # rebound by action id: b no longer buys
        assert not isinstance(app.screen, TicketScreen)
        await pilot.press("ctrl+b")
        await settle(pilot, lambda: isinstance(app.screen, TicketScreen), "ticket from ctrl+b")
        assert len(app.screen_stack) == 2  # one ticket, the one ctrl+b opened ("b", handled first, opened none)
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, TicketScreen), "ticket closed")
        keys = [str(c.key.value) for c in app.chain.table.ordered_columns]
        assert keys == ["c_oi", "c_vega", "c_bid", "c_ask", "strike", "p_bid", "p_ask", "p_vega", "p_oi"]
        await pilot.press("c")  # full set: sizes and every greek
        await settle(pilot, lambda: len(app.chain.table.ordered_columns) > 9, "full column set")
        keys = [str(c.key.value) for c in app.chain.table.ordered_columns]
        assert {"c_bid_size", "p_gamma", "p_theta", "c_pos"} <= set(keys)
        await pilot.press("c")
        await settle(pilot, lambda: len(app.chain.table.ordered_columns) < len(keys), "compact column set")
        assert len(app.chain.table.ordered_columns) == 9


def test_bad_chain_column_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown column"):
        make_app(settings=Settings(ui=UiSettings(chain_columns=["bid", "rho"])))


async def test_cursor_keeps_the_strike_across_expiries_and_goes_atm_on_a_new_underlying() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.chain.table
        start = table.cursor_coordinate
        await pilot.press("down", "down", "down", "right")
        await settle(pilot, lambda: table.cursor_row == start.row + 3 and table.cursor_column != start.column, "moved")
        strike = table.strikes[table.cursor_row]
        front = app.chain.expiry_ms
        await pilot.press("right_square_bracket")
        await settle(pilot, lambda: app.chain.expiry_ms != front, "next expiry")
        assert table.strikes[table.cursor_row] == min(table.strikes, key=lambda k: abs(k - strike))
        await pilot.press("x")
        await settle(pilot, lambda: app.chain.underlying != "BTC", "next underlying")
        assert app.chain.underlying == "ETH"
        assert table.strikes[table.cursor_row] == app.chain.current.atm_strike  # type: ignore[union-attr]
        assert table.instrument_at_cursor().startswith("ETH-")  # type: ignore[union-attr]
