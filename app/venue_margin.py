"""Margin of an account at an external venue: the venue's own figures, and a local replica for what-if.

    reports = {c: report_from_account(acct, "main") for c, acct in accounts.items()}   # the venue's IM/MM
    engine = build_replica("main", accounts, instruments, positions, quotes, index, orders)
    engine.what_if("main", [OrderRequest(...)])                                          # app.engine.margin

The venue is the authority on margin (``get_account_summary``); the embedded margin engine, loaded with the same
positions, open orders, marks (mark price, mark IV, forward) and balance, answers what the venue cannot: margin as
if orders had traded. Its figures beside the venue's show the drift (``desk margin check`` does the same for a
whole account). Amounts are floats in the settlement currency (coin for inverse BTC/ETH, USDC for linear).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from app.clock import Clock, WallClock
from app.domain import Instrument, MarginReport, Order, Position, Quote, Side
from app.engine.margin import MarginEngine
from app.engine.margin_params import ALERT_LEVELS
from app.ports import AccountReport

COUNTERPARTY = "venue-counterparty"
_ZERO = Decimal(0)


def margin_model(acct: AccountReport) -> str:
    """``pm`` when the venue reports a portfolio-margin account (Deribit ``margin_model``), else ``sm``."""
    return "pm" if "pm" in str(acct.raw.get("margin_model", "")).lower() else "sm"


def report_from_account(acct: AccountReport, account: str, alert_levels: Sequence[float] = ALERT_LEVELS) -> MarginReport:
    """The venue's account figures of one currency as a MarginReport (usage = IM or MM over margin balance)."""
    raw = acct.raw or {}
    equity = float(acct.equity)
    try:
        mb = float(raw.get("margin_balance", equity))
    except (TypeError, ValueError):
        mb = equity
    im, mm = float(acct.initial_margin), float(acct.maintenance_margin)
    im_usage = im / mb if mb > 0 else (math.inf if im > 0 else 0.0)
    mm_usage = mm / mb if mb > 0 else (math.inf if mm > 0 else 0.0)
    level = 0.0
    for lv in sorted(alert_levels):
        if mm_usage >= lv:
            level = lv
    return MarginReport(
        account=account, currency=acct.currency, model="pm" if margin_model(acct) == "pm" else "sm",
        balance=float(acct.balance), equity=equity, margin_balance=mb, initial_margin=im, maintenance_margin=mm,
        available_funds=float(acct.available_funds), im_usage=im_usage, mm_usage=mm_usage, alert_level=level,
        details={"source": "venue"},
    )


def build_replica(account: str, accounts: Mapping[str, AccountReport], instruments: Mapping[str, Instrument],
                  positions: Sequence[Position], quotes: Mapping[str, Quote], index: Mapping[str, float],
                  orders: Sequence[Order] = (), extra: Iterable[str] = (), *, clock: Clock | None = None) -> MarginEngine:
    """A fresh margin engine holding ``account`` as the venue reports it: balances, positions, open orders, marks.

    ``index`` is USD per base (``BTC``); ``extra`` names instruments to mark too (those of a what-if). Positions are
    booked at their average price against a counterparty account, so equity is the balance plus unrealised PnL.
    """
    engine = MarginEngine(clock=clock or WallClock())
    model = next((margin_model(a) for a in accounts.values()), "sm")
    engine.open_account(account, "pm" if model == "pm" else "sm",
                        deposits={c: a.balance for c, a in accounts.items() if a.balance > 0})
    engine.open_account(COUNTERPARTY, "sm")
    names = {p.instrument for p in positions if p.size != 0} | {o.instrument for o in orders} | set(extra)
    for name in sorted(names):
        inst = instruments.get(name)
        if inst is None:
            continue
        engine.add_instrument(inst)
        px = index.get(inst.base)
        if px is not None and px > 0 and inst.underlying not in engine.index:
            engine.set_index(inst.underlying, float(px))
        q = quotes.get(name)
        mark = None if q is None else q.mark_price
        if mark is None and q is not None and q.bid is not None and q.ask is not None:
            mark = (q.bid + q.ask) / 2
        if mark is not None and math.isfinite(mark) and (mark > 0 or (inst.is_option and mark >= 0)):
            iv = q.mark_iv if q is not None and q.mark_iv and q.mark_iv > 0 else None
            fwd = q.underlying_price if q is not None and q.underlying_price and q.underlying_price > 0 else None
            engine.set_mark(name, float(mark), iv=iv, underlying=fwd)
    now = engine.clock.now_ms()
    for p in positions:
        if p.size == 0 or p.instrument not in engine.instruments:
            continue
        price = p.average_price if p.average_price > 0 else Decimal(repr(engine.mark_of(p.instrument)))
        engine.accounts.apply_fill(account, engine.instruments[p.instrument], Side.BUY if p.size > 0 else Side.SELL,
                                   abs(p.size), price, now, counterparty=COUNTERPARTY, ref="venue-replica")
    for o in orders:
        if o.instrument in engine.instruments and not o.status.is_terminal:
            remaining = o.request.amount - o.filled
            if remaining > _ZERO:
                engine.add_order(account, o.order_id, o.instrument, o.request.side, remaining, o.request.price)
    return engine
