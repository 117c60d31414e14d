"""Portfolio risk: greeks aggregation, scenario grids, stress tests, PnL attribution.

All functions take a :class:`Book` (positions as arrays) with per-position forwards (USD) and vols (per
1.00), and are vectorised over positions and scenarios.
"""

from app.risk.attribution import Attribution, attribute_pnl
from app.risk.book import Book, PositionKind
from app.risk.portfolio import (
    PositionGreeks,
    VegaBuckets,
    aggregate,
    inputs_from_surface,
    portfolio_greeks,
    position_greeks,
    settlement_values,
    vega_by_expiry,
)
from app.risk.scenarios import STRESS_SPOT_SHOCKS, STRESS_VOL_SHOCKS, ScenarioGrid, scenario_grid

__all__ = [
    "STRESS_SPOT_SHOCKS",
    "STRESS_VOL_SHOCKS",
    "Attribution",
    "Book",
    "PositionGreeks",
    "PositionKind",
    "ScenarioGrid",
    "VegaBuckets",
    "aggregate",
    "attribute_pnl",
    "inputs_from_surface",
    "portfolio_greeks",
    "position_greeks",
    "scenario_grid",
    "settlement_values",
    "vega_by_expiry",
]
