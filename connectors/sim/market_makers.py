"""Market-maker agents of the simulated venue: two-sided quotes around model value, vectorised.

Each agent quotes every listed instrument of an underlying on both sides. Options: half-spread in vol terms
``vol_spread × (σ/θ) × (1 + stress_widen·z)`` times the option's vega, at least ``min_ticks`` ticks, so the
spread widens with the vol state and after down-jumps; size ``target_vega_usd / vega_per_1%_usd`` (size by
vega: fewer contracts where one contract carries more vega). Futures and perpetuals: a half-spread in basis
points of the forward, widened the same way, a fixed USD size.

:meth:`OptionQuotes.quote` works on whole arrays (every maker, every option of every underlying at once) in
integer ticks and lots (tick steps included) and
:func:`to_requote` picks the (instrument, side) pairs whose quote must move — at once when it became too
aggressive, after a tolerance when it was merely left behind — so a step re-quotes only what moved. The agent that applies them to the matching engine lives in ``venue.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.domain import Instrument


@dataclass(frozen=True)
class MakerParams:
    """One market maker's style: vol spreads per 1.0 vol, sizes in USD of vega per 1% or of notional."""

    name: str = "mm1"
    vol_spread: float = 0.006  # half-spread, in vol, at the long-run vol level
    min_ticks: int = 1
    stress_widen: float = 0.6  # extra spread per unit of skew stress (after down-jumps)
    price_spread: float = 0.01  # extra half-spread as a fraction of the option value
    target_vega_usd: float = 4_000.0  # USD per vol point per quote
    max_option_lots: int = 2_000
    future_half_bps: float = 1.0
    future_size_usd: float = 200_000.0
    future_size_coin: float = 30.0  # for linear-sized contracts: amount per quote in amount units
    passive_tolerance: int = 2  # a quote left behind by at most this many price steps is not moved
    aggressive_tolerance: int = 1  # nor one this many steps too aggressive, while it keeps at least one step of edge
    size_tolerance: float = 0.3  # nor one whose size is within this fraction of the target

    def __post_init__(self) -> None:
        if not (self.vol_spread > 0 and self.min_ticks >= 1 and self.target_vega_usd > 0 and self.future_half_bps > 0):
            raise ValueError(f"market maker {self.name}: spreads and sizes must be positive")


DEFAULT_MAKERS: tuple[MakerParams, ...] = (
    MakerParams("mm1"),
    MakerParams("mm2", vol_spread=0.012, min_ticks=2, price_spread=0.02, target_vega_usd=12_000.0,
                future_half_bps=2.5, future_size_usd=600_000.0, future_size_coin=100.0),
)


def _column(makers: Sequence[MakerParams], attr: str, dtype: type = float) -> np.ndarray:
    """One parameter of every maker as an (M, 1) column, to broadcast against per-instrument rows."""
    return np.array([getattr(m, attr) for m in makers], dtype=dtype)[:, None]


class OptionQuotes:
    """Vectorised quotes of several makers for a fixed set of inverse options sharing one tick grid.

    Rows are makers, columns options; the underlying's spot, vol ratio and stress may differ per option, so one
    call quotes the options of every underlying.
    """

    def __init__(self, instruments: list[Instrument], makers: Sequence[MakerParams]) -> None:
        if not instruments:
            raise ValueError("no options to quote")
        first = instruments[0]
        if any(i.tick_size != first.tick_size or i.tick_steps != first.tick_steps for i in instruments):
            raise ValueError("options quoted together must share one tick grid")
        self.makers = tuple(makers)
        self.tick = float(first.tick_size)
        # Deribit's option tick steps: above ``step_above`` prices move in ``step_mult`` base ticks.
        steps = first.tick_steps
        self.step_above = int(round(float(steps[0][0]) / self.tick)) if steps else 1 << 60
        self.step_mult = int(round(float(steps[0][1]) / self.tick)) if steps else 1
        self.lot = np.array([float(i.min_amount) for i in instruments])
        self._vol_spread = _column(makers, "vol_spread")
        self._stress_widen = _column(makers, "stress_widen")
        self._price_spread = _column(makers, "price_spread")
        self._min_half = _column(makers, "min_ticks") * self.tick
        self._target_vega = _column(makers, "target_vega_usd")
        self._max_lots = _column(makers, "max_option_lots")

    def quote(self, theo: np.ndarray, vega: np.ndarray, spot: np.ndarray | float, vol_ratio: np.ndarray | float,
              stress: np.ndarray | float, part: slice | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bid_ticks, bid_lots, ask_ticks, ask_lots), each (makers, options), around ``theo`` (coin); vega in coin
        per 1.0 vol; ``spot`` (USD), ``vol_ratio`` and ``stress`` per option or one for all; ``part``: the options
        ``theo`` and ``vega`` cover when not all of them.

        A side with no sensible price (bid below one tick) gets 0 lots.
        """
        lot = self.lot if part is None else self.lot[part]
        widen = np.maximum(vol_ratio, 0.25) * (1.0 + self._stress_widen * stress)
        half = self._vol_spread * widen * vega + self._price_spread * theo
        half = np.maximum(half, self._min_half)
        bid = np.floor((theo - half) / self.tick + 1e-9)
        ask = np.ceil((theo + half) / self.tick - 1e-9)
        m = self.step_mult
        bid = np.where(bid > self.step_above, np.floor(bid / m) * m, bid)
        ask = np.where(ask > self.step_above, np.ceil(ask / m) * m, ask)
        ask = np.maximum(ask, 1)
        vega_usd_pct = np.maximum(vega * spot * 0.01, 1e-9)
        lots = np.clip(np.floor(self._target_vega / vega_usd_pct / lot), 1, self._max_lots)
        lots = lots.astype(np.int64)
        bid_lots = np.where(bid >= 1, lots, 0)
        return bid.astype(np.int64), bid_lots, ask.astype(np.int64), lots


class FutureQuotes:
    """Quotes of several makers for perpetuals and futures around their forward (USD), in integer ticks and lots."""

    def __init__(self, instruments: list[Instrument], makers: Sequence[MakerParams]) -> None:
        self.makers = tuple(makers)
        self.tick = np.array([float(i.tick_size) for i in instruments])
        lot = np.array([float(i.min_amount) for i in instruments])
        usd_sized = np.array([i.inverse for i in instruments])  # inverse futures trade in USD amounts
        amount = np.where(usd_sized, _column(makers, "future_size_usd"), _column(makers, "future_size_coin"))
        self.lots = np.maximum(np.floor(amount / lot), 1).astype(np.int64)
        self._half_bps = _column(makers, "future_half_bps")
        self._stress_widen = _column(makers, "stress_widen")

    def quote(self, forward: np.ndarray, vol_ratio: float, stress: float,
              part: slice | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bid_ticks, bid_lots, ask_ticks, ask_lots), each (makers, instruments), around ``forward`` (USD per coin);
        ``part``: the instruments ``forward`` covers when not all of them."""
        tick, lots = (self.tick, self.lots) if part is None else (self.tick[part], self.lots[:, part])
        half = np.maximum(forward * self._half_bps * 1e-4 * max(vol_ratio, 0.25) * (1 + self._stress_widen * stress),
                          tick)
        bid = np.floor((forward - half) / tick).astype(np.int64)
        ask = np.ceil((forward + half) / tick).astype(np.int64)
        return bid, lots, ask, lots


def changed(old_ticks: np.ndarray, old_lots: np.ndarray, new_ticks: np.ndarray, new_lots: np.ndarray) -> np.ndarray:
    """Indices whose quote (price or size) differs at all."""
    return np.flatnonzero((old_ticks != new_ticks) | (old_lots != new_lots))


def to_requote(sign: int, old_ticks: np.ndarray, old_lots: np.ndarray, new_ticks: np.ndarray, new_lots: np.ndarray,
               step: np.ndarray, params: MakerParams, edge: np.ndarray | None = None) -> np.ndarray:
    """Indices a maker re-quotes on one side (``sign`` +1 bids, -1 asks): the only ones a step touches.

    A quote that became too aggressive (a bid above, an ask below the new target) by more than
    ``aggressive_tolerance`` price steps — or by any amount when that leaves it less than a step of edge
    (``edge`` = the target's distance from model value in ticks) — moves at once; one left behind by the
    market moves only when it lags by more than ``passive_tolerance`` steps; a size moves when it is off by
    more than ``size_tolerance``; a side appears or disappears when the target says so.
    """
    gap = (new_ticks - old_ticks) * sign  # > 0: the old quote is too passive; < 0: too aggressive
    resting = old_lots > 0
    wanted = new_lots > 0
    lag = gap > params.passive_tolerance * step
    thin = edge + gap < 2 * step if edge is not None else np.ones(len(gap), dtype=bool)
    rich = (gap < -params.aggressive_tolerance * step) | ((gap < 0) & thin)
    size_off = np.abs(new_lots - old_lots) > params.size_tolerance * np.maximum(new_lots, 1)
    move = (resting != wanted) | (resting & wanted & (rich | lag | size_off))
    return np.flatnonzero(move)


def needs_requote(sign: int, old_ticks: int, old_lots: int, new_ticks: int, new_lots: int, step: int, edge: float,
                  params: MakerParams) -> bool:
    """:func:`to_requote` for one quote, in plain ints (the lazy venue re-quotes one instrument at a time)."""
    resting = old_lots > 0
    if resting != (new_lots > 0):
        return True
    if not resting:
        return False
    gap = (new_ticks - old_ticks) * sign
    if gap > params.passive_tolerance * step:
        return True
    if gap < 0 and (gap < -params.aggressive_tolerance * step or edge + gap < 2 * step):
        return True
    return abs(new_lots - old_lots) > params.size_tolerance * max(new_lots, 1)
