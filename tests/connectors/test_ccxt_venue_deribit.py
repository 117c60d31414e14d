"""The ccxt venue (Deribit) against the embedded venue's Deribit API: market data, orders, streams, reconnects."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from app.bus import Bus
from app.domain import BookUpdate, FillEvent, OrderRequest, OrderStatus, OrderType, Quote, Side
from app.errors import AuthError, InsufficientMargin, OrderRejected, UnknownInstrument
from connectors.base import Backoff, Credentials
from connectors.ccxt_venue import CcxtVenue
from connectors.deribit_api.server import DeribitApiServer
from tests.connectors.conftest import KEY, SECRET
from tests.connectors.paper_backend import PaperBackend

D = Decimal


def make_venue(server: DeribitApiServer, creds: Credentials | None = Credentials(KEY, SECRET)) -> CcxtVenue:
    return CcxtVenue(
        "deribit",
        credentials=creds,
        rest_url=server.rest_url,
        ws_url=server.ws_url,
        enable_rate_limit=False,
        backoff=lambda: Backoff(initial_s=0.01, max_s=0.05, seed=1),
    )


async def wait_for(pred, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def venue(server: DeribitApiServer):
    v = make_venue(server)
    bus = Bus()
    v.test_sub = bus.subscribe()  # type: ignore[attr-defined]
    await v.connect(bus)
    yield v
    await v.close()


async def test_instruments_carry_the_venue_tick_steps(venue: CcxtVenue, paper: PaperBackend) -> None:
    from app.ports import Venue
    from connectors.base import ConnectorVenue

    assert isinstance(venue, Venue) and isinstance(venue, ConnectorVenue)
    insts = {i.name: i for i in await venue.instruments()}
    assert set(insts) == {paper.perp, paper.call, paper.put}
    call = insts[paper.call]
    assert call.tick_steps == ((D("0.005"), D("0.0005")),) and call.min_amount == D("0.1") and call.is_inverse
    assert insts[paper.perp].contract_size == 10 and insts[paper.perp].tick_size == D("0.5")


async def test_quotes_chain_and_book_with_venue_ivs(venue: CcxtVenue, paper: PaperBackend) -> None:
    q = await venue.quote(paper.call)
    assert q.mark_iv == pytest.approx(0.55) and q.bid_iv == pytest.approx(0.54) and q.venue_delta == 0.5
    assert q.bid == 0.04 and q.ask == 0.042 and q.underlying_price == 60000.0
    chain = await venue.chain("BTC")
    assert [c.instrument for c in chain] == sorted([paper.call, paper.put])
    assert all(c.mark_iv == pytest.approx(0.55) for c in chain)  # ccxt leaves impliedVolatility empty
    book = await venue.book(paper.perp, 5)
    assert book.snapshot and book.bids[0] == (59999.5, 10000.0)
    assert await venue.index_price("btc_usd") == 60000.0


async def test_prices_go_on_the_step_grid_before_sending(venue: CcxtVenue, paper: PaperBackend) -> None:
    buy = await venue.place(OrderRequest(paper.call, Side.BUY, D("0.1"), D("0.0123"), client_order_id="g-1"))
    sell = await venue.place(OrderRequest(paper.call, Side.SELL, D("0.1"), D("0.0918"), client_order_id="g-2"))
    assert buy.request.price == D("0.012") and sell.request.price == D("0.092")
    assert buy.status is OrderStatus.OPEN and buy.request.client_order_id == "g-1"
    sent = server_requests = paper.orders_
    before = len(sent)
    with pytest.raises(OrderRejected) as err:
        await venue.place(OrderRequest(paper.call, Side.BUY, D("0.15"), D("0.01")))
    assert err.value.code == "order.rejected.lot" and len(server_requests) == before
    with pytest.raises(UnknownInstrument):
        await venue.place(OrderRequest("BTC-1JAN30-1-C", Side.BUY, D("1"), D("0.01")))


async def test_place_amend_cancel_and_see_the_fill(venue: CcxtVenue, paper: PaperBackend) -> None:
    sub = venue.test_sub  # type: ignore[attr-defined]
    o = await venue.place(OrderRequest(paper.call, Side.BUY, D("0.5"), D("0.035"), client_order_id="h-1"))
    amended = await venue.amend(o.order_id, price=D("0.036"))
    assert amended.request.price == D("0.036") and amended.status is OrderStatus.OPEN
    assert [r.client_order_id for r in await venue.order_reports(open_only=True)] == ["h-1"]
    cancelled = await venue.cancel(o.order_id)
    assert cancelled.status is OrderStatus.CANCELLED
    taken = await venue.place(OrderRequest(paper.call, Side.BUY, D("0.3"), D("0.0421"), client_order_id="h-2"))
    assert taken.status is OrderStatus.FILLED and taken.filled == D("0.3")

    def fills() -> list:
        return [e for e in list(sub._queue) if isinstance(e, FillEvent)]

    await wait_for(lambda: len(fills()) >= 1)
    await asyncio.sleep(0.3)  # the private stream delivers the same fill again: it must not be doubled
    got = fills()
    assert len(got) == 1 and got[0].fill.client_order_id == "h-2" and got[0].fill.price == D("0.042")
    positions = await venue.position_reports()
    assert [(p.instrument, p.size) for p in positions] == [(paper.call, D("0.3"))]
    assert await venue.cancel_all() == 0


async def test_venue_errors_become_typed_desk_errors(
    venue: CcxtVenue, server: DeribitApiServer, paper: PaperBackend
) -> None:
    with pytest.raises(InsufficientMargin):
        await venue.place(OrderRequest(paper.call, Side.SELL, D("100"), D("0.05")))
    bad = make_venue(server, Credentials(KEY, "wrong-secret"))
    await bad.connect(Bus())
    try:
        with pytest.raises(AuthError):
            await bad.account("BTC")
    finally:
        await bad.close()
    assert "wrong" not in repr(bad) and "secret" not in repr(Credentials(KEY, "wrong-secret")).replace(
        "secret='***'", ""
    )


async def test_account_reports_the_venue_margin(venue: CcxtVenue) -> None:
    acc = await venue.account("BTC")
    assert acc.balance == D("10") and acc.raw["margin_model"] == "segregated_sm"
    await venue.place(OrderRequest(venue.catalog.options_of("BTC")[0].name, Side.BUY, D("1"), D("0.02")))
    acc2 = await venue.account("BTC")
    assert acc2.initial_margin > 0 and acc2.maintenance_margin > 0
    assert {b.currency for b in await venue.balances()} == {"BTC"}


async def test_streams_survive_a_dropped_socket_and_resync_the_book(
    venue: CcxtVenue, server: DeribitApiServer, paper: PaperBackend
) -> None:
    sub = venue.test_sub  # type: ignore[attr-defined]
    await venue.subscribe([paper.perp, paper.call], ["ticker", "book"])
    await wait_for(lambda: any(isinstance(e, BookUpdate) for e in list(sub._queue)))
    await wait_for(lambda: any(isinstance(e, Quote) and e.instrument == paper.call for e in list(sub._queue)))
    sub.drain()
    assert await server.drop_websockets() >= 1
    await wait_for(lambda: venue.stats.disconnects >= 1 and venue.stats.resyncs >= 1)
    # the book moves after the reconnect: a taker lifts the offer; the resumed stream shows the new size
    await venue.place(OrderRequest(paper.perp, Side.BUY, D("3000"), price=None, type=OrderType.MARKET))

    def asks_after() -> list:
        return [
            e.asks[0] for e in list(sub._queue) if isinstance(e, BookUpdate) and e.instrument == paper.perp and e.asks
        ]

    await wait_for(lambda: (60000.5, 7000.0) in asks_after())
    books = [e for e in sub.drain() if isinstance(e, BookUpdate) and e.instrument == paper.perp]
    # no stale level survives the resync: every book is a clean, uncrossed snapshot
    assert all(b.snapshot and b.bids[0][0] < b.asks[0][0] for b in books)
    assert venue.stats.as_dict()["disconnects"] >= 1


async def test_reconcile_after_restart_finds_orders_and_fills_by_client_id(
    server: DeribitApiServer, paper: PaperBackend
) -> None:
    first = make_venue(server)
    await first.connect(Bus())
    await first.place(OrderRequest(paper.call, Side.BUY, D("0.2"), D("0.042"), client_order_id="run1-0001"))
    await first.place(OrderRequest(paper.put, Side.BUY, D("0.2"), D("0.025"), client_order_id="run1-0002"))
    await first.close()  # the process "crashes" here
    second = make_venue(server)
    await second.connect(Bus())
    try:
        out = await second.reconcile(["run1-0001", "run1-0002", "run1-0003"])
        assert out["orders"]["run1-0001"].status == "filled" and out["orders"]["run1-0002"].status == "open"
        assert out["orders"]["run1-0003"] is None  # never reached the venue: safe to resend
        assert [f.client_order_id for f in out["fills"]] == ["run1-0001"]
        assert [(p.instrument, p.size) for p in out["positions"]] == [(paper.call, D("0.2"))]
    finally:
        await second.close()


async def test_a_gap_in_book_changes_forces_a_fresh_snapshot(
    venue: CcxtVenue, server: DeribitApiServer, paper: PaperBackend
) -> None:
    sub = venue.test_sub  # type: ignore[attr-defined]
    await venue.subscribe([paper.perp], ["book"])
    await wait_for(lambda: any(isinstance(e, BookUpdate) for e in list(sub._queue)))
    server._books[paper.perp].change_id += 7  # the next change skips ids, as if messages were lost
    await venue.place(OrderRequest(paper.perp, Side.BUY, D("1000"), price=None, type=OrderType.MARKET))
    await wait_for(lambda: venue.stats.gaps == 1 and venue.stats.resyncs >= 1)
    sub.drain()
    await venue.place(OrderRequest(paper.perp, Side.BUY, D("2000"), price=None, type=OrderType.MARKET))

    def asks() -> list:
        return [e.asks[0] for e in list(sub._queue) if isinstance(e, BookUpdate) and e.asks]

    await wait_for(lambda: (60000.5, 7000.0) in asks())  # 10000 - 1000 - 2000, rebuilt from a fresh snapshot
    assert venue.stats.gaps == 1


async def test_margin_check_shows_where_a_venue_disagrees(venue: CcxtVenue, paper: PaperBackend) -> None:
    from connectors.margin_check import margin_drift

    await venue.place(OrderRequest(paper.put, Side.SELL, D("2"), D("0.03")))  # a short put: real margin
    rows = await margin_drift(venue)
    btc = next(r for r in rows if r.currency == "BTC")
    acc = await venue.account("BTC")
    # the paper venue margins only open orders, so it reports no IM for the short put: the check flags it
    assert btc.positions == 1 and btc.venue_im == float(acc.initial_margin) == 0.0
    assert btc.local_im > 0.0 and btc.local_mm > 0.0 and btc.im_drift == pytest.approx(btc.local_im)
    assert btc.as_dict()["im_drift_pct"] is None and btc.as_dict()["mm_drift"] == pytest.approx(btc.local_mm)


async def test_index_channel_publishes_the_venue_index(venue: CcxtVenue, paper: PaperBackend) -> None:
    from app.domain import IndexPrice
    from app.errors import InvalidInput

    sub = venue.test_sub  # type: ignore[attr-defined]
    venue.data.start(["btc_usd"], ["index"], index_interval_s=0.05)  # type: ignore[union-attr]
    await wait_for(lambda: any(isinstance(e, IndexPrice) for e in list(sub._queue)))
    paper.index = 61_000.0
    await wait_for(lambda: any(isinstance(e, IndexPrice) and e.price == 61_000.0 for e in list(sub._queue)))
    got = [e for e in sub.drain() if isinstance(e, IndexPrice)]
    assert {(e.index, e.source) for e in got} == {("btc_usd", "deribit")}
    with pytest.raises(InvalidInput):
        await venue.subscribe([paper.perp], ["nonsense"])


async def test_rate_limits_are_respected_and_a_venue_refusal_is_typed(paper: PaperBackend) -> None:
    from app.errors import RateLimited

    srv = await DeribitApiServer(paper, credentials=Credentials(KEY, SECRET), rate=8.0, burst=3.0).start()
    polite = CcxtVenue("deribit", rest_url=srv.rest_url, ws_url=srv.ws_url, rate_limit_ms=150)  # under 8 per second
    rude = CcxtVenue("deribit", rest_url=srv.rest_url, ws_url=srv.ws_url, enable_rate_limit=False)
    try:
        await polite.connect(Bus())
        for _ in range(6):
            await polite.quote(paper.perp)
        await asyncio.sleep(0.5)  # let the server's bucket refill before the rude client starts
        await rude.connect(Bus())
        # Sent together, not one after the other: on a loaded machine ten sequential round trips can take long
        # enough for the bucket to refill between them, and the refusal would depend on the machine's speed.
        got = await asyncio.gather(*(rude.quote(paper.perp) for _ in range(10)), return_exceptions=True)
        refused = [r for r in got if isinstance(r, BaseException)]
        assert refused and all(isinstance(r, RateLimited) for r in refused), got
    finally:
        await polite.close()
        await rude.close()
        await srv.stop()
