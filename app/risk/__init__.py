"""Portfolio risk: greeks aggregation, scenario grids, stress tests, PnL attribution."""
