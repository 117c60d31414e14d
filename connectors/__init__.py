"""The outside world (venues, chains, the simulated market, replay), translated into app.domain at the edge."""
