"""Greeks containers and the unit conversions traders read (vega per 1%, theta per day)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

DAYS_PER_YEAR = 365.0
"""Calendar days in a pricing year (t is in 365-day years everywhere in the desk)."""


@dataclass(frozen=True, slots=True)
class Greeks:
    """Price and sensitivities as arrays of the broadcast input shape.

    Units (USD view, per unit of underlying): ``price`` in USD; ``delta`` ∂V/∂F (or ∂V/∂S); ``gamma``
    ∂²V/∂F² per USD; ``vega`` ∂V/∂σ per 1.00 of vol; ``theta`` ∂V/∂t per year of calendar time (the
    forward or spot held fixed; negative for a long option at zero rates); ``rho`` ∂V/∂r per 1.00 of rate.
    """

    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    rho: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        """The fields by name (for DataFrames and JSON)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class InverseGreeks(Greeks):
    """Greeks of an inverse (coin-settled) option in coin, per 1 coin of notional.

    ``price`` = V_usd/F in coin; ``delta`` = Δ_BS − price (Deribit's premium-adjusted "net transaction"
    delta, in coin = F·∂price/∂F); ``gamma`` = ∂delta/∂F in coin per USD; ``vega`` = vega_usd/F in coin per
    1.00 of vol; ``theta`` = theta_usd/F in coin per year; ``rho`` = rho_usd/F in coin per 1.00 of rate.
    ``delta_bs`` and ``gamma_bs`` are the plain Black-76 delta (dimensionless) and gamma (per USD),
    which Deribit shows per instrument.
    """

    delta_bs: np.ndarray = None  # type: ignore[assignment]
    gamma_bs: np.ndarray = None  # type: ignore[assignment]


def vega_per_pct(vega: np.ndarray | float) -> np.ndarray:
    """Vega per 1.00 of vol → vega per 1 vol point (1%); same currency as the input."""
    return np.asarray(vega, dtype=float) * 0.01


def theta_per_day(theta: np.ndarray | float, days_per_year: float = DAYS_PER_YEAR) -> np.ndarray:
    """Theta per year (∂V/∂t) → theta per calendar day; same currency as the input."""
    return np.asarray(theta, dtype=float) / days_per_year
