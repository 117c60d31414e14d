"""Positions, instruments, accounts and ledger, alerts, backtest runs."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from app.domain import Alert, Instrument, MarginAlert, Position
from app.errors import InvalidInput, NotFound
from storage.store import SqlStore


def test_positions_upsert_latest_per_account_and_instrument(store: SqlStore) -> None:
    store.save_positions([Position("BTC-PERPETUAL", Decimal("-1000"), Decimal("98000.5"))])
    store.save_positions(
        [
            Position("BTC-PERPETUAL", Decimal("-1500"), Decimal("97990.25"), Decimal("0.0012")),
            Position("BTC-27DEC24-60000-C", Decimal("2.5"), Decimal("0.0125"), account="sub1", tag="hedged"),
            Position("ETH-PERPETUAL", Decimal("0"), Decimal("0")),
        ]
    )
    got = store.positions()
    assert got == [
        Position("BTC-PERPETUAL", Decimal("-1500"), Decimal("97990.25"), Decimal("0.0012")),
        Position("BTC-27DEC24-60000-C", Decimal("2.5"), Decimal("0.0125"), account="sub1", tag="hedged"),
    ]
    assert len(store.positions(nonzero=False)) == 3
    assert store.positions(account="sub1")[0].tag == "hedged"
    assert store.positions(venue="deribit") == []


def test_instruments_round_trip_with_conventions(store: SqlStore) -> None:
    names = ["BTC-27DEC24-60000-C", "BTC-PERPETUAL", "BTC-27DEC24", "XRP_USDC-30JUN23-0d625-C", "BTC_USDC"]
    insts = [Instrument.parse(n) for n in names]
    assert store.save_instruments(insts) == 5
    assert store.save_instruments(insts[:1]) == 1  # upsert, no duplicate
    got = {i.name: i for i in store.instruments()}
    assert set(got) == set(names)
    for inst in insts:
        assert got[inst.name] == inst
    assert store.instruments("deribit") == []


def test_ledger_entries_and_exact_balances(store: SqlStore) -> None:
    aid = store.ensure_account("main")
    assert store.ensure_account("main") == aid
    n = store.record_ledger_entries(
        [
            {"account": "main", "currency": "BTC", "amount": Decimal("10"), "kind": "deposit", "ts": 1},
            {"account": "main", "currency": "BTC", "amount": Decimal("-0.0000051"), "kind": "fee", "ts": 2, "ref": "T1"},
            {"account": "main", "currency": "ETH", "amount": Decimal("100"), "kind": "deposit", "ts": 3},
            {"account": "insurance", "currency": "BTC", "amount": Decimal("0.0000051"), "kind": "fee", "ts": 2},
        ]
    )
    assert n == 4
    assert store.balances("main") == {"BTC": Decimal("9.9999949"), "ETH": Decimal("100")}
    assert store.balances("insurance") == {"BTC": Decimal("0.0000051")}
    entries = store.ledger_entries("main", currency="BTC")
    assert [(e["kind"], e["ref"], e["ts"]) for e in entries] == [("deposit", None, 1), ("fee", "T1", 2)]


def test_bad_ledger_batch_writes_nothing(store: SqlStore) -> None:
    with pytest.raises(InvalidInput):
        store.record_ledger_entries(
            [
                {"account": "main", "currency": "BTC", "amount": Decimal("1"), "kind": "deposit", "ts": 1},
                {"account": "main", "currency": "BTC", "kind": "fee", "ts": 2},
            ]
        )
    with pytest.raises(InvalidInput):
        store.record_ledger_entries([{"account": "main", "currency": "BTC", "amount": "x", "kind": "fee", "ts": 1}])
    assert store.balances("main") == {}


def test_alerts_from_domain_events_and_dicts(store: SqlStore) -> None:
    store.record_alert(Alert(ts=1_000, source="connector.deribit", message="reconnected", severity="warning", code="ws"))
    store.record_alert(MarginAlert(ts=2_000, account="main", currency="BTC", level=0.8, mm_usage=0.83))
    store.record_alert({"ts": 3_000, "source": "runner", "message": "killed", "severity": "error", "data": {"run": "r1"}})
    got = store.alerts()
    assert [a["ts"] for a in got] == [3_000, 2_000, 1_000]
    assert got[1]["code"] == "margin.alert" and got[1]["data"]["mm_usage"] == 0.83
    assert [a["source"] for a in store.alerts(severity="error")] == ["runner"]
    assert len(store.alerts(since_ms=1_500)) == 2
    with pytest.raises(InvalidInput):
        store.record_alert({"ts": 1, "source": "x", "message": "y", "severity": "panic"})


def test_backtests_with_metrics_and_report(store: SqlStore) -> None:
    b1 = store.save_backtest(
        "band 5%",
        {"band": 0.05, "paths": 10},
        {"hedge_error": 0.012, "cost": 0.0031, "sharpe": float("nan")},
        report={"pnl": [0.0, 0.1, -0.05]},
        started_ms=1_000,
        finished_ms=2_000,
    )
    b2 = store.save_backtest("band 10%", {"band": 0.10}, {"hedge_error": 0.02}, backtest_id="bt-fixed")
    assert b2 == "bt-fixed"
    listed = store.list_backtests()
    assert {b["id"] for b in listed} == {b1, b2}
    assert "report" not in listed[0]
    got = store.get_backtest(b1)
    assert got["metrics"]["hedge_error"] == 0.012 and math.isnan(got["metrics"]["sharpe"])
    assert got["report"] == {"pnl": [0.0, 0.1, -0.05]} and (got["started_ms"], got["finished_ms"]) == (1_000, 2_000)
    with pytest.raises(NotFound):
        store.get_backtest("nope")
    with pytest.raises(InvalidInput):
        store.save_backtest("x", {}, {"m": "not a number"})
