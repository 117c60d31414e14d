"""The simulated venue's Deribit-like listing schedule."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import Instrument, Kind, utc_from_ms
from connectors.sim.listing import (
    DAY_MS,
    ListingSchedule,
    daily_expiries,
    monthly_expiries,
    nice_step,
    strike_grid,
    weekly_expiries,
)

NEW_YEAR_2024 = 1_704_067_200_000  # Monday 2024-01-01 00:00 UTC


def _utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp() * 1000)


def test_dailies_are_the_next_08utc_expiries() -> None:
    assert daily_expiries(NEW_YEAR_2024, 2) == [_utc(2024, 1, 1, 8), _utc(2024, 1, 2, 8)]
    # at 08:00 sharp today's expiry is gone
    assert daily_expiries(_utc(2024, 1, 1, 8), 1) == [_utc(2024, 1, 2, 8)]


def test_weeklies_are_fridays_within_four_weeks() -> None:
    weeks = weekly_expiries(NEW_YEAR_2024, 28)
    assert [utc_from_ms(w).day for w in weeks] == [5, 12, 19, 26]
    assert all(utc_from_ms(w).weekday() == 4 and utc_from_ms(w).hour == 8 for w in weeks)


def test_monthlies_and_quarterlies_are_last_fridays() -> None:
    months = monthly_expiries(NEW_YEAR_2024, 92)
    assert [utc_from_ms(m).strftime("%d%b") for m in months] == ["26Jan", "23Feb", "29Mar"]
    quarters = monthly_expiries(NEW_YEAR_2024, 366, (3, 6, 9, 12))
    assert [utc_from_ms(m).strftime("%d%b%y") for m in quarters] == ["29Mar24", "28Jun24", "27Sep24", "27Dec24"]


@pytest.mark.parametrize(
    ("raw", "step"), [(1.0, 1.0), (1.1, 2.0), (2.2, 2.5), (3.0, 5.0), (7.0, 10.0), (260.0, 500.0), (0.03, 0.05)]
)
def test_nice_step(raw: float, step: float) -> None:
    assert nice_step(raw) == pytest.approx(step)


def test_nice_step_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        nice_step(0.0)


@settings(max_examples=60, deadline=None)
@given(spot=st.floats(50.0, 500_000.0), years=st.floats(0.0, 1.2), vol=st.floats(0.1, 2.0))
def test_strike_grid_brackets_spot_on_round_steps(spot: float, years: float, vol: float) -> None:
    step, strikes = strike_grid(spot, years, vol)
    assert strikes == sorted(strikes) and len(strikes) >= 10
    assert strikes[0] < spot < strikes[-1]
    assert all(abs(k / step - round(k / step)) < 1e-9 for k in strikes)
    assert len(strikes) <= 34


def test_full_listing_of_both_underlyings() -> None:
    sched = ListingSchedule()
    new = sched.refresh("BTC", NEW_YEAR_2024, 60_000.0, 0.6) + sched.refresh("ETH", NEW_YEAR_2024, 3_000.0, 0.75)
    assert len(new) == sched.count() >= 900
    for base in ("BTC", "ETH"):
        n_opt = sched.count(base, Kind.OPTION)
        assert 300 <= n_opt <= 700, n_opt
        assert sched.count(base, Kind.PERPETUAL) == 1 and sched.count(base, Kind.FUTURE) == 4
        exps = sched.expiries(base)
        assert len(exps) == 11  # 2 dailies, 4 weeklies (26JAN doubles as monthly), 1 more monthly, 4 quarterlies
        for exp in exps:
            assert utc_from_ms(exp).hour == 8
    names = {i.name for i in new}
    assert "BTC-PERPETUAL" in names and "BTC-27DEC24" in names and "BTC-1JAN24-60000-C" in names
    for inst in new:
        assert Instrument.parse(inst.name) == inst


def test_refresh_is_idempotent_and_extends_strikes_when_spot_moves() -> None:
    sched = ListingSchedule()
    sched.refresh("BTC", NEW_YEAR_2024, 60_000.0, 0.6)
    assert sched.refresh("BTC", NEW_YEAR_2024, 60_000.0, 0.6) == []
    exp = sched.expiries("BTC")[3]
    before = sched.strikes("BTC", exp)
    new = sched.refresh("BTC", NEW_YEAR_2024 + 3_600_000, 75_000.0, 0.6)
    after = sched.strikes("BTC", exp)
    assert set(before) <= set(after) and after[-1] > before[-1]
    assert new and all(i.kind is Kind.OPTION for i in new)


def test_time_passing_expires_and_lists() -> None:
    sched = ListingSchedule()
    sched.refresh("BTC", NEW_YEAR_2024, 60_000.0, 0.6)
    first = sched.expiries("BTC")[0]
    later = first + 1
    gone = sched.expire(later)
    assert gone and all(i.expiry_ms == first for i in gone)
    assert all(i.name not in {g.name for g in sched.listed()} for i in gone)
    new = sched.refresh("BTC", later, 60_000.0, 0.6)
    assert any(i.expiry_ms == first + 2 * DAY_MS for i in new)  # a new daily appears
    assert sched.expiries("BTC")[0] == first + DAY_MS


def test_refresh_rejects_bad_market_state() -> None:
    with pytest.raises(ValueError):
        ListingSchedule().refresh("BTC", NEW_YEAR_2024, float("nan"), 0.6)
