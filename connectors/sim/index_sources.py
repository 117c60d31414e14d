"""Simulated spot venues that feed the index: each with its own bias, noise, outages and rare bad prints.

A source's price is the model spot times ``(1 + bias + noise)``; the bias is a slow mean-reverting premium
(a venue trading rich or cheap), the noise is per observation. Outages start at ``outage_rate`` per simulated
hour and last ``outage_mean_s`` on average: during one the source keeps reporting its last price, flagged
stale, which the oracle must drop. With probability ``bad_print_prob`` an observation is an outlier
(±``bad_print_size``), which the oracle's deviation guard must clamp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.domain import IndexPrice

DEFAULT_VENUES: tuple[str, ...] = ("binance", "coinbase", "kraken", "okx", "bitstamp", "bybit")


@dataclass(frozen=True)
class SourceParams:
    """Behaviour of the simulated spot venues (fractions of price, rates per simulated hour)."""

    bias_std: float = 0.0004
    bias_halflife_s: float = 600.0
    noise_std: float = 0.0001
    outage_rate: float = 0.05
    outage_mean_s: float = 120.0
    bad_print_prob: float = 0.0005
    bad_print_size: float = 0.03


class IndexSources:
    """Several simulated spot venues per underlying; :meth:`observe` returns one IndexPrice per venue."""

    def __init__(self, underlyings: tuple[str, ...], venues: tuple[str, ...] = DEFAULT_VENUES,
                 params: SourceParams | None = None, seed: int = 7) -> None:
        if not venues:
            raise ValueError("at least one index source is needed")
        self.underlyings = underlyings
        self.venues = venues
        self.params = params or SourceParams()
        self.rng = np.random.Generator(np.random.PCG64(seed))
        shape = (len(underlyings), len(venues))
        self.bias = self.rng.normal(0.0, self.params.bias_std, shape)
        self.down_until = np.zeros(shape, dtype=np.int64)  # epoch ms until which a source is out
        self.last = np.full(shape, np.nan)
        self.last_ts = np.zeros(shape, dtype=np.int64)
        self.outages = 0
        self.bad_prints = 0

    def observe(self, now_ms: int, spots: np.ndarray, dt_s: float) -> list[IndexPrice]:
        """Advance the sources by ``dt_s`` seconds and observe them at ``now_ms`` given model ``spots`` (USD)."""
        return [IndexPrice(ts=ts, index=index, price=price, source=venue, stale=stale)
                for index, venue, price, ts, stale in self.observe_raw(now_ms, spots, dt_s)]

    def observe_raw(self, now_ms: int, spots: np.ndarray, dt_s: float) -> list[tuple[str, str, float, int, bool]]:
        """:meth:`observe` as (index, venue, price USD, ts ms, stale) tuples (the simulated venue's every step)."""
        p = self.params
        shape = self.bias.shape
        decay = math.exp(-math.log(2.0) * dt_s / p.bias_halflife_s)
        shock = self.rng.standard_normal(shape)
        noise = self.rng.standard_normal(shape)
        u_out = self.rng.random(shape)
        u_len = self.rng.exponential(p.outage_mean_s, shape)
        u_bad = self.rng.random(shape)
        sign = np.where(self.rng.random(shape) < 0.5, -1.0, 1.0)
        self.bias = self.bias * decay + p.bias_std * math.sqrt(max(0.0, 1.0 - decay * decay)) * shock
        up = self.down_until <= now_ms
        starts = up & (u_out < p.outage_rate * dt_s / 3600.0)
        self.down_until = np.where(starts, now_ms + (u_len * 1000.0).astype(np.int64), self.down_until)
        self.outages += int(starts.sum())
        live = self.down_until <= now_ms
        bad = live & (u_bad < p.bad_print_prob)
        self.bad_prints += int(bad.sum())
        price = spots[:, None] * (1.0 + self.bias + p.noise_std * noise + bad * sign * p.bad_print_size)
        self.last = np.where(live, price, self.last)
        self.last_ts = np.where(live, now_ms, self.last_ts)
        out: list[tuple[str, str, float, int, bool]] = []
        lasts, stamps, lives = self.last.tolist(), self.last_ts.tolist(), live.tolist()
        for i, und in enumerate(self.underlyings):
            index = f"{und.lower()}_usd"
            last, stamp, up_now = lasts[i], stamps[i], lives[i]
            for j, venue in enumerate(self.venues):
                if math.isnan(last[j]):
                    continue
                out.append((index, venue, last[j], stamp[j], not up_now[j]))
        return out

    def live_count(self, now_ms: int) -> int:
        """How many (underlying, venue) sources are up at ``now_ms``."""
        return int((self.down_until <= now_ms).sum())
