"""The order book of one instrument: price levels with FIFO queues, in integer ticks and lots.

Layout (chosen for speed in CPython, see ``shared/reference/matching.md``):

* ``bids`` / ``asks``: dict ``price_ticks -> level``; a level is the list ``[lots, count, queue, dead]``
  (total resting lots, number of live orders, ``collections.deque`` of order records in time priority,
  number of dead entries still in that queue).
* ``bid_heap`` / ``ask_heap``: heaps of level prices (bids negated) with *lazy deletion*: a price stays in
  the heap after its level is emptied and is dropped when it reaches the top. Best price is O(1)
  amortised; a new level costs one ``heappush``.
* An order record is a plain list (see the ``O_*`` indices). Cancelling one is O(1) whatever the queue
  length: it is marked dead (``O_REM = 0``) where it stands and skipped when it reaches the head; a
  queue whose dead entries outnumber its live ones (plus a slack of 8) is compacted, so memory stays
  proportional to live orders. The level counts its dead entries, so a cancel decides this without
  touching the queue.

The book knows nothing of accounts, fees or events: :mod:`app.engine.matching` drives it and reads its
fields directly on the hot path.

    book = OrderBook()
    book.add(new_order(1, "alice", 1, 1000, 5))
    book.best_bid()        # 1000
    book.depth(5)          # ([(1000, 5, 1)], [])
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from heapq import heappop, heappush
from typing import Any

# Order record fields (a list, mutated in place by the engine).
O_ID = 0  # int order id, global over the engine
O_ACCT = 1  # account (str)
O_SIDE = 2  # +1 buy, -1 sell
O_PRICE = 3  # limit price in ticks
O_REM = 4  # remaining lots; 0 marks a dead entry left in a queue
O_FLAGS = 5  # events.F_* bits
O_FILLED = 6  # lots filled so far
O_CID = 7  # client order id or None
O_TS = 8  # epoch ms when it (last) joined the queue
O_MKT = 9  # the engine's market record of its instrument
O_LEVEL = 10  # the level list it joined (valid while it is live: a level outlives its live orders)

# Level fields.
L_LOTS = 0
L_COUNT = 1
L_QUEUE = 2
L_DEAD = 3  # dead entries in the queue (cancelled where they stood, not yet popped)
DEAD_SLACK = 8
"""A queue is compacted once its dead entries exceed its live ones by more than this."""

Order = list[Any]
"""An order record: ``[id, account, side, price_ticks, remaining, flags, filled, client_id, ts, market, level]``."""


def new_order(
    order_id: int,
    account: str,
    side: int,
    price_ticks: int,
    lots: int,
    flags: int = 0,
    client_order_id: str | None = None,
    ts: int = 0,
    market: Any = None,
) -> Order:
    """A fresh order record (lots unfilled)."""
    return [order_id, account, side, price_ticks, lots, flags, 0, client_order_id, ts, market, None]


class OrderBook:
    """Bids and asks of one instrument with price-time priority; prices in ticks, sizes in lots."""

    __slots__ = ("bids", "asks", "bid_heap", "ask_heap")

    def __init__(self) -> None:
        self.bids: dict[int, list[Any]] = {}
        self.asks: dict[int, list[Any]] = {}
        self.bid_heap: list[int] = []  # negated prices
        self.ask_heap: list[int] = []

    # -- best prices ----------------------------------------------------------------------------
    def best_bid(self) -> int | None:
        """Highest bid price in ticks, or None."""
        heap, levels = self.bid_heap, self.bids
        while heap:
            price = -heap[0]
            if price in levels:
                return price
            heappop(heap)
        return None

    def best_ask(self) -> int | None:
        """Lowest ask price in ticks, or None."""
        heap, levels = self.ask_heap, self.asks
        while heap:
            price = heap[0]
            if price in levels:
                return price
            heappop(heap)
        return None

    # -- changes --------------------------------------------------------------------------------
    def add(self, order: Order) -> list[Any]:
        """Append a live order at the back of its price level; returns the level."""
        price = order[O_PRICE]
        if order[O_SIDE] > 0:
            levels = self.bids
            level = levels.get(price)
            if level is None:
                level = levels[price] = [0, 0, deque(), 0]
                heappush(self.bid_heap, -price)
        else:
            levels = self.asks
            level = levels.get(price)
            if level is None:
                level = levels[price] = [0, 0, deque(), 0]
                heappush(self.ask_heap, price)
        level[L_LOTS] += order[O_REM]
        level[L_COUNT] += 1
        level[L_QUEUE].append(order)
        order[O_LEVEL] = level
        return level

    def remove(self, order: Order) -> list[Any]:
        """Take a live order out of the book in O(1) (it becomes a dead queue entry); returns its level.

        The level is deleted when its last live order goes; its price leaves the heap lazily.
        """
        price = order[O_PRICE]
        levels = self.bids if order[O_SIDE] > 0 else self.asks
        level = levels[price]
        level[L_LOTS] -= order[O_REM]
        order[O_REM] = 0
        count = level[L_COUNT] - 1
        level[L_COUNT] = count
        if count == 0:
            del levels[price]
        else:
            dead = level[L_DEAD] + 1
            if dead > count + DEAD_SLACK:
                level[L_QUEUE] = deque(o for o in level[L_QUEUE] if o[O_REM])
                dead = 0
            level[L_DEAD] = dead
        return level

    def reduce(self, order: Order, lots: int) -> list[Any]:
        """Take ``lots`` (< remaining) off a live order in place; it keeps its queue position."""
        levels = self.bids if order[O_SIDE] > 0 else self.asks
        level = levels[order[O_PRICE]]
        level[L_LOTS] -= lots
        order[O_REM] -= lots
        return level

    def clear(self) -> list[Order]:
        """Remove every order; returns the live ones in (side, price, time) priority order."""
        live = list(self.iter_orders())
        self.bids.clear()
        self.asks.clear()
        self.bid_heap.clear()
        self.ask_heap.clear()
        return live

    # -- reading --------------------------------------------------------------------------------
    def level(self, side: int, price_ticks: int) -> tuple[int, int]:
        """(lots, count) resting at a price on a side (+1 bids, -1 asks); (0, 0) when empty."""
        level = (self.bids if side > 0 else self.asks).get(price_ticks)
        return (0, 0) if level is None else (level[L_LOTS], level[L_COUNT])

    def orders_at(self, side: int, price_ticks: int) -> list[Order]:
        """Live orders at one price in time priority."""
        level = (self.bids if side > 0 else self.asks).get(price_ticks)
        return [] if level is None else [o for o in level[L_QUEUE] if o[O_REM]]

    def prices(self, side: int) -> list[int]:
        """Level prices of a side, best first."""
        return sorted(self.bids, reverse=True) if side > 0 else sorted(self.asks)

    def depth(self, n: int = 10) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Top ``n`` levels per side as ``(price_ticks, lots, order_count)``, best first."""
        bids = [(p, self.bids[p][L_LOTS], self.bids[p][L_COUNT]) for p in sorted(self.bids, reverse=True)[:n]]
        asks = [(p, self.asks[p][L_LOTS], self.asks[p][L_COUNT]) for p in sorted(self.asks)[:n]]
        return bids, asks

    def iter_orders(self) -> Iterator[Order]:
        """Every live order: bids best first, then asks best first, each level in time priority."""
        for side in (1, -1):
            levels = self.bids if side > 0 else self.asks
            for price in self.prices(side):
                yield from (o for o in levels[price][L_QUEUE] if o[O_REM])

    def __len__(self) -> int:
        return sum(level[L_COUNT] for level in self.bids.values()) + sum(level[L_COUNT] for level in self.asks.values())

    def resting_lots(self) -> int:
        """Total lots resting on both sides."""
        return sum(level[L_LOTS] for level in self.bids.values()) + sum(level[L_LOTS] for level in self.asks.values())

    def check(self) -> None:
        """Assert the book's invariants (tests): uncrossed, level totals and counts match live orders."""
        for side, levels in ((1, self.bids), (-1, self.asks)):
            for price, level in levels.items():
                live = [o for o in level[L_QUEUE] if o[O_REM]]
                if not live:
                    raise AssertionError(f"empty level {price} on side {side}")
                if level[L_COUNT] != len(live) or level[L_LOTS] != sum(o[O_REM] for o in live):
                    raise AssertionError(f"level {price} totals {level[:2]} disagree with its orders")
                if level[L_DEAD] != len(level[L_QUEUE]) - len(live) or level[L_DEAD] > len(live) + DEAD_SLACK:
                    raise AssertionError(f"level {price} counts {level[L_DEAD]} dead entries, its queue disagrees")
                if any(o[O_PRICE] != price or o[O_SIDE] != side or o[O_REM] < 0 for o in live):
                    raise AssertionError(f"misplaced order at level {price}")
        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            raise AssertionError(f"crossed book at rest: bid {bid} >= ask {ask}")
        if bid is not None and bid != max(self.bids):
            raise AssertionError("bid heap lost the best bid")
        if ask is not None and ask != min(self.asks):
            raise AssertionError("ask heap lost the best ask")
