"""Ledger: exact double entry, typed refusals, and conservation under random trading (hypothesis).

Random trades through the matching engine (perpetual, future, option), mark moves, funding, liquidations and
settlements: at every step the running balances equal a replay of the entries and every currency sums to the
deposits over accounts + fee income + insurance fund + socialised losses + clearing; after each daily settlement
the clearing account held only rounding dust (session PnL is zero-sum) and is empty.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain import Instrument, OrderRequest, Side
from app.engine.ledger import CLEARING, EXTERNAL, FEES, INSURANCE, EntryKind, Ledger
from app.engine.settlement import Settlement
from app.errors import InvalidInput
from tests.engine.test_liquidation import OPT, PERP, World

D = Decimal
FUT = "BTC-28JUN24"


def test_transactions_must_balance_and_are_exact() -> None:
    ledger = Ledger()
    ledger.transfer(0, EntryKind.DEPOSIT, "BTC", EXTERNAL, "a", D("1.23456789012"))
    assert ledger.balance("a", "BTC") == D("1.2345678901")  # 1e-10 BTC units, half-even
    with pytest.raises(InvalidInput) as exc:
        ledger.post(1, EntryKind.FEE, "BTC", [("a", -5), (FEES, 4)])
    assert exc.value.code == "ledger.unbalanced"
    with pytest.raises(InvalidInput):
        ledger.post(1, EntryKind.FEE, "DOGE", [("a", -5), (FEES, 5)])
    with pytest.raises(InvalidInput):
        ledger.transfer(1, EntryKind.FEE, "BTC", "a", FEES, D("NaN"))
    assert len(ledger) == 2 and ledger.balance(FEES, "BTC") == 0
    ledger.transfer(2, EntryKind.FEE, "USDC", EXTERNAL, "a", D("10.0000005"))
    assert ledger.balance("a", "USDC") == D("10.000000")  # USDC units are 1e-6; half-even
    assert ledger.replay_balances() == ledger.running_balances()
    assert ledger.accounts() == ["a"] and set(ledger.currencies()) == {"BTC", "USDC"}


def _check(w: World) -> None:
    ledger = w.margin.accounts.ledger
    assert ledger.replay_balances() == ledger.running_balances()
    for ccy in ledger.currencies():
        c = ledger.conservation(ccy)
        assert c["users"] + c["fees"] + c["insurance"] + c["socialised"] + c["clearing"] == c["deposits"]


ACCOUNTS = ("lev", "mm1", "mm2", "t1")
op = st.one_of(
    st.tuples(st.just("trade"), st.sampled_from([PERP, FUT, OPT]), st.sampled_from(ACCOUNTS), st.sampled_from(ACCOUNTS),
              st.integers(1, 60), st.floats(-0.01, 0.01)),
    st.tuples(st.just("lever"), st.integers(10, 80)),
    st.tuples(st.just("move"), st.floats(-0.12, 0.12)),
    st.tuples(st.just("crash"), st.floats(-0.2, -0.05)),
    st.tuples(st.just("funding"), st.floats(-0.003, 0.003)),
    st.tuples(st.just("liquidate")),
    st.tuples(st.just("settle")),
    st.tuples(st.just("deposit"), st.sampled_from(ACCOUNTS), st.integers(1, 10**6)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=6, max_size=30), st.booleans())
def test_conservation_under_random_trading(ops: list[tuple], expire_option: bool) -> None:
    w = World(fund="0.5", step_usd=300_000.0)
    w.margin.add_instrument(Instrument.parse(FUT))
    w.engine.add_instrument(Instrument.parse(FUT), band=None)
    w.margin.open_account("t1", "pm", {"BTC": D("5")})  # type: ignore[arg-type]
    btc = 65_000.0

    def mark_all(price: float) -> None:
        put = max(0.0001, 0.02 * (65_000.0 / price) ** 6)
        w.market(price, put_mark=put)
        w.margin.set_mark(FUT, price * 1.004)
        w.engine.set_mark(FUT, D(repr(price * 1.004)))

    mark_all(btc)
    settle = Settlement(w.margin.accounts)
    for o in ops:
        kind = o[0]
        if kind == "trade":
            _, name, maker, taker, size, off = o
            if maker == taker:
                continue
            inst = Instrument.parse(name)
            mark = w.margin.mark_of(name)
            price = inst.round_price(D(repr(mark * (1 + off))))
            if price <= 0:
                continue
            amount = inst.min_amount * (size * (1000 if inst.kind.value != "option" else 1))
            side = Side.BUY if size % 2 else Side.SELL
            w.engine.submit(OrderRequest(name, side.opposite, amount, price, account=maker))
            w.engine.submit(OrderRequest(name, side, amount, price, account=taker))
            w.engine.cancel_all(maker)
        elif kind == "lever":
            # The levered account buys o[1] BTC of perpetual from the makers (if its margin allows).
            px = Instrument.parse(PERP).round_price(D(repr(btc)))
            amount = D(int(o[1] * btc / 10) * 10)
            w.engine.submit(OrderRequest(PERP, Side.SELL, amount, px, account="mm1"))
            w.engine.submit(OrderRequest(PERP, Side.BUY, amount, px, account="lev"))
            w.engine.cancel_all("mm1")
        elif kind in ("move", "crash"):
            btc = max(20_000.0, btc * (1 + o[1]))
            mark_all(btc)
            # resting liquidity for liquidations, from the makers
            for mm, off in (("mm1", 0.002), ("mm2", 0.004)):
                w.engine.cancel_all(mm)
                w.engine.submit(OrderRequest(PERP, Side.BUY, D("2000000"), Instrument.parse(PERP).round_price(D(repr(btc * (1 - off)))), account=mm))
                w.engine.submit(OrderRequest(PERP, Side.SELL, D("2000000"), Instrument.parse(PERP).round_price(D(repr(btc * (1 + off)))), account=mm))
            if kind == "crash":
                for acct in ACCOUNTS:
                    w.liq.run(acct, "BTC", max_rounds=50)
        elif kind == "funding":
            settle.funding(Instrument.parse(PERP), o[1], btc, 3_600_000, w.clock.now_ms())
        elif kind == "liquidate":
            for acct in ACCOUNTS:
                w.liq.run(acct, "BTC", max_rounds=50)
        elif kind == "settle":
            _daily(w, settle, btc)
        elif kind == "deposit":
            w.margin.accounts.deposit(o[1], "BTC", D(o[2]) / D(10**6))
        _check(w)
    if expire_option:
        settle.expire(Instrument.parse(OPT), D(repr(round(btc, 2))), w.clock.now_ms())
        _check(w)
    _daily(w, settle, btc)
    ledger = w.margin.accounts.ledger
    c = ledger.conservation("BTC")
    assert c["clearing"] == 0
    assert c["users"] + c["fees"] + c["insurance"] + c["socialised"] == c["deposits"]
    assert ledger.balance(INSURANCE, "BTC") >= 0


def _daily(w: World, settle: Settlement, btc: float) -> None:
    ledger = w.margin.accounts.ledger
    booked = sum(1 for a in w.margin.accounts.trading_accounts() for p in w.margin.accounts.get(a).positions.values() if p.is_futures_like)
    dust = settle.daily({PERP: D(repr(btc)), FUT: D(repr(btc * 1.004))}, w.clock.now_ms())
    # Session PnL is zero-sum: what clearing kept is two roundings per booked position at most.
    assert abs(dust.get("BTC", 0)) <= 2 * booked + 1
    assert ledger.balance(CLEARING, "BTC") == 0
