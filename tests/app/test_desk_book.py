"""The Desk's book (app.portfolio_view): positions from fills, PnL, incremental greeks, settlement."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import Fill, Instrument, Liquidity, Side
from app.portfolio_view import Book
from app.pricing.black import inverse_greeks

NOW = 1_704_067_200_000
PERP = Instrument.parse("BTC-PERPETUAL")
CALL = Instrument.parse("BTC-26JAN24-60000-C")
PUT = Instrument.parse("BTC-26JAN24-55000-P")


def _fill(inst: Instrument, side: Side, amount: str, price: str, fee: str = "0") -> Fill:
    return Fill("t", "o", inst.name, side, Decimal(price), Decimal(amount), Decimal(fee), "BTC", Liquidity.TAKER, NOW)


def test_inverse_future_average_and_realised_pnl_in_coin() -> None:
    b = Book()
    b.apply_fill(_fill(PERP, Side.BUY, "10000", "50000"), PERP)
    pos = b.apply_fill(_fill(PERP, Side.BUY, "10000", "40000"), PERP)
    # USD amounts buy 1/price coin each: the average is harmonic, 20000 / (0.2 + 0.25)
    assert pos.average_price == Decimal(20000) / (Decimal("0.2") + Decimal("0.25"))
    pos = b.apply_fill(_fill(PERP, Side.SELL, "20000", "50000"), PERP)
    assert pos.size == 0
    expected = Decimal(20000) * (1 / (Decimal(20000) / Decimal("0.45")) - 1 / Decimal(50000))
    assert pos.realized_pnl == pytest.approx(expected)
    assert b.positions() == []


def test_option_flip_realises_the_closed_part_and_reopens_at_the_fill_price() -> None:
    b = Book()
    b.apply_fill(_fill(CALL, Side.BUY, "2", "0.05", "0.0006"), CALL)
    pos = b.apply_fill(_fill(CALL, Side.SELL, "3", "0.07", "0.0009"), CALL)
    assert pos.size == Decimal(-1) and pos.average_price == Decimal("0.07")
    assert pos.realized_pnl == Decimal("0.04")
    assert b.realized("BTC") == Decimal("0.04") - Decimal("0.0015")


def test_greeks_totals_by_difference_equal_a_full_sum() -> None:
    b = Book()
    b.set_index("BTC", 60_000.0)
    b.apply_fill(_fill(CALL, Side.BUY, "3", "0.05"), CALL)
    b.apply_fill(_fill(PUT, Side.SELL, "2", "0.02"), PUT)
    b.apply_fill(_fill(PERP, Side.SELL, "30000", "60000"), PERP)
    rng = np.random.default_rng(1)
    for _ in range(50):
        f = 60_000.0 * float(np.exp(rng.normal(0, 0.01)))
        for inst in (CALL, PUT):
            b.mark(inst.name, 0.03, float(rng.uniform(0.4, 0.8)), f)
        b.mark(PERP.name, f)
        b.flush(NOW)
    full = 0.0
    for inst, size in ((CALL, 3.0), (PUT, -2.0)):
        h = b.held[inst.name]
        g = inverse_greeks(h.forward, float(inst.strike), inst.years_to_expiry(NOW), h.iv, inst.is_call)
        full += size * float(g.delta)
    full += -30_000.0 / b.held[PERP.name].mark
    assert b.delta("BTC") == pytest.approx(full, rel=1e-12, abs=1e-12)
    view = b.greeks("BTC")
    assert view.delta_usd == pytest.approx(view.delta * 60_000.0)


def test_unchanged_marks_do_not_reprice() -> None:
    b = Book()
    b.apply_fill(_fill(CALL, Side.BUY, "1", "0.05"), CALL)
    b.mark(CALL.name, 0.05, 0.6, 60_000.0)
    assert b.flush(NOW) == 1
    b.mark(CALL.name, 0.05, 0.6, 60_000.0)
    assert b.flush(NOW) == 0
    assert b.mark("BTC-NOPE", 1.0) is False


@settings(max_examples=60, deadline=None)
@given(delivery=st.floats(20_000, 120_000), size=st.integers(-5, 5).filter(bool), price=st.floats(0.001, 0.3))
def test_settlement_realises_the_inverse_payoff(delivery: float, size: int, price: float) -> None:
    b = Book()
    side = Side.BUY if size > 0 else Side.SELL
    px = Decimal(repr(round(price, 4)))
    b.apply_fill(_fill(CALL, side, str(abs(size)), str(px)), CALL)
    final = b.settle(CALL.name, delivery)
    assert final is not None and final.size == 0 and CALL.name not in b.held
    payoff = max(0.0, delivery - 60_000.0) / delivery
    assert float(final.realized_pnl) == pytest.approx(size * (payoff - float(px)), abs=1e-9)
    assert b.delta("BTC") == pytest.approx(0.0, abs=1e-12)
    assert b.settle(CALL.name, delivery) is None


def test_a_linear_option_shows_its_plain_delta_and_gamma_and_an_inverse_one_the_premium_adjusted() -> None:
    from app.pricing import black76, black76_price

    lin = Instrument.parse("BTC_USDC-26JAN24-60000-C")
    t = (lin.expiry_ms - NOW) / (365 * 86_400_000)
    f, k, iv = 60_000.0, 60_000.0, 0.6
    b = Book()
    fill = Fill("t", "o", lin.name, Side.BUY, Decimal("3700"), Decimal("2"), Decimal("0"), "USDC", Liquidity.TAKER, NOW)
    b.apply_fill(fill, lin)
    b.mark(lin.name, float(black76_price(f, k, t, iv, True)), iv, f)
    b.set_index("BTC", f)
    b.flush(NOW)
    usd = black76(f, k, t, iv, True)
    # A USDC option's value is in USD: its hedge ratio in coin is dV/dF, the plain delta (no premium adjustment).
    bump = 1.0
    fd = (float(black76_price(f + bump, k, t, iv, True)) - float(black76_price(f - bump, k, t, iv, True))) / (2 * bump)
    view = b.greeks("BTC")
    assert view.delta == pytest.approx(2 * fd, rel=1e-6) == pytest.approx(2 * float(usd.delta), rel=1e-9)
    assert view.gamma == pytest.approx(2 * float(usd.gamma), rel=1e-9)
    assert view.vega == pytest.approx(2 * float(usd.vega) / f * 0.01, rel=1e-9)  # coin per 1%: USD / forward
    # The inverse option beside it keeps the premium-adjusted coin delta.
    b.apply_fill(_fill(CALL, Side.BUY, "1", "0.05"), CALL)
    b.mark(CALL.name, 0.05, iv, f)
    b.flush(NOW)
    inv = inverse_greeks(f, 60_000.0, (CALL.expiry_ms - NOW) / (365 * 86_400_000), iv, True)
    assert b.greeks("BTC").delta == pytest.approx(2 * float(usd.delta) + float(inv.delta), rel=1e-9)
