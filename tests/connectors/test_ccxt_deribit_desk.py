"""End to end: the real Desk (simulated market, matching and margin engines) served over Deribit's API,
driven by the ccxt connector — markets, streamed tickers, orders, fills, reconnects, reconcile, margin drift."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import pytest_asyncio

from app.bus import Bus
from app.domain import BookUpdate, FillEvent, OrderRequest, OrderStatus, OrderType, Quote, Side, TimeInForce
from connectors.base import Backoff, Credentials
from connectors.ccxt_venue import CcxtVenue
from connectors.deribit_api.desk_backend import DeskBackend
from connectors.deribit_api.server import DeribitApiServer
from connectors.margin_check import margin_drift

desk_mod = pytest.importorskip("app.desk")

pytestmark = pytest.mark.asyncio(loop_scope="module")
CREDS = Credentials("desk-key", "desk-secret")
D = Decimal


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world():
    desk = desk_mod.Desk(seed=7, speed=30.0)
    await desk.start()
    server = await DeribitApiServer(DeskBackend(desk), credentials=CREDS).start()
    venue = make_venue(server)
    bus = Bus()
    sub = bus.subscribe(maxsize=200_000)
    await venue.connect(bus)
    yield desk, server, venue, sub
    await venue.close()
    await server.stop()
    await desk.stop()


def make_venue(server: DeribitApiServer) -> CcxtVenue:
    return CcxtVenue(
        "deribit",
        credentials=CREDS,
        rest_url=server.rest_url,
        ws_url=server.ws_url,
        enable_rate_limit=False,
        backoff=lambda: Backoff(initial_s=0.01, max_s=0.05, seed=3),
    )


async def wait_for(pred, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def atm_option(desk, venue: CcxtVenue) -> str:  # type: ignore[no-untyped-def]
    index = desk.index_price("BTC")
    expiry = sorted({i.expiry_ms for i in venue.catalog.options_of("BTC")})[2]
    calls = [i for i in venue.catalog.options_of("BTC") if i.expiry_ms == expiry and i.is_call]
    return min(calls, key=lambda i: abs(float(i.strike) - index)).name


async def test_markets_and_chain_match_the_desk(world) -> None:  # type: ignore[no-untyped-def]
    desk, _, venue, _ = world
    from connectors.deribit_api.backend import ApiBackend

    assert isinstance(DeskBackend(desk), ApiBackend)
    names = {i.name for i in await venue.instruments()}
    assert names == {i.name for i in desk.instruments()}
    opt = venue.catalog.get(atm_option(desk, venue))
    assert opt.tick_steps == ((D("0.005"), D("0.0005")),) and opt.min_amount == D("0.1")
    chain = {q.instrument: q for q in await venue.chain("BTC")}
    q = chain[opt.name]
    assert q.mark_iv is not None and 0.05 < q.mark_iv < 3.0  # read from mark_iv (ccxt leaves it empty)
    ticker = await venue.quote(opt.name)
    assert ticker.venue_delta is not None and 0 < ticker.venue_delta < 1 and ticker.venue_vega > 0


async def test_tickers_stream_and_survive_a_dropped_socket(world) -> None:  # type: ignore[no-untyped-def]
    desk, server, venue, sub = world
    opt = atm_option(desk, venue)
    await venue.subscribe(["BTC-PERPETUAL", opt], ["ticker", "book"])

    def seen(kind, name):  # type: ignore[no-untyped-def]
        return [e for e in list(sub._queue) if isinstance(e, kind) and e.instrument == name]

    await wait_for(lambda: seen(Quote, opt) and seen(BookUpdate, "BTC-PERPETUAL"))
    sub.drain()
    assert await server.drop_websockets() >= 1
    await wait_for(lambda: venue.stats.disconnects >= 1 and venue.stats.resyncs >= 1)
    sub.drain()
    await wait_for(lambda: len(seen(Quote, "BTC-PERPETUAL")) >= 2 and seen(BookUpdate, "BTC-PERPETUAL"))
    books = seen(BookUpdate, "BTC-PERPETUAL")
    assert all(b.bids[0][0] < b.asks[0][0] for b in books if b.bids and b.asks)


async def test_place_amend_cancel_fill_and_reconcile_after_restart(world) -> None:  # type: ignore[no-untyped-def]
    desk, server, venue, sub = world
    # passive (below the best bid) but inside the engine's price band, which refuses prices far from the mark
    far = D(repr(desk.quote("BTC-PERPETUAL").bid - 20)).quantize(D("0.5"))
    rest = await venue.place(OrderRequest("BTC-PERPETUAL", Side.BUY, D("100"), far, client_order_id="e2e-1"))
    assert rest.status is OrderStatus.OPEN
    assert [o.request.client_order_id for o in desk.open_orders()] == ["e2e-1"]
    amended = await venue.amend(rest.order_id, price=far - D("10"))
    assert amended.request.price == far - D("10")
    assert desk.open_orders()[0].request.price == far - D("10")
    assert (await venue.cancel(rest.order_id)).status is OrderStatus.CANCELLED
    assert desk.open_orders() == []
    sub.drain()
    taken = await venue.place(
        OrderRequest("BTC-PERPETUAL", Side.BUY, D("200"), None, OrderType.MARKET, client_order_id="e2e-2")
    )
    assert taken.status is OrderStatus.FILLED

    def fills() -> list[FillEvent]:
        return [e for e in list(sub._queue) if isinstance(e, FillEvent)]

    await wait_for(lambda: fills())
    assert {f.fill.client_order_id for f in fills()} == {"e2e-2"}
    assert sum(f.fill.amount for f in fills()) == D("200")
    # a new process: the connector finds what happened to its intents by client order id
    again = make_venue(server)
    await again.connect(Bus())
    try:
        out = await again.reconcile(["e2e-1", "e2e-2", "e2e-3"])
    finally:
        await again.close()
    assert out["orders"]["e2e-1"].status == "cancelled" and out["orders"]["e2e-2"].status == "filled"
    assert out["orders"]["e2e-3"] is None
    assert {f.client_order_id for f in out["fills"]} == {"e2e-2"}
    assert [(p.instrument, p.size) for p in out["positions"]] == [("BTC-PERPETUAL", D("200"))]


async def test_margin_check_agrees_with_the_venue_it_replicates(world) -> None:  # type: ignore[no-untyped-def]
    desk, _, venue, _ = world
    opt = atm_option(desk, venue)
    q = await venue.quote(opt)
    await venue.place(
        OrderRequest(
            opt, Side.SELL, D("1"), D(str(q.bid)) if q.bid else D("0.0005"), OrderType.LIMIT, tif=TimeInForce.IOC
        )
    )
    await desk.stop()  # freeze the market so both sides see the same marks
    rows = await margin_drift(venue)
    btc = next(r for r in rows if r.currency == "BTC")
    assert btc.positions >= 1 and btc.venue_im > 0 and btc.venue_mm > 0
    assert btc.im_drift == pytest.approx(0.0, abs=1e-6 + 1e-3 * btc.venue_im)
    assert btc.mm_drift == pytest.approx(0.0, abs=1e-6 + 1e-3 * btc.venue_mm)
