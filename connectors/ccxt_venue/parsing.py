"""ccxt's unified dicts translated into app.domain types; every ccxt error translated into a typed desk error.

ccxt dicts never leave this package. Amounts: ccxt gives contracts on venues whose table says so (OKX); the
desk's amount is contracts x contract size (coin for options). IVs become fractions.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import ccxt

from app.domain import (
    BookUpdate,
    Fill,
    Instrument,
    Kind,
    Liquidity,
    OptionType,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Quote,
    Side,
    TimeInForce,
    Trade,
)
from app.errors import (
    AuthError,
    ConnectorError,
    DeskError,
    InsufficientMargin,
    InvalidInput,
    NotFound,
    OrderRejected,
    RateLimited,
    UnknownInstrument,
)
from app.ports import AccountReport, OrderStatusReport, PositionStatusReport
from connectors.base import ErrorRule, map_error
from connectors.ccxt_venue.venues import VenueTable

# -- errors ---------------------------------------------------------------------------------------

# Substrings of venue messages -> precise desk codes for rejected orders (Deribit names, OKX/Bybit texts).
_REJECT_CODES: tuple[tuple[str, str], ...] = (
    ("price_wrong_tick", "order.rejected.tick"),
    ("tick", "order.rejected.tick"),
    ("qty_too_low", "order.rejected.min_amount"),
    ("invalid_amount", "order.rejected.lot"),
    ("non_integer_contract_amount", "order.rejected.lot"),
    ("post_only_reject", "order.rejected.post_only"),
    ("order_overlap", "order.rejected.self_trade"),
    ("price_too_low", "order.rejected.band"),
    ("price_too_high", "order.rejected.band"),
    ("book_closed", "order.rejected.state"),
    ("already_closed", "order.rejected.closed"),
)


def _reject(exc: BaseException) -> DeskError:
    text = str(exc)
    for needle, code in _REJECT_CODES:
        if needle in text:
            return OrderRejected(f"venue rejected the order: {text[:300]}", code=code)
    return OrderRejected(f"venue rejected the order: {text[:300]}", code="order.rejected.venue")


CCXT_ERRORS: tuple[ErrorRule, ...] = (
    (ccxt.AuthenticationError, lambda e: AuthError(f"venue refused the credentials: {str(e)[:200]}")),
    (
        ccxt.PermissionDenied,
        lambda e: AuthError(f"venue denied permission: {str(e)[:200]}", code="connector.auth.denied"),
    ),
    (ccxt.AccountSuspended, lambda e: AuthError(f"account suspended: {str(e)[:200]}", code="connector.auth.suspended")),
    (ccxt.InsufficientFunds, lambda e: InsufficientMargin(f"venue: not enough funds: {str(e)[:200]}")),
    (ccxt.OrderNotFound, lambda e: NotFound(f"venue does not know the order: {str(e)[:200]}", code="not_found.order")),
    (ccxt.InvalidOrder, _reject),
    (ccxt.BadSymbol, lambda e: UnknownInstrument(f"venue does not list it: {str(e)[:200]}")),
    (ccxt.RateLimitExceeded, lambda e: RateLimited(f"venue rate limit: {str(e)[:200]}")),
    (ccxt.DDoSProtection, lambda e: RateLimited(f"venue rate limit: {str(e)[:200]}")),
    (
        ccxt.OnMaintenance,
        lambda e: ConnectorError(f"venue in maintenance: {str(e)[:200]}", code="connector.maintenance"),
    ),
    (ccxt.RequestTimeout, lambda e: ConnectorError(f"venue timed out: {str(e)[:200]}", code="connector.timeout")),
    (ccxt.NetworkError, lambda e: ConnectorError(f"network: {str(e)[:200]}", code="connector.network")),
    (ccxt.BadRequest, lambda e: InvalidInput(f"venue refused the request: {str(e)[:200]}", code="input.venue")),
    (ccxt.ArgumentsRequired, lambda e: InvalidInput(f"{str(e)[:200]}", code="input.venue")),
    (ccxt.NotSupported, lambda e: ConnectorError(f"not supported: {str(e)[:200]}", code="connector.not_supported")),
    (ccxt.ExchangeError, lambda e: ConnectorError(f"venue error: {str(e)[:200]}", code="connector.venue")),
    (ccxt.BaseError, lambda e: ConnectorError(f"ccxt: {str(e)[:200]}", code="connector.error")),
)


def desk_error(exc: BaseException) -> DeskError:
    """The typed desk error for a ccxt (or any) exception."""
    return map_error(exc, CCXT_ERRORS)


def is_transient(exc: BaseException) -> bool:
    """True for connection losses a stream should survive (network errors, timeouts, maintenance)."""
    if isinstance(exc, ccxt.DDoSProtection):
        return False  # a rate limit is not a lost connection; the caller backs off differently
    if isinstance(exc, (ccxt.NetworkError, ConnectionError, OSError)):
        return True
    return isinstance(exc, ConnectorError) and exc.code in ("connector.network", "connector.disconnected")


# -- numbers --------------------------------------------------------------------------------------


def dec(value: Any) -> Decimal | None:
    """A ccxt number as an exact Decimal (through its shortest repr), or None."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and value != value:
        return None
    return Decimal(str(value))


def fnum(value: Any) -> float | None:
    """A ccxt number as a float, or None."""
    if value is None or value == "":
        return None
    out = float(value)
    return None if out != out else out


# -- markets --------------------------------------------------------------------------------------


def instrument_from_market(m: dict[str, Any], tbl: VenueTable) -> Instrument | None:
    """A ccxt market as a desk Instrument with the venue's conventions; None for what the desk cannot trade."""
    mtype = m.get("type")
    kind = {"option": Kind.OPTION, "future": Kind.FUTURE, "swap": Kind.PERPETUAL, "spot": Kind.SPOT}.get(str(mtype))
    if kind is None or kind is Kind.SPOT:
        return None
    base, settle = str(m["base"]), str(m.get("settle") or m["quote"])
    inverse = bool(m.get("inverse")) or settle == base
    contract_size = dec(m.get("contractSize")) or Decimal(1)
    tick = dec((m.get("precision") or {}).get("price"))
    if tick is None or tick <= 0:
        return None
    min_amount = dec(((m.get("limits") or {}).get("amount") or {}).get("min")) or dec(
        (m.get("precision") or {}).get("amount")
    )
    if min_amount is None or min_amount <= 0:
        min_amount = Decimal(1)
    if tbl.amount_in_contracts:
        min_amount = min_amount * contract_size
    # Desk convention (Deribit's): option and linear amounts are in coin with contract size 1; inverse futures
    # count USD with contract size = USD per contract. The venue's own unit is kept by the Catalog.
    desk_size = contract_size if (inverse and kind is not Kind.OPTION) else Decimal(1)
    if not tbl.amount_in_contracts:
        desk_size = contract_size
    expiry = None
    if kind in (Kind.FUTURE, Kind.OPTION):
        exp_ms = m.get("expiry")
        if exp_ms is None:
            return None
        expiry = datetime.fromtimestamp(int(exp_ms) / 1000, timezone.utc)
    strike = dec(m.get("strike")) if kind is Kind.OPTION else None
    opt = None
    if kind is Kind.OPTION:
        opt = OptionType.CALL if str(m.get("optionType")) == "call" else OptionType.PUT
        if strike is None:
            return None
    return Instrument(
        kind=kind,
        base=base,
        quote="USD" if inverse else settle,
        settlement=base if inverse else settle,
        inverse=inverse,
        tick_size=tick,
        min_amount=min_amount,
        contract_size=desk_size,
        tick_steps=tbl.tick_steps_of(m.get("info") or {}),
        expiry=expiry,
        strike=strike,
        option_type=opt,
        maker_fee=dec(m.get("maker")) or Decimal(0),
        taker_fee=dec(m.get("taker")) or Decimal(0),
        linear_tag=None if inverse else settle,
    )


# -- market data ----------------------------------------------------------------------------------


def quote_from_ticker(
    t: dict[str, Any],
    name: str,
    tbl: VenueTable,
    now_ms: int,
    extra: dict[str, Any] | None = None,
    size: Decimal = Decimal(1),
) -> Quote:
    """A ccxt ticker as a Quote: prices as sent, bid/ask sizes in desk amounts (contracts x ``size``, the venue's
    contract size, where ccxt counts contracts: OKX), IVs (fractions) and greeks from the venue's raw payload."""
    info = dict(t.get("info") or {})
    if extra:
        info.update(extra)
    ivs = tbl.ivs_of(info)
    mult = float(size) if tbl.amount_in_contracts else 1.0  # as book_from_ccxt, so a quote and a book agree
    bid, ask = fnum(t.get("bid")), fnum(t.get("ask"))
    bid_size, ask_size = fnum(t.get("bidVolume")), fnum(t.get("askVolume"))
    bid_size = bid_size if bid_size is not None else ivs.bid_size
    ask_size = ask_size if ask_size is not None else ivs.ask_size
    return Quote(
        ts=int(t.get("timestamp") or now_ms),
        instrument=name,
        bid=bid if bid is not None else ivs.bid,
        ask=ask if ask is not None else ivs.ask,
        bid_size=bid_size * mult if bid_size else 0.0,
        ask_size=ask_size * mult if ask_size else 0.0,
        mark_price=fnum(t.get("markPrice")),
        mark_iv=ivs.mark_iv,
        bid_iv=ivs.bid_iv,
        ask_iv=ivs.ask_iv,
        underlying_price=ivs.underlying_price,
        index_price=fnum(t.get("indexPrice")),
        open_interest=open_interest(t.get("openInterest"), info, tbl, size),
        venue=tbl.exchange,
        venue_delta=ivs.delta,
        venue_gamma=ivs.gamma,
        venue_vega=ivs.vega,
        venue_theta=ivs.theta,
    )


def open_interest(unified: Any, info: dict[str, Any], tbl: VenueTable, size: Decimal = Decimal(1)) -> float:
    """Open interest in desk amounts (coin for options and linear contracts, USD for inverse futures): ccxt's unified
    ``openInterest`` when it has one, else the venue's raw key (Deribit ``open_interest``, Bybit ``openInterest``,
    OKX ``oi``); contracts x ``size`` where ccxt counts contracts (OKX). 0.0 when the venue sent none."""
    value = fnum(unified)
    if value is None:
        value = fnum(info.get(tbl.oi_key))
    if value is None:
        return 0.0
    return value * float(size) if tbl.amount_in_contracts else value


def quote_from_chain_row(
    row: dict[str, Any], name: str, tbl: VenueTable, now_ms: int, size: Decimal = Decimal(1)
) -> Quote:
    """A ``fetch_option_chain`` row as a Quote; ccxt leaves impliedVolatility empty, so IVs come from ``info``;
    open interest in desk amounts (``size``: the venue's contract size)."""
    info = row.get("info") or {}
    ivs = tbl.ivs_of(info)
    return Quote(
        ts=int(row.get("timestamp") or now_ms),
        instrument=name,
        bid=fnum(row.get("bidPrice")),
        ask=fnum(row.get("askPrice")),
        mark_price=fnum(row.get("markPrice")),
        mark_iv=ivs.mark_iv if ivs.mark_iv is not None else fnum(row.get("impliedVolatility")),
        underlying_price=fnum(row.get("underlyingPrice")),
        open_interest=open_interest(row.get("openInterest"), info, tbl, size),
        venue=tbl.exchange,
    )


def book_from_ccxt(
    ob: dict[str, Any], name: str, tbl: VenueTable, size: Decimal, now_ms: int, snapshot: bool = True
) -> BookUpdate:
    """A ccxt order book (REST ``[p, a]`` or pro ``[p, a, count]`` levels) as a snapshot BookUpdate in desk amounts."""
    mult = float(size) if tbl.amount_in_contracts else 1.0
    bids = tuple((float(lv[0]), float(lv[1]) * mult) for lv in ob.get("bids") or [])
    asks = tuple((float(lv[0]), float(lv[1]) * mult) for lv in ob.get("asks") or [])
    return BookUpdate(
        ts=int(ob.get("timestamp") or now_ms),
        instrument=name,
        bids=bids,
        asks=asks,
        snapshot=snapshot,
        sequence=int(ob.get("nonce") or 0),
        venue=tbl.exchange,
    )


def public_trade(t: dict[str, Any], name: str, tbl: VenueTable, size: Decimal, now_ms: int) -> Trade:
    """A public trade print in desk amounts."""
    mult = float(size) if tbl.amount_in_contracts else 1.0
    return Trade(
        ts=int(t.get("timestamp") or now_ms),
        instrument=name,
        price=float(t["price"]),
        amount=float(t["amount"]) * mult,
        side=Side(t.get("side") or "buy"),
        trade_id=str(t.get("id") or ""),
        venue=tbl.exchange,
    )


# -- orders and fills -----------------------------------------------------------------------------

_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
}
_TIF = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK, "PO": TimeInForce.GTC}


def to_venue_amount(amount: Decimal, size: Decimal, tbl: VenueTable) -> Decimal:
    """A desk amount in the unit ccxt expects on this venue (contracts of ``size`` on OKX)."""
    return amount / size if tbl.amount_in_contracts else amount


def from_venue_amount(value: Any, size: Decimal, tbl: VenueTable) -> Decimal:
    """A ccxt amount back in desk units."""
    out = dec(value) or Decimal(0)
    return out * size if tbl.amount_in_contracts else out


def order_from_ccxt(
    o: dict[str, Any],
    name: str,
    inst: Instrument,
    tbl: VenueTable,
    size: Decimal,
    account: str = "main",
    sent: OrderRequest | None = None,
) -> Order:
    """A ccxt order as a desk Order; fields a bare acknowledgement lacks come from the request ``sent``."""
    info = o.get("info") or {}
    amount = from_venue_amount(o.get("amount"), size, tbl)
    if amount <= 0:
        amount = sent.amount if sent is not None else inst.min_amount
    kind = o.get("type") or (sent.type.value if sent is not None else "limit")
    otype = OrderType.MARKET if kind == "market" else OrderType.LIMIT
    price = dec(o.get("price"))
    if price is None and sent is not None:
        price = sent.price
    if otype is OrderType.LIMIT and price is None:
        price = dec(o.get("average")) or Decimal(0)
    status = _STATUS.get(str(o.get("status")), OrderStatus.OPEN)
    side = o.get("side") or (sent.side.value if sent is not None else "buy")
    req = OrderRequest(
        instrument=name,
        side=Side(str(side)),
        amount=amount,
        price=price,
        type=otype,
        tif=_TIF.get(str(o.get("timeInForce") or "GTC"), TimeInForce.GTC) if sent is None else sent.tif,
        post_only=(bool(o.get("postOnly")) or (sent is not None and sent.post_only)) and otype is OrderType.LIMIT,
        reduce_only=bool(o.get("reduceOnly")) or (sent is not None and sent.reduce_only),
        client_order_id=o.get("clientOrderId") or tbl.label_of(info) or (sent.client_order_id if sent else None),
        account=account,
    )
    return Order(
        order_id=str(o["id"]),
        request=req,
        status=status,
        filled=from_venue_amount(o.get("filled"), size, tbl),
        average_price=dec(o.get("average")) or None,
        ts=int(o.get("lastUpdateTimestamp") or o.get("timestamp") or 0),
    )


def report_from_order(order: Order) -> OrderStatusReport:
    """An Order as a reconciliation report."""
    return OrderStatusReport(
        order_id=order.order_id,
        client_order_id=order.request.client_order_id,
        instrument=order.instrument,
        status=order.status.value,
        filled=order.filled,
        amount=order.request.amount,
        price=order.request.price,
        ts=order.ts,
    )


def fill_from_ccxt(
    t: dict[str, Any],
    name: str,
    inst: Instrument,
    tbl: VenueTable,
    size: Decimal,
    labels: dict[str, str],
    account: str = "main",
) -> Fill:
    """A ccxt ``my trade`` as a desk Fill: fee in its currency, positive = paid, negative = a maker rebate; client
    order id from the venue or our map."""
    info = t.get("info") or {}
    # ccxt's unified fee.cost is positive when paid and negative for a rebate on every venue (it negates OKX's
    # fee, where the wire's negative means charged; Bybit's execFee and Deribit's fee already read that way), which
    # is the desk's convention: the sign is kept, or rebates would be booked as charges.
    fee = t.get("fee") or {}
    order_id = str(t.get("order") or "")
    return Fill(
        trade_id=str(t["id"]),
        order_id=order_id,
        instrument=name,
        side=Side(str(t["side"])),
        price=dec(t["price"]) or Decimal(0),
        amount=from_venue_amount(t.get("amount"), size, tbl),
        fee=dec(fee.get("cost")) or Decimal(0),
        fee_currency=str(fee.get("currency") or inst.settlement),
        liquidity=Liquidity.MAKER if t.get("takerOrMaker") == "maker" else Liquidity.TAKER,
        ts=int(t.get("timestamp") or 0),
        account=account,
        client_order_id=tbl.label_of(info) or labels.get(order_id),
        venue=tbl.exchange,
        index_price=fnum(info.get("index_price")),
    )


def position_from_ccxt(p: dict[str, Any], name: str, tbl: VenueTable, size: Decimal) -> PositionStatusReport:
    """A ccxt position as a reconciliation report; size signed in desk units."""
    amount = abs(from_venue_amount(p.get("contracts"), size, tbl))
    if p.get("side") == "short":
        amount = -amount
    info = p.get("info") or {}
    return PositionStatusReport(
        instrument=name,
        size=amount,
        average_price=dec(p.get("entryPrice")) or Decimal(0),
        ts=int(p.get("timestamp") or 0),
        realized_funding=dec(info.get("realized_funding")),  # Deribit's field; other venues leave it None
    )


def net_positions(reports: list[PositionStatusReport], inverse: dict[str, bool]) -> list[PositionStatusReport]:
    """One report per instrument, signed in one-way terms: the legs of a long/short (hedge) mode account and
    cross/isolated rows of one instrument summed (desk units); zero nets are left out.

    The average price is the entry of the side that remains (closing part of a position does not move its entry
    in one-way terms), size-weighted over that side's legs (harmonically where ``inverse[instrument]``: USD
    amounts). Realized funding adds up; ts is the latest leg's.
    """
    legs: dict[str, list[PositionStatusReport]] = {}
    for rep in reports:
        legs.setdefault(rep.instrument, []).append(rep)
    out: list[PositionStatusReport] = []
    for name, rows in legs.items():
        size = sum((r.size for r in rows), Decimal(0))
        if size == 0:
            continue
        if len(rows) == 1:
            out.append(rows[0])
            continue
        side = [r for r in rows if (r.size > 0) == (size > 0) and r.size != 0]
        weight = sum((abs(r.size) for r in side), Decimal(0))
        priced = [r for r in side if r.average_price > 0]
        price = Decimal(0)
        if priced and inverse.get(name):
            price = weight / sum((abs(r.size) / r.average_price for r in priced), Decimal(0))
        elif priced:
            price = sum((abs(r.size) * r.average_price for r in priced), Decimal(0)) / weight
        funding = [r.realized_funding for r in rows if r.realized_funding is not None]
        out.append(
            PositionStatusReport(
                instrument=name,
                size=size,
                average_price=price,
                ts=max(r.ts for r in rows),
                realized_funding=sum(funding, Decimal(0)) if funding else None,
            )
        )
    return out


def _first(items: Any) -> dict[str, Any]:
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}


def _dsum(*values: Any) -> Decimal | None:
    parts = [d for d in (dec(v) for v in values) if d is not None]
    return sum(parts, Decimal(0)) if parts else None


def _margin_figures(info: Any, currency: str) -> dict[str, Any] | None:
    """The venue's own account figures of ``currency`` from ccxt's raw balance ``info``, or None for a shape not known.

    Keys: raw (the venue's row, plus ``margin_balance`` where the venue names one), balance, equity, available, im,
    mm (Decimals or None). Units are the currency's own, except ``USD``: the account-wide figures of a cross-currency
    margin account (OKX multi-currency / portfolio margin, Bybit UNIFIED), which the venues report in USD.
    """
    if not isinstance(info, dict):
        return None
    # Deribit: get_account_summary(currency) or get_account_summaries, in the currency (coin, or USDC)
    summary = info if info.get("currency") == currency else None
    for row in info.get("summaries") or []:
        if row.get("currency") == currency:
            summary = row
    if summary is not None:
        return {
            "raw": dict(summary),
            "balance": dec(summary.get("balance")),
            "equity": dec(summary.get("equity")),
            "available": dec(summary.get("available_funds")),
            "im": dec(summary.get("initial_margin")),
            "mm": dec(summary.get("maintenance_margin")),
        }
    # OKX /account/balance: data[0] is the account (imr/mmr/adjEq/totalEq in USD, filled in multi-currency and
    # portfolio margin modes); details[] one row per currency (imr/mmr in the currency, filled in futures mode with
    # cross positions)
    okx = _first(info.get("data"))
    if "details" in okx:
        if currency == "USD":
            account = {k: v for k, v in okx.items() if k != "details"}
            equity = dec(okx.get("adjEq")) or dec(okx.get("totalEq"))
            im = dec(okx.get("imr"))
            return {
                "raw": {**account, "margin_balance": okx.get("adjEq") or okx.get("totalEq")},
                "balance": dec(okx.get("totalEq")),
                "equity": equity,
                "available": equity - im if equity is not None and im is not None else None,
                "im": im,
                "mm": dec(okx.get("mmr")),
            }
        row = next((d for d in okx.get("details") or [] if d.get("ccy") == currency), None)
        if row is None:
            return None
        return {
            "raw": dict(row),
            "balance": dec(row.get("cashBal")),
            "equity": dec(row.get("eq")),
            "available": dec(row.get("availEq")) or dec(row.get("availBal")),
            "im": dec(row.get("imr")),
            "mm": dec(row.get("mmr")),
        }
    # Bybit /v5/account/wallet-balance: result.list[0] is the account (total* in USD, account-wide in UNIFIED);
    # coin[] one row per coin (totalPositionIM + totalOrderIM, totalPositionMM in the coin; empty in portfolio margin)
    result = info.get("result")
    bybit = _first(result.get("list")) if isinstance(result, dict) else {}
    if "coin" in bybit:
        if currency == "USD":
            account = {k: v for k, v in bybit.items() if k != "coin"}
            return {
                "raw": {**account, "margin_balance": bybit.get("totalMarginBalance")},
                "balance": dec(bybit.get("totalWalletBalance")),
                "equity": dec(bybit.get("totalEquity")),
                "available": dec(bybit.get("totalAvailableBalance")),
                "im": dec(bybit.get("totalInitialMargin")),
                "mm": dec(bybit.get("totalMaintenanceMargin")),
            }
        row = next((c for c in bybit.get("coin") or [] if c.get("coin") == currency), None)
        if row is None:
            return None
        return {
            "raw": dict(row),
            "balance": dec(row.get("walletBalance")),
            "equity": dec(row.get("equity")),
            "available": dec(row.get("availableToWithdraw")),
            "im": _dsum(row.get("totalPositionIM"), row.get("totalOrderIM")),
            "mm": dec(row.get("totalPositionMM")),
        }
    return None


def account_from_balance(bal: dict[str, Any], currency: str) -> AccountReport:
    """A ccxt balance of one currency as an AccountReport, IM/MM as the venue computes them, in ``currency``.

    Deribit: the account summary of the currency. OKX: the currency's ``details`` row (imr, mmr: futures mode).
    Bybit: the coin row (totalPositionIM + totalOrderIM, totalPositionMM). ``currency="USD"`` on OKX and Bybit:
    the account-wide USD figures of a cross-currency margin account (OKX imr/mmr/adjEq, Bybit UNIFIED
    totalInitialMargin/totalMaintenanceMargin/totalMarginBalance); ``raw["margin_balance"]`` holds its margin balance.
    """
    cur = bal.get(currency) or {}
    found = _margin_figures(bal.get("info"), currency) or {}
    total = dec(cur.get("total"))

    def first(*values: Decimal | None) -> Decimal:
        return next((v for v in values if v is not None), Decimal(0))

    return AccountReport(
        currency=currency,
        balance=first(found.get("balance"), total),
        equity=first(found.get("equity"), total),
        initial_margin=first(found.get("im")),
        maintenance_margin=first(found.get("mm")),
        available_funds=first(dec(cur.get("free")), found.get("available")),
        raw=dict(found.get("raw") or {}),
    )
