"""A venue reached through ccxt (REST) and ccxt.pro (websockets): Deribit, OKX or Bybit, as an app.ports.Venue.

    venue = CcxtVenue("deribit", credentials=Credentials.from_env("DESK_DERIBIT"),
                      rest_url="http://127.0.0.1:8765", ws_url="ws://127.0.0.1:8765/ws/api/v2")
    await venue.connect(bus)                         # load markets, start private streams
    await venue.subscribe(["BTC-PERPETUAL"], ["ticker", "book"])
    order = await venue.place(OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal("100"), Decimal("60000"),
                                           client_order_id="h-1"))
    await venue.close()

Rate limits: ccxt's ``enableRateLimit`` throttles every REST call to the venue's documented pace (or to one call
per ``rate_limit_ms``). Keys
come from the caller (environment or keyring through :class:`connectors.base.Credentials`) and are never
logged; ``repr(venue)`` shows only the first characters of the key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from app.bus import Bus
from app.domain import Event, Fill, Instrument, Order, OrderRequest
from app.errors import ConnectorError
from app.ports import AccountReport, OrderStatusReport, PositionStatusReport
from connectors.base import Backoff, ConnectorStats, Credentials, redact
from connectors.ccxt_venue.data import MarketData
from connectors.ccxt_venue.execution import Execution
from connectors.ccxt_venue.instruments import Catalog
from connectors.ccxt_venue.parsing import desk_error
from connectors.ccxt_venue.venues import VenueTable, table

log = logging.getLogger(__name__)


class CcxtVenue:
    """One account on one exchange through ccxt's unified API; implements app.ports.Venue and ConnectorVenue."""

    def __init__(
        self,
        exchange: str | VenueTable,
        *,
        credentials: Credentials | None = None,
        rest_url: str | None = None,
        ws_url: str | None = None,
        testnet: bool = False,
        enable_rate_limit: bool = True,
        rate_limit_ms: int | None = None,
        backoff: Callable[[], Backoff] | None = None,
        record: Callable[[Event], None] | None = None,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        name: str | None = None,
    ) -> None:
        self.table = table(exchange) if isinstance(exchange, str) else exchange
        self.name = name or self.table.exchange
        self._credentials = credentials
        self._rest_url, self._ws_url = rest_url, ws_url
        self._testnet = testnet
        self._rate_limit = enable_rate_limit
        self._rate_limit_ms = rate_limit_ms
        self._backoff = backoff or (lambda: Backoff(initial_s=0.2, max_s=10.0))
        self._record = record
        self.now_ms = now_ms
        self.stats = ConnectorStats()
        self.catalog = Catalog(self.table)
        self.bus: Bus | None = None
        self.ex: Any = None
        self.data: MarketData | None = None
        self.execution: Execution | None = None
        self._private_started = False
        self._last_fill_ms = 0

    def __repr__(self) -> str:
        key = redact(self._credentials.key) if self._credentials else ""
        return f"CcxtVenue({self.table.exchange!r}, key={key!r}, instruments={len(self.catalog)})"

    # -- lifecycle ----------------------------------------------------------------------------------
    def _build(self) -> Any:
        import ccxt.pro as ccxtpro  # heavy import, only when a venue is really used

        config: dict[str, Any] = {"enableRateLimit": self._rate_limit, "options": dict(self.table.options)}
        if self._rate_limit_ms is not None:  # slower than the venue's documented pace, e.g. for a shared key
            config["rateLimit"] = self._rate_limit_ms
        if self._credentials is not None:
            config["apiKey"] = self._credentials.key
            config["secret"] = self._credentials.secret
            if self._credentials.passphrase:
                config["password"] = self._credentials.passphrase
        ex = getattr(ccxtpro, self.table.exchange)(config)
        if self._testnet:
            ex.set_sandbox_mode(True)
        if self._rest_url or self._ws_url:
            self.table.set_urls(ex, self._rest_url, self._ws_url)
        return ex

    def _publish(self, event: Event) -> None:
        if self.bus is not None:
            self.bus.publish(event)
        if self._record is not None:
            try:
                self._record(event)
            except Exception as exc:  # recording must never stop trading
                log.warning("recording failed: %s", exc)

    async def connect(self, bus: Bus) -> None:
        """Load markets and, with credentials, stream our orders and fills onto ``bus``."""
        self.bus = bus
        if self.ex is None:
            self.ex = self._build()
        try:
            markets = await self.ex.load_markets(reload=True)
        except Exception as exc:
            await self.close()  # release ccxt's HTTP session; connect may be retried
            raise desk_error(exc) from exc
        n = self.catalog.load(markets)
        log.info("%s: %d instruments", self.name, n)
        self.data = MarketData(
            self.ex, self.catalog, publish=self._publish, stats=self.stats, now_ms=self.now_ms, backoff=self._backoff
        )
        self.execution = Execution(self.ex, self.catalog, publish=self._publish, now_ms=self.now_ms)
        if self._credentials is not None:
            self._start_private()

    def _start_private(self) -> None:
        assert self.data is not None and self.execution is not None
        if self._private_started:
            return
        self._private_started = True
        exe = self.execution

        async def orders_once() -> None:
            exe.on_ws_orders(await self.ex.watch_orders())
            self.stats.messages += 1

        async def trades_once() -> None:
            raws = await self.ex.watch_my_trades()
            exe.on_ws_trades(raws)
            self.stats.messages += 1

        async def resync_private() -> None:
            # fills made while the socket was down come back from REST (deduplicated by trade id), then the state
            # of every order that changed meanwhile (after its fills, so the desk books them before the status)
            try:
                await exe.catch_up_fills(max(0, self._last_fill_ms - 60_000))
                await exe.resync_orders()
            except Exception as exc:
                log.warning("private resync failed: %s", exc)

        self.data.spawn("orders", orders_once, resync_private)
        self.data.spawn("my_trades", trades_once, resync_private)

    async def close(self) -> None:
        """Stop streams and close connections; idempotent."""
        if self.data is not None:
            await self.data.stop()
        if self.ex is not None:
            try:
                await self.ex.close()
            except Exception as exc:
                log.debug("close: %s", exc)
            self.ex = None
        self._private_started = False

    def _need(self) -> tuple[MarketData, Execution]:
        if self.data is None or self.execution is None:
            raise ConnectorError(f"{self.name} is not connected (call connect first)", code="connector.not_connected")
        return self.data, self.execution

    # -- app.ports.Venue ----------------------------------------------------------------------------
    async def instruments(self) -> Sequence[Instrument]:
        """Listed instruments with the venue's tick/lot/fee conventions."""
        self._need()
        return list(self.catalog.by_name.values())

    async def subscribe(self, instruments: Sequence[str], channels: Sequence[str] = ("ticker",)) -> None:
        """Stream ``channels`` (ticker, book, trades) of ``instruments`` onto the bus."""
        data, _ = self._need()
        data.start(instruments, channels)

    async def place(self, request: OrderRequest) -> Order:
        """Send an order (lots checked, price on the venue's tick grid, client order id attached)."""
        return await self._need()[1].place(request)

    async def cancel(self, order_id: str) -> Order:
        """Cancel one order."""
        return await self._need()[1].cancel(order_id)

    async def amend(self, order_id: str, amount: Decimal | None = None, price: Decimal | None = None) -> Order:
        """Change size and/or price of an open order."""
        return await self._need()[1].amend(order_id, amount, price)

    async def cancel_all(self, instrument: str | None = None) -> int:
        """Cancel every open order (of one instrument); returns how many."""
        return await self._need()[1].cancel_all(instrument)

    async def order_reports(self, open_only: bool = False) -> Sequence[OrderStatusReport]:
        """Orders as the venue knows them."""
        return await self._need()[1].order_reports(open_only)

    async def fill_reports(self, since_ms: int = 0) -> Sequence[Fill]:
        """Our fills since ``since_ms``."""
        fills = await self._need()[1].fill_reports(since_ms)
        if fills:
            self._last_fill_ms = max(self._last_fill_ms, fills[-1].ts)
        return fills

    async def position_reports(self) -> Sequence[PositionStatusReport]:
        """Positions as the venue knows them."""
        return await self._need()[1].position_reports()

    async def account(self, currency: str) -> AccountReport:
        """Balance and the venue's own IM/MM in ``currency``."""
        return await self._need()[1].account(currency)

    # -- ConnectorVenue extras ----------------------------------------------------------------------
    async def balances(self) -> Sequence[AccountReport]:
        """Balances of every currency."""
        return await self._need()[1].balances()

    async def index_price(self, index: str) -> float:
        """The venue's index price (USD)."""
        return await self._need()[0].index_price(index)

    async def quote(self, name: str) -> Any:
        """A REST ticker of one instrument as a Quote (with venue IVs and greeks)."""
        return await self._need()[0].quote(name)

    async def chain(self, base: str) -> Any:
        """Every option of ``base`` as Quotes, from one ``fetch_option_chain`` call."""
        return await self._need()[0].chain(base)

    async def book(self, name: str, depth: int = 20) -> Any:
        """A depth snapshot as a BookUpdate."""
        return await self._need()[0].book(name, depth)

    async def reconcile(self, client_order_ids: Sequence[str], since_ms: int = 0) -> dict[str, Any]:
        """After a restart: what the venue did with our intents, by client order id.

        Returns ``{"orders": {coid: OrderStatusReport | None}, "fills": [Fill], "positions": [report]}``; a None
        report means the venue never saw that intent (safe to resend).
        """
        _, exe = self._need()
        reports = await exe.order_reports(open_only=False)
        by_coid = {r.client_order_id: r for r in reports if r.client_order_id}
        fills = await exe.fill_reports(since_ms)
        for fill in fills:
            exe.seen_fills.add(fill.trade_id)
        return {
            "orders": {c: by_coid.get(c) for c in client_order_ids},
            "fills": fills,
            "positions": await exe.position_reports(),
        }

    async def wait_streams(self, timeout_s: float = 5.0) -> None:
        """Wait until the market streams have delivered at least one message (or time out)."""
        start = self.stats.messages
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.stats.messages == start and loop.time() < deadline:
            await asyncio.sleep(0.02)
