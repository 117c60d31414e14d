"""Delta decay in the 30-minute settlement window before an expiry (deribit.md §1.7), in the desk's book and in what
the delta hedger reads from it."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from app.domain import Fill, Instrument, Liquidity, Side
from app.portfolio_view import Book, delta_decay
from strategies.delta_hedger import DeltaHedger
from strategies.hedger_config import HedgerConfig

D = Decimal
FUT = Instrument.parse("BTC-29MAR24")
PERP = Instrument.parse("BTC-PERPETUAL")
CALL = Instrument.parse("BTC-29MAR24-40000-C")  # deep in the money: BS delta ~1
LATER = Instrument.parse("BTC-26APR24-60000-C")


def ms(text: str) -> int:
    """Epoch ms of an ISO UTC time."""
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


EXPIRY = ms("2024-03-29T08:00:00")


def _fill(inst: Instrument, amount: str, price: str, ts: int) -> Fill:
    return Fill("t", "o", inst.name, Side.BUY, D(price), D(amount), D(0), "BTC", Liquidity.TAKER, ts)


def _book(now: int) -> Book:
    b = Book()
    for inst, amt, px in (
        (FUT, "60000", "60000"),
        (PERP, "60000", "60000"),
        (CALL, "1", "0.3333"),
        (LATER, "1", "0.05"),
    ):
        b.apply_fill(_fill(inst, amt, px, now), inst)
    b.set_index("BTC", 60_000.0)
    b.mark(FUT.name, 60_000.0)
    b.mark(PERP.name, 60_000.0)
    b.mark(CALL.name, 20_000 / 60_000, 0.5, 60_000.0)
    b.mark(LATER.name, 0.05, 0.5, 60_000.0)
    b.flush(now)
    return b


def _deltas(b: Book) -> dict[str, tuple[float, float]]:
    return {v.instrument: (v.greeks.delta, v.greeks.delta_bs) for v in b.views()}


def test_decay_factor_is_linear_over_the_last_30_minutes() -> None:
    assert delta_decay(None, EXPIRY) == 1.0  # perpetual
    assert delta_decay(EXPIRY, EXPIRY - 31 * 60_000) == 1.0
    assert delta_decay(EXPIRY, EXPIRY - 30 * 60_000) == 1.0
    assert delta_decay(EXPIRY, EXPIRY - 15 * 60_000) == 0.5
    assert delta_decay(EXPIRY, EXPIRY - 3 * 60_000) == pytest.approx(0.1)
    assert delta_decay(EXPIRY, EXPIRY) == 0.0
    assert delta_decay(EXPIRY, EXPIRY + 5_000) == 0.0


def test_expiring_deltas_decay_in_the_window_and_nothing_else_does() -> None:
    before = _deltas(_book(EXPIRY - 60 * 60_000))
    assert before[FUT.name][1] == pytest.approx(1.0)
    assert before[CALL.name][1] == pytest.approx(1.0, abs=1e-6)
    half = _book(EXPIRY - 15 * 60_000)  # 15 minutes into the window: half the delta (§1.7's example)
    d = _deltas(half)
    assert d[FUT.name][1] == pytest.approx(0.5)
    assert d[CALL.name][1] == pytest.approx(0.5, abs=1e-6)
    # delta_total = BS delta minus the mark, both decayed
    assert d[CALL.name][0] == pytest.approx(0.5 * (1.0 - 20_000 / 60_000), abs=1e-6)
    assert d[PERP.name] == pytest.approx(before[PERP.name])  # the perpetual is unaffected
    assert d[LATER.name] == pytest.approx(before[LATER.name], abs=1e-4)  # a later expiry only ages by 45 min
    total = half.greeks("BTC")
    assert total.delta_bs == pytest.approx(sum(x[1] for x in d.values()))
    assert half.delta("BTC") == pytest.approx(sum(x[0] for x in d.values()))


def test_time_alone_moves_the_decay_at_each_flush() -> None:
    # No new mark and no fill: flushes in the window still recompute the expiring positions (and only those).
    b = _book(EXPIRY - 40 * 60_000)
    assert _deltas(b)[FUT.name][1] == pytest.approx(1.0)
    assert b.flush(EXPIRY - 35 * 60_000) == 0  # outside every window: nothing to do
    b.flush(EXPIRY - 20 * 60_000)
    assert _deltas(b)[FUT.name][1] == pytest.approx(2 / 3)
    assert b.flush(EXPIRY - 6 * 60_000) == 2  # the future and the expiring call
    d = _deltas(b)
    assert d[FUT.name][1] == pytest.approx(0.2) and d[CALL.name][1] == pytest.approx(0.2, abs=1e-6)
    b.flush(EXPIRY)
    d = _deltas(b)
    assert d[FUT.name] == (0.0, 0.0) and d[CALL.name] == (0.0, 0.0)
    assert b.flush(EXPIRY + 4_000) == 0  # fully decayed: no more work until delivery
    assert b.delta("BTC") == pytest.approx(d[PERP.name][0] + d[LATER.name][0])
    b.settle(FUT.name, 60_000.0)
    b.settle(CALL.name, 60_000.0)
    assert b.delta("BTC") == pytest.approx(d[PERP.name][0] + d[LATER.name][0])


class _View:
    """What the hedger reads of a desk: the book's position views and the index."""

    def __init__(self, book: Book, now: int) -> None:
        self._book = book
        self._now = now

    def positions(self) -> Any:
        return self._book.views()

    def index_price(self, underlying: str) -> float:
        return 60_000.0

    def now_ms(self) -> int:
        return self._now


def test_the_hedger_reads_decayed_option_deltas() -> None:
    now = EXPIRY - 15 * 60_000
    b = Book()
    b.apply_fill(_fill(CALL, "2", "0.3333", now), CALL)
    b.set_index("BTC", 60_000.0)
    b.mark(CALL.name, 20_000 / 60_000, 0.5, 60_000.0)
    b.flush(now)
    m = DeltaHedger(HedgerConfig(delta_basis="bs")).measure(_View(b, now))  # type: ignore[arg-type]
    assert m["delta_options_bs"] == pytest.approx(1.0, abs=1e-6)  # 2 coin of delta-1 calls, half decayed


def test_delivery_charges_the_delivery_fee_in_the_book() -> None:
    # The desk's book pays what the venue charges at delivery (deribit.md §4.5, historical rates): the settled PnL
    # is the payoff less premium, trading fees and the delivery fee.
    from app.engine.settlement import NO_DELIVERY_FEES

    b = Book()
    b.apply_fill(_fill(CALL, "2", "0.3", EXPIRY - 60_000), CALL)
    b.apply_fill(_fill(FUT, "60000", "60000", EXPIRY - 60_000), FUT)
    final = b.settle(CALL.name, 60_000.0)
    assert final is not None and final.realized_pnl == 2 * (D(20_000) / D(60_000) - D("0.3"))
    assert b.settled_pnl["BTC"] == final.realized_pnl - D("0.0004")  # 0.02 % of 2 coin
    fut = b.settle(FUT.name, 66_000.0, NO_DELIVERY_FEES)
    assert fut is not None
    assert b.settled_pnl["BTC"] == final.realized_pnl - D("0.0004") + fut.realized_pnl


def test_the_sim_desk_settled_pnl_is_the_cash_the_venue_booked() -> None:
    # An in-the-money call bought 10 minutes before its 08:00 expiry on the simulated venue: after delivery, the
    # desk's settled PnL is exactly the change of the account's balance (premium, trading fee, payoff, delivery fee).
    from app.desk import Desk
    from app.domain import OrderRequest
    from connectors.sim.listing import ListingConfig
    from connectors.sim.venue import SimConfig

    small = ListingConfig(weekly_days=8, monthly_days=0, quarterly_days=100, strikes_per_expiry=12)
    desk = Desk(seed=7, sim=SimConfig(seed=7, listing=small, start_ms=ms("2024-01-01T07:50:00"), step_ms=10_000))
    first = min(desk.expiries("BTC"))
    sl = desk.chain("BTC", first)
    row = min(
        (r for r in sl.rows if r.option_type.value == "call" and r.strike < sl.forward * 0.98), key=lambda r: -r.strike
    )
    before = desk.venue.accounts.balance("main", "BTC")
    q = desk.quote(row.instrument)
    assert q is not None and q.ask is not None
    desk.place_now(OrderRequest(row.instrument, Side.BUY, D("1"), D(repr(q.ask))))
    desk.advance(20 * 60_000)
    assert row.instrument not in {p.instrument for p in desk.positions()}
    fee_entries = [e for e in desk.venue.accounts.ledger.entries("main", "BTC") if e.ref == row.instrument]
    assert any(e.kind.value == "fee" and e.ts == ms("2024-01-01T08:00:00") for e in fee_entries)
    cash = desk.venue.accounts.balance("main", "BTC") - before
    assert desk.book.settled_pnl["BTC"] == pytest.approx(cash, abs=D("1e-9"))
