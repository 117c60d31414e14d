"""deltadesk: a local trading desk for crypto derivatives (core and composition root)."""

__version__ = "0.1.0"
