"""The dashboard's figure builders on seeded data: traces, axes and the data they carry."""

import numpy as np
import plotly.graph_objects as go

from app.analytics import SmileFit
from ui.dash.figures import hedging, margin, overview, risk, volatility


def _smile(seed: int, label: str) -> SmileFit:
    rng = np.random.default_rng(seed)
    k = np.linspace(40_000, 90_000, 21)
    iv = 0.55 + 0.3 * ((k / 60_000) - 1) ** 2
    spread = rng.uniform(0.005, 0.02, k.size)
    return SmileFit(label, 0.1, 60_000.0, k, iv - spread, iv + spread, iv, k, iv + rng.normal(0, 0.002, k.size), rmse=0.002, inside_share=0.9)


def test_smiles_and_residuals_carry_market_and_fit() -> None:
    data = [_smile(1, "27DEC24"), _smile(2, "31JAN25")]
    fig = volatility.smiles(data)
    assert isinstance(fig, go.Figure) and len(fig.data) == 4
    assert fig.data[0].error_y.array is not None and np.allclose(fig.data[1].y, data[0].fit_iv * 100)
    res = volatility.fit_residuals(data)
    assert len(res.data) == 2 and np.all(np.abs(np.asarray(res.data[0].y)) < 2.0)


def test_surface_term_and_skew() -> None:
    strikes = np.linspace(30_000, 100_000, 15)
    t = np.array([0.02, 0.1, 0.5])
    iv = 0.5 + 0.0 * strikes[None, :] + t[:, None]
    fig = volatility.surface_3d(strikes, ["a", "b", "c"], t, iv)
    assert fig.data[0].type == "surface" and np.asarray(fig.data[0].z).shape == (3, 15)
    assert np.allclose(fig.data[0].y, t * 365)
    term = volatility.term_structure(["a", "b", "c"], t, np.array([0.5, 0.55, 0.6]))
    assert np.allclose(term.data[0].y, [50, 55, 60])
    skew = volatility.skew_by_expiry(["a", "b"], np.array([-0.05, 0.02]), np.array([0.01, 0.015]))
    assert skew.data[0].marker.color[0] != skew.data[0].marker.color[1]


def test_empty_inputs_explain_themselves() -> None:
    for fig in (volatility.smiles([]), volatility.surface_3d(np.zeros(0), [], np.zeros(0), np.zeros((0, 0))),
                risk.scenario_heatmap(np.zeros(0), np.zeros(0), np.zeros((0, 0))), hedging.delta_with_bands([], [], [], [])):
        assert len(fig.data) == 0 and fig.layout.annotations


def test_scenario_heatmap_is_symmetric_in_colour() -> None:
    pnl = np.array([[-2.0, 0.0, 1.0], [-1.0, 0.5, 3.0]])
    fig = risk.scenario_heatmap(np.array([-0.1, 0, 0.1]), np.array([-0.05, 0.05]), pnl, currency="BTC")
    hm = fig.data[0]
    assert hm.zmin == -3.0 and hm.zmax == 3.0 and list(hm.x) == ["-10%", "+0%", "+10%"]


def test_margin_and_hedging_figures() -> None:
    ts = [1_700_000_000_000 + i * 1000 for i in range(5)]
    h = margin.history(ts, {"equity": [1, 2, 3, 4, 5], "maintenance_margin": [0.1] * 5}, title="BTC", yaxis="BTC")
    assert len(h.data) == 2
    m = margin.risk_matrix(["down", "flat", "up"], ["-10%", "0%", "+10%"], np.array([[1, -5, 2], [0, 0, 0], [1, 1, 1.0]]), (0, 1), currency="BTC")
    assert m.layout.shapes[0].x0 == 0.5 and m.layout.annotations[0].text == "worst"
    g = margin.usage_gauge(0.42, 0.6, currency="BTC")
    assert g.data[0].value == 42.0
    d = hedging.delta_with_bands(ts, [0.1, 0.3, -0.2, 0.0, 0.05], [-0.2] * 5, [0.2] * 5, [ts[2]], [0.0])
    assert [t.name for t in d.data] == ["upper band", "lower band", "delta", "hedge"]
    c = hedging.cost_vs_error(["a", "b", "c"], [1.0, 2.0, 3.0], [0.3, 0.2, 0.1], groups=["fixed", "ww", "ww"])
    assert len(c.data) == 2


def test_equity_figure_always_has_two_extendable_traces() -> None:
    fig = overview.equity_pnl([], [], [], currency="USD")
    assert len(fig.data) == 2
