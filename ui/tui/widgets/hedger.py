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
from ui.tui.keymap import HEDGER_BINDINGS
from ui.tui.widgets.cells import IncrementalTable

STATUS_STYLE = {"dry_run": "cyan", "active": "bold green", "paused": "yellow", "killed": "bold red", "stopped": "dim"}
STATUS_LABEL = {"dry_run": "DRY-RUN", "active": "ACTIVE", "paused": "PAUSED", "killed": "KILLED", "stopped": "STOPPED"}

# Summary keys shown first, with their labels; any other key follows as-is.
_KNOWN = (
    ("delta", "current delta"),
    ("band", "band"),
    ("band_lower", "band lower"),
    ("band_upper", "band upper"),
    ("target", "target delta"),
    ("instrument", "hedge instrument"),
    ("hedge_cost", "hedge cost"),
    ("hedges", "hedges"),
    ("hedge_count", "hedges"),
)

DECISION_COLUMNS = (("ts", "Time"), ("action", "Action"), ("amount", "Size"), ("delta", "Δ before"), ("reason", "Reason"))


def fmt_value(value: Any) -> str:
    """A summary value for display: floats to 4 significant decimals, pairs as ``[lo, hi]``."""
    if isinstance(value, float):
        return f"{value:+.4f}" if abs(value) < 1000 else f"{value:,.2f}"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"[{value[0]:+.4f}, {value[1]:+.4f}]"
    return str(value)


def decision_cells(d: dict[str, Any]) -> dict[str, Text | str]:
    """One decision dict as table cells (ts in ms → HH:MM:SS UTC)."""
    ts = d.get("ts")
    when = datetime.fromtimestamp(ts / 1000, tz=timezone.utc).strftime("%H:%M:%S") if isinstance(ts, int) else ""
    action = str(d.get("action") or d.get("intent") or d.get("kind") or "")
    amount = d.get("amount", d.get("size", ""))
    delta = d.get("delta", d.get("delta_before", ""))
    return {
        "ts": when,
        "action": Text(action, style="bold" if action and action not in ("none", "hold") else "dim"),
        "amount": fmt_value(amount) if amount != "" else "",
        "delta": fmt_value(delta) if delta != "" else "",
        "reason": str(d.get("reason", "")),
    }


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
        known = [(label, run.summary[key]) for key, label in _KNOWN if key in run.summary]
        rest = [(k, v) for k, v in run.summary.items() if k not in dict(_KNOWN)]
        summary.update("\n".join(f"{label:<18} {fmt_value(v)}" for label, v in known + rest))
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
