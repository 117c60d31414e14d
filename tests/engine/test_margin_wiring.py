"""The margin engine wired as the Desk wires it: MatchingEngine hook and events, oracle index over the bus."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.bus import Bus
from app.clock import SimClock
from app.domain import Instrument, OrderRequest, Side
from app.engine.margin import MarginEngine
from app.engine.matching import MatchingEngine
from app.engine.oracle import Oracle, OracleParams

D = Decimal
T0 = 1_718_000_000_000


def world():
    clock = SimClock(T0)
    bus = Bus()
    engine = MatchingEngine(clock)
    for name in ("BTC-PERPETUAL", "BTC-28JUN24-70000-C"):
        engine.add_instrument(Instrument.parse(name), band=None)
    margin = MarginEngine(clock=clock, bus=bus)
    margin.wire(engine, bus)
    oracle = Oracle(clock, bus, OracleParams(quorum=2))
    return clock, bus, engine, margin, oracle


def test_index_from_the_oracle_and_orders_from_the_engine() -> None:
    clock, bus, engine, margin, oracle = world()
    oracle.update("btc_usd", "a", 64_990, 65_010)
    oracle.update("btc_usd", "b", 64_995, 65_005)
    oracle.tick()
    assert margin.index["btc_usd"] == 65_000.0
    margin.set_mark("BTC-PERPETUAL", 65_000.0)
    margin.set_mark("BTC-28JUN24-70000-C", 0.012, iv=0.55, underlying=65_000.0)
    engine.set_mark("BTC-PERPETUAL", D("65000"))
    margin.open_account("alice", "sm", {"BTC": D("1")})
    margin.open_account("mm", "sm", {"BTC": D("100")})
    # A resting option sell of alice's counts in her IM as open-orders margin.
    ev = engine.submit(OrderRequest("BTC-28JUN24-70000-C", Side.SELL, D("2"), D("0.0150"), account="alice"))
    assert type(ev[0]).__name__ == "Accepted"
    rep = margin.report("alice", "BTC", with_distance=False)
    assert rep.details["open_orders_margin"] > 0.2
    # Filled against mm: premium in, short call margined, open-orders margin gone.
    engine.submit(OrderRequest("BTC-28JUN24-70000-C", Side.BUY, D("2"), D("0.0150"), account="mm"))
    rep = margin.report("alice", "BTC", with_distance=False)
    assert rep.details["open_orders_margin"] == 0
    assert rep.balance == pytest.approx(1 + 2 * 0.015 - 2 * 0.0003, abs=1e-12)
    assert margin.accounts.position("alice", "BTC-28JUN24-70000-C").size == D("-2")
    # Too large an order is rejected by the hook with the shortfall, nothing rests.
    ev = engine.submit(OrderRequest("BTC-28JUN24-70000-C", Side.SELL, D("20"), D("0.0150"), account="alice"))
    assert type(ev[0]).__name__ == "Rejected" and ev[0].code == "margin.insufficient"
    assert engine.open_orders("alice") == []
    # The oracle loses its quorum: the bus says the index is stale and new orders pause.
    clock.advance(60_000)
    oracle.update("btc_usd", "a", 64_990, 65_010)
    oracle.tick()
    assert "btc_usd" in margin.stale_index
    ev = engine.submit(OrderRequest("BTC-PERPETUAL", Side.BUY, D("10"), D("65000"), account="alice"))
    assert type(ev[0]).__name__ == "Rejected" and ev[0].code == "data.stale_index"
    oracle.update("btc_usd", "b", 64_995, 65_005)
    oracle.tick()
    assert "btc_usd" not in margin.stale_index


def test_refresh_publishes_alerts_for_every_account() -> None:
    clock, bus, engine, margin, oracle = world()
    sub = bus.subscribe({"margin_alert"})
    margin.set_index("btc_usd", 65_000.0)
    margin.set_mark("BTC-PERPETUAL", 65_000.0)
    margin.set_mark("BTC-28JUN24-70000-C", 0.012, iv=0.55, underlying=65_000.0)
    margin.open_account("a", "sm", {"BTC": D("1")})
    margin.open_account("b", "sm", {"BTC": D("100")})
    margin.accounts.apply_trade(Instrument.parse("BTC-PERPETUAL"), "a", "b", D("3000000"), D("65000"), T0)
    out = margin.refresh()
    assert set(out) == {"a", "b"} and out["a"]["BTC"].mm_usage > 0.5
    alerts = sub.drain()
    assert [a.account for a in alerts] == ["a"]
