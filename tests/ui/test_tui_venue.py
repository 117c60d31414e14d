"""The terminal over other venues than the simulated market: a VenueDesk speaking ccxt to the embedded market served
over Deribit's API on loopback (the path of `desk tui --venue NAME`), from the chain to a fill booked at the venue; and
a replayed day of real prices (`desk tui --venue replay --day DAY`)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli import app as cli
from app.desk import Desk
from app.venue_desk import VenueDesk
from connectors.base import Backoff
from connectors.ccxt_venue import CcxtVenue
from connectors.deribit_api.desk_backend import DeskBackend
from connectors.deribit_api.server import DeribitApiServer
from connectors.replay import default_data_dir
from tests.app.test_venue_desk import CREDS, make_venue
from tests.ui.tui_desk import goto_25_delta_put, open_ticket, settle, show_tab
from ui.tui.app import DeskTui
from ui.tui.screens.ticket import TicketScreen
from ui.tui.widgets.positions import PositionsTable

SIZE = (160, 45)


async def test_the_terminal_trades_on_a_venue_through_ccxt() -> None:
    served = Desk(seed=7, speed=30.0)  # the venue: the embedded market, answering Deribit's API v2
    await served.start()
    server = await DeribitApiServer(DeskBackend(served), credentials=CREDS).start()
    desk = VenueDesk(make_venue(server), stream_expiries=1, margin_interval_s=0.2, reconcile_interval_s=0.3, tick_s=0.05)
    app = DeskTui(lambda: desk, refresh_s=None, starting="connecting to deribit…")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, lambda: app.desk is desk and desk.connected and app.chain.current is not None,
                         "the venue's chain on screen")
            chain = app.chain.current
            assert chain.underlying == "BTC" and chain.expiry_ms == desk.expiries("BTC")[0]
            assert app.chain.table.row_count == len({r.strike for r in chain.rows}) > 5
            await goto_25_delta_put(pilot)
            name = app.chain.table.instrument_at_cursor()
            assert name is not None and name.endswith("-P")
            ticket = await open_ticket(pilot, "b")
            assert "initial margin" in str(ticket.query_one("#ticket-whatif").content)  # the replica's what-if
            await pilot.press("ctrl+s")
            await settle(pilot, lambda: not isinstance(app.screen, TicketScreen), "ticket sent")
            # The order went through ccxt to the served venue, which filled it; its fill came back to our book.
            await settle(pilot, lambda: name in {p.instrument for p in desk.positions()}, "the fill booked")
            assert name in {p.instrument for p in served.positions()}
            await show_tab(pilot, "2", "positions-table")
            table = app.query_one(PositionsTable)

            async def listed() -> bool:
                await app.refresh_view()
                return name in table.row_keys

            for _ in range(200):
                if await listed():
                    break
                await pilot.pause(0.05)
            assert name in table.row_keys
            assert any("FILL" in line and name in line for line in app.event_log.lines_written)
        assert not desk.connected  # the terminal closed the venue connection on exit
    finally:
        await server.stop()
        await served.stop()


def test_tui_and_dash_refuse_an_unconfigured_venue(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "desk.toml"
    cfg.write_text('[venues.okx]\nexchange = "okx"\n')
    for command in ("tui", "dash"):
        r = CliRunner().invoke(cli, [command, "--venue", "nope", "--config", str(cfg)])
        assert r.exit_code == 2, (command, r.output)
        assert "venues.nope" in r.output and "(configured: okx)" in r.output


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESK_CONFIG", raising=False)


async def test_a_venue_that_cannot_be_reached_ends_the_terminal_with_its_error() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    venue = CcxtVenue("deribit", credentials=CREDS, rest_url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}/ws",
                      enable_rate_limit=False, backoff=lambda: Backoff(initial_s=0.01, max_s=0.05, seed=3))
    desk = VenueDesk(venue, stream_expiries=1, tick_s=0.05)
    app = DeskTui(lambda: desk, refresh_s=None, starting="connecting to deribit…")
    said: list[str] = []
    exit_ = app.exit
    app.exit = lambda result=None, return_code=0, message=None: (said.append(str(message)), exit_(result, return_code, message))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.return_code is not None, "the terminal gave up")
    assert app.return_code == 2 and not desk.connected
    assert said and said[0].startswith("[connector.network]") and f"127.0.0.1:{port}" in said[0]  # the typed error


@pytest.mark.skipif(not (default_data_dir() / "btc_usdt_binance_spot_1h.csv").exists(), reason="shared/data is absent")
async def test_the_terminal_replays_black_thursday() -> None:
    from app.config import Settings
    from app.terminal import open_replay_desk
    from ui.tui.widgets.log import StatusLine

    app = DeskTui(lambda: open_replay_desk(Settings(), day="2020-03-12", seed=7, speed=600.0), refresh_s=None,
                  starting="loading 2020-03-12…")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.chain.current is not None, "the replayed chain on screen")
        chain = app.chain.current
        assert chain.underlying == "BTC" and 7_000 < chain.forward < 8_500  # BTC opened 2020-03-12 near 7,900 USD
        t0 = app.desk.now_ms()
        await settle(pilot, lambda: app.desk.now_ms() >= t0 + 600_000, "ten replayed minutes")
        await app.refresh_view()
        assert "2020-03-12" in str(app.query_one(StatusLine).content)
