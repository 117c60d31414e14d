"""Widgets of the trader's terminal: chain, positions, margin, hedger, log, status line."""
