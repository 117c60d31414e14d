"""Maker/taker fees per instrument class, in exact integer units, with Deribit's 12.5% option fee cap.

Deribit (``deribit.md`` §4.5):

* inverse futures and perpetuals: ``rate × amount_usd / price`` coin (a percentage of the coin notional);
* inverse (BTC/ETH) options: ``rate × amount`` coin per coin of underlying, capped at 12.5% of the option
  price: ``min(rate × amount, 0.125 × price × amount)``;
* linear (USDC) options: ``rate × index × amount`` USDC, capped at 12.5% of the premium ``price × amount``;
* linear futures, perpetuals and spot: ``rate × amount × price`` in the quote currency.

The engine charges fees in integer units of 1e-10 of the settlement currency (``events.FEE_SCALE``),
each fill's fee rounded half up (to +infinity, so a rebate of -0.5 units rounds to 0), so ledgers stay
exact. All coefficients are precomputed as
exact fractions when the instrument is listed; a fill costs a few integer operations.

    sched = FeeSchedule.for_instrument(Instrument.parse("BTC-PERPETUAL"))
    maker_units, taker_units = sched.fees(lots=100, ticks=120_000)   # 1000 USD at 60,000 USD
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from app.domain import Instrument, Kind
from app.engine.events import FEE_SCALE, fee_decimal
from app.errors import InvalidInput

OPTION_FEE_CAP = Fraction(1, 8)
"""Deribit: an option fee never exceeds 12.5% of the option price."""

_LINEAR, _INVERSE, _OPTION = 0, 1, 2


def _ratio(value: Fraction) -> tuple[int, int]:
    return value.numerator, value.denominator


class FeeSchedule:
    """Maker and taker fee of one instrument as integer arithmetic on (lots, ticks).

    ``fees(lots, ticks)`` returns ``(maker_units, taker_units)`` in 1e-10 of the settlement currency.
    For linear options the fee is proportional to the index price: :meth:`set_index` updates it (the
    strike stands in until an index is known).
    """

    __slots__ = ("maker_rate", "taker_rate", "_mode", "_inst", "_m", "_t", "_den", "_cap", "_cap_num")

    def __init__(self, inst: Instrument, maker_rate: Decimal, taker_rate: Decimal) -> None:
        for label, rate in (("maker_rate", maker_rate), ("taker_rate", taker_rate)):
            if not isinstance(rate, Decimal) or not rate.is_finite():
                raise InvalidInput(f"{label} {rate!r} must be a finite Decimal", code="input.fee_rate")
        self.maker_rate = maker_rate
        self.taker_rate = taker_rate
        self._inst = inst
        # Amounts are already in the amount unit (USD for inverse futures, coin otherwise).
        lot = Fraction(inst.min_amount)
        tick = Fraction(inst.tick_size)
        if inst.kind is Kind.OPTION:
            self._mode = _OPTION
            # An option's amount counts contracts of ``contract_size`` coin each (1 for BTC/ETH; a multiplier for
            # some linear options): fee and premium are per coin of underlying.
            coin = lot * Fraction(inst.contract_size)
            # 12.5% of the premium of one lot at one tick, in fee units.
            self._cap = OPTION_FEE_CAP * tick * coin * FEE_SCALE
            if inst.inverse:
                self._set_option_base(coin)
            else:
                self._set_option_base(coin * Fraction(inst.strike or 0))
        elif inst.inverse:
            # coin = rate × lots × lot_usd / (ticks × tick)
            self._mode = _INVERSE
            base = lot * FEE_SCALE / tick
            self._set_pair(Fraction(maker_rate) * base, Fraction(taker_rate) * base)
        else:
            # quote = rate × lots × lot × ticks × tick
            self._mode = _LINEAR
            base = lot * tick * FEE_SCALE
            self._set_pair(Fraction(maker_rate) * base, Fraction(taker_rate) * base)

    @classmethod
    def for_instrument(
        cls, inst: Instrument, maker_rate: Decimal | None = None, taker_rate: Decimal | None = None
    ) -> FeeSchedule:
        """The schedule of ``inst`` from its own ``maker_fee``/``taker_fee`` rates unless overridden."""
        return cls(
            inst,
            inst.maker_fee if maker_rate is None else maker_rate,
            inst.taker_fee if taker_rate is None else taker_rate,
        )

    def _set_pair(self, maker: Fraction, taker: Fraction) -> None:
        den = maker.denominator * taker.denominator
        self._m = int(maker * den)
        self._t = int(taker * den)
        self._den = den

    def _set_option_base(self, notional_per_lot: Fraction) -> None:
        # Fee per lot before the cap: rate × (coin, or USDC of index) per lot, in fee units.
        maker = Fraction(self.maker_rate) * notional_per_lot * FEE_SCALE
        taker = Fraction(self.taker_rate) * notional_per_lot * FEE_SCALE
        cap = self._cap
        den = maker.denominator * taker.denominator * cap.denominator
        self._m = int(maker * den)
        self._t = int(taker * den)
        self._den = den
        self._cap_num = int(cap * den)  # cap per tick on the same denominator

    def set_index(self, index_price: Decimal) -> None:
        """Update the index price (USD per coin) a linear option's fee is proportional to."""
        if self._mode != _OPTION or self._inst.inverse:
            return
        if not isinstance(index_price, Decimal) or not index_price.is_finite() or index_price <= 0:
            raise InvalidInput(f"index price {index_price!r} must be a positive Decimal", code="input.index")
        coin = Fraction(self._inst.min_amount) * Fraction(self._inst.contract_size)
        self._set_option_base(coin * Fraction(index_price))

    def coefficients(self, ticks: int) -> tuple[int, int, int]:
        """``(maker, taker, den)`` at a price: a fill of ``lots`` pays ``round_half_up(coef × lots / den)``
        fee units. The matching loop asks once per price level and does the rest inline."""
        mode = self._mode
        if mode == _LINEAR:
            return self._m * ticks, self._t * ticks, self._den
        if mode == _INVERSE:
            return self._m, self._t, self._den * ticks
        # Options: the 12.5% cap per lot at this price; a negative (rebate) rate is never capped.
        cap = self._cap_num * ticks
        return min(self._m, cap), min(self._t, cap), self._den

    def fees(self, lots: int, ticks: int) -> tuple[int, int]:
        """(maker, taker) fee of a fill of ``lots`` at ``ticks``, in 1e-10 units of the settlement currency."""
        m, t, den = self.coefficients(ticks)
        d2 = 2 * den
        return (2 * m * lots + den) // d2, (2 * t * lots + den) // d2

    def fee(self, lots: int, ticks: int, maker: bool) -> Decimal:
        """Fee of one side of a fill as an exact Decimal amount of the settlement currency."""
        return fee_decimal(self.fees(lots, ticks)[0 if maker else 1])
