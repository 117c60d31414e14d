"""Whatever a client sends to private/buy, the venue answers a result or a Deribit error, and only results change state."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.deribit_api.auth import Session
from connectors.deribit_api.methods import Methods
from connectors.deribit_api.wire import RpcError
from tests.connectors.paper_backend import PaperBackend

numbers = st.one_of(
    st.sampled_from(
        [
            "0.1",
            "0.15",
            "-1",
            "0",
            "nan",
            "inf",
            "1e400",
            "-1e400",
            "1e-400",
            "abc",
            "",
            "10",
            "0.0123",
            "0.042",
            "100000",
        ]
    ),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
)


@settings(max_examples=250, deadline=None)
@given(
    name=st.sampled_from(["call", "perp", "BTC-PERPETUAL-X", "", "BTC-1JAN30-1-C"]),
    amount=st.one_of(st.none(), numbers),
    contracts=st.one_of(st.none(), numbers),
    price=st.one_of(st.none(), numbers),
    otype=st.sampled_from([None, "limit", "market", "stop_limit", "bogus"]),
    tif=st.sampled_from([None, "good_til_cancelled", "immediate_or_cancel", "fill_or_kill", "forever"]),
    post_only=st.sampled_from([None, "true", "false", "maybe", True]),
    label=st.one_of(st.none(), st.text(max_size=80)),
)
def test_buy_never_crashes_and_errors_change_nothing(
    name, amount, contracts, price, otype, tif, post_only, label
) -> None:  # type: ignore[no-untyped-def]
    paper = PaperBackend()
    methods = Methods(paper, started_ms=paper.now_ms())
    params = {"instrument_name": {"call": paper.call, "perp": paper.perp}.get(name, name)}
    for key, value in (
        ("amount", amount),
        ("contracts", contracts),
        ("price", price),
        ("type", otype),
        ("time_in_force", tif),
        ("post_only", post_only),
        ("label", label),
    ):
        if value is not None:
            params[key] = value
    before = (len(paper.orders_), len(paper.fills_))
    try:
        result = asyncio.run(methods.call("private", "buy", params, Session("k", "main")))
    except RpcError as err:
        assert isinstance(err.code, int) and err.message
        assert (len(paper.orders_), len(paper.fills_)) == before
        return
    assert result["order"]["order_state"] in ("open", "filled", "cancelled")
    assert len(paper.orders_) == before[0] + 1


def test_absurd_numbers_are_refused_not_crashed() -> None:
    paper = PaperBackend()
    methods = Methods(paper, started_ms=paper.now_ms())
    for amount, price in (("1e400", "0.01"), ("1", "1e400"), ("1e30", "0.01")):
        params = {"instrument_name": paper.call, "amount": amount, "price": price}
        try:
            asyncio.run(methods.call("private", "buy", params, Session("k", "main")))
        except RpcError as err:
            assert err.code == -32602 and "out of range" in err.data["reason"]
        else:
            raise AssertionError(f"{amount} @ {price} was accepted")
