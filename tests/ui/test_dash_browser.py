"""The dashboard in Debian's Chromium (playwright): every page loads and draws, live values move, what-if, token.

Screenshots of every page are saved to ``artifacts/dash/`` (or ``$DESK_ARTIFACTS/dash``).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.desk import Desk
from app.domain import OrderRequest, Side
from connectors.sim.listing import ListingConfig
from connectors.sim.venue import SimConfig
from ui.dash.serve import DeskThread, build_server

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]
ARTIFACTS = Path(os.environ.get("DESK_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts")) / "dash"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and shutil.which("chromium") is None, reason="Debian chromium is not installed"),
]

SMALL = ListingConfig(weekly_days=15, monthly_days=40, quarterly_days=100, strikes_per_expiry=14)


def _book(desk: Desk) -> None:
    """A short straddle of the second expiry plus a perpetual hedge, bought/sold at the touch."""
    exp = desk.expiries("BTC")[1]
    sl = desk.chain("BTC", exp)
    call = min((r for r in sl.rows if r.option_type.value == "call"), key=lambda r: abs(r.strike - sl.forward)).instrument
    put = call[:-1] + "P"
    for name in (call, put):
        q = desk.quote(name)
        desk.place_now(OrderRequest(name, Side.SELL, Decimal("1"), Decimal(repr(q.bid))))
    q = desk.quote("BTC-PERPETUAL")
    desk.place_now(OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal("1000"), Decimal(repr(q.ask))))


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    desk = Desk(seed=11, speed=120.0, sim=SimConfig(seed=11, listing=SMALL))
    desk.advance(2_000)
    _book(desk)
    runner = DeskThread(desk, publish_every_s=0.2)
    source = runner.start()
    server = build_server(source, host="127.0.0.1", port=0, refresh_ms=300)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    runner.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=ARGS)
        yield b
        b.close()


def _open(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    return page, errors


PAGES = [("/", 3), ("/volatility", 5), ("/chain", 0), ("/risk", 4), ("/margin", 2), ("/hedging", 2), ("/backtests", 2)]


@pytest.mark.parametrize("path, plots", PAGES)
def test_every_page_loads_and_draws(live_url: str, browser: Any, path: str, plots: int) -> None:
    page, errors = _open(browser, live_url + path)
    page.wait_for_selector("#page > *", timeout=20_000)
    if plots:
        page.wait_for_function(f"document.querySelectorAll('#page .js-plotly-plot .main-svg').length >= {plots}", timeout=20_000)
    else:
        page.wait_for_selector("#chain-table .dash-spreadsheet", timeout=20_000)
        page.wait_for_function("document.querySelectorAll('#chain-table tbody tr').length > 10", timeout=20_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{path.strip('/') or 'overview'}.png"), full_page=True)
    assert page.locator(".js-plotly-plot").count() >= plots
    page.close()
    assert not errors, errors


def test_a_live_value_changes_over_time(live_url: str, browser: Any) -> None:
    page, errors = _open(browser, live_url + "/")
    page.wait_for_selector("#equity-graph .js-plotly-plot", timeout=20_000)
    page.wait_for_function("document.querySelector('#equity-graph .js-plotly-plot').data[0].x.length >= 2", timeout=20_000)
    first = page.evaluate("document.querySelector('#equity-graph .js-plotly-plot').data[0].x.length")
    page.wait_for_function(f"document.querySelector('#equity-graph .js-plotly-plot').data[0].x.length > {first}", timeout=20_000)
    page.close()
    assert not errors, errors


def test_the_overview_lists_the_positions(live_url: str, browser: Any) -> None:
    page, errors = _open(browser, live_url + "/")
    # one instrument cell per position: the straddle's two legs and the perpetual
    page.wait_for_function("document.querySelectorAll('#overview-positions td[data-dash-column=\"instrument\"]').length == 3",
                           timeout=20_000)
    text = page.inner_text("#overview-positions")
    assert "BTC-PERPETUAL" in text and "realised" in text and "funding" in text
    page.close()
    assert not errors, errors


def test_what_if_trade_changes_the_heatmap(live_url: str, browser: Any) -> None:
    page, errors = _open(browser, live_url + "/risk")
    page.wait_for_selector("#risk-heatmap .js-plotly-plot", timeout=20_000)
    z = "JSON.stringify(document.querySelector('#risk-heatmap .js-plotly-plot').data[0].z)"
    before = page.evaluate(z)
    page.fill("#whatif-amount", "5")
    page.click("#whatif-add")
    page.wait_for_function(f"{z} !== {json.dumps(before)}", timeout=20_000)
    assert "buy 5" in page.inner_text("#whatif-list")
    page.wait_for_function("document.querySelector('#whatif-margin').innerText.includes('IM')", timeout=20_000)
    page.close()
    assert not errors, errors


def test_the_dashboard_follows_an_account_at_a_venue(browser: Any) -> None:
    """`desk dash --venue NAME`: a VenueDesk over ccxt, here to the embedded market served over Deribit's API."""
    import asyncio

    from app.venue_desk import VenueDesk
    from connectors.deribit_api.desk_backend import DeskBackend
    from connectors.deribit_api.server import DeribitApiServer
    from tests.app.test_venue_desk import CREDS, make_venue

    served = DeskThread(Desk(seed=11, speed=60.0, sim=SimConfig(seed=11, listing=SMALL)))  # the venue, on its own loop
    served.start()
    api = asyncio.run_coroutine_threadsafe(DeribitApiServer(DeskBackend(served.desk), credentials=CREDS).start(),
                                           served.loop).result(30)
    desk = VenueDesk(make_venue(api), stream_expiries=2, margin_interval_s=0.5, tick_s=0.1)
    ours = DeskThread(desk, publish_every_s=0.2, label="deribit account")
    source = ours.start()
    server = build_server(source, host="127.0.0.1", port=0, refresh_ms=300)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        page, errors = _open(browser, url + "/volatility")
        assert "deribit account · live" in page.inner_text("#mode")
        page.wait_for_function("document.querySelectorAll('#page .js-plotly-plot .main-svg').length >= 5", timeout=20_000)
        page.close()
        page, more = _open(browser, url + "/chain")
        page.wait_for_function("document.querySelectorAll('#chain-table tbody tr').length > 10", timeout=20_000)
        page.close()
        assert not errors + more, errors + more
        assert desk.connected and source.snapshot() is not None and source.snapshot().chains["BTC"]
    finally:
        server.shutdown()
        thread.join(5)
        ours.stop()
        asyncio.run_coroutine_threadsafe(api.stop(), served.loop).result(30)
        served.stop()
    assert not desk.connected  # stopping the dashboard closed the venue connection


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_token_is_enforced_on_every_request(browser: Any) -> None:
    desk = Desk(seed=3, sim=SimConfig(seed=3, listing=SMALL))
    from ui.dash.source import LiveSource

    server = build_server(LiveSource(desk), host="127.0.0.1", port=0, token="s3cret-token")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert _status(base + "/") == 401
        assert _status(base + "/_dash-layout") == 401
        assert _status(base + "/?token=wrong") == 401
        assert _status(base + "/_dash-layout", {"X-Desk-Token": "s3cret-token"}) == 200
        page, errors = _open(browser, base + "/?token=s3cret-token")  # the cookie carries it to every later request
        page.wait_for_selector("#page .js-plotly-plot", timeout=20_000)
        assert "s3cret-token" not in page.content()
        page.close()
        assert not errors, errors
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture(scope="module")
def stored_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A headless run with the default hedger written to a store, then served read-only."""
    import asyncio

    from app.config import Settings
    from app.headless import build_strategies
    from storage.store import open_store
    from ui.dash.source import StoredSource

    path = tmp_path_factory.mktemp("stored") / "run.db"
    store = open_store(path)
    desk = Desk(seed=13, speed=0.0, store=store, sim=SimConfig(seed=13, listing=SMALL))
    build_strategies(desk, ["hedger"], Settings())
    desk.advance(2_000)
    _book(desk)

    async def _run() -> None:
        for runner in desk.runners.values():
            await runner.start()
        await desk.run_for(180_000)
        await desk.stop()

    # playwright's sync API keeps an event loop in this thread: run the desk in its own.
    worker = threading.Thread(target=lambda: asyncio.run(_run()))
    worker.start()
    worker.join(300)
    store.close()
    # and a real backtest of the default hedger on the default book, stored in the same file
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "app.cli", "backtest", "--days", "0.05", "--db", str(path), "--json", "--no-png"],
                   check=True, capture_output=True, timeout=300)
    ro = open_store(path, read_only=True)
    server = build_server(StoredSource(ro, label="stored run"), host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    ro.close()


def test_stored_run_hedging_page(stored_url: str, browser: Any) -> None:
    page, errors = _open(browser, stored_url + "/hedging")
    page.wait_for_selector("#hedge-delta .js-plotly-plot", timeout=20_000)
    page.wait_for_function("document.querySelectorAll('#hedge-decisions tbody tr').length > 1", timeout=20_000)
    traces = page.evaluate("document.querySelector('#hedge-delta .js-plotly-plot').data.length")
    assert traces >= 3  # bands and delta (hedge markers when it hedged)
    assert "read-only" in page.inner_text("#mode")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stored-hedging.png"), full_page=True)
    page.goto(stored_url + "/margin")
    page.wait_for_function("document.querySelectorAll('#page .js-plotly-plot .main-svg').length >= 2", timeout=20_000)
    page.goto(stored_url + "/backtests")
    page.wait_for_function("document.querySelectorAll('#page .js-plotly-plot .main-svg').length >= 4", timeout=20_000)
    assert page.evaluate("document.querySelector('#bt-delta-0-0 .js-plotly-plot').data.length") >= 3
    page.wait_for_function("document.querySelectorAll('#bt-table tbody tr').length >= 2", timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "stored-backtests.png"), full_page=True)
    page.close()
    assert not errors, errors
