"""JSON-lines wire of the SIGKILL harness: orders, fills and reports to and from plain dicts."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from app.domain import Fill, Liquidity, Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from app.ports import OrderStatusReport


def req_to(r: OrderRequest) -> dict[str, Any]:
    return {"instrument": r.instrument, "side": r.side.value, "amount": str(r.amount), "price": None if r.price is None else str(r.price),
            "type": r.type.value, "tif": r.tif.value, "post_only": r.post_only, "reduce_only": r.reduce_only,
            "client_order_id": r.client_order_id, "account": r.account, "reason": r.reason}


def req_from(d: dict[str, Any]) -> OrderRequest:
    return OrderRequest(d["instrument"], Side(d["side"]), Decimal(d["amount"]), None if d["price"] is None else Decimal(d["price"]),
                        OrderType(d["type"]), TimeInForce(d["tif"]), d["post_only"], d["reduce_only"], d["client_order_id"],
                        d["account"], d["reason"])


def order_to(o: Order) -> dict[str, Any]:
    return {"order_id": o.order_id, "request": req_to(o.request), "status": o.status.value, "filled": str(o.filled),
            "average_price": None if o.average_price is None else str(o.average_price), "ts": o.ts, "reject_code": o.reject_code}


def order_from(d: dict[str, Any]) -> Order:
    return Order(d["order_id"], req_from(d["request"]), OrderStatus(d["status"]), Decimal(d["filled"]),
                 None if d["average_price"] is None else Decimal(d["average_price"]), d["ts"], d["reject_code"])


def fill_to(f: Fill) -> dict[str, Any]:
    return {"trade_id": f.trade_id, "order_id": f.order_id, "instrument": f.instrument, "side": f.side.value, "price": str(f.price),
            "amount": str(f.amount), "fee": str(f.fee), "fee_currency": f.fee_currency, "liquidity": f.liquidity.value, "ts": f.ts,
            "account": f.account, "client_order_id": f.client_order_id, "venue": f.venue, "index_price": f.index_price}


def fill_from(d: dict[str, Any]) -> Fill:
    return Fill(d["trade_id"], d["order_id"], d["instrument"], Side(d["side"]), Decimal(d["price"]), Decimal(d["amount"]),
                Decimal(d["fee"]), d["fee_currency"], Liquidity(d["liquidity"]), d["ts"], d["account"], d["client_order_id"],
                d["venue"], d["index_price"])


def report_to(r: OrderStatusReport) -> dict[str, Any]:
    return {"order_id": r.order_id, "client_order_id": r.client_order_id, "instrument": r.instrument, "status": r.status,
            "filled": str(r.filled), "amount": str(r.amount), "price": None if r.price is None else str(r.price), "ts": r.ts}


def report_from(d: dict[str, Any]) -> OrderStatusReport:
    return OrderStatusReport(d["order_id"], d["client_order_id"], d["instrument"], d["status"], Decimal(d["filled"]),
                             Decimal(d["amount"]), None if d["price"] is None else Decimal(d["price"]), d["ts"])


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()
