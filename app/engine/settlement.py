"""Settlement: daily futures settlement, expiry delivery from the index TWAP, perpetual funding, socialised loss.

- **Delivery price** (deribit.md §3.5): the time-weighted average of the index over the 30 minutes before
  expiry, sampled every 4 s: 450 samples. :class:`IndexTWAP` keeps the samples the oracle records.
- **Daily settlement** at 08:00 UTC: every account's futures session PnL (realised + unrealised at the
  settlement price) is booked to its balance against ``@clearing``; the clearing account's rounding dust goes
  to fee income; then pending socialised losses are recovered from the session's winners.
- **Expiry**: options are cash-settled in coin (inverse call pays ``max(0, D - K) / D`` per coin, put
  ``max(0, K - D) / D``; linear ``max(0, D - K)`` in USDC); futures book their session PnL at D and close.
  Every delivered position pays a **delivery fee** (§4.5, :class:`DeliveryFees`): a fraction of the delivered
  underlying (futures 0.025 %, options 0.02 %), an option's never more than 12.5 % of its value at delivery, so
  an option that expires worthless pays none. These are Deribit's historical rates; the current ones are
  UNCONFIRMED.
- **Funding** of perpetuals (§3.6): ``premium = (mark - index) / index``;
  ``rate_8h = clamp(max(d, P) + min(-d, P), -cap, cap)`` with dampener d = 0.025 %; a position pays
  ``rate_8h * size_coin * elapsed / 8h`` (longs pay shorts when positive), in coin for inverse perpetuals.
- **Socialised loss** (§3.3): what the insurance fund could not cover is owed by ``@socialised`` and recovered
  from the day's winners pro rata to their booked session profit, never more than that profit. The exact
  allocation is UNCONFIRMED at Deribit; pro rata on session profit is the documented most likely form.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from app.domain import Instrument, Kind
from app.engine.accounts import ZERO, AccountBook, _div
from app.engine.ledger import CLEARING, FEES, SOCIALISED, EntryKind
from app.errors import InvalidInput, StaleData

SAMPLE_INTERVAL_MS = 4_000
TWAP_WINDOW_MS = 30 * 60 * 1000
TWAP_SAMPLES = TWAP_WINDOW_MS // SAMPLE_INTERVAL_MS  # 450
EIGHT_HOURS_MS = 8 * 3600 * 1000


DAY_MS = 86_400_000
SETTLEMENT_HOUR_MS = 8 * 3_600_000


def next_settlement_ms(now_ms: int) -> int:
    """The next daily settlement time (08:00 UTC) strictly after ``now_ms`` (epoch ms)."""
    day = now_ms - now_ms % DAY_MS
    at = day + SETTLEMENT_HOUR_MS
    return at if at > now_ms else at + DAY_MS


class IndexTWAP:
    """Index samples every 4 s and the 30-minute time-weighted average used as delivery price."""

    def __init__(self, interval_ms: int = SAMPLE_INTERVAL_MS, window_ms: int = TWAP_WINDOW_MS) -> None:
        self.interval_ms = interval_ms
        self.window_ms = window_ms
        self._samples: dict[str, deque[tuple[int, float]]] = {}

    def record(self, index: str, ts: int, price: float) -> bool:
        """Keep a sample if ``ts`` starts a new 4-s slot (one sample per slot); returns True when kept."""
        if not (price > 0 and price < float("inf")):
            raise InvalidInput(f"index sample {price!r} is not a positive finite price", code="input.nan")
        q = self._samples.setdefault(index, deque(maxlen=max(1, 2 * self.window_ms // self.interval_ms)))
        slot = ts // self.interval_ms
        if q and q[-1][0] // self.interval_ms >= slot:
            return False
        q.append((ts, float(price)))
        return True

    def samples(self, index: str, end_ms: int) -> list[float]:
        """Samples in the window ``(end_ms - 30 min, end_ms]``."""
        lo = end_ms - self.window_ms
        return [p for t, p in self._samples.get(index, ()) if lo < t <= end_ms]

    def delivery_price(self, index: str, expiry_ms: int, *, min_samples: int = 1) -> Decimal:
        """Average of the window's samples (USD, 8 decimals); StaleData below ``min_samples`` samples."""
        xs = self.samples(index, expiry_ms)
        if len(xs) < min_samples:
            raise StaleData(
                f"only {len(xs)} index samples of {index} in the 30 min before expiry (need {min_samples})",
                code="settlement.samples",
                index=index,
            )
        return Decimal(repr(sum(xs) / len(xs))).quantize(Decimal("1e-8"))


@dataclass(frozen=True, slots=True)
class FundingParams:
    """Perpetual funding: dampener and cap of the 8-hour rate (fractions)."""

    dampener: float = 0.00025
    cap: float = 0.005


def funding_rate_8h(mark: float, index: float, p: FundingParams = FundingParams()) -> float:
    """The 8-hour funding rate from the perpetual's mark and the index (fraction, positive: longs pay)."""
    if not (mark > 0 and index > 0):
        raise InvalidInput("funding needs positive mark and index prices", code="input.nan")
    prem = (mark - index) / index
    rate = max(p.dampener, prem) + min(-p.dampener, prem)
    return max(-p.cap, min(p.cap, rate))


@dataclass(frozen=True, slots=True)
class DeliveryFees:
    """Delivery fee rates: fractions of the delivered underlying, and the options' cap as a fraction of their value.

    deribit.md §4.5: historically "half the fees of taker orders": 0.025 % for futures, 0.02 % for options, an
    option's capped at 12.5 % of its value (a secondary copy gives 0.015 % for options). The current delivery fees
    are UNCONFIRMED: these are the documented historical rates, kept as parameters to change in one place.
    """

    future: Decimal = Decimal("0.00025")
    option: Decimal = Decimal("0.0002")
    option_cap: Decimal = Decimal("0.125")


DELIVERY_FEES = DeliveryFees()
NO_DELIVERY_FEES = DeliveryFees(ZERO, ZERO, ZERO)


def delivery_fee(inst: Instrument, size: Decimal, delivery: Decimal, fees: DeliveryFees = DELIVERY_FEES) -> Decimal:
    """Fee of delivering ``size`` (amount units, either sign) of ``inst`` at ``delivery`` (USD), settlement currency."""
    if size == 0:
        return ZERO
    n = abs(size)
    if inst.kind is Kind.OPTION:
        coin = n * inst.contract_size
        base = fees.option * coin if inst.inverse else fees.option * coin * delivery
        # The cap is 12.5 % of the option's value at delivery: an option that expires worthless is not delivered and
        # pays nothing (§3.5/§4.5 name no fee for it; Deribit charges delivery only on what is delivered).
        return min(base, fees.option_cap * option_payoff(inst, delivery) * coin)
    if inst.kind is Kind.FUTURE:
        # Inverse futures' amounts are USD: the coin notional is n / D; linear ones are coin, the fee in the quote.
        return fees.future * _div(n, delivery) if inst.inverse else fees.future * n * delivery
    return ZERO  # perpetuals and spot are never delivered


class Settlement:
    """Books settlements, deliveries, funding and socialised-loss recovery on an AccountBook."""

    def __init__(self, accounts: AccountBook, delivery_fees: DeliveryFees = DELIVERY_FEES) -> None:
        self.accounts = accounts
        self.ledger = accounts.ledger
        self.delivery_fees = delivery_fees

    # -- daily --------------------------------------------------------------------------------------
    def daily(self, prices: Mapping[str, Decimal], ts: int) -> dict[str, int]:
        """Book every futures position's session PnL at ``prices`` (name -> settlement price); per-currency dust."""
        currencies: set[str] = set()
        for name in self.accounts.trading_accounts():
            for pos in list(self.accounts.get(name).positions.values()):
                if not pos.is_futures_like:
                    continue
                price = prices.get(pos.instrument.name)
                if price is None:
                    if pos.size == 0 and pos.cash == 0:
                        continue
                    raise InvalidInput(f"no settlement price for {pos.instrument.name}", code="settlement.price")
                _check_price(pos.instrument.name, price)
                self.accounts.book_session(name, pos.instrument.name, price, ts, "daily")
                currencies.add(pos.instrument.settlement)
                if pos.size == 0:
                    self.accounts.close_position(name, pos.instrument.name)
        dust = {c: self.accounts.sweep_clearing(c, ts) for c in sorted(currencies)}
        for ccy in {c for (_, c) in self.accounts.session_profit} | currencies:
            self.socialise(ccy, ts)
        self.accounts.session_profit.clear()
        return dust

    # -- socialised losses --------------------------------------------------------------------------
    def socialise(self, currency: str, ts: int) -> int:
        """Recover ``@socialised``'s deficit from this session's winners, pro rata; returns units recovered."""
        ccy = currency.upper()
        owed = -self.ledger.balance_units(SOCIALISED, ccy)
        if owed <= 0:
            return 0
        winners = {
            a: self.ledger.to_units(ccy, p)
            for (a, c), p in self.accounts.session_profit.items()
            if c == ccy and p > 0 and self.ledger.balance_units(a, ccy) > 0
        }
        winners = {a: min(u, self.ledger.balance_units(a, ccy)) for a, u in winners.items()}
        total = sum(winners.values())
        if total <= 0:
            return 0
        take = min(owed, total)
        legs: list[tuple[str, int]] = []
        taken = 0
        for a in sorted(winners):
            share = take * winners[a] // total
            if share:
                legs.append((a, -share))
                taken += share
        # Integer division leaves a few units: taken from the winners with room left, largest first.
        rest = take - taken
        for a in sorted(winners, key=lambda x: (-winners[x], x)):
            if rest == 0:
                break
            used = -sum(u for acct, u in legs if acct == a)
            extra = min(rest, winners[a] - used)
            if extra > 0:
                legs.append((a, -extra))
                rest -= extra
        recovered = take - rest
        legs.append((SOCIALISED, recovered))
        self.ledger.post(ts, EntryKind.SOCIALISED_LOSS, ccy, legs, "socialised")
        for a, _ in legs:
            if a != SOCIALISED:
                self.accounts._changed(a, ccy)
        return recovered

    # -- expiry -------------------------------------------------------------------------------------
    def expire(self, inst: Instrument, delivery: Decimal, ts: int) -> int:
        """Deliver every position in ``inst`` at ``delivery`` (USD), charging the delivery fee; returns the number of
        positions closed."""
        _check_price(inst.name, delivery)
        n = 0
        posted = 0
        for name in self.accounts.trading_accounts():
            pos = self.accounts.get(name).positions.get(inst.name)
            if pos is None:
                continue
            size = pos.size
            if pos.is_futures_like:
                self.accounts.book_session(name, inst.name, delivery, ts, "delivery")
            elif size != 0:
                payoff = option_payoff(inst, delivery) * size * inst.contract_size
                units = self.ledger.to_units(inst.settlement, payoff)
                if units:
                    self.ledger.post(
                        ts, EntryKind.DELIVERY, inst.settlement, [(name, units), (CLEARING, -units)], inst.name
                    )
                    posted += units
                pos.realized_pnl += payoff - pos.premium_paid
            # The delivery fee is income of the venue like a trading fee (the ledger has no kind of its own for it):
            # booked as FEE against the instrument, straight to @fees, so conservation holds without @clearing.
            fee = self.ledger.to_units(inst.settlement, delivery_fee(inst, size, delivery, self.delivery_fees))
            if fee:
                self.ledger.post(ts, EntryKind.FEE, inst.settlement, [(name, -fee), (FEES, fee)], inst.name)
                pos.realized_pnl -= self.ledger.from_units(inst.settlement, fee)
            self.accounts.close_position(name, inst.name)
            self.accounts._changed(name, inst.settlement)
            n += 1
        self._sweep_dust(inst.settlement, -posted, ts)
        return n

    # -- funding ------------------------------------------------------------------------------------
    def funding(self, inst: Instrument, rate_8h: float, index_price: float, elapsed_ms: int, ts: int) -> int:
        """Book funding of a perpetual over ``elapsed_ms`` at ``rate_8h``; returns the number of payments."""
        if inst.kind is not Kind.PERPETUAL:
            raise InvalidInput(f"{inst.name} is not a perpetual", code="settlement.funding")
        if not (index_price > 0) or elapsed_ms < 0 or rate_8h != rate_8h:
            raise InvalidInput("funding needs a positive index, a rate and a non-negative interval", code="input.nan")
        rate = Decimal(repr(rate_8h)) * Decimal(elapsed_ms) / Decimal(EIGHT_HOURS_MS)
        idx = Decimal(repr(index_price))
        ccy = inst.settlement
        n = 0
        posted = 0
        for name in self.accounts.trading_accounts():
            pos = self.accounts.get(name).positions.get(inst.name)
            if pos is None or pos.size == 0:
                continue
            coin = _div(pos.size, idx) if inst.inverse else pos.size * idx
            units = self.ledger.to_units(ccy, -rate * coin)
            if units:
                self.ledger.post(ts, EntryKind.FUNDING, ccy, [(name, units), (CLEARING, -units)], inst.name)
                self.accounts._changed(name, ccy)
                posted += units
                n += 1
        self._sweep_dust(ccy, -posted, ts)
        return n

    def _sweep_dust(self, ccy: str, dust: int, ts: int) -> None:
        # A zero-sum operation leaves only its own rounding in @clearing: move exactly that to fee income, so
        # session PnL booked early for a bankrupt account stays in @clearing until the daily settlement.
        if dust:
            self.ledger.post(ts, EntryKind.ROUNDING, ccy, [(CLEARING, -dust), (FEES, dust)])


def option_payoff(inst: Instrument, delivery: Decimal) -> Decimal:
    """Payoff per coin of underlying at delivery price ``delivery``: coin for inverse, USDC for linear."""
    k = inst.strike or ZERO
    intrinsic = max(ZERO, delivery - k) if inst.is_call else max(ZERO, k - delivery)
    return _div(intrinsic, delivery) if inst.inverse else intrinsic


def _check_price(name: str, price: Decimal) -> None:
    if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
        raise InvalidInput(
            f"settlement price of {name} must be a positive finite Decimal, got {price!r}", code="input.nan"
        )
