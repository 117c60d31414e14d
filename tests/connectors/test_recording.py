"""Recording what a connector receives into the store, and reading it back for replay."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from app.bus import Bus
from app.domain import IndexPrice, OrderRequest, OrderType, Quote, Side, Trade
from app.errors import ConfigError
from app.ports import MarketDataSink
from connectors.deribit_api.server import DeribitApiServer
from connectors.recording import MarketRecorder, recorded_index_path
from tests.connectors.paper_backend import PaperBackend
from tests.connectors.test_ccxt_venue_deribit import make_venue, wait_for


class ListSink:
    def __init__(self) -> None:
        self.rows: list = []

    def record_market(self, events) -> int:  # type: ignore[no-untyped-def]
        items = list(events)
        self.rows.extend(items)
        return len(items)


def test_bad_messages_are_dropped_and_quotes_thinned() -> None:
    sink = ListSink()
    assert isinstance(sink, MarketDataSink)
    rec = MarketRecorder(sink, batch=2, min_quote_interval_ms=100)
    rec.record(Quote(1000, "BTC-PERPETUAL", 100.0, 101.0, venue="deribit"))
    rec.record(Quote(1050, "BTC-PERPETUAL", 100.5, 101.0, venue="deribit"))  # within 100 ms: thinned
    rec.record(Quote(1100, "BTC-PERPETUAL", 102.0, 101.0, venue="deribit"))  # crossed: dropped
    rec.record(Trade(1100, "BTC-PERPETUAL", float("nan"), 1.0, Side.BUY))  # NaN: dropped
    rec.record(IndexPrice(1200, "btc_usd", 100.7))
    assert [type(e).__name__ for e in sink.rows] == ["Quote", "IndexPrice"]
    rec.record(Trade(1300, "BTC-PERPETUAL", 100.5, 10.0, Side.SELL))
    rec.close()
    assert rec.stats.recorded == 3 and rec.stats.thinned == 1 and rec.stats.dropped == 2


def test_a_failing_store_never_raises_into_the_connector() -> None:
    class Broken:
        def record_market(self, events) -> int:  # type: ignore[no-untyped-def]
            raise OSError("disk full")

    rec = MarketRecorder(Broken(), batch=1)
    rec.record(IndexPrice(1, "btc_usd", 1.0))
    assert rec.stats.failed == 1


async def test_live_session_is_recorded_into_the_store_and_reads_back(
    server: DeribitApiServer, paper: PaperBackend, tmp_path: Path
) -> None:
    storage = pytest.importorskip("storage.store")
    store = storage.SqlStore(tmp_path / "rec.db")
    rec = MarketRecorder(store, batch=4)
    venue = make_venue(server)
    venue._record = rec.record  # what CcxtVenue(record=rec.record) sets
    bus = Bus()
    rec_bus = MarketRecorder(store, batch=1)
    rec_bus.attach(bus)
    await venue.connect(bus)
    try:
        await venue.subscribe([paper.perp, paper.call], ["ticker", "trades"])
        await wait_for(lambda: venue.stats.messages >= 2)
        await venue.place(OrderRequest(paper.perp, Side.BUY, Decimal("1000"), None, OrderType.MARKET))
        await wait_for(lambda: rec.stats.recorded + len(rec._buffer) >= 4)
        paper.publish_index(60500.0)
        await asyncio.sleep(0.1)
    finally:
        await venue.close()
        rec.close()
    rec_bus.record(IndexPrice(paper.now_ms(), "btc_usd", 60500.0, source="deribit"))
    rec_bus.close()
    events = store.market_data(0, paper.now_ms() + 1000)
    store.close()
    quotes = [e for e in events if isinstance(e, Quote)]
    trades = [e for e in events if isinstance(e, Trade)]
    call_quotes = [q for q in quotes if q.instrument == paper.call]
    assert call_quotes and call_quotes[0].mark_iv == pytest.approx(0.55) and call_quotes[0].venue == "deribit"
    assert any(t.instrument == paper.perp and t.amount == 1000.0 for t in trades)
    assert any(isinstance(e, IndexPrice) and e.price == 60500.0 for e in events)
    assert [e.ts for e in events] == sorted(e.ts for e in events)  # replay order


def test_recorded_index_path_for_replay(tmp_path: Path) -> None:
    storage = pytest.importorskip("storage.store")
    replay = pytest.importorskip("connectors.replay")
    store = storage.SqlStore(tmp_path / "path.db")
    rec = MarketRecorder(store)
    t0 = 1_700_000_000_000
    for i, px in enumerate((60000.0, 60100.0, 59900.0)):
        rec.record(IndexPrice(t0 + i * 1000, "btc_usd", px, source="deribit"))
        rec.record(IndexPrice(t0 + i * 1000, "btc_usd", px + 5, source="chainlink:0xabc"))
    rec.record(IndexPrice(t0 + 5000, "btc_usd", 1.0, source="deribit", stale=True))
    rec.close()
    ts, px = recorded_index_path(store, "btc_usd", t0, t0 + 10_000, source="deribit")
    assert ts.tolist() == [t0, t0 + 1000, t0 + 2000] and px.tolist() == [60000.0, 60100.0, 59900.0]
    path = replay.PricePath(ts, px, 1000, "recorded:deribit")
    assert path.at(t0 + 500) == pytest.approx(60050.0, rel=1e-4)
    with pytest.raises(ConfigError):
        recorded_index_path(store, "eth_usd", t0, t0 + 10_000)
    store.close()
