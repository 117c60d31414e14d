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
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
    standard: np.ndarray  # (n, buckets*vols)
    extended: np.ndarray  # (n, len(extended_moves))
    delta: np.ndarray  # (n,) coin delta per coin of position (Black-76 delta for options, 1 for futures)
    expiry: tuple[int | None, ...]  # expiry ms per instrument (None: perpetual)
    years: np.ndarray  # (n,) years to expiry (0 for perpetuals)


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
    pair = params.pair(pair_name)
    ch = params.choices
    n = len(instruments)
    names = tuple(names) if names is not None else tuple(i.name for i in instruments)
    moves = price_moves(pair, params.general.buckets_count)
    nb = len(moves)
    nv = int(params.general.vol_scenarios_count)
    if nv != len(ch.vol_order):
        raise InvalidInput(f"vol_scenarios_count {nv} does not match the vol order {ch.vol_order}", code="input.model_params")
    ext_moves = np.asarray(ch.extended_moves, dtype=float)
    std = np.empty((n, nb * nv))
    ext = np.empty((n, len(ext_moves)))
    delta = np.ones(n)
    forwards = np.asarray(forwards, dtype=float)
    ivs = np.asarray(ivs, dtype=float)
    expiry = tuple(_expiry_ms(nm, i) for nm, i in zip(names, instruments))
    years = np.array([0.0 if e is None else max(0.0, (e - now_ms) / MS_PER_YEAR) for e in expiry])
    kinds = [i.kind for i in instruments]
    for nm, k in zip(names, kinds):
        if k is Kind.SPOT:
            raise InvalidInput(f"{nm}: spot holdings are collateral, not a risk-matrix position", code="margin.spot")
    is_opt = np.array([k is Kind.OPTION for k in kinds], dtype=bool)
    inverse = np.array([i.inverse for i in instruments], dtype=bool)
    fut = ~is_opt
    if fut.any():
        ext_m = np.clip(ext_moves, moves[0], moves[-1]) if ch.extended_clamps_futures else ext_moves
        inv_std = np.repeat(1.0 - 1.0 / (1.0 + moves), nv)
        inv_ext = 1.0 - 1.0 / (1.0 + ext_m)
        lin_std = np.repeat(moves, nv)
        fi = np.flatnonzero(fut & inverse)
        if fi.size:
            std[fi] = inv_std
            ext[fi] = inv_ext
        fl = np.flatnonzero(fut & ~inverse)
        if fl.size:
            std[fl] = forwards[fl, None] * lin_std[None, :]
            ext[fl] = forwards[fl, None] * ext_m[None, :]
    if is_opt.any():
        idx = np.flatnonzero(is_opt)
        _option_unit_risk(
            [instruments[i] for i in idx], [names[i] for i in idx], forwards[idx], ivs[idx], years[idx], moves, ext_moves, pair, ch, std, ext, delta, idx
        )
    return UnitRisk(names, std, ext, delta, expiry, years)


_EXPIRY_CACHE: dict[str, int | None] = {}
_STATIC: dict[str, tuple[str, str, bool, bool, float]] = {}


def _static(name: str, inst: Instrument) -> tuple[str, str, bool, bool, float]:
    """(index pair, settlement, is option, is call, strike) of an instrument, computed once per name."""
    hit = _STATIC.get(name)
    if hit is None:
        strike = float(inst.strike) if inst.strike is not None else 0.0
        hit = _STATIC[name] = (inst.underlying, inst.settlement, inst.kind is Kind.OPTION, inst.is_call, strike)
    return hit


def _expiry_ms(name: str, inst: Instrument) -> int | None:
    hit = _EXPIRY_CACHE.get(name, -1)
    if hit == -1:
        hit = _EXPIRY_CACHE[name] = inst.expiry_ms
    return hit  # type: ignore[return-value]


def _option_unit_risk(
    insts: list[Instrument],
    names: list[str],
    fwd: np.ndarray,
    iv: np.ndarray,
    t: np.ndarray,
    moves: np.ndarray,
    ext_moves: np.ndarray,
    pair: PMPairParams,
    ch: PMModelChoices,
    std: np.ndarray,
    ext: np.ndarray,
    delta: np.ndarray,
    idx: np.ndarray,
) -> None:
    statics = [_STATIC.get(n) or _static(n, i) for n, i in zip(names, insts)]
    strike = np.array([st[4] for st in statics])
    is_call = np.array([st[3] for st in statics])
    inverse = np.array([i.inverse for i in insts])
    if not (np.all(np.isfinite(fwd)) and np.all(fwd > 0)):
        raise InvalidInput("option forward must be a positive finite price", code="input.nan")
    if not (np.all(np.isfinite(iv)) and np.all(iv > 0)):
        raise InvalidInput("option mark IV must be a positive finite number", code="input.nan")
    tt = np.maximum(t, 1e-12)
    up, down = vol_shocks(t * 365.0, pair, ch)
    vol_up = iv + np.maximum(iv, pair.min_volatility_for_shock_up) * up
    vol_down = np.maximum(iv * (1.0 - down), ch.min_vol)
    by_name = {"up": vol_up, "same": iv, "down": vol_down}
    vols = np.stack([by_name[v] for v in ch.vol_order], axis=1)  # (n, nv)
    nb, nv = len(moves), vols.shape[1]

    base = black76(fwd, strike, tt, iv, is_call)
    base_px = np.where(inverse, base.price / fwd, base.price)
    delta[idx] = base.delta

    # One revaluation over all 27 standard and 8 extended scenarios: columns are (bucket, vol) then extended.
    n = len(insts)
    f_cols = np.concatenate([np.repeat(1.0 + moves, nv), 1.0 + ext_moves])  # (35,)
    f_all = fwd[:, None] * f_cols[None, :]
    v_all = np.concatenate([np.tile(vols, (1, nb)), np.broadcast_to(vol_up[:, None], (n, len(ext_moves)))], axis=1)
    px = _revalue(f_all, strike, tt, v_all, is_call)
    px = np.where(inverse[:, None], px / f_all, px) - base_px[:, None]
    std[idx] = px[:, : nb * nv]
    ext[idx] = px[:, nb * nv :]


_PARALLEL_MIN = 120_000  # elements; below this the thread hand-off costs more than it saves
_POOL: Any = None


def _revalue(f: np.ndarray, k: np.ndarray, t: np.ndarray, v: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Black-76 prices of rows of scenarios; large grids are split over threads (numpy releases the GIL)."""
    global _POOL
    n = f.shape[0]
    workers = min(8, os.cpu_count() or 1)
    if f.size < _PARALLEL_MIN or workers < 2:
        return black76_price(f, k[:, None], t[:, None], v, c[:, None])
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pm-revalue")
    bounds = np.linspace(0, n, workers + 1).astype(int)
    parts = [
        _POOL.submit(black76_price, f[a:b], k[a:b, None], t[a:b, None], v[a:b], c[a:b, None])
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
        self.positions: dict[str, float] = {}
        self.instruments: dict[str, Instrument] = {}
        for name, size in positions.items():
            inst = Instrument.parse(name)
            if not isinstance(size, (int, float)) or not math.isfinite(size):
                raise InvalidInput(f"position size of {name} must be a finite number, got {size!r}", code="input.nan")
            self.positions[name] = float(size)
            self.instruments[name] = inst
        for name, price in index_prices.items():
            _check_finite(f"index price {name}", price)
        self.index_prices = dict(index_prices)
        self.marks = dict(marks)
        self.units: dict[str, UnitRisk] = {}
        self._groups: dict[str, tuple[list[int | None], np.ndarray, np.ndarray]] = {}
        by_pair: dict[str, list[tuple[str, Instrument]]] = {}
        self._pairs_by_ccy: dict[str, set[str]] = {}
        for name, inst in self.instruments.items():
            pair_name, settlement, _, _, _ = _static(name, inst)
            by_pair.setdefault(pair_name, []).append((name, inst))
            self._pairs_by_ccy.setdefault(settlement, set()).add(pair_name)
        for pair_name, items in by_pair.items():
            if pair_name not in self.index_prices:
                raise InvalidInput(f"index price {pair_name!r} is missing", code="margin.missing_index", field=pair_name)
            s = self.index_prices[pair_name]
            fwd = np.empty(len(items))
            iv = np.full(len(items), np.nan)
            for i, (name, inst) in enumerate(items):
                mk = self.marks.get(name)
                if _STATIC[name][2]:
                    if mk is None or mk.mark_iv is None:
                        raise InvalidInput(f"{name}: an option needs mark_iv", code="margin.missing_mark", field=name)
                    iv[i] = mk.mark_iv
                    f = mk.underlying_price
                    if f is None:
                        fm = self.marks.get(name.rsplit("-", 2)[0])
                        f = fm.mark_price if fm is not None else s
                else:
                    if mk is None and not inst.inverse:
                        raise InvalidInput(f"{name}: a linear future needs a mark price", code="margin.missing_mark")
                    f = mk.mark_price if mk is not None else s
                fwd[i] = f
            if not (np.all(np.isfinite(fwd)) and np.all(fwd > 0)):
                raise InvalidInput(f"forwards of {pair_name} must be positive finite prices", code="input.nan")
            insts = [i for _, i in items]
            names = [n for n, _ in items]
            unit = unit_risk(insts, fwd, iv, self.now_ms, params, pair_name, names)
            self.units[pair_name] = unit
            # Roll-shock grouping: expiry keys and which rows count (options only if the choice says so).
            keys = sorted({e for e in unit.expiry}, key=lambda e: -1 if e is None else e)
            pos = {k: j for j, k in enumerate(keys)}
            counts = np.array([params.choices.roll_shock_includes_options or i.kind is not Kind.OPTION for i in insts], dtype=float)
            self._groups[pair_name] = (keys, np.array([pos[e] for e in unit.expiry]), counts * unit.delta)

    def pair_risk(self, pair_name: str, currency: str, extra: Mapping[str, float] | None = None) -> PairRisk:
        """Summed raw vectors and per-expiry deltas of one pair; ``extra`` adds hypothetical coin sizes."""
        unit = self.units[pair_name]
        pos = self.positions
        if extra:
            sizes = np.array([pos.get(n, 0.0) + extra.get(n, 0.0) for n in unit.names])
        else:
            sizes = np.array([pos.get(n, 0.0) for n in unit.names])
        std = sizes @ unit.standard
        ext = sizes @ unit.extended
        keys, group, weight = self._groups[pair_name]
        per = np.bincount(group, weights=sizes * weight, minlength=len(keys))
        yrs = dict(zip(unit.expiry, unit.years.tolist()))
        deltas = {k: float(per[j]) for j, k in enumerate(keys)}
        years = {k: (0.0 if k is None else yrs[k]) for k in keys}
        s = self.index_prices[pair_name]
        inverse = pair_name.endswith("_usd")
        return PairRisk(pair_name, std, ext, deltas, years, s, 1.0 if inverse else s, s if inverse else 1.0)

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
        out: dict[str, dict[str, list[float]]] = {}
        for unit in self.units.values():
            for k, name in enumerate(unit.names):
                size = self.positions[name]
                out[name] = {"standard": (size * unit.standard[k]).tolist(), "extended": (size * unit.extended[k]).tolist()}
        return out


def _agg_key(pair: str, currency: str) -> str:
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
        for p, pm in res.pairs.items():
            agg[_agg_key(p, ccy)] = {"standard": pm.standard.tolist(), "extended": pm.extended.tolist()}
            s, e = res.pre_aggregated[p]
            pre_agg[_agg_key(p, ccy)] = {"standard": s.tolist(), "extended": e.tolist()}
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
