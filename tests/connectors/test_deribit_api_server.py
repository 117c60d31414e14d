"""The embedded venue's Deribit API, checked with ccxt (a client nobody here wrote) and raw JSON-RPC."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import ccxt
import pytest

from connectors.deribit_api.auth import sign
from connectors.deribit_api.server import DeribitApiServer
from tests.connectors.conftest import KEY, SECRET, point
from tests.connectors.paper_backend import PaperBackend


async def test_ccxt_loads_markets_with_venue_conventions(ccxt_client, paper: PaperBackend) -> None:
    markets = await ccxt_client.load_markets()
    assert "BTC/USD:BTC" in markets
    opt = ccxt_client.markets_by_id[paper.call][0]
    assert opt["option"] and opt["inverse"] and opt["strike"] == 60000
    assert opt["precision"]["price"] == 0.0001 and opt["limits"]["amount"]["min"] == 0.1
    assert opt["info"]["tick_size_steps"] == [{"above_price": 0.005, "tick_size": 0.0005}]
    perp = markets["BTC/USD:BTC"]
    assert perp["swap"] and perp["contractSize"] == 10 and perp["precision"]["price"] == 0.5


async def test_ccxt_ticker_greeks_book_and_chain(ccxt_client, paper: PaperBackend) -> None:
    await ccxt_client.load_markets()
    sym = ccxt_client.markets_by_id[paper.call][0]["symbol"]
    greeks = await ccxt_client.fetch_greeks(sym)
    assert greeks["markImpliedVolatility"] == pytest.approx(55.0) and greeks["delta"] == 0.5
    book = await ccxt_client.fetch_order_book("BTC/USD:BTC", limit=5)
    assert book["bids"][0] == [59999.5, 10000.0] and book["asks"][0] == [60000.5, 10000.0]
    chain = await ccxt_client.fetch_option_chain("BTC")
    assert set(chain) == {ccxt_client.markets_by_id[n][0]["symbol"] for n in (paper.call, paper.put)}
    assert chain[sym]["info"]["mark_iv"] == pytest.approx(55.0)
    ticker = await ccxt_client.fetch_ticker("BTC/USD:BTC")
    assert ticker["bid"] == 59999.5 and ticker["indexPrice"] == 60000.0


async def test_private_calls_need_a_valid_signature(server: DeribitApiServer) -> None:
    import ccxt.async_support as ccxta

    for creds in ({}, {"apiKey": KEY, "secret": "wrong"}, {"apiKey": "nobody", "secret": SECRET}):
        ex = point(ccxta.deribit({**creds, "enableRateLimit": False}), server)
        try:
            await ex.load_markets()
            with pytest.raises((ccxt.AuthenticationError, ccxt.ArgumentsRequired)):
                await ex.fetch_balance()
        finally:
            await ex.close()


async def test_order_lifecycle_place_amend_cancel_fill(ccxt_client, paper: PaperBackend) -> None:
    await ccxt_client.load_markets()
    sym = ccxt_client.markets_by_id[paper.call][0]["symbol"]
    resting = await ccxt_client.create_order(sym, "limit", "buy", 0.5, 0.035, {"label": "cl-1"})
    assert resting["status"] == "open" and resting["info"]["label"] == "cl-1"
    edited = await ccxt_client.edit_order(resting["id"], sym, "limit", "buy", 0.5, 0.036)
    assert edited["price"] == 0.036
    opens = await ccxt_client.fetch_open_orders(sym)
    assert [o["id"] for o in opens] == [resting["id"]]
    cancelled = await ccxt_client.cancel_order(resting["id"], sym)
    assert cancelled["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        await ccxt_client.cancel_order(resting["id"], sym)  # 10010 already_closed
    taken = await ccxt_client.create_order(sym, "limit", "buy", 0.3, 0.042, {"label": "cl-2"})
    assert taken["status"] == "closed" and taken["filled"] == 0.3 and taken["average"] == 0.042
    trades = await ccxt_client.fetch_my_trades(sym)
    assert [t["order"] for t in trades] == [taken["id"]] and trades[0]["takerOrMaker"] == "taker"
    positions = await ccxt_client.fetch_positions()
    assert [(p["symbol"], p["side"], p["contracts"]) for p in positions] == [(sym, "long", 0.3)]
    state = await ccxt_client.fetch_order(taken["id"], sym)
    assert state["status"] == "closed" and state["info"]["label"] == "cl-2"


async def test_venue_validation_rejects_without_state_change(ccxt_client, paper: PaperBackend) -> None:
    await ccxt_client.load_markets()
    sym = ccxt_client.markets_by_id[paper.call][0]["symbol"]
    before = len(paper.orders_)
    # 0.0123 is on ccxt's 0.0001 grid but off Deribit's 0.0005 step above 0.005: ccxt sends it, the venue refuses.
    with pytest.raises(ccxt.InvalidOrder, match="price_wrong_tick"):
        await ccxt_client.create_order(sym, "limit", "buy", 0.1, 0.0123)
    with pytest.raises(ccxt.InsufficientFunds, match="not_enough_funds"):
        await ccxt_client.create_order(sym, "limit", "sell", 100, 0.05)
    with pytest.raises(ccxt.InvalidOrder):
        await ccxt_client.private_get_buy(
            {"instrument_name": paper.call, "amount": 0.05, "price": 0.01, "type": "limit"}
        )
    with pytest.raises(ccxt.InvalidOrder):
        await ccxt_client.private_get_buy(
            {"instrument_name": paper.perp, "amount": 15, "price": 60000, "type": "limit"}
        )
    with pytest.raises(ccxt.ExchangeError, match="invalid_or_unsupported_instrument"):
        await ccxt_client.private_get_buy({"instrument_name": "BTC-1JAN30-1-C", "amount": 1, "price": 0.01})
    assert len(paper.orders_) == before


async def test_balance_and_account_summary(ccxt_client) -> None:
    bal = await ccxt_client.fetch_balance()
    assert bal["BTC"]["total"] == 10.0
    one = await ccxt_client.fetch_balance({"code": "BTC"})
    assert one["BTC"]["free"] == 10.0
    summary = await ccxt_client.private_get_get_account_summary({"currency": "BTC"})
    assert summary["result"]["margin_model"] == "segregated_sm"


async def test_http_auth_forms_and_envelope(server: DeribitApiServer) -> None:
    base = server.rest_url + "/api/v2"
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{base}/public/auth",
            params={"grant_type": "client_credentials", "client_id": KEY, "client_secret": SECRET},
        ) as r:
            body = await r.json()
        assert {"jsonrpc", "result", "usIn", "usOut", "usDiff", "testnet"} <= set(body)
        token = body["result"]["access_token"]
        async with http.get(f"{base}/private/get_positions", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200 and (await r.json())["result"] == []
        basic = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        async with http.get(
            f"{base}/private/get_open_orders_by_currency?currency=BTC", headers={"Authorization": f"Basic {basic}"}
        ) as r:
            assert r.status == 200
        async with http.get(f"{base}/private/get_positions", headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == 13009
        payload = {"jsonrpc": "2.0", "id": 9, "method": "public/get_index_price", "params": {"index_name": "btc_usd"}}
        async with http.post(base, json=payload) as r:
            body = await r.json()
        assert body["id"] == 9 and body["result"]["index_price"] == 60000.0
        async with http.get(f"{base}/public/nope") as r:
            assert (await r.json())["error"]["code"] == -32601
        # a signed request is accepted; a wrong signature or an old timestamp is not
        ts = int(time.time() * 1000)
        uri = "/api/v2/private/get_positions"
        sig = sign(SECRET, ts, str(ts), "GET\n" + uri + "\n\n")
        hdr = f"deri-hmac-sha256 id={KEY},ts={ts},sig={sig},nonce={ts}"
        async with http.get(server.rest_url + uri, headers={"Authorization": hdr}) as r:
            assert r.status == 200
        async with http.get(server.rest_url + uri, headers={"Authorization": hdr.replace(sig, "0" * 64)}) as r:
            assert (await r.json())["error"]["code"] == 13009
        old = ts - 120_000
        old_sig = sign(SECRET, old, str(old), "GET\n" + uri + "\n\n")
        stale = f"deri-hmac-sha256 id={KEY},ts={old},sig={old_sig},nonce={old}"
        async with http.get(server.rest_url + uri, headers={"Authorization": stale}) as r:
            assert (await r.json())["error"]["data"]["reason"].startswith("timestamp outside")


async def test_rate_limit_answers_10028(paper: PaperBackend) -> None:
    srv = await DeribitApiServer(paper, rate=1.0, burst=3.0).start()
    try:
        async with aiohttp.ClientSession() as http:
            codes = []
            for _ in range(5):
                async with http.get(srv.rest_url + "/api/v2/public/get_time") as r:
                    codes.append((await r.json()).get("error", {}).get("code"))
        assert codes[:3] == [None, None, None] and 10028 in codes[3:]
    finally:
        await srv.stop()


async def _ws_rpc(ws: aiohttp.ClientWebSocketResponse, rid: int, method: str, params: dict) -> dict:
    await ws.send_json({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    while True:
        msg = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
        if msg.get("id") == rid:
            return msg


async def test_websocket_auth_subscriptions_and_book_sequence(server: DeribitApiServer, paper: PaperBackend) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url) as ws:
        denied = await _ws_rpc(ws, 1, "private/subscribe", {"channels": ["user.orders.any.any.raw"]})
        assert denied["error"]["code"] == 13009
        ts = int(time.time() * 1000)
        auth = await _ws_rpc(
            ws,
            2,
            "public/auth",
            {
                "grant_type": "client_signature",
                "client_id": KEY,
                "timestamp": ts,
                "nonce": "n1",
                "data": "",
                "signature": sign(SECRET, ts, "n1", ""),
            },
        )
        assert auth["result"]["token_type"] == "bearer"
        chans = [
            f"book.{paper.perp}.100ms",
            f"ticker.{paper.call}.100ms",
            "user.orders.any.any.raw",
            f"user.trades.{paper.perp}.raw",
            "deribit_price_index.btc_usd",
            "ticker.NOPE.100ms",
        ]
        sub = await _ws_rpc(ws, 3, "private/subscribe", {"channels": chans})
        assert sub["result"] == chans[:-1]
        got: dict[str, list] = {}

        async def collect(until) -> None:
            while not until():
                msg = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
                if msg.get("method") == "subscription":
                    got.setdefault(msg["params"]["channel"], []).append(msg["params"]["data"])

        await collect(lambda: f"book.{paper.perp}.100ms" in got and f"ticker.{paper.call}.100ms" in got)
        snap = got[f"book.{paper.perp}.100ms"][0]
        assert snap["type"] == "snapshot" and snap["bids"][0] == ["new", 59999.5, 10000.0]
        await ws.send_json(
            {
                "jsonrpc": "2.0",
                "id": 4,
                "method": "private/buy",
                "params": {"instrument_name": paper.perp, "amount": 2000, "type": "market", "label": "m1"},
            }
        )
        await collect(
            lambda: len(got.get(f"book.{paper.perp}.100ms", [])) >= 2 and f"user.trades.{paper.perp}.raw" in got
        )
        change = got[f"book.{paper.perp}.100ms"][1]
        assert change["type"] == "change" and change["prev_change_id"] == snap["change_id"]
        assert change["asks"] == [["change", 60000.5, 8000.0]]
        assert got[f"user.trades.{paper.perp}.raw"][0][0]["label"] == "m1"
        assert any(o["label"] == "m1" and o["order_state"] == "filled" for o in got["user.orders.any.any.raw"])
        paper.publish_index(61000.0)
        await collect(lambda: any(d["price"] == 61000.0 for d in got.get("deribit_price_index.btc_usd", [])))
        assert await server.drop_websockets() == 1


async def test_websocket_signature_is_single_use_and_raw_needs_auth(
    server: DeribitApiServer, paper: PaperBackend
) -> None:
    ts = int(time.time() * 1000)
    params = {
        "grant_type": "client_signature",
        "client_id": KEY,
        "timestamp": ts,
        "nonce": "once",
        "data": "",
        "signature": sign(SECRET, ts, "once", ""),
    }
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url) as ws:
        raw = await _ws_rpc(ws, 1, "public/subscribe", {"channels": [f"ticker.{paper.perp}.raw"]})
        assert raw["error"]["code"] == 13009
        first = await _ws_rpc(ws, 2, "public/auth", params)
        assert first["result"]["expires_in"] > 0
        replay = await _ws_rpc(ws, 3, "public/auth", params)
        assert replay["error"]["code"] == 13009
        bad = await _ws_rpc(
            ws,
            4,
            "private/buy",
            {"instrument_name": paper.perp, "amount": 10, "type": "market", "access_token": "forged"},
        )
        assert bad["error"]["code"] == 13009
        sub = await _ws_rpc(ws, 5, "private/subscribe", {"channels": ["user.portfolio.btc"]})
        assert sub["result"] == ["user.portfolio.btc"]
        await ws.send_json(
            {
                "jsonrpc": "2.0",
                "id": 6,
                "method": "private/buy",
                "params": {"instrument_name": paper.perp, "amount": 100, "type": "market"},
            }
        )
        while True:
            msg = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            if msg.get("method") == "subscription" and msg["params"]["channel"] == "user.portfolio.btc":
                assert msg["params"]["data"]["currency"] == "BTC" and "maintenance_margin" in msg["params"]["data"]
                break
        token = first["result"]["refresh_token"]
        refreshed = await _ws_rpc(ws, 7, "public/auth", {"grant_type": "refresh_token", "refresh_token": token})
        assert refreshed["result"]["access_token"] != first["result"]["access_token"]
        again = await _ws_rpc(ws, 8, "public/auth", {"grant_type": "refresh_token", "refresh_token": token})
        assert again["error"]["code"] == 13004  # a refresh token is used once


async def test_heartbeat_test_requests_and_silent_clients_are_dropped(paper: PaperBackend) -> None:
    srv = await DeribitApiServer(paper, min_heartbeat_s=0.05).start()
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(srv.ws_url) as ws:
            too_short = await _ws_rpc(ws, 1, "public/set_heartbeat", {"interval": 0.01})
            assert too_short["error"]["code"] == -32602
            assert (await _ws_rpc(ws, 2, "public/set_heartbeat", {"interval": 0.1}))["result"] == "ok"
            msg = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            assert msg == {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
            assert (await _ws_rpc(ws, 3, "public/test", {}))["result"]["version"]
            # now stay silent: the server closes the connection
            while True:
                got = await asyncio.wait_for(ws.receive(), 5)
                if got.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    break
            assert srv.connections == 0 or ws.closed
    finally:
        await srv.stop()


@pytest.mark.parametrize(
    ("code", "message", "wire"),
    [
        ("order.rejected.band", "price 0.5 is outside the band [0.6, 0.9] around mark 0.7 of X", 10005),
        ("order.rejected.band", "price 1.5 is outside the band [0.6, 0.9] around mark 0.7 of X", 10007),
        ("order.rejected.tick", "off tick", 10043),
        ("order.rejected.post_only", "would take", 11054),
        ("order.rejected.state", "halted", 10012),
        ("order.unknown", "no such order", 10004),
        ("margin.insufficient", "short", 10009),
        ("margin.no_index", "no index yet", 10040),
        ("order.rejected.max_size", "too big", 11030),
    ],
)
def test_desk_rejections_answer_with_deribit_codes(code: str, message: str, wire: int) -> None:
    from app.errors import InsufficientMargin, OrderRejected
    from connectors.deribit_api.wire import rpc_error_from

    cls = InsufficientMargin if code.startswith("margin.") else OrderRejected
    err = rpc_error_from(cls(message, code=code))
    assert err.code == wire and err.data is not None and err.data["desk_code"] == code
