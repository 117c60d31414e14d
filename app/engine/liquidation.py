"""Liquidation: incremental rounds through the book, liquidation fee to the insurance fund, bankruptcy.

When an account's maintenance margin reaches its margin balance (deribit.md §3.1) the :class:`Liquidator`

1. locks it (the pre-trade check refuses its own orders) and cancels its open orders;
2. runs rounds (Deribit: one per second; the caller paces them) until MM is below the margin balance again:
   - standard margin: futures first, largest first, then short options by MM, then long options, each
     reduced by one step through the book with a reduce-only market order;
   - portfolio margin: the instrument that loses most in the worst risk-matrix scenario first; if nothing
     trades, the next one; if no reduction trades, the delta is hedged with the perpetual (§2.7);
3. charges a liquidation fee on every step into ``@insurance``;
4. when the account is flat and its balance negative (bankrupt), books its session PnL, covers the deficit from
   the insurance fund, and leaves the rest owed by ``@socialised`` (recovered from the day's winners at the
   daily settlement, :mod:`app.engine.settlement`);
5. unlocks it.

Every step is an event (also published on the bus) and every cash movement a ledger entry. Liquidations pause
while an index the currency depends on is stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from app.bus import Bus
from app.domain import Event, Instrument, Kind, OrderRequest, OrderType, Side, TimeInForce
from app.engine.accounts import PositionState
from app.engine.ledger import INSURANCE, SOCIALISED, EntryKind
from app.engine.margin import MarginEngine
from app.engine.margin_params import LiquidationParams, currency_params
from app.errors import StaleData


@dataclass(frozen=True, slots=True)
class LiquidationStarted(Event):
    """An account entered liquidation (MM >= margin balance); amounts in the currency."""

    account: str
    currency: str
    margin_balance: float
    maintenance_margin: float


@dataclass(frozen=True, slots=True)
class LiquidationStep(Event):
    """One liquidation order: what was sent, what traded, the fee charged (currency)."""

    account: str
    currency: str
    round: int
    instrument: str
    side: str
    amount: Decimal
    filled: Decimal
    average_price: Decimal | None
    fee: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class LiquidationEnded(Event):
    """Liquidation finished: ``outcome`` is ``healthy`` (MM back below margin balance), ``flat`` or ``bankrupt``."""

    account: str
    currency: str
    rounds: int
    outcome: str
    mm_usage: float


@dataclass(frozen=True, slots=True)
class Bankruptcy(Event):
    """A bankrupt account's deficit: covered by the insurance fund, the rest socialised (currency)."""

    account: str
    currency: str
    deficit: Decimal
    insurance_paid: Decimal
    socialised: Decimal


class Liquidator:
    """Drives liquidations of a MarginEngine's accounts through a MatchingEngine."""

    def __init__(
        self,
        margin: MarginEngine,
        engine: Any,
        *,
        bus: Bus | None = None,
        params: Mapping[str, LiquidationParams] | None = None,
    ) -> None:
        self.margin = margin
        self.engine = engine
        self.bus = bus
        self._params = dict(params or {})
        self.active: dict[tuple[str, str], int] = {}  # (account, currency) -> rounds run

    def params(self, currency: str) -> LiquidationParams:
        """Liquidation fee and step parameters of ``currency``."""
        return self._params.get(currency.upper()) or currency_params(currency).liquidation

    # ------------------------------------------------------------------------------------------------
    def scan(self) -> list[Event]:
        """One pass over every account and currency: start liquidations that are due, run a round of each."""
        out: list[Event] = []
        accts = self.margin.accounts
        for account in accts.trading_accounts():
            if accts.get(account).cross:
                out += self._scan_cross(account)
                continue
            for ccy in sorted(self.margin._currencies_of(account)):
                key = (account, ccy)
                if key in self.active:
                    out += self.round(account, ccy)
                    continue
                try:
                    self.margin.check_fresh(ccy)
                    ev = self.margin.evaluate(account, ccy)
                except StaleData:
                    continue  # paused on a stale index or missing marks
                if ev.maintenance_margin > 0 and ev.maintenance_margin >= ev.margin_balance:
                    out += self.start(account, ccy, ev.margin_balance, ev.maintenance_margin)
                    out += self.round(account, ccy)
        return out

    def _scan_cross(self, account: str) -> list[Event]:
        """Cross margin: liquidate when total MM reaches total margin balance (USD), in the currency with most MM."""
        active = [c for (a, c) in self.active if a == account]
        if active:
            return self.round(account, active[0])
        try:
            for ccy in self.margin._currencies_of(account):
                self.margin.check_fresh(ccy)
            tot = self.margin.cross_summary(account)
            if not (tot["total_maintenance_margin_usd"] > 0
                    and tot["total_maintenance_margin_usd"] >= tot["total_margin_balance_usd"]):
                return []
            worst = max(self.margin._currencies_of(account),
                        key=lambda c: self.margin.evaluate(account, c).maintenance_margin * self.margin.usd_per_unit(c))
            ev = self.margin.evaluate(account, worst)
        except StaleData:
            return []
        return self.start(account, worst, ev.margin_balance, ev.maintenance_margin) + self.round(account, worst)

    def _healthy(self, account: str, ccy: str, ev: Any) -> bool:
        if self.margin.accounts.get(account).cross:
            tot = self.margin.cross_summary(account)
            return tot["total_maintenance_margin_usd"] < tot["total_margin_balance_usd"]
        return bool(ev.maintenance_margin < ev.margin_balance)

    def run(self, account: str, currency: str, max_rounds: int | None = None) -> list[Event]:
        """Rounds until the liquidation ends (or ``max_rounds``); starts it if it is due."""
        ccy = currency.upper()
        out: list[Event] = []
        if (account, ccy) not in self.active:
            ev = self.margin.evaluate(account, ccy)
            if not (ev.maintenance_margin > 0 and not self._healthy(account, ccy, ev)):
                return out
            out += self.start(account, ccy, ev.margin_balance, ev.maintenance_margin)
        limit = max_rounds or self.params(ccy).max_rounds
        for _ in range(limit):
            if (account, ccy) not in self.active:
                break
            step = self.round(account, ccy)
            out += step
            if not step:
                break  # paused (stale index) or nothing could trade this round
        return out

    def start(self, account: str, currency: str, margin_balance: float, maintenance: float) -> list[Event]:
        """Lock the account, cancel its open orders, announce the liquidation."""
        ccy = currency.upper()
        self.margin.accounts.get(account).locked = True
        self.active[(account, ccy)] = 0
        self.engine.cancel_all(account)
        return self._emit([LiquidationStarted(self._now(), account, ccy, margin_balance, maintenance)])

    def round(self, account: str, currency: str) -> list[Event]:
        """One liquidation round; [] when paused (stale index) or when nothing could trade."""
        ccy = currency.upper()
        key = (account, ccy)
        try:
            self.margin.check_fresh(ccy)
            ev = self.margin.evaluate(account, ccy, include_orders=False)
        except StaleData:
            return []
        n = self.active.get(key, 0) + 1
        self.active[key] = n
        positions = [p for p in self.margin.accounts.positions(account, ccy) if p.size != 0]
        if positions and self._healthy(account, ccy, ev):
            return self._finish(account, ccy, n, "healthy")
        if not positions:
            return self._finish(account, ccy, n, "flat")
        model = self.margin.accounts.get(account).model
        candidates = self._pm_order(ev, positions) if model == "pm" else self._sm_order(ev, positions)
        for pos in candidates:
            step = self._reduce(account, ccy, n, pos)
            if step is not None:
                out = self._emit([step])
                if not any(p.size != 0 for p in self.margin.accounts.positions(account, ccy)):
                    out += self._finish(account, ccy, n, "flat")
                return out
        if model == "pm":
            step = self._hedge(account, ccy, n, ev)
            if step is not None:
                return self._emit([step])
        return []

    # ------------------------------------------------------------------------------------------------
    def _sm_order(self, ev: Any, positions: list[PositionState]) -> list[PositionState]:
        per = ev.details.get("positions", {})

        def key(p: PositionState) -> tuple[int, float]:
            mm = per.get(p.instrument.name, {}).get("maintenance_margin", 0.0)
            if p.is_futures_like:
                return (0, -mm)
            return (1, -mm) if p.size < 0 else (2, 0.0)

        return sorted(positions, key=key)

    def _pm_order(self, ev: Any, positions: list[PositionState]) -> list[PositionState]:
        pm = ev.details["pm"]["initial_margin_details"]["risk_matrix_margin_details"]["worst_case_bucket"]
        pf = ev.details["portfolio"]
        vectors = pf.initial_vectors()
        src = "extended" if pm and pm["source"] == "extended" else "standard"
        idx = pm["index"] if pm else 0

        def contribution(p: PositionState) -> float:
            vec = vectors.get(p.instrument.name)
            return vec[src][idx] if vec else 0.0

        return sorted(positions, key=contribution)

    def _step_amount(self, pos: PositionState) -> Decimal:
        inst = pos.instrument
        p = self.params(inst.settlement)
        if pos.is_futures_like and inst.inverse:
            step = Decimal(repr(p.future_step_usd))
        elif pos.is_futures_like:
            step = Decimal(repr(p.future_step_usd)) / Decimal(repr(self.margin.mark_of(inst.name)))
        else:
            step = Decimal(repr(p.option_step))
        step = (step / inst.min_amount).to_integral_value(ROUND_DOWN) * inst.min_amount
        return max(min(step, abs(pos.size)), inst.min_amount)

    def _reduce(self, account: str, ccy: str, n: int, pos: PositionState) -> LiquidationStep | None:
        inst = pos.instrument
        side = Side.SELL if pos.size > 0 else Side.BUY
        amount = min(self._step_amount(pos), abs(pos.size))
        return self._send(account, ccy, n, inst, side, amount, reduce_only=True, reason="reduce")

    def _hedge(self, account: str, ccy: str, n: int, ev: Any) -> LiquidationStep | None:
        pf = ev.details["portfolio"]
        for pair in pf.pairs_of(ccy):
            risk = pf.pair_risk(pair, ccy)
            delta = sum(risk.delta_by_expiry.values())
            perp_name = f"{pair.split('_')[0].upper()}-PERPETUAL" if pair.endswith("_usd") else f"{pair.split('_')[0].upper()}_{pair.split('_')[1].upper()}-PERPETUAL"
            inst = self.margin.instruments.get(perp_name)
            if inst is None or abs(delta) <= 0:
                continue
            index = self.margin.index[pair]
            step_usd = Decimal(repr(self.params(ccy).future_step_usd))
            if inst.inverse:  # amount in USD
                size = min(Decimal(repr(abs(delta) * index)), step_usd)
            else:  # amount in coin: the USD step at the perpetual's mark, as _step_amount does
                size = min(Decimal(repr(abs(delta))), step_usd / Decimal(repr(self.margin.mark_of(inst.name))))
            size = (size / inst.min_amount).to_integral_value(ROUND_DOWN) * inst.min_amount
            if size <= 0:
                continue
            side = Side.SELL if delta > 0 else Side.BUY
            step = self._send(account, ccy, n, inst, side, size, reduce_only=False, reason="delta_hedge")
            if step is not None:
                return step
        return None

    def _send(self, account: str, ccy: str, n: int, inst: Instrument, side: Side, amount: Decimal, *,
              reduce_only: bool, reason: str) -> LiquidationStep | None:
        req = OrderRequest(inst.name, side, amount, None, OrderType.MARKET, TimeInForce.IOC, reduce_only=reduce_only,
                           account=account, reason="liquidation")
        self.margin.liquidating = account
        try:
            events = self.engine.submit(req)
        finally:
            self.margin.liquidating = None
        filled = Decimal(0)
        notional = Decimal(0)
        value = Decimal(0)
        for e in events:
            if type(e).__name__ == "Filled" and e.taker_account == account:
                filled += e.amount
                value += e.amount * e.price
                notional += e.amount / e.price if (inst.inverse and inst.kind is not Kind.OPTION) else e.amount
        if filled == 0:
            return None
        fee = self._fee(inst, filled, notional)
        ts = self._now()
        ledger = self.margin.accounts.ledger
        units = ledger.transfer(ts, EntryKind.LIQUIDATION_FEE, ccy, account, INSURANCE, fee, inst.name) if fee else 0
        fee = ledger.from_units(ccy, units)
        if units:
            self.margin.accounts._changed(account, ccy)
        return LiquidationStep(ts, account, ccy, n, inst.name, side.value, amount, filled, value / filled, fee, reason)

    def _fee(self, inst: Instrument, filled: Decimal, coin_notional: Decimal) -> Decimal:
        p = self.params(inst.settlement)
        if inst.kind is Kind.OPTION:
            # Coin per contract of underlying (§3.2); a linear option pays it in USDC at the index.
            fee = filled * inst.contract_size * Decimal(repr(p.option_fee_per_contract))
            return fee if inst.inverse else fee * Decimal(repr(self.margin._index_for(inst)))
        if inst.inverse:
            return coin_notional * Decimal(repr(p.future_fee))
        return coin_notional * Decimal(repr(self.margin._index_for(inst))) * Decimal(repr(p.future_fee))

    def _finish(self, account: str, ccy: str, n: int, outcome: str) -> list[Event]:
        out: list[Event] = []
        accts = self.margin.accounts
        ledger = accts.ledger
        ts = self._now()
        if outcome == "flat":
            # Flat: its session PnL is final; book it now to see whether the account is bankrupt.
            for pos in list(accts.get(account).positions.values()):
                if pos.is_futures_like and pos.instrument.settlement == ccy and pos.size == 0:
                    accts.book_session(account, pos.instrument.name, Decimal(repr(self.margin.mark_of(pos.instrument.name))), ts, "liquidation")
            bal = ledger.balance_units(account, ccy)
            if bal < 0:
                deficit = -bal
                fund = max(ledger.balance_units(INSURANCE, ccy), 0)
                paid = min(deficit, fund)
                if paid:
                    ledger.post(ts, EntryKind.INSURANCE, ccy, [(INSURANCE, -paid), (account, paid)], "bankruptcy")
                rest = deficit - paid
                if rest:
                    ledger.post(ts, EntryKind.SOCIALISED_LOSS, ccy, [(SOCIALISED, -rest), (account, rest)], "bankruptcy")
                accts._changed(account, ccy)
                outcome = "bankrupt"
                out.append(Bankruptcy(ts, account, ccy, ledger.from_units(ccy, deficit), ledger.from_units(ccy, paid),
                                      ledger.from_units(ccy, rest)))
        accts.get(account).locked = False
        self.active.pop((account, ccy), None)
        ev = self.margin.evaluate(account, ccy)
        usage = ev.maintenance_margin / ev.margin_balance if ev.margin_balance > 0 else 0.0
        out.append(LiquidationEnded(ts, account, ccy, n, outcome, float(usage)))
        return self._emit(out)

    def _emit(self, events: list[Event]) -> list[Event]:
        if self.bus is not None:
            for e in events:
                self.bus.publish(e)
        return events

    def _now(self) -> int:
        return self.margin.clock.now_ms()
