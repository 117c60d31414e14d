"""Market data through ccxt: REST snapshots (tickers with venue IVs and greeks, chains, books, index) and
ccxt.pro websocket streams with reconnect, backoff and book resync.

ccxt.pro applies Deribit's book deltas onto whatever book it holds and does not reset it on a new snapshot,
so after a dropped connection the cached book is discarded and rebuilt from a REST snapshot before the
stream resumes (counted in ``stats.resyncs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import ccxt

from app.domain import Alert, BookUpdate, Event, IndexPrice, Quote
from app.errors import ConnectorError, InvalidInput
from connectors.base import CHANNELS, Backoff, ConnectorStats, run_with_reconnect
from connectors.ccxt_venue.instruments import Catalog
from connectors.ccxt_venue.parsing import (
    book_from_ccxt,
    desk_error,
    is_transient,
    public_trade,
    quote_from_chain_row,
    quote_from_ticker,
)

log = logging.getLogger(__name__)

BOOK_LEVELS = 50


def guard_book_sequence(ex: Any, stats: ConnectorStats) -> None:
    """Check Deribit's ``prev_change_id`` chain under ccxt.pro, which does not.

    A ``snapshot`` replaces the cached book (ccxt would merge it into stale levels); a ``change`` whose
    ``prev_change_id`` is not the last ``change_id`` seen is a gap: it is counted and the socket is closed, so
    the reconnect loop resubscribes and the venue sends a fresh snapshot.
    """
    original = ex.handle_order_book
    last: dict[str, int] = {}

    def checked(client: Any, message: dict[str, Any]) -> Any:
        data = (message.get("params") or {}).get("data") or {}
        name = str(data.get("instrument_name") or "")
        change_id = data.get("change_id")
        if data.get("type") == "snapshot":
            sym = ex.safe_symbol(name)
            ex.orderbooks.pop(sym, None)
        else:
            prev = data.get("prev_change_id")
            if prev is not None and name in last and prev != last[name]:
                stats.gaps += 1
                log.warning("book %s: gap (prev_change_id %s, expected %s); resubscribing", name, prev, last[name])
                last.clear()
                # fail the socket like a network loss: waiting watchers get NetworkError and reconnect
                client.on_error(ccxt.NetworkError(f"book {name}: sequence gap at change {change_id}"))
                return None
        if change_id is not None:
            last[name] = int(change_id)
        return original(client, message)

    ex.handle_order_book = checked


class MarketData:
    """REST and streaming market data of one venue, translated to Quote / BookUpdate / Trade events."""

    def __init__(
        self,
        ex: Any,
        catalog: Catalog,
        *,
        publish: Callable[[Event], None],
        stats: ConnectorStats,
        now_ms: Callable[[], int],
        backoff: Callable[[], Backoff],
    ) -> None:
        self.ex = ex
        self.catalog = catalog
        self.table = catalog.table
        self.publish = publish
        self.stats = stats
        self.now_ms = now_ms
        self._backoff = backoff
        self._tasks: list[asyncio.Task[None]] = []
        if self.table.book_sequence:
            guard_book_sequence(ex, stats)

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            self.stats.errors += 1
            raise desk_error(exc) from exc

    # -- REST ---------------------------------------------------------------------------------------
    async def quote(self, name: str) -> Quote:
        """The venue's ticker of ``name`` with IVs (fractions) and greeks."""
        inst = self.catalog.get(name)
        sym = self.catalog.symbol(name)
        ticker = await self._call(self.ex.fetch_ticker, sym)
        extra: dict[str, Any] = {}
        if inst.is_option and not self.table.ivs_in_ticker:
            greeks = await self._call(self.ex.fetch_greeks, sym)
            extra.update(greeks.get("info") or {})
        if not self.table.oi_in_ticker:  # OKX tickers have no open interest: its own endpoint, raw row kept
            try:
                interest = await self._call(self.ex.fetch_open_interest, sym)
            except Exception as exc:  # the quote stands without it (open interest 0), as chain() would show
                log.debug("open interest of %s: %s", name, exc)
            else:
                extra.update({k: v for k, v in (interest.get("info") or {}).items() if k in ("oi", "oiCcy")})
        return quote_from_ticker(ticker, name, self.table, self.now_ms(), extra, self.catalog.size(name))

    async def chain(self, base: str) -> list[Quote]:
        """Every listed option of ``base`` in one call (``fetch_option_chain``), IVs read from the raw rows."""
        rows = await self._call(self.ex.fetch_option_chain, base)
        ivs: dict[str, dict[str, Any]] = {}
        if self.table.chain_ivs is not None:
            ivs = await self._call(self.table.chain_ivs, self.ex, base)
        out = []
        for sym, row in rows.items():
            name = self.catalog.name(sym)
            if name is None:
                continue
            extra = ivs.get(str((row.get("info") or {}).get("instId") or ""))
            if extra:
                row = {**row, "info": {**(row.get("info") or {}), **extra}}
            out.append(quote_from_chain_row(row, name, self.table, self.now_ms(), self.catalog.size(name)))
        return sorted(out, key=lambda q: q.instrument)

    async def book(self, name: str, depth: int = 20) -> BookUpdate:
        """A depth snapshot of ``name`` in desk amounts."""
        inst = self.catalog.get(name)
        ob = await self._call(self.ex.fetch_order_book, self.catalog.symbol(name), depth)
        return book_from_ccxt(ob, name, self.table, self.catalog.size(inst.name), self.now_ms())

    async def index_price(self, index: str) -> float:
        """The venue's index of ``index`` (``btc_usd``) from the ticker of a perpetual (or any instrument) on it."""
        base = index.split("_")[0].upper()
        cands = sorted(
            (i for i in self.catalog.by_name.values() if i.base == base),
            key=lambda i: (i.kind.value != "perpetual", i.is_option, i.name),
        )
        if not cands:
            raise ConnectorError(f"{self.table.exchange} lists nothing on {index}", code="connector.no_index")
        ticker = await self._call(self.ex.fetch_ticker, self.catalog.symbol(cands[0].name))
        price = ticker.get("indexPrice")
        if price is None:
            raise ConnectorError(f"{self.table.exchange} ticker carries no index price", code="connector.no_index")
        return float(price)

    # -- streams ------------------------------------------------------------------------------------
    def start(self, names: Sequence[str], channels: Sequence[str], *, index_interval_s: float = 1.0) -> None:
        """Stream ``channels`` (ticker, book, trades of instruments; index of index names such as ``btc_usd``)
        onto the bus until :meth:`stop`. Unknown channels are refused."""
        unknown = set(channels) - set(CHANNELS)
        if unknown:
            raise InvalidInput(
                f"unknown channels {sorted(unknown)} (expected some of {CHANNELS})", code="input.channel"
            )
        indices = [n for n in names if n.islower() and "_" in n]
        if "index" in channels and indices:
            self._spawn("index", self._index_once(indices, index_interval_s), None)
        names = self.catalog.names([n for n in names if n not in indices])
        symbols = [self.catalog.symbol(n) for n in names]
        if not symbols:
            return
        if "ticker" in channels:
            self._spawn("ticker", self._ticker_once(symbols), None)
        if "book" in channels:
            self._spawn("book", self._book_once(symbols), lambda: self._resync_books(symbols))
        if "trades" in channels:
            self._spawn("trades", self._trades_once(symbols), None)

    def spawn(
        self, label: str, once: Callable[[], Awaitable[None]], resync: Callable[[], Awaitable[None]] | None
    ) -> None:
        """Run ``once`` in a loop under the reconnect policy (used by private streams too)."""
        self._spawn(label, once, resync)

    def _spawn(
        self, label: str, once: Callable[[], Awaitable[None]], resync: Callable[[], Awaitable[None]] | None
    ) -> None:
        seen = [self.stats.messages]

        async def forever() -> None:
            while True:
                await once()

        def healthy() -> bool:
            ok = self.stats.messages > seen[0]
            seen[0] = self.stats.messages
            return ok

        async def run() -> None:
            try:
                await run_with_reconnect(
                    forever,
                    backoff=self._backoff(),
                    stats=self.stats,
                    is_transient=is_transient,
                    on_reconnect=resync,
                    healthy_after=healthy,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = desk_error(exc)
                self.stats.errors += 1
                self.stats.last_error = str(err)
                log.error("%s stream stopped: %s", label, err)
                self.publish(
                    Alert(self.now_ms(), f"{self.table.exchange}.{label}", f"stream stopped: {err}", "error", err.code)
                )

        self._tasks.append(asyncio.create_task(run(), name=f"{self.table.exchange}-{label}"))

    # ccxt.pro resolves one waiting future per message; messages that arrive while nobody waits only update
    # its caches. So after each wake-up everything that changed in the caches is published, not just the
    # value returned (a burst of updates for several symbols is never lost).
    def _ticker_once(self, symbols: list[str]) -> Callable[[], Awaitable[None]]:
        last: dict[str, Any] = {}

        async def once() -> None:
            await self.ex.watch_tickers(symbols)
            for sym in symbols:
                t = self.ex.tickers.get(sym)
                if t is None or t is last.get(sym):
                    continue
                last[sym] = t
                self.stats.messages += 1
                name = self.catalog.name_of[sym]
                self.publish(quote_from_ticker(t, name, self.table, self.now_ms(), size=self.catalog.size(name)))

        return once

    def _book_once(self, symbols: list[str]) -> Callable[[], Awaitable[None]]:
        last: dict[str, Any] = {}

        async def once() -> None:
            await self.ex.watch_order_book_for_symbols(symbols)
            for sym in symbols:
                ob = self.ex.orderbooks.get(sym)
                if ob is None:
                    continue
                bids = [tuple(lv[:2]) for lv in ob["bids"][:BOOK_LEVELS]]
                asks = [tuple(lv[:2]) for lv in ob["asks"][:BOOK_LEVELS]]
                key = (tuple(bids), tuple(asks))
                if key == last.get(sym):
                    continue
                last[sym] = key
                self.stats.messages += 1
                name = self.catalog.name_of[sym]
                top = {"bids": bids, "asks": asks, "timestamp": ob.get("timestamp")}
                update = book_from_ccxt(top, name, self.table, self.catalog.size(name), self.now_ms())
                if update.bids and update.asks and update.bids[0][0] >= update.asks[0][0]:
                    self.stats.dropped += 1  # a crossed book is never passed on
                    continue
                self.publish(update)

        return once

    def _trades_once(self, symbols: list[str]) -> Callable[[], Awaitable[None]]:
        seen: dict[str, None] = {}

        async def once() -> None:
            await self.ex.watch_trades_for_symbols(symbols)
            for sym in symbols:
                for t in list(self.ex.trades.get(sym) or []):
                    key = f"{sym}|{t.get('id')}|{t.get('timestamp')}"
                    if key in seen:
                        continue
                    seen[key] = None
                    self.stats.messages += 1
                    name = self.catalog.name_of[sym]
                    self.publish(public_trade(t, name, self.table, self.catalog.size(name), self.now_ms()))
            while len(seen) > 50_000:
                seen.pop(next(iter(seen)))

        return once

    def _index_once(self, indices: list[str], interval_s: float) -> Callable[[], Awaitable[None]]:
        # No venue streams its index through ccxt.pro's unified API: poll the tickers that carry it.
        async def once() -> None:
            for index in indices:
                try:
                    price = await self.index_price(index)
                except ConnectorError as exc:
                    if exc.code == "connector.network":
                        raise ccxt.NetworkError(str(exc)) from exc
                    raise
                self.stats.messages += 1
                self.publish(IndexPrice(self.now_ms(), index, price, source=self.table.exchange))
            await asyncio.sleep(interval_s)

        return once

    async def _resync_books(self, symbols: list[str]) -> None:
        for sym in symbols:
            self.ex.orderbooks.pop(sym, None) if hasattr(self.ex, "orderbooks") else None
            name = self.catalog.name(sym)
            if name is None:
                continue
            try:
                snap = await self.book(name, 50)
            except Exception as exc:  # the stream's own snapshot will follow; count and carry on
                log.warning("book resync of %s failed: %s", name, exc)
                continue
            self.publish(snap)

    async def stop(self) -> None:
        """Stop every stream."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    @property
    def running(self) -> int:
        """Streams still running."""
        return sum(1 for t in self._tasks if not t.done())
