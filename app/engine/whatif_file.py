"""The what-if margin file of ``desk margin what-if FILE``: parsing, validation and evaluation.

Shape (JSON)::

    {"timestamp": 1718619740501, "currency": "BTC", "model": "sm" | "pm", "balance": 1.5,
     "index_prices": {"btc_usd": 65666.19},
     "positions": {"BTC-PERPETUAL": 0.314538364, "BTC-28JUN24-70000-C": -1.0},
     "marks": {"BTC-PERPETUAL": {"mark_price": 65910.57},
               "BTC-28JUN24-70000-C": {"mark_price": 0.012, "mark_iv": 55.0, "underlying_price": 66100.0}},
     "orders": [{"instrument": "BTC-28JUN24-70000-C", "side": "sell", "amount": 1.0, "price": 0.013}],
     "model_params": {...}, "mmp_margin": 0.0, "open_orders_margin": null}

Sizes and order amounts in base coin (negative = short), as ``pme/simulate``'s ``simulated_positions``;
option marks in coin with IV in percent; ``model_params`` overrides the defaults in the simulator's shape;
``open_orders_margin`` states a venue's figure instead of computing it from ``orders``. Unknown instruments,
NaN, negative amounts, a missing index or mark raise typed errors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.domain import Instrument, Kind
from app.engine.margin_pm import MarkInput, mark_input, simulate_pm
from app.engine.margin_sm import option_buy_premium, position_margin
from app.errors import InvalidInput

_KEYS = {
    "timestamp", "currency", "model", "balance", "index_prices", "positions", "marks", "orders", "model_params",
    "mmp_margin", "open_orders_margin",
}


@dataclass(frozen=True, slots=True)
class WhatIfOrder:
    """A hypothetical resting order: signed size in base coin (buy > 0) and optional price."""

    instrument: str
    size: float
    price: float | None


@dataclass(frozen=True, slots=True)
class WhatIfInput:
    """A validated what-if file."""

    timestamp: int
    currency: str
    model: str
    balance: float | None
    index_prices: dict[str, float]
    positions: dict[str, float]
    marks: dict[str, dict[str, Any]]
    orders: tuple[WhatIfOrder, ...]
    model_params: dict[str, Any]
    mmp_margin: float
    open_orders_margin: float | None


def _num(value: Any, where: str, *, positive: bool = False, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{where} must be a number, got {value!r}", code="input.type", field=where)
    f = float(value)
    if not math.isfinite(f):
        raise InvalidInput(f"{where} is not a finite number", code="input.nan", field=where)
    if positive and f <= 0:
        raise InvalidInput(f"{where} must be positive, got {value!r}", code="input.negative", field=where)
    return f


def parse_whatif(doc: Mapping[str, Any]) -> WhatIfInput:
    """Validate a what-if document (already decoded JSON)."""
    if not isinstance(doc, Mapping):
        raise InvalidInput("a what-if file must be a JSON object", code="input.whatif")
    unknown = set(doc) - _KEYS
    if unknown:
        raise InvalidInput(f"unknown what-if keys: {', '.join(sorted(unknown))}", code="input.whatif")
    ts = doc.get("timestamp")
    if isinstance(ts, bool) or not isinstance(ts, int) or ts <= 0:
        raise InvalidInput("timestamp must be epoch milliseconds (a positive integer)", code="input.timestamp", field="timestamp")
    model = doc.get("model", "sm")
    if model not in ("sm", "pm"):
        raise InvalidInput(f"model must be 'sm' or 'pm', got {model!r}", code="margin.model", field="model")
    positions_raw = doc.get("positions") or {}
    if not isinstance(positions_raw, Mapping):
        raise InvalidInput("positions must be an object of instrument -> size", code="input.whatif", field="positions")
    positions: dict[str, float] = {}
    for name, size in positions_raw.items():
        Instrument.parse(name)
        positions[name] = _num(size, f"positions.{name}")  # type: ignore[assignment]
    index_raw = doc.get("index_prices") or {}
    if not isinstance(index_raw, Mapping) or not index_raw:
        raise InvalidInput("index_prices must be a non-empty object such as {'btc_usd': 65000}", code="margin.missing_index")
    index = {k: _num(v, f"index_prices.{k}", positive=True) for k, v in index_raw.items()}
    marks_raw = doc.get("marks") or {}
    if not isinstance(marks_raw, Mapping):
        raise InvalidInput("marks must be an object of instrument -> {mark_price, mark_iv}", code="input.whatif")
    marks = {}
    for name, m in marks_raw.items():
        Instrument.parse(name)
        mark_input(name, m)  # validates
        marks[name] = dict(m)
    orders = []
    for i, o in enumerate(doc.get("orders") or []):
        if not isinstance(o, Mapping) or "instrument" not in o:
            raise InvalidInput(f"orders[{i}] needs instrument, side and amount", code="input.whatif")
        Instrument.parse(o["instrument"])
        side = o.get("side", o.get("direction"))
        if side not in ("buy", "sell"):
            raise InvalidInput(f"orders[{i}].side must be buy or sell, got {side!r}", code="input.whatif")
        amount = _num(o.get("amount"), f"orders[{i}].amount", positive=True)
        price = _num(o.get("price"), f"orders[{i}].price", positive=True, allow_none=True)
        orders.append(WhatIfOrder(o["instrument"], amount if side == "buy" else -amount, price))  # type: ignore[operator]
    for name in [*positions, *(o.instrument for o in orders)]:
        if name not in marks:
            raise InvalidInput(f"{name} has no mark in 'marks'", code="margin.missing_mark", field=name)
    currency = doc.get("currency")
    insts = [Instrument.parse(n) for n in positions] + [Instrument.parse(o.instrument) for o in orders]
    if currency is None:
        ccys = {i.settlement for i in insts}
        if len(ccys) != 1:
            raise InvalidInput("say which currency to margin ('currency')", code="input.whatif", field="currency")
        currency = ccys.pop()
    if not isinstance(currency, str):
        raise InvalidInput("currency must be a string such as 'BTC'", code="input.whatif", field="currency")
    mp = doc.get("model_params") or {}
    if not isinstance(mp, Mapping):
        raise InvalidInput("model_params must be an object", code="input.model_params")
    return WhatIfInput(
        timestamp=ts,
        currency=currency.upper(),
        model=model,
        balance=_num(doc.get("balance"), "balance", allow_none=True),
        index_prices=index,  # type: ignore[arg-type]
        positions=positions,
        marks=marks,
        orders=tuple(orders),
        model_params=dict(mp),
        mmp_margin=_num(doc.get("mmp_margin", 0.0), "mmp_margin") or 0.0,
        open_orders_margin=_num(doc.get("open_orders_margin"), "open_orders_margin", allow_none=True),
    )


def load_whatif(path: Path | str) -> WhatIfInput:
    """Read and validate a what-if JSON file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read {p}: {exc.strerror}", code="input.file", path=str(p)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{p} is not valid JSON: {exc.msg} at line {exc.lineno}", code="input.json", path=str(p)) from None
    return parse_whatif(doc)


def _underlying(inst: Instrument, marks: Mapping[str, MarkInput], index: Mapping[str, float]) -> float:
    mk = marks.get(inst.name)
    if mk is not None and mk.underlying_price is not None:
        return mk.underlying_price
    fut = marks.get(inst.name.rsplit("-", 2)[0]) if inst.kind is Kind.OPTION else None
    if fut is not None:
        return fut.mark_price
    try:
        return index[inst.underlying]
    except KeyError:
        raise InvalidInput(f"index price {inst.underlying!r} is missing", code="margin.missing_index") from None


def evaluate_whatif(inp: WhatIfInput, model: str | None = None) -> dict[str, Any]:
    """Margin of the file's portfolio: IM, MM, available funds and, for PM, the risk matrix."""
    model = model or inp.model
    if model not in ("sm", "pm"):
        raise InvalidInput(f"model must be 'sm' or 'pm', got {model!r}", code="margin.model")
    ccy = inp.currency
    marks = {n: mark_input(n, m) for n, m in inp.marks.items()}
    options_value = 0.0
    for name, size in inp.positions.items():
        inst = Instrument.parse(name)
        if inst.settlement == ccy and inst.kind is Kind.OPTION:
            options_value += size * marks[name].mark_price
    out: dict[str, Any] = {"currency": ccy, "model": model, "timestamp": inp.timestamp}
    if model == "pm":
        sim = simulate_pm(
            inp.positions, inp.marks, inp.index_prices, inp.model_params or None, now_ms=inp.timestamp, currency=ccy,
            mmp_margin=inp.mmp_margin, open_orders=[(o.instrument, o.size) for o in inp.orders],
            open_orders_margin=inp.open_orders_margin,
        )
        m = sim["margins"].get(ccy.lower())
        if m is None:
            raise InvalidInput(f"no position or order settles in {ccy}", code="input.whatif", field="currency")
        d = m["initial_margin_details"]
        out.update(
            initial_margin=m["initial_margin"],
            maintenance_margin=m["maintenance_margin"],
            risk_matrix_margin=d["risk_matrix_margin"],
            mmp_margin=d["mmp_margin"],
            open_orders_margin=d["open_orders_margin"],
            risk_matrix_margin_details=d["risk_matrix_margin_details"],
            aggregated_risk_vectors=sim["aggregated_risk_vectors"],
            initial_risk_vectors=sim["initial_risk_vectors"],
        )
        margin_balance_extra = options_value  # PM margin balance includes the options' value
    else:
        im = mm = oom = 0.0
        per: dict[str, dict[str, float]] = {}
        sides: dict[str, list[WhatIfOrder]] = {}
        for o in inp.orders:
            sides.setdefault(o.instrument, []).append(o)
        for name in sorted(set(inp.positions) | set(sides)):
            inst = Instrument.parse(name)
            if inst.settlement != ccy:
                continue
            mk = marks[name]
            und = _underlying(inst, marks, inp.index_prices)
            idx = inp.index_prices.get(inst.underlying, und)
            n = inp.positions.get(name, 0.0)
            pim, pmm = position_margin(inst, n, mk.mark_price, und, idx)
            b = sum(o.size for o in sides.get(name, []) if o.size > 0)
            s = -sum(o.size for o in sides.get(name, []) if o.size < 0)
            extra = 0.0
            if b or s:
                im_b = position_margin(inst, n + b, mk.mark_price, und, idx)[0] - pim if b else 0.0
                im_s = position_margin(inst, n - s, mk.mark_price, und, idx)[0] - pim if s else 0.0
                extra = max(im_b, im_s, 0.0)
                if inst.kind is Kind.OPTION:
                    extra += sum(option_buy_premium(inst, o.size, o.price or mk.mark_price) for o in sides[name] if o.size > 0)
            if inp.open_orders_margin is None:
                oom += extra
            im += pim
            mm += pmm
            per[name] = {"initial_margin": pim, "maintenance_margin": pmm, "open_orders_margin": extra}
        if inp.open_orders_margin is not None:
            oom = inp.open_orders_margin
        out.update(initial_margin=im + oom, maintenance_margin=mm, open_orders_margin=oom, positions=per)
        margin_balance_extra = 0.0
    if inp.balance is not None:
        mb = inp.balance + margin_balance_extra
        out["balance"] = inp.balance
        out["margin_balance"] = mb
        out["available_funds"] = mb - out["initial_margin"]
        out["mm_usage"] = out["maintenance_margin"] / mb if mb > 0 else None
    return out
