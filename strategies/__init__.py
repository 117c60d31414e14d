"""Strategies: events in, intents out (the delta hedger), their runner and the backtester."""
