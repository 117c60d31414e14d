"""Basic behaviour of the matching engine: limit, market, cancel, events, fills as app.domain.Fill."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from app.clock import SimClock, WallClock
from app.domain import Fill, Instrument, Liquidity, OrderRequest, OrderType, Side, TimeInForce
from app.engine.events import Accepted, BookChanged, Cancelled, Filled
from app.engine.matching import MatchingEngine
from app.errors import InvalidInput, NotFound, UnknownInstrument

PERP = "BTC-PERPETUAL"


@pytest.fixture
def engine() -> MatchingEngine:
    eng = MatchingEngine(SimClock(1_700_000_000_000))
    eng.add_instrument(Instrument.parse(PERP))
    eng.set_mark(PERP, D("60000"))
    return eng


def req(side: Side, amount: str, price: str | None, account: str = "a", **kw: object) -> OrderRequest:
    typ = OrderType.MARKET if price is None else OrderType.LIMIT
    return OrderRequest(PERP, side, D(amount), None if price is None else D(price), type=typ, account=account, **kw)


def test_limit_rests_then_trades_at_maker_price(engine: MatchingEngine) -> None:
    fills: list[Fill] = []
    engine.on_fill(fills.append)
    ev = engine.submit(req(Side.SELL, "100", "60000", "mm"))
    assert [type(e) for e in ev] == [Accepted, BookChanged]
    ev = engine.submit(req(Side.BUY, "30", "60010", "alice"))
    assert [type(e) for e in ev] == [Accepted, Filled, BookChanged]
    fill = ev[1]
    assert isinstance(fill, Filled)
    assert (fill.price, fill.amount, fill.taker_side) == (D("60000"), D("30"), Side.BUY)
    # 30 USD of an inverse perpetual at 60,000 USD, 0.05% taker: 0.00000025 BTC.
    assert fill.taker_fee == D("30") / D("60000") * D("0.0005")
    assert fill.maker_fee == 0
    assert [f.liquidity for f in fills] == [Liquidity.MAKER, Liquidity.TAKER]
    assert fills[1].account == "alice" and fills[1].fee_currency == "BTC"
    assert engine.position("alice", PERP) == D("30") and engine.position("mm", PERP) == D("-30")
    assert engine.best_bid_ask(PERP) == (None, D("60000"))
    assert engine.depth(PERP, 5) == ([], [(D("60000"), D("70"), 1)])
    seqs = [e.seq for e in ev]
    assert seqs == [3, 4, 5]


def test_market_order_sweeps_and_cancels_rest(engine: MatchingEngine) -> None:
    engine.submit(req(Side.SELL, "10", "60000", "mm"))
    engine.submit(req(Side.SELL, "20", "60001", "mm"))
    ev = engine.submit(req(Side.BUY, "50", None, "t"))
    kinds = [type(e).__name__ for e in ev]
    assert kinds == ["Accepted", "Filled", "BookChanged", "Filled", "BookChanged", "Cancelled"]
    assert ev[-1].lots == 2 and ev[-1].reason == "market"
    assert engine.book(PERP).best_ask() is None


def test_cancel_and_errors_change_nothing(engine: MatchingEngine) -> None:
    ev = engine.submit(req(Side.BUY, "10", "59990", "a"))
    oid = ev[0].order_id
    with pytest.raises(NotFound):
        engine.cancel("someone-else", oid)
    seq = engine.seq
    with pytest.raises(UnknownInstrument):
        engine.submit(OrderRequest("ETH-PERPETUAL", Side.BUY, D("1"), D("3000")))
    with pytest.raises(InvalidInput):
        engine.submit(req(Side.BUY, "15", "59990"))  # not a multiple of 10 USD
    with pytest.raises(InvalidInput):
        engine.submit(req(Side.BUY, "10", "59990.2"))  # off the 0.5 tick
    assert engine.seq == seq
    out = engine.cancel("a", str(oid))
    assert isinstance(out[0], Cancelled) and out[0].reason == "user"
    with pytest.raises(NotFound):
        engine.cancel("a", oid)


def test_ioc_remainder_cancelled(engine: MatchingEngine) -> None:
    engine.submit(req(Side.SELL, "10", "60000", "mm"))
    ev = engine.submit(req(Side.BUY, "30", "60000", "t", tif=TimeInForce.IOC))
    assert isinstance(ev[-1], Cancelled) and ev[-1].reason == "ioc" and ev[-1].lots == 2
    assert engine.book(PERP).best_bid() is None


def test_event_helpers_and_stats(engine: MatchingEngine) -> None:
    from app.domain import BookUpdate
    from app.engine.events import encode, to_book_update, to_record

    engine.submit(req(Side.SELL, "100", "60000", "mm"))
    ev = engine.submit(req(Side.BUY, "30", "60000", "alice", client_order_id="x1"))
    book_ev = ev[-1]
    assert isinstance(book_ev, BookChanged)
    upd = to_book_update(book_ev)
    assert isinstance(upd, BookUpdate) and upd.asks == ((60000.0, 70.0),) and upd.sequence == book_ev.seq
    rec = to_record(ev[1])
    assert rec["type"] == "Filled" and rec["instrument"] == PERP and rec["taker_client_order_id"] == "x1"
    assert encode(ev[1]) == encode(ev[1]) and encode(ev[1]).startswith(b'["Filled",')
    assert "inst='BTC-PERPETUAL'" in repr(ev[1])
    assert engine.stats() == {"trades": 1, "volume_lots": 3, "resting_orders": 1, "seq": ev[-1].seq}
    assert engine.order("nope") is None and engine.order(ev[0].order_id) is None


class _TickingClock:
    """A clock of the ``Clock`` protocol only (no ``ms`` attribute): one ms later at every read."""

    def __init__(self) -> None:
        self.t = 1_700_000_000_000

    def now_ms(self) -> int:
        self.t += 1
        return self.t


def test_events_carry_the_time_of_any_clock() -> None:
    """The engine reads a SimClock's ``ms`` attribute, a WallClock's property and other clocks' now_ms()."""
    sim = SimClock(1_700_000_000_000)
    e = MatchingEngine(sim)
    e.add_instrument(Instrument.parse("BTC-PERPETUAL"), band=None)
    assert e.place("a", "BTC-PERPETUAL", 1, 120_000, 1)[0].ts == 1_700_000_000_000
    sim.advance(250)
    assert {ev.ts for ev in e.place("b", "BTC-PERPETUAL", -1, 120_000, 1)} == {1_700_000_000_250}
    assert e.now_ms == 1_700_000_000_250
    ticking = _TickingClock()
    e.use_clock(ticking)  # type: ignore[arg-type]
    first = e.place("a", "BTC-PERPETUAL", 1, 119_000, 1)[0].ts
    second = e.cancel("a", e.open_orders("a")[0].order_id)[0].ts
    assert first == 1_700_000_000_001 and second == 1_700_000_000_002
    wall = MatchingEngine(WallClock())
    wall.add_instrument(Instrument.parse("BTC-PERPETUAL"), band=None)
    assert wall.place("a", "BTC-PERPETUAL", 1, 120_000, 1)[0].ts >= WallClock().now_ms() - 60_000
