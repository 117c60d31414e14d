"""Where the chain tab reads option chains: only the expiry on screen is priced at each refresh.

A full :meth:`Desk.snapshot` prices every expiry of every underlying (a thousand options); the terminal
asks for ``snapshot(chains=False)`` and then for the one :meth:`Desk.chain` it shows. A desk without
those methods (a stored run, a test double) is read from the snapshot's ``chains``.

    feed = chain_feed(desk)
    snap = feed.snapshot()
    feed.expiries("BTC"); feed.chain("BTC", expiry_ms)
"""

from __future__ import annotations

import inspect
import math
from dataclasses import fields, replace
from typing import Any

from app.domain import ChainSlice, DeskSnapshot, GreeksView, PositionView
from app.errors import NotFound


class SnapshotFeed:
    """Chains from ``desk.snapshot().chains`` (every expiry priced by the desk)."""

    def __init__(self, desk: Any) -> None:
        self.desk = desk
        self._snap: DeskSnapshot | None = None

    def snapshot(self) -> DeskSnapshot:
        """A fresh desk snapshot (a stored run's positions with their unknown figures as NaN)."""
        self._snap = unknown_stored_figures(self.desk.snapshot())
        return self._snap

    def underlyings(self) -> list[str]:
        """Underlyings with listed options."""
        return [u for u, s in (self._snap.chains if self._snap else {}).items() if s]

    def expiries(self, underlying: str) -> list[int]:
        """Option expiries of ``underlying`` (epoch ms), nearest first."""
        return [s.expiry_ms for s in (self._snap.chains.get(underlying, ()) if self._snap else ())]

    def chain(self, underlying: str, expiry_ms: int) -> ChainSlice:
        """One expiry's chain; NotFound when it is not listed."""
        for s in self._snap.chains.get(underlying, ()) if self._snap else ():
            if s.expiry_ms == expiry_ms:
                return s
        raise NotFound(f"no {underlying} chain for expiry {expiry_ms}", code="chain.not_found")


class DeskFeed(SnapshotFeed):
    """Chains priced on demand by ``desk.chain(underlying, expiry_ms)``, one expiry at a time."""

    def __init__(self, desk: Any) -> None:
        super().__init__(desk)
        self._listing: tuple[int, dict[str, list[int]]] | None = None
        self._chains: dict[tuple[str, int], tuple[int, ChainSlice]] = {}

    def snapshot(self) -> DeskSnapshot:
        """A desk snapshot without chains (positions, margin, strategies, quotes)."""
        self._snap = self.desk.snapshot(chains=False)
        return self._snap

    def _expiries(self) -> dict[str, list[int]]:
        # The listing changes when an expiry settles or a new one is listed: re-read it once a simulated minute.
        now = self.desk.now_ms()
        if self._listing is None or now - self._listing[0] >= 60_000 or now < self._listing[0]:
            by: dict[str, set[int]] = {}
            for inst in self.desk.instruments():
                if inst.is_option and inst.expiry_ms is not None and inst.expiry_ms > now:
                    by.setdefault(inst.base, set()).add(inst.expiry_ms)
            self._listing = (now, {u: sorted(e) for u, e in sorted(by.items())})
        return self._listing[1]

    def underlyings(self) -> list[str]:
        """Underlyings with listed options."""
        return list(self._expiries())

    def expiries(self, underlying: str) -> list[int]:
        """Option expiries of ``underlying`` (epoch ms), nearest first."""
        return self._expiries().get(underlying, [])

    def chain(self, underlying: str, expiry_ms: int) -> ChainSlice:
        """One expiry's chain, priced at most once per desk instant."""
        now = self.desk.now_ms()
        hit = self._chains.get((underlying, expiry_ms))
        if hit is not None and hit[0] == now:
            return hit[1]
        try:
            chain = self.desk.chain(underlying, expiry_ms)
        except NotFound:
            self._listing = None  # the expiry settled: read the listing again
            raise
        self._chains = {k: v for k, v in self._chains.items() if v[0] == now}
        self._chains[(underlying, expiry_ms)] = (now, chain)
        return chain

    def with_chains(self, snap: DeskSnapshot, keys: set[tuple[str, int]]) -> DeskSnapshot:
        """``snap`` with the chains of ``keys`` filled in (for revaluation of the held expiries)."""
        chains: dict[str, list[ChainSlice]] = {}
        for u, e in sorted(keys):
            try:
                chains.setdefault(u, []).append(self.chain(u, e))
            except NotFound:
                continue
        return replace(snap, chains={u: tuple(v) for u, v in chains.items()})


_UNKNOWN_GREEKS = GreeksView(**{f.name: math.nan for f in fields(GreeksView)})


def unknown_stored_figures(snap: DeskSnapshot) -> DeskSnapshot:
    """``snap`` with a stored run's position placeholders (mark = average, zero PnL and greeks) as NaN, shown ``—``.

    A store keeps a position's size and average price only: its mark, PnL, realised PnL and greeks are unknown,
    and a zero there would read as a flat, riskless position.
    """
    if snap.venue != "stored":
        return snap

    def placeholder(p: PositionView) -> bool:
        return p.mark == p.average_price and p.pnl == 0 and p.pnl_usd == 0 and p.greeks == GreeksView()

    if not any(placeholder(p) for p in snap.positions):
        return snap
    nan = math.nan
    return replace(snap, positions=tuple(
        replace(p, mark=nan, pnl=nan, pnl_usd=nan, greeks=_UNKNOWN_GREEKS, realized_pnl=nan, fees=nan, funding=nan)
        if placeholder(p) else p for p in snap.positions
    ))


def chain_feed(desk: Any) -> SnapshotFeed:
    """The cheapest feed ``desk`` supports: per-expiry chains when it has ``chain`` and ``snapshot(chains=)``."""
    try:
        takes_flag = "chains" in inspect.signature(desk.snapshot).parameters
    except (AttributeError, TypeError, ValueError):
        takes_flag = False
    if takes_flag and hasattr(desk, "chain") and hasattr(desk, "instruments"):
        return DeskFeed(desk)
    return SnapshotFeed(desk)
