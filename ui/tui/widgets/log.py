"""The log/alerts pane and the always-visible status line.

    log = EventLog()
    log.write_event(Alert(ts=..., source="margin", message="MM usage 80%", severity="warning"))
    status = StatusLine(); status.show(snapshot, read_only=False)
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import RichLog, Static

from app.analytics import DEFAULT_ALERT_LEVELS
from app.domain import (
    Alert,
    DeskSnapshot,
    Event,
    FillEvent,
    Lost,
    MarginAlert,
    OrderUpdate,
    utc_from_ms,
)
from ui.tui.format import DASH, fmt_coin, fmt_signed, fmt_usd, is_unknown
from ui.tui.widgets.hedger import STATUS_LABEL, STATUS_STYLE
from ui.tui.widgets.margin import level_style

LOG_TOPICS = ("alert", "margin_alert", "fill_event", "order_update", "lost")
"""Bus topics the log pane listens to."""

_SEVERITY = {"info": "cyan", "warning": "yellow", "error": "bold red"}


def severe_level(alert_levels: Sequence[float]) -> float:
    """The MM usage (fraction) from which a margin alert is shown as severe: the second alert level (0.8 by default)."""
    levels = sorted(alert_levels) or [0.5, 0.8, 1.0]
    return levels[1] if len(levels) > 1 else levels[0]


def describe(event: Event, severe_at: float = 0.8) -> tuple[str, str] | None:
    """A log line and its style for an event, or None for events the log ignores; margin alerts at or above
    ``severe_at`` (MM usage fraction) are styled severe."""
    if isinstance(event, Alert):
        return f"{event.severity.upper():<7} {event.source}: {event.message}" + (
            f" [{event.code}]" if event.code else ""
        ), _SEVERITY.get(event.severity, "")
    if isinstance(event, MarginAlert):
        return (
            f"MARGIN  {event.account}/{event.currency}: MM usage {event.mm_usage * 100:.1f}% crossed "
            f"{event.level * 100:.0f}% {event.message}",
            "bold red" if event.level >= severe_at else "yellow",
        )
    if isinstance(event, FillEvent):
        f = event.fill
        return (
            f"FILL    {f.side.value} {f.amount} {f.instrument} @ {f.price} ({f.liquidity.value}, fee {f.fee} "
            f"{f.fee_currency})",
            "green" if f.side.value == "buy" else "red",
        )
    if isinstance(event, OrderUpdate):
        o = event.order
        req = o.request
        extra = f" [{o.reject_code}]" if o.reject_code else ""
        return (
            f"ORDER   {o.order_id} {req.side.value} {req.amount} {req.instrument} @ {req.price or 'market'}: "
            f"{o.status.value} (filled {o.filled}){extra}",
            "red" if o.status.value == "rejected" else "",
        )
    if isinstance(event, Lost):
        return f"LOG     {event.count} events dropped (the terminal was busy)", "dim"
    return None


def is_alarming(event: Event) -> bool:
    """True for what should pop up: margin alerts and desk alerts of warning or error severity."""
    return isinstance(event, MarginAlert) or (isinstance(event, Alert) and event.severity in ("warning", "error"))


def alert_level(event: Event) -> float:
    """How bad an alarming event is, 0..1 (MarginAlert level; 1 for errors, 0.5 for warnings)."""
    if isinstance(event, MarginAlert):
        return event.level
    if isinstance(event, Alert):
        return 1.0 if event.severity == "error" else 0.5
    return 0.0


def stamp(ts: int) -> str:
    """``HH:MM:SS`` of an epoch-ms timestamp (UTC)."""
    return utc_from_ms(ts).strftime("%H:%M:%S") if ts else "--:--:--"


class EventLog(RichLog):
    """Fills, order updates, alerts and the terminal's own messages, newest at the bottom."""

    HELP = """\
## Log
Fills, order updates, margin alerts and desk alerts as they happen, with the desk's (simulated) time.
"""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("max_lines", 2000)
        kwargs.setdefault("wrap", True)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.lines_written: list[str] = []
        self.severe_at = 0.8  # the app sets it from the margin engine's alert levels

    def write_event(self, event: Event) -> bool:
        """Append one event; False when it is not something the log shows."""
        described = describe(event, self.severe_at)
        if described is None:
            return False
        self.note(described[0], described[1], ts=event.ts)
        return True

    def note(self, message: str, style: str = "", *, ts: int = 0) -> None:
        """Append a line of the terminal's own (ticket results, hedger commands)."""
        line = f"{stamp(ts)} {message}"
        self.lines_written.append(line)
        del self.lines_written[:-2000]
        self.write(Text(line, style=style))


class StatusLine(Static):
    """Venue, desk time, index prices, equity and MM usage, and the hedger's state, on one line."""

    def show(self, snap: DeskSnapshot, *, read_only: bool = False, show_usd: bool = False,
             alert_levels: Sequence[float] = DEFAULT_ALERT_LEVELS) -> None:
        """Render ``snap``'s headline figures; MM usage (a fraction) is coloured once past the first alert level."""
        text = Text()
        text.append(f" {snap.venue.upper()}{' (read-only)' if read_only else ''} ", style="bold reverse")
        text.append(f" {utc_from_ms(snap.ts).strftime('%Y-%m-%d %H:%M:%S')} UTC ")
        for index, price in sorted(snap.index_prices.items()):
            text.append(f" {index.split('_')[0].upper()} ", style="bold")
            text.append(fmt_usd(price))
        for ccy, m in sorted(snap.margin.items()):
            text.append(f"  {ccy} eq ", style="bold")
            text.append(fmt_coin(m.equity))
            text.append(" MM ")
            alarmed = not is_unknown(m.mm_usage) and m.mm_usage >= min(alert_levels, default=DEFAULT_ALERT_LEVELS[0])
            text.append(DASH if is_unknown(m.mm_usage) else f"{m.mm_usage * 100:.1f}%",
                        style=level_style(m.mm_usage, alert_levels) if alarmed else "")
        for u, g in sorted(snap.portfolio.items()):
            if g.delta:
                text.append(f"  Δ{u} ", style="bold")
                text.append(fmt_signed(g.delta, 3))
        for run in snap.strategies:
            text.append(f"  {run.name} ", style="bold")
            text.append(STATUS_LABEL.get(run.status, run.status), style=STATUS_STYLE.get(run.status, ""))
        text.append(f"  {'USD' if show_usd else 'coin'}", style="dim")
        self.update(text)
