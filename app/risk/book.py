"""A book: the positions of one underlying as parallel numpy arrays, the input of every risk function.

Sizes follow Deribit: options and linear instruments in base coin (signed, + long), inverse futures and
perpetuals in USD notional. ``t`` is in years (0 for perpetuals and spot, which have no expiry).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike

from app.domain import Instrument, Kind, Position
from app.errors import InvalidInput


class PositionKind(IntEnum):
    """Instrument class codes stored in :attr:`Book.kind`."""

    OPTION = 0
    FUTURE = 1  # dated futures and perpetuals
    SPOT = 2


@dataclass(frozen=True)
class Book:
    """Positions as arrays (one element per position).

    kind: :class:`PositionKind` codes; strike: USD (NaN for non-options); t: years to expiry; is_call: bool;
    size: signed amount (base coin, or USD notional for inverse futures/perpetuals); inverse: coin-settled;
    expiry_ms: epoch ms (−1 without expiry); names: instrument names (optional, for reports).
    """

    kind: np.ndarray
    strike: np.ndarray
    t: np.ndarray
    is_call: np.ndarray
    size: np.ndarray
    inverse: np.ndarray
    expiry_ms: np.ndarray
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = np.asarray(self.size).shape
        fields = (self.kind, self.strike, self.t, self.is_call, self.inverse, self.expiry_ms)
        if any(np.asarray(a).shape != n for a in fields) or len(n) != 1:
            raise InvalidInput("Book arrays must be one-dimensional and of one length", code="risk.book_shape")
        if self.names and len(self.names) != n[0]:
            raise InvalidInput("Book names must match the positions", code="risk.book_shape")
        if not np.all(np.isfinite(np.asarray(self.size, dtype=float))):
            raise InvalidInput("Book sizes must be finite", code="risk.book_size")

    def __len__(self) -> int:
        return int(np.asarray(self.size).shape[0])

    @property
    def is_option(self) -> np.ndarray:
        """Mask of option positions."""
        return self.kind == PositionKind.OPTION

    @classmethod
    def options(cls, strike: ArrayLike, t: ArrayLike, is_call: ArrayLike, size: ArrayLike,
                inverse: ArrayLike = True, expiry_ms: ArrayLike | None = None) -> Book:
        """A book of options only (sizes in base coin); broadcasts its arguments."""
        k, tt, c, n, inv = np.broadcast_arrays(np.asarray(strike, float), np.asarray(t, float),
                                               np.asarray(is_call, bool), np.asarray(size, float),
                                               np.asarray(inverse, bool))
        k, tt, c, n, inv = (np.atleast_1d(a).copy() for a in (k, tt, c, n, inv))
        exp = np.full(k.shape, -1, dtype=np.int64) if expiry_ms is None else \
            np.broadcast_to(np.asarray(expiry_ms, dtype=np.int64), k.shape).copy()
        return cls(np.zeros(k.shape, np.int8), k, tt, c, n, inv, exp)

    @classmethod
    def from_instruments(cls, items: Iterable[tuple[Instrument, float]], now_ms: int) -> Book:
        """Build from (instrument, signed size) pairs; t measured from ``now_ms`` (epoch ms)."""
        rows = list(items)
        kind = np.empty(len(rows), np.int8)
        strike = np.full(len(rows), np.nan)
        t = np.zeros(len(rows))
        is_call = np.zeros(len(rows), bool)
        size = np.empty(len(rows))
        inverse = np.empty(len(rows), bool)
        expiry = np.full(len(rows), -1, np.int64)
        for i, (inst, amount) in enumerate(rows):  # once per position when a book is built, not per pricing
            kind[i] = (PositionKind.OPTION if inst.kind is Kind.OPTION else
                       PositionKind.SPOT if inst.kind is Kind.SPOT else PositionKind.FUTURE)
            if inst.strike is not None:
                strike[i] = float(inst.strike)
            is_call[i] = inst.is_call
            size[i] = float(amount)
            inverse[i] = inst.inverse
            if inst.expiry_ms is not None:
                expiry[i] = inst.expiry_ms
                t[i] = inst.years_to_expiry(now_ms)
        return cls(kind, strike, t, is_call, size, inverse, expiry, tuple(inst.name for inst, _ in rows))

    @classmethod
    def from_positions(cls, positions: Sequence[Position], now_ms: int) -> Book:
        """Build from domain positions (instrument names parsed with the default conventions)."""
        return cls.from_instruments(((Instrument.parse(p.instrument), float(p.size)) for p in positions), now_ms)
