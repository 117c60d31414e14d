"""Risk/margin snapshots (compact encoding, batched writes), recorded market data, retention."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import IndexPrice, Quote, Side, Trade
from app.errors import InvalidInput
from storage.snapshot_codec import Layout, encode
from storage.store import SqlStore

DAY = 86_400_000


def risk_snapshot(i: int) -> dict[str, Any]:
    """A portfolio-level snapshot like the Desk's: greeks per underlying, margin per currency."""
    return {
        "portfolio": {
            u: {"delta": 0.1 * i + k, "gamma": 1e-5 * i, "vega": 12.5 - i, "theta": -3.25, "delta_usd": 9800.0 * i}
            for k, u in enumerate(("BTC", "ETH"))
        },
        "margin": {"BTC": {"equity": 10.0 + i, "im": 1.5, "mm": 0.75, "distance_down": None}},
        "positions": 200,
        "model": "pm",
    }


# -- codec (pure) -------------------------------------------------------------------------------

leaf = st.one_of(
    st.floats(allow_nan=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=3),
)
tree = st.recursive(leaf, lambda inner: st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=4), max_leaves=20)
snapshots = st.dictionaries(st.text(min_size=1, max_size=4), tree, max_size=6)


@settings(max_examples=200, deadline=None)
@given(data=snapshots)
def test_codec_round_trips_any_json_like_snapshot(data: dict[str, Any]) -> None:
    enc = encode(data)
    fields = [[list(p), c] for p, c in enc.fields]
    assert Layout(1, fields).decode(enc.packed, enc.extra) == data


def test_codec_packs_numbers_without_key_names() -> None:
    enc = encode(risk_snapshot(3))
    assert len(enc.packed) == 8 * 14  # 2 x 5 greeks, equity, im, mm, positions: 8 bytes each, no key names
    assert enc.extra is not None and [["model"], "pm"] in enc.extra
    assert encode(risk_snapshot(4)).digest == enc.digest  # same layout, stored once


def test_codec_refuses_non_string_keys() -> None:
    with pytest.raises(InvalidInput):
        encode({1: 2.0})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput):
        encode([1.0])  # type: ignore[arg-type]


# -- through the store --------------------------------------------------------------------------


def test_snapshots_round_trip_latest_and_range(store: SqlStore) -> None:
    t0 = 1_767_225_600_000
    for i in range(100):
        store.record_snapshot("risk", t0 + i * 1000, risk_snapshot(i))
    store.record_snapshot("margin", t0, {"equity": 1.0})
    latest = store.latest_snapshot("risk")
    assert latest == {**risk_snapshot(99), "ts": t0 + 99_000}
    got = store.snapshots("risk", t0 + 10_000, t0 + 19_000)
    assert [g["ts"] for g in got] == [t0 + i * 1000 for i in range(10, 20)]
    assert got[0] == {**risk_snapshot(10), "ts": t0 + 10_000}
    assert store.latest_snapshot("nope") is None
    assert store.snapshot_kinds() == ["margin", "risk"]


def test_snapshot_series_columns_even_across_layouts(store: SqlStore) -> None:
    for i in range(10):
        data: dict[str, Any] = {"equity": float(i), "im": 0.5}
        if i >= 5:
            data["mm"] = 0.25  # layout changes half way
        store.record_snapshot("margin", 1_000 + i, data)
    s = store.snapshot_series("margin", 0, 10_000)
    assert s["ts"].tolist() == list(range(1_000, 1_010))
    assert s["equity"].tolist() == [float(i) for i in range(10)]
    assert np.isnan(s["mm"][:5]).all() and (s["mm"][5:] == 0.25).all()
    only = store.snapshot_series("margin", 1_005, 1_009, fields=["mm", "missing"])
    assert set(only) == {"ts", "mm", "missing"} and np.isnan(only["missing"]).all()
    one_layout = store.snapshot_series("margin", 1_005, 1_009)
    assert one_layout["mm"].tolist() == [0.25] * 5
    assert store.snapshot_series("margin", 50_000, 60_000)["ts"].size == 0


def test_snapshots_survive_reopen(store: SqlStore, reopen: Callable[..., SqlStore]) -> None:
    store.record_snapshot("risk", 5, risk_snapshot(1))
    store.close()  # close writes what is queued
    assert reopen().latest_snapshot("risk") == {**risk_snapshot(1), "ts": 5}


def test_bad_snapshots_are_refused_at_once(store: SqlStore) -> None:
    with pytest.raises(InvalidInput):
        store.record_snapshot("", 1, {})
    with pytest.raises(InvalidInput):
        store.record_snapshot("risk", -1, {})
    with pytest.raises(InvalidInput):
        store.record_snapshot("risk", 1.5, {})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.record_snapshot("risk", 1, {"x": 2**70})
    assert store.snapshot_kinds() == []


def test_market_data_recorded_and_replayed_in_time_order(store: SqlStore) -> None:
    events = [
        Trade(ts=2_000, instrument="BTC-PERPETUAL", price=98001.5, amount=120.0, side=Side.SELL, trade_id="x1", venue="deribit"),
        Quote(ts=1_000, instrument="BTC-PERPETUAL", bid=98000.0, ask=98000.5, bid_size=10.0, ask_size=20.0,
              mark_price=98000.25, index_price=97990.0, venue="deribit"),
        IndexPrice(ts=1_000, index="btc_usd", price=97990.0),
        IndexPrice(ts=1_500, index="btc_usd", price=97991.0, source="coinbase", stale=True),
        Quote(ts=1_500, instrument="BTC-27DEC24-60000-C", bid=None, ask=0.0125, mark_iv=0.55, venue="deribit"),
    ]
    assert store.record_market(events) == 5
    got = store.market_data(0, 10_000)
    assert got == sorted(events, key=lambda e: (e.ts, 0 if isinstance(e, IndexPrice) else 1 if isinstance(e, Quote) else 2))
    assert store.market_data(1_200, 1_900, kinds=("quote",)) == [events[4]]
    assert store.market_data(0, 10_000, instruments=["BTC-PERPETUAL"], kinds=("quote", "trade")) == [events[1], events[0]]
    assert store.market_data(0, 10_000, indexes=["btc_usd"], kinds=("index",)) == [events[2], events[3]]
    assert list(store.iter_market_data(0, 10_000, chunk_ms=700)) == got


def test_market_data_refuses_other_events(store: SqlStore) -> None:
    with pytest.raises(InvalidInput):
        store.record_market([object()])  # type: ignore[list-item]


def test_prune_deletes_only_old_snapshots_and_market_data(store: SqlStore) -> None:
    now = 100 * DAY
    for day in range(40):
        store.record_snapshot("risk", now - day * DAY, {"equity": float(day)})
        store.record_market(IndexPrice(ts=now - day * DAY, index="btc_usd", price=1.0 + day))
    store.record_fill(__import__("tests.storage.conftest", fromlist=["make_fill"]).make_fill(1, ts=0))
    deleted = store.prune(snapshot_retention_days=30, market_data_retention_days=7, now_ms=now)
    assert deleted["snapshot"] == 9 and deleted["md_index"] == 32 and deleted["md_quote"] == 0
    assert len(store.snapshots("risk", 0, now)) == 31
    assert len(store.market_data(0, now)) == 8
    assert store.fill_count() == 1  # fills are never pruned
    with pytest.raises(InvalidInput):
        store.prune(snapshot_retention_days=0)


def test_prune_with_vacuum(store: SqlStore) -> None:
    for i in range(50):
        store.record_snapshot("risk", i, risk_snapshot(i))
    # All are past retention; the newest of the kind stays, as what a reader of the store opens on.
    assert store.prune(snapshot_retention_days=1, now_ms=10 * DAY, vacuum=True)["snapshot"] == 49
    assert store.latest_snapshot("risk") == {**risk_snapshot(49), "ts": 49}


def test_prune_and_thinning_keep_the_newest_snapshot_of_each_kind(store: SqlStore) -> None:
    now = 100 * DAY
    store.record_snapshot("margin", now - 40 * DAY, {"equity": 1.5})  # the only one of its kind, past retention
    for k in range(5):  # one thinning bucket, two days old: thinning keeps the bucket's first, and the newest
        store.record_snapshot("risk", now - 2 * DAY + k * 1000, {"delta": float(k)})
    out = store.prune(now_ms=now, thin_after_days=1, thin_interval_s=60)
    assert out["snapshot"] == 0 and out["snapshot_thinned"] == 3
    assert store.latest_snapshot("margin") == {"equity": 1.5, "ts": now - 40 * DAY}
    assert store.latest_snapshot("risk") == {"delta": 4.0, "ts": now - 2 * DAY + 4000}
    assert [r["delta"] for r in store.snapshots("risk", 0, now)] == [0.0, 4.0]


def test_nan_and_inf_in_snapshots(store: SqlStore) -> None:
    store.record_snapshot("risk", 1, {"a": float("nan"), "b": float("inf")})
    got = store.latest_snapshot("risk")
    assert got is not None and math.isnan(got["a"]) and got["b"] == float("inf")


def test_prune_thins_old_snapshots_to_one_per_interval(store: SqlStore) -> None:
    now = 10 * DAY
    start = now - 2 * DAY
    for s in range(0, 2 * DAY // 1000, 10):  # every 10 s for two days
        store.record_snapshot("risk", start + s * 1000, {"equity": float(s)})
    store.record_snapshot("margin", start + 5_000, {"im": 1.0})
    before = len(store.snapshots("risk", 0, now))
    out = store.prune(snapshot_retention_days=30, now_ms=now, thin_after_days=1, thin_interval_s=60)
    after = store.snapshots("risk", 0, now)
    old = [r for r in after if r["ts"] < now - DAY]
    recent = [r for r in after if r["ts"] >= now - DAY]
    assert len(recent) == DAY // 10_000  # the last day is untouched
    assert len(old) == DAY // 60_000 and all(r["ts"] % 60_000 == 0 for r in old)  # first of each minute kept
    assert out["snapshot_thinned"] == before - len(after)
    assert len(store.snapshots("margin", 0, now)) == 1  # thinned per kind
    with pytest.raises(InvalidInput):
        store.prune(thin_after_days=0)
