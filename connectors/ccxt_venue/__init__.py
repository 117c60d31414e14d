"""ccxt_venue package."""
