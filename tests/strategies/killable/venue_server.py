"""The simulated venue (SimVenue: matching engine, market makers, takers) in its own process, over loopback.

Its records (orders, fills) live in this process, so they survive the runner's SIGKILL: they are "the venue's
own records" the test compares the store with. Time runs at ``SPEED`` simulated seconds per wall second.

    python -m tests.strategies.killable.venue_server PORT_FILE SEED
"""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal
from pathlib import Path

from app.domain import Side
from app.errors import DeskError
from connectors.sim.venue import SimConfig, SimVenue
from tests.strategies.killable.wire import dumps, fill_to, order_to, report_to, req_from

STEP_MS = 200
TICK_S = 0.02  # 10x real time


class Server:
    def __init__(self, seed: int) -> None:
        self.venue = SimVenue(SimConfig(seed=seed, underlyings=("BTC",), step_ms=STEP_MS))
        self.lock = asyncio.Lock()
        self.requests = 0

    async def run_market(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            async with self.lock:
                self.venue.advance(STEP_MS)

    async def call(self, method: str, p: dict) -> object:
        v = self.venue
        if method == "place":
            return order_to(v.place_now(req_from(p["request"])))
        if method == "cancel":
            return order_to(v.cancel_now(p["order_id"]))
        if method == "amend":
            a = p.get("amount")
            pr = p.get("price")
            return order_to(v.amend_now(p["order_id"], None if a is None else Decimal(a), None if pr is None else Decimal(pr)))
        if method == "order_reports":
            return [report_to(r) for r in await v.order_reports(bool(p.get("open_only")))]
        if method == "fill_reports":
            return [fill_to(f) for f in await v.fill_reports(int(p.get("since_ms", 0)))]
        if method == "orders":
            return [order_to(o) for o in v.orders(open_only=False)]
        if method == "state":
            name = p.get("instrument", "BTC-PERPETUAL")
            bid, ask = v.engine.best_bid_ask(name)
            pos = sum((f.amount if f.side is Side.BUY else -f.amount) for f in v._our_fills if f.instrument == name)
            return {"now": v.clock.now_ms(), "index": v.index_price["BTC"], "bid": None if bid is None else float(bid),
                    "ask": None if ask is None else float(ask), "mark": v.mark_of(name)[0], "position": str(pos)}
        raise DeskError(f"unknown method {method}", code="wire.method")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                msg = json.loads(line)
                async with self.lock:
                    try:
                        out = {"id": msg["id"], "result": await self.call(msg["method"], msg.get("params", {}))}
                    except DeskError as exc:
                        out = {"id": msg["id"], "error": {"code": exc.code, "message": exc.message, "type": type(exc).__name__}}
                writer.write(dumps(out))
                await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            writer.close()


async def main(port_file: str, seed: int) -> None:
    srv = Server(seed)
    server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tmp = Path(port_file + ".tmp")
    tmp.write_text(str(port))
    tmp.rename(port_file)
    async with server:
        await asyncio.gather(server.serve_forever(), srv.run_market())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
