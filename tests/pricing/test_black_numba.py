"""The compiled (numba) Black-76 path: same answers as the numpy path and mpmath, dispatch by size and env."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")

from app.pricing import black, black76, black76_price, bsm, implied, implied_vol  # noqa: E402
from benchmarks._pricing_cases import CASES, mp_black76, mp_bsm  # noqa: E402
from tests.pricing import test_black  # noqa: E402

FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho")


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every size, scalars included, through the compiled kernel."""
    monkeypatch.delenv("DESK_NO_NUMBA", raising=False)
    monkeypatch.setattr(black, "NUMBA_MIN_SIZE", 1)


def _numpy_path(monkeypatch: pytest.MonkeyPatch, fn, *args):  # type: ignore[no-untyped-def]
    with monkeypatch.context() as m:
        m.setenv("DESK_NO_NUMBA", "1")
        return fn(*args)


def _tail_book(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Standardised moneyness z in ±12, a tenth of the book at one hour, a third at zero rate."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(1000, 90000, n)
    v = rng.uniform(0.05, 2.5, n)
    t = np.exp(rng.uniform(np.log(1 / 8760), np.log(2), n))
    t[: n // 10] = 1 / 8760
    z = rng.uniform(-12, 12, n)
    k = f * np.exp(z * v * np.sqrt(t))
    r = rng.uniform(0, 0.08, n)
    r[::3] = 0.0
    c = rng.random(n) < 0.5
    return f, k, t, v, r, c, z


def test_dispatch_by_size_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESK_NO_NUMBA", raising=False)
    assert black._kernel_for(black.NUMBA_MIN_SIZE - 1) is None
    assert black._kernel_for(black.NUMBA_MIN_SIZE) is not None
    monkeypatch.setenv("DESK_NO_NUMBA", "1")
    assert black._kernel_for(10**6) is None


def test_small_chain_does_not_load_numba() -> None:
    """The TUI's start-up path (a 1,000-option chain, greeks and price) never imports numba."""
    code = ("import sys, numpy as np\n"
            "from app.pricing import black76, black76_price\n"
            "f = np.full(1000, 60000.0); k = np.linspace(30000, 90000, 1000)\n"
            "black76(f, k, 0.1, 0.6, k > 60000, 0.01); black76_price(f, k, 0.1, 0.6, True)\n"
            "print('numba' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("i", range(len(CASES)))
def test_case_table_against_mpmath_and_numpy(i: int, compiled: None, monkeypatch: pytest.MonkeyPatch) -> None:
    f, k, t, v, r, q, c, is_bsm = CASES[i]
    ref = mp_bsm(f, k, t, v, r, q, c) if is_bsm else mp_black76(f, k, t, v, r, c)
    fn, args = (bsm, (f, k, t, v, c, r, q)) if is_bsm else (black76, (f, k, t, v, c, r))
    got = fn(*args)
    ours = _numpy_path(monkeypatch, fn, *args)
    fwd = f * np.exp((r - q) * t) if is_bsm else f
    near = abs(np.log(fwd / k)) <= 3 * v * np.sqrt(t)  # see test_random_book_agrees_with_numpy_path
    for name in FIELDS:
        g, n = float(getattr(got, name)), float(getattr(ours, name))
        assert abs(g - ref[name]) <= 1e-13 * abs(ref[name]), (name, g, ref[name])
        tol = (2e-14 if name in ("price", "rho") else 1e-14) if near else 1e-13
        assert abs(g - n) <= tol * abs(n), (name, g, n)


def test_random_book_agrees_with_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Within 3 standard deviations to ≤ 1e-14 (price and rho 2e-14); in the tails ≤ 1e-13.

    The two paths call different erfc/exp/log1p (libm vs scipy and numpy's SIMD ones, which differ by an ulp
    on 5-70% of arguments); the plain form's bounded cancellation doubles that for prices, and in the tails a
    one-ulp change of ln(F/K) moves e^{−h²/2} by h² ulps, so there agreement is only as good as accuracy.
    """
    monkeypatch.delenv("DESK_NO_NUMBA", raising=False)
    f, k, t, v, r, c, z = _tail_book(20_000, 11)
    fast = black76(f, k, t, v, c, r)
    slow = _numpy_path(monkeypatch, black76, f, k, t, v, c, r)
    price_fast = black76_price(f, k, t, v, c, r)
    np.testing.assert_array_equal(price_fast, fast.price)
    near = np.abs(z) <= 3
    for name in FIELDS:
        a, b = getattr(fast, name), getattr(slow, name)
        scale = np.abs(b)
        if name == "theta":  # r·V and the decay term cancel deep in the money: compare against the terms
            scale = np.maximum(scale, np.abs(r * slow.price))
        rel = np.abs(a - b) / np.where(scale > 0, scale, 1.0)
        tol = 2e-14 if name in ("price", "rho") else 1e-14
        assert rel[near].max() <= tol, (name, rel[near].max())
        assert rel.max() <= 1e-13, (name, rel.max())


def test_tails_against_mpmath(compiled: None) -> None:
    """One-hour to two-year expiries, 5 to 12 standard deviations out: every greek ≤ 1e-13 relative."""
    f, k, t, v, _, c, z = _tail_book(40, 5)
    far = np.abs(z) >= 5
    f, k, t, v, c = f[far], k[far], t[far], v[far], c[far]
    g = black76(f, k, t, v, c)
    for i in range(f.size):
        ref = mp_black76(float(f[i]), float(k[i]), float(t[i]), float(v[i]), 0.0, bool(c[i]))
        for name in FIELDS:
            if ref[name] != 0.0:
                got = float(getattr(g, name)[i])
                assert abs(got - ref[name]) <= 1e-13 * abs(ref[name]), (name, z[far][i], t[i], got, ref[name])


@pytest.mark.parametrize("test", [
    test_black.test_put_call_parity,
    test_black.test_greeks_against_finite_differences,
    test_black.test_bsm_greeks_against_finite_differences,
    test_black.test_tails_keep_relative_accuracy_against_mpmath,
    test_black.test_extreme_total_vol_and_strike_keep_price_accuracy,
    test_black.test_inverse_delta_is_derivative_of_coin_price,
    test_black.test_unit_helpers_and_deribit_theta,
    test_black.test_bad_inputs_give_nan_not_exceptions,
    test_black.test_expiry_and_zero_vol_give_intrinsic,
    test_black.test_broadcasting_and_string_flags,
], ids=lambda f: f.__name__)
def test_black_suite_on_compiled_path(test, compiled: None) -> None:  # type: ignore[no-untyped-def]
    test()


def test_scenario_grid_shape_and_bad_elements() -> None:
    """A (positions × scenarios) grid above the threshold, with bad rows, as the margin engine sends it."""
    n, m = 400, 35
    rng = np.random.default_rng(3)
    f = 60000.0 * np.exp(rng.normal(0, 0.2, (n, m)))
    k = rng.uniform(20000, 120000, (n, 1))
    t = rng.uniform(0.0, 1.0, (n, 1))
    v = rng.uniform(0.0, 1.5, (n, m))
    c = rng.random((n, 1)) < 0.5
    k[5] = np.nan
    v[7, 3] = -0.1
    got = black76_price(f, k, t, v, c)
    assert got.shape == (n, m)
    assert np.isnan(got[5]).all() and np.isnan(got[7, 3])
    ok = np.isfinite(got)
    assert ok.sum() == n * m - m - 1
    ref = np.empty_like(got)
    for i in range(n):  # row by row stays below the threshold: the numpy path
        ref[i] = black76_price(f[i], k[i], t[i], v[i], c[i])
    # strikes here reach 40 standard deviations, where a one-ulp change of ln(F/K) moves the price by h² ulps
    h = np.log(f / k) / (v * np.sqrt(t))
    tol = 2e-14 * (1.0 + np.where(np.isfinite(h), h * h, 0.0))
    assert np.all(np.abs(got - ref)[ok] <= (tol * np.abs(ref))[ok])


def test_prepared_chunks_agree_with_self_contained_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy's SIMD log1p/exp (prepared, several chunks and a remainder) against libm's (self-contained kernel)."""
    monkeypatch.delenv("DESK_NO_NUMBA", raising=False)
    f, k, t, v, r, c, z = _tail_book(3000, 17)
    k[11] = np.nan
    v[12] = -1.0
    t[13] = 0.0
    v[14] = 0.0
    kernels = black._compiled()
    assert kernels is not None
    whole = np.empty((6, f.size))
    kernels[0](f, k, t, v, c, r, whole, True)
    monkeypatch.setattr(black, "_CHUNK", 256)
    chunked = black._run_compiled(kernels, f, k, t, v, c, r, (f.size,), greeks=True)
    price_only = black._run_compiled(kernels, f, k, t, v, c, 0.0, (f.size,), greeks=False)[0]
    near = np.abs(z) <= 3
    for name, a, b in zip(FIELDS, chunked, whole):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        ok = ~np.isnan(b)
        scale = np.maximum(np.abs(b), np.abs(r * whole[0])) if name == "theta" else np.abs(b)
        rel = np.abs(a - b)[ok] / np.where(scale[ok] > 0, scale[ok], 1.0)
        assert rel[near[ok]].max() <= 2e-14 and rel.max() <= 1e-13, (name, rel.max())
    assert np.isnan(price_only[[11, 12]]).all() and np.isfinite(np.delete(price_only, [11, 12])).all()
    undiscounted = black._run_compiled(kernels, f, k, t, v, c, 0.0, (f.size,), greeks=True)[0]
    np.testing.assert_array_equal(price_only, undiscounted)


def test_warm_then_small_arrays_take_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESK_NO_NUMBA", raising=False)
    f, k, t, v, r, c, _ = _tail_book(1000, 23)
    assert black._kernel_for(f.size) is None
    black.warm_compiled(background=False, compile=True)
    assert black.compiled_ready() and black._kernel_for(f.size) is not None
    kernels = black._compiled()
    before = [len(kernel.overloads) for kernel in kernels]
    fast = black76(f, k, t, v, c, r)
    slow = _numpy_path(monkeypatch, black76, f, k, t, v, c, r)
    black76_price(f[:3], k[:3], 0.5, 0.6, "put")  # scalars, strings, read-only broadcasts: no new specialisation
    black76(np.broadcast_to(60000.0, (5,)), k[:5], t[:5], v[:5], c[:5], r[:5])
    assert [len(kernel.overloads) for kernel in kernels] == before
    np.testing.assert_allclose(fast.price, slow.price, rtol=1e-13, atol=0)
    np.testing.assert_allclose(fast.delta, slow.delta, rtol=1e-13, atol=1e-300)
    solver = implied._compiled_solver()
    solved = len(solver.overloads)
    iv = implied_vol(fast.price, f, k, t, c, r)  # the chain's IVs: the compiled solver too, nothing compiled
    assert len(solver.overloads) == solved
    iv_numpy = _numpy_path(monkeypatch, implied_vol, fast.price, f, k, t, c, r)
    np.testing.assert_array_equal(np.isnan(iv), np.isnan(iv_numpy))
    np.testing.assert_allclose(iv, iv_numpy, rtol=1e-9, equal_nan=True)


def test_a_large_call_loads_its_path_for_small_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a compiled call on a large array, chains take that path (and only that one) without compiling."""
    monkeypatch.delenv("DESK_NO_NUMBA", raising=False)
    f, k, t, v, r, c, _ = _tail_book(black.NUMBA_MIN_SIZE, 29)
    assert not black.compiled_for(1000)
    big = black76(f, k, t, v, c, r)
    assert black.compiled_for(1000) and not black.compiled_for(1000, "implied")
    kernels = black._compiled()
    before = [len(kernel.overloads) for kernel in kernels]
    small = black76(f[:1000], k[:1000], t[:1000], v[:1000], c[:1000], r[:1000])
    black76_price(60000.0, 65000.0, 0.1, 0.5, "call")
    assert [len(kernel.overloads) for kernel in kernels] == before
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(small, name), getattr(big, name)[:1000])
    prices, args = np.tile(big.price, 3), (np.tile(a, 3) for a in (f, k, t, c, r))
    implied_vol(prices, *args)  # well over NUMBA_MIN_SIZE solvable ones among them
    assert black.compiled_for(1000, "implied")
    solver = implied._compiled_solver()
    solved = len(solver.overloads)
    implied_vol(small.price, f[:1000], k[:1000], t[:1000], c[:1000], r[:1000])
    assert len(solver.overloads) == solved
    monkeypatch.setenv("DESK_NO_NUMBA", "1")
    assert not black.compiled_for(1000) and not black.compiled_for(10**6, "implied")


def test_warm_never_compiles_without_a_cache(run_on_empty_cache: Callable[[str, int], list[str]]) -> None:
    """A fresh clone (empty numba cache): warming loads numba but compiles nothing and leaves chains on numpy."""
    code = ("import numpy as np\n"
            "from app.pricing import black\n"
            "black.warm_compiled(background=False)\n"
            "kernels = black._compiled()\n"
            "print(black.compiled_ready(), sum(len(kernel.overloads) for kernel in kernels),"
            " black._kernel_for(1000) is None)\n")
    assert run_on_empty_cache(code, 120) == ["False", "0", "True"]


@settings(max_examples=150, deadline=None)
@given(z=st.floats(-12.0, 12.0), log_s=st.floats(np.log(1e-4), np.log(30.0)), call=st.booleans(),
       rate=st.sampled_from([0.0, 0.05]), log_f=st.floats(np.log(1e-2), np.log(1e6)))
def test_vector_kernel_selects_the_right_region(z: float, log_s: float, call: bool, rate: float,
                                                log_f: float) -> None:
    """Every region boundary of the branch-free loop (Cody's 0.46875 and 4, Taylor's, the asymptotic 7) lands
    where the numpy path's does: the two agree to the tail accuracy on any single option."""
    s = float(np.exp(log_s))
    f = float(np.exp(log_f))
    k = f * float(np.exp(z * s))
    t = 0.5
    v = s / np.sqrt(t)
    kernels = black._compiled()
    assert kernels is not None
    with np.errstate(all="ignore"):
        fast = black._run_compiled(kernels, f, k, t, v, call, rate, (), greeks=True)
    env = os.environ.get("DESK_NO_NUMBA")
    os.environ["DESK_NO_NUMBA"] = "1"
    try:
        slow = black76(f, k, t, v, call, rate)
    finally:
        if env is None:
            del os.environ["DESK_NO_NUMBA"]
        else:
            os.environ["DESK_NO_NUMBA"] = env
    for name, a in zip(FIELDS, fast):
        b = float(getattr(slow, name))
        scale = max(abs(b), abs(rate * float(slow.price))) if name == "theta" else abs(b)
        assert abs(float(a) - b) <= 1e-13 * scale + 1e-300, (name, float(a), b)
