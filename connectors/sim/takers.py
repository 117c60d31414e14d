"""Taker agents of the simulated venue: random liquidity-taking flow that trades against the makers.

Orders arrive as a Poisson process (``rate_per_min`` per underlying, per simulated minute). Each picks an
instrument — the perpetual, a future, or an option weighted towards short expiries and strikes near the
forward — a side (buy with probability ``buy_prob``, tilted by the last return: momentum traders) and a
size drawn log-uniformly in lots. The venue turns a :class:`TakerOrder` into an immediate-or-cancel order
at the opposite best price plus ``slippage_ticks``, so takers move the book and print trades.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.domain import Side


@dataclass(frozen=True)
class TakerParams:
    """Flow of the taker agents: arrival rate per simulated minute and per underlying, mix and sizes."""

    rate_per_min: float = 6.0
    perp_share: float = 0.4
    future_share: float = 0.1
    buy_prob: float = 0.5
    momentum: float = 20.0  # buy-probability tilt per unit log return of the last step
    option_lots: tuple[int, int] = (1, 50)
    future_lots: tuple[int, int] = (100, 5_000)
    slippage_ticks: int = 2
    moneyness_width: float = 0.15  # std of log-moneyness of the options picked

    def __post_init__(self) -> None:
        if self.rate_per_min < 0 or not 0 <= self.perp_share + self.future_share <= 1:
            raise ValueError("taker rate must be non-negative and shares must sum to at most 1")


@dataclass(frozen=True, slots=True)
class TakerOrder:
    """What a taker wants: buy or sell ``lots`` of instrument number ``index`` of its underlying's list."""

    underlying: str
    index: int
    side: Side
    lots: int


class Takers:
    """Draws taker orders per step from one seeded generator."""

    def __init__(self, params: TakerParams | None = None, seed: int = 7) -> None:
        self.params = params or TakerParams()
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def _lots(self, lo_hi: tuple[int, int]) -> int:
        lo, hi = lo_hi
        return int(math.floor(math.exp(self.rng.uniform(math.log(lo), math.log(hi + 1)))))

    def draw(self, underlying: str, dt_s: float, last_return: float, perp: int, futures: np.ndarray,
             options: np.ndarray, log_moneyness: np.ndarray, years: np.ndarray) -> list[TakerOrder]:
        """Taker orders of one underlying over ``dt_s`` seconds; indices refer to the caller's instrument list.

        ``futures``/``options`` hold instrument indices; ``log_moneyness`` and ``years`` describe the options.
        """
        return self.orders(underlying, self.arrivals(dt_s), last_return, perp, futures, options, log_moneyness, years)

    def arrivals(self, dt_s: float) -> int:
        """How many taker orders of one underlying arrive over ``dt_s`` seconds (the first draw of :meth:`draw`)."""
        return int(self.rng.poisson(self.params.rate_per_min * dt_s / 60.0))

    def orders(self, underlying: str, count: int, last_return: float, perp: int, futures: np.ndarray,
               options: np.ndarray, log_moneyness: np.ndarray, years: np.ndarray) -> list[TakerOrder]:
        """The ``count`` orders that arrived (the rest of :meth:`draw`; arguments as there)."""
        p = self.params
        out: list[TakerOrder] = []
        buy_prob = min(0.9, max(0.1, p.buy_prob + p.momentum * last_return))
        for _ in range(count):
            u = self.rng.random()
            side = Side.BUY if self.rng.random() < buy_prob else Side.SELL
            if u < p.perp_share or (len(options) == 0 and len(futures) == 0):
                out.append(TakerOrder(underlying, perp, side, self._lots(p.future_lots)))
            elif u < p.perp_share + p.future_share and len(futures):
                idx = int(futures[self.rng.integers(len(futures))])
                out.append(TakerOrder(underlying, idx, side, self._lots(p.future_lots)))
            elif len(options):
                weight = np.exp(-0.5 * (log_moneyness / p.moneyness_width) ** 2) / np.sqrt(np.maximum(years, 1e-4))
                total = weight.sum()
                if not total > 0:
                    continue
                pick = int(np.searchsorted(np.cumsum(weight), self.rng.random() * total))
                pick = min(pick, len(options) - 1)
                out.append(TakerOrder(underlying, int(options[pick]), side, self._lots(p.option_lots)))
        return out
