"""Positions grouped by underlying and expiry with totals, portfolio greeks, and vega by tenor bucket.

    pane = PositionsPane()
    pane.update_view(snapshot, show_usd=False)

Deltas are shown premium-adjusted (what an inverse option really exposes, in coin) and Black-Scholes
(the textbook delta), plus the USD delta; gamma, vega and theta follow the coin/USD toggle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from app.domain import DeskSnapshot, GreeksView, Instrument, PositionView
from app.errors import InvalidInstrument
from ui.tui.format import (
    TENOR_BUCKETS,
    expiry_label,
    fmt_coin,
    fmt_money,
    fmt_sig,
    fmt_signed,
    fmt_size,
    fmt_usd,
    tenor_bucket,
)
from ui.tui.keymap import POSITION_BINDINGS
from ui.tui.widgets.cells import IncrementalTable

POSITION_COLUMNS = (
    ("inst", "Instrument"),
    ("size", "Size"),
    ("avg", "Avg"),
    ("mark", "Mark"),
    ("pnl", "PnL"),
    ("pnl_usd", "PnL $"),
    ("rpnl", "Realised"),
    ("funding", "Funding"),
    ("delta", "Δ (prem-adj)"),
    ("delta_bs", "Δ BS"),
    ("delta_usd", "Δ $"),
    ("gamma", "Γ"),
    ("vega", "Vega 1%"),
    ("theta", "Θ /day"),
)


def sum_greeks(views: Iterable[GreeksView]) -> GreeksView:
    """Component-wise sum of greeks (coin and USD)."""
    fields = ("delta", "delta_bs", "gamma", "vega", "theta", "delta_usd", "gamma_usd", "vega_usd", "theta_usd")
    totals = dict.fromkeys(fields, 0.0)
    for g in views:
        for f in fields:
            totals[f] += getattr(g, f)
    return GreeksView(**totals)


def group_key(p: PositionView) -> tuple[str, int]:
    """Sort/group key of a position: underlying, then expiry (perpetuals last)."""
    underlying = p.underlying or p.instrument.split("-")[0].split("_")[0]
    return underlying, p.expiry_ms if p.expiry_ms is not None else 2**62


def _greek_cells(g: GreeksView, usd: bool) -> dict[str, Text | str]:
    return {
        "delta": Text(fmt_signed(g.delta), justify="right"),
        "delta_bs": Text(fmt_signed(g.delta_bs), justify="right"),
        "delta_usd": Text(fmt_usd(g.delta_usd, 0), justify="right"),
        "gamma": Text(fmt_sig(g.gamma_usd if usd else g.gamma, 3), justify="right"),
        "vega": Text(fmt_usd(g.vega_usd) if usd else fmt_sig(g.vega, 3), justify="right"),
        "theta": Text(fmt_usd(g.theta_usd) if usd else fmt_sig(g.theta, 3), justify="right"),
    }


def _pnl_text(value: float, text: str) -> Text:
    return Text(text, style="green" if value > 0 else "red" if value < 0 else "", justify="right")


class PositionsTable(IncrementalTable):
    """One row per position, a header and a total row per underlying & expiry group."""

    BINDINGS = POSITION_BINDINGS

    HELP = """\
## Positions
Grouped by underlying and expiry, with a total per group. **PnL** (unrealised) is in the settlement coin, **PnL $**
in USD. **Realised**: what closing trades realised, plus funding, minus fees (settlement coin, since the desk started);
**Funding**: what a perpetual received (negative: paid), already in Realised.
**Δ (prem-adj)** is the premium-adjusted delta in coin (what an inverse option exposes), **Δ BS** the
Black-Scholes delta, **Δ $** the delta in USD. **u** shows gamma, vega (per 1% vol) and theta (per day) in USD.
**b** / **s**: ticket to add to / reduce the position under the cursor.
"""

    def show(self, snap: DeskSnapshot, *, show_usd: bool) -> int:
        """Display the positions of ``snap``; returns cells written."""
        groups: dict[tuple[str, int], list[PositionView]] = defaultdict(list)
        for p in sorted(snap.positions, key=lambda p: (group_key(p), p.instrument)):
            groups[group_key(p)].append(p)
        rows: list[str] = []
        for (underlying, exp), members in groups.items():
            rows.append(f"g|{underlying}|{exp}")
            rows.extend(p.instrument for p in members)
            rows.append(f"t|{underlying}|{exp}")
        self.set_layout(POSITION_COLUMNS, rows)
        written = 0
        for (underlying, exp), members in groups.items():
            label = f"{underlying} · {expiry_label(None if exp == 2**62 else exp)}"
            written += self.set_cell(f"g|{underlying}|{exp}", "inst", Text(label, style="bold underline"))
            for p in members:
                cells: dict[str, Text | str] = {
                    "inst": p.instrument,
                    "size": Text(fmt_size(p.size, _lot(p.instrument)), style="green" if p.size > 0 else "red",
                                 justify="right"),
                    "avg": Text(_fmt_price(p.instrument, p.average_price), justify="right"),
                    "mark": Text(_fmt_price(p.instrument, p.mark), justify="right"),
                    "pnl": _pnl_text(p.pnl, fmt_signed(p.pnl)),
                    "pnl_usd": _pnl_text(p.pnl_usd, fmt_usd(p.pnl_usd)),
                    "rpnl": _pnl_text(p.net_realized, fmt_signed(p.net_realized)),
                    "funding": _pnl_text(p.funding, fmt_signed(p.funding, 6)) if p.expiry_ms is None else "",
                    **_greek_cells(p.greeks, show_usd),
                }
                written += self.set_row(p.instrument, cells)
            total = sum_greeks(p.greeks for p in members)
            pnl = sum(p.pnl for p in members)
            pnl_usd = sum(p.pnl_usd for p in members)
            rpnl = sum(p.net_realized for p in members)
            cells = {
                "inst": Text("  total", style="italic"),
                "pnl": _pnl_text(pnl, fmt_signed(pnl)),
                "pnl_usd": _pnl_text(pnl_usd, fmt_usd(pnl_usd)),
                "rpnl": _pnl_text(rpnl, fmt_signed(rpnl)),
                **_greek_cells(total, show_usd),
            }
            written += self.set_row(f"t|{underlying}|{exp}", cells)
        return written

    def instrument_at_cursor(self) -> str | None:
        """Instrument of the position row under the cursor (None on header/total rows)."""
        key = self.key_at_cursor()
        return None if key is None or "|" in key else key


def _lot(instrument: str) -> Decimal | None:
    # The instrument's minimum amount sets the decimals a size needs (0.1 BTC options, 1 ETH ...).
    try:
        return Instrument.parse(instrument).min_amount
    except InvalidInstrument:
        return None


def _fmt_price(instrument: str, price: float) -> str:
    # Options quote in coin; perpetuals and futures in USD.
    parts = instrument.split("-")
    return fmt_coin(price) if len(parts) == 4 else fmt_usd(price)


class VegaBuckets(IncrementalTable):
    """Vega per underlying and tenor bucket (<7d, 7-30d, 30-90d, >90d), coin and USD."""

    def show(self, snap: DeskSnapshot) -> int:
        """Display the vega buckets of ``snap``; returns cells written."""
        buckets: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
        for p in snap.positions:
            if p.expiry_ms is None:
                continue
            b = buckets[(group_key(p)[0], tenor_bucket(p.expiry_ms, snap.ts))]
            b[0] += p.greeks.vega
            b[1] += p.greeks.vega_usd
        underlyings = sorted({u for u, _ in buckets})
        cols = [("u", "Vega 1%")] + [(b, b) for b in TENOR_BUCKETS]
        self.set_layout(cols, [f"{u}|{unit}" for u in underlyings for unit in ("coin", "usd")])
        written = 0
        for u in underlyings:
            for unit, idx in (("coin", 0), ("usd", 1)):
                cells: dict[str, Text | str] = {"u": f"{u} ({u if unit == 'coin' else 'USD'})"}
                for b in TENOR_BUCKETS:
                    v = buckets.get((u, b), [0.0, 0.0])[idx]
                    cells[b] = Text(fmt_usd(v) if idx else fmt_sig(v, 3), justify="right")
                written += self.set_row(f"{u}|{unit}", cells)
        return written


class PositionsPane(Vertical):
    """Portfolio greeks line, the positions table and the vega buckets."""

    HELP = PositionsTable.HELP

    def compose(self) -> ComposeResult:
        yield Static("", id="portfolio")
        yield PositionsTable(id="positions-table")
        yield Static("[b]Vega by expiry bucket[/b]", classes="section")
        yield VegaBuckets(id="vega-buckets", cursor_type="none")

    def update_view(self, snap: DeskSnapshot, *, show_usd: bool) -> int:
        """Display ``snap``'s positions and portfolio totals."""
        lines = []
        for u, g in sorted(snap.portfolio.items()):
            if not any((g.delta, g.delta_bs, g.gamma, g.vega, g.theta)):
                continue  # nothing held in this underlying
            lines.append(
                f"[b]{u}[/b]  Δ {fmt_signed(g.delta)} {u} (BS {fmt_signed(g.delta_bs)}, {fmt_money(g.delta_usd, 0)})"
                f"   Γ {fmt_sig(g.gamma, 3)}   vega {fmt_sig(g.vega, 3)} {u} ({fmt_money(g.vega_usd)})"
                f"   Θ {fmt_sig(g.theta, 3)} {u}/day ({fmt_money(g.theta_usd)})"
            )
        if not snap.positions:
            lines.append("no positions — open the chain (1) and press b on an option to buy it")
        self.query_one("#portfolio", Static).update("\n".join(lines))
        n = self.query_one(PositionsTable).show(snap, show_usd=show_usd)
        return n + self.query_one(VegaBuckets).show(snap)
