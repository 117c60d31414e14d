"""app.domain objects rendered as Deribit API v2 JSON (instruments, tickers, books, orders, trades, positions).

Field names and units follow deribit.md §5: IVs in percent, amounts in USD for inverse futures and in coin for
options, ``expiration_timestamp`` of perpetuals 32503708800000, option ``quote_currency`` the coin.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from app.domain import Fill, Instrument, Kind, Liquidity, MarginReport, Order, OrderStatus, OrderType
from connectors.deribit_api.backend import BookView, PositionView, TickerView
from connectors.deribit_api.tape import TradeInfo

PERPETUAL_EXPIRY_MS = 32503708800000
FALLBACK_BAND = 0.10  # half-width of the stand-in price band when the venue reports none (fraction of mark)


@dataclass(slots=True)
class OrderMeta:
    """What Deribit echoes of an order that the venue's Order does not keep (as the client sent it)."""

    created_ms: int
    order_type: str = "limit"
    time_in_force: str = "good_til_cancelled"
    post_only: bool = False
    reject_post_only: bool = False
    reduce_only: bool = False
    market_price: Decimal | None = None  # the band edge a market order may execute to (Deribit's ``price``)
    expires_ms: int | None = None  # good_til_day: cancelled at this venue time (epoch ms)
    account: str = ""


def num(value: Decimal | float | int | None) -> float | None:
    """A JSON number (Decimal → float), keeping None."""
    return None if value is None else float(value)


def instrument_id(name: str) -> int:
    """A stable numeric id for an instrument name."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def wire_kind(inst: Instrument) -> str:
    """Deribit's ``kind``: perpetuals are futures."""
    return {Kind.OPTION: "option", Kind.FUTURE: "future", Kind.PERPETUAL: "future", Kind.SPOT: "spot"}[inst.kind]


def settlement_period(inst: Instrument) -> str:
    """``perpetual``, ``month`` (last Friday of a month), ``week`` (a Friday) or ``day``."""
    if inst.kind is Kind.PERPETUAL:
        return "perpetual"
    if inst.expiry is None:
        return "spot"
    exp: datetime = inst.expiry
    if exp.weekday() == 4:
        return "month" if (exp + timedelta(days=7)).month != exp.month else "week"
    return "day"


def index_name(inst: Instrument) -> str:
    """The ``price_index`` of an instrument (``btc_usd``, ``btc_usdc``)."""
    return inst.underlying


def instrument_json(inst: Instrument, created_ms: int) -> dict[str, Any]:
    """``public/get_instruments`` item."""
    counter = "USD" if inst.inverse else inst.quote
    quote = inst.base if (inst.inverse and inst.is_option) else counter
    out: dict[str, Any] = {
        "instrument_name": inst.name,
        "instrument_id": instrument_id(inst.name),
        "kind": wire_kind(inst),
        "is_active": True,
        "state": "open",
        "base_currency": inst.base,
        "quote_currency": quote,
        "counter_currency": counter,
        "settlement_currency": inst.settlement,
        "settlement_period": settlement_period(inst),
        "creation_timestamp": created_ms,
        "expiration_timestamp": inst.expiry_ms if inst.expiry_ms is not None else PERPETUAL_EXPIRY_MS,
        "tick_size": float(inst.tick_size),
        "tick_size_steps": [{"above_price": float(a), "tick_size": float(t)} for a, t in inst.tick_steps],
        "contract_size": float(inst.contract_size),
        "min_trade_amount": float(inst.min_amount),
        "maker_commission": float(inst.maker_fee),
        "taker_commission": float(inst.taker_fee),
        "block_trade_commission": float(inst.taker_fee) / 2,
        # deribit.md §5.3: BTC options 25 and (live) ETH options 250 contracts, futures 200,000 USD; futures' block
        # trades price on a 0.01 grid, options' on their own tick.
        "block_trade_min_trade_amount": (250 if inst.base == "ETH" else 25) if inst.is_option else 200000,
        "block_trade_tick_size": float(inst.tick_size) if inst.is_option else 0.01,
        "price_index": index_name(inst),
        "instrument_type": "reversed" if inst.inverse else "linear",
        "rfq": False,
    }
    if inst.is_option:
        out["strike"] = float(inst.strike) if inst.strike is not None else None
        out["option_type"] = inst.option_type.value if inst.option_type is not None else None
    elif inst.kind in (Kind.FUTURE, Kind.PERPETUAL):
        out["max_leverage"] = 50
        out["max_liquidation_commission"] = 0.0075
        out["future_type"] = out["instrument_type"]
    return out


def price_band(t: TickerView) -> tuple[float, float]:
    """(min_price, max_price) in price units: the venue's band, or a stand-in of mark ±10% when it has none."""
    if t.min_price is not None and t.max_price is not None:
        return t.min_price, t.max_price
    # The engine has no band before it has a mark: clients still expect numbers here, and nothing enforces these.
    return t.mark_price * (1.0 - FALLBACK_BAND), t.mark_price * (1.0 + FALLBACK_BAND)


def _stats(t: TickerView) -> dict[str, Any]:
    return {
        "volume": t.volume,
        "volume_usd": t.volume_usd,
        "high": t.high,
        "low": t.low,
        "price_change": t.price_change,
    }


def ticker_json(t: TickerView, inst: Instrument) -> dict[str, Any]:
    """``public/ticker`` result (and ``ticker.*`` channel data)."""
    min_price, max_price = price_band(t)
    out: dict[str, Any] = {
        "instrument_name": t.instrument,
        "timestamp": t.ts,
        "state": t.state,
        "best_bid_price": t.best_bid,
        "best_bid_amount": t.bid_size if t.best_bid is not None else 0.0,
        "best_ask_price": t.best_ask,
        "best_ask_amount": t.ask_size if t.best_ask is not None else 0.0,
        "mark_price": t.mark_price,
        "index_price": t.index_price,
        "last_price": t.last_price,
        "estimated_delivery_price": t.index_price,
        "settlement_price": t.mark_price,
        "min_price": min_price,
        "max_price": max_price,
        "open_interest": t.open_interest,
        "stats": _stats(t),
    }
    if inst.is_option:
        g = t.greeks
        out.update(
            {
                "underlying_price": t.underlying_price,
                "underlying_index": t.underlying_index or "index_price",
                "interest_rate": t.interest_rate,
                "mark_iv": _pct(t.mark_iv),
                "bid_iv": _pct(t.bid_iv) if t.bid_iv is not None else 0.0,
                "ask_iv": _pct(t.ask_iv) if t.ask_iv is not None else 0.0,
                "greeks": {
                    "delta": g.delta if g else 0.0,
                    "gamma": g.gamma if g else 0.0,
                    "vega": g.vega if g else 0.0,
                    "theta": g.theta if g else 0.0,
                    "rho": g.rho if g else 0.0,
                },
            }
        )
    if inst.kind is Kind.PERPETUAL:
        out.update({"funding_8h": t.funding_8h or 0.0, "current_funding": 0.0, "interest_value": 0.0})
    return out


def _pct(iv: float | None) -> float | None:
    return None if iv is None else round(iv * 100.0, 4)


def book_json(b: BookView, t: TickerView | None, inst: Instrument) -> dict[str, Any]:
    """``public/get_order_book`` result: ticker fields plus ``bids``/``asks`` and ``change_id``."""
    out = ticker_json(t, inst) if t is not None else {"instrument_name": b.instrument, "state": "open"}
    out.update(
        {
            "timestamp": b.ts,
            "bids": [[p, a] for p, a in b.bids],
            "asks": [[p, a] for p, a in b.asks],
            "change_id": b.change_id,
            "best_bid_price": b.bids[0][0] if b.bids else None,
            "best_bid_amount": b.bids[0][1] if b.bids else 0.0,
            "best_ask_price": b.asks[0][0] if b.asks else None,
            "best_ask_amount": b.asks[0][1] if b.asks else 0.0,
        }
    )
    return out


def book_summary_json(inst: Instrument, t: TickerView | None, created_ms: int) -> dict[str, Any]:
    """``public/get_book_summary_by_currency`` item (no greeks, no bid/ask IV — as on Deribit)."""
    bid = t.best_bid if t else None
    ask = t.best_ask if t else None
    out: dict[str, Any] = {
        "instrument_name": inst.name,
        "base_currency": inst.base,
        "quote_currency": inst.base if (inst.inverse and inst.is_option) else ("USD" if inst.inverse else inst.quote),
        "creation_timestamp": created_ms,
        "bid_price": bid,
        "ask_price": ask,
        "mid_price": (bid + ask) / 2 if bid is not None and ask is not None else None,
        "mark_price": t.mark_price if t else None,
        "last": t.last_price if t else None,
        "high": t.high if t else None,
        "low": t.low if t else None,
        "volume": t.volume if t else 0.0,
        "volume_usd": t.volume_usd if t else 0.0,
        # quote-currency volume: USD for inverse futures and linear instruments, coin for inverse options
        "volume_notional": (t.volume if inst.is_option and inst.inverse else t.volume_usd) if t else 0.0,
        "open_interest": t.open_interest if t else 0.0,
        "estimated_delivery_price": t.index_price if t else None,
        "price_change": t.price_change if t else None,
    }
    if inst.is_option:
        out.update(
            {
                "mark_iv": _pct(t.mark_iv) if t else None,
                "underlying_price": t.underlying_price if t else None,
                "underlying_index": t.underlying_index if t and t.underlying_index else "index_price",
                "interest_rate": t.interest_rate if t else 0.0,
            }
        )
    if inst.kind is Kind.PERPETUAL:
        out.update({"funding_8h": (t.funding_8h or 0.0) if t else 0.0, "current_funding": 0.0})
    return out


_STATE = {
    OrderStatus.PENDING: "open",
    OrderStatus.OPEN: "open",
    OrderStatus.FILLED: "filled",
    OrderStatus.CANCELLED: "cancelled",
    OrderStatus.REJECTED: "rejected",
    OrderStatus.EXPIRED: "cancelled",
}


def order_json(
    order: Order, inst: Instrument, meta: OrderMeta | None = None, commission: Decimal | float = 0
) -> dict[str, Any]:
    """A Deribit order object; ``commission`` is the order's fees so far (settlement currency)."""
    req = order.request
    if meta is None:
        meta = OrderMeta(order.ts, req.type.value, req.tif.value, req.post_only, reduce_only=req.reduce_only)
    if req.type is OrderType.MARKET:
        # Deribit shows a market order's price as the limit it executes to (the band's edge; 207.3 for fills at
        # 203.3 in deribit.md 5.8); the string "market_price" is only for untriggered trigger orders.
        price = meta.market_price if meta.market_price is not None else order.average_price
    else:
        price = req.price
    return {
        "order_id": order.order_id,
        "order_state": _STATE[order.status],
        "order_type": req.type.value,
        "original_order_type": req.type.value,
        "time_in_force": meta.time_in_force,
        "instrument_name": req.instrument,
        "direction": req.side.value,
        "price": num(price),
        "amount": float(req.amount),
        "contracts": float(req.amount / inst.contract_size),
        "filled_amount": float(order.filled),
        "average_price": num(order.average_price) if order.filled > 0 and order.average_price is not None else 0.0,
        "label": req.client_order_id or "",
        "post_only": req.post_only,
        "reject_post_only": meta.reject_post_only,
        "reduce_only": req.reduce_only,
        "creation_timestamp": meta.created_ms,
        "last_update_timestamp": order.ts,
        "api": True,
        "web": False,
        "is_liquidation": False,
        "is_rebalance": False,
        "risk_reducing": False,
        "replaced": False,
        "mmp": False,
        "triggered": False,
        "cancel_reason": "user_request" if order.status is OrderStatus.CANCELLED else None,
        "advanced": None,
        "commission": float(commission),
    }


def trade_json(
    fill: Fill,
    inst: Instrument,
    info: TradeInfo,
    order_type: str = "limit",
    state: str = "filled",
    *,
    post_only: bool = False,
    reduce_only: bool = False,
) -> dict[str, Any]:
    """A Deribit user trade (``private/buy`` ``trades[]``, ``get_user_trades_*``, ``user.trades.*``)."""
    out: dict[str, Any] = {
        "trade_id": fill.trade_id,
        "trade_seq": info.seq,
        "instrument_name": fill.instrument,
        "timestamp": fill.ts,
        "order_id": fill.order_id,
        "order_type": order_type,
        "direction": fill.side.value,
        "tick_direction": info.tick_direction,
        "price": float(fill.price),
        "amount": float(fill.amount),
        "contracts": float(fill.amount / inst.contract_size),
        "fee": float(fill.fee),
        "fee_currency": fill.fee_currency,
        "liquidity": "M" if fill.liquidity is Liquidity.MAKER else "T",
        "index_price": fill.index_price if fill.index_price is not None else info.index_price,
        "mark_price": info.mark_price if info.mark_price is not None else float(fill.price),
        "label": fill.client_order_id or "",
        "state": state,
        "matching_id": None,
        "reduce_only": reduce_only,
        "post_only": post_only,
        "api": True,
        "profit_loss": 0.0,
    }
    if inst.is_option:
        out["iv"] = _pct(info.iv)
        out["underlying_price"] = info.underlying_price
    return out


def public_trade_json(
    trade_id: str,
    name: str,
    ts: int,
    price: float,
    amount: float,
    side: str,
    info: TradeInfo,
    inst: Instrument | None = None,
) -> dict[str, Any]:
    """A public trade print (``trades.*`` channel)."""
    out: dict[str, Any] = {
        "trade_id": trade_id,
        "trade_seq": info.seq,
        "instrument_name": name,
        "timestamp": ts,
        "price": price,
        "amount": amount,
        "direction": side,
        "tick_direction": info.tick_direction,
        "index_price": info.index_price,
        "mark_price": info.mark_price if info.mark_price is not None else price,
    }
    if inst is not None:
        out["contracts"] = amount / float(inst.contract_size)
        if inst.is_option:
            out["iv"] = _pct(info.iv)
            out["underlying_price"] = info.underlying_price
    return out


def position_json(p: PositionView, inst: Instrument) -> dict[str, Any]:
    """A Deribit position (``private/get_positions``); size signed, in amount units."""
    size = float(p.size)
    out: dict[str, Any] = {
        "instrument_name": p.instrument,
        "kind": wire_kind(inst),
        "direction": "buy" if size > 0 else ("sell" if size < 0 else "zero"),
        "size": size,
        "average_price": float(p.average_price),
        "mark_price": p.mark_price,
        "index_price": p.index_price,
        "settlement_price": p.mark_price,
        "floating_profit_loss": p.floating_pnl,
        "realized_profit_loss": p.realized_pnl,
        "total_profit_loss": p.floating_pnl + p.realized_pnl,
        "initial_margin": p.initial_margin,
        "maintenance_margin": p.maintenance_margin,
        "open_orders_margin": p.open_orders_margin,
        "delta": p.delta,
        "realized_funding": p.realized_funding,
        "interest_value": 0.0,
    }
    if inst.is_option:
        out.update({"gamma": p.gamma, "vega": p.vega, "theta": p.theta, "leverage": None})
        return out
    if inst.inverse:
        size_currency = size / p.mark_price if p.mark_price else 0.0
    else:
        size_currency = size
    out["size_currency"] = size_currency
    # Deribit's leverage of a futures position: its coin size over its initial margin (deribit.md 5.9: 34 for
    # 0.006687487 BTC on 0.000197283 IM); none without margin.
    out["leverage"] = round(abs(size_currency) / p.initial_margin) if p.initial_margin > 0 else None
    out["estimated_liquidation_price"] = p.estimated_liquidation_price
    return out


def _f(d: dict[str, Any], key: str) -> float:
    value = d.get(key)
    return 0.0 if value is None else float(value)


def account_summary_json(r: MarginReport, account_id: int, username: str) -> dict[str, Any]:
    """``private/get_account_summary`` result from a margin report (amounts in the currency).

    PnL, delta and liquidation figures come from ``r.details`` (the desk backend puts them there; 0 when absent):
    ``session_upl``/``session_rpl`` add the futures and options session parts, ``total_pl`` = futures_pl +
    options_pl (the identities hold in deribit.md 5.10's example).
    """
    d = r.details or {}
    fut_upl, fut_rpl = _f(d, "futures_session_upl"), _f(d, "futures_session_rpl")
    opt_upl, opt_rpl = _f(d, "options_session_upl"), _f(d, "options_session_rpl")
    futures_pl, options_pl = _f(d, "futures_pl"), _f(d, "options_pl")
    delta_total = _f(d, "delta_total")
    out: dict[str, Any] = {
        "currency": r.currency,
        "balance": r.balance,
        "equity": r.equity,
        "margin_balance": r.margin_balance,
        "initial_margin": r.initial_margin,
        "maintenance_margin": r.maintenance_margin,
        "available_funds": r.available_funds,
        "available_withdrawal_funds": max(0.0, min(r.available_funds, r.balance)),
        "projected_initial_margin": r.initial_margin,
        "projected_maintenance_margin": r.maintenance_margin,
        "session_upl": fut_upl + opt_upl,
        "session_rpl": fut_rpl + opt_rpl,
        "total_pl": futures_pl + options_pl,
        "futures_session_upl": fut_upl,
        "futures_session_rpl": fut_rpl,
        "futures_pl": futures_pl,
        "options_session_upl": opt_upl,
        "options_session_rpl": opt_rpl,
        "options_pl": options_pl,
        "options_value": _f(d, "options_value"),
        "options_delta": _f(d, "options_delta"),
        "options_gamma": _f(d, "options_gamma"),
        "options_vega": _f(d, "options_vega"),
        "options_theta": _f(d, "options_theta"),
        "options_gamma_map": dict(d.get("options_gamma_map") or {}),
        "options_vega_map": dict(d.get("options_vega_map") or {}),
        "options_theta_map": dict(d.get("options_theta_map") or {}),
        "delta_total": delta_total,
        "delta_total_map": dict(d.get("delta_total_map") or {}),
        "projected_delta_total": delta_total,
        "estimated_liquidation_ratio": _f(d, "estimated_liquidation_ratio"),
        "estimated_liquidation_ratio_map": dict(d.get("estimated_liquidation_ratio_map") or {}),
        "fee_balance": 0.0,
        "spot_reserve": 0.0,
        "portfolio_margining_enabled": r.model == "pm",
        "cross_collateral_enabled": False,
        "margin_model": "segregated_pm" if r.model == "pm" else "segregated_sm",
        "type": "main",
        "id": account_id,
        "username": username,
        "system_name": username,
        "email": f"{username}@deltadesk.invalid",
    }
    return out
