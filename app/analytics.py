"""Views the fronts draw, derived from a :class:`~app.domain.DeskSnapshot` with the core's pricing and risk code.

The fronts never compute risk themselves: they call these functions (composition root), which call
``app.pricing`` and ``app.risk``. Everything returns plain numpy arrays and dataclasses, so the dashboard's
figure builders and the TUI stay pure.

    view = surface_view(desk.snapshot(), "BTC")
    grid = scenario_grid(desk.snapshot(), "BTC", days=7)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from app.domain import (
    MS_PER_YEAR,
    ChainSlice,
    DeskSnapshot,
    GreeksView,
    Instrument,
    Kind,
    MarginReport,
    OrderRequest,
    PositionView,
)
from app.engine.margin_params import ALERT_LEVELS
from app.errors import InvalidInstrument
from app.risk.book import Book as RiskBook

DEFAULT_SPOT_MOVES = np.array([-0.30, -0.20, -0.10, -0.05, 0.0, 0.05, 0.10, 0.20, 0.30])
"""Spot moves of the scenario grid, as fractions of the index."""
DEFAULT_VOL_MOVES = np.array([-0.20, -0.10, -0.05, 0.0, 0.05, 0.10, 0.20])
"""Parallel vol shifts of the scenario grid, in vol (0.10 = +10 vol points)."""


def expiry_label(expiry_ms: int) -> str:
    """Deribit-style date code of an expiry (``27DEC24``)."""
    d = datetime.fromtimestamp(expiry_ms / 1000, tz=timezone.utc)
    return f"{d.day}{d.strftime('%b').upper()}{d.year % 100:02d}"


# --------------------------------------------------------------------------------------------------
# Chain table
# --------------------------------------------------------------------------------------------------


def chain_table(snap: DeskSnapshot | None, underlying: str | None) -> list[dict[str, Any]]:
    """Rows of every expiry's chain of ``underlying`` for a table: IVs in percent, prices in coin, greeks in coin."""
    if snap is None or not underlying:
        return []
    rows: list[dict[str, Any]] = []
    for sl in snap.chains.get(underlying, ()):
        label = expiry_label(sl.expiry_ms)
        for r in sl.rows:
            rows.append(
                {
                    "instrument": r.instrument,
                    "expiry": label,
                    "strike": r.strike,
                    "type": r.option_type.value,
                    "bid": r.bid,
                    "ask": r.ask,
                    "mark": round(r.mark, 6),
                    "bid_iv": None if r.bid_iv is None else round(r.bid_iv * 100, 2),
                    "mark_iv": round(r.mark_iv * 100, 2),
                    "ask_iv": None if r.ask_iv is None else round(r.ask_iv * 100, 2),
                    "delta": round(r.delta, 4),
                    "gamma": float(f"{r.gamma:.4g}"),
                    "vega": round(r.vega, 6),
                    "theta": round(r.theta, 6),
                    "open_interest": r.open_interest,
                }
            )
    return rows


def positions_table(snap: DeskSnapshot | None) -> list[dict[str, Any]]:
    """Rows of the positions for a table: PnL, realised (with funding, fees off) and funding in the settlement coin,
    unrealised PnL also in USD, greeks in coin (vega per 1 %, theta per day)."""
    if snap is None:
        return []
    return [
        {
            "instrument": p.instrument,
            "size": p.size,
            "average": _rounded(p.average_price, 6),
            "mark": _rounded(p.mark, 6),
            "pnl": _rounded(p.pnl, 8),
            "pnl_usd": _rounded(p.pnl_usd, 2),
            "realised": _rounded(p.net_realized, 8),
            "funding": _rounded(p.funding, 8),
            "delta": _rounded(p.greeks.delta, 6),
            "gamma": None if not math.isfinite(p.greeks.gamma) else float(f"{p.greeks.gamma:.4g}"),
            "vega": _rounded(p.greeks.vega, 6),
            "theta": _rounded(p.greeks.theta, 6),
        }
        for p in sorted(snap.positions, key=lambda p: (p.underlying, p.expiry_ms or 2**62, p.instrument))
    ]


def _rounded(x: float, digits: int) -> float | None:
    # An unknown figure (NaN: a stored run has no marks) is an empty cell, not a number.
    return round(x, digits) if math.isfinite(x) else None


# --------------------------------------------------------------------------------------------------
# Volatility surface
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmileFit:
    """One expiry's market IVs and the SVI fit over them; IVs as fractions, strikes in USD."""

    label: str
    t: float
    forward: float
    strikes: np.ndarray
    bid_iv: np.ndarray
    ask_iv: np.ndarray
    mark_iv: np.ndarray
    fit_strikes: np.ndarray
    fit_iv: np.ndarray
    butterfly_ok: bool = True
    calendar_ok: bool = True
    rmse: float = float("nan")
    inside_share: float = float("nan")


@dataclass(frozen=True)
class SurfaceView:
    """Everything the volatility page draws for one underlying."""

    underlying: str
    labels: list[str]
    t: np.ndarray
    forwards: np.ndarray
    atm_iv: np.ndarray
    rr25: np.ndarray
    bf25: np.ndarray
    smiles: list[SmileFit]
    grid_strikes: np.ndarray
    grid_iv: np.ndarray

    @classmethod
    def empty(cls, underlying: str) -> SurfaceView:
        """A view with nothing in it (no chain yet)."""
        z = np.zeros(0)
        return cls(underlying, [], z, z, z, z, z, [], z, np.zeros((0, 0)))


def _slice_arrays(sl: ChainSlice) -> dict[str, np.ndarray]:
    """Per-strike arrays of a slice, using OTM options (puts below the forward, calls above)."""
    by_strike: dict[float, Any] = {}
    for r in sl.rows:
        otm = (r.option_type.value == "put") == (r.strike < sl.forward)
        if otm or r.strike not in by_strike:
            by_strike[r.strike] = r
    ks = np.array(sorted(by_strike))
    rows = [by_strike[k] for k in ks]
    nan = float("nan")
    return {
        "k": ks,
        "bid": np.array([nan if r.bid_iv is None else r.bid_iv for r in rows]),
        "ask": np.array([nan if r.ask_iv is None else r.ask_iv for r in rows]),
        "mark": np.array([r.mark_iv for r in rows]),
        # The 25-delta RR/BF are read at the plain Black-Scholes delta, as the market quotes them (and Deribit's
        # tickers give): an inverse option's row carries the premium-adjusted coin delta, BS delta minus its price.
        "delta": np.array([r.delta + r.mark if Instrument.parse(r.instrument).inverse else r.delta for r in rows]),
        "is_call": np.array([r.option_type.value == "call" for r in rows]),
    }


def surface_view(snap: DeskSnapshot | None, underlying: str | None, *, grid_points: int = 41) -> SurfaceView:
    """SVI surface over the market's bid/ask IVs (``VolSurface.from_quotes``): smiles, flags, ATM term, 25Δ RR/BF, 3-D grid."""
    from app.errors import InvalidInput
    from app.pricing.surface import VolSurface

    if snap is None or not underlying or not snap.chains.get(underlying):
        return SurfaceView.empty(underlying or "")
    slices = [s for s in snap.chains[underlying] if s.expiry_ms > snap.ts and len(s.rows) >= 6]
    arrays = [(sl, _slice_arrays(sl), (sl.expiry_ms - snap.ts) / MS_PER_YEAR) for sl in slices]
    arrays = [(sl, a, t) for sl, a, t in arrays if (np.isfinite(a["bid"]) & np.isfinite(a["ask"])).sum() >= 5]
    if not arrays:
        return SurfaceView.empty(underlying)
    k_all = np.concatenate([a["k"] for _, a, _ in arrays])
    t_all = np.concatenate([np.full(a["k"].size, t) for _, a, t in arrays])
    f_all = np.concatenate([np.full(a["k"].size, sl.forward) for sl, a, _ in arrays])
    try:
        surface = VolSurface.from_quotes(k_all, t_all, np.concatenate([a["bid"] for _, a, _ in arrays]),
                                         np.concatenate([a["ask"] for _, a, _ in arrays]), f_all)
    except InvalidInput:
        return SurfaceView.empty(underlying)
    arb = surface.arbitrage()
    labels, ts, fwds, atm, rr, bf, fits = [], [], [], [], [], [], []
    for sl, a, t in arrays:
        mid = np.where(np.isfinite(a["bid"]) & np.isfinite(a["ask"]), (a["bid"] + a["ask"]) / 2, a["mark"])
        fit_k = np.linspace(a["k"].min(), a["k"].max(), 60)
        fit_iv = surface.iv(fit_k, t)
        model_at = surface.iv(a["k"], t)
        has_both = np.isfinite(a["bid"]) & np.isfinite(a["ask"])
        rmse = float(np.sqrt(np.mean((model_at[has_both] - mid[has_both]) ** 2)))
        inside = (model_at >= a["bid"] - 1e-12) & (model_at <= a["ask"] + 1e-12)
        labels.append(expiry_label(sl.expiry_ms))
        ts.append(t)
        fwds.append(sl.forward)
        atm.append(float(surface.iv(np.array([sl.forward]), t)[0]))
        d, calls = a["delta"], a["is_call"]
        call_iv = np.interp(0.25, *_sorted_xy(d[calls], mid[calls])) if calls.sum() >= 2 else np.nan
        put_iv = np.interp(-0.25, *_sorted_xy(d[~calls], mid[~calls])) if (~calls).sum() >= 2 else np.nan
        rr.append(call_iv - put_iv)
        bf.append((call_iv + put_iv) / 2 - atm[-1])
        j = int(np.argmin(np.abs(surface.expiries_years - t)))
        fits.append(SmileFit(labels[-1], t, sl.forward, a["k"], a["bid"], a["ask"], a["mark"], fit_k, fit_iv,
                             butterfly_ok=bool(arb.butterfly[j]), calendar_ok=bool(j == 0 or arb.calendar[j - 1]),
                             rmse=rmse, inside_share=float(inside[has_both].mean()) if has_both.any() else float("nan")))
    spot = snap.index_prices.get(f"{underlying.lower()}_usd", float(np.median(fwds)))
    grid_k = np.linspace(spot * 0.5, spot * 1.6, grid_points)
    grid = np.vstack([surface.iv(grid_k, t) for t in ts])
    return SurfaceView(underlying, labels, np.array(ts), np.array(fwds), np.array(atm), np.array(rr), np.array(bf), fits, grid_k, grid)


def _sorted_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(x)
    return x[order], y[order]


# --------------------------------------------------------------------------------------------------
# Portfolio risk views
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PricedBook:
    """An underlying's positions (plus hypothetical trades) as an ``app.risk.Book`` with forward and vol per position."""

    book: RiskBook
    forward: np.ndarray  # USD per position (the index for perpetuals)
    vol: np.ndarray  # mark IV per position (0 for futures)
    spot: float
    currency: str  # coin for inverse books, USDC for linear ones


def _mark_ivs(snap: DeskSnapshot) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for slices in snap.chains.values():
        for sl in slices:
            for r in sl.rows:
                out[r.instrument] = (r.mark_iv, sl.forward)
    return out


def priced_book(snap: DeskSnapshot, underlying: str, extra: Sequence[OrderRequest] = ()) -> PricedBook | None:
    """The book of ``underlying`` with marks from the snapshot's chain; None without an index price."""
    spot = snap.index_prices.get(f"{underlying.lower()}_usd")
    if spot is None:
        chains = snap.chains.get(underlying, ())
        spot = chains[0].index_price if chains else None
    if spot is None or not np.isfinite(spot) or spot <= 0:
        return None
    legs = [(p.instrument, p.size) for p in snap.positions if p.instrument.split("-")[0].split("_")[0] == underlying]
    legs += [(r.instrument, float(r.amount) * r.side.sign) for r in extra if r.instrument.split("-")[0].split("_")[0] == underlying]
    ivs = _mark_ivs(snap)
    items, fwd, vol = [], [], []
    for name, size in legs:
        try:
            inst = Instrument.parse(name)
        except InvalidInstrument:
            continue
        mark_iv, f = ivs.get(name, (0.0, spot))
        items.append((inst, size))
        fwd.append(f if np.isfinite(f) and f > 0 else spot)
        vol.append(mark_iv if inst.kind is Kind.OPTION and np.isfinite(mark_iv) else 0.0)
    book = RiskBook.from_instruments(items, snap.ts)
    inverse = bool(book.inverse.any()) if len(book) else True
    return PricedBook(book, np.array(fwd, float), np.array(vol, float), float(spot), underlying if inverse else "USDC")


@dataclass(frozen=True)
class ScenarioGrid:
    """Portfolio PnL over spot moves (columns) × vol shifts (rows); ``pnl`` in ``currency``."""

    spot_moves: np.ndarray
    vol_moves: np.ndarray
    pnl: np.ndarray
    currency: str


def scenario_grid(
    snap: DeskSnapshot | None, underlying: str | None, *, days: float = 0.0, extra: Sequence[OrderRequest] = (),
    spot_moves: np.ndarray = DEFAULT_SPOT_MOVES, vol_moves: np.ndarray = DEFAULT_VOL_MOVES,
) -> ScenarioGrid | None:
    """Scenario PnL of an underlying's book relative to now (``app.risk.scenario_grid``), ``days`` forward.

    Coin for inverse books, USDC for linear ones; rows are vol shifts, columns spot moves.
    """
    from app.risk import scenario_grid as risk_grid

    if snap is None or not underlying:
        return None
    pb = priced_book(snap, underlying, extra)
    if pb is None:
        return None
    if len(pb.book) == 0:
        return ScenarioGrid(spot_moves, vol_moves, np.zeros((len(vol_moves), len(spot_moves))), pb.currency)
    grid = risk_grid(pb.book, pb.forward, pb.vol, spot_moves, vol_moves, time_steps=[days / 365.0])
    pnl = grid.pnl_coin if pb.currency != "USDC" else grid.pnl_usd
    return ScenarioGrid(spot_moves, vol_moves, pnl[..., 0].T, pb.currency)


@dataclass(frozen=True)
class Payoff:
    """Book PnL (USD) over a range of underlying prices, at the first option expiry and today."""

    spots: np.ndarray
    at_expiry: np.ndarray
    today: np.ndarray
    spot: float
    currency: str


def payoff(snap: DeskSnapshot | None, underlying: str | None, *, extra: Sequence[OrderRequest] = (), points: int = 121) -> Payoff | None:
    """PnL in USD over spot from −50% to +50%: today and at the book's first option expiry."""
    from app.risk import scenario_grid as risk_grid

    if snap is None or not underlying:
        return None
    pb = priced_book(snap, underlying, extra)
    if pb is None or len(pb.book) == 0:
        return None
    moves = np.linspace(-0.5, 0.5, points)
    opt_t = pb.book.t[pb.book.is_option & (pb.book.t > 0)]
    first = float(opt_t.min()) if opt_t.size else 0.0
    grid = risk_grid(pb.book, pb.forward, pb.vol, moves, [0.0], time_steps=[0.0, first])
    return Payoff(pb.spot * (1 + moves), grid.pnl_usd[:, 0, 1], grid.pnl_usd[:, 0, 0], pb.spot, "USD")


@dataclass(frozen=True)
class Exposures:
    """Greeks (coin) of a book summed by strike and by expiry."""

    strike_keys: list[str]
    by_strike: dict[str, np.ndarray]
    expiry_keys: list[str]
    by_expiry: dict[str, np.ndarray]


def exposures(snap: DeskSnapshot | None, underlying: str | None, *, extra: Sequence[OrderRequest] = ()) -> Exposures | None:
    """Delta, gamma, vega, theta (coin) per strike and per expiry of an underlying's positions."""
    if snap is None or not underlying:
        return None
    per_strike: dict[float, np.ndarray] = defaultdict(lambda: np.zeros(4))
    per_expiry: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(4))
    rows = {r.instrument: r for sl in snap.chains.get(underlying, ()) for r in sl.rows}
    legs: list[tuple[PositionView | None, str, float]] = [(p, p.instrument, p.size) for p in snap.positions if p.instrument.startswith(underlying)]
    legs += [(None, r.instrument, float(r.amount) * r.side.sign) for r in extra if r.instrument.startswith(underlying)]
    for pos, name, size in legs:
        try:
            inst = Instrument.parse(name)
        except InvalidInstrument:
            continue
        if pos is not None:
            g = pos.greeks
            vec = np.array([g.delta, g.gamma, g.vega, g.theta])
        elif name in rows:
            r = rows[name]
            vec = np.array([r.delta, r.gamma, r.vega, r.theta]) * size
        else:
            vec = np.array([size / max(snap.index_prices.get(inst.underlying, 1.0), 1e-9) if inst.inverse else size, 0, 0, 0])
        if inst.strike is not None:
            per_strike[float(inst.strike)] += vec
        key = inst.expiry_ms if inst.expiry_ms is not None else 2**62
        per_expiry[key] += vec
    names = ("delta", "gamma", "vega", "theta")
    sk = sorted(per_strike)
    ek = sorted(per_expiry)
    return Exposures(
        [f"{k:g}" for k in sk], {n: np.array([per_strike[k][i] for k in sk]) for i, n in enumerate(names)},
        ["PERP" if k == 2**62 else expiry_label(k) for k in ek], {n: np.array([per_expiry[k][i] for k in ek]) for i, n in enumerate(names)},
    )


# --------------------------------------------------------------------------------------------------
# Margin, hedging and backtest views
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskMatrix:
    """The PM scenario matrix of a margin report: rows (vol scenarios, then the extended moves) × columns (price moves).

    ``pnl`` in the settlement currency after Deribit's offsets (what the worst case is read from); NaN where a row has no
    scenario (the extended moves are not shocked in vol); ``worst`` is the (row, column) of the report's worst bucket.
    """

    rows: list[str]
    columns: list[str]
    pnl: np.ndarray
    worst: tuple[int, int] | None
    pair: str = ""


_VOL_LABELS = {"up": "vol up", "same": "vol flat", "down": "vol down"}


def risk_matrices(report: MarginReport | None) -> list[RiskMatrix]:
    """One :class:`RiskMatrix` per index pair of a PM report (its ``aggregated_risk_vectors``); [] under standard margin."""
    if report is None or report.model != "pm":
        return []
    details = report.details or {}
    vectors = details.get("aggregated_risk_vectors") or {}
    axes = details.get("risk_matrix_axes") or {}
    wb = (((details.get("pm") or {}).get("initial_margin_details") or {}).get("risk_matrix_margin_details") or {}).get(
        "worst_case_bucket"
    )
    out = []
    for key, vec in vectors.items():
        ax = axes.get(key)
        if ax is None:
            continue
        moves = [float(m) for m in ax["price_moves"]]
        ext_moves = [float(m) for m in ax["extended_moves"]]
        vols = list(ax["vol_scenarios"])
        std = np.asarray(vec["standard"], float)
        ext = np.asarray(vec["extended"], float)
        nv = len(vols)
        if std.size != len(moves) * nv or ext.size != len(ext_moves):
            continue
        # Standard vector index = bucket * n_vol + vol scenario (Deribit's 27-vector); the extended moves have one
        # scenario each and sit in their own row, at their own (wider) price moves.
        columns = sorted(set(moves) | set(ext_moves))
        col = {m: j for j, m in enumerate(columns)}
        pnl = np.full((nv + 1, len(columns)), np.nan)
        for b, m in enumerate(moves):
            pnl[:nv, col[m]] = std[b * nv:(b + 1) * nv]
        for i, m in enumerate(ext_moves):
            pnl[nv, col[m]] = ext[i]
        worst: tuple[int, int] | None = None
        if isinstance(wb, dict) and len(vectors) == 1:
            if wb.get("source") == "extended" and 0 <= int(wb["index"]) < len(ext_moves):
                worst = (nv, col[ext_moves[int(wb["index"])]])
            elif wb.get("source") == "standard" and 0 <= int(wb["index"]) < std.size:
                worst = (int(wb["index"]) % nv, col[moves[int(wb["index"]) // nv]])
        elif np.isfinite(pnl).any() and np.nanmin(pnl) < 0:
            r, c = np.unravel_index(int(np.nanargmin(pnl)), pnl.shape)
            worst = (int(r), int(c))
        rows = [_VOL_LABELS.get(v, f"vol {v}") for v in vols] + ["extended"]
        out.append(RiskMatrix(rows, [f"{m:+.0%}" for m in columns], pnl, worst, key))
    return out


def risk_matrix(report: MarginReport | None) -> RiskMatrix | None:
    """The risk matrix of a PM report's index pair with the worst loss, or None under standard margin (or no details)."""
    found = risk_matrices(report)
    if not found:
        return None
    return min(found, key=lambda m: float(np.nanmin(m.pnl)) if np.isfinite(m.pnl).any() else 0.0)


GREEK_FIELDS = ("delta", "delta_bs", "gamma", "vega", "theta", "delta_usd", "gamma_usd", "vega_usd", "theta_usd")
"""The portfolio greeks a history row keeps per underlying (coin, and USD for the ``_usd`` ones)."""


def _distance_cell(report: MarginReport, distance: float | None, none_in_range: float) -> float:
    # A report asked without distances has None there too: only a report that searched (its details carry the
    # "liquidation" solve) says "none within range", stored as ±inf; a distance never asked is unknown, NaN.
    if distance is not None:
        return float(distance)
    return none_in_range if "liquidation" in (report.details or {}) else float("nan")


DEFAULT_ALERT_LEVELS: tuple[float, ...] = tuple(ALERT_LEVELS)
"""The margin engine's default MM-usage alert levels (fractions): what a venue's reports and stored rows were cut at."""


def alert_levels(desk: object) -> tuple[float, ...]:
    """The MM-usage alert levels (fractions, ascending) the desk's margin reports are computed at.

    The desk's own ``alert_levels`` or its margin engine's, else the engine defaults: the fronts colour at these so
    their colours agree with the reports' ``alert_level`` and the margin alerts, whatever the settings ask for.
    """
    for owner in (desk, getattr(desk, "margin_engine", None)):
        levels = getattr(owner, "alert_levels", None)
        if levels:
            return tuple(sorted(float(lv) for lv in levels))
    return DEFAULT_ALERT_LEVELS


def nearest_liquidation(report: MarginReport) -> float | None:
    """The spot move (signed fraction: -0.23 down, +0.41 up) that liquidates first, the nearer of the two directions;
    None when neither is within the searched range, NaN when a distance is unknown (a stored row that lacks it)."""
    moves = [d for d in (report.distance_down, report.distance_up) if d is not None]
    if any(d != d for d in moves):
        return float("nan")
    return min(moves, key=abs) if moves else None


def history_row(snap: DeskSnapshot) -> dict[str, float]:
    """One flat row of history (what ``desk`` snapshots store), every figure a float, NaN where unknown.

    Per currency (settlement-currency amounts): ``equity``, ``balance``, ``margin_balance``, ``im``, ``mm``,
    ``available``, ``im_usage``/``mm_usage`` (fractions of the margin balance), ``alert_level``, ``pm`` (1.0 under
    portfolio margin), ``dist_down``/``dist_up`` (spot move fractions; ∓inf: none within range). Per underlying the
    greeks of :data:`GREEK_FIELDS`; ``equity_usd`` and ``pnl_usd`` (unrealised) in USD.
    """
    row: dict[str, float] = {"ts": float(snap.ts)}
    equity_usd = 0.0
    for ccy, m in snap.margin.items():
        px = 1.0 if ccy.startswith("USD") else snap.index_prices.get(f"{ccy.lower()}_usd", 0.0)
        row[f"{ccy}.equity"] = m.equity
        row[f"{ccy}.im"] = m.initial_margin
        row[f"{ccy}.mm"] = m.maintenance_margin
        row[f"{ccy}.mm_usage"] = m.mm_usage
        row[f"{ccy}.im_usage"] = m.im_usage
        row[f"{ccy}.balance"] = m.balance
        row[f"{ccy}.margin_balance"] = m.margin_balance
        row[f"{ccy}.available"] = m.available_funds
        row[f"{ccy}.alert_level"] = m.alert_level
        row[f"{ccy}.pm"] = 1.0 if m.model == "pm" else 0.0
        row[f"{ccy}.dist_down"] = _distance_cell(m, m.distance_down, -float("inf"))
        row[f"{ccy}.dist_up"] = _distance_cell(m, m.distance_up, float("inf"))
        equity_usd += m.equity * px
    row["equity_usd"] = equity_usd
    row["pnl_usd"] = sum(p.pnl_usd for p in snap.positions)
    for und, g in snap.portfolio.items():
        for name in GREEK_FIELDS:
            row[f"{und}.{name}"] = getattr(g, name)
    return row


@dataclass(frozen=True)
class DecisionSeries:
    """Delta and bands over time from hedge decisions; hedges as separate markers."""

    ts: list[int] = field(default_factory=list)
    delta: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    hedge_ts: list[int] = field(default_factory=list)
    hedge_delta: list[float] = field(default_factory=list)
    unit: str = "coin"


def _get(d: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for k in keys:
        cur: Any = d
        ok = True
        for part in k.split("."):
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                ok = False
                break
        if ok and cur is not None:
            return cur
    return default


def decision_series(decisions: Iterable[dict[str, Any]]) -> DecisionSeries:
    """Delta, band and hedge markers from stored decisions (keys from the hedger's decision records)."""
    out = DecisionSeries()
    unit = None
    for d in decisions:
        ts = _get(d, "ts", "inputs.ts")
        delta = _get(d, "delta", "inputs.delta")
        if ts is None or delta is None:
            continue
        out.ts.append(int(ts))
        out.delta.append(float(delta))
        out.lower.append(float(_get(d, "lower", "inputs.band_lower", "inputs.lower", default=float("nan"))))
        out.upper.append(float(_get(d, "upper", "inputs.band_upper", "inputs.upper", default=float("nan"))))
        unit = unit or _get(d, "unit", "inputs.unit")
        if str(_get(d, "action", default="")) == "hedge":
            out.hedge_ts.append(int(ts))
            out.hedge_delta.append(float(delta))
    return replace(out, unit=str(unit)) if unit else out


def decision_rows(decisions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decisions as table rows: time, rule, action, delta, band, size, reason."""
    rows = []
    for d in decisions:
        ts = _get(d, "ts", "inputs.ts", default=0)
        rows.append(
            {
                "time": datetime.fromtimestamp(int(ts) / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                "rule": _get(d, "code", "inputs.rule", "rule", default=""),
                "action": _get(d, "action", default=""),
                "delta": _round(_get(d, "delta", "inputs.delta")),
                "lower": _round(_get(d, "lower", "inputs.band_lower", "inputs.lower")),
                "upper": _round(_get(d, "upper", "inputs.band_upper", "inputs.upper")),
                "size": _round(_get(d, "size", "inputs.wanted_coin")),
                "reason": str(_get(d, "reason", default="")),
            }
        )
    return rows


def _round(v: Any) -> Any:
    try:
        return round(float(v), 6)
    except (TypeError, ValueError):
        return v


@dataclass(frozen=True)
class Frontier:
    """Cost vs hedging error points, one per run."""

    labels: list[str]
    cost: list[float]
    error: list[float]
    groups: list[str]


def run_frontier(runs: Sequence[dict[str, Any]], decisions_of: Any = None) -> Frontier:
    """Cost (fees + slippage, USD) vs hedging error (std of delta − target over decisions) of each run.

    ``decisions_of(run_id)`` returns a run's decisions; a run's cost comes from its summary (``fees_usd``,
    ``slippage_usd``, or ``hedge_cost``).
    """
    labels, cost, err, groups = [], [], [], []
    for r in runs:
        summary = r.get("summary") or r.get("metrics") or {}
        if "hedge_cost" in summary:
            c = float(summary["hedge_cost"])
        else:
            c = float(summary.get("fees_usd", 0.0)) + float(summary.get("slippage_usd", 0.0))
        e = summary.get("hedging_error_std")
        if e is None and decisions_of is not None:
            dev = [float(_get(d, "inputs.delta", "delta")) - float(_get(d, "inputs.target", default=0.0))
                   for d in decisions_of(r["run_id"]) if _get(d, "inputs.delta", "delta") is not None]
            e = float(np.std(dev)) if dev else None
        if e is None:
            continue
        labels.append(str(r.get("name") or r.get("run_id")))
        cost.append(c)
        err.append(float(e))
        groups.append(str(summary.get("band_rule") or (r.get("config") or {}).get("band", {}).get("rule", "runs")))
    return Frontier(labels, cost, err, groups)


@dataclass(frozen=True)
class BacktestComparison:
    """Backtests side by side: bar metrics, frontier points and a table."""

    labels: list[str]
    metrics: dict[str, list[float]]
    cost: list[float]
    error: list[float]
    groups: list[str]
    rows: list[dict[str, Any]]
    columns: list[str]


COMPARED_METRICS = ("hedges", "hedge_cost", "hedging_error_std", "hedging_error_worst", "max_abs_delta", "time_outside_band", "pnl", "max_margin_usage")


def backtest_comparison(runs: Sequence[dict[str, Any]]) -> BacktestComparison:
    """Compare stored backtests on their headline metrics."""
    labels = [str(r.get("name") or r["id"]) for r in runs]
    metrics = {m: [float((r.get("metrics") or {}).get(m, float("nan"))) for r in runs] for m in COMPARED_METRICS}
    rows = [{"id": r["id"], "name": r.get("name", ""), **{m: _round((r.get("metrics") or {}).get(m)) for m in COMPARED_METRICS}} for r in runs]
    groups = [str((r.get("config") or {}).get("band_rule", (r.get("metrics") or {}).get("band_rule", "runs"))) for r in runs]
    return BacktestComparison(labels, metrics, metrics["hedge_cost"], metrics["hedging_error_std"], groups, rows, ["id", "name", *COMPARED_METRICS])


@dataclass(frozen=True, slots=True)
class StoredSnapshot(DeskSnapshot):
    """A snapshot rebuilt from a stored history row; ``pnl_usd`` is the row's total unrealised PnL (USD, NaN if not stored)."""

    pnl_usd: float = float("nan")


def total_pnl_usd(snap: DeskSnapshot) -> float:
    """Unrealised PnL of the whole book in USD: the stored total of a stored row, else the positions' sum (NaN if unknown)."""
    if isinstance(snap, StoredSnapshot):
        return snap.pnl_usd
    return float(sum(p.pnl_usd for p in snap.positions))


def _cell(row: dict[str, Any], key: str) -> float:
    value = row.get(key)
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _ratio(num: float, den: float) -> float:
    return num / den if math.isfinite(num) and math.isfinite(den) and den > 0 else float("nan")


def _stored_distance(value: float) -> float | None:
    # ±inf: the desk searched and found no liquidation within range (None in a report); NaN: never searched (unknown).
    return None if math.isinf(value) else value


def margin_from_row(row: dict[str, Any], currency: str, account: str = "main") -> MarginReport:
    """The margin report of ``currency`` as stored in a history row; figures the row lacks are NaN (unknown).

    Older rows hold only equity, IM, MM and MM usage: the margin balance is then MM / MM usage (how the engine
    computed the usage), and what cannot be derived (balance, the margin model, distances) stays unknown.
    """
    c = currency
    equity, im, mm = _cell(row, f"{c}.equity"), _cell(row, f"{c}.im"), _cell(row, f"{c}.mm")
    mm_usage = _cell(row, f"{c}.mm_usage")
    mb = _cell(row, f"{c}.margin_balance")
    if math.isnan(mb) and mm > 0 and math.isfinite(mm_usage) and mm_usage > 0:
        mb = mm / mm_usage
    im_usage = _cell(row, f"{c}.im_usage")
    if math.isnan(im_usage):
        im_usage = _ratio(im, mb)
    if math.isnan(mm_usage):
        mm_usage = _ratio(mm, mb)
    available = _cell(row, f"{c}.available")
    if math.isnan(available):
        available = mb - im
    pm = _cell(row, f"{c}.pm")
    return MarginReport(
        account=account, currency=c, model="pm" if pm == 1.0 else "sm", balance=_cell(row, f"{c}.balance"),
        equity=equity, margin_balance=mb, initial_margin=im, maintenance_margin=mm, available_funds=available,
        im_usage=im_usage, mm_usage=mm_usage, distance_down=_stored_distance(_cell(row, f"{c}.dist_down")),
        distance_up=_stored_distance(_cell(row, f"{c}.dist_up")), alert_level=_cell(row, f"{c}.alert_level"),
        details={"stored": True, "model_known": not math.isnan(pm)},
    )


def model_label(report: MarginReport) -> str | None:
    """``"pm"`` or ``"sm"``, or None when the report came from a stored row that did not keep the model."""
    return None if (report.details or {}).get("model_known") is False else report.model


def snapshot_from_row(row: dict[str, Any]) -> StoredSnapshot:
    """Rebuild a (chain-less, position-less) snapshot from a stored history row: margin per currency, greeks per
    underlying and the total PnL, each as stored; a figure the row does not hold is NaN (shown as unknown), never 0."""
    ts = int(row.get("ts", 0))
    currencies = sorted({k.split(".")[0] for k in row if k.endswith(".mm")})
    margin = {c: margin_from_row(row, c) for c in currencies}
    unds = sorted({k.split(".")[0] for k in row if k.endswith(".delta")})
    portfolio = {u: GreeksView(**{g: _cell(row, f"{u}.{g}") for g in GREEK_FIELDS}) for u in unds}
    return StoredSnapshot(ts=ts, venue="stored", index_prices={}, instruments=(), chains={}, quotes={}, positions=(),
                          portfolio=portfolio, margin=margin, pnl_usd=_cell(row, "pnl_usd"))


def stored_position(instrument: str, size: float, average_price: float, account: str = "main") -> PositionView:
    """A position known only by its size and average price (a stored run): mark, PnL, realised and greeks NaN (unknown)."""
    nan = float("nan")
    try:
        inst: Instrument | None = Instrument.parse(instrument)
    except InvalidInstrument:
        inst = None
    return PositionView(
        instrument, float(size), float(average_price), nan, nan, nan, GreeksView(**dict.fromkeys(GREEK_FIELDS, nan)),
        inst.expiry_ms if inst else None, inst.base if inst else instrument.split("-")[0], account,
        realized_pnl=nan, fees=nan, funding=nan,
    )
