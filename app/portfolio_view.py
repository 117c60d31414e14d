"""The desk's live book of one account: positions from fills, marks, per-position greeks and PnL, incrementally.

Positions change only on fills (:meth:`Book.apply_fill`); marks change on quotes (:meth:`Book.mark`). Greeks of a
held option are recomputed only when its mark, forward or time moved (:meth:`Book.flush`, one vectorised call for
all dirty positions), and the per-underlying totals are updated by the difference, so a quote on an instrument we
do not hold costs a dict lookup and a quote on one we hold costs one small vectorised pricing call.

Units: option amounts in coin, inverse future amounts in USD; every total is in coin (delta in coin,
premium-adjusted for inverse options; gamma in coin per USD; vega in coin per 1 vol point; theta in coin per
day); the ``*_usd`` fields of :class:`app.domain.GreeksView` are the coin figures times the index price.

Settlement window (deribit.md §1.7): during the 30 minutes before an expiry the delta of the expiring options and
futures decays linearly to 0 (half of it 15 minutes before), as the delivery price (the index TWAP of those 30
minutes, §3.5) gets fixed; perpetuals are unaffected. The deltas this book reports (``delta``, ``delta_bs``, per
position and in the totals) carry that decay; every flush in the window recomputes the positions it covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from app.domain import MS_PER_YEAR, Fill, GreeksView, Instrument, Kind, Position, PositionView
from app.engine.settlement import DELIVERY_FEES, TWAP_WINDOW_MS, DeliveryFees, delivery_fee
from app.pricing.inverse_flat import inverse_greeks_1d

_ZERO = Decimal(0)
_REBASE_EVERY = 10_000  # recompute totals from scratch this often, so float drift stays bounded
_NEVER = 1 << 62

SETTLEMENT_WINDOW_MS = TWAP_WINDOW_MS
"""The settlement window before an expiry (ms) over which delta decays to 0: the delivery price's TWAP window."""


def delta_decay(expiry_ms: int | None, now_ms: int) -> float:
    """Fraction (0 to 1) of a position's delta left at ``now_ms`` (epoch ms): 1 until 30 minutes before its expiry
    (``expiry_ms``, epoch ms; None for a perpetual, never decayed), then linearly down to 0 at the expiry."""
    if expiry_ms is None:
        return 1.0
    left = expiry_ms - now_ms
    if left >= SETTLEMENT_WINDOW_MS:
        return 1.0
    return max(0.0, left / SETTLEMENT_WINDOW_MS)


@dataclass
class _Held:
    inst: Instrument
    size: Decimal = _ZERO
    avg: Decimal = _ZERO
    realized: Decimal = _ZERO
    fees: Decimal = _ZERO
    funding: Decimal = _ZERO  # received (negative: paid) on a perpetual, settlement currency
    mark: float = float("nan")
    iv: float = float("nan")
    forward: float = float("nan")
    unit: np.ndarray = field(default_factory=lambda: np.zeros(5))  # delta, delta_bs, gamma, vega%, theta/day (coin)
    contrib: np.ndarray = field(default_factory=lambda: np.zeros(5))


def _pnl(inst: Instrument, size: Decimal, avg: Decimal, mark: float) -> float:
    """Unrealised PnL in the settlement currency (coin for inverse)."""
    if size == 0 or mark != mark or avg == 0:
        return 0.0
    s, a = float(size), float(avg)
    if inst.kind is Kind.OPTION or not inst.inverse:
        return s * (mark - a)
    return s * (1.0 / a - 1.0 / mark)  # inverse future: USD amount, PnL in coin


class Book:
    """Positions, marks and greeks of one account, with per-underlying totals kept up to date."""

    def __init__(self, account: str = "main") -> None:
        self.account = account
        self.held: dict[str, _Held] = {}
        self.index: dict[str, float] = {}  # base -> index price USD
        self.totals: dict[str, np.ndarray] = {}  # base -> delta, delta_bs, gamma, vega%, theta/day (coin)
        self._dirty: set[str] = set()
        self.settled_pnl: dict[str, Decimal] = {}  # realised PnL minus fees of delivered instruments, per currency
        self._now_ms = 0
        self._updates = 0
        self._static: tuple[Any, ...] | None = None  # see _static_of
        # Delta decay: positions inside their settlement window are recomputed at every flush (time alone moves
        # their delta); ``_next_window`` is the earliest window of a held position not yet entered, so a flush
        # outside every window costs one comparison.
        self._decaying: set[str] = set()
        self._next_window = _NEVER

    # -- inputs --------------------------------------------------------------------------------------
    def apply_fill(self, fill: Fill, inst: Instrument) -> Position:
        """Book one of our fills (average price, realised PnL, fees); return the new position."""
        h = self.held.get(fill.instrument)
        if h is None:
            h = self.held[fill.instrument] = _Held(inst)
            if inst.expiry_ms is not None:
                self._next_window = min(self._next_window, inst.expiry_ms - SETTLEMENT_WINDOW_MS)
        signed = fill.amount if fill.side.sign > 0 else -fill.amount
        old = h.size
        new = old + signed
        if old == 0 or (old > 0) == (signed > 0):
            h.avg = fill.price if old == 0 else self._blend(inst, old, h.avg, signed, fill.price)
        else:
            closed = min(abs(signed), abs(old))
            direction = Decimal(1 if old > 0 else -1)
            if inst.is_option or not inst.inverse:
                h.realized += direction * closed * (fill.price - h.avg)
            else:
                h.realized += direction * closed * (1 / h.avg - 1 / fill.price)
            if new != 0 and (new > 0) != (old > 0):
                h.avg = fill.price
        h.size = new
        h.fees += fill.fee
        self._dirty.add(fill.instrument)
        return Position(fill.instrument, h.size, h.avg, h.realized, self.account)

    @staticmethod
    def _blend(inst: Instrument, old: Decimal, avg: Decimal, add: Decimal, price: Decimal) -> Decimal:
        total = old + add
        if inst.inverse and not inst.is_option:
            # Inverse futures average in 1/price (USD amounts buy coin at 1/price each).
            return abs(total) / (abs(old) / avg + abs(add) / price)
        return (old * avg + add * price) / total

    def mark(self, name: str, mark: float, iv: float | None = None, forward: float | None = None) -> bool:
        """A new mark (price unit of the instrument), IV (per 1.0) and forward (USD); True if we hold it."""
        h = self.held.get(name)
        if h is None:
            return False
        if mark == h.mark and (iv is None or iv == h.iv) and (forward is None or forward == h.forward):
            return True  # nothing moved: the greeks stand
        h.mark = mark
        if iv is not None:
            h.iv = iv
        if forward is not None:
            h.forward = forward
        self._dirty.add(name)
        return True

    def set_funding(self, name: str, amount: Decimal) -> None:
        """The funding received so far (negative: paid) on held perpetual ``name``, settlement currency."""
        h = self.held.get(name)
        if h is not None:
            h.funding = amount

    def set_index(self, base: str, price: float) -> None:
        """The index price of ``base`` in USD (for the USD view)."""
        self.index[base] = price

    # -- incremental greeks ----------------------------------------------------------------------------
    def flush(self, now_ms: int) -> int:
        """Recompute greeks of dirty positions (all options when time moved a lot); return how many changed."""
        self._now_ms = now_ms
        if now_ms >= self._next_window:
            self._enter_windows(now_ms)
        if self._decaying:
            self._dirty.update(self._decaying)
        if not self._dirty:
            return 0
        held = self.held
        dirty = self._dirty
        names = [n for n in held if n in dirty]  # in holding order, so the totals add up alike in every run
        dirty.clear()
        opts = [held[n] for n in names if held[n].inst.is_option]
        if opts:
            fwd = np.array([h.forward if h.forward == h.forward else self.index.get(h.inst.base, np.nan) for h in opts])
            strike, call, expiry, bases, inverse, csize, all_inverse, unit_size = self._static_of(opts)
            t = np.maximum((expiry - now_ms) / MS_PER_YEAR, 0.0)  # Instrument.years_to_expiry of each
            iv = np.array([h.iv for h in opts])
            g = inverse_greeks_1d(fwd, strike, t, iv, call)
            units = np.empty((len(opts), 5))
            # An inverse option's coin delta and gamma are premium-adjusted (its value is in coin); a linear option's
            # value is in USD, so its coin delta is the plain BS one. Vega and theta are in coin (USD / forward).
            if all_inverse:  # the usual book: no array selection on the quote-to-delta path
                units[:, 0], units[:, 1], units[:, 2] = g.delta, g.delta_bs, g.gamma
            else:
                units[:, 0] = np.where(inverse, g.delta, g.delta_bs)
                units[:, 1] = g.delta_bs
                units[:, 2] = np.where(inverse, g.gamma, g.gamma_bs)
            units[:, 3], units[:, 4] = g.vega * 0.01, g.theta / 365.0
            if not unit_size:  # per contract: contract_size coin of underlying (a multiplier on some linear options)
                units *= csize[:, None]
            if not np.isfinite(units).all():
                units = np.nan_to_num(units)
            if self._decaying:
                # Delta decay in the settlement window (1 before it). Deribit's delta total is BS delta minus the mark
                # (§1.7) and "NTD uses the decayed mark price", so the premium-adjusted delta takes the same factor.
                units[:, :2] *= np.clip((expiry - now_ms) / SETTLEMENT_WINDOW_MS, 0.0, 1.0)[:, None]
            new = units * np.array([float(h.size) for h in opts])[:, None]
            diff = new - np.stack([h.contrib for h in opts])
            unique = dict.fromkeys(bases)
            for base in unique:  # totals move by the sum of the differences, per underlying
                rows = diff if len(unique) == 1 else diff[[j for j, b in enumerate(bases) if b == base]]
                tot = self.totals.setdefault(base, np.zeros(5))
                tot += rows.sum(axis=0)
            for h, u, c in zip(opts, units, new):
                h.unit = u
                h.contrib = c
        for n in names:
            h = held[n]
            if h.inst.is_option:
                continue
            ref = h.mark if h.mark == h.mark else self.index.get(h.inst.base, float("nan"))
            delta = float(h.size) / ref if h.inst.inverse and ref == ref and ref > 0 else float(h.size)
            delta *= delta_decay(h.inst.expiry_ms, now_ms)
            new_f = np.array([delta, delta, 0.0, 0.0, 0.0])
            tot = self.totals.setdefault(h.inst.base, np.zeros(5))
            tot += new_f - h.contrib
            h.contrib = new_f
        if self._decaying:
            # Past its expiry a position's delta is 0 and stays so until it is delivered: no need to recompute it
            # each flush any more (a new mark or fill still does, at 0).
            self._decaying = {n for n in self._decaying if n in held and (held[n].inst.expiry_ms or 0) > now_ms}
        self._updates += len(names)
        if self._updates >= _REBASE_EVERY:
            self._rebase()
        return len(names)

    def _enter_windows(self, now_ms: int) -> None:
        """Move held positions whose settlement window has begun at ``now_ms`` (epoch ms) into the decaying set."""
        nxt = _NEVER
        for n, h in self.held.items():
            exp = h.inst.expiry_ms
            if exp is None or n in self._decaying:
                continue
            start = exp - SETTLEMENT_WINDOW_MS
            if start <= now_ms:
                self._decaying.add(n)
            else:
                nxt = min(nxt, start)
        self._next_window = nxt

    def _static_of(self, opts: list[_Held]) -> tuple[Any, ...]:
        """Strikes (USD), call flags, expiries (epoch ms), underlyings, inverse flags and contract sizes of ``opts``
        (and whether all are inverse, all of size 1), kept while the set is the same."""
        key = tuple(h.inst.name for h in opts)
        if self._static is None or self._static[0] != key:
            self._static = (
                key,
                np.array([float(h.inst.strike or 0) for h in opts]),
                np.array([h.inst.is_call for h in opts]),
                np.array([h.inst.expiry_ms or 0 for h in opts], dtype=np.int64),
                [h.inst.base for h in opts],
                inverse := np.array([h.inst.inverse for h in opts]),
                csize := np.array([float(h.inst.contract_size) for h in opts]),
                bool(inverse.all()),
                bool((csize == 1.0).all()),
            )
        return self._static[1:]

    def touch_all(self) -> None:
        """Mark every position dirty (time decay, a new day): the next flush recomputes them all."""
        self._dirty.update(self.held)

    def _rebase(self) -> None:
        self._updates = 0
        fresh: dict[str, np.ndarray] = {}
        for h in self.held.values():
            fresh.setdefault(h.inst.base, np.zeros(5))
            fresh[h.inst.base] += h.contrib
        self.totals = fresh

    # -- views ----------------------------------------------------------------------------------------
    def greeks(self, base: str) -> GreeksView:
        """Portfolio greeks of one underlying (coin and USD)."""
        tot = self.totals.get(base, np.zeros(5))
        idx = self.index.get(base, 0.0)
        d, dbs, g, v, th = (float(x) for x in tot)
        return GreeksView(d, dbs, g, v, th, d * idx, g * idx, v * idx, th * idx)

    def delta(self, base: str) -> float:
        """Portfolio delta of ``base`` in coin."""
        tot = self.totals.get(base)
        return 0.0 if tot is None else float(tot[0])

    def upnl(self, currency: str) -> float:
        """Unrealised PnL of positions settled in ``currency`` (coin for inverse)."""
        return sum(_pnl(h.inst, h.size, h.avg, h.mark) for h in self.held.values() if h.inst.settlement == currency)

    def realized(self, currency: str) -> Decimal:
        """Realised PnL minus fees of positions settled in ``currency``."""
        return sum((h.realized - h.fees for h in self.held.values() if h.inst.settlement == currency), _ZERO)

    def positions(self) -> list[Position]:
        """Non-zero positions."""
        return [Position(n, h.size, h.avg, h.realized, self.account) for n, h in self.held.items() if h.size != 0]

    def views(self) -> tuple[PositionView, ...]:
        """Non-zero positions with mark, PnL (coin and USD) and greeks."""
        out = []
        for n, h in self.held.items():
            if h.size == 0:
                continue
            idx = self.index.get(h.inst.base, 0.0)
            pnl = _pnl(h.inst, h.size, h.avg, h.mark)
            d, dbs, g, v, th = (float(x) for x in h.contrib)
            gv = GreeksView(d, dbs, g, v, th, d * idx, g * idx, v * idx, th * idx)
            out.append(
                PositionView(
                    n,
                    float(h.size),
                    float(h.avg),
                    h.mark,
                    pnl,
                    pnl * idx,
                    gv,
                    h.inst.expiry_ms,
                    h.inst.base,
                    self.account,
                    realized_pnl=float(h.realized),
                    fees=float(h.fees),
                    funding=float(h.funding),
                )
            )
        return tuple(out)

    def settle(self, name: str, delivery: float, fees: DeliveryFees = DELIVERY_FEES) -> Position | None:
        """Deliver a held instrument at ``delivery`` (USD): realise its payoff, pay the delivery fee (settlement
        currency, at ``fees``' rates: the simulated venue's) and drop it; the final position."""
        h = self.held.pop(name, None)
        if h is None:
            return None
        self._decaying.discard(name)
        self._dirty.discard(name)
        self.totals.setdefault(h.inst.base, np.zeros(5))
        self.totals[h.inst.base] -= h.contrib
        d = Decimal(repr(delivery))
        inst = h.inst
        if inst.is_option:
            k = inst.strike or _ZERO
            intrinsic = max(_ZERO, d - k) if inst.is_call else max(_ZERO, k - d)
            payoff = intrinsic / d if inst.inverse else intrinsic
            h.realized += h.size * (payoff - h.avg)
        elif h.size != 0:
            h.realized += h.size * (1 / h.avg - 1 / d) if inst.inverse else h.size * (d - h.avg)
        # The venue charges it with the delivery (app.engine.settlement): the book's fees follow, so the settled PnL
        # matches the account's cash.
        h.fees += delivery_fee(inst, h.size, d, fees)
        self.settled_pnl[inst.settlement] = self.settled_pnl.get(inst.settlement, _ZERO) + h.realized - h.fees
        return Position(name, _ZERO, h.avg, h.realized, self.account)
