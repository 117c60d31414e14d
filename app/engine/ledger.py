"""Double-entry ledger of balances per account and currency, in exact integer units.

Every balance change is a transaction whose legs sum to zero in integer units of the currency
(``10**-precision``: 1e-10 BTC/ETH, 1e-6 USDC), so money is never created or lost by rounding. Besides the
trading accounts there are system accounts:

- ``@external``: the outside world; deposits come from it, withdrawals go to it (its balance is minus the net
  deposits);
- ``@fees``: the venue's fee income (trading fees, and rounding dust of settlements);
- ``@insurance``: the insurance fund (liquidation fees in, bankrupt deficits out);
- ``@socialised``: socialised losses: a bankrupt deficit the fund could not cover is owed by it until it is
  recovered from the session's winners;
- ``@clearing``: the counterparty of session PnL, funding and delivery, which are booked per account but are
  zero-sum only over all accounts; what remains after a settlement is rounding dust, moved to ``@fees``.

Conservation (checked by :meth:`Ledger.conservation`): for each currency, the sum over trading accounts plus fee
income, insurance fund, socialised losses and clearing equals net deposits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum

from app.engine.margin_params import MARGIN_PARAMS
from app.errors import InvalidInput

EXTERNAL = "@external"
FEES = "@fees"
INSURANCE = "@insurance"
SOCIALISED = "@socialised"
CLEARING = "@clearing"
SYSTEM_ACCOUNTS = (EXTERNAL, FEES, INSURANCE, SOCIALISED, CLEARING)


class EntryKind(str, Enum):
    """Why a balance changed."""

    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    PREMIUM = "premium"
    FEE = "fee"
    REALISED_PNL = "realised_pnl"
    SETTLEMENT = "settlement"
    FUNDING = "funding"
    DELIVERY = "delivery"
    LIQUIDATION_FEE = "liquidation_fee"
    INSURANCE = "insurance_fund"
    SOCIALISED_LOSS = "socialised_loss"
    ROUNDING = "rounding"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One leg of a transaction: ``units`` (signed integer) credited to ``account`` in ``currency``."""

    seq: int
    txn: int
    ts: int
    kind: EntryKind
    currency: str
    account: str
    units: int
    amount: Decimal
    ref: str = ""


class Ledger:
    """Balances per (account, currency) kept as integer units; every transaction balances to zero."""

    def __init__(self, precision: Mapping[str, int] | None = None) -> None:
        self._precision = {c: p.precision for c, p in MARGIN_PARAMS.items()}
        if precision:
            self._precision.update({k.upper(): int(v) for k, v in precision.items()})
        self._balances: dict[tuple[str, str], int] = defaultdict(int)
        self._entries: list[LedgerEntry] = []
        self._by_ref: dict[tuple[str, str, EntryKind, str], int] = defaultdict(int)
        self._txn = 0

    # -- units ----------------------------------------------------------------------------------------
    def precision(self, currency: str) -> int:
        """Decimal places of the currency's ledger unit (10 for BTC: 1e-10 BTC)."""
        try:
            return self._precision[currency.upper()]
        except KeyError:
            raise InvalidInput(f"ledger has no precision for currency {currency!r}", code="ledger.currency") from None

    def unit(self, currency: str) -> Decimal:
        """The smallest amount of ``currency`` the ledger holds."""
        return Decimal(1).scaleb(-self.precision(currency))

    def to_units(self, currency: str, amount: Decimal | int | float | str) -> int:
        """An amount as integer units, rounded half-even to the ledger unit; raise on NaN or infinity."""
        dec = amount if isinstance(amount, Decimal) else Decimal(str(amount))
        if not dec.is_finite():
            raise InvalidInput(f"amount {amount} is not a finite number", code="input.nan")
        return int(dec.scaleb(self.precision(currency)).to_integral_value(ROUND_HALF_EVEN))

    def from_units(self, currency: str, units: int) -> Decimal:
        """Integer units back to a Decimal amount of ``currency``."""
        return Decimal(units).scaleb(-self.precision(currency))

    # -- posting --------------------------------------------------------------------------------------
    def post(self, ts: int, kind: EntryKind, currency: str, legs: Sequence[tuple[str, int]], ref: str = "") -> int:
        """Book a transaction of (account, signed units) legs that sum to zero; returns the transaction id."""
        ccy = currency.upper()
        self.precision(ccy)
        if sum(u for _, u in legs) != 0:
            raise InvalidInput(f"ledger transaction {kind.value} does not balance: {legs}", code="ledger.unbalanced")
        for account, units in legs:
            if not isinstance(units, int) or isinstance(units, bool):
                raise InvalidInput(f"ledger units must be int, got {units!r}", code="ledger.units")
            if not account:
                raise InvalidInput("ledger account name is empty", code="ledger.account")
        self._txn += 1
        for account, units in legs:
            if units == 0:
                continue
            self._balances[(account, ccy)] += units
            if ref:
                self._by_ref[(account, ccy, kind, ref)] += units
            self._entries.append(
                LedgerEntry(len(self._entries) + 1, self._txn, ts, kind, ccy, account, units, self.from_units(ccy, units), ref)
            )
        return self._txn

    def transfer(
        self, ts: int, kind: EntryKind, currency: str, src: str, dst: str, amount: Decimal, ref: str = ""
    ) -> int:
        """Move ``amount`` (rounded once to the ledger unit) from ``src`` to ``dst``; returns the units moved."""
        units = self.to_units(currency, amount)
        if units:
            self.post(ts, kind, currency, [(src, -units), (dst, units)], ref)
        return units

    def transfer_units(self, ts: int, kind: EntryKind, currency: str, src: str, dst: str, units: int, ref: str = "") -> None:
        """Move an exact number of units from ``src`` to ``dst``."""
        if units:
            self.post(ts, kind, currency, [(src, -units), (dst, units)], ref)

    # -- reading --------------------------------------------------------------------------------------
    def balance_units(self, account: str, currency: str) -> int:
        """Balance in integer units."""
        return self._balances.get((account, currency.upper()), 0)

    def balance(self, account: str, currency: str) -> Decimal:
        """Balance of ``account`` in ``currency``."""
        ccy = currency.upper()
        return self.from_units(ccy, self.balance_units(account, ccy))

    def ref_total(self, account: str, currency: str, kind: EntryKind, ref: str) -> Decimal:
        """What ``account`` was credited (negative: debited) in ``currency`` by entries of ``kind`` booked against
        ``ref``, e.g. the funding of one perpetual; kept as a running sum, so it costs one lookup."""
        ccy = currency.upper()
        return self.from_units(ccy, self._by_ref.get((account, ccy, kind, ref), 0))

    def accounts(self, currency: str | None = None, *, include_system: bool = False) -> list[str]:
        """Accounts with any entry (in ``currency`` if given)."""
        names = {a for (a, c) in self._balances if currency is None or c == currency.upper()}
        if not include_system:
            names -= set(SYSTEM_ACCOUNTS)
        return sorted(names)

    def currencies(self) -> list[str]:
        """Currencies with any entry."""
        return sorted({c for (_, c) in self._balances})

    def entries(self, account: str | None = None, currency: str | None = None) -> list[LedgerEntry]:
        """Ledger legs, optionally filtered by account and currency, in booking order."""
        ccy = None if currency is None else currency.upper()
        return [e for e in self._entries if (account is None or e.account == account) and (ccy is None or e.currency == ccy)]

    def __len__(self) -> int:
        return len(self._entries)

    def conservation(self, currency: str) -> dict[str, int]:
        """Units per bucket: users, fees, insurance, socialised, clearing, deposits (net); users+... == deposits."""
        ccy = currency.upper()
        users = sum(u for (a, c), u in self._balances.items() if c == ccy and a not in SYSTEM_ACCOUNTS)
        return {
            "users": users,
            "fees": self.balance_units(FEES, ccy),
            "insurance": self.balance_units(INSURANCE, ccy),
            "socialised": self.balance_units(SOCIALISED, ccy),
            "clearing": self.balance_units(CLEARING, ccy),
            "deposits": -self.balance_units(EXTERNAL, ccy),
        }

    def replay_balances(self, entries: Iterable[LedgerEntry] | None = None) -> dict[tuple[str, str], int]:
        """Balances recomputed from the entries alone (to check the running balances)."""
        out: dict[tuple[str, str], int] = defaultdict(int)
        for e in self._entries if entries is None else entries:
            out[(e.account, e.currency)] += e.units
        return {k: v for k, v in out.items() if v}

    def running_balances(self) -> dict[tuple[str, str], int]:
        """The running balances (non-zero), keyed by (account, currency)."""
        return {k: v for k, v in self._balances.items() if v}
