"""Outbox lifecycle, strategy runs and state, the single-writer lease, hedge decisions."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal

import pytest

from app.errors import InvalidInput, LeaseHeld, NotFound, StoreError
from app.ports import Store
from storage.store import SqlStore
from tests.storage.conftest import make_request


def test_sql_store_satisfies_the_port(store: SqlStore) -> None:
    assert isinstance(store, Store)


# -- outbox -------------------------------------------------------------------------------------


def test_outbox_put_is_idempotent_and_pending_until_acked(store: SqlStore) -> None:
    req = make_request("h1-0001")
    assert store.outbox_put("r1", "h1-0001", req) is True
    assert store.outbox_put("r1", "h1-0001", make_request("h1-0001", price="0.02")) is False
    pending = store.outbox_pending()
    assert len(pending) == 1
    entry = pending[0]
    assert entry["status"] == "pending" and entry["request"] == req and entry["attempts"] == 0
    store.outbox_mark("h1-0001", "sent")
    assert store.outbox_pending()[0]["status"] == "sent"
    store.outbox_mark("h1-0001", "sent")
    store.outbox_mark("h1-0001", "acked", venue_order_id="V-77")
    assert store.outbox_pending() == []
    got = store.outbox_get("h1-0001")
    assert got is not None
    assert (got["status"], got["venue_order_id"], got["attempts"]) == ("acked", "V-77", 2)


def test_outbox_pending_is_oldest_first_and_per_run(store: SqlStore) -> None:
    for i in range(5):
        store.outbox_put("r1" if i % 2 == 0 else "r2", f"c{i}", make_request(f"c{i}"))
    store.outbox_mark("c2", "failed", error="venue said no")
    assert [e["client_order_id"] for e in store.outbox_pending()] == ["c0", "c1", "c3", "c4"]
    assert [e["client_order_id"] for e in store.outbox_pending(run_id="r1")] == ["c0", "c4"]
    assert store.outbox(statuses=["failed"])[0]["error"] == "venue said no"


def test_outbox_refuses_bad_transitions_and_unknown_entries(store: SqlStore) -> None:
    store.outbox_put("r1", "c1", make_request("c1"))
    store.outbox_mark("c1", "acked")
    with pytest.raises(InvalidInput) as exc:
        store.outbox_mark("c1", "pending")
    assert exc.value.code == "outbox.transition"
    with pytest.raises(InvalidInput):
        store.outbox_mark("c1", "done")
    with pytest.raises(NotFound):
        store.outbox_mark("nope", "sent")
    assert store.outbox_get("c1")["status"] == "acked"  # type: ignore[index]


def test_outbox_survives_reopen(store: SqlStore, reopen: Callable[..., SqlStore]) -> None:
    store.outbox_put("r1", "c1", make_request("c1"))
    store.outbox_mark("c1", "sent")
    store.close()
    assert [e["client_order_id"] for e in reopen().outbox_pending()] == ["c1"]


# -- runs and state -----------------------------------------------------------------------------


def test_runs_create_get_list_status(store: SqlStore) -> None:
    run = store.create_run("hedge-1", "delta_hedger", {"band": Decimal("0.05"), "instrument": "BTC-PERPETUAL"})
    assert run["status"] == "dry_run" and run["config"]["band"] == Decimal("0.05")
    with pytest.raises(InvalidInput) as exc:
        store.create_run("hedge-1")
    assert exc.value.code == "run.exists"
    store.create_run("hedge-2", "other", status="paused")
    store.set_run_status("hedge-1", "active")
    assert store.get_run("hedge-1")["status"] == "active"  # type: ignore[index]
    assert [r["run_id"] for r in store.list_runs(status="active")] == ["hedge-1"]
    assert len(store.list_runs()) == 2
    assert store.get_run("nope") is None
    with pytest.raises(NotFound):
        store.set_run_status("nope", "killed")
    with pytest.raises(InvalidInput):
        store.set_run_status("hedge-1", "exploded")


def test_strategy_state_round_trip_keeps_decimals_and_nan(store: SqlStore) -> None:
    assert store.load_strategy_state("r1") is None
    state = {"hedged": Decimal("0.1234567890"), "n": 3, "band": [0.01, 0.02], "vol": float("nan"), "nested": {"a": None}}
    store.save_strategy_state("r1", state)
    got = store.load_strategy_state("r1")
    assert got is not None
    assert got["hedged"] == Decimal("0.1234567890") and isinstance(got["hedged"], Decimal)
    assert got["n"] == 3 and got["band"] == [0.01, 0.02] and got["nested"] == {"a": None}
    assert math.isnan(got["vol"])
    store.save_strategy_state("r1", {"n": 4})
    assert store.load_strategy_state("r1") == {"n": 4}
    assert store.get_run("r1") is not None  # an unregistered run is registered on first save


def test_unstorable_state_is_refused(store: SqlStore) -> None:
    with pytest.raises(InvalidInput):
        store.save_strategy_state("r1", {"f": object()})
    with pytest.raises(InvalidInput):
        store.save_strategy_state("r1", ["not", "a", "dict"])  # type: ignore[arg-type]
    assert store.load_strategy_state("r1") is None


# -- leases -------------------------------------------------------------------------------------


def test_lease_single_writer_and_stale_takeover(store: SqlStore) -> None:
    store.create_run("r1")
    lease = store.acquire_lease("r1", "host-a:1", stale_after_s=30, now_ms=1_000_000)
    assert lease.took_over_from is None
    # the holder re-acquiring (a restart of the same process id) keeps its lease
    assert store.acquire_lease("r1", "host-a:1", now_ms=1_005_000).acquired_ms == 1_000_000
    with pytest.raises(LeaseHeld) as exc:
        store.acquire_lease("r1", "host-b:2", stale_after_s=30, now_ms=1_020_000)
    assert exc.value.code == "store.lease_held" and exc.value.details["holder"] == "host-a:1"
    store.heartbeat("r1", "host-a:1", now_ms=1_030_000)
    with pytest.raises(LeaseHeld):
        store.acquire_lease("r1", "host-b:2", stale_after_s=30, now_ms=1_059_000)
    taken = store.acquire_lease("r1", "host-b:2", stale_after_s=30, now_ms=1_070_000)
    assert taken.took_over_from == "host-a:1" and taken.stale_for_ms == 40_000
    alerts = store.alerts()
    assert alerts[0]["code"] == "store.lease_takeover" and "host-a:1" in alerts[0]["message"]
    with pytest.raises(LeaseHeld) as lost:
        store.heartbeat("r1", "host-a:1", now_ms=1_071_000)
    assert lost.value.code == "store.lease_lost"
    assert store.get_run("r1")["lease_holder"] == "host-b:2"  # type: ignore[index]


def test_lease_release_lets_another_in(store: SqlStore) -> None:
    store.acquire_lease("r1", "a", now_ms=1_000)
    assert store.release_lease("r1", "b") is False
    assert store.release_lease("r1", "a") is True
    assert store.acquire_lease("r1", "b", now_ms=2_000).took_over_from is None


def test_lease_is_exclusive_across_two_store_instances(store: SqlStore, reopen: Callable[..., SqlStore]) -> None:
    other = reopen()
    store.acquire_lease("r1", "proc-1")
    with pytest.raises(LeaseHeld):
        other.acquire_lease("r1", "proc-2")


# -- decisions ----------------------------------------------------------------------------------


def test_decisions_with_inputs_rule_intent_and_results(store: SqlStore) -> None:
    d1 = store.record_decision(
        "r1",
        {
            "ts": 5_000,
            "rule": "band_exceeded",
            "action": "hedge",
            "inputs": {"delta": 0.31, "band": 0.2, "index": 98000.0},
            "intent": {"side": "sell", "amount": Decimal("30")},
            "note": "kept as extra",
        },
    )
    store.record_decision("r1", {"ts": 6_000, "rule": "inside_band", "action": "none", "inputs": {"delta": 0.05}})
    store.record_decision("r2", {"ts": 5_500, "rule": "stale_data", "action": "pause"})
    store.attach_decision_result(d1, order_ids=["o1"], trade_ids=["t1", "t2"])
    got = store.decisions("r1")
    assert [d["rule"] for d in got] == ["band_exceeded", "inside_band"]
    assert got[0]["intent"]["amount"] == Decimal("30") and got[0]["note"] == "kept as extra"
    assert got[0]["order_ids"] == ["o1"] and got[0]["trade_ids"] == ["t1", "t2"]
    assert [d["rule"] for d in store.decisions(newest_first=True, limit=2)] == ["inside_band", "stale_data"]
    assert [d["ts"] for d in store.decisions(since_ms=5_500)] == [5_500, 6_000]
    with pytest.raises(NotFound):
        store.attach_decision_result(99_999, order_ids=["x"])


def test_closed_store_refuses_work(store: SqlStore) -> None:
    store.close()
    with pytest.raises(StoreError) as exc:
        store.outbox_put("r1", "c1", make_request("c1"))
    assert exc.value.code == "store.closed"


async def test_async_callers_do_not_block_the_loop(store: SqlStore) -> None:
    import asyncio

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    from tests.storage.conftest import make_fill

    assert await store.record_fill_async(make_fill(1)) is True
    assert await store.outbox_put_async("r1", "c1", make_request("c1")) is True
    await store.outbox_mark_async("c1", "sent")
    task.cancel()
    assert ticks > 0
    assert store.outbox_pending()[0]["status"] == "sent"
