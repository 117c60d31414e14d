"""Record what a connector receives (quotes, trades, index prices) into the store, for replay later.

    recorder = MarketRecorder(store)                 # any app.ports.MarketDataSink (SqlStore)
    venue = CcxtVenue("deribit", record=recorder.record)
    ...
    recorder.close()                                 # flushes the last batch

or, for whatever reaches a bus: ``recorder.attach(bus)``. Quotes of one instrument closer together than
``min_quote_interval_ms`` are thinned (the latest wins at the next interval); unusable messages (NaN,
crossed quotes, non-positive prices) are dropped and counted, never stored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from app.bus import Bus
from app.domain import Event, IndexPrice, Quote, Trade
from app.errors import ConfigError
from app.ports import MarketDataSink

log = logging.getLogger(__name__)

TOPICS = ("quote", "trade", "index_price")


@dataclass(slots=True)
class RecorderStats:
    """What a recorder did: recorded, thinned (quotes within the interval) and dropped (unusable)."""

    recorded: int = 0
    thinned: int = 0
    dropped: int = 0
    failed: int = 0


def _finite(*values: float | None) -> bool:
    return all(v is None or (math.isfinite(v) and v > 0) for v in values)


def usable(event: Event) -> bool:
    """True when a market-data event is fit to store (finite positive prices, uncrossed quote)."""
    if isinstance(event, Quote):
        if not _finite(event.bid, event.ask, event.mark_price, event.index_price):
            return False
        return event.bid is None or event.ask is None or event.bid <= event.ask
    if isinstance(event, Trade):
        return _finite(event.price) and math.isfinite(event.amount) and event.amount > 0
    if isinstance(event, IndexPrice):
        return _finite(event.price)
    return False


class MarketRecorder:
    """Batches market data into a :class:`app.ports.MarketDataSink`; never raises into the connector."""

    def __init__(self, sink: MarketDataSink, *, batch: int = 256, min_quote_interval_ms: int = 0) -> None:
        self.sink = sink
        self.batch = batch
        self.min_quote_interval_ms = min_quote_interval_ms
        self.stats = RecorderStats()
        self._buffer: list[Quote | Trade | IndexPrice] = []
        self._last_quote_ts: dict[tuple[str, str], int] = {}
        self._unsubscribe: Callable[[], None] | None = None

    def record(self, event: Event) -> None:
        """Take one event (non market-data events are ignored)."""
        if not isinstance(event, (Quote, Trade, IndexPrice)):
            return
        if not usable(event):
            self.stats.dropped += 1
            return
        if isinstance(event, Quote) and self.min_quote_interval_ms > 0:
            key = (event.venue, event.instrument)
            last = self._last_quote_ts.get(key)
            if last is not None and event.ts - last < self.min_quote_interval_ms:
                self.stats.thinned += 1
                return
            self._last_quote_ts[key] = event.ts
        self._buffer.append(event)
        if len(self._buffer) >= self.batch:
            self.flush()

    def flush(self) -> int:
        """Hand the buffered events to the sink; returns how many it accepted."""
        if not self._buffer:
            return 0
        items, self._buffer = self._buffer, []
        try:
            n = int(self.sink.record_market(items))
        except Exception as exc:  # the store failing must not stop market data
            self.stats.failed += len(items)
            log.error("recording %d events failed: %s", len(items), exc)
            return 0
        self.stats.recorded += n
        return n

    def attach(self, bus: Bus) -> None:
        """Record every quote, trade and index price published on ``bus``."""
        self.detach()
        self._unsubscribe = bus.on(TOPICS, self.record)

    def detach(self) -> None:
        """Stop recording from the bus (buffered events stay until :meth:`flush`)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def close(self) -> None:
        """Detach and flush."""
        self.detach()
        self.flush()


# --------------------------------------------------------------------------------------------------
# Reading a recorded session back (for connectors.replay)
# --------------------------------------------------------------------------------------------------


class MarketDataSource(Protocol):
    """Recorded market data in time order (``storage.store.SqlStore.market_data`` has this shape)."""

    def market_data(
        self,
        since_ms: int,
        until_ms: int,
        *,
        instruments: Sequence[str] | None = None,
        indexes: Sequence[str] | None = None,
        kinds: Sequence[str] = ("index", "quote", "trade"),
    ) -> list[Any]: ...


def recorded_index_path(
    store: MarketDataSource, index: str, since_ms: int, until_ms: int, *, source: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(ts_ms, price_usd)`` of a recorded index, oldest first, one point per ms (the last wins), stale ones out.

    ``source`` picks one recorded source (a venue name, ``chainlink:0x…``); None takes every fresh index print.
    Falls back to the ``index_price`` carried by recorded quotes when no index prints were recorded. The
    arrays are what ``connectors.replay.PricePath(ts, close, ...)`` takes to replay a live session.
    """
    points: dict[int, float] = {}
    for ev in store.market_data(since_ms, until_ms, indexes=[index], kinds=("index",)):
        if isinstance(ev, IndexPrice) and not ev.stale and (source is None or ev.source == source):
            points[ev.ts] = ev.price
    if not points:
        base = index.split("_")[0].upper()
        for ev in store.market_data(since_ms, until_ms, kinds=("quote",)):
            if isinstance(ev, Quote) and ev.index_price and ev.instrument.split("-")[0].split("_")[0] == base:
                if source is None or ev.venue == source:
                    points[ev.ts] = ev.index_price
    if len(points) < 2:
        raise ConfigError(
            f"fewer than two recorded prices of {index} between {since_ms} and {until_ms}", key="replay.recorded"
        )
    ts = np.array(sorted(points), dtype=np.int64)
    return ts, np.array([points[t] for t in ts.tolist()], dtype=float)
