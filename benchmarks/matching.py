"""Matching engine throughput: our engine (journal off/on, no-op pre-trade check) side by side with peers.

The workload is the one of ``shared/reference/matching.md`` §2, generated deterministically (seed
20240601) while a reference book runs, so every cancel names an order that is really resting:

* passive limit (GTC): buy at best ask - d, sell at best bid + d, d = 1 + Geometric(0.2) ticks;
  size 1 + int(lognormal(2.5, 1.0)) lots;
* crossing limit (GTC): k = Geometric(0.5) - 1 ticks through the opposite best, rest rests;
  size 1 + int(lognormal(3.2, 1.0));
* market: same size law; cancel: a uniformly random resting order; sides 50/50;
* ``single``: 30% cancel / 60% passive / 5% market / 5% crossing (the book grows: deep queues);
  ``steady``: cancel weight 0.30 x N/5000 (N resting orders): a stationary ~7k-order book;
  ``multi50``: the fixed mix over 50 instruments chosen by Zipf(s=1).

Each workload is generated once per invocation into a file that every run loads (as matching.md's
harness does), so every implementation replays the same op list; trade counts and volumes are compared
with the generator's totals (``agree`` column). ``python -m benchmarks matching [--ops N] [--full]
[--repeats R] [--gc on|freeze|off] [--json FILE]`` (default 200,000 ops per workload, ``--full``:
1,000,000 as in matching.md). Repeats go round the implementations (so a change in machine load hits all
of them alike) and the best run by CPU time is kept; each row also gives its ratio to ``ref_heap`` in
the same invocation (``x_ref_heap`` on wall time, ``x_ref_heap_cpu`` on CPU time in the JSON) and, with
repeats, the median over rounds of the ratio within a round (``x_ref_heap_cpu_median``: the figure least
moved by a machine whose speed drifts from one run to the next).

Peers: ``ref_heap`` (matching.md's plain-Python reference: dict levels + deque + heapq + dict index),
``ref_sortedlist`` (the same with a ``sortedcontainers.SortedList`` of prices), ``orderly_chaos_raw``
(``orderly-chaos``, C++ via ctypes, its C ABI called directly: reports filled lots, not trades, so it
agrees on volume only) and ``orderly_chaos_cb`` (its public API with a per-trade callback). Peers that need a newer
interpreter (``matching-engine`` >= 3.12, ``limit-order-book`` >= 3.13) run under ``--peer-python PATH``
(or ``$DESK_BENCH_PEER_PYTHON``), a venv kept out of the project's, e.g.::

    python3.13 -m venv /tmp/peer313 && /tmp/peer313/bin/pip install matching-engine limit-order-book
    python -m benchmarks matching --peer-python /tmp/peer313/bin/python --json out.jsonl

and are skipped with the reason printed otherwise; this file runs there as a plain script (stdlib only).
``orderly_chaos_raw_peer`` runs ``orderly_chaos_raw`` there too (with ``orderly-chaos`` installed in
that venv): matching.md measured every peer under 3.13, where a ctypes call costs ~1.7x what it costs under
the project's 3.11 (``labs``: 312 against 181 ns here), so its 0.61M for ``orderly-chaos`` is not the figure
the same library reaches beside our engine under 3.11.
``deltadesk*`` rows: the engine's integer API with events, fees and positions on; ``_journal`` buffered
journal (one checksummed frame per 64 KiB), ``_journal_flush`` one frame per command handed to the OS,
``_check`` a no-op pre-trade check. Each row runs in a fresh interpreter; ``ops_per_cpu_s`` (process
time) is the steadier figure on a shared machine. ``--gc on`` (default) leaves the cyclic collector as
a process normally has it; ``freeze`` moves everything alive before the timed loop (interpreter,
imports, the op list) out of the collector's reach, which the engine does not do by itself.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import pickle
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from pathlib import Path
from typing import Any

SEED = 20240601
ANCHOR = 1_000_000
ACCOUNTS = 16

AS_PEER = "DESK_BENCH_AS_PEER"
"""Set in the environment of a run under ``--peer-python``."""

# Op kinds in a workload.
LIMIT, MARKET, CANCEL = 0, 1, 2

Ops = list[tuple[int, int, int, int, int, int]]
"""(kind, side +1/-1, price_ticks, lots, order id (new: its id; cancel: the target), instrument index)."""


# ==================================================================================== reference book
class RefHeap:
    """matching.md's plain-Python reference: dict of levels + deque FIFO + heapq best + dict index."""

    def __init__(self) -> None:
        self.bids: dict[int, deque[list[int]]] = {}
        self.asks: dict[int, deque[list[int]]] = {}
        self.bh: list[int] = []
        self.ah: list[int] = []
        self.index: dict[int, list[int]] = {}
        self.trades = 0
        self.volume = 0
        self.done: list[int] | None = None  # ids of resting orders filled completely (generation only)

    def best_bid(self) -> int | None:
        bh, bids = self.bh, self.bids
        while bh:
            p = -bh[0]
            q = bids.get(p)
            if q:
                return p
            heappop(bh)
            if q is not None:
                del bids[p]
        return None

    def best_ask(self) -> int | None:
        ah, asks = self.ah, self.asks
        while ah:
            p = ah[0]
            q = asks.get(p)
            if q:
                return p
            heappop(ah)
            if q is not None:
                del asks[p]
        return None

    def limit(self, oid: int, side: int, price: int, qty: int) -> None:
        qty = self._take(side, price, qty)
        if qty:
            order = [oid, side, price, qty]
            self.index[oid] = order
            levels, heap, key = (self.bids, self.bh, -price) if side > 0 else (self.asks, self.ah, price)
            q = levels.get(price)
            if q is None:
                q = levels[price] = deque()
                heappush(heap, key)
            q.append(order)

    def market(self, oid: int, side: int, qty: int) -> None:
        self._take(side, ANCHOR * 1000 if side > 0 else 0, qty)

    def cancel(self, oid: int) -> None:
        order = self.index.pop(oid)
        order[3] = 0  # lazily removed when it reaches the head

    def _take(self, side: int, limit: int, qty: int) -> int:
        if side > 0:
            levels, best, cross = self.asks, self.best_ask, lambda p: p <= limit
        else:
            levels, best, cross = self.bids, self.best_bid, lambda p: p >= limit
        while qty:
            p = best()
            if p is None or not cross(p):
                break
            q = levels[p]
            while q and qty:
                o = q[0]
                if not o[3]:
                    q.popleft()
                    continue
                take = min(o[3], qty)
                o[3] -= take
                qty -= take
                self.trades += 1
                self.volume += take
                if not o[3]:
                    q.popleft()
                    del self.index[o[0]]
                    if self.done is not None:
                        self.done.append(o[0])
            while q and not q[0][3]:
                q.popleft()
        return qty

    def resting(self) -> tuple[int, int]:
        live = [o for o in self.index.values() if o[3]]
        return len(live), sum(o[3] for o in live)


# ==================================================================================== workload
def _geom(rng: random.Random, p: float) -> int:
    """Geometric number of trials to the first success (1, 2, ...)."""
    return 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - p))


def generate(workload: str, n_ops: int, seed: int = SEED) -> dict[str, Any]:
    """The op list of a workload plus the totals a correct engine must reproduce."""
    rng = random.Random(f"{seed}-{workload}")
    n_books = 50 if workload == "multi50" else 1
    books = [RefHeap() for _ in range(n_books)]
    for bk in books:
        bk.done = []
    live: list[list[int]] = [[] for _ in range(n_books)]  # resting ids, for O(1) random choice
    where: list[dict[int, int]] = [{} for _ in range(n_books)]
    # Zipf(s=1) weights over 50 instruments.
    zipf = [1.0 / (k + 1) for k in range(n_books)]
    cum = []
    acc = 0.0
    for w in zipf:
        acc += w
        cum.append(acc)
    ops: Ops = []
    next_id = 1
    total_live = 0

    def drop(b: int, oid: int) -> None:
        pos = where[b].pop(oid)
        last = live[b].pop()
        if last != oid:
            live[b][pos] = last
            where[b][last] = pos

    for _ in range(n_ops):
        if n_books == 1:
            b = 0
        else:
            u = rng.random() * acc
            lo, hi = 0, n_books - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if cum[mid] < u:
                    lo = mid + 1
                else:
                    hi = mid
            b = lo
        book = books[b]
        if workload == "steady":
            w_cancel = 0.30 * total_live / 5000
            r = rng.random() * (w_cancel + 0.70)
            kind = (
                "cancel"
                if r < w_cancel
                else "passive"
                if r < w_cancel + 0.60
                else "market"
                if r < w_cancel + 0.65
                else "cross"
            )
        else:
            r = rng.random()
            kind = "cancel" if r < 0.30 else "passive" if r < 0.90 else "market" if r < 0.95 else "cross"
        side = 1 if rng.random() < 0.5 else -1
        bid, ask = book.best_bid(), book.best_ask()
        opposite = ask if side > 0 else bid
        if kind == "cancel" and not live[b]:
            kind = "passive"
        if kind in ("market", "cross") and opposite is None:
            kind = "passive"
        if kind == "cancel":
            oid = live[b][rng.randrange(len(live[b]))]
            ops.append((CANCEL, 0, 0, 0, oid, b))
            book.cancel(oid)
            drop(b, oid)
            total_live -= 1
            continue
        oid = next_id
        next_id += 1
        if kind == "passive":
            qty = 1 + int(rng.lognormvariate(2.5, 1.0))
            d = 1 + _geom(rng, 0.2)
            ref = opposite if opposite is not None else (bid if side < 0 else ask)
            if ref is None:  # empty book: quote around the anchor
                ref = ANCHOR + (1 if side > 0 else -1)
            price = ref - d if side > 0 else ref + d
            ops.append((LIMIT, side, price, qty, oid, b))
        elif kind == "cross":
            qty = 1 + int(rng.lognormvariate(3.2, 1.0))
            k = _geom(rng, 0.5) - 1
            assert opposite is not None
            price = opposite + k if side > 0 else opposite - k
            ops.append((LIMIT, side, price, qty, oid, b))
        else:
            qty = 1 + int(rng.lognormvariate(3.2, 1.0))
            ops.append((MARKET, side, 0, qty, oid, b))
        done = book.done
        assert done is not None
        if kind == "market":
            book.market(oid, side, qty)
        else:
            book.limit(oid, side, ops[-1][2], qty)
        # Resting orders that traded away leave the live list; a resting new order joins it.
        for gone in done:
            drop(b, gone)
            total_live -= 1
        done.clear()
        if oid in book.index:
            where[b][oid] = len(live[b])
            live[b].append(oid)
            total_live += 1
    resting = [bk.resting() for bk in books]
    return {
        "workload": workload,
        "ops": ops,
        "books": n_books,
        "trades": sum(bk.trades for bk in books),
        "volume": sum(bk.volume for bk in books),
        "resting_orders": sum(r[0] for r in resting),
        "resting_lots": sum(r[1] for r in resting),
    }


# ==================================================================================== implementations
def _rss_mb() -> float:
    """Peak resident memory of this process (MB): Linux's VmHWM (resettable), else ru_maxrss."""
    return _proc_status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _proc_status_mb(key: str) -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _reset_peak_rss() -> float:
    """Start the peak over from the memory in use now (MB), so loading the workload is not counted."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # Linux: reset VmHWM to the current RSS
    except OSError:
        pass
    return _proc_status_mb("VmRSS") or _rss_mb()


def run_ref_heap(wl: dict[str, Any]) -> dict[str, Any]:
    """The plain-Python reference book."""
    books = [RefHeap() for _ in range(wl["books"])]
    ops = wl["ops"]
    t0, c0 = time.perf_counter(), time.process_time()
    for kind, side, price, qty, oid, b in ops:
        if kind == LIMIT:
            books[b].limit(oid, side, price, qty)
        elif kind == MARKET:
            books[b].market(oid, side, qty)
        else:
            books[b].cancel(oid)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": dt,
        "cpu_seconds": cpu,
        "trades": sum(x.trades for x in books),
        "volume": sum(x.volume for x in books),
    }


def run_ref_sortedlist(wl: dict[str, Any]) -> dict[str, Any] | str:
    """The reference with a sortedcontainers.SortedList of level prices instead of heaps."""
    try:
        from sortedcontainers import SortedList
    except ImportError:
        return "sortedcontainers is not installed (pip install .[bench])"

    class Book:
        def __init__(self) -> None:
            self.levels = ({}, {})  # bids, asks: price -> deque
            self.prices = (SortedList(), SortedList())
            self.index: dict[int, list[int]] = {}
            self.trades = 0
            self.volume = 0

        def take(self, side: int, limit: int, qty: int) -> int:
            s = 1 if side > 0 else 0  # the asks for a buy
            levels, prices = self.levels[s], self.prices[s]
            while qty and prices:
                p = prices[0] if side > 0 else prices[-1]
                if (side > 0 and p > limit) or (side < 0 and p < limit):
                    break
                q = levels[p]
                while q and qty:
                    o = q[0]
                    if not o[3]:
                        q.popleft()
                        continue
                    take = min(o[3], qty)
                    o[3] -= take
                    qty -= take
                    self.trades += 1
                    self.volume += take
                    if not o[3]:
                        q.popleft()
                        del self.index[o[0]]
                while q and not q[0][3]:
                    q.popleft()
                if not q:
                    del levels[p]
                    prices.remove(p)
            return qty

        def limit(self, oid: int, side: int, price: int, qty: int) -> None:
            qty = self.take(side, price, qty)
            if qty:
                s = 0 if side > 0 else 1
                order = [oid, side, price, qty]
                self.index[oid] = order
                q = self.levels[s].get(price)
                if q is None:
                    q = self.levels[s][price] = deque()
                    self.prices[s].add(price)
                q.append(order)

        def cancel(self, oid: int) -> None:
            order = self.index.pop(oid)
            order[3] = 0
            s = 0 if order[1] > 0 else 1
            q = self.levels[s][order[2]]
            if not any(o[3] for o in (q[0], q[-1])) and not any(o[3] for o in q):
                del self.levels[s][order[2]]
                self.prices[s].remove(order[2])

    books = [Book() for _ in range(wl["books"])]
    t0, c0 = time.perf_counter(), time.process_time()
    for kind, side, price, qty, oid, b in wl["ops"]:
        if kind == LIMIT:
            books[b].limit(oid, side, price, qty)
        elif kind == MARKET:
            books[b].take(side, ANCHOR * 1000 if side > 0 else 0, qty)
        else:
            books[b].cancel(oid)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": dt,
        "cpu_seconds": cpu,
        "trades": sum(x.trades for x in books),
        "volume": sum(x.volume for x in books),
    }


def _engine(wl: dict[str, Any], journal_dir: str | None, sync: str, check: bool) -> tuple[Any, list[str]]:
    from app.clock import SimClock
    from app.domain import Instrument
    from app.engine.journal import Journal
    from app.engine.matching import MatchingEngine

    journal = Journal(journal_dir, sync=sync) if journal_dir else None  # type: ignore[arg-type]
    engine = MatchingEngine(SimClock(1_700_000_000_000), journal=journal)
    names = []
    for i in range(wl["books"]):
        # A linear perpetual (tick 0.01, lot 0.001): prices near 10,000 USDC, no band (no mark).
        inst = Instrument.parse("BTC_USDC-PERPETUAL" if i == 0 else f"X{i:02d}_USDC-PERPETUAL")
        engine.add_instrument(inst, band=None)
        names.append(inst.name)
    if check:
        engine.set_pre_trade_check(lambda req, ctx: None)
    return engine, names


def run_engine(wl: dict[str, Any], *, journal: str | None = None, check: bool = False) -> dict[str, Any]:
    """Our MatchingEngine through its integer API (``place``/``cancel``): events, fees, positions on.

    Trades and volume are read from the engine's counters afterwards, so the timed loop does what a
    caller that ignores the returned events does (the peers' loops likewise only call their engine)."""
    from app.engine.events import F_MARKET

    tmp = tempfile.mkdtemp(prefix="deltadesk-bench-") if journal else None
    try:
        engine, names = _engine(wl, tmp, journal or "buffered", check)
        accounts = [f"acct{i}" for i in range(ACCOUNTS)]
        place = engine.place
        cancel = engine.cancel
        ops = wl["ops"]
        t0, c0 = time.perf_counter(), time.process_time()
        for kind, side, price, qty, oid, b in ops:
            if kind == LIMIT:
                place(accounts[oid % ACCOUNTS], names[b], side, price, qty)
            elif kind == CANCEL:
                cancel(accounts[oid % ACCOUNTS], oid)
            else:
                place(accounts[oid % ACCOUNTS], names[b], side, 0, qty, F_MARKET)
        if engine.journal is not None:
            engine.journal.close()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        stats = engine.stats()
        return {
            "seconds": dt,
            "cpu_seconds": cpu,
            "trades": stats["trades"],
            "volume": stats["volume_lots"],
            "journal_bytes": _dir_bytes(tmp),
        }
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _dir_bytes(path: str | None) -> int:
    if not path:
        return 0
    return sum(p.stat().st_size for p in Path(path).iterdir())


def run_matching_engine_peer(wl: dict[str, Any]) -> dict[str, Any] | str:
    """``matching-engine`` (PyPI, pure Python, Python >= 3.12): one engine per market, STP off."""
    try:
        from matching_engine import (
            CancelOrder,
            NewOrder,
            OrderType,
            SelfTradePrevention,
            SequencedCommand,
            Side,
            TimeInForce,
        )
        from matching_engine.engine import MatchingEngine as PeerEngine
        from matching_engine.events import Trade
    except ImportError:
        return "matching-engine is not importable here (needs Python >= 3.12: use --peer-python)"
    engines = [PeerEngine() for _ in range(wl["books"])]
    buy, sell, market, none = Side.BUY, Side.SELL, OrderType.MARKET, SelfTradePrevention.NONE
    ioc = TimeInForce.IOC
    seqs = [0] * wl["books"]
    trades = volume = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for kind, side, price, qty, oid, b in wl["ops"]:
        seqs[b] += 1
        acct = oid % ACCOUNTS
        if kind == CANCEL:
            cmd: Any = CancelOrder(oid, acct)
        elif kind == LIMIT:
            cmd = NewOrder(oid, acct, buy if side > 0 else sell, price, qty, stp=none)
        else:
            cmd = NewOrder(oid, acct, buy if side > 0 else sell, 0, qty, order_type=market, tif=ioc, stp=none)
        for ev in engines[b].process(SequencedCommand(seqs[b], 0, cmd)):
            if type(ev) is Trade:
                trades += 1
                volume += ev.qty
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "trades": trades,
        "volume": volume,
    }


def run_limit_order_book_peer(wl: dict[str, Any]) -> dict[str, Any] | str:
    """``limit-order-book`` (C++ via Cython, Python >= 3.13): reports no fills; checked on resting lots."""
    try:
        from limit_order_book import LimitOrderBook
    except ImportError:
        return "limit-order-book is not importable here (needs Python >= 3.13: use --peer-python)"
    books = [LimitOrderBook() for _ in range(wl["books"])]
    t0, c0 = time.perf_counter(), time.process_time()
    for kind, side, price, qty, oid, b in wl["ops"]:
        if kind == LIMIT:
            books[b].limit(side > 0, oid, qty, price)
        elif kind == MARKET:
            books[b].market(side > 0, oid, qty)
        else:
            books[b].cancel(oid)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    resting = sum(bk.volume() for bk in books)
    # No fill reports: trades/volume are those of the generator when the resting lots agree.
    return {
        "seconds": dt,
        "cpu_seconds": cpu,
        "trades": wl["trades"] if resting == wl["resting_lots"] else -1,
        "volume": wl["volume"] if resting == wl["resting_lots"] else -1,
        "note": "no fill reports; agreement checked on resting lots",
    }


def run_orderly_chaos_raw(wl: dict[str, Any]) -> dict[str, Any] | str:
    """``orderly-chaos`` (C++ via ctypes), its C ABI called directly as matching.md did (its best peer with
    fill information, 0.61M there): each call reports the lots it filled, not the trades."""
    try:
        import ctypes

        from orderly_chaos import _library
    except ImportError:
        return "orderly-chaos is not installed (it is in the bench extra: pip install -e .[bench])"
    lib = _library.library()
    books = [lib.oc_book_new() for _ in range(wl["books"])]
    limit, market, cancel = lib.oc_book_limit, lib.oc_book_market, lib.oc_book_cancel
    filled = ctypes.c_uint32(0)
    out = ctypes.byref(filled)
    volume = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for kind, side, price, qty, oid, b in wl["ops"]:
        if kind == LIMIT:
            limit(books[b], side > 0, oid, qty, price, out)
            volume += filled.value
        elif kind == CANCEL:
            cancel(books[b], oid)
        else:
            market(books[b], side > 0, oid, qty, out)
            volume += filled.value
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    for book in books:
        lib.oc_book_free(book)
    return {"seconds": dt, "cpu_seconds": cpu, "trades": None, "volume": volume, "note": "filled lots only"}


def run_orderly_chaos_raw_peer(wl: dict[str, Any]) -> dict[str, Any] | str:
    """``orderly_chaos_raw`` under the peer interpreter (3.13), where matching.md measured its 0.61M: a ctypes
    call costs more there than under the project's 3.11 (instruction counts: 13.7k per op against 9.3k)."""
    if not os.environ.get(AS_PEER):
        return "runs only under --peer-python (with orderly-chaos installed there)"
    return run_orderly_chaos_raw(wl)


def run_orderly_chaos_cb(wl: dict[str, Any]) -> dict[str, Any] | str:
    """``orderly-chaos`` through its public Python API with its per-trade callback: every fill reported."""
    try:
        from orderly_chaos import LimitOrderBook, Side
    except ImportError:
        return "orderly-chaos is not installed (it is in the bench extra: pip install -e .[bench])"
    trades = volume = 0

    def on_trade(trade: Any) -> None:
        nonlocal trades, volume
        trades += 1
        volume += trade.quantity

    books = [LimitOrderBook(on_trade=on_trade) for _ in range(wl["books"])]
    buy, sell = Side.BUY, Side.SELL
    t0, c0 = time.perf_counter(), time.process_time()
    for kind, side, price, qty, oid, b in wl["ops"]:
        if kind == LIMIT:
            books[b].limit(buy if side > 0 else sell, oid, qty, price)
        elif kind == CANCEL:
            books[b].cancel(oid)
        else:
            books[b].market(buy if side > 0 else sell, oid, qty)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": dt, "cpu_seconds": cpu, "trades": trades, "volume": volume}


IMPLS: dict[str, Callable[[dict[str, Any]], dict[str, Any] | str]] = {
    "deltadesk": lambda wl: run_engine(wl),
    "deltadesk_journal": lambda wl: run_engine(wl, journal="buffered"),
    "deltadesk_journal_flush": lambda wl: run_engine(wl, journal="flush"),
    "deltadesk_check": lambda wl: run_engine(wl, check=True),
    "ref_heap": run_ref_heap,
    "ref_sortedlist": run_ref_sortedlist,
    "orderly_chaos_raw": run_orderly_chaos_raw,
    "orderly_chaos_cb": run_orderly_chaos_cb,
    "orderly_chaos_raw_peer": run_orderly_chaos_raw_peer,
    "matching_engine": run_matching_engine_peer,
    "limit_order_book": run_limit_order_book_peer,
}
PEERS = ("matching_engine", "limit_order_book", "orderly_chaos_raw_peer")
"""Implementations that run under ``--peer-python`` (an interpreter with those packages) when given."""


def _run_isolated(
    impl: str, workload: str, n_ops: int, gc_mode: str, peer_python: str | None, wl_file: str
) -> dict[str, Any]:
    """Run one (impl, workload) in a fresh interpreter so peak RSS is its own."""
    args = ["--_one", impl, workload, str(n_ops), gc_mode, wl_file]
    if impl in PEERS and peer_python:
        # The peer interpreter has no deltadesk: it runs this file as a plain script (stdlib only).
        cmd = [peer_python, str(Path(__file__).resolve()), *args]
        env = {**os.environ, AS_PEER: "1"}
    else:
        cmd = [sys.executable, "-m", "benchmarks.matching", *args]
        env = None
    root = Path(__file__).resolve().parent.parent
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=root, env=env)
    if res.returncode != 0:
        return {"impl": impl, "workload": workload, "error": res.stderr.strip().splitlines()[-1:] or ["failed"]}
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def _load_workload(workload: str, n_ops: int, wl_file: str | None) -> dict[str, Any]:
    """The workload from the file the parent wrote (every run replays the same ops), else generated here."""
    if wl_file:
        with open(wl_file, "rb") as fh:
            wl: dict[str, Any] = pickle.load(fh)  # written by main() of this run, not outside input
        if wl["workload"] == workload and len(wl["ops"]) == n_ops:
            return wl
    return generate(workload, n_ops)


def _one(impl: str, workload: str, n_ops: int, gc_mode: str, wl_file: str | None = None) -> dict[str, Any]:
    wl = _load_workload(workload, n_ops, wl_file)
    gc.collect()
    base = _reset_peak_rss()
    if gc_mode == "freeze":
        gc.freeze()
    elif gc_mode == "off":
        gc.disable()
    result = IMPLS[impl](wl)
    if isinstance(result, str):
        return {"impl": impl, "workload": workload, "skipped": result}
    return {
        "impl": impl,
        "workload": workload,
        "ops": n_ops,
        "ops_per_s": n_ops / result["seconds"],
        "seconds": result["seconds"],
        "ops_per_cpu_s": n_ops / result["cpu_seconds"],
        "cpu_seconds": result["cpu_seconds"],
        "trades": result["trades"],
        "volume": result["volume"],
        "expected_trades": wl["trades"],
        "expected_volume": wl["volume"],
        # A peer that reports filled lots but not trades (trades None) is checked on the volume alone.
        "agree": result["trades"] in (None, wl["trades"]) and result["volume"] == wl["volume"],
        "peak_rss_mb": _rss_mb(),
        "peak_rss_delta_mb": _rss_mb() - base,  # matching.md's figure: peak minus RSS after loading the ops
        "gc": gc_mode,
        "python": sys.version.split()[0],
        **({"journal_bytes": result["journal_bytes"]} if result.get("journal_bytes") else {}),
        **({"note": result["note"]} if result.get("note") else {}),
    }


def main(argv: list[str]) -> int:
    """Run the matching benchmark; print a table and optionally write JSON records."""
    if argv and argv[0] == "--_one":
        print(json.dumps(_one(argv[1], argv[2], int(argv[3]), argv[4], argv[5] if len(argv) > 5 else None)))
        return 0
    ap = argparse.ArgumentParser(prog="python -m benchmarks matching", description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=200_000, help="operations per workload (default 200,000)")
    ap.add_argument("--full", action="store_true", help="1,000,000 operations per workload, as in matching.md")
    ap.add_argument("--workloads", default="steady,single,multi50")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument(
        "--repeats", type=int, default=1, help="runs per (impl, workload), interleaved over impls; the best is kept"
    )
    ap.add_argument("--gc", choices=("on", "freeze", "off"), default="on", help="cyclic GC during the timed loop")
    ap.add_argument(
        "--peer-python",
        default=os.environ.get("DESK_BENCH_PEER_PYTHON"),
        help="a Python >= 3.13 with matching-engine, limit-order-book and orderly-chaos installed (made by make bench)",
    )
    ap.add_argument("--json", dest="json_path", help="write one JSON record per (impl, workload) here")
    args = ap.parse_args(argv)
    n_ops = 1_000_000 if args.full else args.ops
    impls = args.impls.split(",")
    for impl in impls:
        if impl not in IMPLS:
            print(f"unknown impl {impl!r}; choose from {', '.join(IMPLS)}", file=sys.stderr)
            return 2
    records = []
    tmp = tempfile.mkdtemp(prefix="deltadesk-bench-wl-")
    try:
        for workload in args.workloads.split(","):
            wl_file = str(Path(tmp) / f"{workload}-{n_ops}.pickle")
            with open(wl_file, "wb") as fh:
                pickle.dump(generate(workload, n_ops), fh, protocol=4)
            best: dict[str, dict[str, Any]] = {}
            rounds: list[dict[str, float]] = []  # CPU ops/s of each implementation, per round
            # Repeats go round the implementations so a change in machine load hits them all alike;
            # the best run by CPU time is kept (the steadier figure on a shared machine), and each round's
            # ratio to ref_heap gives a paired median.
            for _ in range(max(1, args.repeats)):
                rounds.append({})
                for impl in impls:
                    if "ops_per_s" not in best.get(impl, {"ops_per_s": 0}):
                        continue  # skipped or failed: no point repeating
                    rec = _run_isolated(impl, workload, n_ops, args.gc, args.peer_python, wl_file)
                    if "ops_per_s" in rec:
                        rounds[-1][impl] = rec["ops_per_cpu_s"]
                    old = best.get(impl)
                    if old is None or ("ops_per_s" in rec and rec["ops_per_cpu_s"] > old["ops_per_cpu_s"]):
                        best[impl] = rec
            ref = best.get("ref_heap", {})
            for impl in impls:
                rec = best[impl]
                if "ops_per_s" in rec and "ops_per_s" in ref:
                    rec["x_ref_heap"] = rec["ops_per_s"] / ref["ops_per_s"]
                    rec["x_ref_heap_cpu"] = rec["ops_per_cpu_s"] / ref["ops_per_cpu_s"]
                    paired = [r[impl] / r["ref_heap"] for r in rounds if impl in r and "ref_heap" in r]
                    rec["runs"] = len(paired)
                    rec["x_ref_heap_cpu_median"] = statistics.median(paired)
                records.append(rec)
                _print(rec)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(_compiled_note())
    if args.json_path:
        Path(args.json_path).write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return 0 if all(r.get("agree", True) for r in records) else 1


def _print(rec: dict[str, Any]) -> None:
    workload, impl = rec["workload"], rec["impl"]
    if "ops_per_s" not in rec:
        print(f"{workload:8s} {impl:24s} {rec.get('skipped') or rec.get('error')}", flush=True)
        return
    ratio = f"{rec['x_ref_heap_cpu']:5.2f}x ref" if "x_ref_heap_cpu" in rec else " " * 9
    if rec.get("runs", 0) > 1:
        ratio += f", median of {rec['runs']} {rec['x_ref_heap_cpu_median']:4.2f}x"
    print(
        f"{workload:8s} {impl:24s} {rec['ops_per_s']:>10,.0f} ops/s ({rec['ops_per_cpu_s']:>10,.0f} per CPU s, {ratio})  "
        f"trades {'-' if rec['trades'] is None else format(rec['trades'], ','):>8} volume {rec['volume']:>10,}  "
        f"agree {'yes' if rec['agree'] else 'NO '}  "
        f"peak RSS {rec['peak_rss_mb']:.0f} MB (+{rec['peak_rss_delta_mb']:.1f} over the loaded ops)",
        flush=True,
    )


def _compiled_note() -> str:
    return (
        "note: matching.md on this machine kind: native C++ book 15.1M ops/s (steady, one book), 6.1M (50 books); "
        "limit-order-book (C++ via Cython, no fills) 5.1M. Our engine on steady (valgrind instruction counts, "
        "2026-12-03, ops 50k-150k, setup excluded): ~13.9k machine instructions per op journal off, ~16.1k with "
        "the buffered journal, ~19.7k flushing every command, ~16.6k with a no-op pre-trade check (ref_heap "
        "~6.6k); ~1.6k of them are this loop and the Python call that every row pays; ~250 Python opcodes per "
        "op in the engine, ~29 in this loop; ~2.3 typed events per op at ~1.1k instructions each to build and free more than a "
        "plain tuple (~2.5k per op); the collector's passes over resting order records ~0.45k. A compiled core "
        "called once per order (C-API/PyO3, ints in) keeps the call (~0.19 us per op here) and, if it hands out "
        "typed Python events, their ~0.2 us: ~2-2.5M ops/s; ~5M if events stay in a native buffer until read; a "
        "batch entry point (arrays of ops in, arrays of fill/event records out) runs at the native 12-15M ops/s "
        "less the journal copy. nautilus_trader is not run here: its wheel is large and it has no "
        "participant-vs-participant matching (matching.md measured its book at 0.49M)."
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
