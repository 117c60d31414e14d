"""Write-ahead journal of the matching engine: every accepted command, checksummed, plus snapshots.

A journal is a directory::

    segment-000001.log     commands since the start (or since snapshot 1)
    snapshot-000002.json   the whole engine state after segment 1
    segment-000002.log     commands after snapshot 2
    ...

A segment is a sequence of *frames* ``[u32 payload length][u32 CRC-32 of payload][payload]``; a payload
holds one or more binary records packed back to back, each led by an opcode byte: place, cancel, amend
(fixed-size ``struct`` layouts, strings length-prefixed), an admin command (JSON: rare), a symbol
definition that gives an instrument or account name a small integer id, or a time record. Every command
has the engine time it ran at and, for orders, the outcome of the pre-trade check, so a replay needs
neither the clock nor the margin engine and reproduces the event stream byte for byte.

The two most frequent commands are compact (the write cost is on the engine's hot path): a plain place
(no client id, no check answer) and a cancel take their time from the last time record of the segment,
which is written only when the time changes, and a cancel names only the order id (a journaled cancel
was accepted, so the order's owner is known when it is replayed). Symbol ids are fixed for a journal's
life: each new segment starts by defining again every name known so far, so a segment still reads alone.

Framing follows the durability mode (``sync``): ``"flush"`` and ``"fsync"`` write one frame per record
(every record reaches the OS, or the disk, before the command runs: survives a process crash or power
loss); ``"buffered"`` (default, fastest) packs records into one pending frame that is checksummed and
written when it reaches 64 KiB, at snapshots, ``flush()`` and ``close()``, so the append path is one
``struct`` pack into a ``bytearray`` and the CRC costs one pass per 64 KiB.

Crash safety: a frame that was being written when the process died (short, or with a bad checksum, at
the very end of the last segment) is a *torn* frame: it is dropped whole and the file truncated before
appending resumes; every frame before it is kept. A torn buffered frame only loses records that had not
been handed to the OS yet. A bad frame anywhere else is corruption and raises :class:`JournalCorrupt`.
Snapshots are written to a temporary file, fsynced and renamed, so a snapshot is either whole or absent;
recovery starts from the newest snapshot and replays the segments after it.

Journals of the earlier formats are still read: the first (one record per frame, opcodes 1-6, JSON
tails) and the second (place and cancel with their own time, cancel with the account: 0x11 and 0x13).

    journal = Journal("var/engine", sync="flush")
    engine = MatchingEngine(clock, journal=journal, snapshot_every=100_000)
    ...
    engine = MatchingEngine.recover("var/engine", clock)     # after a crash
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zlib import crc32

from app.engine.events import RejectReason
from app.errors import DeskError, InvalidInput

_HDR = struct.Struct("<II")
_HDR_SIZE = _HDR.size

# Records of the current format (opcodes >= 0x11), self-delimiting so a frame can hold many.
PLACE = struct.Struct("<BqIIbqqB")
"""op, ts, instrument symbol, account symbol, side, ticks, lots, flags (no client id, no check)."""
CANCEL = struct.Struct("<BqIq")
"""op, ts, account symbol, order id (the second format's cancel: read, no longer written)."""
PLACE_T = struct.Struct("<BIIbqqB")
"""op, instrument symbol, account symbol, side, ticks, lots, flags: a plain place at the segment's time."""
CANCEL_T = struct.Struct("<Bq")
"""op, order id: a cancel at the segment's time, by the order's owner."""
TIME = struct.Struct("<Bq")
"""op, ts: the engine time (epoch ms) of the compact records that follow in the segment."""
_AMEND = struct.Struct("<BqIqqq")  # then strings: check code, check message
_SYMBOL = struct.Struct("<BI")  # then one string
_ADMIN = struct.Struct("<BqI")  # then that many bytes of JSON
_STR = struct.Struct("<I")
_NONE = 0xFFFFFFFF  # string length that stands for None

OP_PLACE = 0x11
OP_PLACE_X = 0x12
OP_CANCEL = 0x13
OP_AMEND = 0x14
OP_SYMBOL = 0x15
OP_ADMIN = 0x16
OP_TIME = 0x17
OP_PLACE_T = 0x18
OP_CANCEL_T = 0x19

# The first format: one record per frame, the record's tail runs to the end of the frame.
_V1_PLACE = struct.Struct("<BqIIbqqB")
_V1_CANCEL = struct.Struct("<BqIq")
_V1_AMEND = struct.Struct("<BqIqqq")
_V1_SYMBOL = struct.Struct("<BI")
_V1_ADMIN = struct.Struct("<Bq")
_V1_OPS = frozenset((1, 2, 3, 5, 6))

SEGMENT = "segment-{:06d}.log"
SNAPSHOT = "snapshot-{:06d}.json"
FRAME_BYTES = 1 << 16
"""Size at which a buffered journal checksums and writes its pending frame."""

Record = tuple[Any, ...]
"""A decoded command: ``("place", ts, instrument, account, side, ticks, lots, flags, client_id, check)``,
``("cancel", ts, account, order_id)`` (account None when the record leaves it to the order's owner),
``("amend", ts, account, order_id, lots|None, ticks|None, check)`` or ``("admin", ts, op, args)``; ``check``
is None or ``(code, message)`` of a pre-trade rejection."""


class JournalCorrupt(DeskError):
    """A journal record other than the last one is damaged: the journal cannot be trusted."""

    code = "journal.corrupt"


def _index(path: Path) -> int:
    return int(path.stem.split("-")[1])


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("segment-*.log"), key=_index)


def _snapshots(directory: Path) -> list[Path]:
    return sorted(directory.glob("snapshot-*.json"), key=_index)


@dataclass
class Scan:
    """Result of reading one segment: its records, where the good data ends, and whether a tail was torn."""

    records: list[Record]
    good_bytes: int
    torn_bytes: int


def _str(value: str | None) -> bytes:
    if value is None:
        return _STR.pack(_NONE)
    data = value.encode()
    return _STR.pack(len(data)) + data


def _read_str(payload: bytes, pos: int) -> tuple[str | None, int]:
    (n,) = _STR.unpack_from(payload, pos)
    pos += 4
    if n == _NONE:
        return None, pos
    end = pos + n
    if end > len(payload):
        raise ValueError("string runs past the end of its frame")
    return payload[pos:end].decode(), end


def scan_segment(path: Path, *, last: bool) -> Scan:
    """Decode a segment; a damaged final frame of the ``last`` segment is reported as torn, not an error."""
    data = path.read_bytes()
    size = len(data)
    pos = 0
    symbols: dict[int, str] = {}
    now = [-1]  # time set by the segment's last time record (-1: none yet)
    out: list[Record] = []
    while pos < size:
        torn = False
        if size - pos < _HDR_SIZE:
            torn = True
        else:
            length, crc = _HDR.unpack_from(data, pos)
            end = pos + _HDR_SIZE + length
            if end > size:
                torn = True
            else:
                payload = data[pos + _HDR_SIZE : end]
                if crc32(payload) != crc or length == 0:
                    if end == size:
                        torn = True
                    else:
                        raise JournalCorrupt(f"{path.name}: bad frame at byte {pos}", path=str(path), offset=pos)
        if torn:
            if not last:
                raise JournalCorrupt(f"{path.name}: truncated frame at byte {pos}", path=str(path), offset=pos)
            return Scan(out, pos, size - pos)
        try:
            _decode_frame(payload, symbols, out, now)
        except (struct.error, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise JournalCorrupt(f"{path.name}: undecodable frame at byte {pos}: {exc}", path=str(path)) from None
        pos = end
    return Scan(out, pos, 0)


def _decode_frame(payload: bytes, symbols: dict[int, str], out: list[Record], now: list[int]) -> None:
    """Append the records of one frame's payload to ``out`` (symbol definitions update ``symbols``, time
    records ``now[0]``)."""
    size = len(payload)
    pos = 0
    while pos < size:
        op = payload[pos]
        if op == OP_PLACE_T:
            _, inst, acct, side, ticks, lots, flags = PLACE_T.unpack_from(payload, pos)
            pos += PLACE_T.size
            out.append(("place", _time(now), symbols[inst], symbols[acct], side, ticks, lots, flags, None, None))
        elif op == OP_CANCEL_T:
            _, oid = CANCEL_T.unpack_from(payload, pos)
            pos += CANCEL_T.size
            out.append(("cancel", _time(now), None, oid))
        elif op == OP_TIME:
            _, now[0] = TIME.unpack_from(payload, pos)
            pos += TIME.size
        elif op == OP_PLACE or op == OP_PLACE_X:
            _, ts, inst, acct, side, ticks, lots, flags = PLACE.unpack_from(payload, pos)
            pos += PLACE.size
            cid = code = msg = None
            if op == OP_PLACE_X:
                cid, pos = _read_str(payload, pos)
                code, pos = _read_str(payload, pos)
                msg, pos = _read_str(payload, pos)
            check = None if code is None else (code, msg or "")
            out.append(("place", ts, symbols[inst], symbols[acct], side, ticks, lots, flags, cid, check))
        elif op == OP_CANCEL:
            _, ts, acct, oid = CANCEL.unpack_from(payload, pos)
            pos += CANCEL.size
            out.append(("cancel", ts, symbols[acct], oid))
        elif op == OP_AMEND:
            _, ts, acct, oid, lots, ticks = _AMEND.unpack_from(payload, pos)
            pos += _AMEND.size
            code, pos = _read_str(payload, pos)
            msg, pos = _read_str(payload, pos)
            check = None if code is None else (code, msg or "")
            out.append(
                ("amend", ts, symbols[acct], oid, None if lots < 0 else lots, None if ticks < 0 else ticks, check)
            )
        elif op == OP_SYMBOL:
            _, sid = _SYMBOL.unpack_from(payload, pos)
            name, pos = _read_str(payload, pos + _SYMBOL.size)
            if name is None:
                raise ValueError("symbol without a name")
            symbols[sid] = name
        elif op == OP_ADMIN:
            _, ts, n = _ADMIN.unpack_from(payload, pos)
            pos += _ADMIN.size
            if pos + n > size:
                raise ValueError("admin record runs past the end of its frame")
            body = json.loads(payload[pos : pos + n])
            pos += n
            out.append(("admin", ts, body["op"], body["args"]))
        elif op in _V1_OPS and pos == 0:
            rec = _decode_v1(payload, symbols)
            if rec is not None:
                out.append(rec)
            return
        else:
            raise ValueError(f"unknown opcode {op} at payload byte {pos}")


def _time(now: list[int]) -> int:
    if now[0] < 0:
        raise ValueError("a compact record before any time record")
    return now[0]


def _decode_v1(payload: bytes, symbols: dict[int, str]) -> Record | None:
    """One record of the first format (the frame's whole payload; tails in JSON)."""
    op = payload[0]
    if op == 1:
        _, ts, inst, acct, side, ticks, lots, flags = _V1_PLACE.unpack_from(payload)
        check = None
        cid = None
        if len(payload) > _V1_PLACE.size:
            check, cid = json.loads(payload[_V1_PLACE.size :])
        return ("place", ts, symbols[inst], symbols[acct], side, ticks, lots, flags, cid, _check(check))
    if op == 2:
        _, ts, acct, oid = _V1_CANCEL.unpack(payload)
        return ("cancel", ts, symbols[acct], oid)
    if op == 3:
        _, ts, acct, oid, lots, ticks = _V1_AMEND.unpack_from(payload)
        check = json.loads(payload[_V1_AMEND.size :])[0] if len(payload) > _V1_AMEND.size else None
        return (
            "amend",
            ts,
            symbols[acct],
            oid,
            None if lots < 0 else lots,
            None if ticks < 0 else ticks,
            _check(check),
        )
    if op == 5:
        _, sid = _V1_SYMBOL.unpack_from(payload)
        symbols[sid] = payload[_V1_SYMBOL.size :].decode()
        return None
    _, ts = _V1_ADMIN.unpack_from(payload)
    body = json.loads(payload[_V1_ADMIN.size :])
    return ("admin", ts, body["op"], body["args"])


def _check(value: Any) -> tuple[str, str] | None:
    return None if value is None else (str(value[0]), str(value[1]))


class Journal:
    """Appends engine commands to the newest segment of a journal directory; writes snapshots.

    The engine's hot path appends plain place and cancel records itself, as :meth:`place` and
    :meth:`cancel` do: a :data:`TIME` record when the time differs from :attr:`ts`, then :data:`PLACE_T`
    or :data:`CANCEL_T` packed into :attr:`buf` (names given ids by :meth:`symbol`, looked up in
    :attr:`symbols`), and :meth:`write_frame` when ``len(buf) >= limit``. ``buf`` and ``symbols`` stay the
    same objects for the journal's life (``buf`` emptied in place), and a symbol id never changes, so the
    engine may hold them and keep ids.
    """

    def __init__(self, directory: str | Path, *, sync: Literal["buffered", "flush", "fsync"] = "buffered") -> None:
        if sync not in ("buffered", "flush", "fsync"):
            raise InvalidInput(f"sync {sync!r} must be buffered, flush or fsync", code="input.journal_sync")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sync = sync
        self.buf = bytearray()
        """Records of the pending frame (the engine appends to it in place)."""
        self.symbols: dict[str, int] = {}
        """Name -> symbol id (fixed for the journal's life; each segment defines them again)."""
        self.ts: int | None = None
        """Time of the segment's last time record (None: none yet in this segment)."""
        self.limit = FRAME_BYTES if sync == "buffered" else 0
        """A frame is written once ``buf`` holds this many bytes (0: after every record)."""
        self.dropped_bytes = self._repair()
        segments = _segments(self.directory)
        snaps = _snapshots(self.directory)
        # True when earlier commands are on disk: only a recovered engine may append to them.
        self.existing = bool(snaps) or any(p.stat().st_size for p in segments)
        last = max([_index(p) for p in segments] + [_index(p) for p in snaps] + [0])
        # A fresh segment each time the journal is opened: symbol ids restart with it.
        self._open_segment(last + 1)

    # -- writing --------------------------------------------------------------------------------
    def _open_segment(self, index: int) -> None:
        self.segment_index = index
        self.path = self.directory / SEGMENT.format(index)
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self.buf.clear()
        self.ts = None
        for name, sid in self.symbols.items():
            self.buf += _SYMBOL.pack(OP_SYMBOL, sid) + _str(name)

    def symbol(self, name: str) -> int:
        """The id of ``name``, defining it (a record in the pending frame) if new."""
        sid = self.symbols.get(name)
        if sid is None:
            sid = len(self.symbols) + 1
            self.symbols[name] = sid
            self.buf += _SYMBOL.pack(OP_SYMBOL, sid) + _str(name)
        return sid

    def _append(self, record: bytes) -> None:
        buf = self.buf
        buf += record
        if len(buf) >= self.limit:
            self.write_frame()

    def write_frame(self) -> None:
        """Checksum the pending records as one frame and hand it to the OS (and the disk with ``fsync``)."""
        buf = self.buf
        if buf:
            self._file.write(_HDR.pack(len(buf), crc32(buf)) + buf)
            buf.clear()
            if self.sync == "fsync":
                os.fsync(self._file.fileno())

    def place(
        self,
        ts: int,
        instrument: str,
        account: str,
        side: int,
        ticks: int,
        lots: int,
        flags: int,
        cid: str | None,
        check: RejectReason | None,
    ) -> None:
        """Append a new-order command (ts epoch ms, price ticks, size lots, F_* flags)."""
        syms = self.symbols
        i = syms.get(instrument)
        if i is None:
            i = self.symbol(instrument)
        a = syms.get(account)
        if a is None:
            a = self.symbol(account)
        if cid is None and check is None:
            if ts != self.ts:
                self.buf += TIME.pack(OP_TIME, ts)
                self.ts = ts
            self._append(PLACE_T.pack(OP_PLACE_T, i, a, side, ticks, lots, flags))
        else:
            tail = _str(cid) + (_str(None) * 2 if check is None else _str(check[0]) + _str(check[1]))
            self._append(PLACE.pack(OP_PLACE_X, ts, i, a, side, ticks, lots, flags) + tail)

    def cancel(self, ts: int, order_id: int) -> None:
        """Append an accepted cancel command (the order's owner cancelled it)."""
        if ts != self.ts:
            self.buf += TIME.pack(OP_TIME, ts)
            self.ts = ts
        self._append(CANCEL_T.pack(OP_CANCEL_T, order_id))

    def amend(
        self, ts: int, account: str, order_id: int, lots: int | None, ticks: int | None, check: RejectReason | None
    ) -> None:
        """Append an amend command (None: unchanged)."""
        a = self.symbols.get(account)
        if a is None:
            a = self.symbol(account)
        record = _AMEND.pack(OP_AMEND, ts, a, order_id, -1 if lots is None else lots, -1 if ticks is None else ticks)
        tail = _str(None) * 2 if check is None else _str(check[0]) + _str(check[1])
        self._append(record + tail)

    def admin(self, ts: int, op: str, args: dict[str, Any]) -> None:
        """Append a rare command (listing, state, mark, settings) as JSON."""
        body = json.dumps({"op": op, "args": args}, separators=(",", ":"), sort_keys=True).encode()
        self._append(_ADMIN.pack(OP_ADMIN, ts, len(body)) + body)

    def flush(self) -> None:
        """Hand every buffered record to the OS (and the disk with ``sync='fsync'``)."""
        self.write_frame()

    def write_snapshot(self, state: dict[str, Any]) -> Path:
        """Write ``state`` as the next snapshot (atomically) and start a new segment after it."""
        self.write_frame()
        os.fsync(self._file.fileno())
        self._file.close()
        index = self.segment_index + 1
        body = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        doc = json.dumps({"crc32": crc32(body), "state": json.loads(body)}, separators=(",", ":"), sort_keys=True)
        final = self.directory / SNAPSHOT.format(index)
        tmp = final.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(doc.encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        self._open_segment(index)
        return final

    def close(self) -> None:
        """Flush and close; idempotent."""
        if not self._file.closed:
            self.write_frame()
            if self.sync != "buffered":
                os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------------
    def _repair(self) -> int:
        """Truncate a torn record at the end of the newest segment; returns the bytes dropped."""
        segments = _segments(self.directory)
        if not segments:
            return 0
        scan = scan_segment(segments[-1], last=True)
        if scan.torn_bytes:
            with open(segments[-1], "r+b") as fh:
                fh.truncate(scan.good_bytes)
                fh.flush()
                os.fsync(fh.fileno())
        return scan.torn_bytes

    @staticmethod
    def load(directory: str | Path, *, from_snapshot: bool = True) -> tuple[dict[str, Any] | None, Iterator[Record]]:
        """The newest valid snapshot (or None) and the commands after it, oldest first.

        ``from_snapshot=False`` ignores snapshots and yields every command from the first segment (which
        must still exist). A torn final record is skipped (not truncated: opening a :class:`Journal`
        does that)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise InvalidInput(f"no journal at {directory}", code="journal.missing", path=str(directory))
        state = None
        start = 1
        if from_snapshot:
            for snap in reversed(_snapshots(directory)):
                loaded = _read_snapshot(snap)
                if loaded is not None:
                    state, start = loaded, _index(snap)
                    break
        segments = [p for p in _segments(directory) if _index(p) >= start]
        if not from_snapshot and segments and _index(segments[0]) != 1:
            raise JournalCorrupt(f"{directory}: the first segment is gone (pruned?)", path=str(directory))

        def records() -> Iterator[Record]:
            for i, seg in enumerate(segments):
                yield from scan_segment(seg, last=i == len(segments) - 1).records

        return state, records()


def _read_snapshot(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
        body = json.dumps(doc["state"], separators=(",", ":"), sort_keys=True).encode()
    except (ValueError, KeyError, TypeError):
        return None
    if crc32(body) != doc.get("crc32"):
        return None
    state: dict[str, Any] = doc["state"]
    return state
