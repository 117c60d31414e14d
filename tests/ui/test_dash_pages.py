"""The dashboard's pages as Python: layouts and callbacks over a small seeded desk, live or stored (no browser)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.desk import Desk
from app.domain import OrderRequest, OrderType, Side
from connectors.sim.listing import ListingConfig
from connectors.sim.venue import SimConfig
from ui.dash.pages import margin as margin_page
from ui.dash.pages import overview
from ui.dash.source import LiveSource, StoredSource
from ui.dash.widgets import fmt

MISSING = "—"  # what an unknown figure shows

TINY = ListingConfig(weekly_days=8, monthly_days=0, quarterly_days=0, strikes_per_expiry=6)


def small_desk(margin_model: str = "sm", **kwargs: Any) -> Desk:
    """A desk on a small listing (standard or portfolio margin), two simulated seconds in."""
    desk = Desk(seed=5, sim=SimConfig(seed=5, listing=TINY, margin_model=margin_model), **kwargs)
    desk.advance(2_000)
    return desk


def sell_straddle(desk: Desk, amount: str = "1") -> None:
    """Sell the ATM call and put of the second expiry at market (non-zero margin, greeks and PnL)."""
    sl = desk.chain("BTC", desk.expiries("BTC")[1])
    call = min((r for r in sl.rows if r.option_type.value == "call"), key=lambda r: abs(r.strike - sl.forward))
    for name in (call.instrument, call.instrument[:-1] + "P"):
        desk.place_now(OrderRequest(name, Side.SELL, Decimal(amount), None, OrderType.MARKET))
    desk.advance(5_000)


def find(component: Any, id_: str) -> Any:
    """The component with ``id_`` in a Dash layout tree, or None."""
    if getattr(component, "id", None) == id_:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, (str, int, float)):
            hit = find(child, id_)
            if hit is not None:
                return hit
    return None


def tiles(components: list[Any]) -> dict[str, str]:
    """KPI tiles as ``{label: value}``."""
    return {t.children[0].children: t.children[1].children for t in components}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StoredSource, Any, dict[str, Any]]]:
    """A short run written to a store, the desk's last view, and the source that reads the store back read-only."""
    from storage.store import SqlStore

    path: Path = tmp_path_factory.mktemp("stored") / "run.db"
    store = SqlStore(path)
    desk = small_desk(store=store)
    sell_straddle(desk)
    asyncio.run(desk.stop())
    last = desk.snapshot(chains=False)
    row = store.latest_snapshot("desk")
    store.close()
    ro = SqlStore(path, read_only=True)
    yield StoredSource(ro), last, row
    ro.close()


def test_a_stored_run_shows_the_figures_it_stored(stored: tuple[StoredSource, Any, dict[str, Any]]) -> None:
    source, last, row = stored
    snap = source.snapshot()
    assert snap is not None
    kpi = tiles(overview.kpis(snap))
    assert kpi["PnL (USD)"] == f"{row['pnl_usd']:,.2f}" != "0.00"  # the row's total, not a sum over no positions
    assert row["pnl_usd"] == pytest.approx(sum(p.pnl_usd for p in last.positions), abs=0.01)
    assert kpi["BTC available"] == fmt(row["BTC.available"])  # margin balance − IM, not equity − IM
    assert kpi["BTC Γ / vega / θ (coin)"].endswith(f"{row['BTC.theta']:+.4f}") and row["BTC.theta"] > 0
    figures = find(margin_page.layout(source), "margin-figures-BTC")
    shown = {r["figure"]: r["value"] for r in figures.data}
    m = last.margin["BTC"]
    assert shown["margin balance"] == fmt(row["BTC.margin_balance"]) != fmt(row["BTC.equity"])
    assert row["BTC.margin_balance"] == pytest.approx(m.margin_balance, abs=1e-6) and shown["model"] == "SM"
    assert shown["MM usage"] == fmt(m.mm_usage, pct=True)


def test_an_older_stored_row_shows_unknowns_as_a_dash() -> None:
    class _OldStore:
        def latest_snapshot(self, kind: str) -> dict[str, Any]:
            return {"ts": 1_000, "BTC.equity": 10.2, "BTC.im": 0.6, "BTC.mm": 0.4, "BTC.mm_usage": 0.04,
                    "BTC.delta": -1.5, "BTC.delta_usd": -60_000.0, "BTC.vega": 0.01}

    snap = StoredSource(_OldStore()).snapshot()
    kpi = tiles(overview.kpis(snap))
    assert kpi["PnL (USD)"] == MISSING and kpi["BTC Γ / vega / θ (coin)"] == f"{MISSING} / +0.0100 / {MISSING}"
    assert kpi["BTC liquidation at spot"] == MISSING
    assert kpi["BTC available"] == fmt(10.0 - 0.6)  # margin balance from MM / MM usage


def test_the_margin_page_draws_a_pm_account_s_risk_matrix() -> None:
    desk = small_desk("pm")
    sell_straddle(desk)
    source = LiveSource(desk)
    report = source.publish().margin["BTC"]
    fig = find(margin_page.layout(source), "margin-matrix-BTC").figure
    assert [t.type for t in fig.data] == ["heatmap"] and [a.text for a in fig.layout.annotations] == ["worst"]
    worst = report.details["pm"]["initial_margin_details"]["risk_matrix_margin_details"]["worst_case"]
    z = [[float("nan") if v is None else v for v in row] for row in fig.data[0].z]
    assert min(v for row in z for v in row if v == v) == pytest.approx(-worst)
    assert list(fig.data[0].y) == ["vol up", "vol flat", "vol down", "extended"]
    empty = find(margin_page.layout(source), "margin-matrix-ETH").figure  # nothing held in ETH
    assert not empty.data and "no PM details" in empty.layout.annotations[0].text


def callback(app: Any, output: str) -> Any:
    """The function of the callback that writes ``output`` (``id.property``), callable without a request."""
    key = next(k for k in app.callback_map if output in k.strip(".").split("...") or k == output)
    return app.callback_map[key]["callback"].__wrapped__


def test_the_overview_gauges_follow_the_live_tick() -> None:
    from ui.dash.app import create_app

    desk = small_desk()
    source = LiveSource(desk)
    source.publish()
    before = find(overview.layout(source), "gauge-BTC").figure.data[0].value
    refresh = callback(create_app(source), "overview-gauges.children")
    sell_straddle(desk, "5")
    report = source.publish().margin["BTC"]
    assert report.mm_usage * 100 > before + 1  # the short straddle: MM usage moved well past what the page drew
    outputs = refresh(1)
    gauges = {g.id: g.figure.data[0] for g in outputs[1]}
    assert gauges["gauge-BTC"].value == pytest.approx(report.mm_usage * 100)
    assert f"IM {report.im_usage:.1%}" in gauges["gauge-BTC"].title.text


@pytest.mark.parametrize("down, up, shown", [
    (None, 0.097, "up +9.7%"),  # a short call: only a rally liquidates
    (-0.42, 0.12, "up +12.0%"),  # the nearer of the two
    (-0.08, 0.30, "down -8.0%"),
    (None, None, "none in range"),
    (float("nan"), float("nan"), MISSING),  # a stored row without distances
])
def test_the_liquidation_tile_shows_the_nearer_direction(down: float | None, up: float | None, shown: str) -> None:
    from dataclasses import replace

    snap = small_desk().snapshot(chains=False)
    report = replace(snap.margin["BTC"], distance_down=down, distance_up=up)
    kpi = tiles(overview.kpis(replace(snap, margin={"BTC": report})))
    assert kpi["BTC liquidation at spot"] == shown


def test_the_gauge_bands_and_the_warning_follow_the_engine_s_alert_levels() -> None:
    desk = small_desk()
    desk.margin_engine.alert_levels = (0.001, 0.002, 0.9)  # as the engine would hold configured levels
    sell_straddle(desk)
    source = LiveSource(desk)
    report = source.publish().margin["BTC"]
    assert report.mm_usage > 0.002
    page = overview.layout(source)
    steps = find(page, "gauge-BTC").figure.data[0].gauge.steps
    assert [tuple(s.range) for s in steps] == [(0, 0.1), (0.1, 0.2), (0.2, 120)]
    tile = next(t for t in find(page, "overview-kpis").children if t.children[0].children == "BTC liquidation at spot")
    assert "alert-warning" in tile.className  # past the engine's first level (the default 50% is far away)
