"""Deribit-like listing schedule of the simulated venue: expiries, strike grids, instruments.

Expiries are at 08:00 UTC (deribit.md §4.2). Options: the next ``dailies`` daily expiries, Friday weeklies up to
``weekly_days``, last-Friday monthlies up to ``monthly_days`` and last-Friday-of-quarter quarterlies up to
``quarterly_days``. Futures: the perpetual and the quarterlies. Strikes are a round grid (1, 2, 2.5, 5 × 10^n) around
spot wide enough to cover deltas 0.1-0.9 (deribit.md §4.3); the grid is extended, never moved, when spot walks off it,
so listed instruments stay listed until their expiry.

    schedule = ListingSchedule()
    names = schedule.refresh("BTC", now_ms, spot=60_000.0, vol=0.6)   # newly listed instruments
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from app.domain import EXPIRY_HOUR_UTC, MS_PER_YEAR, Instrument, Kind, expiry_code, format_strike, utc_from_ms

DAY_MS = 86_400_000
_NICE = (1.0, 2.0, 2.5, 5.0)


def _expiry(day: datetime) -> datetime:
    return datetime(day.year, day.month, day.day, EXPIRY_HOUR_UTC, tzinfo=timezone.utc)


def _last_friday(year: int, month: int) -> datetime:
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    last = nxt - timedelta(days=1)
    return _expiry(last - timedelta(days=(last.weekday() - 4) % 7))


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def daily_expiries(now_ms: int, count: int) -> list[int]:
    """The next ``count`` 08:00 UTC expiries strictly after ``now_ms`` (epoch ms)."""
    now = utc_from_ms(now_ms)
    first = _expiry(now)
    if _ms(first) <= now_ms:
        first += timedelta(days=1)
    return [_ms(first + timedelta(days=i)) for i in range(count)]


def weekly_expiries(now_ms: int, horizon_days: float) -> list[int]:
    """Friday 08:00 UTC expiries after ``now_ms`` and within ``horizon_days`` (epoch ms)."""
    now = utc_from_ms(now_ms)
    friday = _expiry(now + timedelta(days=(4 - now.weekday()) % 7))
    out = []
    end = now_ms + horizon_days * DAY_MS
    while _ms(friday) <= end:
        if _ms(friday) > now_ms:
            out.append(_ms(friday))
        friday += timedelta(days=7)
    return out


def monthly_expiries(now_ms: int, horizon_days: float, months: tuple[int, ...] = tuple(range(1, 13))) -> list[int]:
    """Last-Friday expiries of ``months`` after ``now_ms`` and within ``horizon_days`` (epoch ms)."""
    now = utc_from_ms(now_ms)
    end = now_ms + horizon_days * DAY_MS
    out = []
    year, month = now.year, now.month
    while True:
        exp = _ms(_last_friday(year, month))
        if exp > end:
            return out
        if exp > now_ms and month in months:
            out.append(exp)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def nice_step(raw: float) -> float:
    """The smallest round strike step (1, 2, 2.5, 5 × 10^n) not below ``raw`` (USD)."""
    if not raw > 0 or not math.isfinite(raw):
        raise ValueError(f"strike step must be positive and finite, got {raw}")
    exp = math.floor(math.log10(raw))
    for mult in (*_NICE, 10.0):
        step = mult * 10.0**exp
        if step >= raw * (1 - 1e-12):
            return step
    return 10.0 ** (exp + 1)  # pragma: no cover - the loop always returns


def strike_grid(spot: float, years: float, vol: float, *, count: int = 28, min_half_width: float = 0.05,
                sd: float = 1.8) -> tuple[float, list[float]]:
    """A round strike grid around ``spot`` (USD) for an expiry ``years`` away: (step, strikes).

    The half-width in log-moneyness is ``max(min_half_width, sd·vol·√years)``, which covers deltas 0.1-0.9;
    the step is the round number that puts about ``count`` strikes in it.
    """
    half = max(min_half_width, sd * vol * math.sqrt(max(years, 0.0)))
    half = min(half, 2.0)
    lo, hi = spot * math.exp(-half), spot * math.exp(half)
    step = nice_step((hi - lo) / count)
    return step, _grid(step, lo, hi)


def _grid(step: float, lo: float, hi: float) -> list[float]:
    first = max(1, math.ceil(lo / step))
    last = math.floor(hi / step)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _strike_decimal(strike: float) -> Decimal:
    return Decimal(repr(strike)).normalize() if strike != int(strike) else Decimal(int(strike))


@dataclass
class ListingConfig:
    """How much the simulated venue lists; days are calendar days."""

    dailies: int = 2
    weekly_days: float = 28.0
    monthly_days: float = 92.0
    quarterly_days: float = 366.0
    strikes_per_expiry: int = 32
    sd: float = 1.8
    min_half_width: float = 0.05


@dataclass
class ExpiryListing:
    """One option expiry of one underlying: its strike step and the strikes listed so far (USD)."""

    expiry_ms: int
    step: float
    strikes: set[float] = field(default_factory=set)


class ListingSchedule:
    """Which instruments are listed at a given simulated time, per underlying; remembers what it listed."""

    def __init__(self, config: ListingConfig | None = None) -> None:
        self.config = config or ListingConfig()
        self._options: dict[str, dict[int, ExpiryListing]] = {}
        self._futures: dict[str, set[int]] = {}
        self._listed: dict[str, Instrument] = {}

    # -- schedule ------------------------------------------------------------------------------------
    def option_expiries(self, now_ms: int) -> list[int]:
        """Expiries (epoch ms) the schedule wants listed at ``now_ms``, sorted."""
        c = self.config
        exps = set(daily_expiries(now_ms, c.dailies))
        exps.update(weekly_expiries(now_ms, c.weekly_days))
        exps.update(monthly_expiries(now_ms, c.monthly_days))
        exps.update(monthly_expiries(now_ms, c.quarterly_days, (3, 6, 9, 12)))
        return sorted(exps)

    def future_expiries(self, now_ms: int) -> list[int]:
        """Quarterly future expiries (epoch ms) at ``now_ms``, sorted."""
        return monthly_expiries(now_ms, self.config.quarterly_days, (3, 6, 9, 12))

    # -- listing -------------------------------------------------------------------------------------
    def refresh(self, base: str, now_ms: int, spot: float, vol: float) -> list[Instrument]:
        """List what the schedule wants at ``now_ms`` for ``base`` (spot in USD, vol per 1.0); return new instruments."""
        if not (spot > 0 and math.isfinite(spot)) or not (vol > 0 and math.isfinite(vol)):
            raise ValueError(f"spot and vol must be positive and finite, got {spot}, {vol}")
        new: list[Instrument] = []
        perp = f"{base}-PERPETUAL"
        if perp not in self._listed:
            new.append(self._add(perp))
        futs = self._futures.setdefault(base, set())
        for exp in self.future_expiries(now_ms):
            if exp not in futs:
                futs.add(exp)
                new.append(self._add(f"{base}-{expiry_code(utc_from_ms(exp))}"))
        opts = self._options.setdefault(base, {})
        c = self.config
        for exp in self.option_expiries(now_ms):
            years = (exp - now_ms) / MS_PER_YEAR
            listing = opts.get(exp)
            if listing is None:
                step, strikes = strike_grid(spot, years, vol, count=c.strikes_per_expiry, sd=c.sd,
                                            min_half_width=c.min_half_width)
                listing = opts[exp] = ExpiryListing(exp, step)
            else:
                half = min(2.0, max(c.min_half_width, c.sd * vol * math.sqrt(max(years, 0.0))))
                strikes = _grid(listing.step, spot * math.exp(-half), spot * math.exp(half))
            code = expiry_code(utc_from_ms(exp))
            for k in strikes:
                if k in listing.strikes:
                    continue
                listing.strikes.add(k)
                ks = format_strike(_strike_decimal(k))
                new.append(self._add(f"{base}-{code}-{ks}-C"))
                new.append(self._add(f"{base}-{code}-{ks}-P"))
        return new

    def expire(self, now_ms: int) -> list[Instrument]:
        """Forget instruments whose expiry is at or before ``now_ms``; return them (for settlement)."""
        gone = [inst for inst in self._listed.values() if inst.expiry_ms is not None and inst.expiry_ms <= now_ms]
        for inst in gone:
            del self._listed[inst.name]
        for opts in self._options.values():
            for exp in [e for e in opts if e <= now_ms]:
                del opts[exp]
        for futs in self._futures.values():
            futs.difference_update({e for e in futs if e <= now_ms})
        return gone

    def _add(self, name: str) -> Instrument:
        inst = Instrument.parse(name)
        self._listed[name] = inst
        return inst

    # -- queries -------------------------------------------------------------------------------------
    def listed(self, base: str | None = None) -> list[Instrument]:
        """Instruments listed now (of ``base``), in listing order."""
        return [i for i in self._listed.values() if base is None or i.base == base]

    def expiries(self, base: str) -> list[int]:
        """Listed option expiries of ``base`` (epoch ms), sorted."""
        return sorted(self._options.get(base, {}))

    def strikes(self, base: str, expiry_ms: int) -> list[float]:
        """Listed strikes of one expiry (USD), sorted."""
        listing = self._options.get(base, {}).get(expiry_ms)
        return sorted(listing.strikes) if listing else []

    def count(self, base: str | None = None, kind: Kind | None = None) -> int:
        """How many instruments are listed (of ``base`` and ``kind``)."""
        return sum(1 for i in self._listed.values() if (base is None or i.base == base) and (kind is None or i.kind is kind))
