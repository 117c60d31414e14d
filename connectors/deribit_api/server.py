"""The embedded venue served over Deribit's API v2: JSON-RPC over HTTP (GET and POST) and websocket.

    server = DeribitApiServer(backend, credentials=Credentials("key", "secret"))
    await server.start("127.0.0.1", 8765)     # http://127.0.0.1:8765/api/v2/..., ws://127.0.0.1:8765/ws/api/v2
    ...
    await server.stop()

Any Deribit client (ccxt, a bot) paper-trades against it by changing its base URL. Subscriptions follow
Deribit's channel names (``ticker.{name}.{interval}``, ``book.{name}.{interval}``, ``trades.{name}.{interval}``,
``deribit_price_index.{index}``, ``user.orders.*``, ``user.trades.*``, ``user.portfolio.{currency}``); ``100ms``
channels are coalesced and flushed every 100 ms (wall time), ``raw`` ones are sent at once. Books are sent as a
snapshot then ``change`` messages whose ``prev_change_id`` equals the previous ``change_id``; the change ids are
one sequence per instrument shared with ``public/get_order_book``, so a REST snapshot chains into the stream.
Grouped books (``book.{name}.none.{depth}.{interval}``) are full snapshots of ``depth`` levels.

``user.changes.*`` is not served: deribit.md does not document its notification, and an unsupported channel is
left out of the subscribe answer, which is what Deribit answers for a channel it cannot subscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from app.domain import BookUpdate, Event, FillEvent, IndexPrice, Instrument, OrderUpdate, Quote, Trade
from connectors.base import Credentials
from connectors.deribit_api import shapes
from connectors.deribit_api.auth import Authenticator, Session
from connectors.deribit_api.backend import ApiBackend, BookView, MarkSource
from connectors.deribit_api.methods import Methods
from connectors.deribit_api.tape import TradeInfo
from connectors.deribit_api.wire import (
    BAD_REQUEST,
    INTERNAL,
    PARSE_ERROR,
    TOO_MANY_REQUESTS,
    RpcError,
    envelope,
    invalid_param,
    notification,
)

log = logging.getLogger(__name__)

FLUSH_S = 0.1
TOPICS = ("quote", "book_update", "trade", "index_price", "order_update", "fill_event")
BOOK_INTERVALS = ("raw", "100ms", "agg2")
GROUPED_DEPTHS = ("1", "10", "20")


@dataclass(slots=True)
class RateLimit:
    """A token bucket of request credits per client connection (Deribit-style): ``rate`` per s, ``burst`` max."""

    rate: float = 50.0
    burst: float = 100.0
    _tokens: float = -1.0
    _at: float = 0.0

    def take(self, now_s: float) -> bool:
        """Spend one credit; False when none is left."""
        if self._tokens < 0:
            self._tokens, self._at = self.burst, now_s
        self._tokens = min(self.burst, self._tokens + (now_s - self._at) * self.rate)
        self._at = now_s
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    session: Session | None = None
    channels: set[str] = field(default_factory=set)
    book_ready: set[str] = field(default_factory=set)  # book channels whose snapshot was sent: changes follow
    pending: dict[str, Any] = field(default_factory=dict)  # channel -> data (100ms channels, coalesced)
    lists: dict[str, list[Any]] = field(default_factory=dict)  # channel -> items (trades, orders)
    limit: RateLimit = field(default_factory=RateLimit)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    heartbeat: asyncio.Task[None] | None = None
    last_seen: float = 0.0  # monotonic seconds of the client's last message

    async def send(self, payload: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        async with self.lock:
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await self.ws.send_str(json.dumps(payload, separators=(",", ":")))


@dataclass(slots=True)
class _BookState:
    bids: dict[float, float]
    asks: dict[float, float]
    change_id: int
    ts: int


class DeribitApiServer:
    """An aiohttp server answering Deribit's public and private JSON-RPC methods from an :class:`ApiBackend`."""

    def __init__(
        self,
        backend: ApiBackend,
        *,
        credentials: Credentials | list[tuple[Credentials, str]] | None = None,
        rate: float = 50.0,
        burst: float = 100.0,
        book_depth: int = 1000,
        min_heartbeat_s: float = 10.0,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.backend = backend
        self.auth = Authenticator(wall_ms=wall_ms)
        if isinstance(credentials, Credentials):
            self.auth.add_client(credentials, "main")
        elif credentials:
            for creds, account in credentials:
                self.auth.add_client(creds, account)
        self.methods = Methods(backend, started_ms=backend.now_ms())
        self.rate, self.burst, self.book_depth = rate, burst, book_depth
        self.min_heartbeat_s = min_heartbeat_s
        self._http_limits: dict[str, RateLimit] = {}
        self._conns: set[_Conn] = set()
        # Every book a client has seen (REST or websocket), kept so its change ids never restart.
        self._books: dict[str, _BookState] = {}
        self._book_lock = asyncio.Lock()  # one book change at a time: each client sees change ids in order
        self._dirty: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sub: Any = None
        # Events read off the bus but not yet routed, with the tape's info of each public trade.
        self._backlog: deque[tuple[Event, TradeInfo | None]] = deque()
        self._queued = asyncio.Event()  # set when the backlog has events to route
        self._marks = backend if isinstance(backend, MarkSource) else None
        self.methods.absorb = self._absorb
        self.methods.book_feed = self._book_view
        self.port: int | None = None
        self.host = "127.0.0.1"
        self.dropped_connections = 0
        self.requests = 0
        self.app = web.Application()
        self.app.router.add_get("/api/v2/{scope}/{method}", self._http)
        self.app.router.add_post("/api/v2/{scope}/{method}", self._http)
        self.app.router.add_post("/api/v2", self._http_body)
        self.app.router.add_post("/api/v2/", self._http_body)
        self.app.router.add_get("/ws/api/v2", self._ws)
        self.app.router.add_get("/ws/api/v2/", self._ws)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> DeribitApiServer:
        """Bind and serve; ``port=0`` picks a free port (read :attr:`port`)."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.host = host
        self._sub = self.backend.subscribe(TOPICS)
        self._tasks = [
            asyncio.create_task(self._read()),
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._flusher()),
        ]
        return self

    async def stop(self) -> None:
        """Close every connection and stop serving; idempotent."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.close()
        if getattr(self, "_sub", None) is not None:
            self._sub.close()
            self._sub = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def rest_url(self) -> str:
        """Base URL for REST clients (ccxt ``urls['api']['rest']``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Websocket URL (ccxt ``urls['api']['ws']``)."""
        return f"ws://{self.host}:{self.port}/ws/api/v2"

    async def drop_websockets(self) -> int:
        """Close every websocket abruptly (tests of reconnects); returns how many were dropped."""
        conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1012, message=b"server restart")
        self.dropped_connections += len(conns)
        return len(conns)

    @property
    def connections(self) -> int:
        """Open websocket connections."""
        return len(self._conns)

    # -- HTTP -------------------------------------------------------------------------------------
    def _limited(self, key: str) -> bool:
        bucket = self._http_limits.setdefault(key, RateLimit(self.rate, self.burst))
        return not bucket.take(time.monotonic())

    async def _http(self, request: web.Request) -> web.Response:
        us_in = time.time_ns() // 1000
        scope, method = request.match_info["scope"], request.match_info["method"]
        request_id: Any = None
        body = ""
        try:
            if request.method == "POST":
                body = await request.text()
                params, request_id = _parse_body(body)
            else:
                params = dict(request.query)
            result = await self._dispatch_http(request, scope, method, params, body)
            return web.json_response(envelope(request_id, result=result, us_in=us_in))
        except RpcError as err:
            return web.json_response(envelope(request_id, error=err, us_in=us_in), status=400)
        except Exception:  # a bug must still answer in the venue's shape
            log.exception("internal error in %s/%s", scope, method)
            return web.json_response(
                envelope(request_id, error=RpcError(INTERNAL, "internal_server_error"), us_in=us_in), status=500
            )

    async def _http_body(self, request: web.Request) -> web.Response:
        us_in = time.time_ns() // 1000
        body = await request.text()
        request_id: Any = None
        try:
            msg = json.loads(body)
            request_id = msg.get("id")
            scope, _, method = str(msg.get("method", "")).partition("/")
            params = msg.get("params") or {}
            result = await self._dispatch_http(request, scope, method, params, body)
            return web.json_response(envelope(request_id, result=result, us_in=us_in))
        except (json.JSONDecodeError, AttributeError):
            return web.json_response(
                envelope(None, error=RpcError(PARSE_ERROR, "Parse error"), us_in=us_in), status=400
            )
        except RpcError as err:
            return web.json_response(envelope(request_id, error=err, us_in=us_in), status=400)

    async def _dispatch_http(
        self, request: web.Request, scope: str, method: str, params: dict[str, Any], body: str
    ) -> Any:
        self.requests += 1
        peer = request.remote or "?"
        if self._limited(peer):
            raise RpcError(TOO_MANY_REQUESTS, "too_many_requests")
        if scope == "public" and method == "auth":
            _, result = self.auth.auth(params)
            return result
        if scope == "public" and method in ("subscribe", "unsubscribe", "set_heartbeat"):
            raise RpcError(10030, "must_be_websocket_request")
        session = None
        if scope == "private":
            token = params.pop("access_token", None)
            if token:
                session = self.auth.session_of_token(str(token))
            else:
                session = self.auth.session_of_header(
                    request.headers.get("Authorization", ""), request.method, request.path_qs, body
                )
        return await self.methods.call(scope, method, params, session)

    # -- websocket --------------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = _Conn(ws, limit=RateLimit(self.rate, self.burst))
        self._conns.add(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                conn.last_seen = time.monotonic()
                await self._ws_message(conn, msg.data)
        finally:
            self._conns.discard(conn)
            if conn.heartbeat is not None:
                conn.heartbeat.cancel()
        return ws

    def _set_heartbeat(self, conn: _Conn, params: dict[str, Any]) -> str:
        try:
            interval = float(params.get("interval", 0))
        except (TypeError, ValueError):
            raise invalid_param("interval", "must be a number of seconds") from None
        if interval < self.min_heartbeat_s:
            raise invalid_param("interval", f"must be at least {self.min_heartbeat_s:g} seconds")
        if conn.heartbeat is not None:
            conn.heartbeat.cancel()
        conn.last_seen = time.monotonic()
        conn.heartbeat = asyncio.create_task(self._heartbeat(conn, interval))
        return "ok"

    async def _heartbeat(self, conn: _Conn, interval: float) -> None:
        # Deribit: a test_request every interval; a client silent for longer than that is disconnected.
        while not conn.ws.closed:
            await asyncio.sleep(interval)
            if time.monotonic() - conn.last_seen > 2 * interval:
                await conn.ws.close(code=1000, message=b"heartbeat timeout")
                return
            await conn.send({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}})

    async def _ws_message(self, conn: _Conn, text: str) -> None:
        us_in = time.time_ns() // 1000
        try:
            msg = json.loads(text)
            if not isinstance(msg, dict):
                raise ValueError("not an object")
        except ValueError:
            await conn.send(envelope(None, error=RpcError(PARSE_ERROR, "Parse error"), us_in=us_in))
            return
        request_id = msg.get("id")
        try:
            self.requests += 1
            if not conn.limit.take(time.monotonic()):
                raise RpcError(TOO_MANY_REQUESTS, "too_many_requests")
            full = str(msg.get("method", ""))
            scope, _, method = full.partition("/")
            params = msg.get("params") or {}
            if not isinstance(params, dict):
                raise RpcError(BAD_REQUEST, "bad_request", {"reason": "params must be an object"})
            result, after = await self._ws_call(conn, scope, method, params)
            await conn.send(envelope(request_id, result=result, us_in=us_in))
            if after is not None:
                await after()
        except RpcError as err:
            await conn.send(envelope(request_id, error=err, us_in=us_in))
        except Exception:
            log.exception("internal error on websocket")
            await conn.send(envelope(request_id, error=RpcError(INTERNAL, "internal_server_error"), us_in=us_in))

    async def _ws_call(self, conn: _Conn, scope: str, method: str, params: dict[str, Any]) -> tuple[Any, Any]:
        if scope == "public" and method == "auth":
            conn.session, result = self.auth.auth(params)
            return result, None
        token = params.pop("access_token", None)
        if token:
            conn.session = self.auth.session_of_token(str(token))
        if method in ("subscribe", "unsubscribe") and scope in ("public", "private"):
            channels = params.get("channels")
            if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
                raise invalid_param("channels", "a list of channel names")
            if method == "unsubscribe":
                for ch in channels:
                    conn.channels.discard(ch)
                    conn.book_ready.discard(ch)
                return channels, None
            accepted = [ch for ch in channels if self._channel_ok(conn, ch, private=scope == "private")]
            conn.channels.update(accepted)
            return accepted, lambda: self._initial(conn, accepted)
        if scope == "public" and method in ("unsubscribe_all",):
            conn.channels.clear()
            conn.book_ready.clear()
            return "ok", None
        if scope == "public" and method == "set_heartbeat":
            return self._set_heartbeat(conn, params), None
        if scope == "public" and method == "disable_heartbeat":
            if conn.heartbeat is not None:
                conn.heartbeat.cancel()
                conn.heartbeat = None
            return "ok", None
        if scope == "private" and method == "logout":
            conn.session = None
            return "ok", None
        return await self.methods.call(scope, method, params, conn.session), None

    def _channel_ok(self, conn: _Conn, channel: str, *, private: bool) -> bool:
        parts = channel.split(".")
        head = parts[0]
        if head == "user":
            if conn.session is None:
                raise RpcError(13009, "unauthorized", {"reason": f"{channel} needs authentication"})
            # user.changes.* is refused (left out of the answer): its notification is not documented here
            return len(parts) >= 3 and parts[1] in ("orders", "trades", "portfolio")
        if parts[-1] == "raw" and conn.session is None:
            raise RpcError(13009, "unauthorized", {"reason": "raw interval is only available to authorized users"})
        listed = self.methods.instruments()
        if head == "book":
            if len(parts) == 3:
                return parts[1] in listed and parts[2] in BOOK_INTERVALS
            # grouped: book.{name}.{group}.{depth}.{interval}, only ungrouped prices ("none") here
            return (
                len(parts) == 5
                and parts[1] in listed
                and parts[2] == "none"
                and parts[3] in GROUPED_DEPTHS
                and parts[4] in BOOK_INTERVALS
            )
        if head in ("ticker", "trades", "quote", "incremental_ticker"):
            return len(parts) >= 2 and (parts[1] in listed or (head == "trades" and len(parts) == 4))
        if head == "deribit_price_index":
            return len(parts) == 2 and self.backend.index_price(parts[1]) is not None
        return False

    async def _initial(self, conn: _Conn, channels: list[str]) -> None:
        for ch in channels:
            parts = ch.split(".")
            head = parts[0]
            if head == "book":
                await self._book_snapshot(conn, ch, parts[1])
            elif head in ("ticker", "incremental_ticker"):
                data = self._ticker_data(parts[1])
                if data is not None:
                    await conn.send(notification(ch, data))
            elif head == "quote":
                data = self._quote_data(parts[1])
                if data is not None:
                    await conn.send(notification(ch, data))
            elif head == "deribit_price_index":
                price = self.backend.index_price(parts[1])
                await conn.send(
                    notification(ch, {"index_name": parts[1], "price": price, "timestamp": self.backend.now_ms()})
                )

    # -- market data fan-out ----------------------------------------------------------------------
    def _instrument(self, name: str) -> Instrument | None:
        return self.methods.instruments().get(name)

    def _ticker_data(self, name: str) -> dict[str, Any] | None:
        inst, t = self._instrument(name), self.methods.ticker_view(name)
        return None if inst is None or t is None else shapes.ticker_json(t, inst)

    def _quote_data(self, name: str) -> dict[str, Any] | None:
        t = self.backend.ticker(name)
        if t is None:
            return None
        return {
            "instrument_name": name,
            "timestamp": t.ts,
            "best_bid_price": t.best_bid,
            "best_bid_amount": t.bid_size,
            "best_ask_price": t.best_ask,
            "best_ask_amount": t.ask_size,
        }

    def _levels(self, name: str) -> tuple[dict[float, float], dict[float, float], int]:
        view = self.backend.depth(name, self.book_depth)
        return dict(view.bids), dict(view.asks), view.ts or self.backend.now_ms()

    async def _book_sync(self, name: str) -> _BookState:
        """Bring the tracked book of ``name`` up to the venue's (hold ``_book_lock``): a difference is one new
        change id, sent at once to every websocket that already has the book's snapshot."""
        bids, asks, ts = self._levels(name)
        state = self._books.get(name)
        if state is None:
            state = self._books[name] = _BookState(bids, asks, 1, ts)
            return state
        bid_changes, ask_changes = _diff(state.bids, bids), _diff(state.asks, asks)
        if not bid_changes and not ask_changes:
            return state
        prev = state.change_id
        state.change_id += 1
        state.bids, state.asks, state.ts = bids, asks, ts
        change = {
            "type": "change",
            "timestamp": ts,
            "instrument_name": name,
            "prev_change_id": prev,
            "change_id": state.change_id,
            "bids": bid_changes,
            "asks": ask_changes,
        }
        prefix = f"book.{name}."
        for conn in list(self._conns):
            for ch in list(conn.book_ready):
                if ch.startswith(prefix):
                    await conn.send(notification(ch, change if ch.count(".") == 2 else _grouped(state, name, ch)))
        return state

    async def _book_view(self, name: str, depth: int) -> BookView:
        """``public/get_order_book``'s book: the tracked book (``depth`` levels) and its current change id."""
        async with self._book_lock:
            state = await self._book_sync(name)
        return BookView(
            name,
            state.ts,
            sorted(state.bids.items(), reverse=True)[:depth],
            sorted(state.asks.items())[:depth],
            state.change_id,
        )

    async def _book_snapshot(self, conn: _Conn, channel: str, name: str) -> None:
        async with self._book_lock:
            state = await self._book_sync(name)  # changes before the snapshot go to earlier subscribers only
            if channel.count(".") == 2:
                data: dict[str, Any] = {
                    "type": "snapshot",
                    "timestamp": state.ts,
                    "instrument_name": name,
                    "change_id": state.change_id,
                    "bids": [["new", p, a] for p, a in sorted(state.bids.items(), reverse=True)],
                    "asks": [["new", p, a] for p, a in sorted(state.asks.items())],
                }
            else:
                data = _grouped(state, name, channel)
            await conn.send(notification(channel, data))
            conn.book_ready.add(channel)

    async def _read(self) -> None:
        # Waits on the bus; _absorb (called here and by answers that show trades) drains it into the backlog.
        while True:
            event = await self._sub.get()
            self._backlog.append((event, self._observe(event)))
            self._absorb()

    async def _pump(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._backlog:
                event, info = self._backlog.popleft()
                try:
                    await self._route(event, info)
                except Exception:
                    log.exception("dropping event %s", type(event).__name__)

    def _absorb(self) -> None:
        """Read every event waiting on the bus into the tape (in bus order, the venue's order of execution) and
        queue it for routing: an answer built now numbers its trades as the channels will."""
        sub = self._sub
        if sub is None:
            return
        for event in sub.drain():
            self._backlog.append((event, self._observe(event)))
        if self._backlog:
            self._queued.set()

    def _observe(self, event: Event) -> TradeInfo | None:
        if isinstance(event, Trade):
            inst = self._instrument(event.instrument)
            marks = self._marks.marks(event.instrument) if self._marks is not None else None
            mark, iv, underlying = marks if marks is not None else (None, None, None)
            index = self.backend.index_price(inst.underlying) if inst is not None else None
            return self.methods.tape.observe(
                inst,
                event.instrument,
                event.trade_id,
                event.ts,
                event.price,
                event.amount,
                mark_price=mark,
                index_price=index,
                iv=iv if inst is not None and inst.is_option else None,
                underlying_price=underlying if inst is not None and inst.is_option else None,
            )
        if isinstance(event, FillEvent):
            self.methods.tape.pin(event.fill.trade_id)
            self.methods.note_fill(event.fill)
        return None

    async def _route(self, event: Event, info: TradeInfo | None = None) -> None:
        if isinstance(event, (Quote, BookUpdate)):
            self._dirty.add(event.instrument)
            return
        if isinstance(event, Trade):
            self._dirty.add(event.instrument)
            inst = self._instrument(event.instrument)
            if info is None:
                info = self._observe(event)
                assert info is not None
            item = shapes.public_trade_json(
                event.trade_id or f"{event.instrument}-{info.seq}",
                event.instrument,
                event.ts,
                event.price,
                event.amount,
                event.side.value,
                info,
                inst,
            )
            for conn in list(self._conns):
                for ch in list(conn.channels):
                    if _trades_match(ch, event.instrument, inst):
                        await self._emit_list(conn, ch, item)
            return
        if isinstance(event, IndexPrice):
            if event.source:
                return
            data = {"index_name": event.index, "price": event.price, "timestamp": event.ts}
            ch = f"deribit_price_index.{event.index}"
            for conn in list(self._conns):
                if ch in conn.channels:
                    conn.pending[ch] = data
            return
        if isinstance(event, OrderUpdate):
            order = event.order
            inst = self._instrument(order.instrument)
            if inst is None:
                return
            self._dirty.add(order.instrument)
            data = self.methods._order(order, inst)
            for conn in list(self._conns):
                if conn.session is None or conn.session.account != order.request.account:
                    continue
                for ch in list(conn.channels):
                    if ch.startswith("user.orders.") and _user_match(ch, inst):
                        if ch.endswith(".raw"):
                            await conn.send(notification(ch, data))
                        else:
                            conn.lists.setdefault(ch, []).append(data)
            return
        if isinstance(event, FillEvent):
            fill = event.fill
            inst = self._instrument(fill.instrument)
            if inst is None:
                return
            data = self.methods.trade_row(fill, inst)
            for conn in list(self._conns):
                if conn.session is None or conn.session.account != fill.account:
                    continue
                for ch in list(conn.channels):
                    if ch.startswith("user.trades.") and _user_match(ch, inst):
                        await self._emit_list(conn, ch, data)
                    elif ch == f"user.portfolio.{inst.settlement.lower()}" or ch == f"user.portfolio.{inst.settlement}":
                        account = conn.session.account
                        report = self.backend.account_summary(account, inst.settlement)
                        conn.pending[ch] = shapes.account_summary_json(report, shapes.instrument_id(account), account)

    async def _emit_list(self, conn: _Conn, channel: str, item: dict[str, Any]) -> None:
        if channel.endswith(".raw"):
            await conn.send(notification(channel, [item]))
        else:
            conn.lists.setdefault(channel, []).append(item)

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            try:
                await self._flush()
            except Exception:
                log.exception("flush failed")

    async def _flush(self) -> None:
        await self.methods.expire_day_orders()
        dirty, self._dirty = self._dirty, set()
        watched = {ch.split(".")[1] for conn in self._conns for ch in conn.book_ready}
        if watched:
            async with self._book_lock:
                for name in sorted(watched):
                    await self._book_sync(name)
        for conn in list(self._conns):
            for ch in list(conn.channels):
                parts = ch.split(".")
                if parts[0] in ("ticker", "incremental_ticker", "quote") and parts[1] in dirty:
                    data = self._ticker_data(parts[1]) if parts[0] != "quote" else self._quote_data(parts[1])
                    if data is not None:
                        conn.pending[ch] = data
            pending, conn.pending = conn.pending, {}
            lists, conn.lists = conn.lists, {}
            for ch, data in pending.items():
                await conn.send(notification(ch, data))
            for ch, items in lists.items():
                await conn.send(notification(ch, items))


def _grouped(state: _BookState, name: str, channel: str) -> dict[str, Any]:
    """A grouped-book notification: the ``depth`` best levels of each side as ``[price, amount]``."""
    depth = int(channel.split(".")[3])
    return {
        "timestamp": state.ts,
        "instrument_name": name,
        "change_id": state.change_id,
        "bids": [[p, a] for p, a in sorted(state.bids.items(), reverse=True)[:depth]],
        "asks": [[p, a] for p, a in sorted(state.asks.items())[:depth]],
    }


def _diff(old: dict[float, float], new: dict[float, float]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for price in sorted(set(old) | set(new)):
        if price not in new:
            out.append(["delete", price, 0.0])
        elif price not in old:
            out.append(["new", price, new[price]])
        elif old[price] != new[price]:
            out.append(["change", price, new[price]])
    return out


def _trades_match(channel: str, name: str, inst: Instrument | None) -> bool:
    parts = channel.split(".")
    if parts[0] != "trades":
        return False
    if len(parts) == 3:
        return parts[1] == name
    return inst is not None and len(parts) == 4 and _kind_currency_match(parts[1], parts[2], inst)


def _user_match(channel: str, inst: Instrument) -> bool:
    parts = channel.split(".")  # user.orders.{name}.{interval} | user.orders.{kind}.{currency}.{interval}
    if len(parts) == 4:
        return parts[2] == inst.name
    return len(parts) == 5 and _kind_currency_match(parts[2], parts[3], inst)


def _kind_currency_match(kind: str, currency: str, inst: Instrument) -> bool:
    kind_ok = kind == "any" or kind == shapes.wire_kind(inst)
    return kind_ok and currency.upper() in ("ANY", inst.settlement, inst.base)


def _parse_body(body: str) -> tuple[dict[str, Any], Any]:
    if not body.strip():
        return {}, None
    try:
        msg = json.loads(body)
    except json.JSONDecodeError:
        raise RpcError(PARSE_ERROR, "Parse error") from None
    if not isinstance(msg, dict):
        raise RpcError(BAD_REQUEST, "bad_request")
    params = msg.get("params", msg)
    return (params if isinstance(params, dict) else {}), msg.get("id")
