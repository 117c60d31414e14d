"""Pricing and volatility: Black-76 / BSM greeks, inverse options, implied vols, SVI surfaces.

Everything is vectorised over broadcastable numpy arrays of floats; ``t`` in years (365 days), vols per 1.00
(0.55 = 55%), rates continuously compounded per year. USD view by default; :func:`inverse_greeks` gives the
coin view of inverse (coin-settled) options.
"""

from app.pricing.black import as_is_call, black76, black76_price, bsm, deribit_theta, inverse_greeks
from app.pricing.greeks import DAYS_PER_YEAR, Greeks, InverseGreeks, theta_per_day, vega_per_pct
from app.pricing.implied import IVReason, implied_vol, implied_vol_coin, implied_vol_reasons

__all__ = [
    "DAYS_PER_YEAR",
    "Greeks",
    "IVReason",
    "InverseGreeks",
    "as_is_call",
    "black76",
    "black76_price",
    "bsm",
    "deribit_theta",
    "implied_vol",
    "implied_vol_coin",
    "implied_vol_reasons",
    "inverse_greeks",
    "theta_per_day",
    "vega_per_pct",
]
