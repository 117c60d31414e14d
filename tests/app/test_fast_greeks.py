"""app.fast_greeks: the compiled kernel at any size gives what app.pricing.black.inverse_greeks gives."""

from __future__ import annotations

import numpy as np

from app import fast_greeks
from app.pricing.black import inverse_greeks


def _inputs(n: int, seed: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    f = rng.uniform(20_000, 90_000, n)
    k = f * np.exp(rng.normal(0, 0.4, n))
    t = rng.uniform(1e-5, 1.5, n)
    v = rng.uniform(0.05, 2.0, n)
    c = rng.random(n) < 0.5
    return f, k, t, v, c


def test_small_arrays_agree_with_the_numpy_path() -> None:
    for n in (1, 7, 300):
        f, k, t, v, c = _inputs(n)
        got, want = fast_greeks.inverse_greeks_1d(f, k, t, v, c), inverse_greeks(f, k, t, v, c)
        for name in ("price", "delta", "gamma", "vega", "theta", "rho", "delta_bs", "gamma_bs"):
            np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-11, atol=1e-16, err_msg=name)


def test_bad_inputs_give_nan_and_expired_options_their_intrinsic_value() -> None:
    f = np.array([60_000.0, np.nan, 60_000.0, 60_000.0])
    k = np.array([50_000.0, 50_000.0, -1.0, 70_000.0])
    t = np.array([0.0, 0.1, 0.1, 0.1])
    v = np.array([0.5, 0.5, 0.5, np.nan])
    c = np.array([True, True, True, False])
    g = fast_greeks.inverse_greeks_1d(f, k, t, v, c)
    assert g.price[0] == (60_000 - 50_000) / 60_000
    assert np.isnan(g.price[1:]).all() and np.isnan(g.delta[1:]).all()


def test_without_the_kernel_it_is_the_numpy_path(monkeypatch) -> None:
    monkeypatch.setattr(fast_greeks, "_kernel", lambda: None)
    f, k, t, v, c = _inputs(50)
    got, want = fast_greeks.inverse_greeks_1d(f, k, t, v, c), inverse_greeks(f, k, t, v, c)
    np.testing.assert_array_equal(got.price, want.price)
    assert not fast_greeks.compiled()


def test_the_book_does_not_load_numba_by_itself() -> None:
    import subprocess
    import sys

    code = "; ".join([
        "import sys, numpy as np",
        "from app.fast_greeks import inverse_greeks_1d",
        "a = np.array([60000.0])",
        "g = inverse_greeks_1d(a, a, np.array([0.1]), np.array([0.5]), np.array([True]), load=False)",
        "assert 'numba' not in sys.modules and g.price[0] > 0",
    ])
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_read_only_inputs_are_priced_like_writable_ones() -> None:
    f, k, t, v, c = _inputs(20)
    frozen = [x.copy() for x in (f, k, t, v, c)]
    for x in frozen:
        x.flags.writeable = False
    got, want = fast_greeks.inverse_greeks_1d(*frozen), fast_greeks.inverse_greeks_1d(f, k, t, v, c)
    np.testing.assert_array_equal(got.price, want.price)
