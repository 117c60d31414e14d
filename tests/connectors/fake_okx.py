"""A minimal loopback OKX v5 REST venue: the endpoints ccxt's ``okx`` calls for options, in OKX's wire format.

Signatures are checked as OKX documents them: ``OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp + METHOD +
requestPath(+query) + body))`` with key, passphrase and an ISO timestamp within 30 s. Envelopes are
``{"code": "0", "msg": "", "data": [...]}``; order errors carry ``sCode``/``sMsg`` per item.

Private lists filter as OKX documents: /trade/orders-history and /trade/fills-history REQUIRE ``instType`` (SPOT,
MARGIN, SWAP, FUTURES, OPTION) and return only rows of it; ``instFamily`` and (orders-history) ``state`` narrow
further; /trade/orders-pending and /account/positions take them optionally. Fees are signed as OKX sends them:
negative = charged, positive = rebate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import WSMsgType, web

KEY, SECRET, PASSPHRASE = "okx-key", "okx-secret", "okx-pass"


def _expiry(days: int) -> datetime:
    d = (datetime.now(timezone.utc) + timedelta(days=days)).replace(hour=8, minute=0, second=0, microsecond=0)
    while d.weekday() != 4:
        d += timedelta(days=1)
    return d


class FakeOkx:
    """BTC-USD options (0.01 BTC contracts) and the BTC-USD-SWAP, with resting orders and market fills."""

    def __init__(self) -> None:
        exp = _expiry(20)
        self.exp_ms = int(exp.timestamp() * 1000)
        ymd = exp.strftime("%y%m%d")
        self.call = f"BTC-USD-{ymd}-60000-C"
        self.put = f"BTC-USD-{ymd}-60000-P"
        self.swap = "BTC-USD-SWAP"
        self.books = {
            self.call: ([("0.0400", "50")], [("0.0420", "40")]),
            self.put: ([("0.0300", "50")], [("0.0320", "40")]),
            self.swap: ([("59999.9", "1000")], [("60000.1", "1000")]),
        }
        self.orders: dict[str, dict[str, Any]] = {}
        self.fills: list[dict[str, Any]] = []  # our fills, newest last (fills-history rows)
        self.fill_fee = "-0.00001"  # fee of the next fill as OKX sends it (negative: charged; positive: rebate)
        self.positions: list[dict[str, Any]] | None = None  # /account/positions rows; None: net rows from our fills
        self.queries: list[tuple[str, dict[str, Any]]] = []  # private list queries as sent
        # /account/balance: account-level figures (USD; OKX fills imr/mmr/adjEq in multi-currency and portfolio
        # margin modes, "" in futures mode) and per-currency rows (imr/mmr in the currency: futures mode, cross)
        self.account: dict[str, str] = {"adjEq": "", "imr": "", "mmr": "", "mgnRatio": "", "totalEq": "90000"}
        self.details: dict[str, dict[str, str]] = {
            "BTC": {"eq": "1.5", "cashBal": "1.45", "availEq": "1.488", "imr": "0.012", "mmr": "0.004", "upl": "0.05"}
        }
        self._ids = itertools.count(1000)
        self.log: list[tuple[str, str]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/api/v5/{path:.*}", self.handle)
        self.app.router.add_get("/ws/v5/public", self.ws_public)
        self.sockets: list[tuple[web.WebSocketResponse, set[tuple[str, str]]]] = []
        self.seqs: dict[str, int] = {}
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> FakeOkx:
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
        return f"ws://127.0.0.1:{self.port}/ws/v5"

    # -- public websocket (tickers, books) ---------------------------------------------------------
    async def ws_public(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        subs: set[tuple[str, str]] = set()
        entry = (ws, subs)
        self.sockets.append(entry)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if msg.data == "ping":
                    await ws.send_str("pong")
                    continue
                m = json.loads(msg.data)
                if m.get("op") != "subscribe":
                    continue
                for arg in m.get("args", []):
                    channel, inst_id = arg.get("channel"), arg.get("instId")
                    if inst_id not in self.books or channel not in ("tickers", "books"):
                        await ws.send_json(
                            {
                                "event": "error",
                                "code": "60018",
                                "msg": f"Wrong URL or {channel} doesn't exist",
                                "connId": "c1",
                            }
                        )
                        continue
                    subs.add((channel, inst_id))
                    await ws.send_json({"event": "subscribe", "arg": arg, "connId": "c1"})
                    await self._push(ws, channel, inst_id, snapshot=True)
        finally:
            self.sockets.remove(entry)
        return ws

    async def _push(self, ws: web.WebSocketResponse, channel: str, inst_id: str, snapshot: bool = False) -> None:
        arg = {"channel": channel, "instId": inst_id}
        if channel == "tickers":
            await ws.send_json({"arg": arg, "data": [self._ticker(inst_id)]})
            return
        bids, asks = self.books[inst_id]
        prev = self.seqs.get(inst_id, 0)
        self.seqs[inst_id] = prev + 1
        data = {
            "asks": [[p, s, "0", "1"] for p, s in asks],
            "bids": [[p, s, "0", "1"] for p, s in bids],
            "ts": str(int(time.time() * 1000)),
            "checksum": 0,
            "seqId": prev + 1,
            "prevSeqId": -1 if snapshot else prev,
        }
        await ws.send_json({"arg": arg, "action": "snapshot" if snapshot else "update", "data": [data]})

    async def move(self, inst_id: str, bid: str, ask: str) -> None:
        """The market moves: new top of book, pushed to subscribers (book as a full-level update)."""
        old_bids, old_asks = self.books[inst_id]
        self.books[inst_id] = ([(bid, old_bids[0][1])], [(ask, old_asks[0][1])])
        for ws, subs in list(self.sockets):
            for channel, iid in list(subs):
                if iid == inst_id:
                    if channel == "books":  # delete the old levels, add the new ones
                        arg = {"channel": channel, "instId": inst_id}
                        prev = self.seqs.get(inst_id, 0)
                        self.seqs[inst_id] = prev + 1
                        data = {
                            "asks": [[old_asks[0][0], "0", "0", "0"], [ask, old_asks[0][1], "0", "1"]],
                            "bids": [[old_bids[0][0], "0", "0", "0"], [bid, old_bids[0][1], "0", "1"]],
                            "ts": str(int(time.time() * 1000)),
                            "checksum": 0,
                            "seqId": prev + 1,
                            "prevSeqId": prev,
                        }
                        await ws.send_json({"arg": arg, "action": "update", "data": [data]})
                    else:
                        await self._push(ws, channel, inst_id)

    async def drop(self) -> int:
        """Close every websocket (the venue restarts its gateways)."""
        n = len(self.sockets)
        for ws, _ in list(self.sockets):
            await ws.close()
        return n

    # -- wire ----------------------------------------------------------------------------------------
    @staticmethod
    def ok(data: list[Any]) -> web.Response:
        return web.json_response({"code": "0", "msg": "", "data": data})

    @staticmethod
    def err(code: str, msg: str, items: list[dict[str, Any]] | None = None) -> web.Response:
        return web.json_response({"code": code, "msg": msg, "data": items or []})

    def _auth(self, request: web.Request, body: str) -> web.Response | None:
        h = request.headers
        if h.get("OK-ACCESS-KEY") != KEY or h.get("OK-ACCESS-PASSPHRASE") != PASSPHRASE:
            return self.err("50111", "Invalid OK-ACCESS-KEY")
        ts = h.get("OK-ACCESS-TIMESTAMP", "")
        try:
            sent = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return self.err("50112", "Invalid OK-ACCESS-TIMESTAMP")
        if abs(time.time() - sent) > 30:
            return self.err("50102", "Timestamp request expired")
        prehash = ts + request.method + request.path_qs + body
        expected = base64.b64encode(hmac.new(SECRET.encode(), prehash.encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, h.get("OK-ACCESS-SIGN", "")):
            return self.err("50113", "Invalid Sign")
        return None

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.text()
        self.log.append((request.method, path))
        q = dict(request.query)
        private = path.startswith(("trade/", "account/", "asset/"))
        if private:
            denied = self._auth(request, body)
            if denied is not None:
                return denied
        params: Any = json.loads(body) if body else {}
        handler = getattr(self, "h_" + path.replace("/", "_").replace("-", "_"), None)
        if handler is None:
            return self.err("50030", f"no such endpoint {path}")
        return handler(q if request.method == "GET" else params)

    # -- public --------------------------------------------------------------------------------------
    def _inst(self, inst_id: str) -> dict[str, Any]:
        ts = str(int(time.time() * 1000) - 86_400_000)
        if inst_id == self.swap:
            return {
                "instType": "SWAP",
                "instId": inst_id,
                "uly": "BTC-USD",
                "instFamily": "BTC-USD",
                "baseCcy": "",
                "quoteCcy": "",
                "settleCcy": "BTC",
                "ctVal": "100",
                "ctMult": "1",
                "ctValCcy": "USD",
                "optType": "",
                "stk": "",
                "listTime": ts,
                "expTime": "",
                "lever": "100",
                "tickSz": "0.1",
                "lotSz": "1",
                "minSz": "1",
                "ctType": "inverse",
                "state": "live",
                "maxLmtSz": "100000",
            }
        return {
            "instType": "OPTION",
            "instId": inst_id,
            "uly": "BTC-USD",
            "instFamily": "BTC-USD",
            "baseCcy": "",
            "quoteCcy": "",
            "settleCcy": "BTC",
            "ctVal": "0.01",
            "ctMult": "1",
            "ctValCcy": "BTC",
            "optType": inst_id[-1],
            "stk": "60000",
            "listTime": ts,
            "expTime": str(self.exp_ms),
            "lever": "",
            "tickSz": "0.0005",
            "lotSz": "1",
            "minSz": "1",
            "ctType": "",
            "state": "live",
            "maxLmtSz": "10000",
        }

    def h_public_instruments(self, q: dict[str, Any]) -> web.Response:
        kind = q.get("instType")
        if kind == "SWAP":
            return self.ok([self._inst(self.swap)])
        if kind == "OPTION" and q.get("uly", "BTC-USD") == "BTC-USD":
            return self.ok([self._inst(self.call), self._inst(self.put)])
        return self.ok([])

    def _ticker(self, inst_id: str) -> dict[str, Any]:
        bids, asks = self.books[inst_id]
        return {
            "instType": "OPTION" if inst_id != self.swap else "SWAP",
            "instId": inst_id,
            "last": bids[0][0],
            "lastSz": "1",
            "askPx": asks[0][0],
            "askSz": asks[0][1],
            "bidPx": bids[0][0],
            "bidSz": bids[0][1],
            "open24h": bids[0][0],
            "high24h": asks[0][0],
            "low24h": bids[0][0],
            "volCcy24h": "10",
            "vol24h": "1000",
            "ts": str(int(time.time() * 1000)),
            "sodUtc0": bids[0][0],
            "sodUtc8": bids[0][0],
        }

    def h_market_ticker(self, q: dict[str, Any]) -> web.Response:
        if q.get("instId") not in self.books:
            return self.err("51001", "Instrument ID does not exist")
        return self.ok([self._ticker(q["instId"])])

    def h_market_tickers(self, q: dict[str, Any]) -> web.Response:
        return self.ok([self._ticker(i) for i in (self.call, self.put)] if q.get("instType") == "OPTION" else [])

    def h_public_opt_summary(self, q: dict[str, Any]) -> web.Response:
        ts = str(int(time.time() * 1000))
        rows = []
        for inst_id, sign in ((self.call, 1), (self.put, -1)):
            rows.append(
                {
                    "instType": "OPTION",
                    "instId": inst_id,
                    "uly": "BTC-USD",
                    "delta": str(0.45 * sign),
                    "gamma": "1.2",
                    "vega": "0.0011",
                    "theta": "-0.0009",
                    "deltaBS": str(0.5 * sign),
                    "gammaBS": "0.00002",
                    "vegaBS": "60.5",
                    "thetaBS": "-40.1",
                    "lever": "25",
                    "markVol": "0.55",
                    "bidVol": "0.54",
                    "askVol": "0.56",
                    "realVol": "",
                    "volLv": "0.55",
                    "fwdPx": "60100",
                    "ts": ts,
                }
            )
        return self.ok(rows)

    def h_public_open_interest(self, q: dict[str, Any]) -> web.Response:
        # instType required; for OPTION uly or instFamily too (OKX's documented filters)
        kind = q.get("instType")
        if kind not in ("SWAP", "FUTURES", "OPTION"):
            return self.err("50014", "Parameter instType can not be empty")
        if kind == "OPTION" and not (q.get("uly") or q.get("instFamily")):
            return self.err("50014", "Parameter uly or instFamily can not be empty")
        ts = str(int(time.time() * 1000))
        rows = [
            {"instType": self.inst_type(i), "instId": i, "oi": oi, "oiCcy": ccy, "oiUsd": "0", "ts": ts}
            for i, oi, ccy in ((self.call, "300", "3"), (self.put, "120", "1.2"), (self.swap, "5000", "8.33"))
            if self.inst_type(i) == kind and q.get("instId") in (None, i)
        ]
        return self.ok(rows)

    def h_market_books(self, q: dict[str, Any]) -> web.Response:
        bids, asks = self.books[q["instId"]]
        return self.ok(
            [
                {
                    "asks": [[p, s, "0", "1"] for p, s in asks],
                    "bids": [[p, s, "0", "1"] for p, s in bids],
                    "ts": str(int(time.time() * 1000)),
                }
            ]
        )

    # -- private -------------------------------------------------------------------------------------
    def h_asset_currencies(self, q: dict[str, Any]) -> web.Response:
        return self.ok(
            [
                {
                    "ccy": c,
                    "name": c,
                    "chain": f"{c}-{c}",
                    "canDep": True,
                    "canWd": True,
                    "canInternal": True,
                    "minWd": "0.001",
                    "maxWd": "100",
                    "wdTickSz": "8",
                    "minFee": "0.0001",
                    "maxFee": "0.001",
                    "mainNet": True,
                }
                for c in ("BTC", "USDT")
            ]
        )

    def h_account_balance(self, q: dict[str, Any]) -> web.Response:
        now = str(int(time.time() * 1000))
        details = [
            {
                "availBal": "",
                "availEq": row["availEq"],
                "cashBal": row["cashBal"],
                "ccy": ccy,
                "crossLiab": "",
                "disEq": "0",
                "eq": row["eq"],
                "eqUsd": "0",
                "fixedBal": "0",
                "frozenBal": "0",
                "imr": row["imr"],
                "interest": "",
                "isoEq": "0",
                "isoLiab": "",
                "isoUpl": "0",
                "liab": "",
                "maxLoan": "",
                "mgnRatio": "",
                "mmr": row["mmr"],
                "notionalLever": "0",
                "ordFrozen": "0",
                "twap": "0",
                "uTime": now,
                "upl": row["upl"],
                "uplLiab": "",
            }
            for ccy, row in self.details.items()
            if q.get("ccy") in (None, ccy)
        ]
        return self.ok(
            [{**self.account, "details": details, "isoEq": "0", "notionalUsd": "", "ordFroz": "", "uTime": now}]
        )

    def h_trade_order(self, p: dict[str, Any]) -> web.Response:
        if "ordId" in p and "side" not in p:  # GET /trade/order
            o = self.orders.get(p["ordId"])
            return self.ok([o]) if o else self.err("51603", "Order does not exist")
        item = self._place(p)
        return self.ok([item]) if item["sCode"] == "0" else self.err("1", "Operation failed", [item])

    def h_trade_batch_orders(self, p: list[dict[str, Any]]) -> web.Response:
        items = [self._place(x) for x in p]
        if all(i["sCode"] == "0" for i in items):
            return self.ok(items)
        return self.err("1" if len(items) == 1 else "2", "Operation failed", items)

    def _place(self, p: dict[str, Any]) -> dict[str, Any]:
        inst_id = p.get("instId")
        if inst_id not in self.books:
            return {"sCode": "51001", "sMsg": "Instrument ID does not exist", "ordId": "", "clOrdId": ""}
        sz = float(p["sz"])
        if sz != int(sz) or sz < 1:
            return {"sCode": "51121", "sMsg": "Order quantity must be a multiple of the lot size", "ordId": ""}
        cl = p.get("clOrdId", "")
        if cl and not cl.isalnum():
            return {"sCode": "51000", "sMsg": "Parameter clOrdId error", "ordId": ""}
        oid = str(next(self._ids))
        now = str(int(time.time() * 1000))
        bids, asks = self.books[inst_id]
        market = p.get("ordType") == "market"
        best = asks[0][0] if p["side"] == "buy" else bids[0][0]
        crosses = market or (float(p["px"]) >= float(best) if p["side"] == "buy" else float(p["px"]) <= float(best))
        self.orders[oid] = {
            "instType": self.inst_type(inst_id),
            "instId": inst_id,
            "ordId": oid,
            "clOrdId": cl,
            "tag": p.get("tag", ""),
            "px": "" if market else p["px"],
            "sz": p["sz"],
            "ordType": p.get("ordType", "limit"),
            "side": p["side"],
            "posSide": "net",
            "tdMode": p.get("tdMode", "cross"),
            "state": "filled" if crosses else "live",
            "accFillSz": p["sz"] if crosses else "0",
            "fillPx": best if crosses else "",
            "avgPx": best if crosses else "",
            "fee": "0",
            "feeCcy": "BTC",
            "cTime": now,
            "uTime": now,
            "reduceOnly": "false",
            "category": "normal",
            "instFamily": "BTC-USD",
        }
        if crosses:
            self._fill(self.orders[oid], p["sz"], best, maker=False)
        return {"ordId": oid, "clOrdId": cl, "tag": p.get("tag", ""), "ts": now, "sCode": "0", "sMsg": ""}

    def h_trade_cancel_order(self, p: dict[str, Any]) -> web.Response:
        o = self.orders.get(p.get("ordId", ""))
        if o is None or o["state"] not in ("live", "partially_filled"):
            return self.err(
                "1",
                "Operation failed",
                [
                    {
                        "ordId": p.get("ordId"),
                        "sCode": "51400",
                        "sMsg": "Cancellation failed as the order has been filled, canceled or does not exist",
                    }
                ],
            )
        o["state"], o["uTime"] = "canceled", str(int(time.time() * 1000))
        return self.ok([{"ordId": o["ordId"], "clOrdId": o["clOrdId"], "sCode": "0", "sMsg": ""}])

    def h_trade_amend_order(self, p: dict[str, Any]) -> web.Response:
        o = self.orders.get(p.get("ordId", ""))
        if o is None or o["state"] not in ("live", "partially_filled"):
            return self.err(
                "1",
                "Operation failed",
                [
                    {
                        "ordId": p.get("ordId"),
                        "sCode": "51503",
                        "sMsg": "Order modification failed as the order has been filled, canceled or does not exist",
                    }
                ],
            )
        if p.get("newPx"):
            o["px"] = p["newPx"]
        if p.get("newSz"):
            o["sz"] = p["newSz"]
        o["uTime"] = str(int(time.time() * 1000))
        return self.ok([{"ordId": o["ordId"], "clOrdId": o["clOrdId"], "reqId": "", "sCode": "0", "sMsg": ""}])

    # -- history, fills, positions ---------------------------------------------------------------------
    def inst_type(self, inst_id: str) -> str:
        """OKX instType of an instrument of this fake."""
        return "SWAP" if inst_id == self.swap else "OPTION"

    def _fill(self, o: dict[str, Any], sz: str, px: str, maker: bool) -> None:
        n = len(self.fills) + 1
        self.fills.append(
            {
                "instType": o["instType"],
                "instId": o["instId"],
                "instFamily": "BTC-USD",
                "tradeId": f"t{o['ordId']}-{n}",
                "ordId": o["ordId"],
                "clOrdId": o["clOrdId"],
                "billId": f"b{n}",
                "subType": "1",
                "tag": "",
                "fillPx": px,
                "fillSz": sz,
                "fillIdxPx": "60000",
                "fillPnl": "0",
                "fillPxVol": "",
                "fillPxUsd": "",
                "fillMarkVol": "",
                "fillFwdPx": "",
                "fillMarkPx": px,
                "side": o["side"],
                "posSide": "net",
                "execType": "M" if maker else "T",
                "feeCcy": "BTC",
                "fee": self.fill_fee,
                "ts": str(int(time.time() * 1000)),
                "fillTime": str(int(time.time() * 1000)),
            }
        )

    def fill_resting(self, oid: str, sz: str | None = None) -> None:
        """Someone trades against our resting order: all of it, or ``sz`` contracts (then partially filled)."""
        o = self.orders[oid]
        take = sz or str(int(float(o["sz"]) - float(o["accFillSz"])))
        done = float(o["accFillSz"]) + float(take)
        o["accFillSz"] = str(int(done))
        o["fillPx"] = o["avgPx"] = o["px"]
        o["state"] = "filled" if done >= float(o["sz"]) else "partially_filled"
        o["uTime"] = str(int(time.time() * 1000))
        self._fill(o, take, o["px"], maker=True)

    def cancel_by_venue(self, oid: str) -> None:
        """The venue cancels our order (market-maker protection, expiry); fills so far stay."""
        o = self.orders[oid]
        o["state"], o["uTime"] = "canceled", str(int(time.time() * 1000))

    def _filtered(self, name: str, q: dict[str, Any], rows: list[dict[str, Any]], required: bool) -> Any:
        self.queries.append((name, dict(q)))
        if required and not q.get("instType"):
            return self.err("50014", "Parameter instType can not be empty")
        for key in ("instType", "instFamily", "instId", "ordId"):
            if q.get(key):
                rows = [r for r in rows if r.get(key) == q[key]]
        return rows

    def _answer(self, rows: Any) -> web.Response:
        return rows if isinstance(rows, web.Response) else self.ok(rows)

    def h_trade_orders_pending(self, q: dict[str, Any]) -> web.Response:
        live = [o for o in self.orders.values() if o["state"] in ("live", "partially_filled")]
        return self._answer(self._filtered("orders-pending", q, live, required=False))

    def h_trade_orders_history(self, q: dict[str, Any]) -> web.Response:
        ended = [o for o in self.orders.values() if o["state"] not in ("live", "partially_filled")]
        if q.get("state"):
            ended = [o for o in ended if o["state"] == q["state"]]
        return self._answer(self._filtered("orders-history", q, ended[::-1], required=True))

    def h_trade_fills_history(self, q: dict[str, Any]) -> web.Response:
        rows = [f for f in self.fills if int(f["ts"]) >= int(q.get("begin") or 0)]
        return self._answer(self._filtered("fills-history", q, rows[::-1], required=True))

    def h_account_positions(self, q: dict[str, Any]) -> web.Response:
        rows = self.positions if self.positions is not None else self._net_positions()
        return self._answer(self._filtered("positions", q, rows, required=False))

    def _net_positions(self) -> list[dict[str, Any]]:
        net: dict[str, tuple[float, str]] = {}
        for f in self.fills:
            sign = 1 if f["side"] == "buy" else -1
            net[f["instId"]] = (net.get(f["instId"], (0.0, ""))[0] + sign * float(f["fillSz"]), f["fillPx"])
        now = str(int(time.time() * 1000))
        return [
            position_row(inst_id, self.inst_type(inst_id), "net", str(int(size)), px, now)
            for inst_id, (size, px) in net.items()
            if size
        ]


def position_row(inst_id: str, inst_type: str, pos_side: str, pos: str, avg_px: str, ts: str) -> dict[str, Any]:
    """An /account/positions row as OKX sends it (``pos`` in contracts; signed in net mode, positive per leg in
    long/short mode)."""
    return {
        "adl": "1",
        "availPos": pos.lstrip("-"),
        "avgPx": avg_px,
        "cTime": ts,
        "ccy": "BTC",
        "deltaBS": "",
        "deltaPA": "",
        "gammaBS": "",
        "gammaPA": "",
        "imr": "",
        "instId": inst_id,
        "instFamily": "BTC-USD",
        "instType": inst_type,
        "interest": "0",
        "last": avg_px,
        "lever": "10",
        "liab": "",
        "liabCcy": "",
        "liqPx": "",
        "markPx": avg_px,
        "margin": "",
        "mgnMode": "cross",
        "mgnRatio": "",
        "mmr": "",
        "notionalUsd": "100",
        "optVal": "",
        "pos": pos,
        "posCcy": "",
        "posId": f"{inst_id}-{pos_side}",
        "posSide": pos_side,
        "thetaBS": "",
        "thetaPA": "",
        "tradeId": "1",
        "uTime": ts,
        "upl": "0",
        "uplRatio": "0",
        "vegaBS": "",
        "vegaPA": "",
    }
