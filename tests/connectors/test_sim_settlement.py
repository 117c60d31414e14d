"""The simulated venue's settlements: the 08:00 UTC daily settlement runs on every day, expiries or not."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from app.domain import OrderRequest, Side, TimeInForce
from app.engine.ledger import EntryKind
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
