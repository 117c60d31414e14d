"""Key bindings of the terminal, each with a stable action id that ``[ui] keymap`` in desk.toml can rebind.

    [ui.keymap]
    buy = "ctrl+b"          # open a buy ticket on the focused option
    next_expiry = "n"

The ids are Textual binding ids; :func:`check_keymap` rejects unknown ids with a ConfigError so a typo
in the config is reported instead of silently ignored.
"""

from __future__ import annotations

from textual.binding import Binding

from app.errors import ConfigError

APP_BINDINGS: list[Binding] = [
    Binding("q", "request_quit", "Quit", id="quit"),
    # Textual's own ctrl+q quits at once; here it asks first while a hedger is active, like q.
    Binding("ctrl+q", "request_quit", "Quit", id="quit_now", show=False, priority=True),
    Binding("f1", "toggle_help", "Help", id="help"),
    Binding("1", "show_tab('chain')", "Chain", id="tab_chain", show=False),
    Binding("2", "show_tab('positions')", "Positions", id="tab_positions", show=False),
    Binding("3", "show_tab('margin')", "Margin", id="tab_margin", show=False),
    Binding("4", "show_tab('hedger')", "Hedger", id="tab_hedger", show=False),
    Binding("5", "show_tab('log')", "Log", id="tab_log", show=False),
    Binding("u", "toggle_usd", "Coin/USD", id="toggle_usd"),
    Binding("t", "open_ticket", "Ticket", id="ticket", show=False),
    Binding("ctrl+r", "refresh_view", "Refresh", id="refresh", show=False),
]

CHAIN_BINDINGS: list[Binding] = [
    Binding("b", "ticket('buy')", "Buy", id="buy"),
    Binding("s", "ticket('sell')", "Sell", id="sell"),
    Binding("right_square_bracket", "expiry(1)", "Next expiry", id="next_expiry", key_display="]"),
    Binding("left_square_bracket", "expiry(-1)", "Prev expiry", id="prev_expiry", key_display="["),
    Binding("m", "next_monthly", "Next monthly", id="next_monthly", show=False),
    Binding("x", "underlying(1)", "Underlying", id="next_underlying"),
    Binding("a", "goto_atm", "ATM", id="goto_atm"),
    Binding("d", "goto_delta", "Find Δ", id="goto_delta"),
    Binding("c", "toggle_columns", "Columns", id="toggle_columns", show=False),
]

HEDGER_BINDINGS: list[Binding] = [
    Binding("a", "control('activate')", "Activate", id="hedger_activate"),
    Binding("p", "control('pause')", "Pause", id="hedger_pause"),
    Binding("k", "control('kill')", "Kill", id="hedger_kill"),
    Binding("h", "control('hedge_now')", "Hedge now", id="hedger_hedge_now"),
    Binding("n", "new_hedger", "New hedger", id="hedger_new"),
    Binding("right_square_bracket", "select_run(1)", "Next run", id="hedger_next_run", key_display="]", show=False),
]

TICKET_BINDINGS: list[Binding] = [
    Binding("ctrl+s", "send", "Send", id="ticket_send", priority=True),
    Binding("escape", "cancel", "Close", id="ticket_close"),
    Binding("ctrl+t", "flip_side", "Buy/Sell", id="ticket_flip_side", priority=True),
    Binding("ctrl+o", "cycle_price_mode", "Coin/USD/IV", id="ticket_price_mode", priority=True),
]


POSITION_BINDINGS: list[Binding] = [
    Binding("b", "app.open_ticket('buy')", "Buy more", id="positions_buy"),
    Binding("s", "app.open_ticket('sell')", "Sell", id="positions_sell"),
]


def all_binding_ids() -> set[str]:
    """Every action id that ``[ui] keymap`` may rebind."""
    groups = (APP_BINDINGS, CHAIN_BINDINGS, HEDGER_BINDINGS, TICKET_BINDINGS, POSITION_BINDINGS)
    return {b.id for group in groups for b in group if b.id}


def check_keymap(keymap: dict[str, str]) -> dict[str, str]:
    """Validate a ``{action_id: keys}`` override map; raise ConfigError naming an unknown id or empty key."""
    known = all_binding_ids()
    for action_id, keys in keymap.items():
        if action_id not in known:
            raise ConfigError(
                f"ui.keymap: unknown action id {action_id!r} (known: {', '.join(sorted(known))})", key=f"ui.keymap.{action_id}"
            )
        if not isinstance(keys, str) or not keys.strip():
            raise ConfigError(f"ui.keymap.{action_id}: give one or more keys, e.g. 'ctrl+b'", key=f"ui.keymap.{action_id}")
    return dict(keymap)
