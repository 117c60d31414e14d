"""Load the shared Deribit option-chain snapshots (``../shared/data``) into arrays for surface fits.

Both files hold coin prices (BTC 2020-05-14 05:41Z, ETH 2024-01-08 11:19Z); IVs are recomputed here from
the coin prices with the expiry's forward (Deribit's ``underlying_price``), one time to expiry per expiry
measured from the median snapshot time, so that quotes of one expiry share one t.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from app.domain import MS_PER_YEAR
from app.pricing import implied_vol_coin

DATA_DIRS = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data", Path("/work/shared/data"))
CHAINS = {
    "BTC 2020-05-14": "deribit_btc_option_chain_20200514T0541Z.csv",
    "ETH 2024-01-08": "deribit_eth_option_chain_20240108T1119Z.csv",
}
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pricing"
FIXTURE_CHAINS = {
    "BTC 2020-05-14": "deribit_btc_chain_quoted.csv",
    "ETH 2024-01-08": "deribit_eth_chain_quoted.csv",
}
"""Two-sided rows of the same snapshots, copied into the repository (see its README for provenance)."""


@dataclass(frozen=True)
class Chain:
    """One snapshot's options as arrays (prices in coin, IVs per 1.00, t in years, forwards in USD)."""

    name: str
    instrument: np.ndarray
    strike: np.ndarray
    t: np.ndarray
    is_call: np.ndarray
    forward: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    mark: np.ndarray
    bid_iv: np.ndarray
    ask_iv: np.ndarray
    mark_iv: np.ndarray

    def otm_two_sided(self) -> np.ndarray:
        """Mask of out-of-the-money options (calls K ≥ F, puts K < F) with a bid and an ask."""
        otm = np.where(self.is_call, self.strike >= self.forward, self.strike < self.forward)
        return otm & np.isfinite(self.bid_iv) & np.isfinite(self.ask_iv) & (self.bid > 0) & (self.ask > self.bid)


def find(filename: str) -> Path | None:
    """Path of a shared data file, or None when the data directory is absent."""
    for d in DATA_DIRS:
        p = d / filename
        if p.is_file():
            return p
    return None


def _num(row: dict[str, str], key: str) -> float:
    v = row.get(key, "")
    try:
        return float(v) if v not in ("", None) else float("nan")
    except ValueError:
        return float("nan")


def load(path: Path, name: str = "") -> Chain:
    """Parse a BTC- or ETH-format chain CSV."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    coin = "btc" if "mark_price_btc" in rows[0] else "eth"
    bid_key = "best_bid_price_btc" if coin == "btc" else "bid_price_eth"
    ask_key = "best_ask_price_btc" if coin == "btc" else "ask_price_eth"
    snap = float(np.median([float(r["snapshot_ts_ms"]) for r in rows]))
    exp_ms = np.array([_num(r, "expiry_ts_ms") if r.get("expiry_ts_ms")
                       else datetime.fromisoformat(r["expiry"].replace("Z", "+00:00")).timestamp() * 1000
                       for r in rows])
    t = (exp_ms - snap) / MS_PER_YEAR
    und = np.array([_num(r, "underlying_price") for r in rows])
    fwd = np.empty_like(und)
    for e in np.unique(exp_ms):
        sel = exp_ms == e
        fwd[sel] = np.nanmedian(und[sel])
    strike = np.array([_num(r, "strike") for r in rows])
    is_call = np.array([r["option_type"] == "call" for r in rows])
    bid = np.array([_num(r, bid_key) for r in rows])
    ask = np.array([_num(r, ask_key) for r in rows])
    mark = np.array([_num(r, f"mark_price_{coin}") for r in rows])
    bid = np.where(bid > 0, bid, np.nan)
    ask = np.where(ask > 0, ask, np.nan)
    return Chain(name or path.name, np.array([r["instrument_name"] for r in rows]), strike, t, is_call, fwd,
                 bid, ask, mark,
                 implied_vol_coin(bid, fwd, strike, t, is_call), implied_vol_coin(ask, fwd, strike, t, is_call),
                 implied_vol_coin(mark, fwd, strike, t, is_call))
