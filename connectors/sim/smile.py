"""The simulated option smile: SSVI per expiry, level from the vol state, skew from the stress state.

Per expiry the total implied variance in log-moneyness ``k = ln(K/F)`` is SSVI (Gatheral–Jacquier 2014):

    w(k) = θ_T/2 · (1 + ρ φ k + √((φ k + ρ)² + 1 − ρ²)),   φ = η / (θ_T^γ (1 + θ_T)^(1−γ))

with ATM total variance ``θ_T = (vrp · E[σ̄ over T])² · T`` from the market model, and ``ρ = skew − skew_jump·z``
steepening after down-jumps. SSVI is free of butterfly arbitrage for η(1+|ρ|) ≤ 2 and γ ≤ 1/2-ish with θ_T
increasing in T (no calendar arbitrage), which the defaults satisfy. Each slice is also a raw SVI
(a, b, ρ, m, σ); :func:`raw_svi` converts it for the pricing package's SVI surface.
"""

from __future__ import annotations

import math

import numpy as np

from connectors.sim.market_model import MarketModel

MIN_YEARS = 60.0 / (365.0 * 24 * 3600)  # smiles of expiries closer than a minute are frozen at one minute


def ssvi_rhos(model: MarketModel) -> np.ndarray:
    """SSVI skew ρ of every underlying now (model order): the calm skew steepened by the stress of recent down-jumps."""
    return np.clip(model.skew - model.skew_jump * model.z, -0.9, 0.9)


def ssvi_rho(model: MarketModel, name: str) -> float:
    """SSVI skew ρ of ``name`` now (see :func:`ssvi_rhos`)."""
    return float(ssvi_rhos(model)[model.index(name)])


def atm_total_variance_of(model: MarketModel, which: np.ndarray, years: np.ndarray) -> np.ndarray:
    """ATM total implied variance θ_T (per 1.0² × years): element j of underlying ``which[j]`` over ``years[j]``."""
    t = np.maximum(np.asarray(years, dtype=float), MIN_YEARS)
    vol = model.vrp[which] * model.expected_vol_of(which, t)
    return vol * vol * t


def atm_total_variance(model: MarketModel, name: str, years: np.ndarray) -> np.ndarray:
    """ATM total implied variance θ_T (per 1.0² × years) of ``name`` for maturities ``years``."""
    t = np.asarray(years, dtype=float)
    return atm_total_variance_of(model, np.full(t.shape, model.index(name)), t)


def ssvi_total_variance(k: np.ndarray, theta: np.ndarray, rho: float, eta: float, gamma: float) -> np.ndarray:
    """SSVI total variance at log-moneyness ``k`` for ATM total variance ``theta`` (broadcast together)."""
    return ssvi_total_variance_phi(k, theta, rho, ssvi_phi(theta, eta, gamma))


def ssvi_phi(theta: np.ndarray, eta: float | np.ndarray, gamma: float | np.ndarray) -> np.ndarray:
    """SSVI's curvature φ(θ) = η / (θ^γ (1 + θ)^(1−γ)) for ATM total variance ``theta`` (one per expiry)."""
    return eta / (np.power(theta, gamma) * np.power(1.0 + theta, 1.0 - gamma))


def ssvi_total_variance_phi(k: np.ndarray, theta: np.ndarray, rho: float | np.ndarray, phi: np.ndarray) -> np.ndarray:
    """SSVI total variance at log-moneyness ``k`` given θ and φ (computed once per expiry, then broadcast)."""
    pk = phi * k
    return 0.5 * theta * (1.0 + rho * pk + np.sqrt((pk + rho) ** 2 + 1.0 - rho * rho))


def implied_vols(model: MarketModel, name: str, strikes: np.ndarray, forwards: np.ndarray,
                 years: np.ndarray) -> np.ndarray:
    """Model implied vols (per 1.0) of options with ``strikes`` (USD), ``forwards`` (USD) and ``years`` to expiry."""
    p = model.params[name]
    t = np.maximum(np.asarray(years, dtype=float), MIN_YEARS)
    theta = atm_total_variance(model, name, t)
    k = np.log(np.asarray(strikes, dtype=float) / np.asarray(forwards, dtype=float))
    w = ssvi_total_variance(k, theta, ssvi_rho(model, name), p.wing, p.gamma)
    return np.sqrt(w / t)


def raw_svi(theta: float, rho: float, eta: float, gamma: float) -> tuple[float, float, float, float, float]:
    """The raw SVI (a, b, ρ, m, σ) of one SSVI slice with ATM total variance ``theta``."""
    phi = eta / (theta**gamma * (1.0 + theta) ** (1.0 - gamma))
    root = math.sqrt(1.0 - rho * rho)
    return 0.5 * theta * (1.0 - rho * rho), 0.5 * theta * phi, rho, -rho / phi, root / phi


def dvol(model: MarketModel, name: str) -> float:
    """The simulated DVOL: 30-day ATM implied vol in vol points (like Deribit's DVOL, e.g. 62.0)."""
    t = np.array([30.0 / 365.0])
    return float(np.sqrt(atm_total_variance(model, name, t) / t)[0] * 100.0)
