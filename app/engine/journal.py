"""Write-ahead journal of the matching engine: every accepted command, checksummed, plus snapshots.

A journal is a directory::

    segment-000001.log     commands since the start (or since snapshot 1)
    snapshot-000002.json   the whole engine state after segment 1
    segment-000002.log     commands after snapshot 2
    ...

Segment records are binary: ``[u32 payload length][u32 CRC-32 of payload][payload]``; the payload's
first byte says what it is (place, cancel, amend, admin command in JSON, or a symbol definition that
gives an instrument or account name a small integer id for the rest of the segment). Each record carries
the engine time of the command and, for orders, the outcome of the pre-trade check, so a replay needs
neither the clock nor the margin engine and reproduces the event stream byte for byte.

Crash safety: a record that was being written when the process died (short, or with a bad checksum, at
the very end of the last segment) is a *torn* record: it is dropped and the file truncated before
appending resumes; everything before it is kept. A bad record anywhere else is corruption and raises
:class:`JournalCorrupt`. Snapshots are written to a temporary file, fsynced and renamed, so a snapshot
is either whole or absent; recovery starts from the newest snapshot and replays the segments after it.

Durability (``sync``): ``"buffered"`` (default, fastest: records reach the OS every 64 KiB, at snapshots,
``flush()`` and ``close()``), ``"flush"`` (every record reaches the OS: survives a process crash) or
``"fsync"`` (every record reaches the disk: survives power loss, slow).

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
_PLACE = struct.Struct("<BqIIbqqB")
_CANCEL = struct.Struct("<BqIq")
_AMEND = struct.Struct("<BqIqqq")
_SYMBOL = struct.Struct("<BI")
_ADMIN = struct.Struct("<Bq")

# Bound once: the append path runs for every command.
_pack_hdr = _HDR.pack
_pack_place = _PLACE.pack
_pack_cancel = _CANCEL.pack
_PLACE_SIZE = _PLACE.size
_CANCEL_SIZE = _CANCEL.size

OP_PLACE = 1
OP_CANCEL = 2
OP_AMEND = 3
OP_SYMBOL = 5
OP_ADMIN = 6

SEGMENT = "segment-{:06d}.log"
SNAPSHOT = "snapshot-{:06d}.json"
_BUFFER = 1 << 16

Record = tuple[Any, ...]
"""A decoded command: ``("place", ts, instrument, account, side, ticks, lots, flags, client_id, check)``,
``("cancel", ts, account, order_id)``, ``("amend", ts, account, order_id, lots|None, ticks|None, check)``
or ``("admin", ts, op, args)``; ``check`` is None or ``(code, message)`` of a pre-trade rejection."""


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


def _tail(check: RejectReason | None, cid: str | None = None, with_cid: bool = False) -> bytes:
    data: list[Any] = [None if check is None else [check[0], check[1]]]
    if with_cid:
        data.append(cid)
    return json.dumps(data, separators=(",", ":")).encode()


def scan_segment(path: Path, *, last: bool) -> Scan:
    """Decode a segment; a damaged final record of the ``last`` segment is reported as torn, not an error."""
    data = path.read_bytes()
    size = len(data)
    pos = 0
    symbols: dict[int, str] = {}
    out: list[Record] = []
    while pos < size:
        torn = False
        if size - pos < _HDR.size:
            torn = True
        else:
            length, crc = _HDR.unpack_from(data, pos)
            end = pos + _HDR.size + length
            if end > size:
                torn = True
            else:
                payload = data[pos + _HDR.size : end]
                if crc32(payload) != crc or length == 0:
                    if end == size:
                        torn = True
                    else:
                        raise JournalCorrupt(f"{path.name}: bad record at byte {pos}", path=str(path), offset=pos)
        if torn:
            if not last:
                raise JournalCorrupt(f"{path.name}: truncated record at byte {pos}", path=str(path), offset=pos)
            return Scan(out, pos, size - pos)
        try:
            rec = _decode(payload, symbols)
        except (struct.error, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise JournalCorrupt(f"{path.name}: undecodable record at byte {pos}: {exc}", path=str(path)) from None
        if rec is not None:
            out.append(rec)
        pos = end
    return Scan(out, pos, 0)


def _decode(payload: bytes, symbols: dict[int, str]) -> Record | None:
    op = payload[0]
    if op == OP_PLACE:
        _, ts, inst, acct, side, ticks, lots, flags = _PLACE.unpack_from(payload)
        check = None
        cid = None
        if len(payload) > _PLACE.size:
            check, cid = json.loads(payload[_PLACE.size :])
        return ("place", ts, symbols[inst], symbols[acct], side, ticks, lots, flags, cid, _check(check))
    if op == OP_CANCEL:
        _, ts, acct, oid = _CANCEL.unpack(payload)
        return ("cancel", ts, symbols[acct], oid)
    if op == OP_AMEND:
        _, ts, acct, oid, lots, ticks = _AMEND.unpack_from(payload)
        check = json.loads(payload[_AMEND.size :])[0] if len(payload) > _AMEND.size else None
        return (
            "amend",
            ts,
            symbols[acct],
            oid,
            None if lots < 0 else lots,
            None if ticks < 0 else ticks,
            _check(check),
        )
    if op == OP_SYMBOL:
        _, sid = _SYMBOL.unpack_from(payload)
        symbols[sid] = payload[_SYMBOL.size :].decode()
        return None
    if op == OP_ADMIN:
        _, ts = _ADMIN.unpack_from(payload)
        body = json.loads(payload[_ADMIN.size :])
        return ("admin", ts, body["op"], body["args"])
    raise ValueError(f"unknown opcode {op}")


def _check(value: Any) -> tuple[str, str] | None:
    return None if value is None else (str(value[0]), str(value[1]))


class Journal:
    """Appends engine commands to the newest segment of a journal directory; writes snapshots."""

    def __init__(self, directory: str | Path, *, sync: Literal["buffered", "flush", "fsync"] = "buffered") -> None:
        if sync not in ("buffered", "flush", "fsync"):
            raise InvalidInput(f"sync {sync!r} must be buffered, flush or fsync", code="input.journal_sync")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sync = sync
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
        self._buf = bytearray()
        self._symbols: dict[str, int] = {}
        self._limit = 0 if self.sync != "buffered" else _BUFFER
        self.records = 0

    def _symbol(self, name: str) -> int:
        sid = len(self._symbols) + 1
        self._symbols[name] = sid
        self._append(_SYMBOL.pack(OP_SYMBOL, sid) + name.encode())
        return sid

    def _append(self, payload: bytes) -> None:
        buf = self._buf
        buf += _HDR.pack(len(payload), crc32(payload))
        buf += payload
        self.records += 1
        if len(buf) >= self._limit:
            self._write()

    def _write(self) -> None:
        if self._buf:
            self._file.write(self._buf)
            self._buf = bytearray()
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
        syms = self._symbols
        i = syms.get(instrument)
        if i is None:
            i = self._symbol(instrument)
        a = syms.get(account)
        if a is None:
            a = self._symbol(account)
        payload = _pack_place(OP_PLACE, ts, i, a, side, ticks, lots, flags)
        buf = self._buf
        if cid is None and check is None:
            buf += _pack_hdr(_PLACE_SIZE, crc32(payload))
        else:
            payload += _tail(check, cid, True)
            buf += _pack_hdr(len(payload), crc32(payload))
        buf += payload
        self.records += 1
        if len(buf) >= self._limit:
            self._write()

    def cancel(self, ts: int, account: str, order_id: int) -> None:
        """Append a cancel command."""
        a = self._symbols.get(account)
        if a is None:
            a = self._symbol(account)
        payload = _pack_cancel(OP_CANCEL, ts, a, order_id)
        buf = self._buf
        buf += _pack_hdr(_CANCEL_SIZE, crc32(payload))
        buf += payload
        self.records += 1
        if len(buf) >= self._limit:
            self._write()

    def amend(
        self, ts: int, account: str, order_id: int, lots: int | None, ticks: int | None, check: RejectReason | None
    ) -> None:
        """Append an amend command (None: unchanged)."""
        a = self._symbols.get(account)
        if a is None:
            a = self._symbol(account)
        payload = _AMEND.pack(OP_AMEND, ts, a, order_id, -1 if lots is None else lots, -1 if ticks is None else ticks)
        if check is not None:
            payload += _tail(check)
        self._append(payload)

    def admin(self, ts: int, op: str, args: dict[str, Any]) -> None:
        """Append a rare command (listing, state, mark, settings) as JSON."""
        body = json.dumps({"op": op, "args": args}, separators=(",", ":"), sort_keys=True).encode()
        self._append(_ADMIN.pack(OP_ADMIN, ts) + body)

    def flush(self) -> None:
        """Hand every buffered record to the OS (and the disk with ``sync='fsync'``)."""
        self._write()

    def write_snapshot(self, state: dict[str, Any]) -> Path:
        """Write ``state`` as the next snapshot (atomically) and start a new segment after it."""
        self._write()
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
            self._write()
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
