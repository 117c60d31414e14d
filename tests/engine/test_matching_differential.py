"""Differential test: the engine against a deliberately simple reference matcher written here.

The reference keeps resting orders in one list and, for every incoming order, scans it for the best
price and then the earliest arrival: obviously price-time priority, obviously slow. Both run the same
random stream (limit GTC/IOC/FOK, market, post-only, cancel, amend); every command must produce the
same trades (maker, taker, price, lots) and the same resting book. The default tier runs tens of
thousands of operations; ``-m slow`` runs two million.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from app.clock import SimClock
from app.domain import Instrument
from app.engine.events import F_FOK, F_IOC, F_MARKET, F_POST_ONLY, Accepted, Filled, Rejected
from app.engine.matching import MatchingEngine
from app.errors import NotFound

NAME = "BTC_USDC-PERPETUAL"


class SimpleMatcher:
    """Resting orders in a flat list; matching scans it. Fills: (maker, taker, price, lots)."""

    def __init__(self) -> None:
        self.orders: list[dict[str, int]] = []  # id, side, price, rem, filled, time, flags
        self.clock = 0
        self.next_id = 1

    def _best(self, side: int, limit: int | None) -> dict[str, int] | None:
        best = None
        for o in self.orders:
            if o["side"] == side:
                continue
            if limit is not None and (o["price"] > limit if side > 0 else o["price"] < limit):
                continue
            if best is None:
                best = o
                continue
            better = o["price"] < best["price"] if side > 0 else o["price"] > best["price"]
            if better or (o["price"] == best["price"] and o["time"] < best["time"]):
                best = o
        return best

    def _fill(self, oid: int, side: int, limit: int | None, qty: int) -> tuple[list[tuple[int, ...]], int]:
        fills = []
        while qty:
            o = self._best(side, limit)
            if o is None:
                break
            take = min(o["rem"], qty)
            fills.append((o["id"], oid, o["price"], take))
            o["rem"] -= take
            o["filled"] += take
            qty -= take
            if not o["rem"]:
                self.orders.remove(o)
        return fills, qty

    def place(self, side: int, price: int, qty: int, flags: int) -> tuple[str, list[tuple[int, ...]]]:
        market = bool(flags & F_MARKET)
        limit = None if market else price
        if flags & F_POST_ONLY and self._best(side, limit) is not None:
            return "rejected", []
        oid = self.next_id
        self.next_id += 1
        if flags & F_FOK:
            available = sum(
                o["rem"]
                for o in self.orders
                if o["side"] != side and (limit is None or (o["price"] <= limit if side > 0 else o["price"] >= limit))
            )
            if available < qty:
                return "fok", []
        fills, rem = self._fill(oid, side, limit, qty)
        if rem and not (flags & (F_IOC | F_FOK | F_MARKET)):
            self.clock += 1
            self.orders.append(
                {
                    "id": oid,
                    "side": side,
                    "price": price,
                    "rem": rem,
                    "filled": qty - rem,
                    "time": self.clock,
                    "flags": flags,
                }
            )
        return "ok", fills

    def find(self, oid: int) -> dict[str, int] | None:
        return next((o for o in self.orders if o["id"] == oid), None)

    def cancel(self, oid: int) -> bool:
        o = self.find(oid)
        if o is None:
            return False
        self.orders.remove(o)
        return True

    def amend(self, oid: int, total: int | None, price: int | None) -> tuple[str, list[tuple[int, ...]]]:
        o = self.find(oid)
        if o is None:
            return "unknown", []
        new_price = o["price"] if price is None else price
        new_rem = o["rem"] if total is None else total - o["filled"]
        if new_rem <= 0:
            return "rejected", []
        if o["flags"] & F_POST_ONLY and self._best(o["side"], new_price) is not None:
            return "rejected", []
        if new_price == o["price"] and new_rem <= o["rem"]:
            o["rem"] = new_rem
            return "ok", []
        self.orders.remove(o)
        fills, rem = self._fill(oid, o["side"], new_price, new_rem)
        if rem:
            self.clock += 1
            self.orders.append(
                {
                    "id": oid,
                    "side": o["side"],
                    "price": new_price,
                    "rem": rem,
                    "filled": o["filled"] + new_rem - rem,
                    "time": self.clock,
                    "flags": o["flags"],
                }
            )
        return "ok", fills

    def book(self) -> list[tuple[int, int, int, int]]:
        """(side, price, id, rem) in priority order per side."""
        bids = sorted((o for o in self.orders if o["side"] > 0), key=lambda o: (-o["price"], o["time"]))
        asks = sorted((o for o in self.orders if o["side"] < 0), key=lambda o: (o["price"], o["time"]))
        return [(o["side"], o["price"], o["id"], o["rem"]) for o in bids + asks]


def engine_book(e: MatchingEngine) -> list[tuple[int, int, int, int]]:
    return [(o[2], o[3], o[0], o[4]) for o in e.book(NAME).iter_orders()]


def engine_fills(out: list[Any]) -> list[tuple[int, ...]]:
    return [(ev.maker_order_id, ev.taker_order_id, ev.price_ticks, ev.lots) for ev in out if isinstance(ev, Filled)]


def run_differential(seed: int, n_ops: int, check_every: int) -> int:
    rng = random.Random(seed)
    e = MatchingEngine(SimClock())
    e.add_instrument(Instrument.parse(NAME), band=None)
    ref = SimpleMatcher()
    live: list[int] = []
    trades = 0
    mid = 1000
    for i in range(n_ops):
        r = rng.random()
        acct = rng.choice("abcdefgh")  # the engine's default STP is none: accounts do not matter
        if r < 0.55 or not live:
            side = rng.choice((1, -1))
            price = mid + rng.randint(-8, 8)
            qty = rng.randint(1, 30)
            flags = rng.choice((0, 0, 0, 0, F_IOC, F_FOK, F_MARKET, F_POST_ONLY))
            out = e.place(acct, NAME, side, price, qty, flags)
            status, fills = ref.place(side, price, qty, flags)
            if status == "rejected":
                assert isinstance(out[0], Rejected), (i, out)
                ref_id = None
            else:
                assert isinstance(out[0], Accepted), (i, out)
                assert out[0].order_id == ref.next_id - 1
                ref_id = out[0].order_id
            got = engine_fills(out)
            assert got == fills, (i, got, fills)
            trades += len(got)
            if ref_id is not None and ref.find(ref_id) is not None:
                live.append(ref_id)
            mid += rng.choice((-1, 0, 1)) if rng.random() < 0.05 else 0
        elif r < 0.85:
            oid = rng.choice(live)
            found = ref.cancel(oid)
            try:
                e.cancel(e_owner(e, oid) or "nobody", oid)
                assert found, (i, oid)
            except NotFound:
                assert not found, (i, oid)
            live.remove(oid)
        else:
            oid = rng.choice(live)
            total = None if rng.random() < 0.3 else rng.randint(1, 40)
            price = None if rng.random() < 0.4 else mid + rng.randint(-8, 8)
            if total is None and price is None:
                total = rng.randint(1, 40)
            status, fills = ref.amend(oid, total, price)
            owner = e_owner(e, oid)
            if owner is None:
                assert status == "unknown"
                live.remove(oid)
                continue
            out = e.amend_lots(owner, oid, total, price)
            if status == "rejected":
                assert isinstance(out[0], Rejected), (i, out)
            got = engine_fills(out)
            assert got == fills, (i, got, fills)
            trades += len(got)
            if ref.find(oid) is None:
                live.remove(oid)
        if i % check_every == 0:
            live = [x for x in live if ref.find(x) is not None]
            assert engine_book(e) == ref.book(), i
    assert engine_book(e) == ref.book()
    return trades


def e_owner(e: MatchingEngine, oid: int) -> str | None:
    o = e.order(oid)
    return None if o is None else o.request.account


@pytest.mark.parametrize("seed", [11, 12])
def test_engine_matches_the_reference_matcher(seed: int) -> None:
    assert run_differential(seed, 15_000, check_every=50) > 1500


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20))
def test_engine_matches_the_reference_matcher_millions(seed: int) -> None:
    # 20 x 100,000 = two million random operations.
    assert run_differential(1000 + seed, 100_000, check_every=1000) > 10_000
