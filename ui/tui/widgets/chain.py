"""The option chain: calls left, strikes in the middle, puts right, updated cell by cell.

    table = ChainTable()
    table.show(chain_slice, positions={"BTC-27DEC24-60000-P": 1.0}, show_usd=False)
    table.instrument_at_cursor()        # "BTC-27DEC24-60000-C" when the cursor is on the calls side

Only changed cells are written (``DataTable.update_cell``): the table is rebuilt only when the strikes or
the columns change, so a refresh a few times a second costs a handful of cell updates, not a redraw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from app.domain import ChainRow, ChainSlice, OptionType
from app.errors import ConfigError
from ui.tui.format import DASH, fmt_coin, fmt_iv, fmt_sig, fmt_size, fmt_strike, fmt_usd


@dataclass(frozen=True)
class ChainColumn:
    """One per-side column of the chain: its id, header and how a row renders in it."""

    key: str
    label: str
    render: Callable[[ChainRow, float, bool, float], str]  # (row, forward, show_usd, position) -> text


def _price(attr: str) -> Callable[[ChainRow, float, bool, float], str]:
    def render(row: ChainRow, forward: float, usd: bool, _pos: float) -> str:
        value = getattr(row, attr)
        if value is None:
            return DASH
        return fmt_usd(value * forward, 0 if value * forward >= 100 else 2) if usd else fmt_coin(value)

    return render


def _iv(attr: str) -> Callable[[ChainRow, float, bool, float], str]:
    return lambda row, _f, _u, _p: fmt_iv(getattr(row, attr))


def _size(attr: str) -> Callable[[ChainRow, float, bool, float], str]:
    return lambda row, _f, _u, _p: fmt_size(getattr(row, attr)) if getattr(row, attr) else DASH


def _greek(attr: str, digits: int) -> Callable[[ChainRow, float, bool, float], str]:
    """Gamma (per USD), vega (per 1%) and theta (per day) in coin, or in USD at the expiry's forward, as the prices."""
    return lambda row, f, usd, _p: fmt_sig(getattr(row, attr) * (f if usd else 1.0), digits)


def _position(row: ChainRow, _f: float, _u: bool, pos: float) -> str:
    return fmt_size(pos) if pos else ""


COLUMNS: dict[str, ChainColumn] = {
    c.key: c
    for c in (
        ChainColumn("oi", "OI", _size("open_interest")),
        ChainColumn("theta", "Θ", _greek("theta", 3)),
        ChainColumn("vega", "Vega", _greek("vega", 3)),
        ChainColumn("gamma", "Γ", _greek("gamma", 3)),
        ChainColumn("delta", "Δ", lambda r, _f, _u, _p: f"{r.delta:+.2f}"),
        ChainColumn("bid_size", "Size", _size("bid_size")),
        ChainColumn("bid_iv", "IV", _iv("bid_iv")),
        ChainColumn("bid", "Bid", _price("bid")),
        ChainColumn("mark", "Mark", _price("mark")),
        ChainColumn("ask", "Ask", _price("ask")),
        ChainColumn("ask_iv", "IV", _iv("ask_iv")),
        ChainColumn("ask_size", "Size", _size("ask_size")),
        ChainColumn("pos", "Pos", _position),
    )
}
"""Every column a chain side can show, in the order the puts side shows them (calls mirror the greeks)."""

QUOTE_ORDER = ("bid_size", "bid_iv", "bid", "mark", "ask", "ask_iv", "ask_size")
GREEK_ORDER = ("delta", "gamma", "vega", "theta", "oi")
COMPACT_COLUMNS: tuple[str, ...] = ("pos", "bid_iv", "bid", "mark", "ask", "ask_iv", "delta")
FULL_COLUMNS: tuple[str, ...] = ("pos", *QUOTE_ORDER, *GREEK_ORDER)


def check_columns(columns: Sequence[str]) -> tuple[str, ...]:
    """Validate a configured column list (``[ui] chain_columns``); raise ConfigError on an unknown id."""
    for col in columns:
        if col not in COLUMNS:
            raise ConfigError(
                f"ui.chain_columns: unknown column {col!r} (known: {', '.join(COLUMNS)})", key="ui.chain_columns"
            )
    return tuple(columns)


def side_columns(columns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Column order of the calls side and the puts side: quotes next to the strike, greeks outside."""
    chosen = set(columns)
    put_side = [c for c in ("pos", *QUOTE_ORDER, *GREEK_ORDER) if c in chosen]
    quotes = [c for c in ("pos", *QUOTE_ORDER) if c in chosen]
    greeks = [c for c in GREEK_ORDER if c in chosen]
    # Calls read right-to-left from the strike for greeks and position, like Deribit's board.
    call_side = list(reversed(greeks)) + [c for c in quotes if c != "pos"] + (["pos"] if "pos" in chosen else [])
    return call_side, put_side


STRIKE_KEY = "strike"


class ChainTable(DataTable):
    """Calls | strike | puts for one expiry; ATM strike highlighted, in-the-money side shaded."""

    HELP = """\
## Option chain
Calls on the left, puts on the right, strikes in the middle. The **ATM** strike is highlighted and the
forward is in the line above; in-the-money cells are shaded. Move with the arrow keys: the side of the
cursor (calls or puts) picks the option.

- **b** / **s** or **Enter**: order ticket to buy / sell the option under the cursor
- **[** / **]**: previous / next expiry, **m**: next monthly, **x**: next underlying
- **a**: go to the ATM strike, **d**: go to a delta (e.g. `-0.25` for the 25-delta put)
- **c**: compact / full columns (sizes, gamma, vega, theta, open interest), **u**: prices in coin or USD
"""

    BINDINGS = [Binding("enter", "ticket('buy')", "Buy", show=False)]

    def __init__(self, columns: Sequence[str] = COMPACT_COLUMNS, **kwargs: object) -> None:
        super().__init__(cursor_type="cell", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self.columns_shown: tuple[str, ...] = check_columns(columns)
        self._structure: tuple[object, ...] | None = None
        self._cells: dict[tuple[str, str], Text] = {}
        self._rows: dict[tuple[float, OptionType], ChainRow] = {}
        self._strikes: list[float] = []
        self.slice: ChainSlice | None = None
        self.itm_style = "on #2a3140"
        self.atm_style = "bold reverse"

    # -- data -------------------------------------------------------------------------------------
    def show(self, chain: ChainSlice, positions: Mapping[str, float] | None = None, *, show_usd: bool = False) -> int:
        """Display ``chain``; returns the number of cells written (0 when nothing changed)."""
        positions = positions or {}
        self.slice = chain
        self._rows = {(row.strike, row.option_type): row for row in chain.rows}
        strikes = sorted({row.strike for row in chain.rows})
        calls, puts = side_columns(self.columns_shown)
        structure = (chain.underlying, chain.expiry_ms, tuple(strikes), tuple(calls), tuple(puts))
        if structure != self._structure:
            # Keep the trader's place: the same strike (nearest) on a new expiry, the ATM on a new underlying.
            old_strike = self._strikes[self.cursor_row] if self._strikes and self.cursor_row < len(self._strikes) else None
            same_underlying = self._structure is not None and self._structure[0] == chain.underlying
            side = self._side_at_cursor()
            self._rebuild(strikes, calls, puts)
            self._structure = structure
            target = old_strike if same_underlying and old_strike is not None else chain.atm_strike
            if strikes:
                self.move_to(min(strikes, key=lambda k: abs(k - target)), side)
        written = 0
        for strike in strikes:
            rkey = fmt_strike(strike)
            for side, cols, otype in (("c", calls, OptionType.CALL), ("p", puts, OptionType.PUT)):
                row = self._rows.get((strike, otype))
                itm = strike < chain.forward if otype is OptionType.CALL else strike > chain.forward
                style = self.itm_style if itm else ""
                for col in cols:
                    if row is None:
                        text = Text("")
                    else:
                        pos = positions.get(row.instrument, 0.0)
                        text = Text(COLUMNS[col].render(row, chain.forward, show_usd, pos), style=style, justify="right")
                        if col == "pos" and pos:
                            text.stylize("bold green" if pos > 0 else "bold red")
                    written += self._set(rkey, f"{side}_{col}", text)
            style = self.atm_style if strike == chain.atm_strike else "bold"
            written += self._set(rkey, STRIKE_KEY, Text(fmt_strike(strike), style=style, justify="center"))
        return written

    def _set(self, row_key: str, col_key: str, text: Text) -> int:
        key = (row_key, col_key)
        old = self._cells.get(key)
        if old is not None and old.plain == text.plain and old.style == text.style and old.spans == text.spans:
            return 0
        self._cells[key] = text
        self.update_cell(row_key, col_key, text, update_width=True)
        return 1

    def _rebuild(self, strikes: list[float], calls: list[str], puts: list[str]) -> None:
        cursor = self.cursor_coordinate
        self.clear(columns=True)
        self._cells.clear()
        for col in calls:
            self.add_column(COLUMNS[col].label, key=f"c_{col}")
        self.add_column("Strike", key=STRIKE_KEY)
        for col in puts:
            self.add_column(COLUMNS[col].label, key=f"p_{col}")
        for strike in strikes:
            rkey = fmt_strike(strike)
            self.add_row(*[""] * (len(calls) + len(puts) + 1), key=rkey)
            for col_key in [f"c_{c}" for c in calls] + [STRIKE_KEY] + [f"p_{c}" for c in puts]:
                self._cells[(rkey, col_key)] = Text("")
        self._strikes = strikes
        if self.row_count and cursor is not None:
            self.cursor_coordinate = self.validate_cursor_coordinate(cursor)

    # -- navigation -------------------------------------------------------------------------------
    @property
    def strikes(self) -> list[float]:
        """Strikes shown, ascending."""
        return list(self._strikes)

    def _side_at_cursor(self) -> OptionType:
        col_key = self.ordered_columns[self.cursor_column].key.value if self.columns else STRIKE_KEY
        return OptionType.PUT if str(col_key).startswith("p_") else OptionType.CALL

    def row_at_cursor(self) -> ChainRow | None:
        """The chain row under the cursor (the call on the left side and the strike column, else the put)."""
        if not self._strikes or self.cursor_row >= len(self._strikes):
            return None
        return self._rows.get((self._strikes[self.cursor_row], self._side_at_cursor()))

    def instrument_at_cursor(self) -> str | None:
        """Instrument name under the cursor, or None on an empty chain."""
        row = self.row_at_cursor()
        return row.instrument if row else None

    def move_to(self, strike: float, option_type: OptionType) -> None:
        """Put the cursor on the mark of ``strike``'s call or put."""
        if strike not in self._strikes:
            return
        side = "c" if option_type is OptionType.CALL else "p"
        col_keys = [c.key.value for c in self.ordered_columns]
        target = f"{side}_mark" if f"{side}_mark" in col_keys else next(
            (k for k in col_keys if str(k).startswith(side + "_")), STRIKE_KEY
        )
        self.cursor_coordinate = self.cursor_coordinate._replace(
            row=self._strikes.index(strike), column=col_keys.index(target)
        )

    def goto_atm(self) -> None:
        """Cursor to the ATM strike, keeping the side."""
        if self.slice is not None:
            self.move_to(self.slice.atm_strike, self._side_at_cursor())

    def nearest_delta(self, target: float) -> ChainRow | None:
        """The option whose delta is closest to ``target`` (negative targets look among puts)."""
        otype = OptionType.PUT if target < 0 else OptionType.CALL
        rows = [r for (_, t), r in self._rows.items() if t is otype]
        return min(rows, key=lambda r: abs(r.delta - target), default=None)
