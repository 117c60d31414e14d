"""The venue's trade tape as Deribit numbers it: ``trade_seq`` per instrument, tick direction, the marks at each
trade, and the rolling 24-hour statistics of tickers and book summaries.

Every endpoint that shows a trade (``private/buy`` results, ``trades.*``, ``user.trades.*``,
``get_user_trades_by_*``) asks the tape, so one trade carries one ``trade_seq`` everywhere. The server feeds
it every public trade in bus order (:meth:`TradeTape.observe`), which is the venue's order of execution.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from app.domain import Instrument, Kind

DAY_MS = 86_400_000
BUCKET_MS = 60_000  # 24h statistics are kept in one-minute buckets: bounded memory however busy the venue
KEEP_TRADES = 200_000  # context of this many recent public trades is kept; our own trades are kept for good

# Deribit's tick_direction: 0 plus tick, 1 zero-plus tick, 2 minus tick, 3 zero-minus tick
PLUS, ZERO_PLUS, MINUS, ZERO_MINUS = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class TradeInfo:
    """What Deribit shows of a trade beyond the fill itself; prices in instrument units, ``iv`` a fraction."""

    seq: int
    tick_direction: int = PLUS
    mark_price: float | None = None
    index_price: float | None = None
    iv: float | None = None
    underlying_price: float | None = None


@dataclass(frozen=True, slots=True)
class TradeStats:
    """24-hour statistics of one instrument: ``volume`` in coin, ``volume_usd`` in USD, prices in instrument
    units, ``price_change`` in percent (Deribit's ``stats``)."""

    last: float
    high: float
    low: float
    volume: float
    volume_usd: float
    price_change: float


@dataclass(slots=True)
class _Bucket:
    start_ms: int
    first: float
    last: float
    high: float
    low: float
    volume: float = 0.0
    volume_usd: float = 0.0


@dataclass(slots=True)
class _Instrument:
    seq: int = 0
    last: float | None = None
    direction: int = PLUS
    buckets: deque[_Bucket] = field(default_factory=deque)


def coin_and_usd(inst: Instrument | None, price: float, amount: float, index: float | None) -> tuple[float, float]:
    """Traded volume of one trade in coin and in USD (``amount`` in instrument units, ``index`` USD per coin).

    Inverse futures trade USD amounts (coin = USD / price); options trade coin, whose USD volume is the premium
    paid (price × amount, times the index when the premium is in coin); linear instruments trade coin at USD prices.
    """
    if inst is None:
        return amount, 0.0
    if inst.inverse and inst.kind in (Kind.FUTURE, Kind.PERPETUAL):
        return (amount / price if price else 0.0), amount
    if inst.is_option and inst.inverse:
        return amount, price * amount * (index or 0.0)
    return amount, price * amount


class TradeTape:
    """Per-instrument trade sequence numbers, trade context and 24h statistics."""

    def __init__(self, *, window_ms: int = DAY_MS, keep: int = KEEP_TRADES) -> None:
        self.window_ms = window_ms
        self.keep = keep
        self._insts: dict[str, _Instrument] = {}
        self._recent: OrderedDict[str, TradeInfo] = OrderedDict()  # trade_id -> info, oldest first
        self._ours: dict[str, TradeInfo] = {}  # trade ids of our fills: never evicted
        self._unnamed: dict[str, deque[TradeInfo]] = {}  # public trades without an id, by instrument/price/amount

    def observe(
        self,
        inst: Instrument | None,
        name: str,
        trade_id: str,
        ts: int,
        price: float,
        amount: float,
        *,
        mark_price: float | None = None,
        index_price: float | None = None,
        iv: float | None = None,
        underlying_price: float | None = None,
    ) -> TradeInfo:
        """Record a public trade (in execution order) and return its info; a trade seen before keeps its info."""
        if trade_id:
            known = self._ours.get(trade_id) or self._recent.get(trade_id)
            if known is not None:
                return known
        state = self._insts.setdefault(name, _Instrument())
        state.seq += 1
        if state.last is None or price > state.last:
            direction = PLUS
        elif price < state.last:
            direction = MINUS
        else:  # same price: the direction of the last change, "zero"
            direction = ZERO_PLUS if state.direction in (PLUS, ZERO_PLUS) else ZERO_MINUS
        state.last, state.direction = price, direction
        info = TradeInfo(state.seq, direction, mark_price, index_price, iv, underlying_price)
        self._add_stats(state, inst, ts, price, amount, index_price)
        if trade_id:
            self._recent[trade_id] = info
        else:  # to be claimed by the fill of the same instrument, price and amount (first come, first served)
            self._unnamed.setdefault(_anonymous_key(name, price, amount), deque()).append(info)
        if len(self._recent) > self.keep:
            self._recent.popitem(last=False)
        if len(self._unnamed) > self.keep:
            self._unnamed.pop(next(iter(self._unnamed)))
        return info

    def info(self, name: str, trade_id: str, price: float = 0.0, amount: float = 0.0) -> TradeInfo:
        """The info of a trade by id; a trade the tape never saw (before the server started, or lost on a full
        bus queue) gets the instrument's next ``trade_seq`` now, so it is still numbered once and for good.

        A venue whose public trades carry no id is matched on (instrument, price, amount), oldest first."""
        known = self._ours.get(trade_id) or self._recent.get(trade_id)
        if known is None:
            key = _anonymous_key(name, price, amount)
            waiting = self._unnamed.get(key)
            if waiting:
                known = waiting.popleft()
                if not waiting:
                    del self._unnamed[key]
        if known is None:
            state = self._insts.setdefault(name, _Instrument())
            state.seq += 1
            known = TradeInfo(state.seq)
        self._ours[trade_id] = known
        return known

    def pin(self, trade_id: str) -> None:
        """Keep a trade's info for good (our fills are listed by ``get_user_trades_*`` long after)."""
        known = self._recent.get(trade_id)
        if known is not None:
            self._ours[trade_id] = known

    def last_price(self, name: str) -> float | None:
        """Price of the instrument's last trade, or None before any."""
        state = self._insts.get(name)
        return None if state is None else state.last

    def stats(self, name: str, now_ms: int) -> TradeStats | None:
        """Statistics of the trades of the last 24 hours, or None when there were none."""
        state = self._insts.get(name)
        if state is None:
            return None
        self._expire(state, now_ms)
        buckets = state.buckets
        if not buckets:
            return None
        first = buckets[0].first
        last = buckets[-1].last
        return TradeStats(
            last=last,
            high=max(b.high for b in buckets),
            low=min(b.low for b in buckets),
            volume=sum(b.volume for b in buckets),
            volume_usd=sum(b.volume_usd for b in buckets),
            price_change=round((last - first) / first * 100.0, 4) if first else 0.0,
        )

    def _add_stats(
        self, state: _Instrument, inst: Instrument | None, ts: int, price: float, amount: float, index: float | None
    ) -> None:
        coin, usd = coin_and_usd(inst, price, amount, index)
        start = ts - ts % BUCKET_MS
        buckets = state.buckets
        if buckets and buckets[-1].start_ms >= start:
            b = buckets[-1]
            b.last = price
            b.high = max(b.high, price)
            b.low = min(b.low, price)
        else:
            b = _Bucket(start, price, price, price, price)
            buckets.append(b)
        b.volume += coin
        b.volume_usd += usd
        self._expire(state, ts)

    def _expire(self, state: _Instrument, now_ms: int) -> None:
        # a bucket leaves the window when all of its minute is older than 24h
        horizon = now_ms - self.window_ms
        buckets = state.buckets
        while buckets and buckets[0].start_ms + BUCKET_MS <= horizon:
            buckets.popleft()


def _anonymous_key(name: str, price: float, amount: float) -> str:
    return f"{name}|{float(price)!r}|{float(amount)!r}"
