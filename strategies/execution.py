"""How one hedge is worked: maker-first limits, pay-up after a timeout, TWAP clips, IOC at the slippage cap.

A :class:`HedgeWork` is a plain-dict-serialisable state machine. The hedger creates one per hedge decision
and calls :meth:`HedgeWork.step` on every timer and after every order event; ``step`` returns the intents
to send (at most one child order is working at a time). Amounts are Decimal in the instrument's amount unit
(USD for inverse futures/perpetuals, coin otherwise); prices in the instrument's price unit.

Child orders:
1. a post-only limit at our side of the book (best bid to buy), when ``style = maker_first``;
2. after ``maker_timeout_s`` without a full fill: cancel, and re-place ``payup_ticks`` more aggressive, up to
   ``max_payups`` times (never beyond the slippage cap);
3. then, when ``market_fallback``, an immediate-or-cancel limit at the cap: a market order that cannot pay
   more than ``max_slippage_bps`` beyond the decision mid. What it cannot fill ends the hedge ("cap reached").
   Without ``market_fallback`` the last pay-up is cancelled after its timeout too and the hedge ends
   ("unfilled: no market fallback"), so that the next check decides afresh.

With TWAP clips (``clip`` smaller than the hedge) each clip goes through 1-3 on its own: a clip that filled
resets the pay-ups, so the next one starts as a post-only maker again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from app.domain import Instrument, OrderRequest, OrderStatus, OrderType, Quote, Side, TimeInForce
from strategies.base import Intent
from strategies.hedger_config import ExecutionConfig

ZERO = Decimal("0")


@dataclass
class Child:
    """The one working child order of a hedge."""

    key: str
    price: str | None  # Decimal as str; None for none
    amount: str
    kind: str  # "maker", "limit" (paid up) or "ioc"
    placed_ms: int
    status: str = "pending"  # pending -> open -> cancelling
    filled: str = "0"


@dataclass
class HedgeWork:
    """State of one hedge being executed (JSON-friendly fields only)."""

    seq: int
    instrument: str
    venue: str | None
    side: str
    total: str
    remaining: str
    ref_mid: float
    index: float
    started_ms: int
    next_clip_ms: int
    clip: str
    account: str = "main"  # the hedger's account: its orders trade where it measures delta
    payups: int = 0
    n_children: int = 0
    child: dict[str, Any] | None = None
    done: bool = False
    outcome: str = ""
    filled: str = "0"
    fees_usd: float = 0.0
    slippage_usd: float = 0.0
    notional_usd: float = 0.0
    seen_trades: list[str] = field(default_factory=list)
    # Per child: [filled by fill events, filled as accounted]. Order updates (which may arrive before the fills)
    # and fills each raise "accounted" to what they show, so remaining is right whichever comes first.
    child_fills: dict[str, list[str]] = field(default_factory=dict)

    # -- (de)serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON state."""
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> HedgeWork:
        """Rebuild from :meth:`to_dict`."""
        return HedgeWork(**d)

    # -- helpers -------------------------------------------------------------------------------------
    @property
    def inst(self) -> Instrument:
        """The hedge instrument."""
        return Instrument.parse(self.instrument)

    @property
    def side_(self) -> Side:
        """The side as an enum."""
        return Side(self.side)

    def _cap_price(self, inst: Instrument, cfg: ExecutionConfig) -> Decimal:
        slip = Decimal(repr(cfg.max_slippage_bps)) / 10_000
        ref = Decimal(repr(self.ref_mid))
        raw = ref * (1 + slip) if self.side_ is Side.BUY else ref * (1 - slip)
        return inst.round_price(raw, "down" if self.side_ is Side.BUY else "up")

    def _finish(self, outcome: str) -> None:
        self.done = True
        self.outcome = outcome

    # -- the machine ---------------------------------------------------------------------------------
    def step(self, now_ms: int, quote: Quote | None, cfg: ExecutionConfig) -> list[Intent]:
        """Advance the hedge at ``now_ms`` with the latest quote; return intents to send."""
        if self.done:
            return []
        inst = self.inst
        remaining = Decimal(self.remaining)
        ch = self.child
        if ch is not None:
            if ch["status"] == "open" and ch["kind"] != "ioc" and now_ms - ch["placed_ms"] >= cfg.maker_timeout_s * 1000:
                # Every timed-out limit is cancelled, the last pay-up too: left resting without a market fallback it
                # would hold the hedge "working" (and the hedger blind to delta) until the market trades through it.
                # What the cancel leaves is re-placed one pay-up further, as an IOC at the cap, or (no fallback) the
                # hedge ends unfilled and the next check decides afresh.
                ch["status"] = "cancelling"
                self.payups += 1
                if self.payups <= cfg.max_payups:
                    why = "paying up"
                elif cfg.market_fallback:
                    why = "IOC at the slippage cap next"
                else:
                    why = "no market fallback, the hedge ends unfilled"
                return [Intent.cancel(ch["key"], f"hedge {self.seq}: unfilled after {cfg.maker_timeout_s:g}s, {why}", self.venue)]
            return []
        if remaining < inst.min_amount:
            self._finish("filled")
            return []
        if now_ms < self.next_clip_ms:
            return []
        clip = min(remaining, Decimal(self.clip))
        clip = (clip / inst.min_amount).to_integral_value(rounding="ROUND_FLOOR") * inst.min_amount
        if clip <= 0:
            self._finish("filled")
            return []
        cap = self._cap_price(inst, cfg)
        buy = self.side_ is Side.BUY
        bid = None if quote is None else quote.bid
        ask = None if quote is None else quote.ask
        use_ioc = cfg.style == "market" or self.payups > cfg.max_payups
        if use_ioc:
            if not cfg.market_fallback and cfg.style != "market":
                self._finish("unfilled: no market fallback")
                return []
            price = cap
            kind = "ioc"
            req = OrderRequest(
                self.instrument, self.side_, clip, price, OrderType.LIMIT, TimeInForce.IOC, account=self.account,
                reason=f"hedge {self.seq}: IOC at the {cfg.max_slippage_bps:g} bp slippage cap",
            )
        else:
            ours = bid if buy else ask
            if ours is None or ours <= 0:
                ours = self.ref_mid
            tick = inst.tick_at(Decimal(repr(ours)))
            base = inst.round_price(Decimal(repr(ours)), "down" if buy else "up")
            price = base + (tick * cfg.payup_ticks * self.payups) * (1 if buy else -1)
            price = min(price, cap) if buy else max(price, cap)
            post_only = self.payups == 0
            # A post-only buy at or above the ask would be refused; stay one tick inside.
            if post_only and buy and ask is not None and price >= Decimal(repr(ask)):
                price = inst.round_price(Decimal(repr(ask)), "up") - tick
            if post_only and not buy and bid is not None and price <= Decimal(repr(bid)):
                price = inst.round_price(Decimal(repr(bid)), "down") + tick
            if price <= 0:
                self._finish("no valid price")
                return []
            kind = "maker" if post_only else "limit"
            req = OrderRequest(
                self.instrument, self.side_, clip, price, OrderType.LIMIT, TimeInForce.GTC, post_only=post_only, account=self.account,
                reason=f"hedge {self.seq}: {'maker' if post_only else f'pay-up {self.payups}'} limit",
            )
        self.n_children += 1
        key = f"{self.seq}.{self.n_children}"
        self.child = asdict(Child(key, str(price), str(clip), kind, now_ms))
        return [Intent.place(key, req, req.reason, self.venue, hedge=self.seq, child=self.n_children)]

    def _account(self, key: str, *, by_fills: Decimal | None = None, by_order: Decimal | None = None) -> None:
        """Raise the amount accounted as filled for child ``key``; remaining drops by the increase."""
        got, acc = (Decimal(x) for x in self.child_fills.get(key, ["0", "0"]))
        if by_fills is not None:
            got += by_fills
        new_acc = max(acc, got, by_order if by_order is not None else acc)
        self.child_fills[key] = [str(got), str(new_acc)]
        if new_acc > acc:
            self.remaining = str(max(ZERO, Decimal(self.remaining) - (new_acc - acc)))
            self.filled = str(Decimal(self.filled) + (new_acc - acc))

    def on_order(self, key: str, status: OrderStatus, filled: Decimal, reject_code: str | None, now_ms: int, cfg: ExecutionConfig) -> str | None:
        """Update from an order event of child ``key``; return ``"rejected"`` on a reject, else None."""
        if key.split(".")[0] == str(self.seq) and filled > 0:
            self._account(key, by_order=filled)
        ch = self.child
        if ch is None or ch["key"] != key:
            return None
        if status is OrderStatus.OPEN and ch["status"] == "pending":
            ch["status"] = "open"
            return None
        if status is OrderStatus.REJECTED:
            self.child = None
            if reject_code == "not_sent":
                # Written to the outbox but lost in a crash before the venue saw it: place it again.
                return None
            if reject_code == "dry_run":
                self._finish("dry run: not sent")
                return None
            return "rejected"
        if status.is_terminal:
            self.child = None
            if status is OrderStatus.FILLED:
                # The clip is done: the next clip starts maker-first again. Pay-ups are per clip, or every clip
                # after the first one that paid up would go straight to the pay-up limit or the IOC.
                self.payups = 0
            if ch["kind"] == "ioc" and Decimal(self.remaining) >= self.inst.min_amount and status is not OrderStatus.FILLED:
                self._finish("partly filled: slippage cap reached")
            elif Decimal(self.remaining) < self.inst.min_amount:
                self._finish("filled")
            else:
                self.next_clip_ms = max(self.next_clip_ms, now_ms if status is not OrderStatus.FILLED else now_ms + int(cfg.twap_interval_s * 1000))
        return None

    def on_fill(self, trade_id: str, key: str, price: Decimal, amount: Decimal, fee: Decimal, fee_ccy: str, index: float) -> bool:
        """Account a fill of a child; False when already seen. Cost: fees plus slippage vs the decision mid, USD."""
        if trade_id in self.seen_trades:
            return False
        self.seen_trades.append(trade_id)
        self.seen_trades = self.seen_trades[-64:]
        self._account(key, by_fills=amount)
        if self.child is not None and self.child["key"] == key:
            self.child["filled"] = str(Decimal(self.child["filled"]) + amount)
        inst = self.inst
        px = float(price)
        if inst.inverse and not inst.is_option:
            notional = float(amount)  # inverse futures are sized in USD
        else:
            notional = float(amount) * px
        self.notional_usd += notional
        sign = 1.0 if self.side_ is Side.BUY else -1.0
        self.slippage_usd += sign * (px - self.ref_mid) / self.ref_mid * notional
        fee_f = float(fee)
        self.fees_usd += fee_f * index if fee_ccy == inst.base else fee_f
        return True

    def abort(self, reason: str) -> list[Intent]:
        """Stop working: cancel the child (if any) and mark the hedge done."""
        out = []
        if self.child is not None and self.child["status"] != "cancelling":
            self.child["status"] = "cancelling"
            out.append(Intent.cancel(self.child["key"], f"hedge {self.seq}: {reason}", self.venue))
        self._finish(reason)
        return out
