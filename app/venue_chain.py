"""An option chain slice from a venue's own quotes: its prices and IVs, its greeks when it sends them.

    rows = chain_slice("BTC", expiry_ms, options, quotes, index_price=61_000.0, now_ms=now)

Units follow :class:`app.domain.ChainRow` as the embedded desk fills it: inverse (coin-settled) options in coin,
delta premium-adjusted (Black-Scholes delta minus the coin price), gamma in coin per USD, vega in coin per vol point
(1%), theta in coin per day; linear (USDC) options in their quote currency with the plain Black-76 greeks (vega per
vol point, theta per day). Venues send Black-Scholes greeks in USD (Deribit: vega per vol point, theta per day);
they are converted to those units with the option's forward. Rows without venue greeks get them from the venue's
mark IV (:func:`app.pricing.inverse_greeks` / :func:`app.pricing.black76`); bid/ask IVs the venue does not send are
implied from its bid and ask.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from app.domain import ChainRow, ChainSlice, Instrument, OptionType, Quote
from app.pricing import black76, implied_vol, implied_vol_coin, inverse_greeks


def _arr(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _pick(venue: float | None, implied: float) -> float | None:
    return venue if venue is not None else _finite(implied)


def chain_slice(underlying: str, expiry_ms: int, options: Sequence[Instrument], quotes: Mapping[str, Quote],
                index_price: float | None, now_ms: int) -> ChainSlice:
    """One expiry of ``underlying`` from the venue's quotes (``options`` of that expiry, by strike); see module."""
    opts = sorted(options, key=lambda i: (float(i.strike or 0), not i.is_call))
    qs = [quotes.get(i.name) for i in opts]
    idx = math.nan if index_price is None else float(index_price)
    sent = [q.underlying_price for q in qs if q is not None and q.underlying_price and q.underlying_price > 0]
    f_slice = float(np.median(sent)) if sent else idx  # the expiry's forward as the venue quotes it, else the index
    fwd = np.array([q.underlying_price if q is not None and q.underlying_price else f_slice for q in qs], dtype=float)
    strike = np.array([float(i.strike or 0) for i in opts])
    t = np.full(len(opts), max(opts[0].years_to_expiry(now_ms), 1e-9) if opts else 1e-9)
    iv = _arr([None if q is None else q.mark_iv for q in qs])
    call = np.array([i.is_call for i in opts], dtype=bool)
    inverse = np.array([i.inverse for i in opts], dtype=bool)
    bid = _arr([None if q is None else q.bid for q in qs])
    ask = _arr([None if q is None else q.ask for q in qs])
    with np.errstate(all="ignore"):
        coin = inverse_greeks(fwd, strike, t, iv, call)
        usd = black76(fwd, strike, t, iv, call)
        price = np.where(inverse, coin.price, usd.price)
        delta = np.where(inverse, coin.delta, usd.delta)
        gamma = np.where(inverse, coin.gamma, usd.gamma)
        vega = np.where(inverse, coin.vega, usd.vega) * 0.01
        theta = np.where(inverse, coin.theta, usd.theta) / 365.0
        bid_iv = np.where(inverse, implied_vol_coin(bid, fwd, strike, t, call), implied_vol(bid, fwd, strike, t, call))
        ask_iv = np.where(inverse, implied_vol_coin(ask, fwd, strike, t, call), implied_vol(ask, fwd, strike, t, call))
    rows = []
    for k, inst in enumerate(opts):
        q = qs[k]
        mark = q.mark_price if q is not None and q.mark_price is not None else float(price[k])
        d, g, v, th = float(delta[k]), float(gamma[k]), float(vega[k]), float(theta[k])
        if q is not None and q.venue_delta is not None:
            f = float(fwd[k])
            if not inst.inverse:
                d = q.venue_delta
                g = q.venue_gamma if q.venue_gamma is not None else g
                v = q.venue_vega if q.venue_vega is not None else v
                th = q.venue_theta if q.venue_theta is not None else th
            elif f > 0 and math.isfinite(f) and math.isfinite(mark):
                d = q.venue_delta - mark  # Deribit's net transaction delta: BS delta minus the coin price
                g = q.venue_gamma - d / f if q.venue_gamma is not None else g
                v = q.venue_vega / f if q.venue_vega is not None else v
                th = q.venue_theta / f if q.venue_theta is not None else th
        rows.append(ChainRow(
            instrument=inst.name, strike=float(strike[k]),
            option_type=OptionType.CALL if call[k] else OptionType.PUT,
            bid=None if q is None else q.bid, ask=None if q is None else q.ask,
            bid_size=0.0 if q is None else q.bid_size, ask_size=0.0 if q is None else q.ask_size,
            mark=mark, bid_iv=_pick(None if q is None else q.bid_iv, float(bid_iv[k])),
            ask_iv=_pick(None if q is None else q.ask_iv, float(ask_iv[k])), mark_iv=float(iv[k]),
            delta=d, gamma=g, vega=v, theta=th, open_interest=0.0 if q is None else q.open_interest))
    atm = float(strike[np.argmin(np.abs(strike - f_slice))]) if len(strike) and math.isfinite(f_slice) else math.nan
    return ChainSlice(underlying, expiry_ms, f_slice, idx, atm, tuple(rows))
