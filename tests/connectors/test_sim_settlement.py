"""The simulated venue's settlements (the 08:00 UTC daily settlement runs on every day, expiries or not) and the
engine's price bands around the simulated marks."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from app.domain import OrderRequest, OrderStatus, Side, TimeInForce
from app.engine.ledger import EntryKind
from app.errors import OrderRejected
from connectors.sim.listing import ListingConfig
from connectors.sim.venue import SimConfig, SimVenue

D = Decimal
# The backtests' listing (app/backtest_desk.py): no dailies and no weeklies, so most days have no expiry.
NO_DAILIES = ListingConfig(dailies=0, weekly_days=0.0, monthly_days=62.0, quarterly_days=120.0, strikes_per_expiry=8)
SMALL = ListingConfig(weekly_days=8, monthly_days=0, quarterly_days=100, strikes_per_expiry=8)


def ms(text: str) -> int:
    """Epoch ms of an ISO UTC time."""
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def _long_perp(start: str, listing: ListingConfig, step_ms: int = 1_000) -> SimVenue:
    v = SimVenue(
        SimConfig(
            start_ms=ms(start), step_ms=step_ms, underlyings=("BTC",), funding={"main": {"BTC": D(10)}}, listing=listing
        )
    )
    q = v.quote("BTC-PERPETUAL")
    v.place_now(OrderRequest("BTC-PERPETUAL", Side.BUY, D(100_000), D(repr(q.ask)), tif=TimeInForce.IOC))
    assert v.accounts.position("main", "BTC-PERPETUAL").size == D(100_000)
    return v


def _session_entries(v: SimVenue) -> list[int]:
    kinds = (EntryKind.SETTLEMENT, EntryKind.REALISED_PNL)
    return sorted({e.ts for e in v.accounts.ledger.entries("main", "BTC") if e.kind in kinds})


def test_daily_settlement_runs_on_a_day_without_expiry() -> None:
    # Tuesday 2 Jan 2024: nothing of the no-dailies listing expires, the perpetual's session PnL is still booked.
    v = _long_perp("2024-01-02T07:58:00", NO_DAILIES)
    assert not any(i.expiry_ms == ms("2024-01-02T08:00:00") for i in v.instruments_by_name.values())
    v.advance(ms("2024-01-02T08:00:05") - v.clock.now_ms())
    assert _session_entries(v) == [ms("2024-01-02T08:00:00")]
    assert v.daily_settlements == [ms("2024-01-02T08:00:00")]
    # Booked at the settlement mark: the position carries on from it with no session PnL of its own.
    pos = v.accounts.position("main", "BTC-PERPETUAL")
    settled_at = pos.average_price
    assert pos.session_pnl(settled_at) == 0


def test_daily_settlement_runs_exactly_once_per_crossing() -> None:
    # Steps of a minute across two 08:00 crossings (no expiry on either day): one settlement each, at the first
    # step at or after 08:00.
    v = _long_perp("2024-01-02T07:30:00", NO_DAILIES, step_ms=60_000)
    v.advance(ms("2024-01-03T09:00:00") - v.clock.now_ms())
    assert _session_entries(v) == [ms("2024-01-02T08:00:00"), ms("2024-01-03T08:00:00")]
    assert v.daily_settlements == _session_entries(v)


def test_expiry_is_delivered_before_the_daily_settlement_and_once() -> None:
    # With dailies listed, 08:00 has an expiry: delivery first, then one daily settlement in the same step.
    v = _long_perp("2024-01-02T07:59:00", SMALL)
    at = ms("2024-01-02T08:00:00")
    assert any(i.expiry_ms == at for i in v.instruments_by_name.values())
    v.advance(ms("2024-01-02T08:01:00") - v.clock.now_ms())
    assert v.settlements and v.settlements[0]["ts"] == at
    at_8 = [e for e in v.accounts.ledger.entries() if e.ts == at]
    delivered = [e.seq for e in at_8 if e.kind is EntryKind.DELIVERY or e.ref == "delivery"]
    daily = [e.seq for e in at_8 if e.ref == "daily"]
    assert delivered and daily  # the agents held expiring instruments; everyone's futures were settled
    assert max(delivered) < min(daily)
    assert any(e.account == "main" and e.ref == "daily" for e in at_8)
    assert v.daily_settlements == [at]


# -- price bands (deribit.md §3.7) ------------------------------------------------------------------------------------


def _band_venue(quoting: str = "auto") -> SimVenue:
    return SimVenue(SimConfig(seed=5, listing=SMALL, quoting=quoting))


def test_engine_bands_follow_the_sim_marks() -> None:
    from app.engine.matching import DEFAULT_BANDS

    v = _band_venue()
    v.advance(30_000)
    futures = [n for n, i in v.instruments_by_name.items() if not i.is_option]
    assert futures and all(v.engine.band(n) is not None for n in futures)  # set every step
    for name in futures + [n for n, i in v.instruments_by_name.items() if i.is_option][::25]:
        inst = v.instruments_by_name[name]
        v.quote(name)  # a book read or traded is brought to the current mark first
        mark = D(repr(v.mark_of(name)[0]))
        assert abs(v.engine.mark(name) - mark) < inst.tick_size
        lo, hi = v.engine.band(name)
        width = DEFAULT_BANDS[inst.kind] * mark
        if width > 10 * inst.tick_size:  # wider than the engine's minimum of 10 ticks a side
            assert abs(hi - (mark + width)) <= 2 * inst.tick_size and abs(lo - (mark - width)) <= 2 * inst.tick_size


def _on_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value() * tick


def test_orders_outside_the_band_are_rejected_through_the_desk() -> None:
    from app.desk import Desk

    desk = Desk(seed=5, sim=SimConfig(seed=5, listing=SMALL))
    desk.advance(5_000)
    name = "BTC-PERPETUAL"
    mark = D(repr(desk.venue.mark_of(name)[0]))
    far = _on_tick(mark * D("1.03"), D("0.5"))  # a buy 3 % over the mark: above its ±1.5 % band
    with pytest.raises(OrderRejected) as err:
        desk.place_now(OrderRequest(name, Side.BUY, D(100), far))
    assert err.value.code == "order.rejected.band"
    near = _on_tick(mark * D("0.99"), D("0.5"))  # inside the band: rests
    assert desk.place_now(OrderRequest(name, Side.BUY, D(100), near)).status is OrderStatus.OPEN
    wick = _on_tick(mark * D("0.8"), D("0.5"))  # a bid far under the band trades nowhere outside it: it rests
    assert desk.place_now(OrderRequest(name, Side.BUY, D(100), wick)).status is OrderStatus.OPEN
    opt = max(
        (i for i in desk.venue.instruments_by_name.values() if i.is_option), key=lambda i: desk.venue.mark_of(i.name)[0]
    )
    omark = D(repr(desk.venue.mark_of(opt.name)[0]))
    with pytest.raises(OrderRejected) as err:  # an option's band is ±50 % of its mark: no sell under its bottom
        desk.place_now(OrderRequest(opt.name, Side.SELL, D(1), _on_tick(omark * D("0.4"), D("0.0005"))))
    assert err.value.code == "order.rejected.band"


@pytest.mark.parametrize("quoting", ["eager", "lazy"])
def test_makers_and_takers_quote_and_trade_inside_the_bands(quoting: str) -> None:
    from app.engine import events as ev

    v = _band_venue(quoting)
    refused: list[str] = []
    v.engine.on_event(
        lambda e: refused.append(e.code) if type(e) is ev.Rejected and e.code == "order.rejected.band" else None
    )
    v.advance(120_000)
    assert v.trade_count > 0
    assert refused == []  # no maker quote and no taker order fell outside a band
    for name in list(v.instruments_by_name)[::7]:
        q = v.quote(name)
        lo, hi = v.engine.band(name)
        for px in (q.bid, q.ask):
            assert px is None or float(lo) <= px <= float(hi)
