"""The Desk: trading through the simulated venue, portfolio greeks kept incrementally, margin, snapshot, strategies."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import numpy as np
import pytest

from app.desk import Desk
from app.domain import DeskSnapshot, FillEvent, OrderRequest, OrderStatus, PositionUpdate, Side
from app.errors import ConfigError, InsufficientMargin, InvalidInput, NotFound, UnknownInstrument
from app.pricing.black import inverse_greeks
from connectors.sim.listing import ListingConfig
from connectors.sim.venue import SimConfig

SMALL = ListingConfig(weekly_days=8, monthly_days=0, quarterly_days=100, strikes_per_expiry=12)


def _desk(seed: int = 7, **kw) -> Desk:
    return Desk(seed=seed, sim=SimConfig(seed=seed, listing=SMALL, **kw))


def _atm_option(desk: Desk, base: str = "BTC", k: int = 1) -> str:
    exp = desk.expiries(base)[k]
    sl = desk.chain(base, exp)
    row = min(sl.rows, key=lambda r: (abs(r.strike - sl.forward), r.option_type.value))
    return row.instrument


def _buy_at_ask(desk: Desk, name: str, amount: str) -> object:
    q = desk.quote(name)
    assert q is not None and q.ask is not None
    return desk.place_now(OrderRequest(name, Side.BUY, Decimal(amount), Decimal(repr(q.ask))))


def test_default_account_is_funded_and_trades_at_once() -> None:
    desk = _desk()
    margin = desk.margin()
    assert margin["BTC"].equity == pytest.approx(10.0) and margin["ETH"].equity == pytest.approx(100.0)
    sub = desk.subscribe({"fill_event", "position_update"})
    order = _buy_at_ask(desk, "BTC-PERPETUAL", "10000")
    assert order.status is OrderStatus.FILLED
    desk.advance(1_000)
    events = sub.drain()
    assert any(isinstance(e, FillEvent) for e in events) and any(isinstance(e, PositionUpdate) for e in events)
    pos = {p.instrument: p for p in desk.positions()}
    assert pos["BTC-PERPETUAL"].size == 10_000.0
    assert pos["BTC-PERPETUAL"].greeks.delta == pytest.approx(10_000.0 / desk.quote("BTC-PERPETUAL").mark_price)


def test_portfolio_greeks_follow_fills_and_marks_and_equal_a_full_revaluation() -> None:
    desk = _desk()
    desk.advance(2_000)
    call = _atm_option(desk)
    put = call[:-1] + "P"
    _buy_at_ask(desk, call, "3")
    _buy_at_ask(desk, put, "2")
    _buy_at_ask(desk, "BTC-PERPETUAL", "20000")
    for _ in range(5):
        desk.advance(30_000)
        # Between mark moves the greeks are those of the last mark (at most a minute old): close already...
        incremental = desk.portfolio()["BTC"].delta
        # ...and after a forced re-pricing, equal to a full revaluation (the totals are kept by differences).
        desk.book.touch_all()
        desk.book.flush(desk.now_ms())
        held = [p for p in desk.positions() if p.underlying == "BTC"]
        total = 0.0
        for p in held:
            q = desk.quote(p.instrument)
            inst = desk.venue.instruments_by_name[p.instrument]
            if inst.is_option:
                g = inverse_greeks(q.underlying_price, float(inst.strike), inst.years_to_expiry(desk.now_ms()), q.mark_iv,
                                   inst.is_call)
                total += p.size * float(g.delta)
            else:
                total += p.size / q.mark_price
        assert desk.portfolio()["BTC"].delta == pytest.approx(total, rel=1e-9, abs=1e-9)
        assert incremental == pytest.approx(total, rel=1e-4)
    assert desk.portfolio()["ETH"].delta == 0.0


def test_orders_cancel_amend_and_typed_errors_change_nothing() -> None:
    desk = _desk()
    desk.advance(1_000)
    name = "BTC-PERPETUAL"
    q = desk.quote(name)
    low = Decimal(repr(q.bid)) - Decimal(500)
    order = desk.place_now(OrderRequest(name, Side.BUY, Decimal(1000), low))
    assert order.status is OrderStatus.OPEN and desk.open_orders() == [order]
    amended = asyncio.run(desk.amend(order.order_id, price=low - Decimal(100)))
    assert amended.request.price == low - Decimal(100)
    cancelled = asyncio.run(desk.cancel(order.order_id))
    assert cancelled.status is OrderStatus.CANCELLED and desk.open_orders() == []
    equity = desk.margin()["BTC"].equity
    with pytest.raises(InsufficientMargin):
        desk.place_now(OrderRequest(name, Side.SELL, Decimal(100_000_000), Decimal(repr(q.bid))))
    with pytest.raises(UnknownInstrument):
        desk.place_now(OrderRequest("BTC-3JAN30", Side.BUY, Decimal(10), Decimal(60_000)))
    with pytest.raises(InvalidInput):
        desk.place_now(OrderRequest(name, Side.BUY, Decimal(10), Decimal("60000.3")))  # off tick
    with pytest.raises(NotFound):
        asyncio.run(desk.cancel("nope"))
    assert desk.positions() == () and desk.margin()["BTC"].equity == pytest.approx(equity)
    assert desk.counters["rejects"] == 3


def test_what_if_reports_without_changing_state() -> None:
    desk = _desk()
    desk.advance(1_000)
    name = _atm_option(desk)
    q = desk.quote(name)
    before = desk.margin()["BTC"]
    report = desk.what_if([OrderRequest(name, Side.SELL, Decimal(20), Decimal(repr(q.bid)))])["BTC"]
    assert report.initial_margin > before.initial_margin + 0.1
    assert desk.margin()["BTC"].initial_margin == pytest.approx(before.initial_margin)
    assert desk.positions() == () and desk.open_orders() == []
    with pytest.raises(UnknownInstrument):
        desk.what_if([OrderRequest("ETH-1JAN30-1-C", Side.BUY, Decimal(1), Decimal("0.1"))])


def test_snapshot_has_chain_quotes_positions_margin_and_events() -> None:
    desk = _desk()
    desk.advance(2_000)
    name = _atm_option(desk)
    _buy_at_ask(desk, name, "1")
    desk.advance(1_000)
    snap = desk.snapshot()
    assert isinstance(snap, DeskSnapshot) and snap.venue == "sim"
    assert set(snap.chains) == {"BTC", "ETH"} and len(snap.instruments) == len(desk.venue.instruments_by_name)
    sl = snap.chains["BTC"][1]
    assert [s.expiry_ms for s in snap.chains["BTC"]] == sorted(s.expiry_ms for s in snap.chains["BTC"])
    atm = [r for r in sl.rows if r.strike == sl.atm_strike]
    assert len(atm) == 2 and all(r.bid is not None and r.ask is not None and r.bid < r.mark < r.ask for r in atm)
    assert all(r.bid_iv is None or r.bid_iv < r.mark_iv + 1e-9 for r in sl.rows)
    call = next(r for r in atm if r.option_type.value == "call")
    assert 0.3 < call.delta + call.mark < 0.7  # premium-adjusted delta + price = BS delta near ATM
    assert [p.instrument for p in snap.positions] == [name]
    assert snap.margin["BTC"].initial_margin >= 0 and snap.index_prices["btc_usd"] > 0
    assert any(isinstance(e, FillEvent) for e in snap.recent_events)
    assert snap.portfolio["BTC"].delta_usd == pytest.approx(snap.portfolio["BTC"].delta * snap.index_prices["btc_usd"])


def test_same_seed_same_desk_and_advance_is_validated() -> None:
    a, b = _desk(5), _desk(5)
    for d in (a, b):
        d.advance(30_000)
        _buy_at_ask(d, "ETH-PERPETUAL", "5000")
        d.advance(30_000)
    assert a.summary()["fills_sha256"] == b.summary()["fills_sha256"]
    assert a.summary() == b.summary()
    with pytest.raises(InvalidInput):
        a.advance(-5)


def test_unknown_venue_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Desk(venue="nowhere")


@pytest.mark.asyncio
async def test_start_runs_the_market_in_a_task_and_stop_is_clean() -> None:
    desk = _desk()
    t0 = desk.now_ms()
    await desk.start(duration_ms=20_000)
    assert desk.speed == 1.0
    desk.speed = 0.0  # as fast as possible from now on
    await asyncio.wait_for(desk.wait(), timeout=60)
    assert desk.now_ms() == t0 + 20_000
    await desk.stop()
    await desk.stop()  # idempotent


@pytest.mark.asyncio
async def test_subscribers_see_quotes_and_index() -> None:
    desk = _desk()
    sub = desk.subscribe({"quote", "index_price"})
    await desk.run_for(3_000)
    kinds = {e.topic for e in sub.drain()}
    assert kinds == {"quote", "index_price"}


def test_settlement_delivers_our_expired_option() -> None:
    desk = _desk(start_ms=1_704_095_400_000, step_ms=10_000)  # 2024-01-01 07:50 UTC
    first = min(desk.expiries("BTC"))
    sl = desk.chain("BTC", first)
    row = min((r for r in sl.rows if r.option_type.value == "call"), key=lambda r: abs(r.strike - sl.forward))
    _buy_at_ask(desk, row.instrument, "1")
    desk.advance(20 * 60_000)
    assert row.instrument not in {p.instrument for p in desk.positions()}
    assert "BTC" in desk.book.settled_pnl
    assert desk.venue.accounts.position("main", row.instrument) is None
    assert np.isfinite(desk.margin()["BTC"].equity)


def test_model_parameters_per_underlying_come_from_config() -> None:
    from app.config import Settings

    desk = Desk(Settings(sim={"model": {"BTC": {"theta": 0.9, "spot": 30_000.0}}}))
    assert desk.venue.model.params["BTC"].theta == 0.9 and desk.index_price("BTC") == pytest.approx(30_000, rel=0.01)
    assert desk.venue.model.params["ETH"].theta == pytest.approx(0.55)
    with pytest.raises(ConfigError) as err:
        Desk(Settings(sim={"model": {"BTC": {"thetta": 0.9}}}))
    assert err.value.details["key"] == "sim.model.BTC"
    with pytest.raises(ConfigError):
        Desk(Settings(sim={"model": {"ETH": {"jump_std": -1.0}}}))


@pytest.mark.asyncio
async def test_an_activated_hedger_hedges_our_option_delta_through_the_desk() -> None:
    from strategies.delta_hedger import DeltaHedger
    from strategies.hedger_config import parse_hedger_config
    from strategies.memory_store import MemoryStore

    desk = Desk(seed=7, store=MemoryStore(), sim=SimConfig(seed=7, listing=SMALL))
    await desk.run_for(2_000)
    name = _atm_option(desk, k=2)
    call = name[:-1] + "C"
    _buy_at_ask(desk, call, "5")
    await desk.run_for(1_000)
    before = desk.portfolio()["BTC"].delta
    assert before > 1.0
    cfg = parse_hedger_config({"underlying": "BTC", "check_interval_s": 1.0, "band": {"rule": "fixed", "upper": 0.2}})
    runner = desk.add_strategy(DeltaHedger(cfg), "hedge1", check_interval_ms=1_000)
    await desk.strategy_control("hedge1", "activate")
    await desk.run_for(30_000)
    after = desk.portfolio()["BTC"].delta
    assert abs(after) < 0.5 < before
    perp = {p.instrument: p for p in desk.positions()}.get("BTC-PERPETUAL")
    assert perp is not None and perp.size < 0
    status = (await desk.strategy_control("hedge1", "pause")).status
    assert status == "paused" and runner.sent >= 1
    assert desk.snapshot(chains=False).strategies[0].run_id == "hedge1"
    with pytest.raises(NotFound):
        await desk.strategy_control("nope", "activate")
    with pytest.raises(InvalidInput):
        await desk.strategy_control("hedge1", "dance")
    await desk.stop()


def test_margin_alerts_reach_the_bus_and_the_recent_events() -> None:
    from app.domain import MarginAlert

    desk = _desk()
    desk.advance(1_000)
    sub = desk.subscribe({"margin_alert"})
    name = _atm_option(desk, k=2)
    q = desk.quote(name)
    sold = 0
    while desk.margin()["BTC"].mm_usage < 0.5 and sold < 60:
        desk.place_now(OrderRequest(name, Side.SELL, Decimal(5), Decimal(repr(desk.quote(name).bid))))
        sold += 5
    assert q is not None and desk.margin()["BTC"].mm_usage >= 0.5
    desk.advance(12_000)
    alerts = [e for e in sub.drain() if isinstance(e, MarginAlert)]
    assert alerts and alerts[-1].level >= 0.5 and alerts[-1].currency == "BTC"
    assert any(isinstance(e, MarginAlert) for e in desk.snapshot(chains=False).recent_events)


def test_depth_reads_books_brought_up_to_date() -> None:
    desk = _desk()
    desk.advance(5_000)
    bids, asks = desk.depth("BTC-PERPETUAL", 5)
    assert len(bids) == len(asks) == 2  # two makers, one level each
    q = desk.quote("BTC-PERPETUAL")
    assert float(bids[0][0]) == q.bid and float(asks[0][0]) == q.ask and bids[0][0] < asks[0][0]
    with pytest.raises(UnknownInstrument):
        desk.depth("BTC-1JAN30", 5)


def test_position_view_shows_realised_pnl_fees_and_perpetual_funding() -> None:
    from app.engine.ledger import EntryKind
    from connectors.deribit_api.desk_backend import DeskBackend
    from connectors.deribit_api.shapes import position_json

    desk = _desk()
    desk.advance(1_000)
    perp = "BTC-PERPETUAL"
    _buy_at_ask(desk, perp, "30000")
    desk.advance(2 * 3_600_000)  # seed 7: the perpetual's premium leaves the dampener within these two hours
    q = desk.quote(perp)
    desk.place_now(OrderRequest(perp, Side.SELL, Decimal(10_000), Decimal(repr(q.bid))))  # close a third
    desk.advance(1_000)
    p = {p.instrument: p for p in desk.positions()}[perp]
    ledger = desk.venue.accounts.ledger
    paid = sum(e.amount for e in ledger.entries(desk.account, "BTC") if e.kind is EntryKind.FUNDING and e.ref == perp)
    assert paid != 0 and p.funding == float(paid)  # the ledger's own funding entries for this account and perpetual
    fees = sum(-e.amount for e in ledger.entries(desk.account, "BTC") if e.kind is EntryKind.FEE)
    assert p.fees == pytest.approx(float(fees), abs=1e-10) and p.fees > 0
    assert p.realized_pnl != 0 and p.size == 20_000.0  # the closed third realised PnL against the average price
    assert p.net_realized == pytest.approx(p.realized_pnl + p.funding - p.fees)
    # Deribit's get_positions: realized_profit_loss includes funding, not fees; realized_funding on its own.
    inst = desk.venue.instruments_by_name[perp]
    wire = position_json(next(v for v in DeskBackend(desk).positions(desk.account) if v.instrument == perp), inst)
    assert wire["realized_funding"] == p.funding
    assert wire["realized_profit_loss"] == pytest.approx(p.realized_pnl + p.funding)
    # An option has no funding column value: nothing is booked against it.
    opt = _atm_option(desk)
    _buy_at_ask(desk, opt, "1")
    desk.advance(1_000)
    assert {p.instrument: p for p in desk.positions()}[opt].funding == 0.0


def test_configured_margin_alert_levels_reach_the_margin_engine() -> None:
    from app.config import Settings

    desk = Desk(Settings(margin={"alert_levels": [0.3, 0.6, 0.9]}))
    assert desk.venue.margin.alert_levels == (0.3, 0.6, 0.9)
    assert Desk().venue.margin.alert_levels == (0.5, 0.8, 1.0)
