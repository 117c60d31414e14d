"""Accounts: positions per instrument and Deribit's account quantities on top of the ledger.

Cash moves through the :class:`~app.engine.ledger.Ledger` only. Trades move option premium (buyer to seller)
and fees at once; futures PnL stays *session* PnL until a settlement books it (Deribit §3.5: "session
realised/unrealised futures P&L is booked to the cash balance" at 08:00 UTC), so the ledger is zero-sum at
every instant.

Futures PnL is exact: each position keeps ``cash`` such that its session PnL at price S is
``cash - n/S`` for inverse futures (n in USD, PnL in coin) and ``cash + n*S`` for linear ones; a trade of
signed size dn at price p adds ``dn/p`` (inverse) or ``-dn*p`` (linear). Buyer and seller add opposite
amounts, so session PnL sums to zero over all accounts at a common mark.

Deribit's identities (deribit.md §1.2, exact on two official examples)::

    equity          = balance + futures_session_upl + futures_session_rpl + options_value
    margin_balance  = equity - options_value          (standard margin)
    available_funds = margin_balance - initial_margin
    available_withdrawal_funds = balance - initial_margin (not above available_funds)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Literal

from app.domain import Instrument, Kind, Position, Side
from app.engine.ledger import CLEARING, EXTERNAL, FEES, SYSTEM_ACCOUNTS, EntryKind, Ledger
from app.errors import InvalidInput, NotFound

ZERO = Decimal(0)
_PREC = 40  # digits for the futures cash accumulators (1/p is not exact)


def _div(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = _PREC
        return a / b


@dataclass(slots=True)
class PositionState:
    """One account's position in one instrument (sizes in the instrument's amount unit, signed)."""

    instrument: Instrument
    size: Decimal = ZERO
    open_cost: Decimal = ZERO  # inverse: sum dn/p of the open part (coin); linear: sum dn*p (quote)
    cash: Decimal = ZERO  # futures: session PnL at S is cash - n/S (inverse) or cash + n*S (linear)
    session_rpl: Decimal = ZERO  # futures, realised this session (settlement currency)
    realized_pnl: Decimal = ZERO  # lifetime, settlement currency
    premium_paid: Decimal = ZERO  # options: net premium paid for the open part (settlement currency)

    @property
    def is_futures_like(self) -> bool:
        """True for futures and perpetuals (session PnL); options pay premium up front."""
        return self.instrument.kind in (Kind.FUTURE, Kind.PERPETUAL)

    @property
    def average_price(self) -> Decimal:
        """Average entry price of the open part (price units)."""
        if self.size == 0:
            return ZERO
        if self.is_futures_like:
            if self.instrument.inverse:
                return _div(self.size, self.open_cost) if self.open_cost else ZERO
            return _div(self.open_cost, self.size)
        return _div(self.premium_paid, self.size)

    def session_pnl(self, mark: Decimal) -> Decimal:
        """Futures session PnL (realised + unrealised) at ``mark`` in the settlement currency."""
        if not self.is_futures_like:
            return ZERO
        if self.instrument.inverse:
            return self.cash - _div(self.size, mark) if self.size else self.cash
        return self.cash + self.size * mark

    def size_coin(self, mark: float) -> float:
        """Position in base coin (inverse futures: USD / mark), signed."""
        if self.is_futures_like and self.instrument.inverse:
            return float(self.size) / mark
        return float(self.size)


@dataclass(slots=True)
class AccountState:
    """A trading account: margin model, lock flag (during liquidation) and positions."""

    name: str
    model: Literal["sm", "pm"] = "sm"
    locked: bool = False
    positions: dict[str, PositionState] = field(default_factory=dict)
    cross: bool = False  # cross margin: currencies collateralise each other (in USD, after haircuts)


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """Deribit's account quantities of one currency (deribit.md §1.2); all in the currency."""

    balance: float
    equity: float
    margin_balance: float
    options_value: float
    futures_session_upl: float
    futures_session_rpl: float
    options_session_upl: float


def deribit_summary(
    balance: float,
    futures_session_upl: float,
    futures_session_rpl: float,
    options_value: float,
    initial_margin: float,
    *,
    margin_balance_includes_options: bool = False,
) -> dict[str, float]:
    """Deribit's derived account quantities (deribit.md §1.2) from balance, session PnL, options value and IM."""
    equity = balance + futures_session_upl + futures_session_rpl + options_value
    margin_balance = equity if margin_balance_includes_options else equity - options_value
    available = margin_balance - initial_margin
    return {
        "equity": equity,
        "margin_balance": margin_balance,
        "available_funds": available,
        "available_withdrawal_funds": min(balance - initial_margin, available),
    }


class AccountBook:
    """Accounts, their positions, and every cash movement through one ledger."""

    def __init__(self, ledger: Ledger | None = None) -> None:
        self.ledger = ledger or Ledger()
        self._accounts: dict[str, AccountState] = {}
        self._listeners: list[Callable[[str, str], None]] = []
        self.session_profit: dict[tuple[str, str], Decimal] = {}  # booked session PnL this day, per account, ccy

    # -- accounts -------------------------------------------------------------------------------------
    def open(self, name: str, model: Literal["sm", "pm"] = "sm") -> AccountState:
        """Create an account (or return it); ``model`` is its margin model."""
        if not name or name.startswith("@"):
            raise InvalidInput(f"account name {name!r} is not allowed", code="account.name")
        if model not in ("sm", "pm"):
            raise InvalidInput(f"margin model must be sm or pm, got {model!r}", code="margin.model")
        acct = self._accounts.get(name)
        if acct is None:
            acct = self._accounts[name] = AccountState(name, model)
        return acct

    def get(self, name: str) -> AccountState:
        """The account called ``name``; raise NotFound."""
        try:
            return self._accounts[name]
        except KeyError:
            raise NotFound(f"no account {name!r}", code="account.not_found") from None

    def __contains__(self, name: object) -> bool:
        return name in self._accounts

    def names(self) -> list[str]:
        """All trading account names."""
        return sorted(self._accounts)

    def on_change(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(account, currency)`` after any balance or position change."""
        self._listeners.append(listener)

    def _changed(self, account: str, currency: str) -> None:
        for listener in self._listeners:
            listener(account, currency)

    # -- cash -----------------------------------------------------------------------------------------
    def deposit(self, account: str, currency: str, amount: Decimal, ts: int = 0) -> None:
        """Credit ``amount`` of ``currency`` from outside; raise InvalidInput if not positive."""
        self.open(account) if account not in self._accounts else None
        _positive("deposit", amount)
        self.ledger.transfer(ts, EntryKind.DEPOSIT, currency, EXTERNAL, account, amount)
        self._changed(account, currency.upper())

    def withdraw(self, account: str, currency: str, amount: Decimal, ts: int = 0, *, limit: Decimal | None = None) -> None:
        """Debit ``amount`` to outside; ``limit`` is the available withdrawal funds (checked when given)."""
        self.get(account)
        _positive("withdrawal", amount)
        if limit is not None and amount > limit:
            raise InvalidInput(
                f"withdrawal {amount} {currency} exceeds available withdrawal funds {limit}", code="account.withdrawal"
            )
        self.ledger.transfer(ts, EntryKind.WITHDRAWAL, currency, account, EXTERNAL, amount)
        self._changed(account, currency.upper())

    def balance(self, account: str, currency: str) -> Decimal:
        """Cash balance (ledger) of ``account`` in ``currency``."""
        return self.ledger.balance(account, currency)

    # -- positions ------------------------------------------------------------------------------------
    def position(self, account: str, instrument: str) -> PositionState | None:
        """The position of ``account`` in ``instrument`` or None."""
        return self.get(account).positions.get(instrument)

    def positions(self, account: str, currency: str | None = None) -> Iterator[PositionState]:
        """Non-flat positions of ``account`` (settling in ``currency`` if given)."""
        ccy = None if currency is None else currency.upper()
        for pos in self.get(account).positions.values():
            if pos.size != 0 or pos.cash != 0 or pos.session_rpl != 0:
                if ccy is None or pos.instrument.settlement == ccy:
                    yield pos

    def domain_positions(self, account: str) -> list[Position]:
        """Open positions as app.domain.Position."""
        return [
            Position(p.instrument.name, p.size, p.average_price, p.realized_pnl, account)
            for p in self.positions(account)
            if p.size != 0
        ]

    def apply_trade(
        self,
        inst: Instrument,
        buyer: str,
        seller: str,
        amount: Decimal,
        price: Decimal,
        ts: int,
        *,
        buyer_fee: Decimal = ZERO,
        seller_fee: Decimal = ZERO,
        ref: str = "",
    ) -> None:
        """Book a trade of ``amount`` at ``price`` between two accounts: positions, premium, fees."""
        _positive("trade amount", amount)
        _positive("trade price", price)
        for fee in (buyer_fee, seller_fee):
            if not fee.is_finite():
                raise InvalidInput("fee is not a finite number", code="input.nan")
        self.get(buyer)
        self.get(seller)
        ccy = inst.settlement
        self._apply_side(buyer, inst, amount, price, ts, ref)
        self._apply_side(seller, inst, -amount, price, ts, ref)
        if inst.kind is Kind.OPTION:
            premium = price * amount * inst.contract_size
            self.ledger.transfer(ts, EntryKind.PREMIUM, ccy, buyer, seller, premium, ref)
        for acct, fee in ((buyer, buyer_fee), (seller, seller_fee)):
            if fee:
                self.ledger.transfer(ts, EntryKind.FEE, ccy, acct, FEES, fee, ref)
        self._changed(buyer, ccy)
        self._changed(seller, ccy)

    def apply_fill(self, account: str, inst: Instrument, side: Side, amount: Decimal, price: Decimal, ts: int,
                   *, counterparty: str, fee: Decimal = ZERO, counterparty_fee: Decimal = ZERO, ref: str = "") -> None:
        """Book a fill of ``account`` on ``side`` against ``counterparty`` (same as :meth:`apply_trade`)."""
        if side is Side.BUY:
            self.apply_trade(inst, account, counterparty, amount, price, ts, buyer_fee=fee, seller_fee=counterparty_fee, ref=ref)
        else:
            self.apply_trade(inst, counterparty, account, amount, price, ts, buyer_fee=counterparty_fee, seller_fee=fee, ref=ref)

    def _apply_side(self, account: str, inst: Instrument, dn: Decimal, price: Decimal, ts: int, ref: str) -> None:
        acct = self.get(account)
        pos = acct.positions.get(inst.name)
        if pos is None:
            pos = acct.positions[inst.name] = PositionState(inst)
        n = pos.size
        closing = n != 0 and (n > 0) != (dn > 0)
        closed = min(abs(dn), abs(n)) if closing else ZERO
        if pos.is_futures_like:
            flow = _div(dn, price) if inst.inverse else -dn * price
            pos.cash += flow
            if closed:
                portion = _div(pos.open_cost * closed, abs(n))
                signed_closed = closed if dn > 0 else -closed
                part_flow = _div(signed_closed, price) if inst.inverse else -signed_closed * price
                rpl = portion + part_flow if inst.inverse else part_flow - portion
                pos.session_rpl += rpl
                pos.realized_pnl += rpl
                pos.open_cost -= portion
            opened = abs(dn) - closed
            if opened:
                signed_open = opened if dn > 0 else -opened
                pos.open_cost += _div(signed_open, price) if inst.inverse else signed_open * price
        else:
            premium = price * inst.contract_size
            if closed:
                portion = _div(pos.premium_paid * closed, abs(n))
                signed_closed = closed if dn > 0 else -closed
                rpl = -(portion + signed_closed * premium)
                pos.realized_pnl += rpl
                pos.premium_paid -= portion
            opened = abs(dn) - closed
            if opened:
                pos.premium_paid += (opened if dn > 0 else -opened) * premium
        pos.size = n + dn

    # -- figures --------------------------------------------------------------------------------------
    def figures(
        self,
        account: str,
        currency: str,
        mark_of: Callable[[str], float],
        *,
        margin_balance_includes_options: bool = False,
    ) -> AccountFigures:
        """Balance, equity, margin balance and session PnL at marks ``mark_of(name)`` (price units)."""
        ccy = currency.upper()
        balance = float(self.balance(account, ccy))
        upl = rpl = ov = opt_upl = 0.0
        for pos in self.positions(account, ccy):
            if pos.is_futures_like:
                total = float(pos.session_pnl(Decimal(repr(mark_of(pos.instrument.name))))) if pos.size else float(pos.cash)
                rpl += float(pos.session_rpl)
                upl += total - float(pos.session_rpl)
            elif pos.size:
                value = float(pos.size) * mark_of(pos.instrument.name) * float(pos.instrument.contract_size)
                ov += value
                opt_upl += value - float(pos.premium_paid)
        d = deribit_summary(balance, upl, rpl, ov, 0.0, margin_balance_includes_options=margin_balance_includes_options)
        return AccountFigures(balance, d["equity"], d["margin_balance"], ov, upl, rpl, opt_upl)

    # -- settlement primitives (used by app.engine.settlement and liquidation) ------------------------
    def book_session(self, account: str, inst_name: str, price: Decimal, ts: int, ref: str = "") -> int:
        """Book a futures position's session PnL at ``price`` to the balance (vs @clearing); units booked."""
        pos = self.get(account).positions.get(inst_name)
        if pos is None or not pos.is_futures_like:
            return 0
        inst = pos.instrument
        ccy = inst.settlement
        total = pos.session_pnl(price)
        rpl_units = self.ledger.to_units(ccy, pos.session_rpl)
        total_units = self.ledger.to_units(ccy, total)
        upl_units = total_units - rpl_units
        if rpl_units:
            self.ledger.post(ts, EntryKind.REALISED_PNL, ccy, [(account, rpl_units), (CLEARING, -rpl_units)], ref)
        if upl_units:
            self.ledger.post(ts, EntryKind.SETTLEMENT, ccy, [(account, upl_units), (CLEARING, -upl_units)], ref)
        # The position continues from the settlement price (Deribit resets the average price there).
        pos.cash = _div(pos.size, price) if inst.inverse else -pos.size * price
        pos.open_cost = pos.cash if inst.inverse else -pos.cash
        pos.session_rpl = ZERO
        key = (account, ccy)
        self.session_profit[key] = self.session_profit.get(key, ZERO) + self.ledger.from_units(ccy, total_units)
        self._changed(account, ccy)
        return total_units

    def close_position(self, account: str, inst_name: str) -> None:
        """Forget a flat or delivered position (after its cash has been booked)."""
        self.get(account).positions.pop(inst_name, None)

    def sweep_clearing(self, currency: str, ts: int) -> int:
        """Move the clearing account's rounding dust to fee income; returns the units moved."""
        units = self.ledger.balance_units(CLEARING, currency)
        if units:
            self.ledger.post(ts, EntryKind.ROUNDING, currency, [(CLEARING, -units), (FEES, units)])
        return units

    def trading_accounts(self) -> list[str]:
        """Names of trading accounts (no system accounts)."""
        return [a for a in self._accounts if a not in SYSTEM_ACCOUNTS]


def _positive(label: str, amount: Decimal) -> None:
    if not isinstance(amount, Decimal):
        raise InvalidInput(f"{label} must be a Decimal, got {type(amount).__name__}", code="input.type")
    if not amount.is_finite():
        raise InvalidInput(f"{label} {amount} is not a finite number", code="input.nan")
    if amount <= 0:
        raise InvalidInput(f"{label} must be positive, got {amount}", code="input.negative")
