"""Deribit's JSON-RPC envelope and error codes, and the translation of desk errors into them.

{"jsonrpc": "2.0", "id": 7, "result": ..., "usIn": ..., "usOut": ..., "usDiff": ..., "testnet": true}
{"jsonrpc": "2.0", "id": 7, "error": {"code": 10043, "message": "price_wrong_tick", "data": {...}}, ...}
"""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

from app.errors import (
    AuthError,
    DeskError,
    InsufficientMargin,
    InvalidInput,
    InvalidInstrument,
    NotFound,
    OrderRejected,
    RateLimited,
    UnknownInstrument,
)


class RpcError(Exception):
    """An error answer in Deribit's shape: numeric ``code``, short ``message``, optional ``data``."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        """The ``error`` object of the envelope."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


# Deribit error codes (docs.deribit.com/articles/errors; ccxt's map reproduces them).
UNAUTHORIZED = RpcError(13009, "unauthorized")
AUTH_REQUIRED = 10000
INVALID_CREDENTIALS = 13004
QTY_TOO_LOW = 10002
ORDER_OVERLAP = 10003
ORDER_NOT_FOUND = 10004
PRICE_TOO_LOW = 10005
PRICE_TOO_HIGH = 10007
NOT_ENOUGH_FUNDS = 10009
ALREADY_CLOSED = 10010
BOOK_CLOSED = 10012
INVALID_INSTRUMENT = 10020
INVALID_AMOUNT = 10021
INVALID_PRICE = 10023
NON_INTEGER_CONTRACTS = 10027
TOO_MANY_REQUESTS = 10028
PRICE_WRONG_TICK = 10043
OTHER_REJECT = 11030
RETRY = 10040
INTERNAL = 11094
BAD_REQUEST = 11050
POST_ONLY_REJECT = 11054
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
PARSE_ERROR = -32700

_BAND = re.compile(r"price (?P<price>[0-9.]+) is outside the band \[(?P<lo>[0-9.]+), (?P<hi>[0-9.]+)\]")

# desk error code (prefix match, longest first) -> (Deribit code, message)
_DESK_TO_WIRE: tuple[tuple[str, int, str], ...] = (
    ("order.rejected.tick", PRICE_WRONG_TICK, "price_wrong_tick"),
    ("order.rejected.lot", INVALID_AMOUNT, "invalid_amount"),
    ("order.rejected.min_amount", QTY_TOO_LOW, "qty_too_low"),
    ("order.rejected.amount", INVALID_AMOUNT, "invalid_amount"),
    ("order.rejected.price_band_low", PRICE_TOO_LOW, "price_too_low"),
    ("order.rejected.price_band_high", PRICE_TOO_HIGH, "price_too_high"),
    ("order.rejected.price_band", PRICE_TOO_HIGH, "price_too_high"),
    ("order.rejected.price", INVALID_PRICE, "invalid_price"),
    ("order.rejected.post_only", POST_ONLY_REJECT, "post_only_reject"),
    ("order.rejected.self_trade", ORDER_OVERLAP, "order_overlap"),
    ("order.rejected.closed", ALREADY_CLOSED, "already_closed"),
    ("order.rejected.not_open", ALREADY_CLOSED, "already_closed"),
    ("order.rejected.halted", BOOK_CLOSED, "book_closed"),
    ("order.rejected.state", BOOK_CLOSED, "book_closed"),
    ("order.rejected.expired", BOOK_CLOSED, "book_closed"),
    ("order.unknown", ORDER_NOT_FOUND, "order_not_found"),
    ("order.not_found", ORDER_NOT_FOUND, "order_not_found"),
    ("margin.no", RETRY, "retry"),  # no index / no mark yet: Deribit's "retry"
    ("margin.missing", RETRY, "retry"),
    ("margin.insufficient", NOT_ENOUGH_FUNDS, "not_enough_funds"),
    ("instrument", INVALID_INSTRUMENT, "invalid_or_unsupported_instrument"),
    ("not_found", ORDER_NOT_FOUND, "order_not_found"),
    ("connector.rate_limited", TOO_MANY_REQUESTS, "too_many_requests"),
    ("connector.auth", 13009, "unauthorized"),
    ("input", INVALID_PARAMS, "Invalid params"),
)


def rpc_error_from(exc: DeskError) -> RpcError:
    """The Deribit error answering a desk error (its code and message kept in ``data``)."""
    code = exc.code
    if code == "order.rejected.band":  # the engine's price band: Deribit says which side of it
        m = _BAND.search(exc.message)
        low = m is not None and Decimal(m["price"]) < Decimal(m["lo"])
        return RpcError(
            PRICE_TOO_LOW if low else PRICE_TOO_HIGH,
            "price_too_low" if low else "price_too_high",
            {"reason": exc.message, "desk_code": code},
        )
    for prefix, wire_code, message in _DESK_TO_WIRE:
        if code == prefix or code.startswith(prefix + ".") or code.startswith(prefix + "_"):
            return RpcError(wire_code, message, {"reason": exc.message, "desk_code": code})
    if isinstance(exc, InsufficientMargin):
        return RpcError(NOT_ENOUGH_FUNDS, "not_enough_funds", {"reason": exc.message, "desk_code": code})
    if isinstance(exc, NotFound):
        return RpcError(ORDER_NOT_FOUND, "order_not_found", {"reason": exc.message, "desk_code": code})
    if isinstance(exc, (UnknownInstrument, InvalidInstrument)):
        return RpcError(INVALID_INSTRUMENT, "invalid_or_unsupported_instrument", {"reason": exc.message})
    if isinstance(exc, AuthError):
        return RpcError(13009, "unauthorized", {"reason": exc.message})
    if isinstance(exc, RateLimited):
        return RpcError(TOO_MANY_REQUESTS, "too_many_requests")
    if isinstance(exc, OrderRejected):
        return RpcError(OTHER_REJECT, f"other_reject {code}", {"reason": exc.message, "desk_code": code})
    if isinstance(exc, InvalidInput):
        return RpcError(INVALID_PARAMS, "Invalid params", {"reason": exc.message, "desk_code": code})
    return RpcError(OTHER_REJECT, f"other_reject {code}", {"reason": exc.message, "desk_code": code})


def invalid_param(param: str, reason: str) -> RpcError:
    """Deribit's ``-32602 Invalid params`` with the offending parameter named."""
    return RpcError(INVALID_PARAMS, "Invalid params", {"reason": reason, "param": param})


def envelope(request_id: Any, *, result: Any = None, error: RpcError | None = None, us_in: int) -> dict[str, Any]:
    """A complete response with Deribit's timing fields (microseconds) and ``testnet: true``."""
    us_out = time.time_ns() // 1000
    out: dict[str, Any] = {"jsonrpc": "2.0"}
    if request_id is not None:
        out["id"] = request_id
    if error is not None:
        out["error"] = error.to_json()
    else:
        out["result"] = result
    out.update({"testnet": True, "usIn": us_in, "usOut": us_out, "usDiff": max(0, us_out - us_in)})
    return out


def notification(channel: str, data: Any) -> dict[str, Any]:
    """A subscription push."""
    return {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
