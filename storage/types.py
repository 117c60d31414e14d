"""Column types and value codecs shared by the tables: exact money, epoch-ms <-> UTC, JSON that keeps Decimals.

Money is ``numeric(28, 10)`` on PostgreSQL. SQLite has no decimal type (SQLAlchemy would go through a float and lose
digits), so there money is stored as the canonical decimal text. Both backends round to 10 decimal places the same
way, so a value reads back identical on either.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import Enum
from typing import Any

from sqlalchemy import Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from app.errors import InvalidInput

MONEY_PLACES = 10
_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)
_MAX_MONEY = Decimal(10) ** (28 - MONEY_PLACES)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


def check_money(value: Decimal | int | str) -> Decimal:
    """A money/size value validated (finite, fits numeric(28,10)) and rounded half-even to 10 places."""
    try:
        d = value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidInput(f"{value!r} is not a decimal number", code="input.type") from None
    if not d.is_finite():
        raise InvalidInput(f"{value} is not a finite number", code="input.nan")
    if abs(d) >= _MAX_MONEY:
        raise InvalidInput(f"{value} does not fit numeric(28, {MONEY_PLACES})", code="input.range")
    try:
        return d.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        raise InvalidInput(f"{value} does not fit numeric(28, {MONEY_PLACES})", code="input.range") from None


def money_text(value: Decimal | int | str) -> str:
    """The canonical text of a money value: rounded to 10 places, no exponent, no trailing zeros."""
    return format(check_money(value).normalize(), "f")


def canonical_decimal(value: Decimal | int | str) -> Decimal:
    """A money/size value rounded half-even to 10 places, without exponent or trailing zeros."""
    return Decimal(money_text(value))


class Money(TypeDecorator[Decimal]):
    """Exact Decimal column: numeric(28,10) on PostgreSQL, canonical text on SQLite."""

    impl = Numeric(28, MONEY_PLACES, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(28, MONEY_PLACES, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return money_text(value) if dialect.name == "sqlite" else check_money(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, str):
            return Decimal(value)  # SQLite: already the canonical text we wrote
        return canonical_decimal(value if isinstance(value, Decimal) else Decimal(str(value)))

    def __repr__(self) -> str:
        return "Money()"


def dt_from_ms(ts: int) -> datetime:
    """Epoch milliseconds to an aware UTC datetime, exactly (no float rounding)."""
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise InvalidInput(f"timestamp {ts!r} must be int epoch milliseconds", code="input.type")
    return EPOCH + timedelta(milliseconds=ts)


def ms_from_dt(dt: datetime) -> int:
    """An aware datetime to epoch milliseconds, exactly."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - EPOCH) // _MS


def _encode(obj: Any) -> Any:
    # Tagged forms keep Decimals exact and non-finite floats representable (PostgreSQL's json rejects NaN).
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj.value if isinstance(obj, Enum) else obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, Decimal):
        return {"__decimal__": str(obj)}
    if isinstance(obj, Enum):
        return _encode(obj.value)
    if isinstance(obj, dict):
        return {str(k.value if isinstance(k, Enum) else k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_encode(v) for v in obj]
    if isinstance(obj, datetime):
        return {"__ms__": ms_from_dt(obj)}
    if hasattr(obj, "__dataclass_fields__"):
        return {f: _encode(getattr(obj, f)) for f in obj.__dataclass_fields__}
    if hasattr(obj, "item"):  # numpy scalars
        return _encode(obj.item())
    if hasattr(obj, "tolist"):  # numpy arrays
        return _encode(obj.tolist())
    raise InvalidInput(f"cannot store a value of type {type(obj).__name__} as JSON", code="input.type")


def _decode_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "__decimal__" in obj:
            return Decimal(obj["__decimal__"])
        if "__float__" in obj:
            return float(obj["__float__"])
        if "__ms__" in obj:
            return int(obj["__ms__"])
    return obj


def to_json_value(obj: Any) -> Any:
    """A JSON-safe tree from dicts/lists holding Decimals, enums, numpy scalars, datetimes (as epoch ms)."""
    return _encode(obj)


def json_dumps(obj: Any) -> str:
    """Serialiser handed to the engine for JSON columns (Decimal and NaN survive the round trip)."""
    return json.dumps(_encode(obj), separators=(",", ":"), allow_nan=False)


_DECODER = json.JSONDecoder(object_hook=_decode_hook)


def json_loads(text: str | bytes) -> Any:
    """Deserialiser handed to the engine for JSON columns."""
    return _DECODER.decode(text.decode() if isinstance(text, bytes) else text)
