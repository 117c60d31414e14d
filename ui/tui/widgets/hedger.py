"""The hedger panel: status, band and current delta, hedge cost, last decisions with their reasons.

    pane = HedgerPane()
    pane.update_view(snapshot.strategies, now_ms)

Keys post :class:`HedgerPane.ControlRequested`; the app sends it to ``Desk.strategy_control``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from app.domain import StrategyStatus
from ui.tui.format import fmt_money
from ui.tui.keymap import HEDGER_BINDINGS
from ui.tui.widgets.cells import IncrementalTable

STATUS_STYLE = {"dry_run": "cyan", "active": "bold green", "paused": "yellow", "killed": "bold red", "stopped": "dim"}
STATUS_LABEL = {"dry_run": "DRY-RUN", "active": "ACTIVE", "paused": "PAUSED", "killed": "KILLED", "stopped": "STOPPED"}

# Summary keys shown first, with their labels; any other key follows as-is.
_KNOWN = (
    ("delta", "current delta"),
    ("instrument", "hedge instrument"),
    ("hedges", "hedges"),
    ("orders", "orders"),
    ("fills", "fills"),
    ("notional_usd", "notional USD"),
)

DECISION_COLUMNS = (("ts", "Time"), ("action", "Action"), ("amount", "Orders"), ("delta", "Δ"), ("reason", "Reason"))


def fmt_value(value: Any) -> str:
    """A summary value for display: floats to 4 significant decimals, pairs as ``[lo, hi]``."""
    if isinstance(value, float):
        return f"{value:+.4f}" if abs(value) < 1000 else f"{value:,.2f}"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"[{value[0]:+.4f}, {value[1]:+.4f}]"
    return str(value)


def _intent_text(d: dict[str, Any]) -> str:
    parts = []
    for intent in d.get("intents") or ():
        req = intent.get("request") if isinstance(intent, dict) else None
        if req:
            parts.append(f"{req.get('side', '')} {req.get('amount', '')} {req.get('instrument', '')}".strip())
        elif isinstance(intent, dict):
            parts.append(str(intent.get("kind", "")))
    if parts:
        return ", ".join(parts)
    amount = d.get("amount", d.get("size", ""))
    return fmt_value(amount) if amount != "" else ""


def decision_cells(d: dict[str, Any]) -> dict[str, Text | str]:
    """One decision dict as table cells (ts in ms → HH:MM:SS UTC; orders from its intents)."""
    ts = d.get("ts")
    when = datetime.fromtimestamp(ts / 1000, tz=timezone.utc).strftime("%H:%M:%S") if isinstance(ts, int) else ""
    action = str(d.get("action") or d.get("kind") or "")
    inputs = d.get("inputs") or {}
    delta = inputs.get("delta", d.get("delta", ""))
    return {
        "ts": when,
        "action": Text(action, style="bold" if action and action not in ("none", "hold") else "dim"),
        "amount": _intent_text(d),
        "delta": fmt_value(delta) if isinstance(delta, (int, float)) else "",
        "reason": str(d.get("reason", "")),
    }


def band_of(decisions: Sequence[dict[str, Any]]) -> dict[str, float | str] | None:
    """Delta, band and target of the newest decision that measured them (the hedger's ``inputs``)."""
    for d in reversed(decisions):
        inputs = d.get("inputs") or {}
        if all(isinstance(inputs.get(k), (int, float)) for k in ("delta", "band_lower", "band_upper")):
            return {
                "delta": float(inputs["delta"]),
                "lower": float(inputs["band_lower"]),
                "upper": float(inputs["band_upper"]),
                "target": float(inputs.get("target") or 0.0),
                "unit": str(inputs.get("unit", "coin")),
            }
    return None


def band_gauge(delta: float, lower: float, upper: float, width: int = 41) -> Text:
    """``[-0.050 ─────●───── +0.050]``: where delta sits in its band (red outside)."""
    span = max(upper - lower, 1e-12)
    pad = span * 0.5  # show a half band either side so an excursion is visible
    lo, hi = lower - pad, upper + pad
    pos = round((min(max(delta, lo), hi) - lo) / (hi - lo) * (width - 1))
    left = round(pad / (hi - lo) * (width - 1))
    right = width - 1 - left
    inside = lower <= delta <= upper
    text = Text()
    for i in range(width):
        if i == pos:
            text.append("●", style="bold green" if inside else "bold red")
        elif i in (left, right):
            text.append("│", style="bold")
        else:
            text.append("─", style="" if left < i < right else "dim")
    return Text.assemble(f"{lower:+.4f} ", text, f" {upper:+.4f}")


def summary_text(run: StrategyStatus) -> Text:
    """Band gauge, current delta, hedge cost and counters of a run."""
    out = Text()
    band = band_of(run.last_decisions)
    if band is not None:
        inside = band["lower"] <= band["delta"] <= band["upper"]  # type: ignore[operator]
        out.append(f"{'delta':<18}")
        out.append(f"{band['delta']:+.4f} {band['unit']}", style="bold green" if inside else "bold red")
        out.append(f"   target {band['target']:+.4f}   {'inside' if inside else 'OUTSIDE'} band\n")
        out.append(f"{'band':<18}")
        out.append_text(band_gauge(band["delta"], band["lower"], band["upper"]))  # type: ignore[arg-type]
        out.append("\n")
    s = run.summary
    if "fees_usd" in s or "slippage_usd" in s:
        cost = float(s.get("fees_usd", 0.0)) + float(s.get("slippage_usd", 0.0))
        out.append(f"{'hedge cost':<18}")
        out.append(fmt_money(cost), style="bold")
        out.append(f"  (fees {fmt_money(float(s.get('fees_usd', 0.0)))}, "
                   f"slippage {fmt_money(float(s.get('slippage_usd', 0.0)))})\n")
    shown = {"fees_usd", "slippage_usd"}
    for key, label in _KNOWN:
        if key in s and key not in shown:
            value = s[key]
            text = fmt_money(float(value)) if key.endswith("_usd") and isinstance(value, (int, float)) else fmt_value(value)
            out.append(f"{label:<18}{text}\n")
            shown.add(key)
    rest = [f"{k} {fmt_value(v)}" for k, v in s.items() if k not in shown and k not in dict(_KNOWN)]
    if rest:
        out.append("   ".join(rest), style="dim")
    return out


class DecisionsTable(IncrementalTable):
    """The hedger's last decisions, newest first."""

    def show(self, decisions: Sequence[dict[str, Any]]) -> int:
        """Display ``decisions`` (oldest first as the Desk gives them); returns cells written."""
        newest = list(reversed(decisions))[:50]
        self.set_layout(DECISION_COLUMNS, [f"d{i}" for i in range(len(newest))])
        return sum(self.set_row(f"d{i}", decision_cells(d)) for i, d in enumerate(newest))


class HedgerPane(Vertical, can_focus=True):
    """Status and controls of the desk's strategy runs (the delta hedger)."""

    BINDINGS = HEDGER_BINDINGS
    HELP = """\
## Hedger
The delta hedger keeps the portfolio delta inside its band by trading the perpetual. It starts in
**dry-run** (decisions logged, no orders). **a** activates it, **p** pauses, **k** kills (cancels its
orders; it stays killed), **h** hedges now, **n** starts the default hedger when none runs,
**]** shows the next run.
"""

    class ControlRequested(Message):
        """The trader asked for ``action`` on run ``run_id``."""

        def __init__(self, run_id: str, action: str) -> None:
            super().__init__()
            self.run_id = run_id
            self.action = action

    class NewHedgerRequested(Message):
        """The trader asked for the default hedger to be started."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.run_id: str | None = None
        self._runs: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static("", id="hedger-status")
        yield Static("", id="hedger-summary")
        yield Static("[b]Last decisions[/b]", classes="section")
        yield DecisionsTable(id="hedger-decisions", cursor_type="none")

    def current(self, strategies: Sequence[StrategyStatus]) -> StrategyStatus | None:
        """The run shown: the selected one, else the first hedger, else the first run."""
        by_id = {s.run_id: s for s in strategies}
        if self.run_id in by_id:
            return by_id[self.run_id]
        chosen = next((s for s in strategies if "hedg" in s.name.lower()), strategies[0] if strategies else None)
        self.run_id = chosen.run_id if chosen else None
        return chosen

    def update_view(self, strategies: Sequence[StrategyStatus]) -> int:
        """Display the selected run of ``strategies``; returns decision cells written."""
        self._runs = tuple(s.run_id for s in strategies)
        run = self.current(strategies)
        status = self.query_one("#hedger-status", Static)
        summary = self.query_one("#hedger-summary", Static)
        if run is None:
            status.update("no hedger running — press [b]n[/b] to start the default delta hedger (in dry-run)")
            summary.update("")
            return self.query_one(DecisionsTable).show(())
        others = f"   ({len(strategies)} runs, ] for next)" if len(strategies) > 1 else ""
        status.update(
            Text.assemble(
                (f"{run.name} ", "bold"),
                (f"[{run.run_id}]  ", "dim"),
                (STATUS_LABEL.get(run.status, run.status.upper()), STATUS_STYLE.get(run.status, "")),
                others,
            )
        )
        summary.update(summary_text(run))
        return self.query_one(DecisionsTable).show(run.last_decisions)

    def action_control(self, action: str) -> None:
        """Ask the app to apply ``action`` to the shown run."""
        if self.run_id is not None:
            self.post_message(self.ControlRequested(self.run_id, action))

    def action_new_hedger(self) -> None:
        """Ask the app to start the default hedger."""
        self.post_message(self.NewHedgerRequested())

    def action_select_run(self, step: int) -> None:
        """Show the next run."""
        if self._runs:
            i = self._runs.index(self.run_id) if self.run_id in self._runs else -1
            self.run_id = self._runs[(i + step) % len(self._runs)]
