"""Fills (exactly once, exact money, exact timestamps) and order state history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain import Order, OrderStatus
from app.errors import InvalidInput
from storage.store import SqlStore
from tests.storage.conftest import make_fill, make_request


def test_record_fill_round_trips_and_replay_is_a_noop(store: SqlStore) -> None:
    fill = make_fill(1)
    assert store.record_fill(fill, run_id="r1") is True
    assert store.record_fill(fill, run_id="r1") is False
    assert store.fills() == [fill]
    assert store.fills(run_id="r1") == [fill]
    assert store.fills(run_id="other") == []


def test_same_trade_id_on_another_venue_is_a_different_fill(store: SqlStore) -> None:
    assert store.record_fill(make_fill(1, venue="sim"))
    assert store.record_fill(make_fill(1, venue="deribit"))
    assert store.fill_count() == 2
    assert store.fill_count(venue="deribit") == 1


def test_record_fills_batch_counts_only_new_ones(store: SqlStore) -> None:
    fills = [make_fill(i) for i in range(50)]
    assert store.record_fills(fills[:30]) == 30
    assert store.record_fills(fills) == 20
    assert store.record_fills(fills + fills[:5]) == 0
    assert store.fills() == fills
    assert store.record_fills([make_fill(100), make_fill(100)]) == 1  # a duplicate inside one batch, too
    assert store.fill_count() == 51


def test_fill_queries_filter_by_time_and_instrument(store: SqlStore) -> None:
    fills = [make_fill(i) for i in range(10)]
    store.record_fills(fills)
    t0 = fills[0].ts
    assert store.fills(since_ms=t0 + 3, until_ms=t0 + 5) == fills[3:6]
    assert store.fills(instrument="ETH-PERPETUAL") == []
    assert store.fills(limit=2) == fills[:2]


def test_reopen_sees_committed_fills(store: SqlStore, reopen: Callable[..., SqlStore]) -> None:
    store.record_fills([make_fill(i) for i in range(5)])
    store.close()
    assert len(reopen().fills()) == 5


def test_bad_fill_is_refused_and_changes_nothing(store: SqlStore) -> None:
    with pytest.raises(InvalidInput):
        store.record_fill(replace(make_fill(1), trade_id=""))
    with pytest.raises(InvalidInput):
        store.record_fill(replace(make_fill(2), price=Decimal("NaN")))
    with pytest.raises(InvalidInput):
        store.record_fills([make_fill(3), replace(make_fill(4), amount=Decimal("1e30"))])
    with pytest.raises(InvalidInput):
        store.record_fill("not a fill")  # type: ignore[arg-type]
    assert store.fill_count() == 0


money = st.decimals(min_value=Decimal("-1e17"), max_value=Decimal("1e17"), places=10, allow_nan=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(price=money, amount=money, fee=money, ts=st.integers(min_value=0, max_value=4_102_444_800_000))
def test_money_and_timestamps_are_exact(store: SqlStore, price: Decimal, amount: Decimal, fee: Decimal, ts: int) -> None:
    fill = replace(make_fill(0), trade_id=f"h{price}{amount}{fee}{ts}"[:120], price=price, amount=amount, fee=fee, ts=ts)
    store.record_fill(fill)
    got = store.fills(since_ms=ts, until_ms=ts)
    match = [f for f in got if f.trade_id == fill.trade_id]
    assert len(match) == 1
    assert (match[0].price, match[0].amount, match[0].fee, match[0].ts) == (price, amount, fee, ts)


def test_money_beyond_ten_places_rounds_half_even_on_every_backend(store: SqlStore) -> None:
    store.record_fill(replace(make_fill(1), fee=Decimal("0.000000000125"), price=Decimal("1.00000000005")))
    got = store.fills()[0]
    assert got.fee == Decimal("0.0000000001")
    assert got.price == Decimal("1.0000000000")


def _order(oid: str, status: OrderStatus, filled: str = "0", ts: int = 1_000) -> Order:
    return Order(oid, make_request(f"c-{oid}"), status, Decimal(filled), Decimal("0.0125") if filled != "0" else None, ts)


def test_every_order_state_is_kept_and_latest_wins(store: SqlStore) -> None:
    store.record_order(_order("o1", OrderStatus.PENDING), run_id="r1")
    store.record_order(_order("o1", OrderStatus.OPEN, ts=1_001), run_id="r1")
    store.record_order(_order("o1", OrderStatus.FILLED, "0.5", ts=1_002), run_id="r1")
    store.record_order(_order("o2", OrderStatus.OPEN, ts=1_003), run_id="r2")
    history = store.order_history("o1")
    assert [o.status for o in history] == [OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.FILLED]
    assert history[-1].filled == Decimal("0.5") and history[-1].average_price == Decimal("0.0125")
    latest = store.orders()
    assert [(o.order_id, o.status) for o in latest] == [("o1", OrderStatus.FILLED), ("o2", OrderStatus.OPEN)]
    assert [o.order_id for o in store.orders(open_only=True)] == ["o2"]
    assert [o.order_id for o in store.orders(run_id="r1")] == ["o1"]
    assert history[0].request == make_request("c-o1")


def test_orders_are_per_venue(store: SqlStore) -> None:
    store.record_order(_order("o1", OrderStatus.OPEN), venue="sim")
    store.record_order(_order("o1", OrderStatus.CANCELLED), venue="deribit")
    assert {o.status for o in store.orders(venue="sim")} == {OrderStatus.OPEN}
    assert len(store.orders()) == 2


def test_too_long_identifiers_are_refused_on_every_backend(store: SqlStore) -> None:
    with pytest.raises(InvalidInput) as exc:
        store.record_fill(replace(make_fill(1), instrument="X" * 65))
    assert exc.value.code == "input.too_long"
    with pytest.raises(InvalidInput):
        store.record_order(replace(_order("o1", OrderStatus.OPEN), order_id="o" * 129))
    assert store.fill_count() == 0 and store.orders() == []
