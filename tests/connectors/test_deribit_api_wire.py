"""Wire details of the Deribit API a client relies on, over the paper backend: one book change-id sequence for
REST and websocket, trade_seq per instrument on every endpoint, market-order prices, order commissions,
post-only repricing, 24h ticker statistics and the channels that are not served."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connectors.deribit_api.server import DeribitApiServer
from tests.connectors.conftest import KEY, SECRET
from tests.connectors.paper_backend import PaperBackend

BASIC = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()}


class Client:
    """JSON-RPC over HTTP (Basic auth) and one authenticated websocket collecting notifications by channel."""

    def __init__(self, server: DeribitApiServer, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.server, self.http, self.ws = server, http, ws
        self.notes: dict[str, list[Any]] = {}
        self._id = 100

    async def get(self, method: str, **params: Any) -> dict[str, Any]:
        query = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items()}
        async with self.http.get(f"{self.server.rest_url}/api/v2/{method}", params=query, headers=BASIC) as r:
            return await r.json()

    async def ws_rpc(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        rid = self._id
        await self.ws.send_json({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        while True:
            msg = await self._next()
            if msg.get("id") == rid:
                return msg

    async def _next(self) -> dict[str, Any]:
        msg = json.loads((await asyncio.wait_for(self.ws.receive(), 5)).data)
        if msg.get("method") == "subscription":
            self.notes.setdefault(msg["params"]["channel"], []).append(msg["params"]["data"])
        return msg

    async def until(self, pred: Any) -> None:
        while not pred():
            await self._next()

    async def quiet(self, seconds: float = 0.3) -> None:
        """Collect notifications for a while (the server flushes every 100 ms)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            try:
                msg = json.loads((await asyncio.wait_for(self.ws.receive(), left)).data)
            except TimeoutError:
                return
            if msg.get("method") == "subscription":
                self.notes.setdefault(msg["params"]["channel"], []).append(msg["params"]["data"])


@pytest.fixture
async def client(server: DeribitApiServer) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url) as ws:
        c = Client(server, http, ws)
        auth = await c.ws_rpc("public/auth", grant_type="client_credentials", client_id=KEY, client_secret=SECRET)
        assert "access_token" in auth["result"]
        yield c


def _apply(book: dict[str, dict[float, float]], change: dict[str, Any]) -> None:
    for side in ("bids", "asks"):
        for action, price, amount in change[side]:
            if action == "delete":
                book[side].pop(price, None)
            else:
                book[side][price] = amount


async def test_rest_snapshot_chains_into_websocket_changes(client: Client, paper: PaperBackend) -> None:
    ch = f"book.{paper.perp}.100ms"
    sub = await client.ws_rpc("public/subscribe", channels=[ch])
    assert sub["result"] == [ch]
    await client.until(lambda: ch in client.notes)
    snap = client.notes[ch][0]
    rest = (await client.get("public/get_order_book", instrument_name=paper.perp, depth=1000))["result"]
    assert rest["change_id"] == snap["change_id"]  # nothing changed: the same id on both transports
    again = (await client.get("public/get_order_book", instrument_name=paper.perp))["result"]
    assert again["change_id"] == rest["change_id"]
    # A client keeps the REST snapshot and applies websocket changes chained from its change_id.
    book = {"bids": {p: a for p, a in rest["bids"]}, "asks": {p: a for p, a in rest["asks"]}}
    last = rest["change_id"]
    await client.get("private/buy", instrument_name=paper.perp, amount=2000, type="market")
    after = (await client.get("public/get_order_book", instrument_name=paper.perp, depth=1000))["result"]
    assert after["change_id"] == last + 1  # the REST call numbered the change and sent it to the channel
    await client.get("private/sell", instrument_name=paper.perp, amount=500, type="limit", price=59990)
    await client.until(lambda: any(c.get("prev_change_id") == last + 1 for c in client.notes[ch]))
    changes = [c for c in client.notes[ch] if c["type"] == "change"]
    assert [c["prev_change_id"] for c in changes] == [last, last + 1]
    for c in changes:
        assert c["prev_change_id"] == last
        _apply(book, c)
        last = c["change_id"]
    final = (await client.get("public/get_order_book", instrument_name=paper.perp, depth=1000))["result"]
    assert final["change_id"] == last
    assert book == {"bids": {p: a for p, a in final["bids"]}, "asks": {p: a for p, a in final["asks"]}}


async def test_trade_seq_counts_per_instrument_and_matches_on_every_endpoint(
    client: Client, paper: PaperBackend
) -> None:
    chans = [f"trades.{paper.perp}.raw", "trades.any.BTC.raw", "user.trades.any.any.raw"]
    assert (await client.ws_rpc("private/subscribe", channels=chans))["result"] == chans
    first = (await client.get("private/buy", instrument_name=paper.perp, amount=100, type="market"))["result"]
    second = (await client.get("private/buy", instrument_name=paper.perp, amount=100, type="market"))["result"]
    option = (await client.get("private/buy", instrument_name=paper.call, amount=0.1, type="market"))["result"]
    # the option's trades are numbered in its own sequence, not after the perpetual's
    assert [t["trade_seq"] for t in first["trades"] + second["trades"]] == [1, 2]
    assert [t["trade_seq"] for t in option["trades"]] == [1]
    seq = {t["trade_id"]: t["trade_seq"] for r in (first, second, option) for t in r["trades"]}
    await client.until(lambda: len([t for b in client.notes.get(chans[2], []) for t in b]) == 3)
    await client.until(lambda: len([t for b in client.notes.get(chans[1], []) for t in b]) == 3)
    public = [t for b in client.notes[chans[0]] for t in b]
    assert [t["trade_seq"] for t in public] == [1, 2]
    any_btc = [(t["instrument_name"], t["trade_seq"]) for b in client.notes[chans[1]] for t in b]
    assert any_btc == [(paper.perp, 1), (paper.perp, 2), (paper.call, 1)]
    assert {t["trade_id"]: t["trade_seq"] for b in client.notes[chans[2]] for t in b} == seq
    by_inst = (await client.get("private/get_user_trades_by_instrument", instrument_name=paper.perp))["result"]
    by_ccy = (await client.get("private/get_user_trades_by_currency", currency="BTC", sorting="asc"))["result"]
    by_order = (await client.get("private/get_user_trades_by_order", order_id=option["order"]["order_id"]))["result"]
    for rows in (by_inst["trades"], by_ccy["trades"], by_order):
        assert rows and all(seq[t["trade_id"]] == t["trade_seq"] for t in rows)
    assert sorted(t["trade_seq"] for t in by_inst["trades"]) == [1, 2]


async def test_user_changes_is_left_out_of_the_subscription(client: Client, paper: PaperBackend) -> None:
    chans = ["user.changes.any.any.raw", f"user.changes.{paper.perp}.100ms", "user.orders.any.any.raw"]
    sub = await client.ws_rpc("private/subscribe", channels=chans)
    assert sub["result"] == ["user.orders.any.any.raw"]  # Deribit answers only the channels it subscribed
    await client.get("private/buy", instrument_name=paper.perp, amount=100, type="market")
    await client.quiet()
    assert not any(ch.startswith("user.changes") for ch in client.notes)


async def test_market_order_price_average_and_commission(client: Client, paper: PaperBackend) -> None:
    ticker = (await client.get("public/ticker", instrument_name=paper.perp))["result"]
    res = (await client.get("private/buy", instrument_name=paper.perp, amount=12000, type="market"))["result"]
    order, trades = res["order"], res["trades"]
    assert len(trades) == 1  # 10000 at 60000.5; nothing is left to meet the remainder
    # a numeric price: the band's edge the market order may execute to (on the tick grid), not "market_price"
    assert isinstance(order["price"], float) and order["price"] == pytest.approx(ticker["max_price"], abs=0.5)
    assert order["price"] >= max(t["price"] for t in trades)
    assert order["average_price"] == pytest.approx(60000.5)
    assert order["commission"] == pytest.approx(sum(t["fee"] for t in trades)) and order["commission"] > 0
    state = (await client.get("private/get_order_state", order_id=order["order_id"]))["result"]
    assert state["price"] == order["price"] and state["commission"] == order["commission"]
    resting = (await client.get("private/sell", instrument_name=paper.perp, amount=100, type="limit", price=61000))[
        "result"
    ]["order"]
    assert resting["average_price"] == 0.0 and resting["commission"] == 0.0 and resting["price"] == 61000.0


async def test_post_only_is_repriced_inside_the_spread_and_echoes_reject_flag(
    client: Client, paper: PaperBackend
) -> None:
    # best ask 60000.5: a crossing post-only buy rests one tick below it instead of taking
    res = (
        await client.get(
            "private/buy", instrument_name=paper.perp, amount=100, type="limit", price=60010, post_only=True
        )
    )["result"]
    assert res["trades"] == [] and res["order"]["order_state"] == "open"
    assert res["order"]["price"] == 60000.0 and res["order"]["post_only"] is True
    assert res["order"]["reject_post_only"] is False
    sell = (
        await client.get(
            "private/sell", instrument_name=paper.call, amount=0.1, type="limit", price=0.03, post_only=True
        )
    )["result"]["order"]
    assert sell["price"] == 0.0405  # best bid 0.0400, tick 0.0005 above 0.005
    passive = (
        await client.get(
            "private/buy",
            instrument_name=paper.perp,
            amount=100,
            type="limit",
            price=59000,
            post_only=True,
            reject_post_only=True,
        )
    )["result"]["order"]
    assert passive["price"] == 59000.0 and passive["reject_post_only"] is True


async def test_ticker_and_book_summary_show_the_last_24h_of_trades(client: Client, paper: PaperBackend) -> None:
    before = (await client.get("public/ticker", instrument_name=paper.perp))["result"]
    assert before["last_price"] is None and before["stats"]["volume"] == 0.0 and before["stats"]["high"] is None
    await client.get("private/buy", instrument_name=paper.perp, amount=12000, type="market")
    t = (await client.get("public/ticker", instrument_name=paper.perp))["result"]
    assert t["last_price"] == 60000.5  # 10000 at 60000.5; the 2000 left had nothing to meet
    s = t["stats"]
    assert s["high"] == s["low"] == 60000.5 and s["price_change"] == 0.0
    assert s["volume_usd"] == 10000.0 and s["volume"] == pytest.approx(10000.0 / 60000.5)  # coin
    summary = (await client.get("public/get_book_summary_by_instrument", instrument_name=paper.perp))["result"][0]
    assert summary["last"] == 60000.5 and summary["volume"] == pytest.approx(s["volume"])
    assert summary["high"] == 60000.5 and isinstance(summary["funding_8h"], float)
    await client.get("private/buy", instrument_name=paper.call, amount=0.5, type="market")
    opt = (await client.get("public/ticker", instrument_name=paper.call))["result"]
    # options trade coin; their USD volume is the premium (coin price x amount x index)
    assert opt["stats"]["volume"] == 0.5 and opt["stats"]["volume_usd"] == pytest.approx(0.042 * 0.5 * 60000.0)
    assert opt["underlying_index"] == "index_price"


def test_instrument_block_trade_fields_follow_deribits_examples() -> None:
    from app.domain import Instrument
    from connectors.deribit_api.shapes import instrument_json

    perp = instrument_json(Instrument.parse("BTC-PERPETUAL"), 0)
    btc_opt = instrument_json(Instrument.parse("BTC-13JAN23-16000-P"), 0)
    eth_opt = instrument_json(Instrument.parse("ETH-6JUL25-1500-C"), 0)
    assert (perp["block_trade_tick_size"], perp["block_trade_min_trade_amount"]) == (0.01, 200000)
    assert (btc_opt["block_trade_tick_size"], btc_opt["block_trade_min_trade_amount"]) == (0.0001, 25)
    assert (eth_opt["block_trade_tick_size"], eth_opt["block_trade_min_trade_amount"]) == (0.0001, 250)
