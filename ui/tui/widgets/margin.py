"""Margin health per settlement currency: figures, usage bars coloured by alert level, distance to
liquidation, the portfolio-margin worst scenario, and a spot × vol stress table.

    card = MarginCard("BTC")
    card.show(report, stress={(-0.1, 0.0): -0.42, ...}, alert_levels=(0.5, 0.8, 1.0))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from app.domain import MarginReport
from ui.tui.format import DASH, fmt_coin, fmt_pct, fmt_signed, is_unknown
from ui.tui.widgets.cells import IncrementalTable

SPOT_MOVES = (-0.30, -0.20, -0.10, -0.05, 0.05, 0.10, 0.20, 0.30)
"""Spot moves of the stress table (fractions)."""
VOL_MOVES = (-0.10, 0.0, 0.10)
"""Vol moves of the stress table (absolute, 0.10 = 10 vol points)."""


def level_style(usage: float, alert_levels: Sequence[float]) -> str:
    """Colour of a usage figure: green below the first alert level, yellow below the second, red above."""
    levels = sorted(alert_levels) or [0.5, 0.8, 1.0]
    if usage < levels[0]:
        return "green"
    if len(levels) < 2 or usage < levels[1]:
        return "yellow"
    return "bold red"


def usage_bar(label: str, usage: float, alert_levels: Sequence[float], width: int = 30) -> Text:
    """A one-line bar ``IM  ████░░░░  38.2%`` coloured by alert level (usage as a fraction of balance; NaN: unknown)."""
    text = Text(f"{label:<3} ")
    if is_unknown(usage):  # a stored run that did not keep it: an empty bar, not a 0% one
        text.append("░" * width, style="dim")
        text.append(f" {DASH:>7}", style="dim")
        return text
    filled = max(0, min(width, round(usage * width))) if math.isfinite(usage) else width
    style = level_style(usage, alert_levels)
    text.append("█" * filled, style=style)
    text.append("░" * (width - filled), style="dim")
    text.append(f" {usage * 100:6.1f}%", style=style)
    return text


def fmt_distance(distance: float | None) -> str:
    """A distance to liquidation (spot move fraction): None is none within range, NaN unknown (``—``)."""
    return "none within range" if distance is None else fmt_pct(distance)


def model_text(report: MarginReport) -> str:
    """``portfolio margin`` / ``standard margin``, or ``margin model unknown`` for a stored row that did not keep it."""
    if (report.details or {}).get("model_known") is False:
        return "margin model unknown"
    return f"{'portfolio' if report.model == 'pm' else 'standard'} margin"


def pm_worst_loss(report: MarginReport) -> float | None:
    """The portfolio-margin worst-case scenario loss (coin) from the report's simulator details, if present."""
    try:
        value = report.details["pm"]["initial_margin_details"]["risk_matrix_margin_details"]["worst_case"]
    except (KeyError, TypeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


class StressTable(IncrementalTable):
    """PnL in coin of the portfolio under spot moves (rows) and vol moves (columns)."""

    def show(self, stress: Mapping[tuple[float, float], float], currency: str) -> int:
        """Display ``{(spot_move, vol_move): pnl_coin}``; returns cells written."""
        vols = sorted({v for _, v in stress}) or list(VOL_MOVES)
        spots = sorted({s for s, _ in stress}) or list(SPOT_MOVES)
        cols = [("spot", "Spot")] + [(f"v{v:+.2f}", "vol flat" if v == 0 else f"vol {v * 100:+.0f}") for v in vols]
        if self.set_layout(cols, [f"{s:+.2f}" for s in spots]):
            # Sized from its rows, not from ``height: auto``: auto waits for the table to measure itself when idle,
            # and a table shown (display on) with new rows in the same update could stay laid out 0 lines high.
            self.styles.height = len(spots) + (self.header_height if self.show_header else 0)
        written = 0
        for s in spots:
            cells: dict[str, Text | str] = {"spot": Text(fmt_pct(s, 0), justify="right")}
            for v in vols:
                pnl = stress.get((s, v))
                style = "" if pnl is None else "green" if pnl > 0 else "red" if pnl < 0 else ""
                cells[f"v{v:+.2f}"] = Text(fmt_signed(pnl) + f" {currency}" if pnl is not None else "—", style=style,
                                           justify="right")
            written += self.set_row(f"{s:+.2f}", cells)
        return written


class MarginCard(Vertical):
    """One currency's margin health."""

    HELP = """\
## Margin health
Per settlement currency: **equity**, **initial** and **maintenance margin**, usage bars (green / yellow /
red at the configured alert levels), **available funds**, and the spot move that would bring maintenance
margin to the margin balance (**distance to liquidation**). Under portfolio margin the worst scenario and
its bucket are shown. The stress table revalues the portfolio for spot ±5/10/20/30% with vol down / flat / up.
"""

    def __init__(self, currency: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.currency = currency
        self._composed = False
        self._pending: tuple[MarginReport, Mapping[tuple[float, float], float] | None, Sequence[float]] | None = None

    def compose(self) -> ComposeResult:
        yield Static("", classes="margin-figures")
        yield Static("", classes="margin-bars")
        yield Static("", classes="margin-distance")
        yield StressTable(cursor_type="none", classes="stress")

    def on_mount(self) -> None:
        # Mount comes after compose: the parts exist now. Draw what a refresh handed over while they did not.
        self._composed = True
        if self._pending is not None:
            report, stress, alert_levels = self._pending
            self._pending = None
            self._draw(report, stress, alert_levels)

    def show(
        self,
        report: MarginReport,
        stress: Mapping[tuple[float, float], float] | None,
        alert_levels: Sequence[float],
    ) -> int:
        """Display ``report`` and the stress grid (usages as fractions); returns cells written in the stress table.

        A card mounted by one refresh is found by the next before it has composed its parts (the first refresh is
        still awaiting the mount, e.g. when the tab opens as the timer fires): its figures are kept and drawn on mount.
        """
        if not self._composed:
            self._pending = (report, stress, alert_levels)
            return 0
        return self._draw(report, stress, alert_levels)

    def _draw(
        self,
        report: MarginReport,
        stress: Mapping[tuple[float, float], float] | None,
        alert_levels: Sequence[float],
    ) -> int:
        c = report.currency
        figures = (
            f"[b]{c}[/b] ({model_text(report)}, account {report.account})\n"
            f"equity [b]{fmt_coin(report.equity)}[/b] {c}   margin balance {fmt_coin(report.margin_balance)}   "
            f"balance {fmt_coin(report.balance)}\n"
            f"IM {fmt_coin(report.initial_margin)}   MM {fmt_coin(report.maintenance_margin)}   "
            f"available funds [b]{fmt_coin(report.available_funds)}[/b] {c}"
        )
        self.query_one(".margin-figures", Static).update(figures)
        bars = Text("\n").join(
            [usage_bar("IM", report.im_usage, alert_levels), usage_bar("MM", report.mm_usage, alert_levels)]
        )
        self.query_one(".margin-bars", Static).update(bars)
        distance = f"distance to liquidation: spot {fmt_distance(report.distance_down)} / {fmt_distance(report.distance_up)}"
        if report.model == "pm" and report.worst_bucket:
            distance += f"\nworst scenario: [b]{report.worst_bucket.replace(':', ' · ')}[/b]"
            worst = pm_worst_loss(report)
            if worst is not None:
                distance += f"   loss {fmt_coin(worst)} {c}"
        self.query_one(".margin-distance", Static).update(distance)
        table = self.query_one(StressTable)
        table.display = bool(stress)
        return table.show(stress, c) if stress else 0


class MarginPane(VerticalScroll, can_focus=True):
    """A :class:`MarginCard` per currency the account holds."""

    HELP = MarginCard.HELP

    async def update_view(
        self,
        reports: Mapping[str, MarginReport],
        stress: Mapping[str, Mapping[tuple[float, float], float]],
        alert_levels: Sequence[float],
    ) -> int:
        """Display every currency's report; cards are created once and updated in place."""
        if not reports:
            if not self.query(".margin-empty"):
                await self.mount(Static("no margin figures yet", classes="margin-empty"))
            return 0
        for empty in self.query(".margin-empty"):
            empty.remove()
        written = 0
        for ccy, report in sorted(reports.items()):
            cards = [c for c in self.query(MarginCard) if c.currency == ccy]
            if cards:
                card = cards[0]
            else:
                card = MarginCard(ccy, id=f"margin-{ccy}")
                await self.mount(card)
            written += card.show(report, stress.get(ccy), alert_levels)
        return written
