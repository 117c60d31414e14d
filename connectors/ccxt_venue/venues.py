"""What differs between Deribit, OKX and Bybit behind ccxt's unified API, kept in one small table per venue.

Everything else (markets, tickers, books, orders, positions) goes through the same unified code.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
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
    # OKX option tickers carry no IV; the option summary of the underlying does (one call per chain).
    response = await ex.public_get_public_opt_summary({"uly": f"{base}-USD"})
    return {row["instId"]: row for row in response.get("data") or []}


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
)

TABLES: dict[str, VenueTable] = {t.exchange: t for t in (DERIBIT, OKX, BYBIT)}


def table(exchange: str) -> VenueTable:
    """The table of a supported exchange; ConfigError otherwise."""
    found = TABLES.get(exchange)
    if found is None:
        raise ConfigError(f"unsupported exchange {exchange!r} (expected one of {', '.join(TABLES)})", key="exchange")
    return found
