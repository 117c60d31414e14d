"""The simulated market model, its smile and its index sources."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.sim.index_sources import IndexSources, SourceParams
from connectors.sim.market_model import SECONDS_PER_YEAR, MarketModel, UnderlyingParams
from connectors.sim.smile import dvol, implied_vols, raw_svi, ssvi_rho, ssvi_total_variance

PARAMS = {"BTC": UnderlyingParams.btc(), "ETH": UnderlyingParams.eth()}


def test_same_seed_same_path_other_seed_other_path() -> None:
    a, b, c = MarketModel(PARAMS, seed=3), MarketModel(PARAMS, seed=3), MarketModel(PARAMS, seed=4)
    ra, rb, rc = (m.step_many(1.0 / SECONDS_PER_YEAR, 500) for m in (a, b, c))
    assert np.array_equal(ra, rb) and not np.array_equal(ra, rc)
    assert a.spot == b.spot and a.vol == b.vol


def test_spot_is_a_martingale_and_vol_mean_reverts() -> None:
    params = {f"p{i}": UnderlyingParams.btc(vol=1.5) for i in range(400)}
    model = MarketModel(params, seed=1)
    model.step_many(1.0 / 365, 60)  # 60 days of daily steps
    spots = model.s / 60_000.0
    assert abs(spots.mean() - 1.0) < 4 * spots.std() / np.sqrt(len(spots))
    assert np.median(model.sigma) < 1.0  # pulled down from 150% towards θ = 42%


def test_down_jump_raises_vol_and_steepens_skew() -> None:
    p = UnderlyingParams.btc(jump_rate=1e6, jump_mean=-0.1, jump_std=0.01, xi=0.0)
    model = MarketModel({"BTC": p}, seed=5)
    rho_before = ssvi_rho(model, "BTC")
    vol_before = model.vol["BTC"]
    model.step(1.0 / 365)
    assert model.last_jump[0] < -0.05
    assert model.vol["BTC"] > vol_before
    assert ssvi_rho(model, "BTC") < rho_before


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        UnderlyingParams.btc(theta=-0.1)
    with pytest.raises(ValueError):
        UnderlyingParams.btc(rho=1.0)
    with pytest.raises(ValueError):
        MarketModel({}, seed=1)
    with pytest.raises(ValueError):
        MarketModel(PARAMS).step(0.0)


def test_smile_level_tracks_vol_state() -> None:
    model = MarketModel(PARAMS, seed=2)
    t = np.full(3, 30 / 365)
    fwd = model.forward("BTC", t)
    calm = implied_vols(model, "BTC", fwd * np.array([0.8, 1.0, 1.2]), fwd, t)
    level = dvol(model, "BTC")
    assert calm[1] * 100 == pytest.approx(level)
    model.sigma[model.index("BTC")] *= 2.0
    assert dvol(model, "BTC") > level * 1.3
    assert calm[0] > calm[1] and calm[2] > calm[1] * 0.95  # a smile, skewed to puts


def test_ssvi_slices_are_butterfly_free_and_match_raw_svi() -> None:
    p = PARAMS["BTC"]
    k = np.linspace(-1.5, 1.5, 601)
    for theta in (0.001, 0.02, 0.3):
        for rho in (-0.8, p.skew, 0.3):
            w = ssvi_total_variance(k, np.float64(theta), rho, p.wing, p.gamma)
            a, b, r, m, s = raw_svi(theta, rho, p.wing, p.gamma)
            raw = a + b * (r * (k - m) + np.sqrt((k - m) ** 2 + s * s))
            assert np.allclose(w, raw)
            # Durrleman's g(k) ≥ 0 (no butterfly arbitrage), by finite differences
            dk = k[1] - k[0]
            w1 = np.gradient(w, dk)
            w2 = np.gradient(w1, dk)
            g = (1 - k * w1 / (2 * w)) ** 2 - w1**2 / 4 * (1 / w + 0.25) + w2 / 2
            assert g[2:-2].min() > -1e-6


def test_index_sources_noise_outages_and_bad_prints() -> None:
    src = IndexSources(("BTC",), params=SourceParams(outage_rate=5.0, bad_print_prob=0.01), seed=9)
    spots = np.array([60_000.0])
    stale = bad = 0
    now = 1_704_067_200_000
    for _ in range(3000):
        now += 1000
        obs = src.observe(now, spots, 1.0)
        assert len(obs) == len(src.venues)
        stale += sum(o.stale for o in obs)
        bad += sum(abs(o.price / 60_000.0 - 1) > 0.01 for o in obs)
        assert all(o.index == "btc_usd" and o.source for o in obs)
    assert src.outages > 0 and stale > 0 and bad > 0
    calm = IndexSources(("BTC",), seed=9)
    live = [o.price for o in calm.observe(now, spots, 1.0) if not o.stale]
    assert len(live) >= 4 and abs(np.median(live) / 60_000.0 - 1) < 0.002


def test_index_sources_are_deterministic() -> None:
    a, b = IndexSources(("BTC", "ETH"), seed=4), IndexSources(("BTC", "ETH"), seed=4)
    spots = np.array([60_000.0, 3_000.0])
    for i in range(50):
        assert a.observe(1000 * i, spots, 1.0) == b.observe(1000 * i, spots, 1.0)
