"""The simulated underlyings: jump-diffusion with stochastic volatility, seeded and vectorised.

State per underlying: spot ``S`` (USD), instantaneous volatility ``σ`` (per 1.0, annualised) and a skew-stress
level ``z`` (dimensionless, ≥ 0). Over a step ``dt`` (years):

    ln σ  += κ (ln θ − ln σ) dt + ξ √dt Z₂
    ln S  += (−½σ² − λ k̄) dt + σ √dt (ρ Z₂ + √(1−ρ²) Z₃) + Σ jumps,   jump J ~ N(μ_J, σ_J), Poisson(λ dt)
    a down-jump J < 0 adds ``jump_vol · |J| / σ_J`` to ln σ and ``|J| / σ_J`` to z;  z decays at ``skew_decay`` per year.

The option smile (``smile.py``) reads σ for its level and z for its skew. Every random draw comes from one
``numpy.random.Generator`` in a fixed order, so a seed fixes the whole path.

    model = MarketModel({"BTC": UnderlyingParams.btc(), "ETH": UnderlyingParams.eth()}, seed=7)
    model.step(1.0 / (365 * 24 * 3600))     # one simulated second
    model.spot["BTC"], model.vol["BTC"]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

SECONDS_PER_YEAR = 365.0 * 24 * 3600


@dataclass(frozen=True)
class UnderlyingParams:
    """Model parameters of one underlying; rates and intensities per year, vols per 1.0 (0.55 = 55%).

    Defaults are calibrated (docs/calibration.md) so that simulated daily returns and the 30-day ATM vol
    look like BTC's since DVOL's launch (2021-03-24 onwards): realised vol ≈ 56%, excess kurtosis ≈ 3.9, mean DVOL ≈ 62.
    """

    spot: float = 60_000.0  # initial spot, USD
    vol: float = 0.50  # initial instantaneous vol
    theta: float = 0.42  # long-run instantaneous vol (geometric mean)
    kappa: float = 7.0  # mean reversion of ln σ, per year
    xi: float = 1.5  # vol of ln σ, per √year
    rho: float = -0.1  # correlation of spot and vol shocks
    jump_rate: float = 8.0  # jumps per year
    jump_mean: float = -0.012  # mean log jump
    jump_std: float = 0.06  # std of log jump
    jump_vol: float = 0.10  # ln σ increase per σ_J of down-jump
    skew_decay: float = 20.0  # decay rate of the skew stress, per year
    carry: float = 0.06  # futures basis, annualised (F = S·e^{carry·T})
    vrp: float = 1.15  # implied / expected realised vol (variance risk premium)
    skew: float = -0.15  # SSVI ρ in calm markets
    skew_jump: float = 0.12  # SSVI ρ change per unit of skew stress
    wing: float = 0.9  # SSVI η (wing steepness)
    gamma: float = 0.45  # SSVI γ (how the smile flattens with maturity)

    def __post_init__(self) -> None:
        for name in ("spot", "vol", "theta", "kappa", "jump_std", "vrp", "wing"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"model parameter {name} must be positive and finite, got {value}")
        for name in ("xi", "jump_rate", "jump_vol", "skew_decay", "skew_jump"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"model parameter {name} must be non-negative and finite, got {value}")
        if not -1 < self.rho < 1 or not -1 < self.skew < 1:
            raise ValueError("rho and skew must lie strictly between -1 and 1")
        if not 0 < self.gamma <= 1:
            raise ValueError("gamma must lie in (0, 1]")

    @staticmethod
    def btc(**changes: Any) -> UnderlyingParams:
        """BTC defaults (calibrated), with ``changes`` applied."""
        return replace(UnderlyingParams(), **changes)

    @staticmethod
    def eth(**changes: Any) -> UnderlyingParams:
        """ETH defaults: higher vol level and jumps than BTC (ETH DVOL ≈ 76 against BTC's 62)."""
        base = UnderlyingParams(spot=3_000.0, vol=0.65, theta=0.55, xi=1.6, jump_rate=7.0, jump_std=0.085,
                                jump_mean=-0.015, vrp=1.06)
        return replace(base, **changes)

    @staticmethod
    def default(base: str, **changes: Any) -> UnderlyingParams:
        """Defaults for ``base`` (BTC, ETH; others get BTC's dynamics), with ``changes`` applied."""
        return UnderlyingParams.eth(**changes) if base == "ETH" else UnderlyingParams.btc(**changes)

    def as_dict(self) -> dict[str, float]:
        """Parameters as a plain dict (for logs and the store)."""
        return asdict(self)


class MarketModel:
    """Joint state of all simulated underlyings, advanced by :meth:`step` (vectorised over underlyings)."""

    def __init__(self, params: dict[str, UnderlyingParams], seed: int = 7) -> None:
        if not params:
            raise ValueError("the market model needs at least one underlying")
        self.names: tuple[str, ...] = tuple(params)
        self.params = dict(params)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        p = [params[n] for n in self.names]
        col = lambda attr: np.array([getattr(x, attr) for x in p], dtype=float)  # noqa: E731
        self._ln_theta = np.log(col("theta"))
        self._kappa = col("kappa")
        self._xi = col("xi")
        self._rho = col("rho")
        self._rho_c = np.sqrt(1.0 - self._rho**2)
        self._lam = col("jump_rate")
        self._jm = col("jump_mean")
        self._js = col("jump_std")
        self._jv = col("jump_vol")
        self._zdecay = col("skew_decay")
        self._kbar = np.exp(self._jm + 0.5 * self._js**2) - 1.0
        self._long_var = col("theta") ** 2 * np.exp(self._xi**2 / self._kappa)
        self._jump_var = self._lam * (self._jm**2 + self._js**2)
        self.vrp = col("vrp")  # implied over expected vol, per underlying
        self.skew = col("skew")  # calm SSVI skew ρ and its steepening per unit of stress (connectors.sim.smile)
        self.skew_jump = col("skew_jump")
        self.s = col("spot")
        self.sigma = col("vol")
        self.z = np.zeros(len(p))
        self.last_jump = np.zeros(len(p))  # log size of the last step's jump (0 if none)
        self.steps = 0

    # -- dynamics ------------------------------------------------------------------------------------
    def step(self, dt: float) -> np.ndarray:
        """Advance every underlying by ``dt`` years; return the log returns of the step (per underlying)."""
        if not dt > 0:
            raise ValueError(f"dt must be positive, got {dt}")
        n = len(self.names)
        draws = self.rng.standard_normal((3, n))
        jump_u = self.rng.random(n)
        jump_z = self.rng.standard_normal(n)
        sq = math.sqrt(dt)
        ln_sigma = np.log(self.sigma)
        sig = self.sigma
        # Jumps: at most one per step (dt is seconds to an hour, λ·dt ≪ 1 for the defaults).
        jumped = jump_u < -np.expm1(-self._lam * dt)
        jump = np.where(jumped, self._jm + self._js * jump_z, 0.0)
        down = np.maximum(-jump, 0.0) / self._js
        ret = (-0.5 * sig * sig - self._lam * self._kbar) * dt + sig * sq * (
            self._rho * draws[0] + self._rho_c * draws[1]
        ) + jump
        ln_sigma = ln_sigma + self._kappa * (self._ln_theta - ln_sigma) * dt + self._xi * sq * draws[0] + self._jv * down
        self.sigma = np.clip(np.exp(ln_sigma), 0.05, 5.0)
        self.s = self.s * np.exp(ret)
        self.z = self.z * np.exp(-self._zdecay * dt) + down
        self.last_jump = jump
        self.steps += 1
        return ret

    def step_many(self, dt: float, count: int) -> np.ndarray:
        """Advance ``count`` steps of ``dt`` years; return log returns, shape (count, underlyings)."""
        out = np.empty((count, len(self.names)))
        for i in range(count):
            out[i] = self.step(dt)
        return out

    # -- views ---------------------------------------------------------------------------------------
    def index(self, name: str) -> int:
        """Position of underlying ``name`` in the state arrays."""
        return self.names.index(name)

    @property
    def spot(self) -> dict[str, float]:
        """Spot per underlying, USD."""
        return {n: float(v) for n, v in zip(self.names, self.s)}

    @property
    def vol(self) -> dict[str, float]:
        """Instantaneous vol per underlying (per 1.0)."""
        return {n: float(v) for n, v in zip(self.names, self.sigma)}

    def expected_vol(self, name: str, years: np.ndarray | float) -> np.ndarray:
        """Expected average vol (per 1.0) over the next ``years``, diffusion plus jumps, before any risk premium."""
        t = np.asarray(years, dtype=float)
        return self.expected_vol_of(np.full(t.shape, self.index(name)), t)

    def expected_vol_all(self, years: float) -> np.ndarray:
        """Expected average vol (per 1.0) over the next ``years`` for every underlying, before the risk premium."""
        n = len(self.names)
        return self.expected_vol_of(np.arange(n), np.full(n, float(years)))

    def expected_vol_of(self, which: np.ndarray, years: np.ndarray) -> np.ndarray:
        """Expected average vol (per 1.0) of many maturities at once, diffusion plus jumps, before any risk premium:
        element j is underlying ``which[j]`` over ``years[j]``."""
        # E[σ²] of the log-OU at stationarity is θ²·exp(ξ²/κ); the current state relaxes to it at rate κ.
        t = np.maximum(years, 1e-9)
        kappa = self._kappa[which]
        long_var = self._long_var[which]
        weight = -np.expm1(-kappa * t) / (kappa * t)
        return np.sqrt(long_var + (self.sigma[which] ** 2 - long_var) * weight + self._jump_var[which])

    def implied_atm_all(self, years: float) -> np.ndarray:
        """Model ATM implied vol (per 1.0) at maturity ``years`` for every underlying (risk premium included)."""
        return self.vrp * self.expected_vol_all(years)

    def forward(self, name: str, years: np.ndarray | float) -> np.ndarray:
        """Futures forward price (USD) for maturities ``years``."""
        i = self.index(name)
        return float(self.s[i]) * np.exp(self.params[name].carry * np.asarray(years, dtype=float))

    def state(self) -> dict[str, dict[str, float]]:
        """Current state per underlying: spot, vol, skew stress."""
        return {n: {"spot": float(self.s[i]), "vol": float(self.sigma[i]), "stress": float(self.z[i])}
                for i, n in enumerate(self.names)}
