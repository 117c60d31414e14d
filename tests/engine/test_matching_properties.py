"""Property tests over random command streams: the book's invariants hold after every command.

Checked after every command: the book is not crossed and its level totals match its orders; event
``seq`` numbers run without gaps; every lot of every order is accounted for (resting + filled +
cancelled/expired = accepted, amends included); positions net to zero; FOK orders fill completely or
not at all; IOC and market orders never rest; post-only orders never take; reduce-only orders never
increase or flip a position, and resting reduce-only orders never exceed it. Malformed commands raise
a typed error and change nothing.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.clock import SimClock
from app.domain import Instrument
from app.engine.events import (
    F_FOK,
    F_IOC,
    F_MARKET,
    F_POST_ONLY,
    F_REDUCE_ONLY,
    F_REPRICE,
    Accepted,
    Amended,
    Cancelled,
    Expired,
    Filled,
    Rejected,
)
from app.engine.matching import STP, MatchingEngine
from app.errors import DeskError

NAMES = ("BTC_USDC-PERPETUAL", "BTC-27DEC24-60000-C")
ACCOUNTS = ("a", "b", "c")
FLAG_CHOICES = (
    0,
    0,
    0,
    F_IOC,
    F_FOK,
    F_MARKET,
    F_MARKET | F_FOK,
    F_POST_ONLY,
    F_POST_ONLY | F_REPRICE,
    F_REDUCE_ONLY,
    F_REDUCE_ONLY | F_IOC,
)

place_cmd = st.tuples(
    st.just("place"),
    st.sampled_from(ACCOUNTS),
    st.integers(0, 1),  # instrument
    st.sampled_from((1, -1)),
    st.integers(-6, 6),  # price offset from the centre, in grid steps
    st.integers(1, 12),
    st.sampled_from(FLAG_CHOICES),
)
cancel_cmd = st.tuples(st.just("cancel"), st.sampled_from(ACCOUNTS), st.integers(0, 200))
amend_cmd = st.tuples(
    st.just("amend"),
    st.sampled_from(ACCOUNTS),
    st.integers(0, 200),
    st.one_of(st.none(), st.integers(1, 15)),
    st.one_of(st.none(), st.integers(-6, 6)),
)
stp_cmd = st.tuples(st.just("stp"), st.sampled_from(ACCOUNTS), st.sampled_from(list(STP)))
mass_cmd = st.tuples(st.just("cancel_all"), st.sampled_from(ACCOUNTS), st.integers(0, 2))
bad_cmd = st.tuples(
    st.just("bad"),
    st.sampled_from(("lots0", "lots-1", "float", "offtick", "side", "unknown", "cancel_unknown", "flags")),
)
command = st.one_of(place_cmd, place_cmd, place_cmd, cancel_cmd, amend_cmd, stp_cmd, mass_cmd, bad_cmd)

CENTRE = {NAMES[0]: 1000, NAMES[1]: 200}  # option: 0.0200 BTC, on the 5-tick grid above 0.005
STEP = {NAMES[0]: 1, NAMES[1]: 5}


def new_engine() -> MatchingEngine:
    e = MatchingEngine(SimClock(1_700_000_000_000))
    for name in NAMES:
        e.add_instrument(Instrument.parse(name), band=None)
    return e


class Tracker:
    """Follows every order's remaining lots through the event stream."""

    def __init__(self, engine: MatchingEngine) -> None:
        self.engine = engine
        self.remaining: dict[int, int] = {}
        self.flags: dict[int, int] = {}
        self.account: dict[int, str] = {}
        self.instrument: dict[int, str] = {}
        self.ids: list[int] = []
        self.seq = 0

    def apply(self, events: list[Any]) -> None:
        fills_by_order: dict[int, int] = {}
        for ev in events:
            assert ev.seq == self.seq + 1, "seq must run without gaps"
            self.seq = ev.seq
            if isinstance(ev, Accepted):
                self.remaining[ev.order_id] = ev.lots
                self.flags[ev.order_id] = ev.flags
                self.account[ev.order_id] = ev.account
                self.instrument[ev.order_id] = ev.inst.name
                self.ids.append(ev.order_id)
            elif isinstance(ev, Filled):
                assert ev.lots > 0
                for oid, left in ((ev.maker_order_id, ev.maker_remaining), (ev.taker_order_id, ev.taker_remaining)):
                    self.remaining[oid] -= ev.lots
                    assert self.remaining[oid] == left >= 0
                    fills_by_order[oid] = fills_by_order.get(oid, 0) + ev.lots
                assert not self.flags[ev.taker_order_id] & F_POST_ONLY, "post-only orders never take"
                assert ev.maker_account != ev.taker_account or self.engine.stp(ev.taker_account) is STP.NONE
            elif isinstance(ev, Cancelled):
                self.remaining[ev.order_id] -= ev.lots
                assert self.remaining[ev.order_id] == ev.remaining >= 0
            elif isinstance(ev, Expired):
                self.remaining[ev.order_id] -= ev.lots
                assert self.remaining[ev.order_id] == 0
            elif isinstance(ev, Amended):
                self.remaining[ev.order_id] = ev.lots
        for ev in events:
            if isinstance(ev, Accepted):
                got = fills_by_order.get(ev.order_id, 0)
                if ev.flags & F_FOK:
                    assert got in (0, ev.lots), "FOK fills completely or not at all"
                if ev.flags & (F_IOC | F_FOK | F_MARKET):
                    assert self.remaining[ev.order_id] == 0, "IOC/FOK/market orders never rest"

    def check_book(self) -> None:
        resting: dict[int, int] = {}
        for name in NAMES:
            book = self.engine.book(name)
            book.check()
            for o in book.iter_orders():
                resting[o[0]] = o[4]
            assert sum(self.engine.market(name).pos.values()) == 0, "positions net to zero"
        for oid, left in self.remaining.items():
            assert resting.get(oid, 0) == left, f"order {oid}: {left} lots unaccounted"
        assert len(resting) == self.engine.order_count()
        for name in NAMES:
            m = self.engine.market(name)
            for acct, orders in m.ro.items():
                pos = m.pos.get(acct, 0)
                assert pos != 0
                assert all(o[2] == (-1 if pos > 0 else 1) for o in orders.values())
                assert sum(o[4] for o in orders.values()) <= abs(pos)


def run_command(e: MatchingEngine, tr: Tracker, cmd: tuple[Any, ...]) -> None:
    kind = cmd[0]
    if kind == "place":
        _, acct, i, side, off, lots, flags = cmd
        name = NAMES[i]
        price = CENTRE[name] + off * STEP[name]
        m = e.market(name)
        before = m.pos.get(acct, 0)
        out = e.place(acct, name, side, price, lots, flags)
        tr.apply(out)
        if flags & F_REDUCE_ONLY and isinstance(out[0], Accepted):
            after = m.pos.get(acct, 0)
            assert abs(after) <= abs(before) and after * before >= 0, "reduce-only never grows or flips"
        if isinstance(out[0], Rejected):
            assert len(out) == 1
        return
    if kind in ("cancel", "amend"):
        acct, pick = cmd[1], cmd[2]
        if not tr.ids:
            return
        oid = tr.ids[pick % len(tr.ids)]
        state = e.snapshot_state()
        try:
            if kind == "cancel":
                out = e.cancel(acct, oid)
            else:
                lots, off = cmd[3], cmd[4]
                name = tr.instrument[oid]
                price = None if off is None else CENTRE[name] + off * STEP[name]
                if lots is None and price is None:
                    lots = 5
                out = e.amend_lots(acct, oid, lots, price)
        except DeskError as exc:
            assert exc.code in ("order.unknown", "order.rejected.amount")
            assert e.snapshot_state() == state, "a refused command changes nothing"
            return
        tr.apply(out)
        return
    if kind == "stp":
        e.set_stp(cmd[1], cmd[2])
        return
    if kind == "cancel_all":
        name = None if cmd[2] == 2 else NAMES[cmd[2]]
        tr.apply(e.cancel_all(cmd[1], name))
        return
    # Malformed input: a typed error and no change at all.
    state = e.snapshot_state()
    seq = e.seq
    what = cmd[1]
    try:
        if what == "lots0":
            e.place("a", NAMES[0], 1, 1000, 0)
        elif what == "lots-1":
            e.place("a", NAMES[0], 1, 1000, -1)
        elif what == "float":
            e.place("a", NAMES[0], 1, 1000.5, 1)  # type: ignore[arg-type]
        elif what == "offtick":
            e.place("a", NAMES[1], 1, 201, 1)  # the option grid is 5 ticks above 0.005
        elif what == "side":
            e.place("a", NAMES[0], 0, 1000, 1)
        elif what == "unknown":
            e.place("a", "ETH-PERPETUAL", 1, 1000, 1)
        elif what == "cancel_unknown":
            e.cancel("a", 10**9)
        else:
            e.place("a", NAMES[0], 1, 1000, 1, 1 << 10)
        raise AssertionError(f"{what} was accepted")
    except DeskError as exc:
        assert exc.code != "desk.error"
    assert e.seq == seq and e.snapshot_state() == state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(command, min_size=30, max_size=150))
def test_random_command_streams_keep_every_invariant(cmds: list[tuple[Any, ...]]) -> None:
    e = new_engine()
    tr = Tracker(e)
    for cmd in cmds:
        run_command(e, tr, cmd)
        tr.check_book()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(command, min_size=30, max_size=100), st.sampled_from(list(STP)))
def test_engine_default_stp_streams(cmds: list[tuple[Any, ...]], mode: STP) -> None:
    e = MatchingEngine(SimClock(), default_stp=mode)
    for name in NAMES:
        e.add_instrument(Instrument.parse(name), band=None)
    tr = Tracker(e)
    for cmd in cmds:
        run_command(e, tr, cmd)
        tr.check_book()


def random_command(rng: random.Random) -> tuple[Any, ...]:
    """One command drawn like the hypothesis strategy, from a seeded generator (long streams)."""
    r = rng.random()
    if r < 0.55:
        return (
            "place",
            rng.choice(ACCOUNTS),
            rng.randrange(2),
            rng.choice((1, -1)),
            rng.randint(-6, 6),
            rng.randint(1, 12),
            rng.choice(FLAG_CHOICES),
        )
    if r < 0.75:
        return ("cancel", rng.choice(ACCOUNTS), rng.randrange(1000))
    if r < 0.88:
        lots = None if rng.random() < 0.3 else rng.randint(1, 15)
        off = None if rng.random() < 0.4 else rng.randint(-6, 6)
        return ("amend", rng.choice(ACCOUNTS), rng.randrange(1000), lots, off)
    if r < 0.92:
        return ("stp", rng.choice(ACCOUNTS), rng.choice(list(STP)))
    if r < 0.96:
        return ("cancel_all", rng.choice(ACCOUNTS), rng.randrange(3))
    return ("bad", rng.choice(("lots0", "lots-1", "float", "offtick", "side", "unknown", "cancel_unknown", "flags")))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_long_seeded_streams(seed: int) -> None:
    rng = random.Random(seed)
    e = new_engine()
    tr = Tracker(e)
    trades = 0
    for i in range(3000):
        cmd = random_command(rng)
        before = tr.seq
        run_command(e, tr, cmd)
        trades += tr.seq - before
        if i % 10 == 0:
            tr.check_book()
    tr.check_book()
    assert trades > 1000
