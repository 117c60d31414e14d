"""Portfolio margin: Deribit's scenario model (deribit.md §2), vectorised and incremental.

Per instrument a *unit risk vector* (P&L in the settlement currency of a 1-coin long position) over the
standard grid (9 price buckets x 3 vol scenarios = 27) and the extended table (8 moves, vol up). A position's
vector is size x unit vector, a portfolio's is their sum, so a pre-trade check adds one scaled unit vector to a
cached sum instead of revaluing the book.

Margin of one settlement currency (exact on both simulator examples, §2.3-2.4):

    aggregated   = sum of vectors;  gains x pnl_offset (capped by max_offsetable_pnl), losses kept
    extended     = losses x extended_table_factor reduced by extended_dampener, gains dropped
    worst_case   = -min(aggregated standard and extended, 0)
    risk_matrix  = worst_case + delta_shock + roll_shock + correlation_contingency
    IM           = risk_matrix + spot_margin + mmp_margin + open_orders_margin
    MM           = mm_factor x risk_matrix

Options are revalued with Black-76 on the forward (inverse options in coin = USD price / shocked forward);
inverse futures with ``size_coin * (1 - 1/(1+m))``; linear futures with ``size * F * m``.

Speed (10,000 positions in well under 50 ms on one core): a portfolio takes every per-instrument fact from a
registry of names (arrays, one dict look-up per position), revalues each pair's options in one (n, 35) price grid,
and prices a call and a put of one strike, expiry, forward and vol once: both carry the time value of whichever is
out of the money in that scenario, plus their own intrinsic value (put-call parity at rate 0). ``DESK_PM_THREADS``
splits very large grids over threads (default 1).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from operator import attrgetter
from typing import Any

import numpy as np

from app.domain import MS_PER_YEAR, Instrument, Kind
from app.engine.margin_params import DEFAULT_PM, PMCurrencyParams, PMModelChoices, PMPairParams, PMParams
from app.errors import InvalidInput, UnknownInstrument
from app.pricing import black76, black76_price

_MS_PER_DAY = 86_400_000.0


def price_moves(pair: PMPairParams, buckets_count: int) -> np.ndarray:
    """The 2*buckets+1 standard price moves (fractions), lowest first, e.g. -0.16 ... +0.16."""
    n = int(buckets_count)
    return np.array([pair.price_range * (i - n) / n for i in range(2 * n + 1)])


def vol_shocks(dte_days: np.ndarray, pair: PMPairParams, choices: PMModelChoices) -> tuple[np.ndarray, np.ndarray]:
    """Relative up and down vol shocks per option: range * (30 / max(floor, DTE)) ** power (UNCONFIRMED form)."""
    d = np.maximum(dte_days, choices.dte_floor_days)
    short = d < choices.vega_power_cutoff_days
    power = np.where(short, pair.short_term_vega_power, pair.long_term_vega_power)
    scale = (30.0 / d) ** power
    return pair.volatility_range_up * scale, pair.volatility_range_down * scale


@dataclass(frozen=True, slots=True)
class UnitRisk:
    """Unit risk vectors of instruments of one index pair: per 1 coin long, in the settlement currency."""

    names: tuple[str, ...]
    grid: np.ndarray  # (n, buckets*vols + len(extended_moves)): standard scenarios, then extended
    n_standard: int  # buckets*vols: where the extended columns start
    delta: np.ndarray  # (n,) coin delta per coin of position (Black-76 delta for options, 1 for futures)
    expiry_ms: np.ndarray  # (n,) int64 expiry ms per instrument, -1 for perpetuals
    years: np.ndarray  # (n,) years to expiry (0 for perpetuals)

    @property
    def standard(self) -> np.ndarray:
        """(n, buckets*vols) standard-grid P&L per coin (a view of ``grid``)."""
        return self.grid[:, : self.n_standard]

    @property
    def extended(self) -> np.ndarray:
        """(n, len(extended_moves)) extended-table P&L per coin (a view of ``grid``)."""
        return self.grid[:, self.n_standard :]

    @property
    def expiry(self) -> tuple[int | None, ...]:
        """Expiry ms per instrument (None: perpetual)."""
        return tuple(None if e < 0 else e for e in self.expiry_ms.tolist())


def unit_risk(
    instruments: Sequence[Instrument],
    forwards: np.ndarray,
    ivs: np.ndarray,
    now_ms: int,
    params: PMParams,
    pair_name: str,
    names: Sequence[str] | None = None,
) -> UnitRisk:
    """Unit risk vectors of instruments of one index pair (forwards in USD, ivs as fractions)."""
    names = tuple(names) if names is not None else tuple(i.name for i in instruments)
    for nm, i in zip(names, instruments):
        if i.kind is Kind.SPOT:
            raise InvalidInput(f"{nm}: spot holdings are collateral, not a risk-matrix position", code="margin.spot")
    expiry = [i.expiry_ms for i in instruments]
    return _unit_risk(
        names,
        np.array([i.kind is Kind.OPTION for i in instruments], dtype=bool),
        np.array([i.is_call for i in instruments], dtype=bool),
        np.array([i.inverse for i in instruments], dtype=bool),
        np.array([float(i.strike) if i.strike is not None else 0.0 for i in instruments]),
        np.array([-1 if e is None else e for e in expiry], dtype=np.int64),
        np.asarray(forwards, dtype=float),
        np.asarray(ivs, dtype=float),
        now_ms,
        params,
        pair_name,
        None,
    )


def _unit_risk(
    names: tuple[str, ...],
    is_opt: np.ndarray,
    is_call: np.ndarray,
    inverse: np.ndarray,
    strike: np.ndarray,
    expiry_ms: np.ndarray,
    forwards: np.ndarray,
    ivs: np.ndarray,
    now_ms: int,
    params: PMParams,
    pair_name: str,
    twin: np.ndarray | None,
) -> UnitRisk:
    """Unit risk vectors from per-instrument arrays; ``twin`` (optional) ids a call and put of one strike alike."""
    pair = params.pair(pair_name)
    ch = params.choices
    n = len(names)
    moves = price_moves(pair, params.general.buckets_count)
    nb = len(moves)
    nv = int(params.general.vol_scenarios_count)
    if nv != len(ch.vol_order):
        raise InvalidInput(f"vol_scenarios_count {nv} does not match the vol order {ch.vol_order}", code="input.model_params")
    ext_moves = np.asarray(ch.extended_moves, dtype=float)
    ns = nb * nv
    grid = np.empty((n, ns + len(ext_moves)))
    delta = np.ones(n)
    perpetual = expiry_ms < 0
    years = np.maximum(0.0, (expiry_ms - now_ms) / MS_PER_YEAR)
    if perpetual.any():
        years[perpetual] = 0.0
    fut = ~is_opt
    if fut.any():
        ext_m = np.clip(ext_moves, moves[0], moves[-1]) if ch.extended_clamps_futures else ext_moves
        inv_row = np.concatenate([np.repeat(1.0 - 1.0 / (1.0 + moves), nv), 1.0 - 1.0 / (1.0 + ext_m)])
        lin_row = np.concatenate([np.repeat(moves, nv), ext_m])
        fi = np.flatnonzero(fut & inverse)
        if fi.size:
            grid[fi] = inv_row
        fl = np.flatnonzero(fut & ~inverse)
        if fl.size:
            grid[fl] = forwards[fl, None] * lin_row[None, :]
    if is_opt.any():
        idx = np.flatnonzero(is_opt)
        whole = idx.size == n
        px, delta_opt = _option_grid(
            forwards if whole else forwards[idx],
            strike if whole else strike[idx],
            years if whole else years[idx],
            ivs if whole else ivs[idx],
            is_call if whole else is_call[idx],
            inverse if whole else inverse[idx],
            None if twin is None else (twin if whole else twin[idx]),
            moves,
            ext_moves,
            pair,
            ch,
            out=grid if whole else None,
        )
        if whole:
            delta = delta_opt
        else:
            grid[idx] = px
            delta[idx] = delta_opt
    return UnitRisk(names, grid, ns, delta, expiry_ms, years)


def _option_grid(
    fwd: np.ndarray,
    strike: np.ndarray,
    t: np.ndarray,
    iv: np.ndarray,
    is_call: np.ndarray,
    inverse: np.ndarray,
    twin: np.ndarray | None,
    moves: np.ndarray,
    ext_moves: np.ndarray,
    pair: PMPairParams,
    ch: PMModelChoices,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 27 + 8) unit P&L of options over the standard then extended scenarios, and their Black-76 deltas."""
    if not (np.all(np.isfinite(fwd)) and np.all(fwd > 0)):
        raise InvalidInput("option forward must be a positive finite price", code="input.nan")
    if not (np.all(np.isfinite(iv)) and np.all(iv > 0)):
        raise InvalidInput("option mark IV must be a positive finite number", code="input.nan")
    n = fwd.size
    tt = np.maximum(t, 1e-12)
    up, down = vol_shocks(t * 365.0, pair, ch)
    vol_up = iv + np.maximum(iv, pair.min_volatility_for_shock_up) * up
    vol_down = np.maximum(iv * (1.0 - down), ch.min_vol)
    by_name = {"up": vol_up, "same": iv, "down": vol_down}
    nb, nv, ne = len(moves), len(ch.vol_order), len(ext_moves)
    ns = nb * nv

    base = black76(fwd, strike, tt, iv, is_call)
    base_px = base.price / fwd if inverse.all() else np.where(inverse, base.price / fwd, base.price)

    # Columns are (bucket, vol) then extended; the forward of a column is fwd x f_cols.
    f_cols = np.concatenate([np.repeat(1.0 + moves, nv), 1.0 + ext_moves])
    f_all = fwd[:, None] * f_cols[None, :]
    shared = _shared_rows(twin, fwd, iv, inverse) if twin is not None and n > 1 else None
    priced = shared[0] if shared is not None else slice(None)
    v_all = np.empty((n if shared is None else shared[0].size, ns + ne))
    for j, name in enumerate(ch.vol_order):
        v_all[:, j:ns:nv] = by_name[name][priced, None]
    v_all[:, ns:] = vol_up[priced, None]
    if shared is None:
        px = _revalue(f_all, strike, tt, v_all, is_call)
    else:
        # A call and a put of one strike, expiry, forward and vol share their time value, the price of the one
        # out of the money: price that once per scenario and add each option's own intrinsic value (put-call
        # parity at rate 0; exact in the tails, since nothing is subtracted from an in-the-money price).
        rows, index = shared
        f_p = f_all[rows]
        k_p = strike[rows]
        tv = _revalue(f_p, k_p, tt[rows], v_all, f_p < k_p[:, None])
        sign = np.where(is_call, 1.0, -1.0)
        px = f_all - strike[:, None]
        px *= sign[:, None]
        np.maximum(px, 0.0, out=px)
        px += tv[index]
    if inverse.all():
        px /= f_all
    elif inverse.any():
        np.divide(px, f_all, out=px, where=inverse[:, None])
    if out is not None:
        np.subtract(px, base_px[:, None], out=out)
        return out, base.delta
    px -= base_px[:, None]
    return px, base.delta


def _shared_rows(twin: np.ndarray, fwd: np.ndarray, iv: np.ndarray, inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows to price, each option's row among them) when options of one strike and expiry (same ``twin`` id) share
    forward and vol; None when no two do."""
    n = twin.size
    if int(twin.max()) > 4 * n:  # few options against a large registry: number their strikes 0..m-1 first
        twin = np.unique(twin, return_inverse=True)[1]
    slot = np.full(int(twin.max()) + 1, -1, dtype=np.intp)
    own = np.arange(n)
    slot[twin] = own  # the last option of each strike and expiry stands for it
    first = slot[twin]
    same = (first != own) & (fwd[first] == fwd) & (iv[first] == iv) & (inverse[first] == inverse)
    if not same.any():
        return None
    rows = np.flatnonzero(~same)
    pos = np.empty(n, dtype=np.intp)
    pos[rows] = np.arange(rows.size)
    return rows, np.where(same, pos[first], pos)


class _Registry:
    """Facts of instruments that never change (pair, settlement, kind, strike, expiry), kept per name as arrays.

    A portfolio turns its names into registry rows once (one dict look-up per position) and then takes every
    per-instrument fact by fancy indexing, instead of per-position Python work on Instrument objects.
    """

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.insts: list[Instrument] = []
        self.pairs: list[str] = []  # pair code -> index pair name
        self.settlements: list[str] = []  # settlement code -> currency
        self.underlying_future: list[str] = []  # per row: the name of the option's future (the forward's source)
        self._pair_code: dict[str, int] = {}
        self._ccy_code: dict[str, int] = {}
        self._stem: dict[str, int] = {}
        self._lock = threading.Lock()
        self._alloc(256)

    def _alloc(self, cap: int) -> None:
        old = getattr(self, "pair", None)
        fields = {
            "pair": np.intp, "ccy": np.intp, "twin": np.intp, "is_opt": bool, "is_call": bool, "is_spot": bool,
            "inverse": bool, "strike": float, "expiry_ms": np.int64,
        }
        n = len(self.insts)
        for name, dtype in fields.items():
            arr = np.zeros(cap, dtype=dtype)
            if old is not None:
                arr[:n] = getattr(self, name)[:n]
            setattr(self, name, arr)

    def lookup(self, names: list[str]) -> np.ndarray:
        """Registry rows of ``names`` (parsing and adding unknown ones; InvalidInstrument for a bad name)."""
        try:
            return np.fromiter(map(self.rows.__getitem__, names), dtype=np.intp, count=len(names))
        except KeyError:
            for name in names:
                if name not in self.rows:
                    self._add(name)
            return np.fromiter(map(self.rows.__getitem__, names), dtype=np.intp, count=len(names))

    def _add(self, name: str) -> None:
        inst = Instrument.parse(name)
        with self._lock:
            if name in self.rows:
                return
            i = len(self.insts)
            if i == self.pair.size:
                self._alloc(2 * i)
            is_opt = inst.kind is Kind.OPTION
            self.pair[i] = self._pair_code.setdefault(inst.underlying, len(self._pair_code))
            if self.pair[i] == len(self.pairs):
                self.pairs.append(inst.underlying)
            self.ccy[i] = self._ccy_code.setdefault(inst.settlement, len(self._ccy_code))
            if self.ccy[i] == len(self.settlements):
                self.settlements.append(inst.settlement)
            # Options of one strike and expiry (a call and its put) share a twin id.
            self.twin[i] = self._stem.setdefault(name[:-2] if is_opt else name, len(self._stem))
            self.is_opt[i] = is_opt
            self.is_call[i] = inst.is_call
            self.is_spot[i] = inst.kind is Kind.SPOT
            self.inverse[i] = inst.inverse
            self.strike[i] = float(inst.strike) if inst.strike is not None else 0.0
            e = inst.expiry_ms
            self.expiry_ms[i] = -1 if e is None else e
            self.underlying_future.append(name.rsplit("-", 2)[0] if is_opt else name)
            self.insts.append(inst)
            self.rows[name] = i  # last: a reader that finds the name finds its facts


_REGISTRY = _Registry()


_PARALLEL_MIN = 120_000  # elements; below this the thread hand-off costs more than it saves
_POOL: tuple[int, Any] | None = None  # (workers, executor)


def revalue_threads() -> int:
    """Threads that share one large scenario grid: ``DESK_PM_THREADS`` (default 1, the calling thread only).

    One by default: the margin target is for one core, and on the 2-core reference machine two threads gave no
    shorter wall time (benchmarks/margin.py reports both)."""
    env = os.environ.get("DESK_PM_THREADS", "").strip()
    if not env:
        return 1
    try:
        return max(1, min(int(env), os.cpu_count() or 1))
    except ValueError:
        raise InvalidInput(f"DESK_PM_THREADS must be a whole number, got {env!r}", code="input.config") from None


def _revalue(f: np.ndarray, k: np.ndarray, t: np.ndarray, v: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Black-76 prices (USD) of rows of scenarios: f, v (and c) per scenario, k, t (and c) per row.

    Large grids are split over threads (the pricing kernels release the GIL)."""
    global _POOL
    n = f.shape[0]
    c2 = c if c.ndim == 2 else c[:, None]
    workers = revalue_threads()
    if f.size < _PARALLEL_MIN or workers < 2:
        return black76_price(f, k[:, None], t[:, None], v, c2)
    if _POOL is None or _POOL[0] != workers:
        from concurrent.futures import ThreadPoolExecutor

        if _POOL is not None:
            _POOL[1].shutdown(wait=False)
        _POOL = (workers, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pm-revalue"))
    pool = _POOL[1]
    bounds = np.linspace(0, n, workers + 1).astype(int)
    parts = [
        pool.submit(black76_price, f[a:b], k[a:b, None], t[a:b, None], v[a:b], c2[a:b])
        for a, b in zip(bounds[:-1], bounds[1:]) if b > a
    ]
    return np.concatenate([p.result() for p in parts], axis=0)


# ------------------------------------------------------------------------------------------------
# Aggregation and margin of one settlement currency
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairRisk:
    """Summed raw vectors and deltas of one (index pair, settlement currency) portfolio."""

    pair: str
    standard: np.ndarray
    extended: np.ndarray
    delta_by_expiry: dict[int | None, float]
    years_by_expiry: dict[int | None, float]
    index_price: float
    coin_to_ccy: float  # 1 for inverse (coin-settled), the index price for linear
    usd_per_ccy: float  # index price for coin-settled, 1 for USD stable coins


@dataclass(frozen=True, slots=True)
class PairMargin:
    """Risk-matrix result of one pair."""

    worst_case: float
    delta_shock: float
    roll_shock: float
    standard: np.ndarray  # aggregated (after offset)
    extended: np.ndarray
    worst_bucket: dict[str, Any]

    @property
    def risk_matrix_margin(self) -> float:
        """worst_case + delta_shock + roll_shock (currency units)."""
        return self.worst_case + self.delta_shock + self.roll_shock


def aggregate_adjust(
    std: np.ndarray, ext: np.ndarray, ccy: PMCurrencyParams, pair: PMPairParams, usd_per_ccy: float
) -> tuple[np.ndarray, np.ndarray]:
    """Apply pnl_offset (with max_offsetable_pnl cap) to standard gains and the dampener to extended losses."""
    cap = ccy.max_offsetable_pnl / usd_per_ccy
    std_adj = np.where(std > 0.0, np.minimum(std * ccy.pnl_offset, cap), std)
    damp = ccy.extended_dampener / usd_per_ccy
    ext_adj = np.where(ext > 0.0, 0.0, np.minimum(0.0, ext * pair.extended_table_factor + damp))
    return std_adj, ext_adj


def roll_shock(delta_by_expiry: Mapping[int | None, float], years_by_expiry: Mapping[int | None, float], ccy: PMCurrencyParams) -> float:
    """Roll shock in coin: sum over expiries of |D| * max(exp(move_risk * T) - 1, min_move); perp min_move*|D|."""
    total = 0.0
    for key, d in delta_by_expiry.items():
        if key is None:
            total += ccy.min_annualised_move * abs(d)
        else:
            t = years_by_expiry.get(key, 0.0)
            total += abs(d) * max(math.expm1(ccy.annualised_move_risk * t), ccy.min_annualised_move)
    return total


def delta_shock(net_delta: float, index_price: float, pair: PMPairParams, rate: float) -> float:
    """Delta shock in coin for a very large net delta (documented secondary form, UNVERIFIED; 0 below threshold)."""
    d = abs(net_delta)
    s = index_price
    excess = max(d * s - pair.delta_total_liq_shock_threshold, 0.0)
    if excess == 0.0:
        return 0.0
    return min(excess * d * rate, pair.max_delta_shock * s * d) / s


def worst_bucket(
    std_adj: np.ndarray, ext_adj: np.ndarray, nv: int, same_pos: int, moves: np.ndarray, ext_moves: Sequence[float]
) -> tuple[float, dict[str, Any]]:
    """Worst loss (positive) and where it is, shaped like the simulator's ``worst_case_bucket``."""
    m_std = float(std_adj.min()) if std_adj.size else 0.0
    m_ext = float(ext_adj.min()) if ext_adj.size else 0.0
    nb = len(moves)
    if min(m_std, m_ext) >= 0.0:
        centre = nb // 2
        return 0.0, {"bucket": centre + 1, "side": "center", "source": "standard", "index": centre * nv + same_pos}
    if m_ext < m_std:
        i = int(np.argmin(ext_adj))
        mv = ext_moves[i]
        return -m_ext, {"bucket": i + 1, "side": "left" if mv < 0 else "right", "source": "extended", "index": i}
    ties = np.flatnonzero(std_adj == m_std)
    bucket = int(ties[0]) // nv
    in_bucket = [int(j) for j in ties if int(j) // nv == bucket]
    index = bucket * nv + same_pos if bucket * nv + same_pos in in_bucket else in_bucket[0]
    mv = moves[bucket]
    side = "left" if mv < 0 else ("right" if mv > 0 else "center")
    # Deribit numbers buckets 1..9 from the left and gives the 0-based index into the 27-vector (§2.3).
    return -m_std, {"bucket": bucket + 1, "side": side, "source": "standard", "index": index}


def pair_margin(risk: PairRisk, params: PMParams, currency: str) -> PairMargin:
    """Risk-matrix margin of one pair's aggregated vectors (currency units)."""
    pair = params.pair(risk.pair)
    ccy = params.ccy(currency)
    ch = params.choices
    std_adj, ext_adj = aggregate_adjust(risk.standard, risk.extended, ccy, pair, risk.usd_per_ccy)
    moves = price_moves(pair, params.general.buckets_count)
    nv = int(params.general.vol_scenarios_count)
    worst, where = worst_bucket(std_adj, ext_adj, nv, ch.vol_order.index("same"), moves, ch.extended_moves)
    roll = roll_shock(risk.delta_by_expiry, risk.years_by_expiry, ccy) * risk.coin_to_ccy
    net = sum(risk.delta_by_expiry.values())
    dshock = delta_shock(net, risk.index_price, pair, ch.delta_shock_rate) * risk.coin_to_ccy
    return PairMargin(float(worst), float(dshock), float(roll), std_adj, ext_adj, where)


@dataclass(frozen=True, slots=True)
class PMResult:
    """Portfolio margin of one settlement currency (currency units)."""

    currency: str
    pairs: dict[str, PairMargin]
    pre_aggregated: dict[str, tuple[np.ndarray, np.ndarray]]
    mmp_margin: float
    open_orders_margin: float
    mm_factor: float
    spot_margin: float = 0.0
    correlation_contingency: float = 0.0

    @property
    def worst_case(self) -> float:
        """Sum of the pairs' worst-case losses."""
        return sum(p.worst_case for p in self.pairs.values())

    @property
    def risk_matrix_margin(self) -> float:
        """worst_case + delta_shock + roll_shock + correlation_contingency, summed over pairs."""
        return sum(p.risk_matrix_margin for p in self.pairs.values()) + self.correlation_contingency

    @property
    def initial_margin(self) -> float:
        """risk_matrix_margin + spot_margin + mmp_margin + open_orders_margin."""
        return self.risk_matrix_margin + self.spot_margin + self.mmp_margin + self.open_orders_margin

    @property
    def maintenance_margin(self) -> float:
        """mm_factor x risk_matrix_margin."""
        return self.mm_factor * self.risk_matrix_margin

    def aggregated_vectors(self) -> dict[str, dict[str, list[float]]]:
        """The simulator's ``aggregated_risk_vectors`` of this currency: each pair's vectors after offsets."""
        return {
            vector_key(p, self.currency): {"standard": pm.standard.tolist(), "extended": pm.extended.tolist()}
            for p, pm in self.pairs.items()
        }

    def margins_dict(self) -> dict[str, Any]:
        """The simulator's ``margins.<ccy>`` object."""
        worst_pair = max(self.pairs.values(), key=lambda p: p.worst_case, default=None)
        details = {
            "delta_shock": sum(p.delta_shock for p in self.pairs.values()),
            "roll_shock": sum(p.roll_shock for p in self.pairs.values()),
            "worst_case_bucket": dict(worst_pair.worst_bucket) if worst_pair else None,
            "worst_case": self.worst_case,
            "correlation_contingency": self.correlation_contingency,
        }
        return {
            "initial_margin_details": {
                "risk_matrix_margin_details": details,
                "risk_matrix_margin": self.risk_matrix_margin,
                "spot_margin": self.spot_margin,
                "mmp_margin": self.mmp_margin,
                "open_orders_margin": self.open_orders_margin,
            },
            "initial_margin": self.initial_margin,
            "maintenance_margin": self.maintenance_margin,
        }


# ------------------------------------------------------------------------------------------------
# A whole portfolio from names, sizes and marks (simulate_pm and what-if files)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarkInput:
    """Market inputs of one instrument: mark (coin for inverse options, USD for futures), IV fraction, forward USD."""

    mark_price: float
    mark_iv: float | None = None
    underlying_price: float | None = None


def _check_finite(label: str, value: float | None) -> None:
    if value is None or not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"{label} must be a positive finite number, got {value!r}", code="input.nan", field=label)


_MARK_IV = attrgetter("mark_iv")
_UNDERLYING = attrgetter("underlying_price")


def _sizes(names: list[str], values: list[Any]) -> np.ndarray:
    """Position sizes as floats; InvalidInput naming the first one that is not a finite number."""
    if not set(map(type, values)) <= {float, int}:
        for name, size in zip(names, values):
            if not isinstance(size, (int, float)):
                raise InvalidInput(f"position size of {name} must be a finite number, got {size!r}", code="input.nan")
    sizes = np.array(values, dtype=float)
    finite = np.isfinite(sizes)
    if not finite.all():
        j = int(np.argmin(finite))
        raise InvalidInput(f"position size of {names[j]} must be a finite number, got {values[j]!r}", code="input.nan")
    return sizes


class PMPortfolio:
    """Per-instrument risk vectors of a portfolio, grouped by settlement currency and index pair."""

    def __init__(
        self,
        positions: Mapping[str, float],
        marks: Mapping[str, MarkInput],
        index_prices: Mapping[str, float],
        now_ms: int,
        params: PMParams = DEFAULT_PM,
    ) -> None:
        self.params = params
        self.now_ms = int(now_ms)
        reg = _REGISTRY
        names = list(positions)
        ids = reg.lookup(names)
        sizes = _sizes(names, list(positions.values()))
        self._names = names
        self._sizes_all = sizes
        for name, price in index_prices.items():
            _check_finite(f"index price {name}", price)
        self.index_prices = dict(index_prices)
        self.marks = marks
        self.units: dict[str, UnitRisk] = {}
        self._sizes: dict[str, np.ndarray] = {}  # pair -> sizes aligned with its unit vectors
        self._row_of: dict[str, dict[str, int]] = {}  # pair -> name -> row of its unit vectors (built on demand)
        self._groups: dict[str, tuple[list[int | None], np.ndarray, np.ndarray, dict[int | None, float]]] = {}
        self._pairs_by_ccy: dict[str, set[str]] = {}
        if not names:
            return
        spot = reg.is_spot[ids]
        if spot.any():
            nm = names[int(np.argmax(spot))]
            raise InvalidInput(f"{nm}: spot holdings are collateral, not a risk-matrix position", code="margin.spot")
        pair_codes = reg.pair[ids]
        ccy_codes = reg.ccy[ids]
        present = np.unique(pair_codes)
        for code in present.tolist():
            pair_name = reg.pairs[code]
            rows = np.flatnonzero(pair_codes == code) if present.size > 1 else np.arange(len(names))
            for c in np.unique(ccy_codes[rows]).tolist():
                self._pairs_by_ccy.setdefault(reg.settlements[c], set()).add(pair_name)
            if pair_name not in self.index_prices:
                raise InvalidInput(f"index price {pair_name!r} is missing", code="margin.missing_index", field=pair_name)
            self._add_pair(pair_name, rows, ids[rows])

    def _add_pair(self, pair_name: str, rows: np.ndarray, ids: np.ndarray) -> None:
        """Unit vectors of the positions ``rows`` (registry ``ids``) of one index pair."""
        reg = _REGISTRY
        s = self.index_prices[pair_name]
        all_names = self._names
        names = all_names if rows.size == len(all_names) else [all_names[i] for i in rows.tolist()]
        is_opt = reg.is_opt[ids]
        inverse = reg.inverse[ids]
        fwd = np.empty(rows.size)
        iv = np.full(rows.size, np.nan)
        marks = self.marks
        opt = np.flatnonzero(is_opt)
        if opt.size:
            o_names = names if opt.size == len(names) else [names[i] for i in opt.tolist()]
            ms = list(map(marks.get, o_names))
            try:
                ivs = np.fromiter(map(_MARK_IV, ms), dtype=float, count=len(ms))  # mark_iv None -> NaN
            except AttributeError:  # a missing mark (not `None in ms`: that calls every mark's __eq__)
                bad = next(n for n, mk in zip(o_names, ms) if mk is None)
                raise InvalidInput(f"{bad}: an option needs mark_iv", code="margin.missing_mark", field=bad) from None
            unds = np.fromiter(map(_UNDERLYING, ms), dtype=float, count=len(ms))
            for j in np.flatnonzero(np.isnan(ivs)).tolist():
                if ms[j].mark_iv is None:
                    raise InvalidInput(f"{o_names[j]}: an option needs mark_iv", code="margin.missing_mark", field=o_names[j])
            for j in np.flatnonzero(np.isnan(unds)).tolist():
                if ms[j].underlying_price is None:
                    # No forward with the mark: the option's future's mark, else the index.
                    fm = marks.get(reg.underlying_future[int(ids[opt[j]])])
                    unds[j] = fm.mark_price if fm is not None else s
            iv[opt] = ivs
            fwd[opt] = unds
        fut = np.flatnonzero(~is_opt)
        if fut.size:
            f_names = [names[i] for i in fut.tolist()]
            ms = list(map(marks.get, f_names))
            for j, mk in enumerate(ms):
                if mk is None and not inverse[fut[j]]:
                    raise InvalidInput(f"{f_names[j]}: a linear future needs a mark price", code="margin.missing_mark")
            fwd[fut] = [s if mk is None else mk.mark_price for mk in ms]
        if not (np.all(np.isfinite(fwd)) and np.all(fwd > 0)):
            raise InvalidInput(f"forwards of {pair_name} must be positive finite prices", code="input.nan")
        expiry_ms = reg.expiry_ms[ids]
        unit = _unit_risk(
            tuple(names), is_opt, reg.is_call[ids], inverse, reg.strike[ids], expiry_ms, fwd, iv, self.now_ms, self.params,
            pair_name, reg.twin[ids],
        )
        self.units[pair_name] = unit
        self._sizes[pair_name] = self._sizes_all[rows]
        # Roll-shock grouping: expiry keys (perpetual first) and which rows count (options only if the choice says so).
        uniq, group = np.unique(expiry_ms, return_inverse=True)
        keys: list[int | None] = [None if e < 0 else e for e in uniq.tolist()]
        weight = unit.delta if self.params.choices.roll_shock_includes_options else np.where(is_opt, 0.0, unit.delta)
        years = {k: (0.0 if k is None else max(0.0, (k - self.now_ms) / MS_PER_YEAR)) for k in keys}
        self._groups[pair_name] = (keys, group, weight, years)

    @cached_property
    def positions(self) -> dict[str, float]:
        """Position sizes in coin (negative = short) by instrument name."""
        return dict(zip(self._names, self._sizes_all.tolist()))

    @cached_property
    def instruments(self) -> dict[str, Instrument]:
        """The portfolio's instruments by name."""
        reg = _REGISTRY
        return {n: reg.insts[reg.rows[n]] for n in self._names}

    def pair_risk(self, pair_name: str, currency: str, extra: Mapping[str, float] | None = None) -> PairRisk:
        """Summed raw vectors and per-expiry deltas of one pair; ``extra`` adds hypothetical coin sizes."""
        unit = self.units[pair_name]
        sizes = self._sizes[pair_name]
        if extra:
            row_of = self._row_of.get(pair_name)
            if row_of is None:
                row_of = self._row_of[pair_name] = {n: j for j, n in enumerate(unit.names)}
            sizes = sizes.copy()
            for n, q in extra.items():
                j = row_of.get(n)
                if j is not None:
                    sizes[j] += q
        total = sizes @ unit.grid
        ns = unit.n_standard
        keys, group, weight, years = self._groups[pair_name]
        per = np.bincount(group, weights=sizes * weight, minlength=len(keys))
        deltas = dict(zip(keys, per.tolist()))
        s = self.index_prices[pair_name]
        inverse = pair_name.endswith("_usd")
        return PairRisk(pair_name, total[:ns], total[ns:], deltas, dict(years), s, 1.0 if inverse else s, s if inverse else 1.0)

    def currencies(self) -> list[str]:
        """Settlement currencies present (upper case)."""
        return sorted(self._pairs_by_ccy)

    def pairs_of(self, currency: str) -> list[str]:
        """Index pairs whose instruments settle in ``currency``."""
        return sorted(self._pairs_by_ccy.get(currency, ()))

    def result(
        self, currency: str, *, mmp_margin: float = 0.0, open_orders: Sequence[tuple[str, float]] = ()
    ) -> PMResult:
        """Margin of one settlement currency; ``open_orders`` are (name, signed coin size) pairs."""
        pairs = {}
        pre = {}
        for p in self.pairs_of(currency):
            risk = self.pair_risk(p, currency)
            pre[p] = (risk.standard, risk.extended)
            pairs[p] = pair_margin(risk, self.params, currency)
        oom = self.open_orders_margin(currency, open_orders, pairs) if open_orders else 0.0
        return PMResult(currency, pairs, pre, float(mmp_margin), oom, self.params.general.mm_factor)

    def open_orders_margin(
        self, currency: str, orders: Sequence[tuple[str, float]], base: Mapping[str, PairMargin]
    ) -> float:
        """Extra risk-matrix margin if all buy orders, or all sell orders, filled (the larger; never negative)."""
        for name, _ in orders:
            if name not in self.instruments:
                raise UnknownInstrument(f"open order on {name} needs the instrument's marks in the portfolio", name=name)
        base_rm = sum(p.risk_matrix_margin for p in base.values())
        worst = 0.0
        for sign in (1.0, -1.0):
            extra: dict[str, float] = {}
            for name, size in orders:
                if size * sign > 0:
                    extra[name] = extra.get(name, 0.0) + size
            if not extra:
                continue
            rm = sum(pair_margin(self.pair_risk(p, currency, extra), self.params, currency).risk_matrix_margin for p in self.pairs_of(currency))
            worst = max(worst, rm - base_rm)
        return worst

    def initial_vectors(self) -> dict[str, dict[str, list[float]]]:
        """Per-instrument risk vectors (position-scaled), the simulator's ``initial_risk_vectors``."""
        by_name: dict[str, dict[str, list[float]]] = {}
        for pair, unit in self.units.items():
            scaled = self._sizes[pair][:, None] * unit.grid
            ns = unit.n_standard
            for k, name in enumerate(unit.names):
                by_name[name] = {"standard": scaled[k, :ns].tolist(), "extended": scaled[k, ns:].tolist()}
        return {n: by_name[n] for n in self._names}


def vector_key(pair: str, currency: str) -> str:
    """The simulator's key of a pair's aggregated risk vectors in a currency (``btc_usd`` in BTC -> ``btc_btc``)."""
    return f"{pair.split('_')[0]}_{currency.lower()}"


def simulate_pm(
    positions: Mapping[str, float],
    marks: Mapping[str, Mapping[str, Any]],
    index_prices: Mapping[str, float],
    model_params: PMParams | Mapping[str, Any] | None = None,
    *,
    now_ms: int | None = None,
    currency: str | None = None,
    mmp_margin: float = 0.0,
    open_orders: Sequence[tuple[str, float]] = (),
    open_orders_margin: float | None = None,
) -> dict[str, Any]:
    """Deribit ``private/pme/simulate``-shaped result (sizes in base coin; marks as Deribit tickers, IV in %).

    ``open_orders`` are (instrument, signed coin size) pairs whose margin is computed; ``open_orders_margin``
    instead states the figure (coin), as when reproducing a venue response whose orders are not known.
    """
    params = _params_of(model_params)
    ts = now_ms
    if ts is None and isinstance(model_params, Mapping):
        ts = (model_params.get("general") or {}).get("timestamp")
    if ts is None:
        raise InvalidInput("simulate_pm needs now_ms (or model_params.general.timestamp)", code="input.timestamp")
    mk = {name: mark_input(name, m) for name, m in marks.items()}
    pf = PMPortfolio(positions, mk, index_prices, int(ts), params)
    currencies = [currency.upper()] if currency else pf.currencies()
    margins: dict[str, Any] = {}
    agg: dict[str, Any] = {}
    pre_agg: dict[str, Any] = {}
    for ccy in currencies:
        res = pf.result(ccy, mmp_margin=mmp_margin, open_orders=open_orders)
        if open_orders_margin is not None:
            res = replace(res, open_orders_margin=float(open_orders_margin))
        margins[ccy.lower()] = res.margins_dict()
        agg.update(res.aggregated_vectors())
        for p in res.pairs:
            s, e = res.pre_aggregated[p]
            pre_agg[vector_key(p, ccy)] = {"standard": s.tolist(), "extended": e.tolist()}
    mp = params.to_model_params()
    mp["general"]["timestamp"] = int(ts)
    return {
        "model_params": mp,
        "aggregated_risk_vectors": agg,
        "pre_aggregated_risk_vectors": pre_agg,
        "initial_risk_vectors": pf.initial_vectors(),
        "margins": margins,
        "portfolio": {"currency": {}, "position": dict(pf.positions)},
        "index_price": dict(index_prices),
        "ticker": {n: dict(m) for n, m in marks.items()},
    }


def _params_of(model_params: PMParams | Mapping[str, Any] | None) -> PMParams:
    if model_params is None:
        return DEFAULT_PM
    if isinstance(model_params, PMParams):
        return model_params
    return DEFAULT_PM.with_overrides(dict(model_params))


def mark_input(name: str, m: Mapping[str, Any]) -> MarkInput:
    """A Deribit-ticker-like dict (``mark_price``, ``mark_iv`` in percent, ``underlying_price``) as MarkInput."""
    if not isinstance(m, Mapping) or "mark_price" not in m:
        raise InvalidInput(f"mark of {name} needs mark_price", code="margin.missing_mark", field=name)
    price = _num(m["mark_price"], f"{name}.mark_price")
    iv = m.get("mark_iv")
    ivf = None if iv is None else _num(iv, f"{name}.mark_iv") / 100.0
    und = m.get("underlying_price")
    undf = None if und is None else _num(und, f"{name}.underlying_price")
    if price < 0 or (ivf is not None and ivf <= 0):
        raise InvalidInput(f"mark of {name} must be non-negative with a positive IV", code="input.nan", field=name)
    return MarkInput(price, ivf, undf)


def _num(value: Any, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{label} must be a number, got {value!r}", code="input.type", field=label)
    f = float(value)
    if not math.isfinite(f):
        raise InvalidInput(f"{label} is not a finite number", code="input.nan", field=label)
    return f
