"""app.pricing.inverse_flat: the compiled kernel at any size (once loaded) gives what black.inverse_greeks gives."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from app.pricing import black, inverse_flat
from app.pricing.black import inverse_greeks

FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho", "delta_bs", "gamma_bs")


def _inputs(n: int, seed: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    f = rng.uniform(20_000, 90_000, n)
    k = f * np.exp(rng.normal(0, 0.4, n))
    t = rng.uniform(1e-5, 1.5, n)
    v = rng.uniform(0.05, 2.0, n)
    c = rng.random(n) < 0.5
    return f, k, t, v, c


@pytest.fixture
def warmed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels loaded (compiled into the cache if this checkout has none yet), as after a Desk's start."""
    monkeypatch.delenv("DESK_NO_NUMBA", raising=False)
    black.warm_compiled(background=False, compile=True)


def test_small_arrays_wait_on_numpy_until_the_kernels_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESK_NO_NUMBA", raising=False)
    assert not inverse_flat.compiled(1_100)  # conftest: nothing loaded; a listing-sized array must not compile
    black.warm_compiled(background=False, compile=True)
    assert inverse_flat.compiled(1) and inverse_flat.compiled(1_100)


def test_small_arrays_agree_with_the_numpy_path(warmed: None) -> None:
    for n in (1, 7, 300, 1_100):
        f, k, t, v, c = _inputs(n)
        assert inverse_flat.compiled(n)
        got, want = inverse_flat.inverse_greeks_1d(f, k, t, v, c), inverse_greeks(f, k, t, v, c)
        for name in FIELDS:
            np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-11, atol=1e-16, err_msg=name)


def test_bad_inputs_give_nan_and_expired_options_their_intrinsic_value(warmed: None) -> None:
    f = np.array([60_000.0, np.nan, 60_000.0, 60_000.0])
    k = np.array([50_000.0, 50_000.0, -1.0, 70_000.0])
    t = np.array([0.0, 0.1, 0.1, 0.1])
    v = np.array([0.5, 0.5, 0.5, np.nan])
    c = np.array([True, True, True, False])
    g = inverse_flat.inverse_greeks_1d(f, k, t, v, c)
    assert g.price[0] == (60_000 - 50_000) / 60_000
    assert np.isnan(g.price[1:]).all() and np.isnan(g.delta[1:]).all()


def test_with_desk_no_numba_it_is_the_numpy_path(warmed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_NO_NUMBA", "1")
    f, k, t, v, c = _inputs(50)
    got, want = inverse_flat.inverse_greeks_1d(f, k, t, v, c), inverse_greeks(f, k, t, v, c)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert not inverse_flat.compiled(50) and not inverse_flat.compiled(10**6)


def test_read_only_inputs_are_priced_like_writable_ones(warmed: None) -> None:
    f, k, t, v, c = _inputs(20)
    frozen = [x.copy() for x in (f, k, t, v, c)]
    for x in frozen:
        x.flags.writeable = False
    plain = black._compiled()[0]
    before = len(plain.overloads)
    got, want = inverse_flat.inverse_greeks_1d(*frozen), inverse_flat.inverse_greeks_1d(f, k, t, v, c)
    np.testing.assert_array_equal(got.price, want.price)
    assert len(plain.overloads) == before  # read-only arrays met no new specialisation


def test_a_fresh_clone_desk_compiles_nothing(run_on_empty_cache: Callable[[str, int], list[str]]) -> None:
    """Empty numba cache: building the simulated Desk and stepping it loads numba but compiles no kernel."""
    code = ("from app.desk import Desk\n"
            "from app.pricing import black\n"
            "desk = Desk(seed=7)\n"
            "desk.advance(3_000)\n"
            "print(sum(len(k.overloads) for k in black._compiled()), black.compiled_ready())\n")
    assert run_on_empty_cache(code, 300) == ["0", "False"]
