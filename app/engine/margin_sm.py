"""Standard margin: Deribit's per-position formulas (deribit.md §1.3-1.6), no offsets between positions.

All functions return (initial, maintenance) margin of a whole position in its settlement currency: coin for
inverse BTC/ETH instruments, USDC for linear ones. Sizes are signed base-coin amounts.

Inverse options, per coin (S = underlying mark price in USD, ``mark`` in coin)::

    short call  IM = max(0.15 - OTM/S, 0.1) + mark        MM = 0.075 + mark
    short put   MM = max(0.075, 0.075 * mark) + mark       IM = max(max(0.15 - OTM/S, 0.1) + mark, MM)
    long        no margin (the premium is paid up front)

Futures and perpetuals: ``rate = base + size_coin * increment`` and ``margin = size_coin * rate`` (x index price
for linear ones). Linear options use the same ratios in USD form (UNCONFIRMED at Deribit, §1.4).
"""

from __future__ import annotations

from app.domain import Instrument, Kind
from app.engine.margin_params import LINEAR_SM_BY_BASE, SMParams, currency_params


def sm_params_for(inst: Instrument) -> SMParams:
    """The SM rates that apply to ``inst`` (linear futures take their underlying's rates)."""
    if not inst.inverse and inst.base in LINEAR_SM_BY_BASE:
        return LINEAR_SM_BY_BASE[inst.base]
    return currency_params(inst.settlement).sm


def option_margin(inst: Instrument, size_coin: float, mark: float, underlying: float, p: SMParams) -> tuple[float, float]:
    """(IM, MM) of an option position; ``mark`` in the settlement currency per coin, ``underlying`` in USD."""
    if size_coin >= 0:
        return 0.0, 0.0
    q = -size_coin
    strike = float(inst.strike)  # type: ignore[arg-type]
    s = underlying
    if inst.is_call:
        otm = max(0.0, strike - s)
    else:
        otm = max(0.0, s - strike)
    ratio = max(p.option_im_base - otm / s, p.option_im_floor)
    # Linear options are quoted in USDC: the coin ratios apply to S (USD form, §1.4).
    scale = 1.0 if inst.inverse else s
    if inst.is_call:
        im = ratio * scale + mark
        mm = p.option_mm_call * scale + mark
    else:
        mm = max(p.option_mm_put * scale, p.option_mm_put * mark) + mark
        im = max(ratio * scale + mark, mm)
    return q * im, q * mm


def future_margin(
    inst: Instrument, size_coin: float, index_price: float, p: SMParams, rate_size: float | None = None
) -> tuple[float, float]:
    """(IM, MM) of a futures/perpetual position of ``size_coin`` coin (inverse: USD size / mark).

    ``rate_size`` is the coin size the increment applies to: the position itself (Deribit KB: each position is
    margined separately), or the currency's total futures size when ``increment_per_instrument`` is off.
    """
    q = abs(size_coin)
    r = q if rate_size is None else abs(rate_size)
    im = q * (p.future_im_base + r * p.future_increment)
    mm = q * (p.future_mm_base + r * p.future_increment)
    if not inst.inverse:
        im *= index_price
        mm *= index_price
    return im, mm


def position_margin(
    inst: Instrument, size_coin: float, mark: float, underlying: float, index_price: float,
    rate_size: float | None = None,
) -> tuple[float, float]:
    """(IM, MM) of one position under standard margin, in its settlement currency."""
    p = sm_params_for(inst)
    if inst.kind is Kind.OPTION:
        # Inverse options use the underlying's mark (the forward, §1.3); the USD form for linear options is
        # written with S = the index price in USDC (§1.4, secondary source).
        return option_margin(inst, size_coin, mark, underlying if inst.inverse else index_price, p)
    if inst.kind in (Kind.FUTURE, Kind.PERPETUAL):
        return future_margin(inst, size_coin, index_price, p, None if p.increment_per_instrument else rate_size)
    return 0.0, 0.0


def option_buy_premium(inst: Instrument, amount: float, price: float) -> float:
    """Premium a buy order of ``amount`` (contracts, the order's unit) at ``price`` reserves (settlement currency)."""
    return max(amount, 0.0) * price * float(inst.contract_size)
