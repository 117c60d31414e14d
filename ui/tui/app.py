"""The trader's terminal: a Textual app over a :class:`app.desk.Desk`.

    from app.desk import Desk
    from ui.tui.app import DeskTui

    DeskTui(Desk(seed=7)).run()          # what `desk tui` does

Tabs: **1** option chain, **2** positions, **3** margin, **4** hedger, **5** log. **Ctrl+P** opens the
command palette (flatten delta, pause hedger, go to expiry…), **F1** help for the focused widget, **u**
coin/USD, **q** quit (asks only while a hedger is active).

The view refreshes from ``desk.snapshot()`` every ``refresh_s`` seconds (4 per second by default),
writing only the cells that changed; ``refresh_s=None`` turns the timer off (tests, screenshots) and
:meth:`DeskTui.refresh_view` or **ctrl+r** refreshes by hand.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from app.analytics import alert_levels as desk_alert_levels
from app.config import Settings
from app.domain import DeskSnapshot, Instrument, Kind, MarginAlert, Order, Side
from app.errors import ConfigError, DeskError
from ui.tui.feed import DeskFeed, chain_feed
from ui.tui.format import expiry_kind, expiry_label, fmt_signed
from ui.tui.keymap import APP_BINDINGS, check_keymap
from ui.tui.port import DeskPort, is_read_only, maybe_await
from ui.tui.screens.dialogs import ConfirmScreen, PromptScreen
from ui.tui.screens.ticket import TicketScreen
from ui.tui.ticket_model import TicketContext
from ui.tui.widgets.chain import COMPACT_COLUMNS, check_columns
from ui.tui.widgets.chain_pane import ChainPane
from ui.tui.widgets.hedger import HedgerPane
from ui.tui.widgets.log import LOG_TOPICS, EventLog, StatusLine, alert_level, describe, is_alarming, severe_level
from ui.tui.widgets.margin import MarginPane
from ui.tui.widgets.positions import PositionsPane, PositionsTable


class _NoDesk:
    """Stands for the desk while its factory runs (nothing to show yet)."""

    read_only = False

    def snapshot(self) -> None:  # pragma: no cover - never called: refresh_view checks for it first
        raise RuntimeError("the desk is not built yet")


StressFn = Callable[[], Mapping[str, Mapping[tuple[float, float], float]]]


class DeskTui(App[None]):
    """Option chain, positions and greeks, margin health, order ticket, hedger, log — over one Desk."""

    TITLE = "deltadesk"
    CSS_PATH = Path(__file__).with_name("tui.tcss")
    BINDINGS = APP_BINDINGS
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        desk: DeskPort | Callable[[], DeskPort],
        *,
        settings: Settings | None = None,
        refresh_s: float | None = 0.25,
        manage_desk: bool = True,
        stress: StressFn | None = None,
        new_hedger: Callable[[Any, str], Awaitable[str]] | None = None,
        start_hedger: bool = False,
        starting: str = "starting the simulated market…",
    ) -> None:
        """``desk`` or a factory of it (called in a thread once the screen is up; ``starting`` is shown meanwhile)."""
        super().__init__()
        self._starting = starting
        # A factory is called off the event loop after the first paint: the screen is up while the market builds.
        self._desk_factory: Callable[[], DeskPort] | None = None
        if callable(desk) and not hasattr(desk, "snapshot"):
            self._desk_factory = desk
            desk = _NoDesk()
        self.desk: DeskPort = desk  # type: ignore[assignment]
        self.settings = settings or Settings()
        ui = self.settings.ui
        self.refresh_s = refresh_s
        self.manage_desk = manage_desk
        self.read_only = is_read_only(desk)
        self.show_usd = ui.show_usd
        columns = ui.chain_columns or COMPACT_COLUMNS
        self.chain_columns = check_columns(columns)
        self._user_keymap = check_keymap(dict(ui.keymap))
        if ui.theme not in self.available_themes:
            raise ConfigError(
                f"ui.theme: unknown theme {ui.theme!r} (available: {', '.join(sorted(self.available_themes))})",
                key="ui.theme",
            )
        self._theme_name = ui.theme
        self._stress = stress if stress is not None else partial(stress_from_analytics, self)
        self._stress_cache: tuple[int, Mapping[str, Any]] | None = None
        self.new_hedger = new_hedger
        self.start_hedger = start_hedger
        self.snap: DeskSnapshot | None = None
        self.feed = chain_feed(desk)
        self._sub: Any = None
        self._started = False
        self.refreshes = 0
        self.startup_s: tuple[float, float] | None = None
        self.cells_written = 0

    # -- layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with TabbedContent(initial="chain", id="tabs"):
            with TabPane("1 Chain", id="chain"):
                yield ChainPane(self.chain_columns, id="chain-pane")
            with TabPane("2 Positions", id="positions"):
                yield PositionsPane(id="positions-pane")
            with TabPane("3 Margin", id="margin"):
                yield MarginPane(id="margin-pane")
            with TabPane("4 Hedger", id="hedger"):
                yield HedgerPane(id="hedger-pane")
            with TabPane("5 Log", id="log"):
                yield EventLog(id="event-log")
        yield Footer()

    async def on_mount(self) -> None:
        self.theme = self._theme_name
        self.set_keymap(self._user_keymap)
        if self._desk_factory is not None:
            self.query_one(StatusLine).update(f" {self._starting}")
            try:
                self.desk = await asyncio.to_thread(self._desk_factory)
            except DeskError as exc:
                self.exit(return_code=2, message=str(exc))
                return
            self.read_only = is_read_only(self.desk)
            self.feed = chain_feed(self.desk)
            self._desk_factory = None
        if self.manage_desk and hasattr(self.desk, "start") and not self.read_only:
            try:
                await maybe_await(self.desk.start())  # type: ignore[attr-defined]
            except DeskError as exc:  # e.g. a venue that refuses the keys or cannot be reached
                self.exit(return_code=2, message=str(exc))
                return
            self._started = True
        try:
            self._sub = self.desk.subscribe(LOG_TOPICS)
        except (AttributeError, NotImplementedError, DeskError):
            self._sub = None
        await self.refresh_view()
        self.chain.table.goto_atm()
        self.chain.table.focus()
        wall = seconds_since_process_start()
        if wall is not None and self.chain.current is not None:
            self.startup_s = (wall, time.process_time())
            self.event_log.note(f"READY   chain on screen {wall:.2f} s after start (CPU {self.startup_s[1]:.2f} s)",
                                "dim", ts=self.desk.now_ms())
        if self.refresh_s:
            self.set_interval(self.refresh_s, self.refresh_view, name="desk-refresh")
        if self.start_hedger and self.new_hedger is not None and not self.read_only:
            # After the first paint: the chain is on screen while the hedger's store is being set up.
            self.run_worker(self.start_default_hedger(), name="default-hedger", exclusive=True)

    async def on_unmount(self) -> None:
        if self._sub is not None:
            self._sub.close()
        if self._started:
            await maybe_await(self.desk.close())  # type: ignore[attr-defined]  # stops it, and ends a venue connection
            self._started = False

    # -- shortcuts --------------------------------------------------------------------------------
    @property
    def chain(self) -> ChainPane:
        """The chain pane."""
        return self.query_one(ChainPane)

    @property
    def event_log(self) -> EventLog:
        """The log pane."""
        return self.query_one(EventLog)

    @property
    def active_tab(self) -> str:
        """Id of the visible tab."""
        return self.query_one(TabbedContent).active

    @property
    def alert_levels(self) -> tuple[float, ...]:
        """MM-usage alert levels (fractions) the colours use: the desk's margin engine's, as its reports and alerts."""
        return desk_alert_levels(self.desk)

    def positions_by_instrument(self) -> dict[str, float]:
        """Our size per instrument in the last snapshot."""
        return {p.instrument: p.size for p in self.snap.positions} if self.snap else {}

    def hedger_active(self) -> bool:
        """True while a strategy run is allowed to send orders."""
        return bool(self.snap and any(s.status == "active" for s in self.snap.strategies))

    # -- refresh ----------------------------------------------------------------------------------
    async def refresh_view(self) -> None:
        """Take a snapshot and update the status line, the visible tab and the log (changed cells only)."""
        if isinstance(self.desk, _NoDesk):
            return
        if not self.screen_stack or not self.query(StatusLine):
            return  # the screen is being taken down (the app exits) while a timer's refresh was due
        try:
            snap = self.feed.snapshot()
        except DeskError as exc:  # keep the last picture on screen and say why it is not moving
            self.event_log.note(f"DESK    snapshot failed: {exc}", "red", ts=self.snap.ts if self.snap else 0)
            return
        self.snap = snap
        self.refreshes += 1
        if self._sub is not None:
            log = self.event_log
            log.severe_at = severe = severe_level(self.alert_levels)
            for event in self._sub.drain():
                if log.write_event(event) and is_alarming(event):
                    # Alerts also pop up over whatever tab is open; the log keeps them.
                    bad = alert_level(event) >= (severe if isinstance(event, MarginAlert) else 1.0)
                    self.notify(describe(event, severe)[0], severity="error" if bad else "warning")  # type: ignore[index]
        self.query_one(StatusLine).show(snap, read_only=self.read_only, show_usd=self.show_usd,
                                        alert_levels=self.alert_levels)
        await self._update_tab(self.active_tab, snap)

    async def _update_tab(self, tab: str, snap: DeskSnapshot) -> None:
        if tab == "chain":
            self.cells_written += self.chain.update_view(snap, self.feed, self.positions_by_instrument(),
                                                         show_usd=self.show_usd)
        elif tab == "positions":
            self.cells_written += self.query_one(PositionsPane).update_view(snap, show_usd=self.show_usd)
        elif tab == "margin":
            self.cells_written += await self.query_one(MarginPane).update_view(
                snap.margin, self._stress_grid(snap), self.alert_levels
            )
        elif tab == "hedger":
            self.cells_written += self.query_one(HedgerPane).update_view(snap.strategies)

    def _stress_grid(self, snap: DeskSnapshot) -> Mapping[str, Mapping[tuple[float, float], float]]:
        # Revaluing the book under 24 scenarios is the costliest thing the view asks for: once a sim second.
        if self._stress is None:
            return {}
        if self._stress_cache is None or snap.ts - self._stress_cache[0] >= 1000 or snap.ts < self._stress_cache[0]:
            try:
                self._stress_cache = (snap.ts, self._stress())
            except (DeskError, ValueError, FloatingPointError) as exc:
                self.event_log.note(f"stress table unavailable: {exc}", "yellow", ts=snap.ts)
                self._stress_cache = (snap.ts, {})
        return self._stress_cache[1]

    @on(TabbedContent.TabActivated)
    async def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.id or self.active_tab
        if self.snap is not None:
            await self.refresh_view()
        self.call_after_refresh(self._focus_tab, tab)

    # -- app actions ------------------------------------------------------------------------------
    async def action_refresh_view(self) -> None:
        """Refresh now."""
        await self.refresh_view()

    def action_show_tab(self, tab: str) -> None:
        """Show one of the tabs (chain, positions, margin, hedger, log) and focus its main widget."""
        self.query_one(TabbedContent).active = tab
        self._focus_tab(tab)

    def _focus_tab(self, tab: str) -> None:
        if tab != self.active_tab:
            return  # a later switch won; focusing a hidden pane would switch back to it
        target = {
            "chain": "#chain-table",
            "positions": "#positions-table",
            "margin": "#margin-pane",
            "hedger": "#hedger-pane",
            "log": "#event-log",
        }[tab]
        self.query_one(target).focus()

    async def action_toggle_usd(self) -> None:
        """Show prices and greeks in USD instead of coin, and back."""
        self.show_usd = not self.show_usd
        await self.refresh_view()

    def action_toggle_help(self) -> None:
        """Show or hide the help for the focused widget."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_request_quit(self) -> None:
        """Quit; while a hedger is active, ask first."""
        if not self.hedger_active():
            self.exit()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmScreen("A hedger is ACTIVE and will stop with the terminal. Quit?"), answer)

    def action_open_ticket(self, side: str = "buy") -> None:
        """A ticket on the option under the chain cursor or the position under the positions cursor."""
        instrument = None
        if self.active_tab == "positions":
            instrument = self.query_one(PositionsTable).instrument_at_cursor()
        if instrument is None:
            instrument = self.chain.table.instrument_at_cursor()
        if instrument:
            self.open_ticket(instrument, Side(side))

    # -- ticket -----------------------------------------------------------------------------------
    def ticket_context(self, name: str) -> TicketContext:
        """Market context of ``name`` for a ticket: chain row and forward of its expiry, quote, clock."""
        inst = Instrument.parse(name)
        snap = self.snap or self.desk.snapshot()
        row = forward = None
        index = snap.index_prices.get(inst.underlying)
        if inst.is_option and inst.expiry_ms is not None:
            try:
                chain = self.feed.chain(inst.base, inst.expiry_ms)
            except DeskError:
                chain = None
            if chain is not None:
                forward, index = chain.forward, chain.index_price
                row = next((r for r in chain.rows if r.instrument == name), None)
        return TicketContext(inst, now_ms=snap.ts, forward=forward, index_price=index, row=row,
                             quote=snap.quotes.get(name))

    def open_ticket(self, instrument: str, side: Side = Side.BUY, *, amount: str | None = None,
                    price_mode: str | None = None) -> TicketScreen | None:
        """Open the order ticket on ``instrument``; returns the screen (None when browsing read-only)."""
        if self.read_only:
            self.notify("read-only: this is a stored run, orders cannot be sent", severity="warning")
            return None
        try:
            ctx = self.ticket_context(instrument)
        except DeskError as exc:
            self.notify(str(exc), severity="error")
            return None
        screen = TicketScreen(self.desk, ctx, side=side, amount=amount, price_mode=price_mode,  # type: ignore[arg-type]
                              margin_before=dict(self.snap.margin) if self.snap else {})
        self.push_screen(screen, self._ticket_done)
        return screen

    async def _ticket_done(self, order: Order | None) -> None:
        if order is None:
            return
        req = order.request
        self.event_log.note(
            f"SENT    {order.order_id} {req.side.value} {req.amount} {req.instrument} @ {req.price or 'market'}: "
            f"{order.status.value}, filled {order.filled}",
            "bold",
            ts=order.ts,
        )
        self.notify(f"{req.side.value} {req.amount} {req.instrument}: {order.status.value} (filled {order.filled})")
        await self.refresh_view()

    @on(ChainPane.TicketRequested)
    def _chain_ticket(self, event: ChainPane.TicketRequested) -> None:
        self.open_ticket(event.instrument, Side(event.side))

    @on(ChainPane.DeltaPrompt)
    def _delta_prompt(self) -> None:
        def go(text: str | None) -> None:
            if not text:
                return
            try:
                target = float(text)
            except ValueError:
                self.notify(f"{text!r} is not a delta (try -0.25 or 0.25)", severity="error")
                return
            found = self.chain.goto_delta(target)
            if found:
                self.notify(f"{found}: delta nearest {target:+.2f}")

        self.push_screen(PromptScreen("Go to delta (e.g. -0.25 for the 25-delta put, 0.25 for the call)", "-0.25"), go)

    # -- hedger -----------------------------------------------------------------------------------
    @on(HedgerPane.ControlRequested)
    async def _hedger_control(self, event: HedgerPane.ControlRequested) -> None:
        if event.action == "kill":
            def answer(yes: bool | None) -> None:
                if yes:
                    self.run_worker(self.control_strategy(event.run_id, "kill"))

            self.push_screen(ConfirmScreen(f"Kill {event.run_id}? Its orders are cancelled and it stays killed."),
                             answer)
            return
        await self.control_strategy(event.run_id, event.action)

    async def control_strategy(self, run_id: str, action: str) -> bool:
        """Apply ``action`` to a strategy run through the Desk; logs the outcome; True on success."""
        if self.read_only:
            self.notify("read-only: this is a stored run", severity="warning")
            return False
        try:
            await maybe_await(self.desk.strategy_control(run_id, action))
        except DeskError as exc:
            self.event_log.note(f"HEDGER  {action} {run_id} refused: {exc}", "red", ts=self.desk.now_ms())
            self.notify(str(exc), severity="error")
            return False
        self.event_log.note(f"HEDGER  {action} {run_id}", "bold", ts=self.desk.now_ms())
        await self.refresh_view()
        return True

    @on(HedgerPane.NewHedgerRequested)
    async def _new_hedger(self) -> None:
        await self.start_default_hedger()

    async def start_default_hedger(self, underlying: str | None = None) -> str | None:
        """Start the default delta hedger of ``underlying`` (the chain's) in dry-run; returns the run id."""
        if self.read_only or self.new_hedger is None:
            self.notify("this desk cannot start a hedger from the terminal", severity="warning")
            return None
        try:
            run_id = await self.new_hedger(self.desk, underlying or self.chain.underlying or "BTC")
        except DeskError as exc:
            self.event_log.note(f"HEDGER  could not start: {exc}", "red", ts=self.desk.now_ms())
            self.notify(str(exc), severity="error")
            return None
        self.event_log.note(f"HEDGER  started {run_id} (dry-run)", "bold", ts=self.desk.now_ms())
        await self.refresh_view()
        return str(run_id)

    def _current_run(self) -> str | None:
        snap = self.snap
        if snap is None or not snap.strategies:
            return None
        return self.query_one(HedgerPane).current(snap.strategies).run_id  # type: ignore[union-attr]

    # -- palette ----------------------------------------------------------------------------------
    def flatten_delta(self, underlying: str | None = None) -> TicketScreen | None:
        """A ticket on the perpetual that brings ``underlying``'s portfolio delta to zero (USD lots)."""
        u = underlying or self.chain.underlying or "BTC"
        snap = self.snap or self.desk.snapshot()
        greeks = snap.portfolio.get(u)
        name = f"{u}-PERPETUAL"
        inst = Instrument.parse(name)
        if greeks is None or inst.kind is not Kind.PERPETUAL:
            self.notify(f"no {u} delta to flatten", severity="warning")
            return None
        delta_usd = greeks.delta_usd or greeks.delta * snap.index_prices.get(inst.underlying, 0.0)
        lots = round(abs(delta_usd) / float(inst.min_amount))
        if lots == 0:
            self.notify(f"{u} delta is already flat ({fmt_signed(greeks.delta)} {u})")
            return None
        amount = inst.from_lots(lots) if inst.inverse else Decimal(repr(abs(greeks.delta))).quantize(inst.min_amount)
        side = Side.SELL if delta_usd > 0 else Side.BUY
        return self.open_ticket(name, side, amount=format(amount, "f"))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Flatten delta", "Ticket on the perpetual that brings the portfolio delta to zero",
                            self.flatten_delta)
        run = self._current_run()
        for action, title, help_text in (
            ("pause", "Pause hedger", "Stop sending hedge orders (decisions are still logged)"),
            ("activate", "Activate hedger", "Let the hedger send orders"),
            ("hedge_now", "Hedge now", "Bring delta back to target now"),
            ("kill", "Kill hedger", "Cancel the hedger's orders and stop it for good"),
        ):
            if run is not None:
                yield SystemCommand(title, help_text, partial(self._palette_control, run, action))
        if run is None:
            yield SystemCommand("Start hedger", "Start the default delta hedger in dry-run", self.start_default_hedger)
        yield SystemCommand("Go to 25-delta put", "Cursor to the put with delta nearest -0.25",
                            partial(self._goto_delta, -0.25))
        yield SystemCommand("Go to 25-delta call", "Cursor to the call with delta nearest +0.25",
                            partial(self._goto_delta, 0.25))
        yield SystemCommand("Go to next monthly expiry", "The first monthly expiry of the chain",
                            self._goto_next_monthly)
        yield SystemCommand("Buy the option under the cursor", "Order ticket to buy (chain or positions)",
                            partial(self.action_open_ticket, "buy"))
        yield SystemCommand("Sell the option under the cursor", "Order ticket to sell (chain or positions)",
                            partial(self.action_open_ticket, "sell"))
        yield SystemCommand("Toggle coin/USD", "Prices and greeks in coin or USD", self.action_toggle_usd)
        if self.snap is not None:
            for u in self.feed.underlyings():
                for expiry in self.feed.expiries(u):
                    label = f"{u} {expiry_label(expiry)} ({expiry_kind(expiry)})"
                    yield SystemCommand(f"Go to expiry {label}", f"Show the {label} chain",
                                        partial(self._goto_expiry, u, expiry), discover=False)

    async def _palette_control(self, run_id: str, action: str) -> None:
        if action == "kill":
            self.post_message(HedgerPane.ControlRequested(run_id, action))
        else:
            await self.control_strategy(run_id, action)

    def _goto_expiry(self, underlying: str, expiry_ms: int) -> None:
        self.action_show_tab("chain")
        self.chain.select(underlying=underlying, expiry_ms=expiry_ms)

    def _goto_next_monthly(self) -> None:
        self.action_show_tab("chain")
        expiry = self.chain.next_monthly_expiry()
        if expiry is not None:
            self.chain.select(expiry_ms=expiry)

    def _goto_delta(self, target: float) -> None:
        self.action_show_tab("chain")
        self.chain.goto_delta(target)


def seconds_since_process_start() -> float | None:
    """Wall seconds since this process started (Linux /proc), or None elsewhere."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def stress_from_analytics(app: DeskTui) -> dict[str, dict[tuple[float, float], float]]:
    """Spot ±5/10/20/30% × vol -10/0/+10 PnL per settlement currency, from the desk's scenario revaluation."""
    snap = app.snap
    if snap is None:
        return {}
    try:
        import numpy as np

        from app.analytics import scenario_grid
    except ImportError:  # the analytics module is part of the composition root; absent in a minimal install
        return {}
    from ui.tui.widgets.margin import SPOT_MOVES, VOL_MOVES

    if isinstance(app.feed, DeskFeed):  # revaluation needs the mark IVs of the held expiries
        held = {(p.underlying or p.instrument.split("-")[0], p.expiry_ms) for p in snap.positions if p.expiry_ms}
        snap = app.feed.with_chains(snap, held)  # type: ignore[arg-type]
    out: dict[str, dict[tuple[float, float], float]] = {}
    for underlying in sorted({p.underlying or p.instrument.split("-")[0] for p in snap.positions}):
        grid = scenario_grid(snap, underlying, spot_moves=np.array(SPOT_MOVES), vol_moves=np.array(VOL_MOVES))
        if grid is None:
            continue
        cells = out.setdefault(grid.currency, {})
        for i, v in enumerate(grid.vol_moves):
            for j, m in enumerate(grid.spot_moves):
                key = (round(float(m), 4), round(float(v), 4))
                cells[key] = cells.get(key, 0.0) + float(grid.pnl[i, j])
    return out
