"""Journal: replay reproduces the event stream byte for byte; snapshots; torn and corrupt records."""

from __future__ import annotations

import hashlib
import json
import random
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from app.clock import SimClock
from app.domain import Instrument, InstrumentState
from app.engine import journal as J
from app.engine.events import (
    F_FOK,
    F_IOC,
    F_MARKET,
    F_POST_ONLY,
    F_REDUCE_ONLY,
    F_REPRICE,
    Accepted,
    RejectReason,
    encode,
)
from app.engine.journal import Journal, JournalCorrupt, scan_segment
from app.engine.matching import STP, MatchingEngine
from app.errors import DeskError

PERP = "BTC-PERPETUAL"
OPT = "BTC-27DEC24-60000-C"
LIN = "BTC_USDC-PERPETUAL"
FLAGS = (0, 0, 0, F_IOC, F_FOK, F_MARKET, F_POST_ONLY, F_POST_ONLY | F_REPRICE, F_REDUCE_ONLY)


def canonical(engine: MatchingEngine) -> str:
    return json.dumps(engine.snapshot_state(), sort_keys=True)


class Driver:
    """A seeded random session against an engine: orders, cancels, amends, marks, settings, states."""

    def __init__(self, engine: MatchingEngine, clock: SimClock, seed: int) -> None:
        self.e = engine
        self.clock = clock
        self.rng = random.Random(seed)
        self.ids: list[int] = []
        self.calls = 0

    def setup(self) -> None:
        e = self.e
        e.add_instrument(Instrument.parse(PERP))
        e.add_instrument(Instrument.parse(OPT))
        e.add_instrument(Instrument.parse(LIN), band=None, maker_fee=D("-0.0001"))
        e.set_mark(PERP, D("60000"))
        e.set_mark(OPT, D("0.02"))
        e.set_stp("c", STP.DECREMENT)

    def step(self) -> list[Any]:
        rng, e = self.rng, self.e
        self.clock.advance(rng.randint(0, 50))
        r = rng.random()
        acct = rng.choice("abcd")
        try:
            if r < 0.6 or not self.ids:
                name = rng.choice((PERP, OPT, LIN))
                centre, step = {PERP: (120_000, 1), OPT: (200, 5), LIN: (1000, 1)}[name]
                side = rng.choice((1, -1))
                out = e.place(
                    acct,
                    name,
                    side,
                    centre + rng.randint(-5, 5) * step,
                    rng.randint(1, 9),
                    rng.choice(FLAGS),
                    rng.choice((None, None, f"cid-{self.calls}")),
                )
                self.ids += [ev.order_id for ev in out if isinstance(ev, Accepted)]
                return out
            if r < 0.8:
                return e.cancel(acct, rng.choice(self.ids))
            if r < 0.92:
                return e.amend_lots(acct, rng.choice(self.ids), rng.randint(1, 12), None)
            if r < 0.95:
                e.set_mark(PERP, D(60000 + rng.randint(-300, 300)))
                return []
            if r < 0.97:
                return e.cancel_all(acct, rng.choice((None, PERP)))
            if r < 0.985:
                return e.set_position(acct, LIN, D(rng.randint(-5, 5)) * D("0.001"))
            return e.set_state(OPT, rng.choice((InstrumentState.HALTED, InstrumentState.OPEN)))
        except DeskError as exc:
            assert exc.code == "order.unknown"
            return []
        finally:
            self.calls += 1


def external_check(calls: list[int]) -> Any:
    """A pre-trade check whose answers depend on state outside the engine (like a margin engine)."""

    def check(req: Any, ctx: Any) -> RejectReason | None:
        calls[0] += 1
        if calls[0] % 7 == 0:
            return RejectReason("margin.insufficient", f"call {calls[0]}: short")
        return None

    return check


def run_session(
    directory: Path, n: int, seed: int = 5, flush_every: int = 0, check: bool = True, **kw: Any
) -> tuple[MatchingEngine, list[bytes], Driver]:
    clock = SimClock(1_700_000_000_000)
    journal = Journal(directory, sync=kw.pop("sync", "buffered"))
    engine = MatchingEngine(clock, journal=journal, pre_trade_check=external_check([0]) if check else None, **kw)
    stream: list[bytes] = []
    engine.on_event(lambda ev: stream.append(encode(ev)))
    driver = Driver(engine, clock, seed)
    driver.setup()
    for i in range(n):
        driver.step()
        if flush_every and i % flush_every == flush_every - 1:
            journal.flush()  # one frame per call in buffered mode
    return engine, stream, driver


def frames(path: Path) -> list[int]:
    """Byte offsets of the frames of a segment (their headers say how long each one is)."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        out.append(pos)
        pos += 8 + int.from_bytes(data[pos : pos + 4], "little")
    return out


def test_replay_reproduces_event_stream_byte_for_byte(tmp_path: Path) -> None:
    engine, stream, _ = run_session(tmp_path / "j", 3000)
    engine.journal.close()  # type: ignore[union-attr]
    assert any(b"margin.insufficient" in x for x in stream)  # the recorded check outcomes matter
    replayed, events = MatchingEngine.replay(tmp_path / "j")
    assert b"\n".join(encode(ev) for ev in events) == b"\n".join(stream)
    assert canonical(replayed) == canonical(engine)


def test_snapshots_and_recovery_continue_identically(tmp_path: Path) -> None:
    engine, stream, driver = run_session(tmp_path / "j", 2500, snapshot_every=400)
    engine.journal.close()  # type: ignore[union-attr]
    snaps = sorted((tmp_path / "j").glob("snapshot-*.json"))
    assert len(snaps) >= 4
    clock = SimClock(driver.clock.now_ms())
    recovered = MatchingEngine.recover(tmp_path / "j", clock, pre_trade_check=external_check([10**6]))
    assert canonical(recovered) == canonical(engine)
    # The full replay from the first segment still agrees with the recovery from the newest snapshot.
    full, events = MatchingEngine.replay(tmp_path / "j")
    assert canonical(full) == canonical(engine)
    assert [encode(e) for e in events] == stream
    # Both engines go on the same way.
    a = engine.place("z", LIN, 1, 1000, 3)
    b = recovered.place("z", LIN, 1, 1000, 3)
    assert [encode(x) for x in a] == [encode(x) for x in b]
    recovered.journal.close()  # type: ignore[union-attr]


def test_torn_last_record_is_dropped_and_nothing_before_it_is_lost(tmp_path: Path) -> None:
    clock = SimClock(1_700_000_000_000)
    journal = Journal(tmp_path / "j", sync="flush")
    engine = MatchingEngine(clock, journal=journal)
    driver = Driver(engine, clock, 9)
    driver.setup()
    for _ in range(500):
        driver.step()
    before_last = canonical(engine)
    engine.place("a", LIN, 1, 990, 4)
    segment = journal.path
    journal.close()
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # the process died while writing the last record
    recovered = MatchingEngine.recover(tmp_path / "j", SimClock(clock.now_ms()))
    assert canonical(recovered) == before_last
    assert segment.stat().st_size < len(data) - 3  # truncated to the last whole record
    # A new segment continues after the repaired one; appending and recovering again works.
    recovered.place("a", LIN, 1, 990, 4)
    recovered.journal.close()  # type: ignore[union-attr]
    again = MatchingEngine.recover(tmp_path / "j", SimClock(clock.now_ms()))
    assert canonical(again) == canonical(recovered)
    again.journal.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("garbage", [b"\x07", b"\x10\x00\x00\x00\xde\xad\xbe\xef\x01\x02"])
def test_torn_header_or_bad_checksum_at_the_end(tmp_path: Path, garbage: bytes) -> None:
    engine, _, _ = run_session(tmp_path / "j", 200)
    journal = engine.journal
    assert journal is not None
    journal.close()
    state = canonical(engine)
    with open(journal.path, "ab") as fh:
        fh.write(garbage)
    assert scan_segment(journal.path, last=True).torn_bytes == len(garbage)
    recovered = MatchingEngine.recover(tmp_path / "j", SimClock(engine.now_ms))
    assert canonical(recovered) == state
    recovered.journal.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("sync", ["buffered", "flush"])
def test_corruption_before_the_end_is_an_error(tmp_path: Path, sync: str) -> None:
    engine, _, _ = run_session(tmp_path / "j", 300, flush_every=50, sync=sync)
    journal = engine.journal
    assert journal is not None
    journal.close()
    offsets = frames(journal.path)
    assert len(offsets) >= 6
    data = bytearray(journal.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    assert len(data) // 2 < offsets[-1]  # inside an earlier frame, not the last one
    journal.path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt):
        MatchingEngine.replay(tmp_path / "j")


def test_torn_buffered_frame_drops_only_unflushed_records(tmp_path: Path) -> None:
    """Buffered mode: a frame cut short by a crash is dropped whole; every frame flushed before it is kept."""
    clock = SimClock(1_700_000_000_000)
    journal = Journal(tmp_path / "j")
    engine = MatchingEngine(clock, journal=journal)
    driver = Driver(engine, clock, 4)
    driver.setup()
    for _ in range(400):
        driver.step()
    journal.flush()
    flushed = canonical(engine)
    for _ in range(200):
        driver.step()
    journal.close()
    offsets = frames(journal.path)
    data = journal.path.read_bytes()
    last = offsets[-1]
    assert len(data) - last > 1000  # the last frame holds many records
    for cut in (last + 3, last + 8, (last + len(data)) // 2, len(data) - 1):
        journal.path.write_bytes(data[:cut])
        recovered = MatchingEngine.recover(tmp_path / "j", SimClock(clock.now_ms()))
        assert canonical(recovered) == flushed
        assert journal.path.stat().st_size == last
        recovered.journal.close()  # type: ignore[union-attr]
        for extra in sorted((tmp_path / "j").glob("segment-*.log"))[1:]:
            extra.unlink()  # the segment the recovered engine opened


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_journals_of_earlier_formats_still_replay(version: str) -> None:
    """Journals written by the first format (one record per frame, JSON tails) and by the second (every
    place and cancel with its own time, cancels with the account) replay exactly."""
    fixture = Path(__file__).parent.parent / "fixtures" / "engine"
    expected = json.loads((fixture / f"journal_{version}.expected.json").read_text())
    replayed, events = MatchingEngine.replay(fixture / f"journal_{version}")
    stream = b"\n".join(encode(ev) for ev in events)
    assert len(events) == expected["events"]
    assert hashlib.sha256(stream).hexdigest() == expected["events_sha256"]
    assert hashlib.sha256(canonical(replayed).encode()).hexdigest() == expected["state_sha256"]
    from_snapshot, _ = MatchingEngine.replay(fixture / f"journal_{version}", from_snapshot=True)
    assert canonical(from_snapshot) == canonical(replayed)


def test_compact_records_take_the_time_of_the_last_time_record(tmp_path: Path) -> None:
    """Plain places and cancels carry no time: one time record per change of time, read back per command."""
    clock = SimClock(1_700_000_000_000)
    journal = Journal(tmp_path / "j")
    engine = MatchingEngine(clock, journal=journal)
    engine.add_instrument(Instrument.parse(LIN), band=None)
    a = engine.place("a", LIN, 1, 1000, 3)[0].order_id
    engine.place("b", LIN, 1, 999, 2)
    clock.advance(7)
    engine.cancel("a", a)
    engine.place("a", LIN, -1, 1001, 1)
    journal.close()
    (segment,) = (tmp_path / "j").glob("segment-*.log")
    records = [r for r in scan_segment(segment, last=True).records if r[0] != "admin"]
    t0 = 1_700_000_000_000
    assert records == [
        ("place", t0, LIN, "a", 1, 1000, 3, 0, None, None),
        ("place", t0, LIN, "b", 1, 999, 2, 0, None, None),
        ("cancel", t0 + 7, None, a),
        ("place", t0 + 7, LIN, "a", -1, 1001, 1, 0, None, None),
    ]
    # On disk: a time record only where the time changed; names defined once, before their first use.
    sym = {name: journal.symbols[name] for name in (LIN, "a", "b")}
    tail = b"".join(
        [
            J.TIME.pack(J.OP_TIME, t0),
            J._SYMBOL.pack(J.OP_SYMBOL, sym["a"]) + J._str("a"),
            J.PLACE_T.pack(J.OP_PLACE_T, sym[LIN], sym["a"], 1, 1000, 3, 0),
            J._SYMBOL.pack(J.OP_SYMBOL, sym["b"]) + J._str("b"),
            J.PLACE_T.pack(J.OP_PLACE_T, sym[LIN], sym["b"], 1, 999, 2, 0),
            J.TIME.pack(J.OP_TIME, t0 + 7),
            J.CANCEL_T.pack(J.OP_CANCEL_T, a),
            J.PLACE_T.pack(J.OP_PLACE_T, sym[LIN], sym["a"], -1, 1001, 1, 0),
        ]
    )
    assert segment.read_bytes().endswith(tail)


def test_damaged_snapshot_falls_back_to_an_older_one(tmp_path: Path) -> None:
    engine, _, _ = run_session(tmp_path / "j", 1200, snapshot_every=300)
    engine.journal.close()  # type: ignore[union-attr]
    newest = sorted((tmp_path / "j").glob("snapshot-*.json"))[-1]
    newest.write_text(newest.read_text().replace('"seq":', '"seq": 1, "x":', 1))
    recovered, _ = MatchingEngine.replay(tmp_path / "j", from_snapshot=True)
    assert canonical(recovered) == canonical(engine)


def test_replay_of_a_missing_journal_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(DeskError):
        MatchingEngine.replay(tmp_path / "nothing-here")


def test_journal_sync_modes_write_the_same_records(tmp_path: Path) -> None:
    records, n_frames = [], []
    for mode in ("buffered", "flush", "fsync"):
        engine, _, _ = run_session(tmp_path / mode, 150, sync=mode)
        engine.journal.close()  # type: ignore[union-attr]
        (segment,) = (tmp_path / mode).glob("segment-*.log")
        records.append(scan_segment(segment, last=True).records)
        n_frames.append(len(frames(segment)))
    assert records[0] == records[1] == records[2] and len(records[0]) > 100
    # Buffered: one checksummed frame for the whole session; flush/fsync: one frame per command.
    assert n_frames[0] == 1 and n_frames[1] == n_frames[2] > 100
    with pytest.raises(DeskError):
        Journal(tmp_path / "x", sync="sometimes")  # type: ignore[arg-type]


def test_a_fresh_engine_refuses_a_journal_with_history(tmp_path: Path) -> None:
    engine, _, _ = run_session(tmp_path / "j", 50)
    engine.journal.close()  # type: ignore[union-attr]
    with pytest.raises(DeskError) as info:
        MatchingEngine(SimClock(), journal=Journal(tmp_path / "j"))
    assert info.value.code == "journal.not_empty"
