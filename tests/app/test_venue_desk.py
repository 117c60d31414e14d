"""VenueDesk end to end over loopback venues: the embedded desk served over Deribit's API (a real Desk, its matching and
margin engines, driven through ccxt), and the OKX and Bybit fakes speaking their own wire formats."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import pytest_asyncio

from app.desk import Desk
from app.domain import (
    Alert,
    Fill,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionUpdate,
    Side,
)
from app.errors import UnknownInstrument
from app.venue_desk import VenueDesk
from connectors.base import Backoff, Credentials
from connectors.ccxt_venue import CcxtVenue
from connectors.deribit_api.desk_backend import DeskBackend
from connectors.deribit_api.server import DeribitApiServer

pytestmark = pytest.mark.asyncio(loop_scope="module")
CREDS = Credentials("desk-key", "desk-secret")
D = Decimal


def make_venue(server: DeribitApiServer) -> CcxtVenue:
    return CcxtVenue("deribit", credentials=CREDS, rest_url=server.rest_url, ws_url=server.ws_url,
                     enable_rate_limit=False, backoff=lambda: Backoff(initial_s=0.01, max_s=0.05, seed=3))


def make_desk(venue: CcxtVenue) -> VenueDesk:
    return VenueDesk(venue, stream_expiries=1, margin_interval_s=0.2, reconcile_interval_s=0.3, tick_s=0.05)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world():  # type: ignore[no-untyped-def]
    desk = Desk(seed=7, speed=30.0)
    await desk.start()
    server = await DeribitApiServer(DeskBackend(desk), credentials=CREDS).start()
    vd = make_desk(make_venue(server))
    await vd.start()
    yield desk, server, vd
    await vd.close()
    await server.stop()
    await desk.stop()


async def wait_for(pred, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met")
        await asyncio.sleep(0.02)


def far_bid(desk: Desk) -> Decimal:
    px = D(int(desk.index_price("BTC") * 0.8))
    return px - px % D("0.5")


async def test_markets_and_a_chain_with_the_venues_ivs(world) -> None:  # type: ignore[no-untyped-def]
    desk, _, vd = world
    snap = vd.snapshot()
    assert snap.venue == "deribit"
    assert set(snap.instruments) == {i.name for i in desk.instruments()}
    btc = snap.chains["BTC"]
    assert [s.expiry_ms for s in btc] == desk.expiries("BTC")
    sl = btc[1]
    call = min((r for r in sl.rows if r.option_type.value == "call"), key=lambda r: abs(r.strike - sl.forward))
    assert 0.05 < call.mark_iv < 3.0 and call.bid_iv is not None and call.ask_iv is not None
    assert 0.2 < call.delta < 0.8 and call.gamma > 0 and call.vega > 0 and call.theta < 0
    mine = next(r for r in desk.chain("BTC", sl.expiry_ms).rows if r.instrument == call.instrument)
    assert call.mark_iv == pytest.approx(mine.mark_iv, abs=0.05)  # the same market, a few ticks apart
    assert call.delta == pytest.approx(mine.delta, abs=0.08) and call.vega == pytest.approx(mine.vega, rel=0.2)
    assert snap.index_prices["btc_usd"] == pytest.approx(desk.index_price("BTC"), rel=0.05)
    events = vd.counters["events"]
    await wait_for(lambda: vd.counters["events"] > events + 20)  # tickers keep streaming into the chain
    assert vd.quote("BTC-PERPETUAL") is not None and vd.quote("BTC-PERPETUAL").mark_price > 0


async def test_place_amend_cancel(world) -> None:  # type: ignore[no-untyped-def]
    desk, _, vd = world
    far = far_bid(desk)
    rest = await vd.place(OrderRequest("BTC-PERPETUAL", Side.BUY, D("100"), far, client_order_id="vd-rest"))
    assert rest.status is OrderStatus.OPEN and [o.order_id for o in vd.open_orders()] == [rest.order_id]
    assert [o.request.client_order_id for o in desk.open_orders()] == ["vd-rest"]
    amended = await vd.amend(rest.order_id, price=far - D("10"))
    assert amended.request.price == far - D("10") and desk.open_orders()[0].request.price == far - D("10")
    await wait_for(lambda: vd.orders[rest.order_id].request.price == far - D("10"))
    cancelled = await vd.cancel(rest.order_id)
    assert cancelled.status is OrderStatus.CANCELLED
    await wait_for(lambda: vd.open_orders() == [])
    assert desk.open_orders() == [] and vd.counters["orders"] == 1
    with pytest.raises(UnknownInstrument):
        await vd.place(OrderRequest("BTC-NOPE", Side.BUY, D("100"), far))


async def test_a_marketable_order_fills_and_the_position_margin_and_what_if_follow(world) -> None:  # type: ignore[no-untyped-def]
    desk, _, vd = world
    sub = vd.subscribe({"position_update"})
    taken = await vd.place(OrderRequest("BTC-PERPETUAL", Side.BUY, D("200"), None, OrderType.MARKET,
                                        client_order_id="vd-fill"))
    assert taken.status is OrderStatus.FILLED
    await wait_for(lambda: {p.instrument: p.size for p in vd.positions()} == {"BTC-PERPETUAL": 200.0})
    assert vd.counters["fills"] == 1 and any(isinstance(e, PositionUpdate) for e in sub.drain())
    pos = vd.positions()[0]
    assert pos.greeks.delta == pytest.approx(200 / vd.index_price("BTC"), rel=0.02)  # inverse perpetual: USD / index
    assert vd.portfolio()["BTC"].delta == pytest.approx(pos.greeks.delta)
    await wait_for(lambda: "BTC" in vd.margin() and vd.margin()["BTC"].initial_margin > 0
                   and "replica_im" in vd.margin()["BTC"].details)
    btc = vd.margin()["BTC"]
    venue_im = desk.margin()["BTC"].initial_margin
    assert btc.initial_margin > 0 and btc.details["source"] == "venue"
    assert btc.initial_margin == pytest.approx(venue_im, rel=0.05)  # what the served engine says, through the API
    assert btc.details["replica_im"] == pytest.approx(btc.initial_margin, rel=0.05)
    more = vd.what_if([OrderRequest("BTC-PERPETUAL", Side.BUY, D("10000"), None, OrderType.MARKET)])
    assert more["BTC"].initial_margin > 10 * btc.initial_margin
    assert {p.instrument: p.size for p in vd.positions()} == {"BTC-PERPETUAL": 200.0}  # what-if changes nothing
    with pytest.raises(UnknownInstrument):
        vd.what_if([OrderRequest("ETH-NOPE", Side.BUY, D("1"), D("1"))])


async def test_the_venues_funding_shows_on_the_position(world) -> None:  # type: ignore[no-untyped-def]
    desk, _, vd = world
    await wait_for(lambda: {p.instrument for p in vd.positions()} == {"BTC-PERPETUAL"})
    inst = desk.venue.instruments_by_name["BTC-PERPETUAL"]
    # The served venue books a large 8-hour funding (0.4 %, longs pay) on our 200 USD long.
    desk.venue.settlement.funding(inst, 0.004, desk.index_price("BTC"), 8 * 3_600_000, desk.now_ms())
    paid = -200 * 0.004 / desk.index_price("BTC")

    def served() -> float:
        return float(desk.venue.funding_of(desk.account, inst.name))

    assert served() == pytest.approx(paid, rel=0.01)  # (plus the sim's own funding, a few 1e-9 BTC a step)
    await wait_for(lambda: vd.positions()[0].funding == pytest.approx(served(), rel=1e-3))  # through get_positions
    assert vd.positions()[0].net_realized < paid * 0.99


async def test_a_restart_reconciles_without_rebooking_or_resending(world) -> None:  # type: ignore[no-untyped-def]
    desk, server, vd = world
    resting = await vd.place(OrderRequest("BTC-PERPETUAL", Side.BUY, D("100"), far_bid(desk), client_order_id="vd-open"))
    again = make_desk(make_venue(server))
    await again.connect()
    try:
        assert {p.instrument: p.size for p in again.positions()} == {"BTC-PERPETUAL": 200.0}
        assert again.reconciled["positions"] == 1 and again.reconciled["fills"] >= 1
        (still,) = again.open_orders()  # the open order is found with its side and price
        assert (still.order_id, still.request.side, still.request.price) == (resting.order_id, Side.BUY,
                                                                             resting.request.price)
        sent = desk.counters["orders"]
        same = await again.place(OrderRequest("BTC-PERPETUAL", Side.BUY, D("200"), None, OrderType.MARKET,
                                              client_order_id="vd-fill"))
        assert same.status is OrderStatus.FILLED and same.order_id == vd.by_client_id["vd-fill"]
        dup = await again.place(OrderRequest("BTC-PERPETUAL", Side.BUY, D("100"), far_bid(desk),
                                             client_order_id="vd-open"))
        assert dup.order_id == resting.order_id and dup.status is OrderStatus.OPEN
        assert desk.counters["orders"] == sent and again.counters["resends_avoided"] == 2
        assert again.counters["orders"] == 0 and again.counters["fills"] == 0
        assert (await again.cancel(resting.order_id)).status is OrderStatus.CANCELLED
        await wait_for(lambda: vd.open_orders() == [] and again.open_orders() == [])  # both desks hear it
        # a fill the book missed: corrected once the venue's position disagrees twice in a row
        inst = again.instruments_by_name["BTC-PERPETUAL"]
        ghost = Fill("ghost", "", inst.name, Side.BUY, D("60000"), D("100"), D(0), "BTC", Liquidity.TAKER,
                     again.now_ms(), "main", venue="deribit")
        again.book.apply_fill(ghost, inst)
        assert await again.check_positions() == 0 and await again.check_positions() == 1
        assert {p.instrument: p.size for p in again.positions()} == {"BTC-PERPETUAL": 200.0}
        assert any(isinstance(e, Alert) and e.code == "position.drift" for e in again.recent)
    finally:
        await again.close()
    assert vd.counters["fills"] == 1 and vd.counters["position_drifts"] == 0  # the running desk booked it once


async def test_dropped_websockets_are_survived_counted_and_quotes_keep_coming(world) -> None:  # type: ignore[no-untyped-def]
    _, server, vd = world
    before = vd.connection()["disconnects"]
    assert await server.drop_websockets() >= 1
    await wait_for(lambda: vd.connection()["disconnects"] > before and vd.connection()["resyncs"] >= 1)
    quotes = vd.subscribe({"quote"})
    await wait_for(lambda: len({q.instrument for q in list(quotes._queue)}) >= 5)  # streamed tickers again
    quotes.close()
    summary = vd.summary()
    assert summary["connection"]["disconnects"] > before and summary["connection"]["reconnects"] >= 1
    assert summary["our_fills"] == 1 and summary["positions"] == {"BTC-PERPETUAL": "200.0"}


# -- OKX and Bybit through their loopback fakes ---------------------------------------------------------


async def test_okx_market_data_and_orders() -> None:
    from tests.connectors import fake_okx

    srv = await fake_okx.FakeOkx().start()
    venue = CcxtVenue("okx", credentials=Credentials(fake_okx.KEY, fake_okx.SECRET, fake_okx.PASSPHRASE),
                      rest_url=srv.url, ws_url=srv.ws_url, enable_rate_limit=False,
                      backoff=lambda: Backoff(0.01, 0.05, seed=2))
    venue._private_started = True  # the fake serves public websockets only
    vd = make_desk(venue)
    try:
        await vd.connect()
        (expiry,) = vd.expiries("BTC")
        sl = vd.chain("BTC", expiry)
        assert {r.instrument for r in sl.rows} == {i.name for i in vd.instruments("BTC") if i.is_option}
        assert all(r.mark_iv == pytest.approx(0.55) for r in sl.rows)  # from OKX's option summary
        call = next(r for r in sl.rows if r.option_type.value == "call")
        assert call.bid == 0.04 and call.ask == 0.042
        # OKX tickers send no greeks: computed from its mark IV on the perpetual's price (the fake has no index)
        assert 0.3 < call.delta < 0.6 and call.vega > 0 and vd.index_price("BTC") == pytest.approx(60000, rel=1e-3)
        await wait_for(lambda: "BTC-PERPETUAL" in vd.books and vd.depth("BTC-PERPETUAL")[0])
        await srv.move(srv.call, "0.0410", "0.0430")
        await wait_for(lambda: vd.quote(call.instrument).bid == 0.041)
        o = await vd.place(OrderRequest(call.instrument, Side.BUY, D("0.05"), D("0.0351"), client_order_id="okx1"))
        assert o.status is OrderStatus.OPEN and vd.open_orders()[0].order_id == o.order_id
        assert (await vd.amend(o.order_id, price=D("0.036"))).request.price == D("0.036")
        assert (await vd.cancel(o.order_id)).status is OrderStatus.CANCELLED
        await wait_for(lambda: vd.open_orders() == [])
        taken = await vd.place(OrderRequest(call.instrument, Side.BUY, D("0.02"), None, OrderType.MARKET))
        assert taken.status is OrderStatus.FILLED and vd.counters["orders"] == 2
    finally:
        await vd.close()
        await srv.stop()


async def test_bybit_market_data_and_orders() -> None:
    from tests.connectors import fake_bybit

    srv = await fake_bybit.FakeBybit().start()
    venue = CcxtVenue("bybit", credentials=Credentials(fake_bybit.KEY, fake_bybit.SECRET), rest_url=srv.url,
                      ws_url=srv.ws_url, enable_rate_limit=False, backoff=lambda: Backoff(0.01, 0.05, seed=2))
    venue._private_started = True
    vd = make_desk(venue)
    try:
        await vd.connect()
        (expiry,) = vd.expiries("BTC")
        rows = {r.instrument: r for r in vd.chain("BTC", expiry).rows}
        call = next(r for r in rows.values() if r.option_type.value == "call")
        assert call.instrument.startswith("BTC_USDC-") and call.mark_iv == pytest.approx(0.55)
        assert 0.3 < call.delta < 0.7 and call.vega > 0  # the REST chain has no greeks: from the mark IV (USDC view)
        await wait_for(lambda: vd.quote(call.instrument).venue_delta is not None)  # the streamed ticker has them
        streamed = next(r for r in vd.chain("BTC", expiry).rows if r.instrument == call.instrument)
        assert streamed.delta == pytest.approx(0.5) and streamed.bid_iv == pytest.approx(0.54)  # as the venue sent
        await srv.move(srv.call, "2450", "2550")
        await wait_for(lambda: vd.quote(call.instrument).bid == 2450.0)
        o = await vd.place(OrderRequest(call.instrument, Side.BUY, D("0.5"), D("2003"), client_order_id="by-1"))
        assert o.status is OrderStatus.OPEN and o.request.price == D("2000")
        assert (await vd.amend(o.order_id, price=D("2100"))).request.price == D("2100")
        assert (await vd.cancel(o.order_id)).status is OrderStatus.CANCELLED
        taken = await vd.place(OrderRequest(call.instrument, Side.BUY, D("0.1"), None, OrderType.MARKET))
        assert taken.status is OrderStatus.FILLED
    finally:
        await vd.close()
        await srv.stop()


async def test_a_hedger_runs_on_the_venue_desk_and_sees_the_venues_index(world) -> None:  # type: ignore[no-untyped-def]
    from app.config import Settings
    from app.headless import build_strategies
    from strategies.memory_store import MemoryStore

    _, _, vd = world
    vd.store = MemoryStore()
    (runner,) = build_strategies(vd, ["hedger"], Settings())
    await runner.start()
    await wait_for(lambda: any(d.get("code") not in (None, "pause.no_index") for d in runner.last_decisions))
    assert runner.status().status == "dry_run" and runner.sent == 0
    assert (await vd.strategy_control("hedger", "pause")).status == "paused"


async def test_an_option_bought_outside_the_streamed_expiries_joins_the_streams(world) -> None:  # type: ignore[no-untyped-def]
    from app.domain import TimeInForce

    _, _, vd = world
    sl = vd.chain("BTC", vd.expiries("BTC")[3])
    row = min((r for r in sl.rows if r.option_type.value == "call" and r.ask), key=lambda r: abs(r.strike - sl.forward))
    assert row.instrument not in vd.stream_names()
    await vd.place(OrderRequest(row.instrument, Side.BUY, D("1"), D(str(row.ask)) + D("0.005"), tif=TimeInForce.IOC))
    await wait_for(lambda: row.instrument in {p.instrument for p in vd.positions()})
    pos = next(p for p in vd.positions() if p.instrument == row.instrument)
    assert pos.size == 1.0 and 0.2 < pos.greeks.delta < 0.8 and pos.greeks.vega > 0 and pos.greeks.theta < 0
    quotes = vd.subscribe({"quote"})
    await wait_for(lambda: any(q.instrument == row.instrument for q in list(quotes._queue)))  # now streamed
    quotes.close()
    now = next(p for p in vd.positions() if p.instrument == row.instrument)  # read at the same instant
    assert vd.portfolio()["BTC"].vega == pytest.approx(now.greeks.vega)  # the perpetual has none


async def test_the_venue_desk_alerts_at_the_configured_margin_levels() -> None:
    from types import SimpleNamespace

    from app.analytics import alert_levels
    from app.config import Settings
    from app.venue_desk import VenueDesk

    vd = VenueDesk(SimpleNamespace(name="deribit"), Settings(margin={"alert_levels": [0.9, 0.3, 0.6]}))  # type: ignore[arg-type]
    assert vd.alert_levels == (0.3, 0.6, 0.9) and alert_levels(vd) == (0.3, 0.6, 0.9)
