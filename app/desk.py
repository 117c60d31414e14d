"""Desk: wires venues, engine, strategies and storage; what every front drives (being built)."""
