"""The order ticket's logic without the screen: a form's fields to an :class:`OrderRequest`.

Prices can be typed in coin, in USD or as an implied volatility; the ticket converts them to the
instrument's price unit (coin for inverse options) with the desk's pricing (Black-76 on the forward) and
rounds to the instrument's tick.

    ctx = TicketContext.for_option(Instrument.parse("BTC-27DEC24-60000-P"), forward=61_000.0, now_ms=now)
    form = TicketForm("BTC-27DEC24-60000-P", Side.BUY, amount="0.1", price="55", price_mode="iv")
    req = build_request(form, ctx)         # limit buy 0.1 at the coin price of 55% IV
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from app.domain import ChainRow, Instrument, OrderRequest, OrderType, Quote, Side, TimeInForce
from app.errors import InvalidInput

PriceMode = Literal["coin", "usd", "iv"]
PRICE_MODES: tuple[PriceMode, ...] = ("coin", "usd", "iv")


@dataclass(frozen=True)
class TicketContext:
    """What the ticket knows about the market of its instrument when it opens."""

    instrument: Instrument
    now_ms: int
    forward: float | None = None
    index_price: float | None = None
    row: ChainRow | None = None
    quote: Quote | None = None

    @property
    def years(self) -> float:
        """Time to expiry in years (365-day)."""
        return self.instrument.years_to_expiry(self.now_ms)

    def price_modes(self) -> tuple[PriceMode, ...]:
        """Units a price can be typed in: coin/USD/IV for inverse options, USD/IV for linear, USD otherwise."""
        if self.instrument.is_option:
            return PRICE_MODES if self.instrument.is_inverse else ("usd", "iv")
        return ("usd",)

    def native_mode(self) -> PriceMode:
        """The mode that is the instrument's own price unit."""
        return "coin" if self.instrument.is_option and self.instrument.is_inverse else "usd"

    def best(self, side: Side) -> float | None:
        """The price a buyer pays (ask) or a seller gets (bid), else the mark, in the native unit."""
        src = self.row or self.quote
        if src is None:
            return None
        price = src.ask if side is Side.BUY else src.bid
        if price is None:
            price = getattr(src, "mark", None) if self.row is not None else getattr(src, "mark_price", None)
        return price


@dataclass(frozen=True)
class TicketForm:
    """The fields of the ticket as typed (strings for what the trader types)."""

    instrument: str
    side: Side
    amount: str
    price: str = ""
    price_mode: PriceMode = "coin"
    type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False


def parse_decimal(label: str, text: str) -> Decimal:
    """A typed number as Decimal; InvalidInput with the field's name when it is not one."""
    try:
        value = Decimal(text.strip().replace(",", "").replace("_", ""))
    except InvalidOperation:
        raise InvalidInput(f"{label}: {text!r} is not a number", code="input.number", field=label) from None
    if not value.is_finite():
        raise InvalidInput(f"{label}: {text!r} is not a finite number", code="input.nan", field=label)
    return value


def option_price_from_iv(ctx: TicketContext, iv: float) -> float:
    """Native-unit price of the context's option at implied vol ``iv`` (fraction): coin for inverse, USD for linear."""
    from app.pricing import black76  # lazy: numpy/scipy stay out of the TUI's start-up path

    inst = ctx.instrument
    if ctx.forward is None or not ctx.forward > 0:
        raise InvalidInput("no forward price for this expiry yet, cannot price from IV", code="ticket.no_forward")
    if ctx.years <= 0:
        raise InvalidInput(f"{inst.name} has expired, cannot price from IV", code="ticket.expired")
    usd = float(black76(ctx.forward, float(inst.strike or 0), ctx.years, iv, inst.is_call).price)
    return usd / ctx.forward if inst.is_inverse else usd


def implied_vol_of(ctx: TicketContext, price: float) -> float | None:
    """The IV (fraction) of a native-unit option price, or None when none fits or no forward is known."""
    if not ctx.instrument.is_option or ctx.forward is None or ctx.years <= 0 or price <= 0:
        return None
    from app.pricing import implied_vol, implied_vol_coin

    inst = ctx.instrument
    fn = implied_vol_coin if inst.is_inverse else implied_vol
    iv = float(fn(price, ctx.forward, float(inst.strike or 0), ctx.years, inst.is_call))
    return iv if math.isfinite(iv) else None


def native_price(form: TicketForm, ctx: TicketContext) -> Decimal:
    """The form's price in the instrument's price unit, rounded to its tick; raise InvalidInput."""
    inst = ctx.instrument
    if form.price_mode not in ctx.price_modes():
        raise InvalidInput(f"{inst.name} cannot be priced in {form.price_mode}", code="ticket.price_mode")
    typed = parse_decimal("price", form.price)
    if form.price_mode == "iv":
        if typed <= 0 or typed > 1000:
            raise InvalidInput(f"IV {typed}% is out of range (0, 1000]", code="ticket.iv_range", field="price")
        value = option_price_from_iv(ctx, float(typed) / 100.0)
    elif form.price_mode == "usd" and inst.is_option and inst.is_inverse:
        if ctx.forward is None or not ctx.forward > 0:
            raise InvalidInput("no forward price yet, cannot convert USD to coin", code="ticket.no_forward")
        value = float(typed) / ctx.forward
    else:
        value = float(typed)
    if not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"price {form.price} gives no positive {inst.name} price", code="order.rejected.price",
                           field="price")
    price = inst.round_price(Decimal(repr(value)))
    if price <= 0:
        price = inst.tick_at(Decimal(0))
    return price


def build_request(form: TicketForm, ctx: TicketContext) -> OrderRequest:
    """The order the form describes; raises InvalidInput (typed, with the field) when it is incomplete."""
    amount = parse_decimal("size", form.amount)
    ctx.instrument.to_lots(amount)  # lot check with the venue's message
    price = None if form.type is OrderType.MARKET else native_price(form, ctx)
    tif = form.tif
    if form.type is OrderType.MARKET and tif is TimeInForce.GTC:
        tif = TimeInForce.IOC  # a market order never rests
    return OrderRequest(
        instrument=form.instrument,
        side=form.side,
        amount=amount,
        price=price,
        type=form.type,
        tif=tif,
        post_only=form.post_only,
        reduce_only=form.reduce_only,
        reason="tui ticket",
    )


def default_price_text(ctx: TicketContext, side: Side, mode: PriceMode) -> str:
    """The price field's starting text: the touch (ask to buy, bid to sell) in ``mode``'s unit."""
    best = ctx.best(side)
    if best is None:
        return ""
    if mode == "iv":
        row = ctx.row
        iv = (row.ask_iv if side is Side.BUY else row.bid_iv) if row is not None else None
        if iv is None:
            iv = row.mark_iv if row is not None else implied_vol_of(ctx, best)
        return "" if iv is None else f"{iv * 100:.1f}"
    if mode == "usd" and ctx.instrument.is_option and ctx.instrument.is_inverse and ctx.forward:
        return f"{best * ctx.forward:.2f}"
    return format(Decimal(repr(best)).normalize(), "f")


def convert_price_text(form: TicketForm, ctx: TicketContext, new_mode: PriceMode) -> str:
    """The price field re-expressed in ``new_mode`` (so switching units keeps the same order price)."""
    try:
        price = float(native_price(form, ctx))
    except InvalidInput:
        return ""
    if new_mode == "iv":
        iv = implied_vol_of(ctx, price)
        return "" if iv is None else f"{iv * 100:.1f}"
    if new_mode == "usd" and ctx.instrument.is_option and ctx.instrument.is_inverse and ctx.forward:
        return f"{price * ctx.forward:.2f}"
    return format(Decimal(repr(price)).normalize(), "f")
