"""Text formatting of desk numbers for the terminal: coin and USD prices, IVs, greeks, expiries.

Pure functions, no Textual: the widgets call them and the tests pin them.

    >>> fmt_coin(0.03456)
    '0.0346'
    >>> fmt_iv(0.5512)
    '55.1'
    >>> expiry_label(1735286400000)
    '27DEC24'
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from app.domain import expiry_code, utc_from_ms

DASH = "—"
"""What an empty cell shows (no bid, no ask, no IV)."""

MS_PER_DAY = 86_400_000


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def is_unknown(x: float | None) -> bool:
    """True for a figure nobody knows: None, or NaN (a stored run that did not keep it); infinities are known."""
    return x is None or x != x


def fmt_coin(x: float | None, decimals: int = 4) -> str:
    """A price or amount in coin (BTC/ETH), 4 decimals by default; an em dash when missing."""
    if _missing(x):
        return DASH
    return f"{x:,.{decimals}f}"


def fmt_usd(x: float | None, decimals: int = 2) -> str:
    """An amount in USD with thousands separators; an em dash when missing."""
    if _missing(x):
        return DASH
    return f"{x:,.{decimals}f}"


def fmt_money(x: float | None, decimals: int = 2) -> str:
    """A USD amount with its sign before the dollar: ``-$14,640.00``; an em dash when missing."""
    if _missing(x):
        return DASH
    return f"{'-' if x < 0 else ''}${abs(x):,.{decimals}f}"  # type: ignore[operator, arg-type]


def fmt_iv(iv: float | None) -> str:
    """An implied volatility given as a fraction (0.55), shown in percent with one decimal (``55.0``)."""
    if _missing(iv) or iv <= 0:  # type: ignore[operator]
        return DASH
    return f"{iv * 100:.1f}"


def lot_decimals(lot: float | Decimal | None) -> int:
    """Decimals of a lot size (an instrument's minimum amount): 0.1 → 1, 0.01 → 2, 10 → 0; 4 when unknown."""
    if lot is None or _missing(float(lot)) or float(lot) <= 0:
        return 4
    return max(0, -int(Decimal(str(lot)).normalize().as_tuple().exponent))


def fmt_size(x: float | None, lot: float | Decimal | None = None) -> str:
    """A quantity (order size, open interest, position) in lots: thousands separators, no trailing zeros.

    Rounded to the decimals of ``lot`` (the instrument's minimum amount; up to 4 when not given), so a size of any
    magnitude keeps its fractional lots: 100.5 shows ``100.5``, never ``100``.
    """
    if _missing(x):
        return DASH
    if x == 0:
        return "0"
    text = f"{x:,.{lot_decimals(lot)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_sig(x: float | None, sig: int = 4) -> str:
    """A greek or any small float with ``sig`` significant digits, fixed notation (``0.00002134``)."""
    if _missing(x):
        return DASH
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    decimals = max(0, sig - 1 - mag)
    return f"{x:,.{decimals}f}"


def fmt_signed(x: float | None, decimals: int = 4) -> str:
    """A PnL or delta with an explicit sign (``+0.0120``)."""
    if _missing(x):
        return DASH
    return f"{x:+,.{decimals}f}"


def fmt_pct(x: float | None, decimals: int = 1) -> str:
    """A fraction as a signed percentage (``-0.23`` → ``-23.0%``)."""
    if _missing(x):
        return DASH
    return f"{x * 100:+.{decimals}f}%"


def fmt_strike(k: float) -> str:
    """A strike without needless decimals (``60000``, ``0.625``)."""
    return f"{k:,.0f}" if float(k).is_integer() else f"{k:,g}"


def expiry_label(expiry_ms: int | None) -> str:
    """Deribit's date code of an expiry (``27DEC24``); ``PERP`` for no expiry."""
    if expiry_ms is None:
        return "PERP"
    return expiry_code(utc_from_ms(expiry_ms))


def days_to(expiry_ms: int, now_ms: int) -> float:
    """Days (fractional) from ``now_ms`` to ``expiry_ms``; never negative."""
    return max(0.0, (expiry_ms - now_ms) / MS_PER_DAY)


def fmt_tenor(expiry_ms: int, now_ms: int) -> str:
    """Time to expiry, short: ``5h``, ``3d``, ``45d``."""
    days = days_to(expiry_ms, now_ms)
    if days < 1:
        return f"{days * 24:.0f}h"
    return f"{days:.0f}d"


def _last_friday(year: int, month: int) -> datetime:
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    day = nxt - timedelta(days=1)
    while day.weekday() != 4:
        day -= timedelta(days=1)
    return day


def expiry_kind(expiry_ms: int) -> str:
    """Deribit's listing class of an expiry: ``Q`` quarterly, ``M`` monthly, ``W`` weekly, ``D`` daily.

    Monthlies expire on the last Friday of the month; quarterlies are the monthlies of Mar/Jun/Sep/Dec;
    weeklies are other Fridays; anything else is a daily.
    """
    dt = utc_from_ms(expiry_ms)
    if dt.weekday() != 4:
        return "D"
    if dt.date() == _last_friday(dt.year, dt.month).date():
        return "Q" if dt.month in (3, 6, 9, 12) else "M"
    return "W"


def is_monthly(expiry_ms: int) -> bool:
    """True for a monthly or quarterly expiry (last Friday of its month)."""
    return expiry_kind(expiry_ms) in ("M", "Q")


def tenor_bucket(expiry_ms: int | None, now_ms: int) -> str:
    """The vega bucket of an expiry: ``<7d``, ``7-30d``, ``30-90d``, ``>90d`` (``perp`` for none)."""
    if expiry_ms is None:
        return "perp"
    days = days_to(expiry_ms, now_ms)
    if days < 7:
        return "<7d"
    if days < 30:
        return "7-30d"
    if days < 90:
        return "30-90d"
    return ">90d"


TENOR_BUCKETS = ("<7d", "7-30d", "30-90d", ">90d")
"""The order of :func:`tenor_bucket` labels."""
