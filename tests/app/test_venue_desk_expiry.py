"""VenueDesk over an external venue: a position that expires and disappears from the venue's reports is delivered at
the delivery price (the venue's, else the last index the desk saw), not booked as a drift at its own average price."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.domain import Alert, Fill, IndexPrice, Instrument, Liquidity, Side
from app.ports import PositionStatusReport
from app.venue_desk import VenueDesk

D = Decimal
CALL = Instrument.parse("BTC-29MAR24-50000-C")  # expired long before the desk's wall clock
LIVE = Instrument.parse("BTC-PERPETUAL")


class _Venue:
    """The venue after the 08:00 expiry: the option is gone from its position reports."""

    name = "fake"

    def __init__(self, reports: list[PositionStatusReport] | None = None) -> None:
        self.reports = reports or []

    async def position_reports(self) -> list[PositionStatusReport]:
        return self.reports


class _VenueWithDelivery(_Venue):
    """A connector that can tell the delivery price of an expired instrument (Deribit get_delivery_prices)."""

    def __init__(self, price: Decimal | None) -> None:
        super().__init__()
        self.price = price
        self.asked: list[str] = []

    async def delivery_price(self, inst: Instrument) -> Decimal | None:
        self.asked.append(inst.name)
        return self.price


def _desk(venue: Any) -> VenueDesk:
    vd = VenueDesk(venue)
    vd.instruments_by_name = {CALL.name: CALL, LIVE.name: LIVE}
    vd.book.apply_fill(Fill("t1", "o1", CALL.name, Side.BUY, D("0.1"), D(2), D(0), "BTC", Liquidity.TAKER, 0), CALL)
    return vd


async def test_expired_position_is_delivered_at_the_last_index() -> None:
    vd = _desk(_Venue())
    sub = vd.bus.subscribe({"alert"})
    vd.bus.publish(IndexPrice(ts=1, index="btc_usd", price=60_000.0))
    assert vd.index_prices["BTC"] == 60_000.0
    assert await vd.check_positions() == 1  # at once: nothing can be in flight on an expired instrument
    payoff = D(10_000) / D(60_000)
    assert vd.book.positions() == []
    # realised payoff less premium, less the delivery fee (0.02 % of 2 coin, deribit.md §4.5)
    assert vd.book.settled_pnl["BTC"] == pytest.approx(2 * (payoff - D("0.1")) - D("0.0004"))
    assert vd.counters["deliveries"] == 1 and vd.counters["position_drifts"] == 0
    msgs = [e.message for e in sub.drain() if isinstance(e, Alert) and e.code == "position.delivered"]
    assert msgs and "last index price" in msgs[0] and "60000.00" in msgs[0]


async def test_the_venues_delivery_price_comes_first() -> None:
    venue = _VenueWithDelivery(D("62000"))
    vd = _desk(venue)
    vd.bus.publish(IndexPrice(ts=1, index="btc_usd", price=60_000.0))
    sub = vd.bus.subscribe({"alert"})
    await vd.check_positions()
    assert venue.asked == [CALL.name]
    assert vd.book.settled_pnl["BTC"] == pytest.approx(2 * (D(12_000) / D(62_000) - D("0.1")) - D("0.0004"))
    msgs = [e.message for e in sub.drain() if isinstance(e, Alert) and e.code == "position.delivered"]
    assert msgs and "venue delivery price" in msgs[0]
    # A connector that does not know it: the index stands in.
    venue2 = _VenueWithDelivery(None)
    vd2 = _desk(venue2)
    vd2.bus.publish(IndexPrice(ts=1, index="btc_usd", price=60_000.0))
    await vd2.check_positions()
    assert vd2.book.settled_pnl["BTC"] == pytest.approx(2 * (D(10_000) / D(60_000) - D("0.1")) - D("0.0004"))


async def test_a_live_position_missing_at_the_venue_is_still_a_drift() -> None:
    vd = _desk(_Venue([PositionStatusReport(CALL.name, D(2), D("0.1"), 0)]))
    vd.book.apply_fill(Fill("t2", "o2", LIVE.name, Side.BUY, D(60_000), D(100), D(0), "BTC", Liquidity.TAKER, 0), LIVE)
    vd.bus.publish(IndexPrice(ts=1, index="btc_usd", price=60_000.0))
    assert await vd.check_positions() == 0  # seen once: may be a fill in flight
    assert await vd.check_positions() == 1
    assert vd.counters["position_drifts"] == 1 and vd.counters["deliveries"] == 0
    assert {p.instrument for p in vd.book.positions()} == {CALL.name} and vd.book.settled_pnl == {}


async def test_without_any_price_the_expired_position_falls_back_to_a_drift() -> None:
    vd = _desk(_Venue())
    assert await vd.check_positions() == 0
    assert await vd.check_positions() == 1
    assert vd.counters["position_drifts"] == 1 and vd.counters["deliveries"] == 0
