"""A minimal loopback Bybit v5 REST venue: what ccxt's ``bybit`` calls for USDC options and a USDT perpetual.

Private calls are checked as Bybit documents them: ``X-BAPI-SIGN = hex(HMAC-SHA256(secret, timestamp + apiKey +
recvWindow + (query | body)))`` with the timestamp inside the receive window. Envelopes are
``{"retCode": 0, "retMsg": "OK", "result": {...}, "retExtInfo": {}, "time": ms}``.

Private lists filter as Bybit v5 documents: /v5/order/realtime, /v5/order/history, /v5/execution/list and
/v5/position/list require ``category`` (linear | inverse | option | spot) and return only rows of it; open orders and
positions of ``linear`` also need ``symbol``, ``settleCoin`` or ``baseCoin`` (``settleCoin`` filters by it).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import WSMsgType, web

KEY, SECRET = "bybit-key", "bybit-secret"
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


class FakeBybit:
    """Two BTC USDC options (tick 5 USDC, 0.01 BTC lots) and BTCUSDT (and BTCPERP, USDC-settled, with
    ``usdc_perp``), with resting orders, market fills, executions and positions."""

    def __init__(self, usdc_perp: bool = False) -> None:
        exp = (datetime.now(timezone.utc) + timedelta(days=20)).replace(hour=8, minute=0, second=0, microsecond=0)
        while exp.weekday() != 4:
            exp += timedelta(days=1)
        self.exp_ms = int(exp.timestamp() * 1000)
        code = f"{exp.day}{_MONTHS[exp.month - 1]}{exp.year % 100:02d}"
        self.call, self.put, self.perp = f"BTC-{code}-60000-C", f"BTC-{code}-60000-P", "BTCUSDT"
        self.books = {
            self.call: ([("2400", "5")], [("2500", "4")]),
            self.put: ([("1800", "5")], [("1900", "4")]),
            self.perp: ([("59999.9", "10")], [("60000.1", "10")]),
        }
        self.usdc_perp = "BTCPERP"
        if usdc_perp:
            self.books[self.usdc_perp] = ([("59999.5", "10")], [("60000.5", "10")])
        self.orders: dict[str, dict[str, Any]] = {}
        self.execs: list[dict[str, Any]] = []  # our executions, newest last (execution/list rows)
        self.exec_fee = "0.5"  # execFee of the next execution (negative: a maker rebate, as Bybit sends it)
        self.queries: list[tuple[str, dict[str, Any]]] = []  # private list queries as sent
        # account-wide USD figures and per-coin rows of /v5/account/wallet-balance (UNIFIED)
        self.wallet: dict[str, Any] = {
            "totalInitialMargin": "182.60183684",
            "totalMaintenanceMargin": "0.38106773",
            "coins": {"USDC": ("1000", "150.5", "20.25", "3.75"), "USDT": ("500", "0", "0", "0")},
        }
        self._ids = itertools.count(1)
        self.app = web.Application()
        self.app.router.add_get("/v5/public/option", self.ws_public)
        self.app.router.add_get("/v5/public/linear", self.ws_public)
        self.app.router.add_route("*", "/v5/{path:.*}", self.handle)
        self.sockets: list[tuple[web.WebSocketResponse, set[str]]] = []
        self.book_seq: dict[str, int] = {}
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> FakeBybit:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    # -- public websocket (tickers, orderbook) -----------------------------------------------------
    async def ws_public(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        topics: set[str] = set()
        entry = (ws, topics)
        self.sockets.append(entry)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                m = json.loads(msg.data)
                if m.get("op") == "ping":
                    await ws.send_json(
                        {
                            "success": True,
                            "ret_msg": "pong",
                            "conn_id": "c1",
                            "req_id": m.get("req_id", ""),
                            "op": "ping",
                        }
                    )
                    continue
                if m.get("op") != "subscribe":
                    continue
                bad = [t for t in m.get("args", []) if t.split(".")[-1] not in self.books]
                await ws.send_json(
                    {
                        "success": not bad,
                        "ret_msg": "" if not bad else f"error:handler not found,topic:{bad[0]}",
                        "conn_id": "c1",
                        "req_id": m.get("req_id", ""),
                        "op": "subscribe",
                    }
                )
                for topic in m.get("args", []):
                    if topic in bad:
                        continue
                    topics.add(topic)
                    await self._push(ws, topic, snapshot=True)
        finally:
            self.sockets.remove(entry)
        return ws

    def _ws_ticker(self, sym: str) -> dict[str, Any]:
        rest = self._ticker(sym)  # the websocket names some option fields differently from REST
        out = {
            k: v
            for k, v in rest.items()
            if k not in ("bid1Price", "bid1Size", "ask1Price", "ask1Size", "bid1Iv", "ask1Iv", "markIv")
        }
        if self._linear(sym):
            out.update(
                {
                    "bid1Price": rest["bid1Price"],
                    "bid1Size": rest["bid1Size"],
                    "ask1Price": rest["ask1Price"],
                    "ask1Size": rest["ask1Size"],
                }
            )
        else:
            out.update(
                {
                    "bidPrice": rest["bid1Price"],
                    "bidSize": rest["bid1Size"],
                    "askPrice": rest["ask1Price"],
                    "askSize": rest["ask1Size"],
                    "bidIv": rest["bid1Iv"],
                    "askIv": rest["ask1Iv"],
                    "markPriceIv": rest["markIv"],
                }
            )
        return out

    async def _push(
        self,
        ws: web.WebSocketResponse,
        topic: str,
        snapshot: bool = False,
        delta: tuple[list[list[str]], list[list[str]]] | None = None,
    ) -> None:
        sym = topic.split(".")[-1]
        now = int(time.time() * 1000)
        if topic.startswith("tickers."):
            await ws.send_json({"topic": topic, "type": "snapshot", "ts": now, "cs": 1, "data": self._ws_ticker(sym)})
            return
        seq = self.book_seq.get(sym, 0) + 1
        self.book_seq[sym] = seq
        bids, asks = self.books[sym]
        b, a = ([list(x) for x in bids], [list(x) for x in asks]) if delta is None else delta
        await ws.send_json(
            {
                "topic": topic,
                "type": "snapshot" if snapshot else "delta",
                "ts": now,
                "data": {"s": sym, "b": b, "a": a, "u": seq, "seq": seq},
                "cts": now,
            }
        )

    async def move(self, sym: str, bid: str, ask: str) -> None:
        """New top of book, pushed as a ticker snapshot and an orderbook delta."""
        old_bids, old_asks = self.books[sym]
        self.books[sym] = ([(bid, old_bids[0][1])], [(ask, old_asks[0][1])])
        delta = ([[old_bids[0][0], "0"], [bid, old_bids[0][1]]], [[old_asks[0][0], "0"], [ask, old_asks[0][1]]])
        for ws, topics in list(self.sockets):
            for topic in list(topics):
                if topic.endswith("." + sym):
                    await self._push(ws, topic, delta=delta if topic.startswith("orderbook.") else None)

    async def drop(self) -> int:
        """Close every websocket."""
        n = len(self.sockets)
        for ws, _ in list(self.sockets):
            await ws.close()
        return n

    @staticmethod
    def ok(result: Any) -> web.Response:
        return web.json_response(
            {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": int(time.time() * 1000)}
        )

    @staticmethod
    def err(code: int, msg: str) -> web.Response:
        return web.json_response(
            {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": int(time.time() * 1000)}
        )

    def _auth(self, request: web.Request, body: str) -> web.Response | None:
        h = request.headers
        if h.get("X-BAPI-API-KEY") != KEY:
            return self.err(10003, "API key is invalid.")
        ts, window = h.get("X-BAPI-TIMESTAMP", "0"), h.get("X-BAPI-RECV-WINDOW", "5000")
        if abs(time.time() * 1000 - int(ts)) > int(window):
            return self.err(10002, "invalid request, please check your server timestamp or recv_window param")
        payload = body if request.method == "POST" else request.query_string
        expected = hmac.new(SECRET.encode(), (ts + KEY + window + payload).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, h.get("X-BAPI-SIGN", "")):
            return self.err(10004, "error sign! origin_string[...]")
        return None

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.text()
        if not path.startswith("market/"):
            denied = self._auth(request, body)
            if denied is not None:
                return denied
        params: dict[str, Any] = json.loads(body) if body else dict(request.query)
        handler = getattr(self, "h_" + path.replace("/", "_").replace("-", "_"), None)
        if handler is None:
            return self.err(10001, f"unknown path {path}")
        return handler(params)

    # -- public --------------------------------------------------------------------------------------
    def h_market_instruments_info(self, q: dict[str, Any]) -> web.Response:
        cat = q.get("category")
        launch = str(int(time.time() * 1000) - 86_400_000)
        if cat == "option" and q.get("baseCoin", "BTC") == "BTC":
            rows = [
                {
                    "symbol": s,
                    "status": "Trading",
                    "baseCoin": "BTC",
                    "quoteCoin": "USDC",
                    "settleCoin": "USDC",
                    "optionsType": "Call" if s.endswith("C") else "Put",
                    "launchTime": launch,
                    "deliveryTime": str(self.exp_ms),
                    "deliveryFeeRate": "0.00015",
                    "priceFilter": {"minPrice": "5", "maxPrice": "10000000", "tickSize": "5"},
                    "lotSizeFilter": {"maxOrderQty": "500", "minOrderQty": "0.01", "qtyStep": "0.01"},
                }
                for s in (self.call, self.put)
            ]
            return self.ok({"category": "option", "nextPageCursor": "", "list": rows})
        if cat == "linear" and q.get("status") != "PreLaunch":
            row = {
                "symbol": self.perp,
                "contractType": "LinearPerpetual",
                "status": "Trading",
                "baseCoin": "BTC",
                "quoteCoin": "USDT",
                "settleCoin": "USDT",
                "launchTime": launch,
                "deliveryTime": "0",
                "deliveryFeeRate": "",
                "priceScale": "2",
                "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                "priceFilter": {"minPrice": "0.10", "maxPrice": "199999.80", "tickSize": "0.10"},
                "lotSizeFilter": {
                    "maxOrderQty": "100.000",
                    "minOrderQty": "0.001",
                    "qtyStep": "0.001",
                    "postOnlyMaxOrderQty": "1000.000",
                    "minNotionalValue": "5",
                },
                "unifiedMarginTrade": True,
                "fundingInterval": 480,
                "copyTrading": "both",
            }
            rows = [row]
            if self.usdc_perp in self.books:
                rows.append({**row, "symbol": self.usdc_perp, "quoteCoin": "USDC", "settleCoin": "USDC"})
            return self.ok({"category": "linear", "nextPageCursor": "", "list": rows})
        return self.ok({"category": cat, "nextPageCursor": "", "list": []})

    def _ticker(self, sym: str) -> dict[str, Any]:
        bids, asks = self.books[sym]
        out = {
            "symbol": sym,
            "bid1Price": bids[0][0],
            "bid1Size": bids[0][1],
            "ask1Price": asks[0][0],
            "ask1Size": asks[0][1],
            "lastPrice": bids[0][0],
            "highPrice24h": asks[0][0],
            "lowPrice24h": bids[0][0],
            "markPrice": str((float(bids[0][0]) + float(asks[0][0])) / 2),
            "indexPrice": "60000",
            "openInterest": "12.5",
            "turnover24h": "1000",
            "volume24h": "3",
            "prevPrice24h": bids[0][0],
            "price24hPcnt": "0",
        }
        if not self._linear(sym):
            out.update(
                {
                    "bid1Iv": "0.54",
                    "ask1Iv": "0.56",
                    "markIv": "0.55",
                    "underlyingPrice": "60100",
                    "delta": "0.5" if sym.endswith("C") else "-0.5",
                    "gamma": "0.00002",
                    "vega": "60.5",
                    "theta": "-40.1",
                    "totalVolume": "10",
                    "totalTurnover": "600000",
                    "predictedDeliveryPrice": "0",
                    "change24h": "0",
                }
            )
        return out

    def h_market_tickers(self, q: dict[str, Any]) -> web.Response:
        syms = [q["symbol"]] if q.get("symbol") else [self.call, self.put]
        if any(s not in self.books for s in syms):
            return self.err(10001, "params error: symbol invalid")
        return self.ok({"category": q.get("category"), "list": [self._ticker(s) for s in syms]})

    def h_market_orderbook(self, q: dict[str, Any]) -> web.Response:
        bids, asks = self.books[q["symbol"]]
        return self.ok(
            {
                "s": q["symbol"],
                "b": [list(x) for x in bids],
                "a": [list(x) for x in asks],
                "ts": int(time.time() * 1000),
                "u": 1,
                "seq": 1,
            }
        )

    # -- private -------------------------------------------------------------------------------------
    def h_asset_coin_query_info(self, q: dict[str, Any]) -> web.Response:
        rows = [
            {
                "name": c,
                "coin": c,
                "remainAmount": "1000000",
                "chains": [
                    {
                        "chainType": c,
                        "confirmation": "1",
                        "withdrawFee": "0.0005",
                        "depositMin": "0",
                        "withdrawMin": "0.001",
                        "chain": c,
                        "chainDeposit": "1",
                        "chainWithdraw": "1",
                        "minAccuracy": "8",
                    }
                ],
            }
            for c in ("BTC", "USDC", "USDT")
        ]
        return self.ok({"rows": rows})

    def h_order_create(self, p: dict[str, Any]) -> web.Response:
        sym = p.get("symbol")
        if sym not in self.books:
            return self.err(10001, "params error: symbol invalid")
        if p.get("category") == "option" and not p.get("orderLinkId"):
            return self.err(10001, "orderLinkId is required for options")
        price = p.get("price")
        if price is not None and float(price) % 5 != 0 and not self._linear(sym):
            return self.err(110004, "Order price is not a multiple of the tick size")
        oid = f"b-{next(self._ids)}"
        now = str(int(time.time() * 1000))
        bids, asks = self.books[sym]
        best = asks[0][0] if p["side"] == "Buy" else bids[0][0]
        market = p.get("orderType") == "Market"
        crosses = market or (float(price) >= float(best) if p["side"] == "Buy" else float(price) <= float(best))
        self.orders[oid] = {
            "orderId": oid,
            "orderLinkId": p.get("orderLinkId", ""),
            "symbol": sym,
            "price": "0" if market else price,
            "qty": p["qty"],
            "side": p["side"],
            "orderStatus": "Filled" if crosses else "New",
            "orderType": p.get("orderType", "Limit"),
            "timeInForce": p.get("timeInForce", "GTC"),
            "cumExecQty": p["qty"] if crosses else "0",
            "leavesQty": "0" if crosses else p["qty"],
            "avgPrice": best if crosses else "",
            "cumExecFee": "0",
            "createdTime": now,
            "updatedTime": now,
            "reduceOnly": False,
            "category": p.get("category"),
            "positionIdx": 0,
        }
        if crosses:
            self._execute(self.orders[oid], p["qty"], best, maker=False)
        return self.ok({"orderId": oid, "orderLinkId": p.get("orderLinkId", "")})

    # -- what only the venue does (tests drive it) ---------------------------------------------------
    def _linear(self, sym: str) -> bool:
        return sym in (self.perp, self.usdc_perp)

    def category_of(self, sym: str) -> str:
        """Bybit category of a symbol of this fake."""
        return "linear" if self._linear(sym) else "option"

    def settle_of(self, sym: str) -> str:
        """Settle coin of a symbol of this fake."""
        return "USDT" if sym == self.perp else "USDC"

    def _execute(self, o: dict[str, Any], qty: str, price: str, maker: bool) -> None:
        self.execs.append(
            {
                "symbol": o["symbol"],
                "orderType": o["orderType"],
                "underlyingPrice": "",
                "orderLinkId": o["orderLinkId"],
                "side": o["side"],
                "indexPrice": "",
                "orderId": o["orderId"],
                "stopOrderType": "UNKNOWN",
                "leavesQty": o["leavesQty"],
                "execTime": str(int(time.time() * 1000)),
                "isMaker": maker,
                "execFee": self.exec_fee,
                "feeRate": "-0.0001" if self.exec_fee.startswith("-") else "0.0003",
                "execId": f"e-{len(self.execs) + 1}",
                "tradeIv": "",
                "blockTradeId": "",
                "markPrice": price,
                "execPrice": price,
                "markIv": "",
                "orderQty": o["qty"],
                "orderPrice": o["price"],
                "execValue": str(float(price) * float(qty)),
                "execType": "Trade",
                "execQty": qty,
                "closedSize": "",
                "category": o["category"],
            }
        )

    def fill_resting(self, oid: str, qty: str | None = None) -> None:
        """Someone trades against our resting order: all of it, or ``qty`` (then it stays partially filled)."""
        o = self.orders[oid]
        take = qty or o["leavesQty"]
        done = float(o["cumExecQty"]) + float(take)
        left = float(o["qty"]) - done
        o["cumExecQty"], o["leavesQty"] = repr(done), repr(max(left, 0.0))
        o["avgPrice"] = o["price"]
        o["orderStatus"] = "Filled" if left <= 1e-12 else "PartiallyFilled"
        o["updatedTime"] = str(int(time.time() * 1000))
        self._execute(o, take, o["price"], maker=True)

    def cancel_by_venue(self, oid: str) -> None:
        """The venue cancels our order (e.g. market-maker protection); fills so far stay."""
        o = self.orders[oid]
        o["orderStatus"], o["updatedTime"] = "Cancelled", str(int(time.time() * 1000))
        o["leavesQty"] = "0"

    def _open(self, oid: str) -> dict[str, Any] | None:
        o = self.orders.get(oid)
        return o if o is not None and o["orderStatus"] in ("New", "PartiallyFilled") else None

    def h_order_cancel(self, p: dict[str, Any]) -> web.Response:
        o = self._open(p.get("orderId", ""))
        if o is None:
            return self.err(110001, "order not exists or too late to cancel")
        o["orderStatus"], o["updatedTime"] = "Cancelled", str(int(time.time() * 1000))
        return self.ok({"orderId": o["orderId"], "orderLinkId": o["orderLinkId"]})

    def h_order_amend(self, p: dict[str, Any]) -> web.Response:
        o = self._open(p.get("orderId", ""))
        if o is None:
            return self.err(110001, "order not exists or too late to replace")
        if p.get("price"):
            o["price"] = p["price"]
        if p.get("qty"):
            o["qty"] = o["leavesQty"] = p["qty"]
        return self.ok({"orderId": o["orderId"], "orderLinkId": o["orderLinkId"]})

    def _scoped(self, name: str, q: dict[str, Any], rows: list[dict[str, Any]], need_settle: bool) -> Any:
        """Rows of the query's category (and settleCoin), or the error Bybit sends for a missing filter."""
        self.queries.append((name, dict(q)))
        cat = q.get("category")
        if cat not in ("linear", "inverse", "option", "spot"):
            return self.err(10001, "params error: category is invalid")
        if need_settle and cat == "linear" and not (q.get("symbol") or q.get("settleCoin") or q.get("baseCoin")):
            return self.err(10001, "Missing some parameters that must be filled in, symbol or settleCoin or baseCoin")
        rows = [r for r in rows if self.category_of(r["symbol"]) == cat]
        if q.get("symbol"):
            rows = [r for r in rows if r["symbol"] == q["symbol"]]
        if q.get("settleCoin"):
            rows = [r for r in rows if self.settle_of(r["symbol"]) == q["settleCoin"]]
        if q.get("baseCoin"):
            rows = [r for r in rows if r["symbol"].startswith(q["baseCoin"])]
        return rows

    def _list(self, q: dict[str, Any], rows: Any) -> web.Response:
        if isinstance(rows, web.Response):
            return rows
        return self.ok({"category": q.get("category"), "nextPageCursor": "", "list": rows})

    def h_order_realtime(self, q: dict[str, Any]) -> web.Response:
        rows = list(self.orders.values())
        if q.get("orderId"):  # one order by id: open or recently closed
            rows = [o for o in rows if o["orderId"] == q["orderId"]]
        else:
            rows = [o for o in rows if o["orderStatus"] in ("New", "PartiallyFilled")]
        return self._list(q, self._scoped("order/realtime", q, rows, need_settle=not q.get("orderId")))

    def h_order_history(self, q: dict[str, Any]) -> web.Response:
        rows = [o for o in self.orders.values() if q.get("orderId") in (None, o["orderId"])]
        rows = [o for o in rows if o["orderStatus"] not in ("New", "PartiallyFilled")]
        if q.get("orderStatus"):
            rows = [o for o in rows if o["orderStatus"] == q["orderStatus"]]
        return self._list(q, self._scoped("order/history", q, rows, need_settle=False))

    def h_execution_list(self, q: dict[str, Any]) -> web.Response:
        rows = [e for e in self.execs if int(e["execTime"]) >= int(q.get("startTime") or 0)]
        return self._list(q, self._scoped("execution/list", q, rows[::-1], need_settle=False))

    def h_position_list(self, q: dict[str, Any]) -> web.Response:
        net: dict[str, tuple[float, str]] = {}
        for e in self.execs:
            sign = 1 if e["side"] == "Buy" else -1
            net[e["symbol"]] = (net.get(e["symbol"], (0.0, ""))[0] + sign * float(e["execQty"]), e["execPrice"])
        now = str(int(time.time() * 1000))
        rows = [
            {
                "positionIdx": 0,
                "riskId": 1,
                "riskLimitValue": "",
                "symbol": sym,
                "side": "Buy" if size > 0 else "Sell",
                "size": repr(abs(size)),
                "avgPrice": price,
                "positionValue": repr(abs(size) * float(price)),
                "tradeMode": 0,
                "autoAddMargin": 0,
                "positionStatus": "Normal",
                "leverage": "",
                "markPrice": price,
                "liqPrice": "",
                "bustPrice": "",
                "positionIM": "0",
                "positionMM": "0",
                "unrealisedPnl": "0",
                "cumRealisedPnl": "0",
                "createdTime": now,
                "updatedTime": now,
            }
            for sym, (size, price) in net.items()
            if abs(size) > 1e-12
        ]
        return self._list(q, self._scoped("position/list", q, rows, need_settle=True))

    def h_account_wallet_balance(self, q: dict[str, Any]) -> web.Response:
        w = self.wallet
        coins = [
            {
                "coin": c,
                "equity": eq,
                "usdValue": eq,
                "walletBalance": eq,
                "availableToWithdraw": "",
                "locked": "0",
                "borrowAmount": "0",
                "accruedInterest": "0",
                "totalOrderIM": order_im,
                "totalPositionIM": pos_im,
                "totalPositionMM": pos_mm,
                "unrealisedPnl": "0",
                "cumRealisedPnl": "0",
                "bonus": "0",
                "marginCollateral": True,
                "collateralSwitch": True,
            }
            for c, (eq, pos_im, pos_mm, order_im) in w["coins"].items()
        ]
        account = {
            "accountType": q.get("accountType", "UNIFIED"),
            "totalEquity": "1500",
            "accountIMRate": "0.1217",
            "totalMarginBalance": "1500",
            "totalInitialMargin": w["totalInitialMargin"],
            "totalAvailableBalance": "1317.4",
            "accountMMRate": "0.0003",
            "totalPerpUPL": "0",
            "totalWalletBalance": "1500",
            "accountLTV": "0",
            "totalMaintenanceMargin": w["totalMaintenanceMargin"],
            "coin": coins,
        }
        return self.ok({"list": [account]})
