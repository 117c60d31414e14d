"""The chain tab: underlying and expiry selectors, a forward/ATM line, and the :class:`ChainTable`.

    pane = ChainPane()
    pane.update_view(snapshot, chain_feed(desk), positions, show_usd=False)
    pane.select(underlying="BTC", expiry_ms=...)

It posts :class:`ChainPane.TicketRequested` when the trader asks for an order on the option under the
cursor; the app opens the ticket.
"""

from __future__ import annotations

from collections.abc import Mapping

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Static, Tab, Tabs

from app.domain import ChainSlice, DeskSnapshot
from app.errors import DeskError
from ui.tui.feed import SnapshotFeed
from ui.tui.format import expiry_kind, expiry_label, fmt_strike, fmt_tenor, fmt_usd, is_monthly
from ui.tui.keymap import CHAIN_BINDINGS
from ui.tui.widgets.chain import COMPACT_COLUMNS, FULL_COLUMNS, ChainTable


class ChainPane(Vertical):
    """Underlying tabs, expiry tabs, the forward line and the chain table."""

    BINDINGS = CHAIN_BINDINGS
    HELP = ChainTable.HELP

    class TicketRequested(Message):
        """The trader wants an order ticket for ``instrument`` (``side`` buy or sell)."""

        def __init__(self, instrument: str, side: str) -> None:
            super().__init__()
            self.instrument = instrument
            self.side = side

    class DeltaPrompt(Message):
        """The trader pressed the find-delta key; the app asks for a target delta."""

    def __init__(self, columns: tuple[str, ...] = COMPACT_COLUMNS, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.underlying: str | None = None
        self.expiry_ms: int | None = None
        self._columns = columns
        self._snap: DeskSnapshot | None = None
        self._feed: SnapshotFeed | None = None
        self._positions: Mapping[str, float] = {}
        self._show_usd = False
        self._underlyings: tuple[str, ...] = ()
        self._expiries: tuple[int, ...] = ()

    def compose(self) -> ComposeResult:
        with Horizontal(id="selectors"):
            yield Tabs(id="underlyings")
            yield Tabs(id="expiries")
        yield Static("", id="chain-info")
        yield ChainTable(self._columns, id="chain-table")

    @property
    def table(self) -> ChainTable:
        """The chain table."""
        return self.query_one(ChainTable)

    @property
    def current(self) -> ChainSlice | None:
        """The chain slice on screen, or None before the first snapshot."""
        return self.table.slice

    # -- data -------------------------------------------------------------------------------------
    def update_view(self, snap: DeskSnapshot, feed: SnapshotFeed, positions: Mapping[str, float], *,
                    show_usd: bool) -> int:
        """Show the selected expiry (read from ``feed``); returns the number of chain cells written."""
        self._snap, self._feed, self._positions, self._show_usd = snap, feed, positions, show_usd
        underlyings = tuple(feed.underlyings())
        if not underlyings:
            self.query_one("#chain-info", Static).update(
                "no option chain: a stored run keeps positions, margin and hedger history (keys 2, 3, 4)"
                if snap.venue == "stored" else "no option chain yet"
            )
            return 0
        if self.underlying not in underlyings:
            self.underlying = "BTC" if "BTC" in underlyings else underlyings[0]
        if underlyings != self._underlyings:
            self._underlyings = underlyings
            self._fill_tabs("underlyings", [(f"u_{u}", u) for u in underlyings], f"u_{self.underlying}")
        expiries = tuple(feed.expiries(self.underlying))  # type: ignore[arg-type]
        if not expiries:
            return 0
        if self.expiry_ms not in expiries:
            self.expiry_ms = expiries[0]
        if expiries != self._expiries:
            self._expiries = expiries
            labels = [(f"e{e}", f"{expiry_label(e)} {expiry_kind(e)}") for e in expiries]
            self._fill_tabs("expiries", labels, f"e{self.expiry_ms}")
        try:
            chain = feed.chain(self.underlying, self.expiry_ms)  # type: ignore[arg-type]
        except DeskError as exc:  # e.g. the expiry settled since the listing was read
            self.query_one("#chain-info", Static).update(f"[yellow]{exc.message}[/]")
            self._expiries = ()
            self.expiry_ms = None
            return 0
        self._show_info(chain, snap.ts)
        return self.table.show(chain, positions, show_usd=show_usd)

    def _fill_tabs(self, tabs_id: str, items: list[tuple[str, str]], active: str) -> None:
        """Make the tabs ``items`` (id, label) in order: remove the gone ones, insert the new ones in place.

        Tabs are removed asynchronously, so ids that stay are never removed and re-added (duplicate ids).
        """
        tabs = self.query_one(f"#{tabs_id}", Tabs)
        wanted = [tab_id for tab_id, _ in items]
        with self.prevent(Tabs.TabActivated):
            present = [t.id for t in tabs.query(Tab) if t.id]
            for tab_id in present:
                if tab_id not in wanted:
                    tabs.remove_tab(tab_id)
            kept = [t for t in present if t in wanted]
            for i, (tab_id, label) in enumerate(items):
                if tab_id in kept:
                    continue
                later = next((k for k in kept if wanted.index(k) > i), None)
                tabs.add_tab(Tab(label, id=tab_id), before=later)
                kept.insert(kept.index(later) if later else len(kept), tab_id)
            if tabs.active != active:
                tabs.active = active

    def _show_info(self, chain: ChainSlice, now_ms: int) -> None:
        kind = {"D": "daily", "W": "weekly", "M": "monthly", "Q": "quarterly"}[expiry_kind(chain.expiry_ms)]
        unit = "USD" if self._show_usd else chain.underlying
        text = (
            f"[b]{chain.underlying}[/b] {expiry_label(chain.expiry_ms)} ({kind}, {fmt_tenor(chain.expiry_ms, now_ms)})"
            f"   forward [b]{fmt_usd(chain.forward)}[/b]   index {fmt_usd(chain.index_price)}"
            f"   ATM [reverse] {fmt_strike(chain.atm_strike)} [/reverse]   prices in {unit}, IV in %"
        )
        self.query_one("#chain-info", Static).update(text)

    def redraw(self) -> None:
        """Re-show the last snapshot (after a selection change)."""
        if self._snap is not None and self._feed is not None:
            self.update_view(self._snap, self._feed, self._positions, show_usd=self._show_usd)

    def select(self, underlying: str | None = None, expiry_ms: int | None = None) -> None:
        """Switch to ``underlying`` and/or ``expiry_ms`` and redraw."""
        if underlying is not None and underlying != self.underlying:
            self.underlying = underlying
            self.expiry_ms = None
            self._expiries = ()
            if self.underlying in self._underlyings:
                with self.prevent(Tabs.TabActivated):
                    self.query_one("#underlyings", Tabs).active = f"u_{underlying}"
        if expiry_ms is not None:
            self.expiry_ms = expiry_ms
            if expiry_ms in self._expiries:
                with self.prevent(Tabs.TabActivated):
                    self.query_one("#expiries", Tabs).active = f"e{expiry_ms}"
        self.redraw()

    # -- events and actions -----------------------------------------------------------------------
    @on(Tabs.TabActivated, "#underlyings")
    def _underlying_tab(self, event: Tabs.TabActivated) -> None:
        if event.tab is not None and event.tab.id:
            self.select(underlying=event.tab.id[2:])

    @on(Tabs.TabActivated, "#expiries")
    def _expiry_tab(self, event: Tabs.TabActivated) -> None:
        if event.tab is not None and event.tab.id:
            self.select(expiry_ms=int(event.tab.id[1:]))

    def action_expiry(self, step: int) -> None:
        """Move to the next (``step`` 1) or previous (-1) expiry."""
        if not self._expiries or self.expiry_ms is None:
            return
        i = self._expiries.index(self.expiry_ms) if self.expiry_ms in self._expiries else 0
        self.select(expiry_ms=self._expiries[(i + step) % len(self._expiries)])

    def action_next_monthly(self) -> None:
        """Move to the next monthly (or quarterly) expiry after the one shown."""
        after = [e for e in self._expiries if is_monthly(e) and (self.expiry_ms is None or e > self.expiry_ms)]
        monthly = after or [e for e in self._expiries if is_monthly(e)]
        if monthly:
            self.select(expiry_ms=monthly[0])

    def next_monthly_expiry(self) -> int | None:
        """The first monthly expiry listed for the shown underlying (the trader's "next monthly")."""
        return next((e for e in self._expiries if is_monthly(e)), None)

    def action_underlying(self, step: int) -> None:
        """Cycle through the underlyings."""
        if self._underlyings and self.underlying in self._underlyings:
            i = self._underlyings.index(self.underlying)
            self.select(underlying=self._underlyings[(i + step) % len(self._underlyings)])

    def action_ticket(self, side: str) -> None:
        """Ask the app for a ticket on the option under the cursor."""
        instrument = self.table.instrument_at_cursor()
        if instrument:
            self.post_message(self.TicketRequested(instrument, side))

    def action_goto_atm(self) -> None:
        """Cursor to the ATM strike."""
        self.table.goto_atm()
        self.table.focus()

    def action_goto_delta(self) -> None:
        """Ask for a target delta (the app shows the prompt)."""
        self.post_message(self.DeltaPrompt())

    def goto_delta(self, target: float) -> str | None:
        """Cursor to the option with delta nearest ``target``; returns its name."""
        row = self.table.nearest_delta(target)
        if row is None:
            return None
        self.table.move_to(row.strike, row.option_type)
        self.table.focus()
        return row.instrument

    def action_toggle_columns(self) -> None:
        """Switch between the compact and the full column set."""
        table = self.table
        configured = self._columns if self._columns != FULL_COLUMNS else COMPACT_COLUMNS
        table.columns_shown = configured if table.columns_shown == FULL_COLUMNS else FULL_COLUMNS
        self.redraw()
