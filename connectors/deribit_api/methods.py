"""The JSON-RPC methods of the embedded venue's Deribit API, validated like the venue before anything changes.

Parameters arrive as strings (HTTP GET query) or typed JSON (POST body, websocket); both parse the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from app.domain import Fill, Instrument, Kind, Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from app.errors import DeskError, NotFound
from connectors.deribit_api import shapes
from connectors.deribit_api.auth import Session
from connectors.deribit_api.backend import ApiBackend, BookView, PlaceResult, PositionView, TickerView
from connectors.deribit_api.shapes import OrderMeta
from connectors.deribit_api.tape import TradeTape
from connectors.deribit_api.wire import (
    INVALID_AMOUNT,
    INVALID_INSTRUMENT,
    INVALID_PRICE,
    METHOD_NOT_FOUND,
    NON_INTEGER_CONTRACTS,
    POST_ONLY_REJECT,
    PRICE_WRONG_TICK,
    QTY_TOO_LOW,
    RpcError,
    invalid_param,
    rpc_error_from,
)

Params = dict[str, Any]
Handler = Callable[[Params, "Session | None"], Awaitable[Any]]

_TIF = {t.value: t for t in TimeInForce}
GOOD_TIL_DAY = "good_til_day"
DAY_END_HOUR_UTC = 8  # Deribit's trading day ends at 08:00 UTC, when good_til_day orders are cancelled
LISTING_REFRESH_MS = 1_000
MAX_NUMBER = Decimal("1e15")  # no price or amount is this large; larger ones would overflow tick arithmetic
_CURRENCY_LONG = {"BTC": "Bitcoin", "ETH": "Ethereum", "USDC": "USD Coin", "USDT": "Tether", "SOL": "Solana"}


def next_day_end_ms(now_ms: int) -> int:
    """The next 08:00 UTC after ``now_ms`` (epoch ms): where Deribit's trading day, and good_til_day, ends."""
    now = datetime.fromtimestamp(now_ms / 1000, timezone.utc)
    end = now.replace(hour=DAY_END_HOUR_UTC, minute=0, second=0, microsecond=0)
    end_ms = int(end.timestamp() * 1000)
    return end_ms if end_ms > now_ms else end_ms + 86_400_000


def _str(params: Params, name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = params.get(name, default)
    if value is None:
        if required:
            raise invalid_param(name, "value required")
        return None
    return str(value)


def _bool(params: Params, name: str, default: bool = False) -> bool:
    value = params.get(name, default)
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0", ""):
        return False
    raise invalid_param(name, "must be true or false")


def _dec(params: Params, name: str) -> Decimal | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise invalid_param(name, "not a number") from None
    if not out.is_finite():
        raise invalid_param(name, "not a finite number")
    if abs(out) > MAX_NUMBER:
        raise invalid_param(name, f"out of range (|value| > {MAX_NUMBER:.0e})")
    return out


def _int(params: Params, name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_param(name, "must be an integer") from None


class Methods:
    """Every public and private method the server answers, bound to one backend."""

    def __init__(self, backend: ApiBackend, *, started_ms: int) -> None:
        self.backend = backend
        self.started_ms = started_ms
        self.tape = TradeTape()
        # The server binds these: ``absorb`` reads the venue's pending events into the tape (so a trade is
        # numbered before any answer shows it), ``book_feed`` gives the book its websocket channels stream.
        self.absorb: Callable[[], None] = lambda: None
        self.book_feed: Callable[[str, int], Awaitable[BookView]] | None = None
        self._meta: dict[str, OrderMeta] = {}
        self._fees: dict[str, Decimal] = {}  # order_id -> fees of the order's fills seen so far
        self._fee_trades: set[tuple[str, str]] = set()  # (order_id, trade_id) already counted
        self._listing: tuple[int, dict[str, Instrument]] | None = None
        self.public: dict[str, Handler] = {
            "get_time": self.get_time,
            "test": self.test,
            "hello": self.hello,
            "status": self.status,
            "get_currencies": self.get_currencies,
            "get_instruments": self.get_instruments,
            "get_instrument": self.get_instrument,
            "ticker": self.ticker,
            "get_order_book": self.get_order_book,
            "get_book_summary_by_currency": self.get_book_summary_by_currency,
            "get_book_summary_by_instrument": self.get_book_summary_by_instrument,
            "get_index_price": self.get_index_price,
            "get_index_price_names": self.get_index_price_names,
        }
        self.private: dict[str, Handler] = {
            "buy": self.buy,
            "sell": self.sell,
            "edit": self.edit,
            "cancel": self.cancel,
            "cancel_all": self.cancel_all,
            "cancel_all_by_instrument": self.cancel_all_by_instrument,
            "cancel_all_by_currency": self.cancel_all_by_currency,
            "cancel_by_label": self.cancel_by_label,
            "get_open_orders_by_currency": self.get_open_orders_by_currency,
            "get_open_orders_by_instrument": self.get_open_orders_by_instrument,
            "get_open_orders": self.get_open_orders_by_currency,
            "get_order_state": self.get_order_state,
            "get_order_state_by_label": self.get_order_state_by_label,
            "get_order_history_by_currency": self.get_order_history_by_currency,
            "get_order_history_by_instrument": self.get_order_history_by_instrument,
            "get_user_trades_by_currency": self.get_user_trades_by_currency,
            "get_user_trades_by_currency_and_time": self.get_user_trades_by_currency,
            "get_user_trades_by_instrument": self.get_user_trades_by_instrument,
            "get_user_trades_by_instrument_and_time": self.get_user_trades_by_instrument,
            "get_user_trades_by_order": self.get_user_trades_by_order,
            "get_positions": self.get_positions,
            "get_position": self.get_position,
            "get_account_summary": self.get_account_summary,
            "get_account_summaries": self.get_account_summaries,
        }

    # -- dispatch ---------------------------------------------------------------------------------
    def handler(self, scope: str, name: str) -> Handler:
        """The handler of ``public/name`` or ``private/name``; -32601 when there is none."""
        table = self.public if scope == "public" else self.private if scope == "private" else {}
        found = table.get(name)
        if found is None:
            raise RpcError(METHOD_NOT_FOUND, "Method not found", {"method": f"{scope}/{name}"})
        return found

    async def call(self, scope: str, name: str, params: Params, session: Session | None) -> Any:
        """Run a method; desk errors become Deribit errors."""
        handler = self.handler(scope, name)
        if scope == "private" and session is None:
            raise RpcError(13009, "unauthorized", {"reason": "private method needs authentication"})
        try:
            return await handler(params, session)
        except DeskError as exc:
            raise rpc_error_from(exc) from None

    # -- lookups ----------------------------------------------------------------------------------
    def instruments(self) -> dict[str, Instrument]:
        """Listed instruments by name (re-read at most once per venue second: listings change at expiries)."""
        second = self.backend.now_ms() // LISTING_REFRESH_MS
        if self._listing is None or self._listing[0] != second:
            self._listing = (second, {i.name: i for i in self.backend.listed()})
        return self._listing[1]

    def instrument(self, params: Params, name: str = "instrument_name") -> Instrument:
        """The listed instrument a parameter names; 10020 when it is not listed."""
        iname = _str(params, name, required=True)
        assert iname is not None
        found = self.instruments().get(iname)
        if found is None:
            raise RpcError(INVALID_INSTRUMENT, "invalid_or_unsupported_instrument", {"param": name, "value": iname})
        return found

    def ticker_view(self, name: str) -> TickerView | None:
        """The backend's ticker with the tape's last price and 24h statistics (trades since the server started)."""
        t = self.backend.ticker(name)
        if t is None:
            return None
        self.absorb()
        s = self.tape.stats(name, self.backend.now_ms())
        if s is None:
            last = self.tape.last_price(name)  # traded, but not within 24h: the last price still stands
            return t if last is None else replace(t, last_price=last)
        return replace(
            t,
            last_price=s.last,
            volume=s.volume,
            volume_usd=s.volume_usd,
            high=s.high,
            low=s.low,
            price_change=s.price_change,
        )

    def note_fill(self, fill: Fill) -> None:
        """Count a fill's fee into its order's ``commission`` (once per order and trade)."""
        key = (fill.order_id, fill.trade_id)
        if key in self._fee_trades:
            return
        self._fee_trades.add(key)
        self._fees[fill.order_id] = self._fees.get(fill.order_id, Decimal(0)) + fill.fee

    def note_fills(self, fills: Iterable[Fill]) -> None:
        """:meth:`note_fill` for each."""
        for f in fills:
            self.note_fill(f)

    async def _fees_of(self, account: str, orders: Sequence[Order]) -> None:
        # Orders filled before the server saw their fills (a restart) get their fees from the venue's fill list.
        if any(o.filled > 0 and o.order_id not in self._fees for o in orders):
            since = min(self._meta[o.order_id].created_ms if o.order_id in self._meta else 0 for o in orders)
            self.note_fills(await self.backend.fills(account, since))

    def trade_row(self, fill: Fill, inst: Instrument, state: str = "filled") -> dict[str, Any]:
        """A user trade as Deribit shows it, numbered by the tape (the same ``trade_seq`` on every endpoint)."""
        self.absorb()
        self.note_fill(fill)
        meta = self._meta.get(fill.order_id)
        return shapes.trade_json(
            fill,
            inst,
            self.tape.info(fill.instrument, fill.trade_id, float(fill.price), float(fill.amount)),
            meta.order_type if meta else "limit",
            state,
            post_only=meta.post_only if meta else False,
            reduce_only=meta.reduce_only if meta else False,
        )

    @staticmethod
    def _matches(inst: Instrument, currency: str | None, kind: str | None) -> bool:
        if currency not in (None, "", "any") and currency.upper() not in (
            inst.settlement,
            inst.base if inst.inverse else "",
        ):
            return False
        return kind in (None, "", "any") or shapes.wire_kind(inst) == kind

    # -- public -----------------------------------------------------------------------------------
    async def get_time(self, params: Params, session: Session | None) -> int:
        """Server time (the venue's clock), ms."""
        return self.backend.now_ms()

    async def test(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Liveness check."""
        return {"version": "2.1.1"}

    async def hello(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Client introduction."""
        return {"version": "2.1.1"}

    async def status(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Platform status: never locked here."""
        return {"locked": "false", "locked_indices": []}

    async def get_currencies(self, params: Params, session: Session | None) -> list[dict[str, Any]]:
        """Settlement currencies of the listed instruments."""
        codes = sorted({i.settlement for i in self.backend.listed()})
        return [
            {
                "currency": c,
                "currency_long": _CURRENCY_LONG.get(c, c),
                "coin_type": "BITCOIN" if c == "BTC" else "ETHER" if c == "ETH" else "ERC20",
                "fee_precision": 4,
                "min_confirmations": 1,
                "min_withdrawal_fee": 0.0001,
                "withdrawal_fee": 0.0001,
                "withdrawal_priorities": [],
                "apr": 0.0,
            }
            for c in codes
        ]

    async def get_instruments(self, params: Params, session: Session | None) -> list[dict[str, Any]]:
        """Listed instruments, optionally of one currency and kind (``expired=true`` lists none here)."""
        currency, kind = _str(params, "currency"), _str(params, "kind")
        if _bool(params, "expired", False):
            return []
        return [
            shapes.instrument_json(i, self.started_ms)
            for i in self.backend.listed()
            if self._matches(i, currency, kind)
        ]

    async def get_instrument(self, params: Params, session: Session | None) -> dict[str, Any]:
        """One instrument."""
        return shapes.instrument_json(self.instrument(params), self.started_ms)

    async def ticker(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Ticker with marks, IVs (percent) and greeks of options."""
        inst = self.instrument(params)
        t = self.ticker_view(inst.name)
        if t is None:
            raise RpcError(10040, "retry", {"reason": f"no market data for {inst.name} yet"})
        return shapes.ticker_json(t, inst)

    async def get_order_book(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Depth (``depth`` levels per side, default 20) with the ticker fields."""
        inst = self.instrument(params)
        depth = _int(params, "depth", 20)
        if depth not in (1, 5, 10, 20, 50, 100, 1000, 10000):
            raise invalid_param("depth", "must be one of 1, 5, 10, 20, 50, 100, 1000, 10000")
        # Through the server's book feed, the snapshot's change_id is the one the book.* channels chain from.
        book = await self.book_feed(inst.name, depth) if self.book_feed else self.backend.depth(inst.name, depth)
        return shapes.book_json(book, self.ticker_view(inst.name), inst)

    async def get_book_summary_by_currency(self, params: Params, session: Session | None) -> list[dict[str, Any]]:
        """Summaries of every instrument of a currency (optionally one kind)."""
        currency = _str(params, "currency", required=True)
        kind = _str(params, "kind")
        return [
            shapes.book_summary_json(i, self.ticker_view(i.name), self.started_ms)
            for i in self.backend.listed()
            if self._matches(i, currency, kind)
        ]

    async def get_book_summary_by_instrument(self, params: Params, session: Session | None) -> list[dict[str, Any]]:
        """Summary of one instrument (a one-element list, as on Deribit)."""
        inst = self.instrument(params)
        return [shapes.book_summary_json(inst, self.ticker_view(inst.name), self.started_ms)]

    async def get_index_price(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Index price of ``index_name`` (btc_usd)."""
        name = _str(params, "index_name", required=True)
        assert name is not None
        price = self.backend.index_price(name)
        if price is None:
            raise invalid_param("index_name", f"unknown index {name!r}")
        return {"index_price": price, "estimated_delivery_price": price}

    async def get_index_price_names(self, params: Params, session: Session | None) -> list[str]:
        """Index names of the listed instruments."""
        return sorted({i.underlying for i in self.backend.listed()})

    # -- orders -----------------------------------------------------------------------------------
    def _request(self, params: Params, side: Side, session: Session) -> tuple[OrderRequest, OrderMeta]:
        inst = self.instrument(params)
        amount, contracts = _dec(params, "amount"), _dec(params, "contracts")
        if contracts is not None:
            from_contracts = contracts * inst.contract_size
            if amount is not None and amount != from_contracts:
                raise invalid_param("contracts", "amount and contracts disagree")
            amount = from_contracts
        if amount is None:
            raise invalid_param("amount", "value required")
        self._check_amount(inst, amount)
        otype = _str(params, "type", "limit")
        if otype not in ("limit", "market"):
            raise RpcError(10033, "not_implemented", {"reason": f"order type {otype!r} is not supported here"})
        if params.get("advanced"):
            raise RpcError(10033, "not_implemented", {"reason": "advanced (usd/implv) orders are not supported here"})
        price = _dec(params, "price")
        if otype == "limit":
            if price is None:
                raise invalid_param("price", "a limit order needs a price")
            self._check_price(inst, price)
        else:
            price = None
        tif_name = _str(params, "time_in_force", "good_til_cancelled") or ""
        now = self.backend.now_ms()
        expires = None
        if tif_name == GOOD_TIL_DAY:
            # The venue has no order expiry: the order rests as GTC and the server cancels it at the end of the
            # trading day (08:00 UTC, venue time; expire_day_orders), which is what Deribit's good_til_day means.
            tif, expires = TimeInForce.GTC, next_day_end_ms(now)
        else:
            found = _TIF.get(tif_name)
            if found is None:
                raise invalid_param(
                    "time_in_force",
                    "expected good_til_cancelled, good_til_day, immediate_or_cancel or fill_or_kill",
                )
            tif = found
        label = _str(params, "label")
        if label is not None and len(label) > 64:
            raise invalid_param("label", "at most 64 characters")
        post_only = _bool(params, "post_only")
        reject_post_only = _bool(params, "reject_post_only")
        if post_only and otype == "market":
            raise invalid_param("post_only", "a market order cannot be post-only")
        if post_only and not reject_post_only and price is not None and tif is TimeInForce.GTC:
            price = self._post_only_price(inst, side, price)
        reduce_only = _bool(params, "reduce_only")
        meta = OrderMeta(
            created_ms=now,
            order_type=otype,
            time_in_force=tif_name,
            post_only=post_only,
            reject_post_only=reject_post_only,
            reduce_only=reduce_only,
            market_price=self._market_limit(inst, side) if otype == "market" else None,
            expires_ms=expires,
            account=session.account,
        )
        req = OrderRequest(
            instrument=inst.name,
            side=side,
            amount=amount,
            price=price,
            type=OrderType(otype),
            tif=tif,
            post_only=post_only,
            reduce_only=reduce_only,
            client_order_id=label or None,
            account=session.account,
            reason="api",
        )
        return req, meta

    def _post_only_price(self, inst: Instrument, side: Side, price: Decimal) -> Decimal:
        """Deribit's post-only without ``reject_post_only``: a price that would take is moved just inside the
        spread (one tick passive of the opposite best), as the engine's own F_REPRICE does; 11054 if none is left.

        Done here because an OrderRequest cannot ask the engine for F_REPRICE per order (the engine's
        ``post_only_reprice`` is one setting for every order of the venue)."""
        book = self.backend.depth(inst.name, 1)
        if side is Side.BUY and book.asks:
            best = Decimal(repr(book.asks[0][0]))
            if price >= best:
                price = inst.round_price(best - inst.tick_size, "down")
        elif side is Side.SELL and book.bids:
            best = Decimal(repr(book.bids[0][0]))
            if price <= best:
                price = inst.round_price(best + inst.tick_size, "up")
        else:
            return price
        if price <= 0 and inst.kind is not Kind.FUTURE:
            raise RpcError(
                POST_ONLY_REJECT, "post_only_reject", {"reason": f"no price below the best ask {best} is left"}
            )
        return price

    def _market_limit(self, inst: Instrument, side: Side) -> Decimal | None:
        """The price a market order may execute up to (buy) or down to (sell): the band's edge, on the tick grid."""
        t = self.backend.ticker(inst.name)
        if t is None:
            return None
        lo, hi = shapes.price_band(t)
        edge = hi if side is Side.BUY else lo
        if edge is None or edge <= 0:
            return None
        return inst.round_price(Decimal(repr(edge)), "down" if side is Side.BUY else "up")

    @staticmethod
    def _check_amount(inst: Instrument, amount: Decimal) -> None:
        if amount <= 0:
            raise RpcError(INVALID_AMOUNT, "invalid_amount", {"reason": "amount must be positive"})
        if amount < inst.min_amount:
            raise RpcError(QTY_TOO_LOW, "qty_too_low", {"reason": f"minimum amount is {inst.min_amount}"})
        if amount % inst.min_amount != 0:
            code, msg = (
                (NON_INTEGER_CONTRACTS, "non_integer_contract_amount")
                if inst.kind in (Kind.FUTURE, Kind.PERPETUAL)
                else (INVALID_AMOUNT, "invalid_amount")
            )
            raise RpcError(code, msg, {"reason": f"amount must be a multiple of {inst.min_amount}"})

    @staticmethod
    def _check_price(inst: Instrument, price: Decimal) -> None:
        if price <= 0 and inst.kind is not Kind.FUTURE:
            raise RpcError(INVALID_PRICE, "invalid_price", {"reason": "price must be positive"})
        if not inst.is_valid_price(price):
            raise RpcError(
                PRICE_WRONG_TICK, "price_wrong_tick", {"reason": f"tick at {price} is {inst.tick_at(price)}"}
            )

    def _order_result(self, result: PlaceResult, inst: Instrument) -> dict[str, Any]:
        self.absorb()
        self.note_fills(result.fills)
        order = self._order(result.order, inst)
        return {"order": order, "trades": [self.trade_row(f, inst, order["order_state"]) for f in result.fills]}

    def _order(self, order: Order, inst: Instrument | None = None) -> dict[str, Any]:
        inst = inst or self.instruments().get(order.instrument) or Instrument.parse(order.instrument)
        meta = self._meta.get(order.order_id)
        if meta is None:  # an order the API did not place (a strategy's, or placed before a restart)
            req = order.request
            meta = self._meta[order.order_id] = OrderMeta(
                created_ms=order.ts,
                order_type=req.type.value,
                time_in_force=req.tif.value,
                post_only=req.post_only,
                reduce_only=req.reduce_only,
                account=req.account,
            )
        return shapes.order_json(order, inst, meta, self._fees.get(order.order_id, Decimal(0)))

    async def _orders(self, account: str, orders: Sequence[Order]) -> list[dict[str, Any]]:
        await self._fees_of(account, orders)
        return [self._order(o) for o in orders]

    async def _place(self, params: Params, side: Side, session: Session | None) -> dict[str, Any]:
        assert session is not None
        req, meta = self._request(params, side, session)
        result = await self.backend.place(req)
        meta.created_ms = result.order.ts
        self._meta.setdefault(result.order.order_id, meta)
        return self._order_result(result, self.instruments()[req.instrument])

    async def buy(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Place a buy order; answers ``{order, trades}``."""
        return await self._place(params, Side.BUY, session)

    async def sell(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Place a sell order; answers ``{order, trades}``."""
        return await self._place(params, Side.SELL, session)

    async def expire_day_orders(self) -> int:
        """Cancel the good_til_day orders whose trading day ended (venue time); returns how many."""
        now = self.backend.now_ms()
        count = 0
        for order_id, meta in list(self._meta.items()):
            if meta.expires_ms is None or meta.expires_ms > now:
                continue
            meta.expires_ms = None
            try:
                if not self.backend.order(meta.account, order_id).status.is_terminal:
                    await self.backend.cancel(meta.account, order_id)
                    count += 1
            except DeskError:  # gone or closed meanwhile
                continue
        return count

    async def edit(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Change amount and/or price of an open order; answers ``{order, trades}``."""
        assert session is not None
        order_id = _str(params, "order_id", required=True)
        assert order_id is not None
        current = self.backend.order(session.account, order_id)
        if current.status.is_terminal:
            raise RpcError(10010, "already_closed", {"order_id": order_id})
        inst = self.instruments()[current.instrument]
        amount, price = _dec(params, "amount"), _dec(params, "price")
        contracts = _dec(params, "contracts")
        if contracts is not None:
            amount = contracts * inst.contract_size
        if amount is not None:
            self._check_amount(inst, amount)
        if price is not None:
            self._check_price(inst, price)
        before = {f.trade_id for f in await self.backend.fills(session.account, current.ts)}
        order = await self.backend.amend(session.account, order_id, amount, price)
        fills = [
            f
            for f in await self.backend.fills(session.account, current.ts)
            if f.order_id == order_id and f.trade_id not in before
        ]
        return self._order_result(PlaceResult(order, tuple(fills)), inst)

    async def cancel(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Cancel one order; answers the order."""
        assert session is not None
        order_id = _str(params, "order_id", required=True)
        assert order_id is not None
        current = self.backend.order(session.account, order_id)
        if current.status.is_terminal:
            raise RpcError(10010, "already_closed", {"order_id": order_id})
        return (await self._orders(session.account, [await self.backend.cancel(session.account, order_id)]))[0]

    async def cancel_all(self, params: Params, session: Session | None) -> int:
        """Cancel every open order; answers how many."""
        assert session is not None
        return await self.backend.cancel_all(session.account)

    async def cancel_all_by_instrument(self, params: Params, session: Session | None) -> int:
        """Cancel every open order of one instrument."""
        assert session is not None
        return await self.backend.cancel_all(session.account, self.instrument(params).name)

    async def cancel_all_by_currency(self, params: Params, session: Session | None) -> int:
        """Cancel every open order of a currency (optionally one kind)."""
        assert session is not None
        currency, kind = _str(params, "currency", required=True), _str(params, "kind")
        names = {o.instrument for o in self._open(session, currency, kind)}
        count = 0
        for name in sorted(names):
            count += await self.backend.cancel_all(session.account, name)
        return count

    async def cancel_by_label(self, params: Params, session: Session | None) -> int:
        """Cancel the open orders carrying ``label``."""
        assert session is not None
        label = _str(params, "label", required=True)
        count = 0
        for o in self.backend.orders(session.account, open_only=True):
            if o.request.client_order_id == label:
                await self.backend.cancel(session.account, o.order_id)
                count += 1
        return count

    def _open(self, session: Session, currency: str | None, kind: str | None) -> list[Order]:
        insts = self.instruments()
        return [
            o
            for o in self.backend.orders(session.account, open_only=True)
            if o.instrument in insts and self._matches(insts[o.instrument], currency, kind)
        ]

    async def get_open_orders_by_currency(self, params: Params, session: Session | None) -> list[dict[str, Any]]:
        """Open orders of a currency (optionally one kind)."""
        assert session is not None
        return await self._orders(session.account, self._open(session, _str(params, "currency"), _str(params, "kind")))

    async def get_open_orders_by_instrument(self, params: Params, session: Session | None) -> list[dict[str, Any]]:
        """Open orders of one instrument."""
        assert session is not None
        name = self.instrument(params).name
        orders = [o for o in self.backend.orders(session.account, open_only=True) if o.instrument == name]
        return await self._orders(session.account, orders)

    async def get_order_state(self, params: Params, session: Session | None) -> dict[str, Any]:
        """One order by id."""
        assert session is not None
        order_id = _str(params, "order_id", required=True)
        assert order_id is not None
        return (await self._orders(session.account, [self.backend.order(session.account, order_id)]))[0]

    async def get_order_state_by_label(self, params: Params, session: Session | None) -> list[dict[str, Any]]:
        """Orders (open and closed) carrying ``label``."""
        assert session is not None
        label = _str(params, "label", required=True)
        orders = [
            o for o in self.backend.orders(session.account, open_only=False) if o.request.client_order_id == label
        ]
        return await self._orders(session.account, orders)

    async def _history(self, session: Session, params: Params, name: str | None) -> list[dict[str, Any]]:
        insts = self.instruments()
        currency, kind = _str(params, "currency"), _str(params, "kind")
        out = [
            o
            for o in self.backend.orders(session.account, open_only=False)
            if o.status.is_terminal
            and o.status is not OrderStatus.REJECTED
            and (name is None or o.instrument == name)
            and (name is not None or (o.instrument in insts and self._matches(insts[o.instrument], currency, kind)))
        ]
        count = _int(params, "count", 20)
        return await self._orders(session.account, list(reversed(out))[:count])

    async def get_order_history_by_currency(self, params: Params, session: Session | None) -> list[dict[str, Any]]:
        """Closed orders of a currency, newest first."""
        assert session is not None
        return await self._history(session, params, None)

    async def get_order_history_by_instrument(self, params: Params, session: Session | None) -> list[dict[str, Any]]:
        """Closed orders of one instrument, newest first."""
        assert session is not None
        return await self._history(session, params, self.instrument(params).name)

    async def _trades(self, session: Session, keep: Callable[[Any], bool], params: Params) -> dict[str, Any]:
        insts = self.instruments()
        since = _int(params, "start_timestamp", 0)
        end = _int(params, "end_timestamp", 2**62)
        count = _int(params, "count", 10)
        fills = [f for f in await self.backend.fills(session.account, since) if f.ts <= end and keep(f)]
        sorting = _str(params, "sorting", "desc")
        rows = [self.trade_row(f, insts.get(f.instrument) or Instrument.parse(f.instrument)) for f in fills]
        if sorting != "asc":
            rows.reverse()
        return {"trades": rows[:count], "has_more": len(rows) > count}

    async def get_user_trades_by_currency(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Our trades of a currency (optionally one kind)."""
        assert session is not None
        insts = self.instruments()
        currency, kind = _str(params, "currency"), _str(params, "kind")
        return await self._trades(
            session, lambda f: f.instrument in insts and self._matches(insts[f.instrument], currency, kind), params
        )

    async def get_user_trades_by_instrument(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Our trades of one instrument."""
        assert session is not None
        name = self.instrument(params).name
        return await self._trades(session, lambda f: f.instrument == name, params)

    async def get_user_trades_by_order(self, params: Params, session: Session | None) -> list[dict[str, Any]]:
        """Our trades of one order."""
        assert session is not None
        order_id = _str(params, "order_id", required=True)
        try:
            self.backend.order(session.account, str(order_id))
        except NotFound:
            raise RpcError(10004, "order_not_found", {"order_id": order_id}) from None
        found = await self._trades(
            session, lambda f: f.order_id == order_id, {**params, "count": 10_000, "sorting": "asc"}
        )
        return found["trades"]

    # -- account ----------------------------------------------------------------------------------
    async def get_positions(self, params: Params, session: Session | None) -> list[dict[str, Any]]:
        """Open positions (optionally of a currency and kind)."""
        assert session is not None
        insts = self.instruments()
        currency, kind = _str(params, "currency"), _str(params, "kind")
        out = []
        for p in self.backend.positions(session.account):
            inst = insts.get(p.instrument) or Instrument.parse(p.instrument)
            if self._matches(inst, currency, kind) and p.size != 0:
                out.append(shapes.position_json(p, inst))
        return out

    async def get_position(self, params: Params, session: Session | None) -> dict[str, Any]:
        """The position in one instrument (zero size when flat)."""
        assert session is not None
        inst = self.instrument(params)
        for p in self.backend.positions(session.account):
            if p.instrument == inst.name:
                return shapes.position_json(p, inst)
        t = self.backend.ticker(inst.name)
        flat = PositionView(inst.name, Decimal(0), Decimal(0), t.mark_price if t else 0.0, t.index_price if t else 0.0)
        return shapes.position_json(flat, inst)

    def _currencies(self) -> Sequence[str]:
        return sorted({i.settlement for i in self.backend.listed()})

    async def get_account_summary(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Balance, equity and margin of one currency."""
        assert session is not None
        currency = (_str(params, "currency", required=True) or "").upper()
        if currency not in self._currencies():
            raise invalid_param("currency", f"unknown currency {currency!r}")
        report = self.backend.account_summary(session.account, currency)
        return shapes.account_summary_json(report, shapes.instrument_id(session.account), session.account)

    async def get_account_summaries(self, params: Params, session: Session | None) -> dict[str, Any]:
        """Summaries of every currency."""
        assert session is not None
        acc_id = shapes.instrument_id(session.account)
        summaries = [
            shapes.account_summary_json(self.backend.account_summary(session.account, c), acc_id, session.account)
            for c in self._currencies()
        ]
        return {
            "id": acc_id,
            "username": session.account,
            "system_name": session.account,
            "email": f"{session.account}@deltadesk.invalid",
            "type": "main",
            "summaries": summaries,
        }
