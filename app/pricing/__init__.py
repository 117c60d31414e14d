"""Pricing and volatility: Black-76 / BSM greeks, inverse options, implied vols, SVI surfaces."""
