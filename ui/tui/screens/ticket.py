"""The order ticket: side, size, price in coin / USD / IV, type, time-in-force, post-only, reduce-only;
the what-if margin of the order before it is sent, and the typed error when the desk rejects it.

    app.push_screen(TicketScreen(desk, ctx, side=Side.BUY), on_done)   # on_done(Order | None)

Keys: **ctrl+s** send, **ctrl+t** buy/sell, **ctrl+o** price unit, **Escape** close.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from app.domain import MarginReport, Order, OrderRequest, OrderType, Side, TimeInForce
from app.errors import DeskError
from ui.tui.format import fmt_coin, fmt_iv, fmt_pct, fmt_strike, fmt_usd
from ui.tui.keymap import TICKET_BINDINGS
from ui.tui.port import DeskPort, maybe_await
from ui.tui.ticket_model import (
    PriceMode,
    TicketContext,
    TicketForm,
    build_request,
    convert_price_text,
    default_price_text,
    implied_vol_of,
)

MODE_LABEL = {"coin": "coin", "usd": "USD", "iv": "IV %"}
TIF_LABEL = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}


def margin_delta_text(before: MarginReport | None, after: MarginReport) -> str:
    """``IM 0.10 → 0.14 BTC`` lines comparing margin before and after an order."""
    c = after.currency

    def pair(label: str, old: float | None, new: float) -> str:
        return f"{label:<16} {fmt_coin(old) if old is not None else '—':>10} → [b]{fmt_coin(new)}[/b] {c}"

    lines = [
        pair("initial margin", before.initial_margin if before else None, after.initial_margin),
        pair("maint. margin", before.maintenance_margin if before else None, after.maintenance_margin),
        pair("available funds", before.available_funds if before else None, after.available_funds),
        f"{'IM usage':<16} {fmt_pct(before.im_usage) if before else '—':>10} → [b]{fmt_pct(after.im_usage)}[/b]",
    ]
    if after.available_funds < 0:
        lines.append("[b red]not enough available funds: the desk will reject this order[/]")
    return "\n".join(lines)


def _changed(before: MarginReport | None, after: MarginReport) -> bool:
    if before is None:
        return True
    return (before.initial_margin, before.maintenance_margin, before.available_funds) != (
        after.initial_margin, after.maintenance_margin, after.available_funds)


class TicketScreen(ModalScreen["Order | None"]):
    """A modal order ticket over one instrument."""

    BINDINGS = TICKET_BINDINGS
    HELP = """\
## Order ticket
**Tab** moves between fields. **Ctrl+T** buy/sell, **Ctrl+O** price unit: coin, USD (÷ forward) or IV in %
(priced with Black-76 on the expiry's forward, rounded to the tick). Market orders never rest (IOC).
The what-if block shows margin *after* the order; **Ctrl+S** sends, **Escape** closes. A rejected order
stays here with the desk's reason code.
"""

    def __init__(
        self,
        desk: DeskPort,
        ctx: TicketContext,
        *,
        side: Side = Side.BUY,
        amount: str | None = None,
        price_mode: PriceMode | None = None,
        margin_before: dict[str, MarginReport] | None = None,
    ) -> None:
        super().__init__()
        self.desk = desk
        self.ctx = ctx
        self.side = side
        self.price_mode: PriceMode = price_mode if price_mode in ctx.price_modes() else ctx.native_mode()
        self._amount = amount if amount is not None else format(ctx.instrument.min_amount.normalize(), "f")
        self.margin_before = margin_before or {}
        self.request: OrderRequest | None = None
        self.preview: dict[str, MarginReport] = {}
        self.last_error: DeskError | None = None
        self.sending = False

    # -- layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        inst = self.ctx.instrument
        unit = inst.base if inst.is_option else "USD"
        with VerticalScroll(id="ticket", classes="dialog"):  # scrolls on a short terminal
            yield Static(self._market_line(), id="ticket-market")
            with Grid(id="ticket-grid"):
                yield Label("Side")
                yield Select([("Buy", "buy"), ("Sell", "sell")], value=self.side.value, allow_blank=False, id="side")
                yield Label(f"Size ({unit})")
                yield Input(self._amount, id="amount")
                yield Label("Price in")
                yield Select(
                    [(MODE_LABEL[m], m) for m in self.ctx.price_modes()],
                    value=self.price_mode,
                    allow_blank=False,
                    id="price-mode",
                )
                yield Label("Price")
                yield Input(default_price_text(self.ctx, self.side, self.price_mode), id="price")
                yield Label("Type")
                yield Select([("Limit", "limit"), ("Market", "market")], value="limit", allow_blank=False, id="type")
                yield Label("Time in force")
                yield Select([(v, k.value) for k, v in TIF_LABEL.items()], value=TimeInForce.GTC.value,
                             allow_blank=False, id="tif")
            with Horizontal(id="ticket-flags"):
                yield Checkbox("post-only", id="post-only")
                yield Checkbox("reduce-only", id="reduce-only")
            yield Static("", id="ticket-order")
            yield Static("", id="ticket-whatif")
            yield Static("", id="ticket-error")
            with Horizontal(classes="buttons"):
                yield Button("Send (ctrl+s)", id="send", variant="success")
                yield Button("Close (esc)", id="close")

    def _market_line(self) -> str:
        ctx, inst = self.ctx, self.ctx.instrument
        parts = [f"[b]{inst.name}[/b]"]
        row = ctx.row
        if row is not None:
            parts.append(
                f"bid {fmt_coin(row.bid)} ({fmt_iv(row.bid_iv)})  ask {fmt_coin(row.ask)} ({fmt_iv(row.ask_iv)})"
                f"  mark {fmt_coin(row.mark)} ({fmt_iv(row.mark_iv)})  Δ {row.delta:+.2f}"
            )
        elif ctx.quote is not None:
            q = ctx.quote
            parts.append(f"bid {fmt_usd(q.bid)}  ask {fmt_usd(q.ask)}  mark {fmt_usd(q.mark_price)}")
        if ctx.forward:
            parts.append(f"F {fmt_usd(ctx.forward)}")
        if inst.is_option and inst.strike is not None:
            parts.append(f"K {fmt_strike(float(inst.strike))}")
        return "   ".join(parts)

    def on_mount(self) -> None:
        self.query_one("#amount", Input).focus()
        self.recompute()

    # -- form -------------------------------------------------------------------------------------
    def form(self) -> TicketForm:
        """The ticket's fields as typed."""
        return TicketForm(
            instrument=self.ctx.instrument.name,
            side=self.side,
            amount=self.query_one("#amount", Input).value,
            price=self.query_one("#price", Input).value,
            price_mode=self.price_mode,
            type=OrderType(self.query_one("#type", Select).value),
            tif=TimeInForce(self.query_one("#tif", Select).value),
            post_only=self.query_one("#post-only", Checkbox).value,
            reduce_only=self.query_one("#reduce-only", Checkbox).value,
        )

    def recompute(self) -> None:
        """Rebuild the order from the fields and show its what-if margin (or why it is not valid)."""
        order_line = self.query_one("#ticket-order", Static)
        whatif = self.query_one("#ticket-whatif", Static)
        self.query_one("#price", Input).disabled = self.query_one("#type", Select).value == "market"
        try:
            req = build_request(self.form(), self.ctx)
        except DeskError as exc:
            self.request = None
            self.preview = {}
            order_line.update(f"[yellow]{exc.message}[/]")
            whatif.update("")
            return
        self.request = req
        order_line.update(self._order_text(req))
        try:
            self.preview = self.desk.what_if([req])
        except DeskError as exc:
            self.preview = {}
            whatif.update(f"[b]What-if margin[/b]\n[red]{exc}[/]")
            return
        settle = self.ctx.instrument.settlement
        blocks = [
            margin_delta_text(self.margin_before.get(ccy), report)
            for ccy, report in sorted(self.preview.items())
            if ccy == settle or _changed(self.margin_before.get(ccy), report)
        ]
        whatif.update("[b]What-if margin (after this order)[/b]\n" + "\n".join(blocks))

    def _order_text(self, req: OrderRequest) -> str:
        inst = self.ctx.instrument
        colour = "green" if req.side is Side.BUY else "red"
        text = f"[b {colour}]{req.side.value.upper()}[/] {req.amount} {inst.name} "
        if req.price is None:
            return text + "at market"
        text += f"@ [b]{req.price}[/b] {'' if not inst.is_inverse or not inst.is_option else inst.base}"
        if inst.is_option and self.ctx.forward:
            usd = float(req.price) * (self.ctx.forward if inst.is_inverse else 1.0)
            iv = implied_vol_of(self.ctx, float(req.price))
            text += f" ≈ ${fmt_usd(usd)}" + (f", IV {fmt_iv(iv)}%" if iv is not None else "")
        return text

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _field_changed(self) -> None:
        self.query_one("#ticket-error", Static).update("")
        self.recompute()

    @on(Select.Changed, "#type,#tif")
    def _select_changed(self) -> None:
        self.recompute()

    @on(Select.Changed, "#side")
    def _side_changed(self, event: Select.Changed) -> None:
        side = Side(str(event.value))
        if side is not self.side:
            self.side = side
            self.query_one("#price", Input).value = default_price_text(self.ctx, side, self.price_mode)
        self.recompute()

    @on(Select.Changed, "#price-mode")
    def _mode_changed(self, event: Select.Changed) -> None:
        mode: PriceMode = event.value  # type: ignore[assignment]
        if mode != self.price_mode:
            converted = convert_price_text(self.form(), self.ctx, mode)
            self.price_mode = mode
            self.query_one("#price", Input).value = converted or default_price_text(self.ctx, self.side, mode)
        self.recompute()

    # -- actions ----------------------------------------------------------------------------------
    def action_flip_side(self) -> None:
        """Switch between buy and sell."""
        select = self.query_one("#side", Select)
        # From the Select (set at once), not self.side (set when Select.Changed is handled): two quick flips
        # must come back to the side we started from.
        select.value = Side(str(select.value)).opposite.value

    def action_cycle_price_mode(self) -> None:
        """Type the price in the next unit (coin → USD → IV)."""
        modes = self.ctx.price_modes()
        select = self.query_one("#price-mode", Select)
        # From the Select, not self.price_mode: that follows only once Select.Changed has been handled, so a
        # second key pressed before then would pick the same mode again.
        current = select.value if select.value in modes else self.price_mode
        select.value = modes[(modes.index(current) + 1) % len(modes)]  # type: ignore[arg-type]

    def action_cancel(self) -> None:
        """Close without sending."""
        self.dismiss(None)

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#send")
    async def _send_button(self) -> None:
        await self.action_send()

    async def action_send(self) -> None:
        """Send the order; on a reject show the typed error and keep the ticket open."""
        if self.sending:
            return
        self.recompute()
        error = self.query_one("#ticket-error", Static)
        if self.request is None:
            error.update("[b red]the order is not complete — see the line above[/]")
            return
        self.sending = True
        try:
            order: Order = await maybe_await(self.desk.place(self.request))
        except DeskError as exc:
            self.last_error = exc
            error.update(f"[b red]rejected[/] [red]{exc.code}[/]: {exc.message}")
            return
        finally:
            self.sending = False
        self.dismiss(order)
