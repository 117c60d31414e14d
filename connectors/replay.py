"""Historical replay: the simulated venue driven by real prices (shared/data CSVs) instead of the market model.

The underlying path is the real one: Binance closes, 5-minute bars where the data has them (2022-11-05..12) and
hourly bars elsewhere, interpolated log-linearly between bar closes at the venue's step. Options are marked from
the venue's SSVI smile whose ATM level follows Deribit's DVOL (daily open to close, interpolated through the day)
where DVOL exists (from 2021-03-24); before that — Black Thursday 2020-03-12 — the level is the trailing 7-day
realised vol of the hourly closes (no look-ahead) times the model's variance risk premium. The skew steepens on
real down-moves exactly as the model's does on down-jumps. Market makers, takers, index sources, margin and the
matching engine are the simulated venue's own, so a backtest trades against books quoted around real prices.

    venue = ReplayVenue(ReplayConfig(day="2020-03-12"))
    venue.advance(24 * 3_600_000)
"""

from __future__ import annotations

import csv
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from app.clock import SimClock
from app.domain import MS_PER_YEAR
from app.errors import ConfigError, InvalidInput
from connectors.sim.listing import ListingConfig
from connectors.sim.market_model import MarketModel, UnderlyingParams
from connectors.sim.venue import SimConfig, SimVenue

STRESS_DAYS = ("2020-03-12", "2021-05-19", "2022-11-09", "2024-08-05")
DEFAULT_DAY = STRESS_DAYS[0]
"""The day replayed when none is given: Black Thursday."""
"""The stress days backtests replay (data.md §5)."""
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
REALISED_WINDOW_H = 7 * 24


def default_data_dir() -> Path:
    """``shared/data`` next to the repository (or ``$DESK_DATA_DIR``)."""
    import os

    env = os.environ.get("DESK_DATA_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return here.parents[2] / "shared" / "data"


def _iso_ms(text: str) -> int:
    text = text.strip()
    if len(text) == 10:
        return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass
class PricePath:
    """Bar-close times (epoch ms, the end of each bar) and close prices (USD) of one underlying."""

    ts: np.ndarray
    close: np.ndarray
    resolution_ms: int
    source: str
    _times: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._times = self.ts.tolist()

    def at(self, t_ms: int) -> float:
        """Log-linear interpolation of the closes at ``t_ms`` (flat outside the data)."""
        i = bisect_right(self._times, t_ms)
        if i == 0:
            return float(self.close[0])
        if i >= len(self.ts):
            return float(self.close[-1])
        t0, t1 = self.ts[i - 1], self.ts[i]
        w = (t_ms - t0) / (t1 - t0)
        return float(math.exp((1 - w) * math.log(self.close[i - 1]) + w * math.log(self.close[i])))


def _read_bars(path: Path, start_ms: int, end_ms: int, bar_ms: int) -> tuple[np.ndarray, np.ndarray]:
    ts: list[int] = []
    px: list[float] = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            t = _iso_ms(row["timestamp"]) + bar_ms  # the close is known at the end of the bar
            if start_ms <= t <= end_ms:
                close = float(row["close"])
                if not (close > 0 and math.isfinite(close)):
                    continue  # bad rows are dropped, not propagated
                ts.append(t)
                px.append(close)
    return np.array(ts, dtype=np.int64), np.array(px)


def load_path(data_dir: Path, coin: str, start_ms: int, end_ms: int) -> PricePath:
    """The finest real price path of ``coin`` covering [start_ms, end_ms] (5-minute where available, else hourly)."""
    c = coin.lower()
    for fine in sorted(data_dir.glob(f"{c}_usdt_binance_spot_5m_*.csv")):
        ts, px = _read_bars(fine, start_ms - HOUR_MS, end_ms + HOUR_MS, 300_000)
        if len(ts) and ts[0] <= start_ms and ts[-1] >= end_ms:
            return PricePath(ts, px, 300_000, fine.name)
    hourly = data_dir / f"{c}_usdt_binance_spot_1h.csv"
    if not hourly.exists():
        raise ConfigError(f"no price data for {coin} in {data_dir} ({hourly.name} missing)", key="replay.data_dir")
    ts, px = _read_bars(hourly, start_ms - 2 * HOUR_MS, end_ms + 2 * HOUR_MS, HOUR_MS)
    if len(ts) < 2 or ts[0] > start_ms or ts[-1] < end_ms:
        raise ConfigError(f"{hourly.name} does not cover the replay window of {coin}", key="replay.start")
    return PricePath(ts, px, HOUR_MS, hourly.name)


def load_dvol(data_dir: Path, coin: str) -> dict[int, tuple[float, float]]:
    """Deribit DVOL per UTC day start (epoch ms): (open, close) in vol points; empty when there is no file."""
    path = data_dir / f"deribit_dvol_{coin.lower()}_1d.csv"
    if not path.exists():
        return {}
    out = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            o, c = float(row["open"]), float(row["close"])
            if o > 0 and c > 0:
                out[_iso_ms(row["date"])] = (o, c)
    return out


def trailing_realised_vol(data_dir: Path, coin: str, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Hour-end times and the realised vol (per 1.0, annualised) of the 7 days of hourly closes before each."""
    ts, px = _read_bars(data_dir / f"{coin.lower()}_usdt_binance_spot_1h.csv", start_ms - (REALISED_WINDOW_H + 2) * HOUR_MS,
                        end_ms + 2 * HOUR_MS, HOUR_MS)
    r = np.diff(np.log(px))
    vols = np.full(len(ts), np.nan)
    for i in range(REALISED_WINDOW_H, len(ts)):
        window = r[i - REALISED_WINDOW_H:i]
        vols[i] = float(np.sqrt(np.mean(window * window) * 24 * 365))
    keep = ~np.isnan(vols)
    return ts[keep], vols[keep]


class ReplayModel(MarketModel):
    """A MarketModel whose spot follows real closes and whose ATM vol level follows DVOL or realised vol."""

    def __init__(self, params: dict[str, UnderlyingParams], clock: SimClock, paths: dict[str, PricePath],
                 levels: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        super().__init__(params, seed=0)
        self.clock = clock
        self.paths = paths
        self.levels = levels  # name -> (times ms, ATM implied vol per 1.0), interpolated linearly
        self._level = np.array([self._level_at(n, clock.now_ms()) for n in self.names])
        self.s = np.array([paths[n].at(clock.now_ms()) for n in self.names])
        self.sigma = self._level / self.vrp

    def _level_at(self, name: str, t_ms: int) -> float:
        ts, lv = self.levels[name]
        return float(np.interp(t_ms, ts, lv))

    def step(self, dt: float) -> np.ndarray:
        """Move to the real prices at the clock's time; return the log returns of the step."""
        now = self.clock.now_ms()
        new = np.array([self.paths[n].at(now) for n in self.names])
        ret = np.log(new / self.s)
        self.s = new
        self._level = np.array([self._level_at(n, now) for n in self.names])
        self.sigma = np.maximum(self._level / self.vrp, 0.05)
        # A real fall over the last hour beyond two standard deviations of the hour acts on the skew like the
        # model's down-jumps (the interpolated path has no jumps of its own inside a bar).
        hour_ago = np.array([self.paths[n].at(now - HOUR_MS) for n in self.names])
        fall = np.maximum(-np.log(new / hour_ago) - 2.0 * self.sigma * math.sqrt(HOUR_MS / MS_PER_YEAR), 0.0)
        self.z = np.maximum(self.z * np.exp(-self._zdecay * dt), fall / self._js)
        self.last_jump = np.where(fall > 0, ret, 0.0)
        self.steps += 1
        return ret

    def expected_vol_of(self, which: np.ndarray, years: np.ndarray) -> np.ndarray:
        """Flat term structure at the replayed level of underlying ``which[j]`` (before the risk premium); the
        model's expected_vol and expected_vol_all go through it."""
        return (self._level / self.vrp)[which] + np.zeros(np.shape(years))


@dataclass
class ReplayConfig:
    """What to replay: a UTC ``day`` (or ``start``/``end`` ISO times), which coins, from which data folder."""

    day: str | None = DEFAULT_DAY
    start: str | None = None
    end: str | None = None
    underlyings: tuple[str, ...] = ("BTC", "ETH")
    data_dir: Path = field(default_factory=default_data_dir)
    seed: int = 7
    step_ms: int = 1_000
    margin_model: str = "sm"
    listing: ListingConfig = field(default_factory=ListingConfig)

    def window(self) -> tuple[int, int]:
        """(start_ms, end_ms) of the replay."""
        if self.start is not None:
            start = _iso_ms(self.start)
            end = _iso_ms(self.end) if self.end else start + DAY_MS
        elif self.day is not None:
            start = _iso_ms(self.day)
            end = start + DAY_MS
        else:
            raise ConfigError("a replay needs a day or a start", key="replay.day")
        if end <= start:
            raise InvalidInput(f"replay end {self.end} is not after start {self.start}", code="replay.window")
        return start, end


def _levels(cfg: ReplayConfig, coin: str, params: UnderlyingParams, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    dvol = load_dvol(cfg.data_dir, coin)
    days = range(start - start % DAY_MS, end + DAY_MS, DAY_MS)
    if dvol and all(d in dvol for d in days if d <= end):
        ts, lv = [], []
        for d in days:
            if d in dvol:
                o, c = dvol[d]
                ts += [d, d + DAY_MS - 1]
                lv += [o / 100.0, c / 100.0]
        return np.array(ts), np.array(lv)
    ts, rv = trailing_realised_vol(cfg.data_dir, coin, start, end)
    if len(ts) == 0:
        raise ConfigError(f"not enough hourly data before the replay of {coin} for a realised vol", key="replay.start")
    return ts, rv * params.vrp


class ReplayVenue(SimVenue):
    """The simulated venue on a real price path (``name`` is ``replay``)."""

    name = "replay"

    def __init__(self, config: ReplayConfig | None = None) -> None:
        cfg = config or ReplayConfig()
        if not cfg.data_dir.is_dir():
            raise ConfigError(f"replay data folder {cfg.data_dir} does not exist", key="replay.data_dir")
        start, end = cfg.window()
        self.replay = cfg
        self.window = (start, end)
        params = {b: UnderlyingParams.default(b) for b in cfg.underlyings}
        self._paths = {b: load_path(cfg.data_dir, b, start, end) for b in cfg.underlyings}
        self._levels = {b: _levels(cfg, b, params[b], start, end) for b in cfg.underlyings}
        params = {b: UnderlyingParams.default(b, spot=self._paths[b].at(start)) for b in cfg.underlyings}
        sim = SimConfig(seed=cfg.seed, start_ms=start, step_ms=cfg.step_ms, underlyings=cfg.underlyings, params=params,
                        listing=cfg.listing, margin_model=cfg.margin_model)
        super().__init__(sim)

    def _make_model(self, cfg: SimConfig, seed: int) -> MarketModel:
        return ReplayModel(cfg.params, self.clock, self._paths, self._levels)

    def remaining_ms(self) -> int:
        """Simulated ms left until the end of the replay window."""
        return max(0, self.window[1] - self.clock.now_ms())

    def data_sources(self) -> dict[str, str]:
        """Which file each underlying's path comes from, and its resolution."""
        return {b: f"{p.source} ({p.resolution_ms // 60_000} min bars)" for b, p in self._paths.items()}


def stress_day_window(day: str) -> tuple[int, int]:
    """(start_ms, end_ms) of one UTC stress day."""
    start = _iso_ms(day)
    return start, start + DAY_MS

