"""What differs between Deribit, OKX and Bybit behind ccxt's unified API, kept in one small table per venue.

Everything else (markets, tickers, books, orders, positions) goes through the same unified code.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.domain import TickSteps
from app.errors import ConfigError


def _f(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None  # NaN -> None


@dataclass(frozen=True, slots=True)
class VenueIVs:
    """IVs (fractions) and greeks a venue puts in a ticker's raw ``info``."""

    mark_iv: float | None = None
    bid_iv: float | None = None
    ask_iv: float | None = None
    underlying_price: float | None = None
    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None
    # top of book from the raw payload, for tickers ccxt does not parse fully (Bybit option websocket)
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None


def _deribit_ivs(info: dict[str, Any]) -> VenueIVs:
    greeks = info.get("greeks") or {}

    def pct(key: str) -> float | None:
        v = _f(info.get(key))
        return None if v is None or v <= 0 else v / 100.0  # Deribit sends percent; 0 means "no quote"

    return VenueIVs(
        pct("mark_iv"),
        pct("bid_iv"),
        pct("ask_iv"),
        _f(info.get("underlying_price")),
        _f(greeks.get("delta")),
        _f(greeks.get("gamma")),
        _f(greeks.get("vega")),
        _f(greeks.get("theta")),
    )


def _bybit_ivs(info: dict[str, Any]) -> VenueIVs:
    def frac(*keys: str) -> float | None:
        for key in keys:  # REST and websocket tickers name the IVs differently
            v = _f(info.get(key))
            if v is not None and v > 0:
                return v
        return None

    return VenueIVs(
        frac("markIv", "markPriceIv"),
        frac("bid1Iv", "bidIv"),
        frac("ask1Iv", "askIv"),
        _f(info.get("underlyingPrice")),
        _f(info.get("delta")),
        _f(info.get("gamma")),
        _f(info.get("vega")),
        _f(info.get("theta")),
        frac("bid1Price", "bidPrice"),
        frac("ask1Price", "askPrice"),
        _f(info.get("bid1Size", info.get("bidSize"))),
        _f(info.get("ask1Size", info.get("askSize"))),
    )


def _okx_ivs(info: dict[str, Any]) -> VenueIVs:
    # OKX tickers carry no IV; the greeks endpoint (public/opt-summary) does, as fractions.
    def frac(key: str) -> float | None:
        v = _f(info.get(key))
        return None if v is None or v <= 0 else v

    return VenueIVs(
        frac("markVol"),
        frac("bidVol"),
        frac("askVol"),
        _f(info.get("fwdPx")),
        _f(info.get("deltaBS")),
        _f(info.get("gammaBS")),
        _f(info.get("vegaBS")),
        _f(info.get("thetaBS")),
    )


def _deribit_steps(info: dict[str, Any]) -> TickSteps:
    steps = info.get("tick_size_steps") or []
    return tuple(sorted((Decimal(str(s["above_price"])), Decimal(str(s["tick_size"]))) for s in steps))


def _no_steps(info: dict[str, Any]) -> TickSteps:
    return ()


def _deribit_label(info: dict[str, Any]) -> str | None:
    return info.get("label") or None


def _okx_label(info: dict[str, Any]) -> str | None:
    return info.get("clOrdId") or None


def _bybit_label(info: dict[str, Any]) -> str | None:
    return info.get("orderLinkId") or None


def _set_urls_deribit(ex: Any, rest: str | None, ws: str | None) -> None:
    api = dict(ex.urls.get("api", {}))
    if rest:
        api["rest"] = rest
    if ws:
        api["ws"] = ws
    ex.urls["api"] = api
    ex.urls["test"] = dict(api)


def _set_urls_okx(ex: Any, rest: str | None, ws: str | None) -> None:
    api = dict(ex.urls.get("api", {}))
    if rest:
        api["rest"] = rest
    if ws:
        api["ws"] = ws
    ex.urls["api"] = api
    ex.urls["test"] = dict(api)


def _set_urls_bybit(ex: Any, rest: str | None, ws: str | None) -> None:
    api = dict(ex.urls.get("api", {}))
    if rest:
        for key in ("spot", "futures", "v2", "public", "private"):
            api[key] = rest
    if ws:
        base = ws.rstrip("/")
        api["ws"] = {
            "public": {
                "spot": f"{base}/v5/public/spot",
                "inverse": f"{base}/v5/public/inverse",
                "option": f"{base}/v5/public/option",
                "linear": f"{base}/v5/public/linear",
            },
            "private": {
                "spot": f"{base}/v5/private",
                "contract": f"{base}/v5/private",
                "unified": f"{base}/v5/private",
            },
        }
    ex.urls["api"] = api
    ex.urls["test"] = dict(api)


async def _okx_chain_ivs(ex: Any, base: str) -> dict[str, dict[str, Any]]:
    # OKX option tickers carry no IV and no open interest; the option summary of the underlying has the IVs and
    # public/open-interest the ``oi`` (contracts) of every option of it: one call each per chain.
    uly = f"{base}-USD"
    response = await ex.public_get_public_opt_summary({"uly": uly})
    rows = {row["instId"]: dict(row) for row in response.get("data") or []}
    interest = await ex.public_get_public_open_interest({"instType": "OPTION", "uly": uly})
    for row in interest.get("data") or []:
        rows.setdefault(row["instId"], {}).update({k: row.get(k) for k in ("oi", "oiCcy")})
    return rows


# -- scopes: which queries cover every order, fill and position of the instruments the desk trades ---------------
#
# Without a symbol, ccxt fills in a default market type (OKX: instType=SPOT; Bybit: category=linear with
# settleCoin=USDT), so a symbol-less query silently misses options, inverse and USDC-settled contracts. Each venue
# therefore gets one query per segment of the listing the desk loaded. ``call`` is "open" (open orders), "closed"
# (order history), "trades" (our executions) or "positions".

Scope = dict[str, Any]  # ccxt params of one query


def _dedupe(scopes: list[Scope]) -> list[Scope]:
    out: list[Scope] = []
    for scope in scopes:
        if scope not in out:
            out.append(scope)
    return out


def _deribit_scopes(call: str, markets: Iterable[dict[str, Any]]) -> list[Scope]:
    if call == "positions":
        return [{}]  # private/get_positions without a currency answers for every currency
    # the *_by_currency endpoints take one settlement currency (BTC, ETH, USDC) each
    return [{"code": c} for c in sorted({str(m.get("settle") or m.get("quote")) for m in markets})]


_OKX_INST_TYPE = {"option": "OPTION", "swap": "SWAP", "future": "FUTURES"}


def _okx_scopes(call: str, markets: Iterable[dict[str, Any]]) -> list[Scope]:
    if call == "positions":
        return [{}]  # /account/positions without instType answers for every instrument type
    # /trade/orders-history and /trade/fills-history REQUIRE instType (ccxt would send SPOT); instFamily (BTC-USD)
    # narrows each query to one underlying so its 100-row page holds only what the desk trades.
    pairs = set()
    for m in markets:
        info = m.get("info") or {}
        kind = _OKX_INST_TYPE.get(str(m.get("type")))
        if kind is not None:
            pairs.add((kind, str(info.get("instFamily") or info.get("uly") or "")))
    return [{"instType": t, "instFamily": f} if f else {"instType": t} for t, f in sorted(pairs)]


def _bybit_scopes(call: str, markets: Iterable[dict[str, Any]]) -> list[Scope]:
    # Bybit v5 answers one ``category`` per query; linear (and ccxt's inverse) open orders and positions also need
    # a settle coin. Params are ccxt's documented ones: ``type`` option|swap, ``subType`` linear|inverse,
    # ``settleCoin``, ``baseCoin``.
    segments = set()
    for m in markets:
        if m.get("type") == "option":
            # per base coin: some option lists answer one base coin (BTC) when none is named
            segments.add(("option", str(m.get("base") or "")))
        else:
            segments.add(("inverse" if m.get("inverse") else "linear", str(m.get("settle") or "")))
    out: list[Scope] = []
    for category, coin in sorted(segments):
        if category == "option":
            out.append({"type": "option", "baseCoin": coin} if coin else {"type": "option"})
            continue
        scope: Scope = {"type": "swap", "subType": category}
        if call != "trades" and coin:  # /v5/execution/list has no settleCoin filter: one query per category
            scope["settleCoin"] = coin
        out.append(scope)
    return _dedupe(out)


# -- closed orders: every order that ended (filled, cancelled with or without fills) --------------------------------


async def _closed_unified(ex: Any, params: Scope) -> list[dict[str, Any]]:
    # Deribit's order history holds filled and cancelled orders alike
    return list(await ex.fetch_closed_orders(None, None, None, params))


async def _closed_bybit(ex: Any, params: Scope) -> list[dict[str, Any]]:
    # fetch_closed_orders sends orderStatus=Filled; without orderStatus /v5/order/history returns every final state
    return list(await ex.fetch_canceled_and_closed_orders(None, None, None, params))


async def _closed_okx(ex: Any, params: Scope) -> list[dict[str, Any]]:
    # ccxt's fetch_closed_orders always sends state=filled and fetch_canceled_orders state=canceled; OKX's
    # /trade/orders-history without ``state`` returns both (and mmp_canceled), so a cancelled order with fills is seen.
    response = await ex.private_get_trade_orders_history(dict(params))
    return list(ex.parse_orders(response.get("data") or []))


@dataclass(frozen=True, slots=True)
class VenueTable:
    """One venue's differences: ccxt id, client-order-id field, where IVs live, amount unit, URL layout."""

    exchange: str
    client_id_param: str  # create_order param carrying our client order id
    label_of: Callable[[dict[str, Any]], str | None]  # client order id from a raw order
    ivs_of: Callable[[dict[str, Any]], VenueIVs]  # IVs/greeks from a raw ticker (or greeks) payload
    tick_steps_of: Callable[[dict[str, Any]], TickSteps]
    set_urls: Callable[[Any, str | None, str | None], None]
    amount_in_contracts: bool  # ccxt amounts are contracts (x contractSize = desk amount)
    ivs_in_ticker: bool  # False: fetch greeks separately for IVs (OKX)
    option_settles: dict[str, str] = field(default_factory=dict)  # base -> settle currency of its options
    currencies: tuple[str, ...] = ("BTC", "ETH")
    options: dict[str, Any] = field(default_factory=dict)  # ccxt constructor options
    max_label: int = 64
    label_pattern: re.Pattern[str] = re.compile(r"^[\x21-\x7e]{1,64}$")  # what the venue accepts as client id
    chain_ivs: Callable[[Any, str], Awaitable[dict[str, dict[str, Any]]]] | None = None  # venue id -> raw IV row
    fetch_order_params: dict[str, Any] = field(default_factory=dict)
    needs_passphrase: bool = False
    book_sequence: bool = False  # book deltas carry change_id / prev_change_id (Deribit)
    scopes: Callable[[str, Iterable[dict[str, Any]]], list[Scope]] = _deribit_scopes  # queries per listing segment
    closed_orders: Callable[[Any, Scope], Awaitable[list[dict[str, Any]]]] = _closed_unified  # ended orders
    oi_key: str = "open_interest"  # raw ticker key of open interest (venue units: contracts on OKX)
    oi_in_ticker: bool = True  # False: a quote asks the venue's open-interest endpoint (OKX)


DERIBIT = VenueTable(
    exchange="deribit",
    client_id_param="label",
    label_of=_deribit_label,
    ivs_of=_deribit_ivs,
    tick_steps_of=_deribit_steps,
    set_urls=_set_urls_deribit,
    amount_in_contracts=False,
    ivs_in_ticker=True,
    currencies=("BTC", "ETH", "USDC"),
    book_sequence=True,
)

OKX = VenueTable(
    exchange="okx",
    client_id_param="clOrdId",
    label_of=_okx_label,
    ivs_of=_okx_ivs,
    tick_steps_of=_no_steps,
    set_urls=_set_urls_okx,
    amount_in_contracts=True,
    ivs_in_ticker=False,
    currencies=("BTC", "ETH"),
    options={"fetchMarkets": {"types": ["swap", "option"]}, "defaultUnderlying": ["BTC-USD", "ETH-USD"]},
    max_label=32,
    label_pattern=re.compile(r"^[A-Za-z0-9]{1,32}$"),
    chain_ivs=_okx_chain_ivs,
    needs_passphrase=True,
    scopes=_okx_scopes,
    closed_orders=_closed_okx,
    oi_key="oi",
    oi_in_ticker=False,
)

BYBIT = VenueTable(
    exchange="bybit",
    client_id_param="orderLinkId",
    label_of=_bybit_label,
    ivs_of=_bybit_ivs,
    tick_steps_of=_no_steps,
    set_urls=_set_urls_bybit,
    amount_in_contracts=False,
    ivs_in_ticker=True,
    currencies=("USDC", "USDT"),
    options={
        "fetchMarkets": {"types": ["linear", "option"], "options": ["BTC", "ETH"]},
        "enableUnifiedAccount": True,
        "enableUnifiedMargin": False,
    },
    max_label=36,
    label_pattern=re.compile(r"^[A-Za-z0-9_-]{1,36}$"),
    fetch_order_params={"acknowledged": True},
    scopes=_bybit_scopes,
    closed_orders=_closed_bybit,
    oi_key="openInterest",
)

TABLES: dict[str, VenueTable] = {t.exchange: t for t in (DERIBIT, OKX, BYBIT)}


def table(exchange: str) -> VenueTable:
    """The table of a supported exchange; ConfigError otherwise."""
    found = TABLES.get(exchange)
    if found is None:
        raise ConfigError(f"unsupported exchange {exchange!r} (expected one of {', '.join(TABLES)})", key="exchange")
    return found
