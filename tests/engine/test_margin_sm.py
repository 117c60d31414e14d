"""Standard margin formulas against Deribit's published examples (deribit.md §1.3-1.5)."""

from __future__ import annotations

import pytest

from app.domain import Instrument
from app.engine.margin_params import currency_params
from app.engine.margin_sm import future_margin, option_margin, position_margin
from app.errors import InvalidInput

BTC_SM = currency_params("BTC").sm
ETH_SM = currency_params("ETH").sm
PERP = Instrument.parse("BTC-PERPETUAL")


def test_btc_futures_official_examples() -> None:
    # KB Linear Perpetual: 25 BTC -> IM 2.125 % = 0.53125 BTC, MM 1.125 % = 0.28125 BTC; 350 BTC -> 3.75 % = 13.125 BTC.
    im, mm = future_margin(PERP, 25.0, 100_000.0, BTC_SM)
    assert im == pytest.approx(0.53125, abs=1e-12)
    assert mm == pytest.approx(0.28125, abs=1e-12)
    im, _ = future_margin(PERP, -350.0, 100_000.0, BTC_SM)
    assert im == pytest.approx(13.125, abs=1e-12)


def test_linear_usdc_examples() -> None:
    btc_usdc = Instrument.parse("BTC_USDC-PERPETUAL")
    im, _ = position_margin(btc_usdc, 25.0, 100_000.0, 100_000.0, 100_000.0)
    assert im == pytest.approx(53_125.0, rel=1e-12)
    sol = Instrument.parse("SOL_USDC-PERPETUAL")
    im, _ = position_margin(sol, 6000.0, 200.0, 200.0, 200.0)
    assert im == pytest.approx(84_000.0, rel=1e-12)  # 4 % + 6000 x 0.0005 % = 7 % -> 420 SOL -> 84,000 USDC


def test_eth_perpetual_live_position() -> None:
    # Live get_positions: size -120 USD, size_currency -0.04591948 -> IM 0.000918398, MM 0.000459203.
    eth = Instrument.parse("ETH-PERPETUAL")
    im, mm = future_margin(eth, -0.04591948, 2613.27, ETH_SM)
    assert round(im, 9) == pytest.approx(0.000918398, abs=1e-12)
    assert round(mm, 9) == pytest.approx(0.000459203, abs=1e-12)


def test_short_call_formula() -> None:
    call = Instrument.parse("BTC-28JUN24-70000-C")
    s, mark = 65_000.0, 0.012
    im, mm = option_margin(call, -2.0, mark, s, BTC_SM)
    otm = 70_000 - s
    assert im == pytest.approx(2 * (max(0.15 - otm / s, 0.1) + mark))
    assert mm == pytest.approx(2 * (0.075 + mark))
    deep_otm = Instrument.parse("BTC-28JUN24-100000-C")
    im, _ = option_margin(deep_otm, -1.0, 0.0005, s, BTC_SM)
    assert im == pytest.approx(0.1 + 0.0005)  # floored at 10 %


def test_short_put_im_never_below_mm() -> None:
    # Inverse put worth several coins (S << K): 0.075 * mark + mark exceeds 0.15 + mark.
    put = Instrument.parse("BTC-28JUN24-60000-P")
    s, mark = 10_000.0, 5.0  # 0.075 * 5 > 0.15
    im, mm = option_margin(put, -1.0, mark, s, BTC_SM)
    assert mm == pytest.approx(0.075 * mark + mark)
    assert im == pytest.approx(mm)
    im2, mm2 = option_margin(put, -1.0, 0.02, 65_000.0, BTC_SM)
    assert mm2 == pytest.approx(0.075 + 0.02)
    assert im2 == pytest.approx(max(0.15 - 5_000 / 65_000, 0.1) + 0.02)


def test_longs_need_no_margin() -> None:
    call = Instrument.parse("BTC-28JUN24-70000-C")
    assert option_margin(call, 3.0, 0.01, 65_000.0, BTC_SM) == (0.0, 0.0)


def test_unknown_currency_is_typed() -> None:
    with pytest.raises(InvalidInput) as exc:
        currency_params("DOGE")
    assert exc.value.code == "margin.unknown_currency"


def test_a_short_linear_option_is_margined_on_the_index_and_an_inverse_one_on_its_forward() -> None:
    # §1.4 (USD form, secondary): IM = max(0.15 - OTM/S, 0.1) x S + mark with S the index in USDC.
    idx, fwd, mark = 65_000.0, 66_500.0, 2_000.0
    lin = Instrument.parse("BTC_USDC-27SEP24-70000-C")
    im, mm = position_margin(lin, -1.0, mark, fwd, idx)
    assert im == pytest.approx(max(0.15 - (70_000 - idx) / idx, 0.1) * idx + mark)
    assert mm == pytest.approx(0.075 * idx + mark)
    # §1.3: inverse options take the underlying's mark (the forward).
    inv = Instrument.parse("BTC-27SEP24-70000-C")
    assert position_margin(inv, -1.0, 0.03, fwd, idx) == option_margin(inv, -1.0, 0.03, fwd, currency_params("BTC").sm)
