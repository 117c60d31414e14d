"""A DataTable that writes only the cells whose text changed (Textual slows down on full redraws).

    table = IncrementalTable()
    table.set_layout([("inst", "Instrument"), ("size", "Size")], ["BTC-PERPETUAL"])
    table.set_cell("BTC-PERPETUAL", "size", Text("100"))   # 1 (written)
    table.set_cell("BTC-PERPETUAL", "size", Text("100"))   # 0 (unchanged, skipped)
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable


class IncrementalTable(DataTable):
    """DataTable with a cache of the rendered cells, rebuilt only when its rows or columns change."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("cursor_type", "row")
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._layout: tuple[tuple[tuple[str, str], ...], tuple[str, ...]] | None = None
        self._cells: dict[tuple[str, str], Text] = {}

    def set_layout(self, columns: Sequence[tuple[str, str]], rows: Sequence[str]) -> bool:
        """Make the table have exactly these ``(key, label)`` columns and row keys; True when it was rebuilt."""
        layout = (tuple(columns), tuple(rows))
        if layout == self._layout:
            return False
        cursor_row = self.cursor_row
        self.clear(columns=True)
        self._cells.clear()
        for key, label in columns:
            self.add_column(label, key=key)
        for row in rows:
            self.add_row(*[""] * len(columns), key=row)
        self._layout = layout
        if rows:
            self.move_cursor(row=min(cursor_row, len(rows) - 1), animate=False)
        return True

    def set_cell(self, row: str, col: str, text: Text | str) -> int:
        """Write one cell if its text or style changed; returns 1 when written, else 0."""
        if isinstance(text, str):
            text = Text(text)
        old = self._cells.get((row, col))
        if old is not None and old.plain == text.plain and old.style == text.style and old.spans == text.spans:
            return 0
        self._cells[(row, col)] = text
        self.update_cell(row, col, text, update_width=True)
        return 1

    def set_row(self, row: str, values: dict[str, Text | str]) -> int:
        """Write several cells of one row; returns how many changed."""
        return sum(self.set_cell(row, col, text) for col, text in values.items())

    @property
    def row_keys(self) -> tuple[str, ...]:
        """The row keys of the current layout."""
        return self._layout[1] if self._layout else ()

    def key_at_cursor(self) -> str | None:
        """Row key under the cursor."""
        keys = self.row_keys
        return keys[self.cursor_row] if keys and 0 <= self.cursor_row < len(keys) else None
