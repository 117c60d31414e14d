"""Orders through ccxt: validated and tick-rounded before sending, tagged with our client order id, errors typed.

ccxt rounds prices to the venue's base ``tick_size`` only; Deribit options use a coarser tick above 0.005
(``tick_size_steps``), so prices are put on the right grid here first (buys round down, sells up: never pay
more than asked). Amounts that are not a whole number of lots are refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from app.domain import Event as DomainEvent
from app.domain import (
    Fill,
    FillEvent,
    Instrument,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    TimeInForce,
)
from app.errors import InvalidInput, NotFound, OrderRejected
from app.ports import AccountReport, OrderStatusReport, PositionStatusReport
from connectors.ccxt_venue.instruments import Catalog
from connectors.ccxt_venue.parsing import (
    account_from_balance,
    desk_error,
    fill_from_ccxt,
    net_positions,
    order_from_ccxt,
    position_from_ccxt,
    report_from_order,
    to_venue_amount,
)

log = logging.getLogger(__name__)

MAX_NUMBER = Decimal("1e15")  # beyond any real price or amount; larger values overflow tick arithmetic
MAX_ENDED = 100_000  # ended orders remembered as published (a venue cannot end more between two resyncs)
_CCXT_TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}


class Execution:
    """Place, amend, cancel and report orders of one account on one venue."""

    def __init__(
        self, ex: Any, catalog: Catalog, *, publish: Callable[[DomainEvent], None], now_ms: Callable[[], int]
    ) -> None:
        self.ex = ex
        self.catalog = catalog
        self.table = catalog.table
        self.publish = publish
        self.now_ms = now_ms
        self.labels: dict[str, str] = {}  # venue order id -> our client order id
        self.names: dict[str, str] = {}  # venue order id -> desk instrument name
        self.seen_fills: set[str] = set()
        self.requests: dict[str, OrderRequest] = {}  # venue order id -> what we asked for
        self.open_orders: dict[str, Order] = {}  # venue order id -> our order as last seen open
        self.ended: dict[str, None] = {}  # venue order ids whose final state was published (oldest first)
        self._resync_lock = asyncio.Lock()

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            raise desk_error(exc) from exc

    # -- preparing ----------------------------------------------------------------------------------
    def prepare(self, req: OrderRequest) -> tuple[Instrument, Decimal | None]:
        """Check lots and round the price to the venue's grid for ``req``; raises before anything is sent."""
        inst = self.catalog.get(req.instrument)
        for label, value in (("amount", req.amount), ("price", req.price)):
            if value is not None and abs(value) > MAX_NUMBER:
                raise OrderRejected(f"{label} {value} is out of range", code=f"order.rejected.{label}")
        try:
            inst.to_lots(req.amount)
        except InvalidInput as exc:
            raise OrderRejected(exc.message, code=exc.code) from None
        price = req.price
        if req.type is OrderType.LIMIT:
            assert price is not None
            if price <= 0 and not (inst.kind.value == "future"):
                raise OrderRejected(f"price {price} must be positive", code="order.rejected.price")
            price = inst.round_price(price, "down" if req.side is Side.BUY else "up")
        if req.client_order_id is not None and not self.table.label_pattern.match(req.client_order_id):
            raise OrderRejected(
                f"client order id {req.client_order_id!r} is not accepted by {self.table.exchange} "
                f"(pattern {self.table.label_pattern.pattern})",
                code="order.rejected.client_id",
            )
        return inst, price

    def _params(self, req: OrderRequest) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if req.client_order_id:
            params[self.table.client_id_param] = req.client_order_id
        if req.post_only:
            params["postOnly"] = True
        if req.reduce_only:
            params["reduceOnly"] = True
        if req.tif is not TimeInForce.GTC:
            params["timeInForce"] = _CCXT_TIF[req.tif]
        return params

    # -- orders -------------------------------------------------------------------------------------
    async def place(self, req: OrderRequest) -> Order:
        """Send ``req``; returns the venue's acknowledgement (fills arrive as FillEvents).

        An order without a client order id gets one (``dd`` + 16 hex digits), so it can be reconciled.
        """
        if req.client_order_id is None:
            req = _with_client_id(req, "dd" + uuid.uuid4().hex[:16])
        inst, price = self.prepare(req)
        sym = self.catalog.symbol(req.instrument)
        amount = float(to_venue_amount(req.amount, self.catalog.size(inst.name), self.table))
        raw = await self._call(
            self.ex.create_order,
            sym,
            req.type.value,
            req.side.value,
            amount,
            float(price) if price is not None else None,
            self._params(req),
        )
        sent = req if price is None else _replace_price(req, price)
        raw = await self._complete(raw, sym)
        order = self._remember(raw, sent)
        self._publish_order(order)
        await self._fills_from_response(raw, inst)
        return order

    async def _complete(self, raw: dict[str, Any], sym: str) -> dict[str, Any]:
        """Venues that answer with a bare acknowledgement (OKX, Bybit) are asked for the order's state."""
        if raw.get("status") is not None or not raw.get("id"):
            return raw
        try:
            full = await self._call(self.ex.fetch_order, str(raw["id"]), sym, dict(self.table.fetch_order_params))
        except Exception as exc:  # the ack stands; the private stream or reconcile brings the state later
            log.warning("fetch_order after ack failed: %s", exc)
            return raw
        return full if full.get("id") else raw

    def _remember(self, raw: dict[str, Any], req: OrderRequest | None) -> Order:
        order_id = str(raw["id"])
        name = self.catalog.name(str(raw.get("symbol"))) or (req.instrument if req else None)
        if name is None:
            raise NotFound(f"order {order_id} is on an instrument the desk does not trade", code="not_found.order")
        inst = self.catalog.get(name)
        account = req.account if req else "main"
        order = order_from_ccxt(raw, name, inst, self.table, self.catalog.size(name), account, req)
        if req is not None:
            self.requests[order_id] = req
        self.names[order_id] = name
        if order.request.client_order_id:
            self.labels[order_id] = order.request.client_order_id
        if order.status is OrderStatus.OPEN:
            self.open_orders[order_id] = order
        else:
            self.open_orders.pop(order_id, None)
        return order

    def _publish_order(self, order: Order) -> None:
        """Publish an OrderUpdate, remembering which orders were published in a final state."""
        # Every update goes out: the private stream may deliver a stale "open" after the response's "filled" and
        # then "filled" again, and the last one must win. Only a resync skips orders already published as ended.
        if order.status.is_terminal:
            self.ended[order.order_id] = None
            while len(self.ended) > MAX_ENDED:
                self.ended.pop(next(iter(self.ended)))
        self.publish(OrderUpdate(self.now_ms(), order))

    async def _fills_from_response(self, raw: dict[str, Any], inst: Instrument) -> None:
        for t in raw.get("trades") or []:
            fill = fill_from_ccxt(t, inst.name, inst, self.table, self.catalog.size(inst.name), self.labels)
            self._emit_fill(fill)

    def _emit_fill(self, fill: Fill) -> bool:
        if fill.trade_id in self.seen_fills:
            return False
        self.seen_fills.add(fill.trade_id)
        self.publish(FillEvent(fill.ts or self.now_ms(), fill))
        return True

    async def _symbol_of(self, order_id: str) -> str:
        name = self.names.get(order_id)
        if name is None:
            for report in await self.order_reports(open_only=True):
                if report.order_id == order_id:
                    name = report.instrument
                    break
        if name is None:
            raise NotFound(f"order {order_id} is not open on {self.table.exchange}", code="not_found.order")
        return self.catalog.symbol(name)

    async def cancel(self, order_id: str) -> Order:
        """Cancel one order."""
        sym = await self._symbol_of(order_id)
        raw = await self._call(self.ex.cancel_order, order_id, sym)
        if not raw.get("id"):
            raw = {**raw, "id": order_id}
        raw = await self._complete(raw, sym)
        order = self._remember(raw, self.requests.get(order_id))
        self._publish_order(order)
        return order

    async def amend(self, order_id: str, amount: Decimal | None = None, price: Decimal | None = None) -> Order:
        """Change size and/or price of an open order (price put on the venue's grid)."""
        sym = await self._symbol_of(order_id)
        current = self.requests.get(order_id)
        if current is None:
            raw = await self._call(self.ex.fetch_order, order_id, sym, dict(self.table.fetch_order_params))
            name = self.names[order_id]
            current = order_from_ccxt(raw, name, self.catalog.get(name), self.table, self.catalog.size(name)).request
        new_amount = amount if amount is not None else current.amount
        new_price = price if price is not None else current.price
        probe = OrderRequest(
            current.instrument,
            current.side,
            new_amount,
            new_price,
            current.type,
            client_order_id=current.client_order_id,
            account=current.account,
        )
        inst, rounded = self.prepare(probe)
        raw = await self._call(
            self.ex.edit_order,
            order_id,
            sym,
            current.type.value,
            current.side.value,
            float(to_venue_amount(new_amount, self.catalog.size(inst.name), self.table)),
            float(rounded) if rounded is not None else None,
        )
        if not raw.get("id"):
            raw = {**raw, "id": order_id}
        raw = await self._complete(raw, sym)
        probe = _replace_price(probe, rounded) if rounded is not None else probe
        self.requests[order_id] = probe
        order = self._remember(raw, probe)
        self._publish_order(order)
        await self._fills_from_response(raw, inst)
        return order

    async def cancel_all(self, instrument: str | None = None) -> int:
        """Cancel every open order (of one instrument); returns how many were open."""
        opens = [
            r for r in await self.order_reports(open_only=True) if instrument is None or r.instrument == instrument
        ]
        if instrument is not None:
            await self._call(self.ex.cancel_all_orders, self.catalog.symbol(instrument))
        else:
            for r in opens:
                await self.cancel(r.order_id)
        return len(opens)

    # -- reports (reconciliation) -------------------------------------------------------------------
    async def _scoped(self, call: str, fn: Callable[..., Any], *args: Any) -> list[dict[str, Any]]:
        """``fn(*args, params)`` once per segment of the listing (currency, instType or category), concatenated."""
        out: list[dict[str, Any]] = []
        for params in self.table.scopes(call, self.catalog.markets.values()):
            out.extend(await self._call(fn, *args, dict(params)))
        return out

    async def orders(self, open_only: bool = True) -> list[Order]:
        """Our orders as the venue reports them (open ones, or open and recently ended: filled or cancelled)."""
        raws = await self._scoped("open", self.ex.fetch_open_orders, None, None, None)
        if not open_only:
            try:
                raws += await self._scoped("closed", self.table.closed_orders, self.ex)
            except OrderRejected:
                pass
        latest: dict[str, dict[str, Any]] = {}
        for raw in raws:  # an order that ended between the two queries is in both: the history row is newer
            if self.catalog.name(str(raw.get("symbol"))) is not None:
                latest[str(raw["id"])] = raw
        return [self._remember(raw, self.requests.get(oid)) for oid, raw in latest.items()]

    async def order_reports(self, open_only: bool = False) -> Sequence[OrderStatusReport]:
        """Orders as reconciliation reports."""
        return [report_from_order(o) for o in await self.orders(open_only)]

    async def fill_reports(self, since_ms: int = 0) -> Sequence[Fill]:
        """Our fills since ``since_ms`` (client order ids recovered from the venue's labels)."""
        raws = await self._scoped("trades", self.ex.fetch_my_trades, None, since_ms or None, 100)
        out = []
        for t in raws:
            name = self.catalog.name(str(t.get("symbol")))
            if name is None:
                continue
            out.append(
                fill_from_ccxt(t, name, self.catalog.get(name), self.table, self.catalog.size(name), self.labels)
            )
        return sorted(out, key=lambda f: (f.ts, f.trade_id))

    async def position_reports(self) -> Sequence[PositionStatusReport]:
        """Positions as the venue reports them, one per instrument, signed (desk units).

        A long/short (hedge) mode account reports two legs of one instrument; the desk keeps one net position per
        instrument, so the legs are netted here (one-way terms) rather than the last leg standing for the position.
        """
        raws = await self._scoped("positions", self.ex.fetch_positions, None)
        out = []
        for p in raws:
            name = self.catalog.name(str(p.get("symbol")))
            if name is None:
                continue
            out.append(position_from_ccxt(p, name, self.table, self.catalog.size(name)))
        inverse = {r.instrument: self.catalog.get(r.instrument).inverse for r in out}
        return net_positions(out, inverse)

    async def account(self, currency: str) -> AccountReport:
        """Balance and the venue's IM/MM in ``currency``."""
        params = {"code": currency} if self.table.exchange == "deribit" else {}
        bal = await self._call(self.ex.fetch_balance, params)
        return account_from_balance(bal, currency)

    async def balances(self) -> list[AccountReport]:
        """Every currency the account holds."""
        bal = await self._call(self.ex.fetch_balance)
        codes = sorted(c for c in (bal.get("total") or {}) if c)
        return [account_from_balance(bal, c) for c in codes]

    async def catch_up_fills(self, since_ms: int) -> int:
        """Publish fills the venue has that we have not seen (after a reconnect); returns how many."""
        count = 0
        for fill in await self.fill_reports(since_ms):
            count += self._emit_fill(fill)
        return count

    async def resync_orders(self) -> int:
        """After a reconnect: publish what became of the orders we knew as open; returns how many updates.

        Orders still open whose fills changed are republished; every order that is no longer open gets its final
        state from the venue (``fetch_order``, else the order history) and one OrderUpdate (filled, or cancelled
        with its filled amount), oldest change first, unless its final state was published already (by the
        private stream, or an earlier resync). Call after catching up fills, so the desk books them first.
        """
        async with self._resync_lock:  # both private streams resync after one drop; the second finds nothing new
            for oid in [oid for oid in self.open_orders if oid in self.ended]:
                self.open_orders.pop(oid)  # a stale "open" from the stream after its final state
            known = dict(self.open_orders)
            still = {o.order_id: o for o in await self.orders(open_only=True)}
            changed = [o for oid, o in still.items() if oid in known and o.filled != known[oid].filled]
            gone = [oid for oid in known if oid not in still]
            finals = await self._final_states(gone)
            updates = sorted(changed + finals, key=lambda o: (o.ts, o.order_id))
            published = 0
            for order in updates:
                if order.status.is_terminal and order.order_id in self.ended:
                    continue  # the private stream told the desk while we asked the venue
                self._publish_order(order)
                published += 1
            return published

    async def _final_states(self, order_ids: list[str]) -> list[Order]:
        out: list[Order] = []
        history: dict[str, Order] | None = None
        for oid in order_ids:
            order: Order | None = None
            try:
                sym = self.catalog.symbol(self.names[oid])
                raw = await self._call(self.ex.fetch_order, oid, sym, dict(self.table.fetch_order_params))
                order = self._remember(raw, self.requests.get(oid))
            except Exception as exc:  # e.g. aged out of the venue's by-id lookup: the order history may have it
                log.debug("fetch_order %s after reconnect: %s", oid, exc)
            if order is None or not order.status.is_terminal:
                if history is None:
                    history = {o.order_id: o for o in await self.orders(open_only=False)}
                order = history.get(oid, order)
            if order is not None and order.status.is_terminal:
                out.append(order)
            else:
                log.warning("%s: order %s is no longer open but its final state is unknown", self.table.exchange, oid)
        return out

    def on_ws_orders(self, raws: list[dict[str, Any]]) -> None:
        """Order updates from the private stream."""
        for raw in raws:
            if self.catalog.name(str(raw.get("symbol"))) is None:
                continue
            self._publish_order(self._remember(raw, self.requests.get(str(raw["id"]))))

    def on_ws_trades(self, raws: list[dict[str, Any]]) -> None:
        """Our fills from the private stream."""
        for t in raws:
            name = self.catalog.name(str(t.get("symbol")))
            if name is None:
                continue
            self._emit_fill(
                fill_from_ccxt(t, name, self.catalog.get(name), self.table, self.catalog.size(name), self.labels)
            )


def _replace_price(req: OrderRequest, price: Decimal) -> OrderRequest:
    return OrderRequest(
        req.instrument,
        req.side,
        req.amount,
        price,
        req.type,
        req.tif,
        req.post_only,
        req.reduce_only,
        req.client_order_id,
        req.account,
        req.reason,
    )


def _with_client_id(req: OrderRequest, client_order_id: str) -> OrderRequest:
    return OrderRequest(
        req.instrument,
        req.side,
        req.amount,
        req.price,
        req.type,
        req.tif,
        req.post_only,
        req.reduce_only,
        client_order_id,
        req.account,
        req.reason,
    )
