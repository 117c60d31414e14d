"""Settlement: delivery payoffs, daily session booking, funding, socialised loss; ledger stays conserved."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.domain import Instrument
from app.engine.accounts import AccountBook
from app.engine.ledger import CLEARING, EXTERNAL, FEES, SOCIALISED, EntryKind
from app.engine.settlement import (
    NO_DELIVERY_FEES,
    DeliveryFees,
    Settlement,
    delivery_fee,
    funding_rate_8h,
    option_payoff,
)
from app.errors import InvalidInput

D = Decimal
PERP = Instrument.parse("BTC-PERPETUAL")
FUT = Instrument.parse("BTC-28JUN24")
CALL = Instrument.parse("BTC-28JUN24-60000-C")


def book() -> AccountBook:
    ab = AccountBook()
    for name in ("a", "b", "c"):
        ab.open(name)
        ab.deposit(name, "BTC", D("10"))
    return ab


def conserved(ab: AccountBook, ccy: str = "BTC") -> dict[str, int]:
    c = ab.ledger.conservation(ccy)
    assert c["users"] + c["fees"] + c["insurance"] + c["socialised"] + c["clearing"] == c["deposits"]
    return c


def test_official_option_payoff_example() -> None:
    # K 10,000, delivery 12,500 -> 2,500 USD = 0.2 BTC per call.
    call = Instrument.parse("BTC-28JUN24-10000-C")
    assert option_payoff(call, D("12500")) == D("0.2")
    put = Instrument.parse("BTC-28JUN24-10000-P")
    assert option_payoff(put, D("12500")) == 0
    assert option_payoff(Instrument.parse("BTC_USDC-28JUN24-10000-C"), D("12500")) == D("2500")


def test_daily_settlement_books_session_pnl_exactly() -> None:
    ab = book()
    ab.apply_trade(PERP, "a", "b", D("100000"), D("60000"), 0)
    ab.apply_trade(PERP, "b", "c", D("40000"), D("62000"), 0)  # b reduces its short
    settle = Settlement(ab)
    settle.daily({"BTC-PERPETUAL": D("61000")}, 1)
    a_pnl = D(100000) / D(60000) - D(100000) / D(61000)
    assert ab.balance("a", "BTC") == (D(10) + a_pnl).quantize(D("1e-10"))
    c = conserved(ab)
    assert c["clearing"] == 0 and abs(c["fees"]) <= 3  # only rounding dust went to fee income
    # The position continues from the settlement price: no PnL if settled again at the same price.
    before = ab.balance("a", "BTC")
    settle.daily({"BTC-PERPETUAL": D("61000")}, 2)
    assert ab.balance("a", "BTC") == before
    kinds = {e.kind for e in ab.ledger.entries("b")}
    assert EntryKind.REALISED_PNL in kinds and EntryKind.SETTLEMENT in kinds


def test_expiry_cash_settles_options_and_delivers_futures() -> None:
    ab = book()
    ab.apply_trade(CALL, "a", "b", D("2"), D("0.05"), 0)
    ab.apply_trade(FUT, "c", "b", D("50000"), D("61000"), 0)
    s = Settlement(ab)
    s.expire(CALL, D("66000"), 10)
    s.expire(FUT, D("66000"), 10)
    payoff = D(6000) / D(66000) * 2
    option_fee = D("0.0002") * 2  # deribit.md §4.5 (historical): 0.02 % of the underlying, under the 12.5 % cap
    assert ab.balance("a", "BTC") == (D(10) - D("0.1") + payoff).quantize(D("1e-10")) - option_fee
    assert ab.position("a", CALL.name) is None and ab.position("c", FUT.name) is None
    fut_pnl = D(50000) / D(61000) - D(50000) / D(66000)
    fut_fee = (D("0.00025") * D(50000) / D(66000)).quantize(D("1e-10"))  # 0.025 % of the coin notional
    assert ab.balance("c", "BTC") == (D(10) + fut_pnl).quantize(D("1e-10")) - fut_fee
    conserved(ab)


def test_funding_formula_and_payments() -> None:
    assert funding_rate_8h(65_010, 65_000) == 0.0  # inside the +/-0.025 % dampener
    assert funding_rate_8h(65_100, 65_000) == pytest.approx(100 / 65_000 - 0.00025)
    assert funding_rate_8h(64_900, 65_000) == pytest.approx(-100 / 65_000 + 0.00025)
    assert funding_rate_8h(80_000, 65_000) == 0.005  # capped
    ab = book()
    ab.apply_trade(PERP, "a", "b", D("65000"), D("65000"), 0)
    Settlement(ab).funding(PERP, 0.0008, 65_000.0, 4 * 3600 * 1000, 5)  # half of 8 hours
    assert ab.balance("a", "BTC") == D("10") - D("0.0004")
    assert ab.balance("b", "BTC") == D("10") + D("0.0004")
    conserved(ab)
    # The running total per perpetual is what the positions view shows, and it equals the entries it sums.
    Settlement(ab).funding(PERP, -0.0002, 65_000.0, 8 * 3600 * 1000, 6)
    funding = ab.ledger.ref_total("a", "btc", EntryKind.FUNDING, PERP.name)
    assert funding == D("-0.0004") + D("0.0002")
    assert funding == sum(
        e.amount for e in ab.ledger.entries("a", "BTC") if e.kind is EntryKind.FUNDING and e.ref == PERP.name
    )
    assert ab.ledger.ref_total("b", "BTC", EntryKind.FUNDING, PERP.name) == -funding
    assert ab.ledger.ref_total("a", "BTC", EntryKind.FUNDING, "BTC-27JUN25") == 0
    with pytest.raises(InvalidInput):
        Settlement(ab).funding(FUT, 0.001, 65_000.0, 1000, 5)


def test_socialised_loss_recovered_pro_rata_from_winners() -> None:
    ab = book()
    ledger = ab.ledger
    # A bankrupt deficit of 0.06 BTC the fund could not cover.
    owed = ledger.to_units("BTC", D("0.06"))
    ledger.post(0, EntryKind.SOCIALISED_LOSS, "BTC", [(SOCIALISED, -owed), (EXTERNAL, owed)])
    ab.apply_trade(PERP, "a", "c", D("60000"), D("60000"), 0)
    ab.apply_trade(PERP, "b", "c", D("30000"), D("60000"), 0)
    s = Settlement(ab)
    s.daily({"BTC-PERPETUAL": D("66000")}, 1)
    a_profit = D(60000) / D(60000) - D(60000) / D(66000)
    b_profit = D(30000) / D(60000) - D(30000) / D(66000)
    assert ledger.balance(SOCIALISED, "BTC") == 0
    a_paid = D(10) + a_profit.quantize(D("1e-10")) - ab.balance("a", "BTC")
    b_paid = D(10) + b_profit.quantize(D("1e-10")) - ab.balance("b", "BTC")
    assert a_paid + b_paid == D("0.06")
    assert a_paid / b_paid == pytest.approx(2.0, rel=1e-6)
    assert ledger.balance(CLEARING, "BTC") == 0


def test_bad_prices_are_refused_before_anything_changes() -> None:
    ab = book()
    ab.apply_trade(PERP, "a", "b", D("1000"), D("60000"), 0)
    n = len(ab.ledger)
    with pytest.raises(InvalidInput):
        Settlement(ab).daily({"BTC-PERPETUAL": D("NaN")}, 1)
    with pytest.raises(InvalidInput):
        Settlement(ab).daily({}, 1)
    with pytest.raises(InvalidInput):
        Settlement(ab).expire(CALL, D("-1"), 1)
    assert len(ab.ledger) == n


def test_socialised_loss_never_takes_more_than_the_profit() -> None:
    ab = book()
    ledger = ab.ledger
    owed = ledger.to_units("BTC", D("5"))
    ledger.post(0, EntryKind.SOCIALISED_LOSS, "BTC", [(SOCIALISED, -owed), (EXTERNAL, owed)])
    ab.apply_trade(PERP, "a", "c", D("60000"), D("60000"), 0)
    Settlement(ab).daily({"BTC-PERPETUAL": D("66000")}, 1)
    assert ab.balance("a", "BTC") == D(10)  # the whole session profit went to the socialised loss
    assert ledger.balance(SOCIALISED, "BTC") == -(D(5) - (D(1) - D(60000) / D(66000)).quantize(D("1e-10")))
    conserved(ab)


def test_next_settlement_is_eight_utc() -> None:
    from datetime import datetime, timezone

    from app.engine.settlement import next_settlement_ms

    def ms(*a: int) -> int:
        return int(datetime(*a, tzinfo=timezone.utc).timestamp() * 1000)

    assert next_settlement_ms(ms(2024, 6, 28, 7, 59)) == ms(2024, 6, 28, 8)
    assert next_settlement_ms(ms(2024, 6, 28, 8)) == ms(2024, 6, 29, 8)
    assert next_settlement_ms(ms(2024, 12, 31, 23, 0)) == ms(2025, 1, 1, 8)


def _fees_of(ab: AccountBook, account: str, ccy: str = "BTC") -> Decimal:
    return -sum((e.amount for e in ab.ledger.entries(account, ccy) if e.kind is EntryKind.FEE), D(0))


def test_delivery_fees_are_charged_to_both_sides_of_what_is_delivered() -> None:
    # deribit.md §4.5 (historical, current rate unconfirmed): futures 0.025 % and options 0.02 % of the delivered
    # underlying, an option's capped at 12.5 % of its value; long and short both pay.
    ab = book()
    put_otm = Instrument.parse("BTC-28JUN24-50000-P")
    ab.apply_trade(CALL, "a", "b", D("2"), D("0.05"), 0)
    ab.apply_trade(put_otm, "a", "b", D("3"), D("0.001"), 0)
    ab.apply_trade(FUT, "c", "b", D("50000"), D("61000"), 0)
    fees_before = ab.ledger.balance(FEES, "BTC")
    s = Settlement(ab)
    for inst in (CALL, put_otm, FUT):
        s.expire(inst, D("66000"), 10)
    opt_fee = D("0.0004")  # 0.0002 x 2 coin, below 12.5 % of 2 x 6000/66000
    fut_fee = (D("0.00025") * D(50000) / D(66000)).quantize(D("1e-10"))
    assert _fees_of(ab, "a") == opt_fee  # the expired-worthless put costs nothing
    assert _fees_of(ab, "b") == opt_fee + fut_fee
    assert _fees_of(ab, "c") == fut_fee
    fee_entries = [e for e in ab.ledger.entries(FEES, "BTC") if e.kind is EntryKind.FEE and e.ts == 10]
    assert {e.ref for e in fee_entries} == {CALL.name, FUT.name}
    assert ab.ledger.balance(FEES, "BTC") - fees_before == 2 * opt_fee + 2 * fut_fee  # plus no rounding dust here
    assert ab.ledger.balance(CLEARING, "BTC") == 0
    conserved(ab)


def test_option_delivery_fee_is_capped_at_an_eighth_of_its_value() -> None:
    # Just in the money: 10 USD of intrinsic at 60,010 is 0.000166 BTC per coin, 12.5 % of it is below 0.02 %.
    d = D("60010")
    value = option_payoff(CALL, d)
    assert value == pytest.approx(D(10) / d)
    assert delivery_fee(CALL, D("-3"), d) == D("0.125") * value * 3 < D("0.0002") * 3
    assert delivery_fee(CALL, D("3"), D("59000")) == 0  # out of the money: nothing delivered, no fee
    assert delivery_fee(PERP, D("1000"), d) == 0  # perpetuals are never delivered
    # Linear (USDC): the rates apply to the USDC notional of the coin delivered.
    lin_call = Instrument.parse("BTC_USDC-28JUN24-60000-C")
    assert delivery_fee(lin_call, D("2"), D("66000")) == D("0.0002") * 2 * D("66000")
    lin_fut = Instrument.parse("BTC_USDC-28JUN24")
    assert delivery_fee(lin_fut, D("-0.5"), D("66000")) == D("0.00025") * D("0.5") * D("66000")
    # The rates are parameters: a venue without delivery fees, or other rates.
    assert delivery_fee(FUT, D("50000"), d, NO_DELIVERY_FEES) == 0
    assert delivery_fee(FUT, D("60010"), d, DeliveryFees(future=D("0.0001"))) == D("0.0001")


def test_no_delivery_fees_keeps_the_plain_payoff() -> None:
    ab = book()
    ab.apply_trade(CALL, "a", "b", D("2"), D("0.05"), 0)
    Settlement(ab, NO_DELIVERY_FEES).expire(CALL, D("66000"), 10)
    assert _fees_of(ab, "a") == 0 == _fees_of(ab, "b")
    assert ab.balance("a", "BTC") == (D(10) - D("0.1") + D(6000) / D(66000) * 2).quantize(D("1e-10"))
    conserved(ab)
