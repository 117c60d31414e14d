"""Compact encoding of risk/margin snapshots: a packed vector of numbers plus a layout stored once.

A snapshot dict (nested dicts of floats and ints, e.g. greeks per underlying, IM/MM/equity per currency) is
flattened into paths. The numeric leaves become one little-endian binary vector (8 bytes a number, no key
names); the ordered list of ``(path, typecode)`` is the *layout*, written once to ``snapshot_layout`` and
referenced by id. Leaves that are not numbers (strings, None, booleans, lists, Decimals) go to a small JSON
side field, usually empty. A 40-figure snapshot takes ~320 bytes of payload instead of ~1.5 kB of JSON, and a
day of them reads back as numpy columns with one ``frombuffer`` per layout.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from app.errors import InvalidInput

Path = tuple[str, ...]
Field = tuple[Path, str]  # typecode: "d" float64, "q" int64


@dataclass(frozen=True, slots=True)
class Encoded:
    """A flattened snapshot ready for the writer: layout, packed numbers, non-numeric leaves."""

    fields: tuple[Field, ...]
    packed: bytes
    extra: list[list[Any]] | None

    @property
    def digest(self) -> str:
        """Stable id of the layout (sha1 of its JSON)."""
        return layout_digest(self.fields)


_DIGESTS: dict[tuple[Field, ...], str] = {}


def layout_digest(fields: tuple[Field, ...]) -> str:
    """sha1 hex of a layout's canonical JSON (memoised: a desk has a handful of layouts)."""
    digest = _DIGESTS.get(fields)
    if digest is None:
        digest = hashlib.sha1(json.dumps([[list(p), c] for p, c in fields], separators=(",", ":")).encode()).hexdigest()
        if len(_DIGESTS) > 4096:
            _DIGESTS.clear()
        _DIGESTS[fields] = digest
    return digest


@lru_cache(maxsize=1024)
def _struct(codes: str) -> struct.Struct:
    return struct.Struct("<" + codes)


def encode(data: dict[str, Any]) -> Encoded:
    """Flatten and pack a snapshot dict; raise InvalidInput for non-string keys."""
    if not isinstance(data, dict):
        raise InvalidInput(f"a snapshot must be a dict, got {type(data).__name__}", code="input.type")
    fields: list[Field] = []
    values: list[Any] = []
    extra: list[list[Any]] = []
    _walk(data, (), fields, values, extra)
    codes = "".join(c for _, c in fields)
    try:
        packed = _struct(codes).pack(*values)
    except struct.error as exc:
        raise InvalidInput(f"snapshot number out of range: {exc}", code="input.range") from None
    return Encoded(tuple(fields), packed, extra or None)


def _walk(node: dict[str, Any], prefix: Path, fields: list[Field], values: list[Any], extra: list[list[Any]]) -> None:
    for key, value in node.items():
        if not isinstance(key, str):
            raise InvalidInput(f"snapshot keys must be strings, got {key!r}", code="input.type")
        path = (*prefix, key)
        if isinstance(value, bool) or value is None:
            extra.append([list(path), value])
        elif isinstance(value, float):
            fields.append((path, "d"))
            values.append(value)
        elif isinstance(value, int):
            fields.append((path, "q"))
            values.append(value)
        elif isinstance(value, dict):
            if value:
                _walk(value, path, fields, values, extra)
            else:
                extra.append([list(path), {}])
        elif isinstance(value, np.floating):
            fields.append((path, "d"))
            values.append(float(value))
        elif isinstance(value, np.integer):
            fields.append((path, "q"))
            values.append(int(value))
        else:
            extra.append([list(path), value])


class Layout:
    """A decoded layout: unpacks vectors into nested dicts or numpy columns."""

    def __init__(self, layout_id: int, fields: list[list[Any]]) -> None:
        self.id = layout_id
        self.fields: tuple[Field, ...] = tuple((tuple(p), c) for p, c in fields)
        codes = "".join(c for _, c in self.fields)
        self._struct = _struct(codes)
        self.dtype = np.dtype([(f"f{i}", "<f8" if c == "d" else "<i8") for i, (_, c) in enumerate(self.fields)])
        self.names = [".".join(p) for p, _ in self.fields]
        self._flat = all(len(p) == 1 for p, _ in self.fields)
        self._keys = [p[0] for p, _ in self.fields] if self._flat else []
        # For nested layouts: inner dicts to create (parent node index, key) and leaves (node index, key).
        self._inner: list[tuple[int, str]] = []
        self._leaves: list[tuple[int, str]] = []
        index: dict[Path, int] = {(): 0}
        for path, _ in self.fields:
            for depth in range(1, len(path)):
                sub = path[:depth]
                if sub not in index:
                    index[sub] = len(index)
                    self._inner.append((index[path[: depth - 1]], path[depth - 1]))
            self._leaves.append((index[path[:-1]], path[-1]))

    def decode(self, packed: bytes, extra: list[list[Any]] | None) -> dict[str, Any]:
        """The snapshot dict back from its packed vector and extra leaves."""
        values = self._struct.unpack(packed)
        if self._flat:
            out = dict(zip(self._keys, values))
        else:
            out = {}
            nodes: list[dict[str, Any]] = [out]
            for parent, key in self._inner:
                child: dict[str, Any] = {}
                nodes[parent][key] = child
                nodes.append(child)
            for (node, key), value in zip(self._leaves, values):
                nodes[node][key] = value
        if extra:
            for path, value in extra:
                target = out
                for key in path[:-1]:
                    target = target.setdefault(key, {})
                target[path[-1]] = value
        return out

    def columns(self, blobs: list[bytes]) -> dict[str, np.ndarray]:
        """Numeric columns (dotted paths) of many packed vectors of this layout."""
        arr = np.frombuffer(b"".join(blobs), dtype=self.dtype)
        return {name: arr[f"f{i}"] for i, name in enumerate(self.names)}
