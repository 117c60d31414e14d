"""A headless runner process for the SIGKILL suite: the delta hedger against the venue process, over loopback.

    python -m tests.strategies.killable.runner_proc PORT DB RUN_ID [SECONDS]

The book is a synthetic option position whose delta moves steeply with the venue's index (so the hedger
trades all the time: maker orders, pay-ups, IOCs, TWAP clips); the hedge position is the venue's own record.
Events reach the runner by polling the venue (fills since a watermark, order states, index), as a REST client
of a real venue would. It runs until SECONDS of wall time pass, or forever; the test kills it with SIGKILL.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from decimal import Decimal
from typing import Any

from app.domain import FillEvent, GreeksView, IndexPrice, OrderUpdate, PositionView, Quote
from app.errors import DeskError, NotFound, OrderRejected
from storage.store import SqlStore
from strategies.delta_hedger import DeltaHedger
from strategies.hedger_config import parse_hedger_config
from strategies.runner import Runner
from tests.strategies.fakes import margin
from tests.strategies.killable.wire import dumps, fill_from, order_from, order_to, report_from, req_to

OPTION = "BTC-29MAR24-60000-C"
BASE_DELTA = 0.4
SYNTH_GAMMA = 400.0  # delta change per 100 % index move: 0.05 % -> 0.2 BTC
CONFIG = {
    "active": True,
    "check_interval_s": 1.0,
    "band": {"upper": 0.05, "lower": 0.05},
    "execution": {"maker_timeout_s": 2.0, "payup_ticks": 2, "max_payups": 1, "max_slippage_bps": 100, "twap_interval_s": 1.0},
    "limits": {"max_order_size": 0.3, "max_hedges_per_hour": 100_000, "max_notional_per_hour": 1e12, "max_position": 100},
    "safety": {"max_index_age_s": 60, "max_rejects": 1000},
}


def option_delta(index: float, index0: float) -> float:
    """The synthetic book's delta (coin) at ``index``."""
    return max(-3.0, min(3.0, BASE_DELTA + SYNTH_GAMMA * (index / index0 - 1.0)))


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.ids = itertools.count(1)
        self.lock = asyncio.Lock()

    async def call(self, method: str, **params: Any) -> Any:
        async with self.lock:
            i = next(self.ids)
            self.writer.write(dumps({"id": i, "method": method, "params": params}))
            await self.writer.drain()
            msg = json.loads(await self.reader.readline())
        if "error" in msg:
            e = msg["error"]
            cls = {"OrderRejected": OrderRejected, "NotFound": NotFound, "InsufficientMargin": OrderRejected}.get(e["type"], DeskError)
            raise cls(e["message"], code=e["code"])
        return msg["result"]


class RemoteRouter:
    def __init__(self, client: Client) -> None:
        self.c = client

    async def place(self, request):
        return order_from(await self.c.call("place", request=req_to(request)))

    async def cancel(self, order_id):
        return order_from(await self.c.call("cancel", order_id=order_id))

    async def amend(self, order_id, amount=None, price=None):
        return order_from(await self.c.call("amend", order_id=order_id, amount=None if amount is None else str(amount),
                                            price=None if price is None else str(price)))

    async def order_reports(self, open_only=False):
        return [report_from(r) for r in await self.c.call("order_reports", open_only=open_only)]

    async def fill_reports(self, since_ms=0):
        return [fill_from(f) for f in await self.c.call("fill_reports", since_ms=since_ms)]


class RemoteClock:
    def __init__(self) -> None:
        self.now = 0

    def now_ms(self) -> int:
        return self.now


class View:
    """The desk view: the synthetic option book plus the venue's own perpetual position and quote."""

    def __init__(self, clock: RemoteClock) -> None:
        self.clock = clock
        self.state: dict[str, Any] = {}
        self.index0 = 0.0

    def now_ms(self) -> int:
        return self.clock.now

    def positions(self):
        s = self.state
        d = option_delta(s["index"], self.index0)
        out = [PositionView(OPTION, 1.0, 0.05, 0.05, 0.0, 0.0, GreeksView(delta=d, delta_bs=d, gamma=0.0))]
        size = float(Decimal(s["position"]))
        if size:
            out.append(PositionView("BTC-PERPETUAL", size, s["mark"], s["mark"], 0.0, 0.0, GreeksView()))
        return out

    def quote(self, instrument, venue=None):
        s = self.state
        return Quote(s["now"], "BTC-PERPETUAL", s["bid"], s["ask"], 1e6, 1e6, mark_price=s["mark"], index_price=s["index"])

    def index_price(self, underlying):
        return self.state["index"]

    def margin(self):
        return {"BTC": margin(0.1)}


async def main(port: int, db: str, run_id: str, seconds: float | None, index0: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = Client(reader, writer)
    clock = RemoteClock()
    view = View(clock)
    view.index0 = index0
    view.state = await client.call("state")
    clock.now = view.state["now"]
    store = SqlStore(db)
    runner = Runner(DeltaHedger(parse_hedger_config(CONFIG)), RemoteRouter(client), store, view, run_id=run_id, clock=clock,
                    active=True, check_interval_ms=1_000, lease_ttl_ms=600_000)
    await runner.start()
    print("started", flush=True)
    seen_orders: dict[str, str] = {}
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        view.state = await client.call("state")
        clock.now = view.state["now"]
        await runner.on_event(IndexPrice(clock.now, "btc_usd", view.state["index"]))
        for f in await RemoteRouter(client).fill_reports(since_ms=max(0, runner._fill_watermark - 5_000)):
            if runner.owns(f.client_order_id):
                await runner.on_event(FillEvent(f.ts, f))
        for o in [order_from(x) for x in await client.call("orders")]:
            if runner.owns(o.request.client_order_id) and seen_orders.get(o.order_id) != o.status.value:
                seen_orders[o.order_id] = o.status.value
                await runner.on_event(OrderUpdate(clock.now, o))
        await runner.tick()
        await asyncio.sleep(0.02)
    await runner.stop()
    print(json.dumps({"sent": runner.sent, "order": [order_to(o) for o in []]}), flush=True)
    store.close()


if __name__ == "__main__":
    secs = float(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], secs, float(sys.argv[5]) if len(sys.argv) > 5 else 0.0))
