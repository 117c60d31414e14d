"""Calibration figures: the simulated market's daily returns and DVOL against the real series.

``simulated_stats`` runs many independent paths of one underlying's model at a coarse step and pools their daily
log returns and daily DVOL closes; ``real_stats`` reads the Binance daily closes and Deribit DVOL CSVs of
``shared/data`` over the same window (DVOL's life, 2021-03-24 onwards). docs/calibration.md reports both and
tests/connectors/test_sim_calibration.py keeps them close.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from connectors.sim.market_model import MarketModel, UnderlyingParams

DVOL_START = "2021-03-24"


@dataclass(frozen=True)
class ReturnStats:
    """Daily log-return and vol-level figures: vol annualised per 1.0 (√365), DVOL in vol points."""

    days: int
    realised_vol: float
    excess_kurtosis: float
    skewness: float
    dvol_mean: float
    dvol_median: float
    worst_day: float

    def as_dict(self) -> dict[str, float]:
        """The figures as a dict."""
        return asdict(self)


def _figures(returns: np.ndarray, dvols: np.ndarray) -> ReturnStats:
    return ReturnStats(
        days=int(returns.size),
        realised_vol=float(returns.std() * np.sqrt(365.0)),
        excess_kurtosis=float(stats.kurtosis(returns)),
        skewness=float(stats.skew(returns)),
        dvol_mean=float(dvols.mean()),
        dvol_median=float(np.median(dvols)),
        worst_day=float(returns.min()),
    )


def simulated_stats(params: UnderlyingParams, *, days: int = 1000, paths: int = 64, steps_per_day: int = 6,
                    seed: int = 11) -> ReturnStats:
    """Figures of ``paths`` simulated paths of ``days`` days each (one underlying's model, pooled)."""
    model = MarketModel({f"p{i}": params for i in range(paths)}, seed=seed)
    dt = 1.0 / (365.0 * steps_per_day)
    returns = np.empty((days, paths))
    dvols = np.empty((days, paths))
    # Burn in a quarter so the vol state starts from its stationary distribution, not from ``params.vol``.
    model.step_many(dt, 90 * steps_per_day)
    for d in range(days):
        returns[d] = model.step_many(dt, steps_per_day).sum(axis=0)
        dvols[d] = model.implied_atm_all(30.0 / 365.0) * 100.0
    return _figures(returns.ravel(), dvols.ravel())


def _read(path: Path, column: str, since: str) -> np.ndarray:
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["date"] >= since]
    return np.array([float(r[column]) for r in rows])


def real_stats(data_dir: Path, coin: str = "btc", since: str = DVOL_START) -> ReturnStats:
    """Figures of the real Binance daily closes and Deribit DVOL of ``coin`` since ``since`` (ISO date)."""
    closes = _read(data_dir / f"{coin}_usdt_binance_spot_1d.csv", "close", since)
    dvols = _read(data_dir / f"deribit_dvol_{coin}_1d.csv", "close", since)
    return _figures(np.diff(np.log(closes)), dvols)
