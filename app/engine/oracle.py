"""Oracle: index prices from several sources, futures marks from the book, option marks from the surface.

Index (deribit.md §3.4): from each source take the mid of its best bid and ask; drop sources that are stale
(older than ``max_age_ms``), NaN or crossed (each drop is counted by reason); clamp the mids to +/-0.5 % around
their median ("values that fall outside the +/-0.5% range of the median price are adjusted to the closest
bandwidth price limit", so one exchange printing ~0 among five moves the index by ~0.1 %, as Deribit's
flash-crash note says); the index is their equally weighted average. One valid source is the index. With no
usable source (or two that disagree by more than ``two_source_max_diff``) the index is *stale*: the last good
price is kept, flagged stale, and the bus says so (an ``IndexPrice`` with ``stale=True`` and an ``Alert``) so
the hedger and liquidations pause. ``max_deviation`` (off by default, not Deribit's rule) drops sources that far
from the median before clamping, and ``quorum`` can ask for more than one source.

Futures mark (older official formula, §3.6): ``mark = index + EMA(market price - index)`` with the market
price the last trade clamped into [best bid, best ask] (mid when no trade), EMA over ``ema_ms`` (30 s),
the mark kept within ``band`` of the index. Option marks: the surface's IV at (strike, expiry) priced with
Black-76 on the expiry's forward, in coin for inverse options.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from app.bus import Bus
from app.clock import Clock
from app.domain import Alert, IndexPrice, Instrument
from app.engine.settlement import IndexTWAP
from app.errors import InvalidInput
from app.pricing import black76_price


@dataclass(frozen=True, slots=True)
class OracleParams:
    """Index construction rules (fractions and milliseconds)."""

    clamp: float = 0.005
    max_age_ms: int = 15_000
    max_deviation: float | None = None
    quorum: int = 1
    two_source_max_diff: float = 0.01
    sample_interval_ms: int = 4_000


@dataclass(slots=True)
class _Source:
    bid: float
    ask: float
    ts: int


@dataclass(frozen=True, slots=True)
class IndexResult:
    """One index computation: price (last good one when stale), sources used, drops by reason."""

    index: str
    price: float | None
    stale: bool
    used: tuple[str, ...]
    dropped: dict[str, str] = field(default_factory=dict)


def _median(values: list[float]) -> float:
    """Median of a handful of prices, as numpy's (the mean of the two middle ones for an even count), without
    numpy's per-call overhead (the oracle runs every simulated second)."""
    s = sorted(values)
    half = len(s) // 2
    return s[half] if len(s) % 2 else (s[half - 1] + s[half]) / 2


class Oracle:
    """Aggregates source quotes into index prices, publishes them and samples them for settlement."""

    def __init__(self, clock: Clock, bus: Bus | None = None, params: OracleParams = OracleParams()) -> None:
        self.clock = clock
        self.bus = bus
        self.params = params
        self._sources: dict[str, dict[str, _Source]] = {}
        self._last: dict[str, float] = {}
        self._stale: dict[str, bool] = {}
        self.drops: Counter[str] = Counter()  # reason -> count over the oracle's life
        self.twap = IndexTWAP(params.sample_interval_ms)

    def update(self, index: str, source: str, bid: float | None = None, ask: float | None = None,
               *, price: float | None = None, ts: int | None = None) -> bool:
        """Take a source quote (bid/ask, or one ``price``); bad data is dropped, counted and returns False."""
        if price is not None:
            bid = ask = price
        ts = self.clock.now_ms() if ts is None else int(ts)
        reason = None
        if bid is None or ask is None or not (math.isfinite(bid) and math.isfinite(ask)):
            reason = "nan"
        elif bid <= 0 or ask <= 0:
            reason = "non_positive"
        elif bid > ask:
            reason = "crossed"
        if reason is not None:
            self.drops[reason] += 1
            return False
        self._sources.setdefault(index, {})[source] = _Source(float(bid), float(ask), ts)  # type: ignore[arg-type]
        return True

    def on_source_event(self, event: Any) -> None:
        """Bus handler for a per-source ``IndexPrice`` (``source`` set): feeds :meth:`update`."""
        if getattr(event, "source", ""):
            self.update(event.index, event.source, price=event.price, ts=event.ts)

    def compute(self, index: str) -> IndexResult:
        """The index now, without publishing it."""
        p = self.params
        now = self.clock.now_ms()
        mids: dict[str, float] = {}
        dropped: dict[str, str] = {}
        for name, s in self._sources.get(index, {}).items():
            if now - s.ts > p.max_age_ms:
                dropped[name] = "stale"
            else:
                mids[name] = 0.5 * (s.bid + s.ask)
        if mids and p.max_deviation is not None:
            med = _median(list(mids.values()))
            for name, mid in list(mids.items()):
                if abs(mid / med - 1.0) > p.max_deviation:
                    dropped[name] = "deviation"
                    del mids[name]
        stale = len(mids) < p.quorum
        if len(mids) == 2:
            a, b = mids.values()
            if abs(a / b - 1.0) > p.two_source_max_diff:
                stale = True
                dropped.update({n: "disagree" for n in mids})
        if stale or not mids:
            return IndexResult(index, self._last.get(index), True, tuple(sorted(mids)), dropped)
        vals = list(mids.values())
        med = _median(vals)
        lo, hi = med * (1.0 - p.clamp), med * (1.0 + p.clamp)
        clamped = [min(max(v, lo), hi) for v in vals]
        return IndexResult(index, sum(clamped) / len(clamped), False, tuple(sorted(mids)), dropped)

    def tick(self, indices: Iterable[str] | None = None) -> list[IndexResult]:
        """Compute, publish (IndexPrice; Alert on a change of staleness) and sample every index."""
        now = self.clock.now_ms()
        out = []
        for index in sorted(indices or self._sources):
            res = self.compute(index)
            for reason in res.dropped.values():
                self.drops[reason] += 1
            was_stale = self._stale.get(index, False)
            self._stale[index] = res.stale
            if not res.stale and res.price is not None:
                self._last[index] = res.price
                self.twap.record(index, now, res.price)
            if self.bus is not None:
                if res.price is not None:
                    self.bus.publish(IndexPrice(ts=now, index=index, price=res.price, stale=res.stale))
                if res.stale != was_stale:
                    msg = (f"index {index} is stale: {len(res.used)} usable sources (quorum {self.params.quorum})"
                           if res.stale else f"index {index} is live again")
                    self.bus.publish(Alert(ts=now, source="oracle", message=msg, severity="warning" if res.stale else "info",
                                           code="data.stale_index" if res.stale else "data.index_ok"))
            out.append(res)
        return out

    def is_stale(self, index: str) -> bool:
        """True while ``index`` lacks a quorum of fresh sources."""
        return self._stale.get(index, True)

    def price(self, index: str) -> float | None:
        """The last good index price."""
        return self._last.get(index)


class FuturesMarker:
    """Futures/perpetual marks: index + EMA of (market price - index), held within a band of the index."""

    def __init__(self, ema_ms: float = 30_000.0, band: float = 0.015) -> None:
        self.ema_ms = ema_ms
        self.band = band
        self._basis: dict[str, tuple[float, int]] = {}

    def update(self, name: str, index: float, ts: int, *, bid: float | None = None, ask: float | None = None,
               last: float | None = None) -> float:
        """Fold a book observation into the basis EMA and return the mark (USD)."""
        if not (index > 0 and math.isfinite(index)):
            raise InvalidInput(f"index for {name} must be a positive finite price", code="input.nan")
        market = None
        if last is not None and math.isfinite(last):
            market = last
            if bid is not None and market < bid:
                market = bid
            if ask is not None and market > ask:
                market = ask
        elif bid is not None and ask is not None and bid <= ask:
            market = 0.5 * (bid + ask)
        prev = self._basis.get(name)
        if market is None:
            basis = prev[0] if prev else 0.0
        elif prev is None:
            basis = market - index
        else:
            w = 1.0 - math.exp(-max(ts - prev[1], 0) / self.ema_ms)
            basis = prev[0] + w * ((market - index) - prev[0])
        self._basis[name] = (basis, ts)
        return min(max(index + basis, index * (1.0 - self.band)), index * (1.0 + self.band))


class SurfaceLike(Protocol):
    """What option marking needs of a volatility surface: ``iv(strike, t) -> ndarray``."""

    def iv(self, strike: Any, t: Any) -> Any: ...


def option_marks(
    surface: SurfaceLike, instruments: Iterable[Instrument], forwards: Mapping[str, float], now_ms: int
) -> dict[str, tuple[float, float, float]]:
    """Marks of options from a surface: name -> (mark in coin for inverse / USDC for linear, IV, forward)."""
    insts = [i for i in instruments if i.is_option]
    if not insts:
        return {}
    f = np.array([forwards[i.name.rsplit("-", 2)[0]] for i in insts], dtype=float)
    k = np.array([float(i.strike) for i in insts])  # type: ignore[arg-type]
    t = np.array([max(i.years_to_expiry(now_ms), 1e-9) for i in insts])
    iv = np.asarray(surface.iv(k, t), dtype=float)
    px = black76_price(f, k, t, iv, np.array([i.is_call for i in insts]))
    inv = np.array([i.inverse for i in insts])
    px = np.where(inv, px / f, px)
    out = {}
    for j, inst in enumerate(insts):
        if math.isfinite(px[j]) and math.isfinite(iv[j]) and iv[j] > 0:
            out[inst.name] = (float(px[j]), float(iv[j]), float(f[j]))
    return out
