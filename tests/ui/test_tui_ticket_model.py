"""The ticket's form → OrderRequest logic: coin, USD and IV prices, rounding, typed errors."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from app.domain import ChainRow, Instrument, OptionType, OrderType, Side, TimeInForce, ms_from_utc
from app.errors import InvalidInput
from app.pricing import black76_price, implied_vol_coin
from ui.tui.ticket_model import (
    TicketContext,
    TicketForm,
    build_request,
    convert_price_text,
    default_price_text,
    native_price,
)

NAME = "BTC-27DEC24-90000-P"
NOW = ms_from_utc(datetime(2024, 11, 27, 8, tzinfo=timezone.utc))
F = 95_000.0


def _ctx() -> TicketContext:
    row = ChainRow(NAME, 90_000.0, OptionType.PUT, 0.0200, 0.0215, 5.0, 5.0, 0.0207, 0.52, 0.55, 0.535,
                   -0.25, 1e-5, 0.0008, -0.0001)
    return TicketContext(Instrument.parse(NAME), now_ms=NOW, forward=F, index_price=F, row=row)


def test_coin_price_rounds_to_tick() -> None:
    req = build_request(TicketForm(NAME, Side.BUY, "0.3", "0.02013", "coin"), _ctx())
    assert req.price == Decimal("0.0200") and req.amount == Decimal("0.3") and req.side is Side.BUY


def test_usd_price_is_divided_by_the_forward() -> None:
    price = native_price(TicketForm(NAME, Side.BUY, "0.1", "1900", "usd"), _ctx())
    assert price == Instrument.parse(NAME).round_price(Decimal(1900) / Decimal(F))


def test_iv_price_is_black76_on_the_forward_in_coin() -> None:
    ctx = _ctx()
    price = native_price(TicketForm(NAME, Side.BUY, "0.1", "55", "iv"), ctx)
    expected = float(black76_price(F, 90_000.0, ctx.years, 0.55, False)) / F
    assert abs(float(price) - expected) <= 0.00025  # within half a 0.0005 tick
    assert abs(float(implied_vol_coin(float(price), F, 90_000.0, ctx.years, False)) - 0.55) < 0.01


def test_switching_units_keeps_the_price() -> None:
    ctx = _ctx()
    form = TicketForm(NAME, Side.BUY, "0.1", "0.0205", "coin")
    iv_text = convert_price_text(form, ctx, "iv")
    back = native_price(TicketForm(NAME, Side.BUY, "0.1", iv_text, "iv"), ctx)
    assert back == Decimal("0.0205")
    assert convert_price_text(form, ctx, "usd") == f"{0.0205 * F:.2f}"


def test_defaults_are_the_touch() -> None:
    ctx = _ctx()
    assert default_price_text(ctx, Side.BUY, "coin") == "0.0215"
    assert default_price_text(ctx, Side.SELL, "coin") == "0.02"
    assert default_price_text(ctx, Side.BUY, "iv") == "55.0"


def test_market_orders_carry_no_price_and_do_not_rest() -> None:
    req = build_request(TicketForm(NAME, Side.SELL, "0.1", "", "coin", type=OrderType.MARKET), _ctx())
    assert req.price is None and req.tif is TimeInForce.IOC


@pytest.mark.parametrize(
    ("form", "code"),
    [
        (TicketForm(NAME, Side.BUY, "abc", "0.02"), "input.number"),
        (TicketForm(NAME, Side.BUY, "0.15", "0.02"), "order.rejected.lot"),
        (TicketForm(NAME, Side.BUY, "-1", "0.02"), "order.rejected.amount"),
        (TicketForm(NAME, Side.BUY, "0.1", "0"), "order.rejected.price"),
        (TicketForm(NAME, Side.BUY, "0.1", "5000", "iv"), "ticket.iv_range"),
        (TicketForm(NAME, Side.BUY, "0.1", "nan"), "input.nan"),
    ],
)
def test_bad_fields_raise_typed_errors(form: TicketForm, code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        build_request(form, _ctx())
    assert err.value.code == code


def test_perpetual_is_priced_in_usd_only() -> None:
    ctx = TicketContext(Instrument.parse("BTC-PERPETUAL"), now_ms=NOW)
    assert ctx.price_modes() == ("usd",)
    req = build_request(TicketForm("BTC-PERPETUAL", Side.SELL, "100", "95000.3", "usd"), ctx)
    assert req.price == Decimal("95000.5") and req.amount == Decimal("100")
    with pytest.raises(InvalidInput):
        build_request(TicketForm("BTC-PERPETUAL", Side.SELL, "100", "40", "iv"), ctx)
