"""The engine's typed events: named fields over a tuple, immutable, and guarded against slow subclasses."""

from __future__ import annotations

import pickle

import pytest

from app.domain import Instrument
from app.engine.events import Cancelled, Event, encode, to_record

INST = Instrument.parse("BTC-PERPETUAL")


def test_an_event_reads_like_a_named_tuple_and_cannot_be_changed() -> None:
    ev = Cancelled((7, 1_700_000_000_000, INST, 42, "alice", 5, 0, "user"))
    assert ev.seq == 7 and ev.order_id == 42 and ev.account == "alice" and ev.reason == "user"
    assert ev._asdict()["lots"] == 5
    assert ev._replace(reason="market") == Cancelled((7, 1_700_000_000_000, INST, 42, "alice", 5, 0, "market"))
    match ev:
        case Cancelled(seq=seq, order_id=oid):
            assert (seq, oid) == (7, 42)
    # No instance __dict__: a consumer cannot hang state on an event or change a field.
    assert not hasattr(ev, "__dict__")
    with pytest.raises(AttributeError):
        ev.note = "x"  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        ev.seq = 8  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(ev)) == ev
    assert to_record(ev)["instrument"] == "BTC-PERPETUAL"
    assert encode(ev) == b'["Cancelled",7,1700000000000,"BTC-PERPETUAL",42,"alice",5,0,"user"]'


def test_make_checks_the_number_of_values() -> None:
    with pytest.raises(TypeError, match="takes 8 values, got 2"):
        Cancelled._make((1, 2))


def test_a_subclass_without_slots_or_with_its_own_new_is_refused() -> None:
    with pytest.raises(TypeError, match="__slots__"):

        class Loose(Event):
            seq: int

    with pytest.raises(TypeError, match="__new__"):

        class Slow(Event):
            __slots__ = ()
            seq: int

            def __new__(cls, *values: object) -> Slow:
                return super().__new__(cls, values)
