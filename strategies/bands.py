"""Band rules of the delta hedger: fixed, time-based and Whalley–Wilmott, as pure functions.

A band is a pair of delta levels ``[lower, upper]`` around the target; deltas and widths are in the
hedger's delta unit (coin or USD). See ``shared/reference/pricing.md`` §7.3 for Whalley–Wilmott.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from strategies.hedger_config import BandConfig


def ww_half_width(gamma: float, spot: float, cost: float, risk_aversion: float, tau_years: float = 0.0, rate: float = 0.0) -> float:
    """Whalley–Wilmott half width H = (3·e^{-rτ}·λ·S·Γ² / (2γ))^{1/3}, in coin of delta.

    ``gamma``: portfolio gamma in coin of delta per USD; ``spot`` in USD; ``cost`` λ one-way fraction;
    ``risk_aversion`` γ in 1/USD.
    """
    if not (math.isfinite(gamma) and math.isfinite(spot)) or spot <= 0 or risk_aversion <= 0 or cost <= 0:
        return 0.0
    disc = math.exp(-rate * tau_years) if tau_years > 0 else 1.0
    return (3.0 * disc * cost * spot * gamma * gamma / (2.0 * risk_aversion)) ** (1.0 / 3.0)


@dataclass(frozen=True, slots=True)
class Band:
    """Delta levels of a band and the inner band of the time rule; ``half_width`` for WW (delta units)."""

    lower: float
    upper: float
    inner_lower: float
    inner_upper: float
    rule: str
    half_width: float = 0.0
    cost: float = 0.0

    def outside(self, delta: float) -> bool:
        """True when ``delta`` is outside the (outer) band."""
        return delta > self.upper or delta < self.lower

    def outside_inner(self, delta: float) -> bool:
        """True when ``delta`` is outside the inner band (time rule)."""
        return delta > self.inner_upper or delta < self.inner_lower


def make_band(cfg: BandConfig, target: float, *, gamma_coin: float, spot: float, cost: float, unit: str) -> Band:
    """The band for the current book: fixed levels, or WW half width from gamma, spot and cost (delta units)."""
    if cfg.rule == "whalley_wilmott":
        h = ww_half_width(abs(gamma_coin), spot, cost, cfg.risk_aversion)
        if unit == "usd":
            h *= spot
        h = max(h, cfg.min_width)
        if cfg.max_width is not None:
            h = min(h, cfg.max_width)
        return Band(target - h, target + h, target - h, target + h, cfg.rule, h, cost)
    inner_lo = target - cfg.inner_lower if cfg.rule == "time" else target - cfg.lower
    inner_hi = target + cfg.inner_upper if cfg.rule == "time" else target + cfg.upper
    return Band(target - cfg.lower, target + cfg.upper, inner_lo, inner_hi, cfg.rule, 0.0, cost)


def hedge_size(delta: float, band: Band, target: float, ratio: float, to: str) -> float:
    """Delta to trade (signed, delta units): back to ``target`` or to the nearest band edge, times ``ratio``."""
    if to == "edge":
        if delta > band.upper:
            goal = band.upper
        elif delta < band.lower:
            goal = band.lower
        else:
            return 0.0
    else:
        goal = target
    return (goal - delta) * ratio
