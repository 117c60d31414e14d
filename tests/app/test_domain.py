"""Instrument names, tick and lot rules, order validation."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain import (
    Instrument,
    Kind,
    OptionType,
    OrderRequest,
    OrderType,
    Side,
    contract_spec,
    expiry_code,
    format_strike,
)
from app.errors import InvalidInput, InvalidInstrument

NAMES = [
    "BTC-PERPETUAL",
    "ETH-PERPETUAL",
    "BTC_USDC-PERPETUAL",
    "BTC-27DEC24",
    "BTC-5AUG23",
    "BTC-27DEC24-60000-C",
    "ETH-6JUL25-1500-P",
    "XRP_USDC-30JUN23-0d625-C",
    "SOL_USDC-25JUL25-150-C",
    "BTC_USDT",
]


@pytest.mark.parametrize("name", NAMES)
def test_known_names_round_trip(name: str) -> None:
    assert Instrument.parse(name).name == name


def test_option_fields() -> None:
    inst = Instrument.parse("BTC-27DEC24-60000-C")
    assert inst.kind is Kind.OPTION and inst.option_type is OptionType.CALL
    assert inst.strike == Decimal("60000") and inst.inverse and inst.settlement == "BTC"
    assert inst.expiry == datetime(2024, 12, 27, 8, tzinfo=timezone.utc)
    assert inst.min_amount == Decimal("0.1") and inst.underlying == "btc_usd"
    linear = Instrument.parse("XRP_USDC-30JUN23-0d625-C")
    assert linear.strike == Decimal("0.625") and not linear.inverse and linear.settlement == "USDC"
    assert Instrument.parse("BTC-PERPETUAL").contract_size == Decimal("10")


@st.composite
def instruments(draw: st.DrawFn) -> Instrument:
    base = draw(st.sampled_from(["BTC", "ETH", "SOL", "XRP", "PAXG", "AVAX"]))
    linear = draw(st.booleans()) or base not in ("BTC", "ETH")
    kind = draw(st.sampled_from([Kind.OPTION, Kind.FUTURE, Kind.PERPETUAL]))
    expiry = None
    strike = None
    option_type = None
    if kind is not Kind.PERPETUAL:
        d = draw(st.dates(min_value=datetime(2001, 1, 1).date(), max_value=datetime(2099, 12, 31).date()))
        expiry = datetime(d.year, d.month, d.day, 8, tzinfo=timezone.utc)
    if kind is Kind.OPTION:
        if linear:
            strike = draw(st.decimals(min_value=Decimal("0.001"), max_value=Decimal("100000"), places=3))
        else:
            strike = Decimal(draw(st.integers(min_value=1, max_value=10_000_000)))
        strike = strike.normalize()
        option_type = draw(st.sampled_from(list(OptionType)))
    spec = contract_spec(base, kind, not linear)
    return Instrument(
        kind=kind,
        base=base,
        quote="USDC" if linear else "USD",
        settlement="USDC" if linear else base,
        inverse=not linear,
        tick_size=spec.tick_size,
        min_amount=spec.min_amount,
        contract_size=spec.contract_size,
        tick_steps=spec.tick_steps,
        expiry=expiry,
        strike=strike,
        option_type=option_type,
        maker_fee=spec.maker_fee,
        taker_fee=spec.taker_fee,
        linear_tag="USDC" if linear else None,
    )


@given(instruments())
def test_generated_instruments_round_trip(inst: Instrument) -> None:
    parsed = Instrument.parse(inst.name)
    assert parsed.name == inst.name
    assert parsed.kind is inst.kind and parsed.expiry == inst.expiry and parsed.option_type == inst.option_type
    if inst.strike is not None:
        assert parsed.strike == inst.strike


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("", "empty"),
        ("BTC", "quote currency"),
        ("BTC-PERP", "not a Deribit instrument name"),
        ("BTC-27XYZ24", "unknown month"),
        ("BTC-31FEB24", "not a calendar date"),
        ("BTC-07DEC24", "leading zero"),
        ("BTC-27DEC24-60000-X", "not a Deribit instrument name"),
        ("BTC-27DEC24-0-C", "positive"),
        ("BTC-27DEC24-060000-C", "leading zero"),
        ("XRP_USDC-30JUN23-0d6250-C", "trailing zero"),
        ("btc-perpetual", "not a Deribit instrument name"),
    ],
)
def test_malformed_names_are_rejected_with_reason(name: str, fragment: str) -> None:
    with pytest.raises(InvalidInstrument) as info:
        Instrument.parse(name)
    assert fragment in str(info.value) and info.value.code == "instrument.invalid"


def test_expiry_code_and_strike_format() -> None:
    assert expiry_code(datetime(2023, 8, 5, 8, tzinfo=timezone.utc)) == "5AUG23"
    assert format_strike(Decimal("0.625")) == "0d625"
    assert format_strike(Decimal("6E+4")) == "60000"


@pytest.mark.parametrize(
    "price, mode, expected",
    [
        ("0.0049", "nearest", "0.0049"),
        ("0.0050", "nearest", "0.0050"),
        ("0.00504", "nearest", "0.0050"),
        ("0.00512", "nearest", "0.0050"),
        ("0.00513", "nearest", "0.0050"),
        ("0.0053", "nearest", "0.0055"),
        ("0.00501", "up", "0.0055"),
        ("0.00501", "down", "0.0050"),
        ("0.00549", "down", "0.0050"),
        ("0.12345", "nearest", "0.1235"),
        ("0.00011", "down", "0.0001"),
        ("0.00011", "up", "0.0002"),
    ],
)
def test_option_tick_rounding_at_step_boundary(price: str, mode: str, expected: str) -> None:
    inst = Instrument.parse("BTC-27DEC24-60000-C")
    out = inst.round_price(Decimal(price), mode)  # type: ignore[arg-type]
    assert out == Decimal(expected)
    assert inst.is_valid_price(out)


def test_tick_validity_and_ticks() -> None:
    inst = Instrument.parse("BTC-27DEC24-60000-C")
    assert inst.is_valid_price(Decimal("0.0051")) is False
    assert inst.is_valid_price(Decimal("0.0049")) is True
    assert inst.to_ticks(Decimal("0.0055")) == 55
    assert inst.from_ticks(55) == Decimal("0.0055")
    with pytest.raises(InvalidInput) as info:
        inst.to_ticks(Decimal("0.0051"))
    assert info.value.code == "order.rejected.tick"
    perp = Instrument.parse("BTC-PERPETUAL")
    assert perp.round_price(Decimal("65000.3")) == Decimal("65000.5")
    assert perp.to_lots(Decimal("100")) == 10
    with pytest.raises(InvalidInput):
        perp.to_lots(Decimal("15"))


@given(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("5"), places=6))
def test_rounded_prices_are_always_valid(price: Decimal) -> None:
    inst = Instrument.parse("ETH-6JUL25-1500-P")
    for mode in ("nearest", "down", "up"):
        out = inst.round_price(price, mode)  # type: ignore[arg-type]
        assert inst.is_valid_price(out)
        assert abs(out - price) <= inst.tick_at(max(out, price))
    assert inst.round_price(price, "down") <= price <= inst.round_price(price, "up")


def test_order_request_validation() -> None:
    ok = OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal("10"), Decimal("65000"))
    assert ok.type is OrderType.LIMIT
    with pytest.raises(InvalidInput):
        OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal("0"), Decimal("65000"))
    with pytest.raises(InvalidInput):
        OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal("10"), None)
    with pytest.raises(InvalidInput):
        OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal("NaN"), Decimal("1"))
    with pytest.raises(InvalidInput):
        OrderRequest("BTC-PERPETUAL", Side.SELL, Decimal("10"), None, OrderType.MARKET, post_only=True)
    assert Side.BUY.sign == 1 and Side.SELL.opposite is Side.BUY


def test_absurd_magnitudes_are_rejected_not_crashing() -> None:
    inst = Instrument.parse("BTC-PERPETUAL")
    huge = Decimal("1e400")
    assert inst.is_valid_price(huge) is False
    with pytest.raises(InvalidInput) as info:
        inst.to_lots(huge)
    assert info.value.code == "order.rejected.amount"
    with pytest.raises(InvalidInput) as info:
        inst.round_price(huge)
    assert info.value.code == "input.range"


def test_name_and_expiry_are_built_once_and_change_no_semantics() -> None:
    import dataclasses
    import pickle

    a = Instrument.parse("BTC-27DEC24-60000-C")
    fresh = Instrument(*[getattr(a, f.name) for f in dataclasses.fields(a) if f.init])
    assert fresh._name is None and fresh.name == a.name and fresh._name == a.name
    assert fresh.expiry_ms == a.expiry_ms == 1_735_286_400_000
    assert fresh.underlying == "btc_usd" and Instrument.parse("XRP_USDC-PERPETUAL").underlying == "xrp_usdc"
    assert fresh == a and hash(fresh) == hash(a) and repr(fresh) == repr(a)
    back = pickle.loads(pickle.dumps(fresh))
    assert back == a and back.name == a.name
    other = dataclasses.replace(a, strike=Decimal(70_000))
    assert other.name == "BTC-27DEC24-70000-C" and other != a
