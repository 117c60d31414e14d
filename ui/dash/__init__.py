"""dash package."""
