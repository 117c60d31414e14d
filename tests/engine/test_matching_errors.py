"""Bad input is refused with a typed error and a stable code, and changes nothing (no seq, no state)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal as D
from typing import Any

import pytest

from app.clock import SimClock
from app.domain import Instrument, OrderRequest, Side
from app.engine.events import F_FOK, F_IOC, F_MARKET, F_POST_ONLY
from app.engine.matching import MatchingEngine
from app.errors import DeskError, InvalidInput, NotFound, UnknownInstrument

PERP = "BTC-PERPETUAL"
OPT = "BTC-27DEC24-60000-C"


@pytest.fixture
def eng() -> MatchingEngine:
    e = MatchingEngine(SimClock())
    e.add_instrument(Instrument.parse(PERP))
    e.add_instrument(Instrument.parse(OPT))
    e.set_mark(PERP, D("60000"))
    e.place("mm", PERP, -1, 120_000, 5)
    e.place("mm", PERP, 1, 119_990, 5)
    return e


def state(e: MatchingEngine) -> str:
    return json.dumps(e.snapshot_state(), sort_keys=True)


CASES: list[tuple[str, type[DeskError], str, Callable[[MatchingEngine], Any]]] = [
    ("unknown instrument", UnknownInstrument, "instrument.unknown", lambda e: e.place("a", "ETH-PERPETUAL", 1, 10, 1)),
    (
        "unknown instrument (request)",
        UnknownInstrument,
        "instrument.unknown",
        lambda e: e.submit(OrderRequest("SOL-PERPETUAL", Side.BUY, D("1"), D("100"))),
    ),
    ("zero size", InvalidInput, "order.rejected.amount", lambda e: e.place("a", PERP, 1, 119_000, 0)),
    ("negative size", InvalidInput, "order.rejected.amount", lambda e: e.place("a", PERP, 1, 119_000, -3)),
    ("float size", InvalidInput, "order.rejected.amount", lambda e: e.place("a", PERP, 1, 119_000, 2.0)),
    ("NaN price", InvalidInput, "order.rejected.tick", lambda e: e.place("a", PERP, 1, float("nan"), 1)),
    ("zero price", InvalidInput, "order.rejected.tick", lambda e: e.place("a", PERP, 1, 0, 1)),
    ("off-tick option price", InvalidInput, "order.rejected.tick", lambda e: e.place("a", OPT, 1, 201, 1)),
    (
        "off-tick request price",
        InvalidInput,
        "order.rejected.tick",
        lambda e: e.submit(OrderRequest(PERP, Side.BUY, D("10"), D("60000.3"))),
    ),
    (
        "amount off the lot",
        InvalidInput,
        "order.rejected.lot",
        lambda e: e.submit(OrderRequest(PERP, Side.BUY, D("15"), D("60000"))),
    ),
    ("bad side", InvalidInput, "input.side", lambda e: e.place("a", PERP, 2, 119_000, 1)),
    ("bool side", InvalidInput, "input.side", lambda e: e.place("a", PERP, True, 119_000, 1)),
    ("float side", InvalidInput, "input.side", lambda e: e.place("a", PERP, -1.0, 119_000, 1)),
    ("text side on a market order", InvalidInput, "input.side", lambda e: e.place("a", PERP, "buy", 0, 1, F_MARKET)),
    ("unknown flags", InvalidInput, "input.flags", lambda e: e.place("a", PERP, 1, 119_000, 1, 1 << 9)),
    ("IOC and FOK", InvalidInput, "input.flags", lambda e: e.place("a", PERP, 1, 119_000, 1, F_IOC | F_FOK)),
    (
        "post-only market",
        InvalidInput,
        "order.rejected.post_only",
        lambda e: e.place("a", PERP, 1, 0, 1, F_MARKET | F_POST_ONLY),
    ),
    ("empty account", InvalidInput, "input.account", lambda e: e.place("", PERP, 1, 119_000, 1)),
    ("unknown order id", NotFound, "order.unknown", lambda e: e.cancel("mm", 999)),
    ("garbage order id", NotFound, "order.unknown", lambda e: e.cancel("mm", "abc")),
    ("someone else's order", NotFound, "order.unknown", lambda e: e.cancel("thief", 1)),
    ("amend unknown", NotFound, "order.unknown", lambda e: e.amend("mm", 999, amount=D("10"))),
    ("amend to nothing", InvalidInput, "input.amend", lambda e: e.amend_lots("mm", 1)),
    ("amend off-tick", InvalidInput, "order.rejected.tick", lambda e: e.amend_lots("mm", 1, price_ticks=-5)),
    ("mark NaN", InvalidInput, "input.mark", lambda e: e.set_mark(PERP, D("NaN"))),
    ("mark unknown", UnknownInstrument, "instrument.unknown", lambda e: e.set_mark("X-PERPETUAL", D("1"))),
    ("duplicate listing", InvalidInput, "instrument.duplicate", lambda e: e.add_instrument(Instrument.parse(PERP))),
    (
        "cancel-all unknown instrument",
        UnknownInstrument,
        "instrument.unknown",
        lambda e: e.cancel_all("mm", "X-PERPETUAL"),
    ),
]


@pytest.mark.parametrize(("label", "exc", "code", "call"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_typed_error_and_changes_nothing(
    eng: MatchingEngine, label: str, exc: type[DeskError], code: str, call: Callable[[MatchingEngine], Any]
) -> None:
    before, seq = state(eng), eng.seq
    with pytest.raises(exc) as info:
        call(eng)
    assert info.value.code == code, label
    assert eng.seq == seq and state(eng) == before


def test_cancel_of_a_filled_order(eng: MatchingEngine) -> None:
    eng.place("t", PERP, 1, 120_000, 5)  # fills order 1 completely
    before, seq = state(eng), eng.seq
    with pytest.raises(NotFound) as info:
        eng.cancel("mm", 1)
    assert "not open" in info.value.message
    assert eng.seq == seq and state(eng) == before


def test_nan_amount_never_reaches_the_engine() -> None:
    with pytest.raises(InvalidInput):
        OrderRequest(PERP, Side.BUY, D("NaN"), D("60000"))
