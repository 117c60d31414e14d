"""Orders that change while the private stream is down: after the reconnect the desk hears their final state once.

Against the OKX and Bybit fakes (the venue fills and cancels resting orders, then ``resync_orders`` runs as after a
reconnect) and end to end against the Deribit API server (the websocket is dropped and a fill lands meanwhile).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from app.bus import Bus
from app.domain import FillEvent, OrderRequest, OrderStatus, OrderUpdate, Side
from connectors.base import Backoff, Credentials
from connectors.ccxt_venue import CcxtVenue
from connectors.deribit_api.server import DeribitApiServer
from tests.connectors import fake_bybit, fake_okx
from tests.connectors.conftest import KEY, SECRET
from tests.connectors.paper_backend import PaperBackend

D = Decimal


async def _venue(exchange: str, srv, creds: Credentials):  # type: ignore[no-untyped-def]
    venue = CcxtVenue(exchange, credentials=creds, rest_url=srv.url, enable_rate_limit=False)
    venue._private_started = True  # the fakes serve no private websocket: resync_orders is called as on reconnect
    bus = Bus()
    sub = bus.subscribe()
    await venue.connect(bus)
    return venue, sub


def _updates(sub) -> list:  # type: ignore[no-untyped-def]
    return [(e.order.order_id, e.order.status, e.order.filled) for e in sub.drain() if isinstance(e, OrderUpdate)]


@pytest.mark.parametrize("exchange", ["okx", "bybit"])
async def test_orders_filled_or_cancelled_meanwhile_are_published_once(exchange: str) -> None:
    if exchange == "okx":
        srv = await fake_okx.FakeOkx().start()
        creds = Credentials(fake_okx.KEY, fake_okx.SECRET, fake_okx.PASSPHRASE)
        price, amount, part = D("0.035"), D("0.05"), ("2", D("0.02"))  # 5 contracts of 0.01 BTC; 2 fill
    else:
        srv = await fake_bybit.FakeBybit().start()
        creds = Credentials(fake_bybit.KEY, fake_bybit.SECRET)
        price, amount, part = D("2000"), D("0.5"), ("0.2", D("0.2"))
    venue, sub = await _venue(exchange, srv, creds)
    try:
        call = next(i.name for i in await venue.instruments() if i.is_option and i.is_call)
        a, b, c, d = [
            await venue.place(OrderRequest(call, Side.BUY, amount, price, client_order_id=f"rs{k}")) for k in "abcd"
        ]
        assert {o.status for o in (a, b, c, d)} == {OrderStatus.OPEN}
        sub.drain()
        # while we are away: a fills, b fills in part and the venue cancels the rest, c fills in part and rests
        srv.fill_resting(a.order_id)
        srv.fill_resting(b.order_id, part[0])
        srv.cancel_by_venue(b.order_id)
        srv.fill_resting(c.order_id, part[0])
        # d fills and the private stream says so before the resync asks
        srv.fill_resting(d.order_id)
        raw = await venue.ex.fetch_order(d.order_id, venue.catalog.symbol(call), dict(venue.table.fetch_order_params))
        venue.execution.on_ws_orders([raw])
        assert _updates(sub) == [(d.order_id, OrderStatus.FILLED, amount)]

        assert await venue.execution.resync_orders() == 3
        got = {oid: (status, filled) for oid, status, filled in _updates(sub)}
        assert got == {
            a.order_id: (OrderStatus.FILLED, amount),
            b.order_id: (OrderStatus.CANCELLED, part[1]),
            c.order_id: (OrderStatus.OPEN, part[1]),
        }
        assert await venue.execution.resync_orders() == 0  # exactly once: nothing new the second time
        assert _updates(sub) == []
    finally:
        await venue.close()
        await srv.stop()


async def test_deribit_a_fill_while_the_socket_is_down_closes_the_order() -> None:
    paper = PaperBackend()
    server = await DeribitApiServer(paper, credentials=Credentials(KEY, SECRET)).start("127.0.0.1", 0)
    venue = CcxtVenue(
        "deribit",
        credentials=Credentials(KEY, SECRET),
        rest_url=server.rest_url,
        ws_url=server.ws_url,
        enable_rate_limit=False,
        backoff=lambda: Backoff(initial_s=0.5, max_s=0.5, seed=1),  # long enough for the fill to land meanwhile
    )
    bus = Bus()
    sub = bus.subscribe()
    await venue.connect(bus)
    loop = asyncio.get_running_loop()

    async def wait_for(pred, timeout: float = 8.0) -> None:  # type: ignore[no-untyped-def]
        end = loop.time() + timeout
        while not pred():
            assert loop.time() < end, "condition not met in time"
            await asyncio.sleep(0.02)

    try:
        await asyncio.sleep(0.5)  # the private streams subscribe
        o = await venue.place(OrderRequest(paper.call, Side.BUY, D("0.1"), D("0.041"), client_order_id="rest-1"))
        assert o.status is OrderStatus.OPEN
        await asyncio.sleep(0.2)
        sub.drain()
        assert await server.drop_websockets() >= 1
        await paper.place(OrderRequest(paper.call, Side.SELL, D("0.1"), D("0.041"), account="mm"))  # lifts our bid
        seen: list = []

        def collect() -> list:
            seen.extend(sub.drain())
            return seen

        await wait_for(lambda: venue.stats.resyncs >= 2 and any(isinstance(e, OrderUpdate) for e in collect()))
        await asyncio.sleep(0.3)  # the second stream's resync has run too
        collect()
        ups = [e.order for e in seen if isinstance(e, OrderUpdate) and e.order.order_id == o.order_id]
        assert [(u.status, u.filled) for u in ups] == [(OrderStatus.FILLED, D("0.1"))]
        fills = [i for i, e in enumerate(seen) if isinstance(e, FillEvent) and e.fill.order_id == o.order_id]
        done = next(i for i, e in enumerate(seen) if isinstance(e, OrderUpdate) and e.order.order_id == o.order_id)
        assert fills and fills[0] < done  # the fill is booked before the order shows filled
    finally:
        await venue.close()
        await server.stop()
