"""The fronts: the Textual TUI (ui.tui) and the Dash dashboard (ui.dash)."""
