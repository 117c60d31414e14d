"""The views the fronts draw, on a seeded simulated market: surface, chain table, scenarios, payoff, exposures."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from app import analytics
from app.desk import Desk
from app.domain import MarginReport, OrderRequest, OrderType, Side
from connectors.sim.listing import ListingConfig
from connectors.sim.venue import SimConfig

SMALL = ListingConfig(weekly_days=15, monthly_days=40, quarterly_days=100, strikes_per_expiry=14)


@pytest.fixture(scope="module")
def desk() -> Desk:
    d = Desk(seed=21, sim=SimConfig(seed=21, listing=SMALL))
    d.advance(5_000)
    return d


def _atm(desk: Desk, k: int = 1) -> tuple[str, str]:
    sl = desk.chain("BTC", desk.expiries("BTC")[k])
    call = min((r for r in sl.rows if r.option_type.value == "call"), key=lambda r: abs(r.strike - sl.forward)).instrument
    return call, call[:-1] + "P"


def _short_straddle(desk: Desk) -> list[OrderRequest]:
    call, put = _atm(desk, 2)
    return [OrderRequest(n, Side.SELL, Decimal("1"), None, OrderType.MARKET) for n in (call, put)]


def test_surface_view_fits_every_expiry_inside_the_spread(desk: Desk) -> None:
    view = analytics.surface_view(desk.snapshot(), "BTC")
    assert len(view.labels) >= 4 and view.grid_iv.shape == (len(view.labels), view.grid_strikes.size)
    assert np.all(np.diff(view.t) > 0) and np.all((view.atm_iv > 0.1) & (view.atm_iv < 3.0))
    for smile in view.smiles:
        assert smile.butterfly_ok and smile.calendar_ok
        assert smile.rmse < 0.03  # within 3 vol points of the market mids
    assert np.all(view.rr25 < 0.05)  # the simulated smile is put-skewed (crypto-like)


def test_empty_inputs_give_empty_views(desk: Desk) -> None:
    assert analytics.surface_view(None, "BTC").labels == []
    assert analytics.chain_table(desk.snapshot(), "XRP") == []
    assert analytics.scenario_grid(None, "BTC") is None


def test_chain_table_rows(desk: Desk) -> None:
    rows = analytics.chain_table(desk.snapshot(), "BTC")
    assert len(rows) > 50
    row = rows[0]
    assert set(row) >= {"instrument", "expiry", "strike", "bid_iv", "mark_iv", "delta", "gamma", "vega", "theta"}
    assert 10 < row["mark_iv"] < 300  # percent


def test_scenario_grid_of_a_short_straddle(desk: Desk) -> None:
    snap = desk.snapshot()
    flat = analytics.scenario_grid(snap, "BTC")
    assert flat is not None and np.allclose(flat.pnl, 0.0)
    grid = analytics.scenario_grid(snap, "BTC", extra=_short_straddle(desk))
    assert grid is not None and grid.currency == "BTC"
    i0 = list(grid.vol_moves).index(0.0)
    j0 = list(grid.spot_moves).index(0.0)
    assert grid.pnl[i0, j0] == pytest.approx(0.0, abs=1e-12)
    assert grid.pnl[i0, 0] < 0 and grid.pnl[i0, -1] < 0  # big moves either way lose
    assert np.all(np.diff(grid.pnl[:, j0]) < 0)  # more vol, more loss for the short
    later = analytics.scenario_grid(snap, "BTC", extra=_short_straddle(desk), days=3)
    assert later.pnl[i0, j0] > 0  # theta earned


def test_payoff_and_exposures(desk: Desk) -> None:
    snap = desk.snapshot()
    pay = analytics.payoff(snap, "BTC", extra=_short_straddle(desk))
    assert pay is not None and pay.spots.size == pay.at_expiry.size == pay.today.size
    mid = pay.spots.size // 2
    assert pay.at_expiry[mid] > 0 > pay.at_expiry[0]  # premium kept at the strike, lost far away
    ex = analytics.exposures(snap, "BTC", extra=_short_straddle(desk))
    assert ex is not None and len(ex.strike_keys) == 1 and len(ex.expiry_keys) == 1
    assert ex.by_strike["gamma"][0] < 0 and ex.by_strike["vega"][0] < 0


def test_risk_matrix_of_a_pm_account_is_the_one_its_worst_case_is_read_from() -> None:
    d = Desk(seed=21, sim=SimConfig(seed=21, listing=SMALL, margin_model="pm"))
    d.advance(5_000)
    for req in _short_straddle(d):
        d.place_now(req)
    d.advance(2_000)
    report = d.margin()["BTC"]
    assert report.model == "pm" and report.worst_bucket is not None
    m = analytics.risk_matrix(report)
    assert m is not None and m.rows == ["vol up", "vol flat", "vol down", "extended"] and m.pair == "btc_btc"
    assert m.pnl.shape == (4, len(m.columns)) and "-16%" in m.columns and "+500%" in m.columns
    assert np.isfinite(m.pnl[:3, m.columns.index("+0%")]).all() and np.isnan(m.pnl[3, m.columns.index("+0%")])
    worst = report.details["pm"]["initial_margin_details"]["risk_matrix_margin_details"]["worst_case"]
    assert m.worst is not None and m.pnl[m.worst] == pytest.approx(-worst) == np.nanmin(m.pnl)
    assert m.rows[m.worst[0]] != "extended" or report.worst_bucket.startswith("extended")
    assert analytics.risk_matrix(d.margin()["ETH"]) is None  # nothing held in ETH: no vectors
    assert analytics.risk_matrix(None) is None


def test_decision_views() -> None:
    decisions = [
        {"ts": 1_000, "action": "none", "code": "none.inside_band", "reason": "inside", "inputs": {"delta": 0.05, "band_lower": -0.1, "band_upper": 0.1, "target": 0.0}},
        {"ts": 2_000, "action": "hedge", "code": "hedge.band", "reason": "outside", "inputs": {"delta": 0.2, "band_lower": -0.1, "band_upper": 0.1, "wanted_coin": -0.2, "target": 0.0}},
    ]
    s = analytics.decision_series(decisions)
    assert s.ts == [1_000, 2_000] and s.upper == [0.1, 0.1] and s.hedge_ts == [2_000]
    rows = analytics.decision_rows(decisions)
    assert rows[1]["rule"] == "hedge.band" and rows[1]["size"] == -0.2
    f = analytics.run_frontier([{"run_id": "r", "summary": {"fees_usd": 2.0, "slippage_usd": 1.0}}], lambda _: decisions)
    assert f.cost == [3.0] and f.error[0] == pytest.approx(np.std([0.05, 0.2]))


def test_positions_table_rows() -> None:
    d = Desk(seed=21, sim=SimConfig(seed=21, listing=SMALL))
    d.advance(5_000)
    for req in [*_short_straddle(d), OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal(2_000), None, OrderType.MARKET)]:
        d.place_now(req)
    d.advance(2_000)
    snap = d.snapshot()
    rows = analytics.positions_table(snap)
    views = {p.instrument: p for p in snap.positions}
    assert [r["instrument"] for r in rows][-1] == "BTC-PERPETUAL" and {r["instrument"] for r in rows} == set(views)
    assert len(rows) == 3  # the two legs by expiry first, the perpetual (no expiry) last
    for r in rows:
        p = views[r["instrument"]]
        assert r["size"] == p.size and r["pnl_usd"] == round(p.pnl_usd, 2)
        assert r["realised"] == round(p.realized_pnl + p.funding - p.fees, 8) < 0  # only fees so far
        assert r["delta"] == round(p.greeks.delta, 6)
    assert analytics.positions_table(None) == []


def test_the_25_delta_risk_reversal_is_read_at_the_plain_black_scholes_delta(desk: Desk) -> None:
    from app.pricing import black76

    snap = desk.snapshot()
    sl = next(s for s in snap.chains["BTC"] if s.expiry_ms > snap.ts and len(s.rows) >= 6)
    arrays = analytics._slice_arrays(sl)
    rows = {r.strike: r for r in sl.rows if (r.option_type.value == "put") == (r.strike < sl.forward)}
    t = (sl.expiry_ms - snap.ts) / analytics.MS_PER_YEAR
    for k, d in zip(arrays["k"], arrays["delta"], strict=True):
        r = rows[k]
        # The chain row's coin delta is premium-adjusted; the RR's axis is the plain delta.
        want = float(black76(sl.forward, k, t, r.mark_iv, r.option_type.value == "call").delta)
        assert d == pytest.approx(want, abs=2e-3)


# --------------------------------------------------------------------------------------------------
# Stored runs: a history row read back gives the figures the desk had, unknown ones as NaN (never 0)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def booked() -> Desk:
    """A short straddle (margin, greeks and PnL all non-zero), margin balance apart from equity."""
    d = Desk(seed=21, sim=SimConfig(seed=21, listing=SMALL))
    d.advance(5_000)
    for req in _short_straddle(d):
        d.place_now(req)
    d.advance(30_000)
    return d


def test_a_history_row_reads_back_as_the_desk_s_margin_and_greeks(booked: Desk) -> None:
    snap = booked.snapshot(chains=False)
    stored = analytics.snapshot_from_row(analytics.history_row(snap))
    for ccy, live in snap.margin.items():
        got = stored.margin[ccy]
        for f in ("model", "equity", "balance", "margin_balance", "initial_margin", "maintenance_margin",
                  "available_funds", "im_usage", "mm_usage", "alert_level"):
            assert getattr(got, f) == pytest.approx(getattr(live, f)), (ccy, f)
        assert analytics.model_label(got) == live.model
    btc = snap.margin["BTC"]
    assert btc.margin_balance != pytest.approx(btc.equity)  # the straddle's value: the two really differ
    for und, live_g in snap.portfolio.items():
        assert stored.portfolio[und] == live_g
    assert stored.portfolio["BTC"].theta > 0 and stored.portfolio["BTC"].delta_bs != 0.0  # short options earn theta
    assert analytics.total_pnl_usd(stored) == pytest.approx(sum(p.pnl_usd for p in snap.positions)) != 0.0


def test_distances_to_liquidation_keep_none_in_range_apart_from_not_asked(booked: Desk) -> None:
    asked = booked.margin()["BTC"]  # with distances: the solve ran (down found, up none within range)
    assert asked.distance_down is not None and asked.distance_up is None and "liquidation" in asked.details
    snap = booked.snapshot(chains=False)
    back = analytics.snapshot_from_row(analytics.history_row(replace_margin(snap, asked))).margin["BTC"]
    assert back.distance_down == asked.distance_down and back.distance_up is None
    cheap = replace_margin(snap, replace(asked, distance_down=None, details={}))  # asked without distances: unknown
    back = analytics.snapshot_from_row(analytics.history_row(cheap)).margin["BTC"]
    assert np.isnan(back.distance_down) and np.isnan(back.distance_up)  # type: ignore[arg-type]


def replace_margin(snap: Any, report: MarginReport) -> Any:
    return replace(snap, margin={**snap.margin, report.currency: report})


def test_an_older_row_derives_what_it_can_and_leaves_the_rest_unknown() -> None:
    # What `desk run` stored before rows kept every figure: equity, IM, MM, MM usage, three greeks, PnL.
    row = {"ts": 1_000, "BTC.equity": 10.2, "BTC.im": 0.6, "BTC.mm": 0.4, "BTC.mm_usage": 0.04,
           "BTC.delta": -1.5, "BTC.delta_usd": -60_000.0, "BTC.vega": 0.01, "equity_usd": 408_000.0}
    snap = analytics.snapshot_from_row(row)
    m = snap.margin["BTC"]
    assert m.margin_balance == pytest.approx(10.0) and m.available_funds == pytest.approx(9.4)  # MM / MM usage
    assert m.im_usage == pytest.approx(0.06) and m.mm_usage == 0.04 and m.equity == 10.2
    assert np.isnan(m.balance) and np.isnan(m.alert_level) and analytics.model_label(m) is None
    assert np.isnan(m.distance_down) and np.isnan(m.distance_up)  # type: ignore[arg-type]
    g = snap.portfolio["BTC"]
    assert g.delta == -1.5 and g.vega == 0.01
    assert all(np.isnan(getattr(g, f)) for f in ("delta_bs", "gamma", "theta", "gamma_usd", "vega_usd", "theta_usd"))
    assert np.isnan(analytics.total_pnl_usd(snap))
    flat = analytics.margin_from_row({"ETH.equity": 5.0, "ETH.im": 0.0, "ETH.mm": 0.0, "ETH.mm_usage": 0.0}, "ETH")
    assert np.isnan(flat.margin_balance) and np.isnan(flat.available_funds) and flat.mm_usage == 0.0


def test_a_stored_position_has_unknown_marks_and_greeks() -> None:
    p = analytics.stored_position("BTC-27DEC24-60000-P", 2.0, 0.0425)
    assert p.size == 2.0 and p.average_price == 0.0425 and p.underlying == "BTC" and p.expiry_ms is not None
    assert all(np.isnan(x) for x in (p.mark, p.pnl, p.pnl_usd, p.net_realized, p.greeks.delta, p.greeks.theta))
    row = analytics.positions_table(replace(_empty_snapshot(), positions=(p,)))[0]
    assert row["mark"] is None and row["pnl_usd"] is None and row["theta"] is None and row["gamma"] is None


def _empty_snapshot() -> Any:
    from app.domain import DeskSnapshot

    return DeskSnapshot(ts=0, venue="stored", index_prices={}, instruments=(), chains={}, quotes={}, positions=(),
                        portfolio={}, margin={})


def test_nearest_liquidation_picks_the_nearer_direction() -> None:
    base = analytics.margin_from_row({"BTC.equity": 1.0, "BTC.im": 0.0, "BTC.mm": 0.0, "BTC.mm_usage": 0.0}, "BTC")
    assert analytics.nearest_liquidation(replace(base, distance_down=None, distance_up=0.1)) == 0.1
    assert analytics.nearest_liquidation(replace(base, distance_down=-0.05, distance_up=0.1)) == -0.05
    assert analytics.nearest_liquidation(replace(base, distance_down=None, distance_up=None)) is None
    assert np.isnan(analytics.nearest_liquidation(base))  # type: ignore[arg-type]  # the row kept no distances


def test_alert_levels_are_the_ones_the_reports_are_cut_at(desk: Desk) -> None:
    from types import SimpleNamespace

    assert analytics.alert_levels(desk) == desk.margin_engine.alert_levels
    assert analytics.alert_levels(SimpleNamespace(alert_levels=[0.9, 0.3, 0.6])) == (0.3, 0.6, 0.9)
    assert analytics.alert_levels(object()) == analytics.DEFAULT_ALERT_LEVELS == (0.5, 0.8, 1.0)  # stored run, venue
