"""The same ccxt venue code on OKX and Bybit options, against loopback fakes speaking their wire formats."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.bus import Bus
from app.domain import FillEvent, Kind, OrderRequest, OrderStatus, OrderType, Side
from app.errors import AuthError, OrderRejected
from connectors.base import Credentials
from connectors.ccxt_venue import CcxtVenue
from tests.connectors import fake_okx

D = Decimal


@pytest.fixture
async def okx():
    srv = await fake_okx.FakeOkx().start()
    yield srv
    await srv.stop()


async def connect_okx(srv: fake_okx.FakeOkx, creds: Credentials | None = None) -> tuple[CcxtVenue, object]:
    creds = creds or Credentials(fake_okx.KEY, fake_okx.SECRET, fake_okx.PASSPHRASE)
    venue = CcxtVenue("okx", credentials=creds, rest_url=srv.url, enable_rate_limit=False)
    bus = Bus()
    sub = bus.subscribe()
    venue._private_started = True  # REST only here: the fakes serve no websocket
    await venue.connect(bus)
    return venue, sub


async def test_okx_markets_in_desk_conventions(okx: fake_okx.FakeOkx) -> None:
    venue, _ = await connect_okx(okx)
    try:
        insts = {i.name: i for i in await venue.instruments()}
        exp = okx.call.split("-")[2]
        names = sorted(insts)
        assert "BTC-PERPETUAL" in names and len(names) == 3
        call = next(i for i in insts.values() if i.is_option and i.is_call)
        assert call.is_inverse and call.strike == 60000 and call.expiry_ms == okx.exp_ms
        assert call.min_amount == D("0.01") and call.contract_size == 1 and call.tick_size == D("0.0005")
        assert venue.catalog.size(call.name) == D("0.01") and call.name.endswith("-60000-C") and exp
        perp = insts["BTC-PERPETUAL"]
        assert perp.kind is Kind.PERPETUAL and perp.contract_size == 100 and perp.min_amount == 100
    finally:
        await venue.close()


async def test_okx_quotes_chain_and_book(okx: fake_okx.FakeOkx) -> None:
    venue, _ = await connect_okx(okx)
    try:
        call = next(i for i in await venue.instruments() if i.is_option and i.is_call)
        q = await venue.quote(call.name)
        assert q.bid == 0.04 and q.ask == 0.042 and q.mark_iv == pytest.approx(0.55) and q.venue_delta == 0.5
        # sizes in desk amounts like the book's: 50 and 40 contracts x 0.01 BTC; the swap's 1000 x 100 USD
        assert (q.bid_size, q.ask_size) == (pytest.approx(0.5), pytest.approx(0.4))
        perp = await venue.quote("BTC-PERPETUAL")
        assert perp.bid_size == pytest.approx(100_000) == (await venue.book("BTC-PERPETUAL", 5)).bids[0][1]
        # open interest (OKX oi, contracts, from its own endpoint) in desk amounts, the same in quote and chain
        assert q.open_interest == pytest.approx(3.0) and perp.open_interest == pytest.approx(500_000)
        assert {c.instrument: c.open_interest for c in await venue.chain("BTC")}[call.name] == pytest.approx(3.0)
        chain = await venue.chain("BTC")
        assert len(chain) == 2 and all(c.mark_iv == pytest.approx(0.55) for c in chain)
        book = await venue.book(call.name, 5)
        assert book.bids[0] == (0.04, pytest.approx(0.5)) and book.asks[0] == (
            0.042,
            pytest.approx(0.4),
        )  # 50 x 0.01 BTC
    finally:
        await venue.close()


async def test_okx_orders_place_amend_cancel_fill(okx: fake_okx.FakeOkx) -> None:
    venue, sub = await connect_okx(okx)
    try:
        call = next(i for i in await venue.instruments() if i.is_option and i.is_call)
        o = await venue.place(OrderRequest(call.name, Side.BUY, D("0.05"), D("0.0351"), client_order_id="okx1"))
        sent = next(iter(okx.orders.values()))
        assert sent["sz"] == "5" and sent["px"] == "0.035" and sent["clOrdId"] == "okx1"  # contracts, step grid
        assert o.status is OrderStatus.OPEN and o.request.amount == D("0.05") and o.request.client_order_id == "okx1"
        amended = await venue.amend(o.order_id, price=D("0.036"))
        assert amended.request.price == D("0.036") and okx.orders[o.order_id]["px"] == "0.036"
        assert [r.client_order_id for r in await venue.order_reports(open_only=True)] == ["okx1"]
        cancelled = await venue.cancel(o.order_id)
        assert cancelled.status is OrderStatus.CANCELLED
        taken = await venue.place(OrderRequest(call.name, Side.BUY, D("0.02"), None, OrderType.MARKET))
        assert taken.status is OrderStatus.FILLED and taken.filled == D("0.02") and taken.request.client_order_id
        with pytest.raises(OrderRejected) as bad:
            await venue.place(OrderRequest(call.name, Side.BUY, D("0.05"), D("0.03"), client_order_id="no-dashes"))
        assert bad.value.code == "order.rejected.client_id"
        with pytest.raises(OrderRejected) as lot:
            await venue.place(OrderRequest(call.name, Side.BUY, D("0.015"), D("0.03")))
        assert lot.value.code == "order.rejected.lot"
        assert not [e for e in sub.drain() if isinstance(e, FillEvent)]  # OKX acks carry no trades
    finally:
        await venue.close()


async def test_okx_refuses_a_bad_signature(okx: fake_okx.FakeOkx) -> None:
    bad = CcxtVenue(
        "okx",
        credentials=Credentials(fake_okx.KEY, "wrong", fake_okx.PASSPHRASE),
        rest_url=okx.url,
        enable_rate_limit=False,
    )
    bad._private_started = True
    with pytest.raises(AuthError):
        await bad.connect(Bus())  # loading currencies is a signed call on OKX
    await bad.close()
    assert "wrong" not in repr(bad) and "okx-pass" not in repr(Credentials("k", "s", "okx-pass"))


@pytest.fixture
async def bybit():
    from tests.connectors import fake_bybit

    srv = await fake_bybit.FakeBybit().start()
    yield srv
    await srv.stop()


async def connect_bybit(srv) -> tuple[CcxtVenue, object]:  # type: ignore[no-untyped-def]
    from tests.connectors import fake_bybit

    venue = CcxtVenue(
        "bybit", credentials=Credentials(fake_bybit.KEY, fake_bybit.SECRET), rest_url=srv.url, enable_rate_limit=False
    )
    bus = Bus()
    sub = bus.subscribe()
    venue._private_started = True  # REST only here: the fake serves no websocket
    await venue.connect(bus)
    return venue, sub


async def test_bybit_usdc_options_market_data(bybit) -> None:  # type: ignore[no-untyped-def]
    venue, _ = await connect_bybit(bybit)
    try:
        insts = {i.name: i for i in await venue.instruments()}
        call = insts["BTC_USDC-" + bybit.call.split("-", 1)[1]]
        assert (
            not call.is_inverse and call.settlement == "USDC" and call.tick_size == 5 and call.min_amount == D("0.01")
        )
        assert insts["BTC_USDT-PERPETUAL"].kind is Kind.PERPETUAL
        q = await venue.quote(call.name)
        assert (q.bid, q.ask, q.mark_iv, q.venue_delta, q.underlying_price) == (2400.0, 2500.0, 0.55, 0.5, 60100.0)
        chain = await venue.chain("BTC")
        assert q.open_interest == 12.5 == {c.instrument: c for c in chain}[call.name].open_interest  # openInterest
        assert {c.instrument for c in chain} == {n for n in insts if n.startswith("BTC_USDC-")}
        assert all(c.mark_iv == pytest.approx(0.55) for c in chain)
        book = await venue.book(call.name, 5)
        assert book.bids[0] == (2400.0, 5.0)
    finally:
        await venue.close()


async def test_bybit_orders_place_amend_cancel(bybit) -> None:  # type: ignore[no-untyped-def]
    venue, _ = await connect_bybit(bybit)
    try:
        call = next(i for i in await venue.instruments() if i.is_option and i.is_call)
        o = await venue.place(OrderRequest(call.name, Side.BUY, D("0.5"), D("2003"), client_order_id="by-1"))
        sent = bybit.orders[o.order_id]
        assert sent["price"] == "2000" and sent["qty"] == "0.5" and sent["orderLinkId"] == "by-1"
        assert o.status is OrderStatus.OPEN and o.request.client_order_id == "by-1"
        amended = await venue.amend(o.order_id, price=D("2100"))
        assert amended.request.price == D("2100") and bybit.orders[o.order_id]["price"] == "2100"
        assert [r.order_id for r in await venue.order_reports(open_only=True)] == [o.order_id]
        assert (await venue.cancel(o.order_id)).status is OrderStatus.CANCELLED
        taken = await venue.place(OrderRequest(call.name, Side.BUY, D("0.1"), None, OrderType.MARKET))
        assert taken.status is OrderStatus.FILLED and taken.request.client_order_id.startswith("dd")
    finally:
        await venue.close()


async def test_okx_streams_tickers_and_books_through_ccxt_pro_and_survives_a_drop(okx: fake_okx.FakeOkx) -> None:
    import asyncio

    from app.domain import BookUpdate, Quote
    from connectors.base import Backoff

    venue = CcxtVenue(
        "okx",
        credentials=Credentials(fake_okx.KEY, fake_okx.SECRET, fake_okx.PASSPHRASE),
        rest_url=okx.url,
        ws_url=okx.ws_url,
        enable_rate_limit=False,
        backoff=lambda: Backoff(0.01, 0.05, seed=2),
    )
    venue._private_started = True
    bus = Bus()
    sub = bus.subscribe()
    await venue.connect(bus)
    call = next(i for i in await venue.instruments() if i.is_option and i.is_call)

    async def wait_for(pred) -> None:  # type: ignore[no-untyped-def]
        for _ in range(250):
            if pred():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("condition not met in time")

    def books() -> list[BookUpdate]:
        return [e for e in list(sub._queue) if isinstance(e, BookUpdate) and e.instrument == call.name]

    try:
        await venue.subscribe([call.name], ["ticker", "book"])
        await wait_for(lambda: books() and any(isinstance(e, Quote) for e in list(sub._queue)))
        assert books()[0].bids[0] == (0.04, pytest.approx(0.5))  # 50 contracts x 0.01 BTC
        await okx.move(okx.call, "0.0410", "0.0430")
        await wait_for(lambda: any(b.bids[0][0] == 0.041 for b in books()))
        latest = books()[-1]
        assert latest.bids == ((0.041, pytest.approx(0.5)),) and latest.asks == ((0.043, pytest.approx(0.4)),)
        quotes = [e for e in list(sub._queue) if isinstance(e, Quote)]
        assert quotes[-1].bid == 0.041 and quotes[-1].venue == "okx"
        assert quotes[-1].bid_size == pytest.approx(0.5)  # streamed sizes in desk amounts too
        sub.drain()
        assert await okx.drop() == 1
        await wait_for(lambda: venue.stats.disconnects >= 1 and books())
        await okx.move(okx.call, "0.0405", "0.0425")
        await wait_for(lambda: any(b.bids[0][0] == 0.0405 for b in books()))
        assert all(len(b.bids) == 1 for b in books())  # no stale level survives the reconnect
    finally:
        await venue.close()


async def test_bybit_streams_option_tickers_with_ivs_and_books_and_survives_a_drop(bybit) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from app.domain import BookUpdate, Quote
    from connectors.base import Backoff
    from tests.connectors import fake_bybit

    venue = CcxtVenue(
        "bybit",
        credentials=Credentials(fake_bybit.KEY, fake_bybit.SECRET),
        rest_url=bybit.url,
        ws_url=bybit.ws_url,
        enable_rate_limit=False,
        backoff=lambda: Backoff(0.01, 0.05, seed=2),
    )
    venue._private_started = True
    bus = Bus()
    sub = bus.subscribe()
    await venue.connect(bus)
    call = next(i for i in await venue.instruments() if i.is_option and i.is_call)

    async def wait_for(pred) -> None:  # type: ignore[no-untyped-def]
        for _ in range(250):
            if pred():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("condition not met in time")

    def seen(kind):  # type: ignore[no-untyped-def]
        return [e for e in list(sub._queue) if isinstance(e, kind) and e.instrument == call.name]

    try:
        await venue.subscribe([call.name], ["ticker", "book"])
        await wait_for(lambda: seen(BookUpdate) and seen(Quote))
        q = seen(Quote)[-1]
        assert (q.bid, q.ask, q.mark_iv, q.bid_iv, q.venue_delta) == (2400.0, 2500.0, 0.55, 0.54, 0.5)
        await bybit.move(bybit.call, "2450", "2550")
        await wait_for(lambda: any(b.bids[0][0] == 2450.0 for b in seen(BookUpdate)))
        assert seen(BookUpdate)[-1].bids == ((2450.0, 5.0),)
        sub.drain()
        assert await bybit.drop() >= 1
        await wait_for(lambda: venue.stats.disconnects >= 1 and seen(BookUpdate))
        await bybit.move(bybit.call, "2400", "2500")
        await wait_for(lambda: any(b.bids[0][0] == 2400.0 for b in seen(BookUpdate)))
        assert all(len(b.bids) == 1 for b in seen(BookUpdate))
    finally:
        await venue.close()
