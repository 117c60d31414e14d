"""Historical replay: the simulated venue on real price paths (skipped when shared/data is absent)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from app.desk import Desk
from app.domain import OrderRequest, Side
from app.errors import ConfigError, InvalidInput
from connectors.replay import STRESS_DAYS, ReplayConfig, ReplayVenue, default_data_dir, load_dvol, load_path
from connectors.sim.listing import ListingConfig

DATA = default_data_dir()
pytestmark = pytest.mark.skipif(not (DATA / "btc_usdt_binance_spot_1h.csv").exists(), reason="shared/data is absent")
SMALL = ListingConfig(weekly_days=8, monthly_days=0, quarterly_days=100, strikes_per_expiry=12)
HOUR = 3_600_000


def _cfg(day: str, step_ms: int = 600_000, **kw) -> ReplayConfig:
    return ReplayConfig(day=day, step_ms=step_ms, listing=SMALL, data_dir=DATA, **kw)


def test_black_thursday_replays_end_to_end_through_the_desk() -> None:
    desk = Desk(venue="replay", replay=_cfg("2020-03-12"))
    venue = desk.venue
    assert venue.name == "replay" and "1h" in venue.data_sources()["BTC"]
    start = desk.now_ms()
    assert desk.index_price("BTC") == pytest.approx(7_934.58, rel=0.01)  # 2020-03-11 23:00 bar close
    q = desk.quote("BTC-PERPETUAL")
    order = desk.place_now(OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal(1000), Decimal(repr(q.ask)).quantize(Decimal("0.5"))))
    assert order.filled == Decimal(1000)
    lows, stress = [], []
    while desk.now_ms() < start + 24 * HOUR:
        desk.advance(venue.config.step_ms)
        lows.append(desk.index_price("BTC"))
        stress.append(float(venue.model.z[0]))
    # 10:00 UTC: 7,354 (the close of the 09:00 bar); end of day: 4,800 — the index follows the real path
    path = load_path(DATA, "BTC", start, start + 24 * HOUR)
    assert path.at(start + 10 * HOUR) == pytest.approx(7_354, rel=0.01)
    assert desk.index_price("BTC") == pytest.approx(4_800.0, rel=0.01)
    assert min(lows) < 5_000 and max(stress) > 0.5  # the crash steepened the skew
    assert venue.model.vol["BTC"] > 0.8  # no DVOL in 2020: trailing realised vol × premium, high after the crash
    assert venue.settlements and venue.settlements[0]["delivery_price"] < 8_000  # 08:00 dailies delivered
    pos = {p.instrument: p for p in desk.positions()}
    assert pos["BTC-PERPETUAL"].pnl < 0  # long into the crash
    assert np.isfinite(desk.margin()["BTC"].equity)


def test_dvol_days_follow_dvol_and_ftx_uses_five_minute_bars() -> None:
    venue = ReplayVenue(_cfg("2021-05-19", underlyings=("BTC",)))
    d_open, d_close = load_dvol(DATA, "btc")[venue.window[0]]
    assert venue.model.implied_atm_all(30 / 365)[0] == pytest.approx(d_open / 100)
    venue.advance(23 * HOUR)
    assert venue.model.implied_atm_all(30 / 365)[0] == pytest.approx(d_open / 100 + (d_close - d_open) / 100 * 23 / 24,
                                                                   rel=0.01)
    ftx = ReplayVenue(_cfg("2022-11-09", underlyings=("ETH",)))
    assert "5m" in ftx.data_sources()["ETH"] and "5 min" in ftx.data_sources()["ETH"]


@pytest.mark.parametrize("day", STRESS_DAYS)
def test_every_stress_day_has_a_path(day: str) -> None:
    cfg = _cfg(day)
    start, end = cfg.window()
    for coin in ("BTC", "ETH"):
        path = load_path(DATA, coin, start, end)
        assert path.ts[0] <= start and path.ts[-1] >= end and (path.close > 0).all()


def test_bad_replay_windows_are_refused() -> None:
    with pytest.raises(InvalidInput):
        ReplayConfig(start="2022-11-09T12:00:00Z", end="2022-11-09T06:00:00Z").window()
    with pytest.raises(ConfigError):
        ReplayVenue(_cfg("2031-01-01"))
    with pytest.raises(ConfigError):
        ReplayVenue(ReplayConfig(day="2020-03-12", data_dir=Path("/nonexistent")))


@pytest.mark.slow
def test_a_full_stress_day_at_ten_second_steps() -> None:
    desk = Desk(venue="replay", replay=ReplayConfig(day="2024-08-05", step_ms=10_000, data_dir=DATA))
    desk.advance(24 * HOUR)
    assert desk.venue.trade_count > 100
