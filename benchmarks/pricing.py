"""Pricing benchmark: deltadesk against py_vollib_vectorized, QuantLib and vollib, speed and accuracy.

    python -m benchmarks pricing [--json FILE] [--full] [--n N] [--repeats R] [--cpu CORE] [--no-peers] [--cpu-time]

Same inputs for everyone (seed 20240601; pricing.md §4): Black-76, half BTC-like (F ≈ 60k) and half
ETH-like (F ≈ 3k), expiries log-uniform from one hour to two years, vols 5%..250%, rates 0..8%,
standardised moneyness uniform on [−8, 8] (strikes capped at F·e^±2.5), calls and puts mixed. IV inputs
are the mpmath (40-digit) prices of a unique set, rounded to double and tiled to N; "well-posed" means the
double price pins the vol to 1e-9, a failure is NaN or an error > 1e-4 there.

Default N = 1e5 with a 20k unique IV set (about a minute); ``--full`` is pricing.md's size: N = 1e6 and
100k unique. Per-option Python loops (QuantLib, vollib) run on at most 1e4 options and are scaled ("~").
Peers that need their own environment (py_vollib_vectorized with py_vollib 1.0.1 and py_lets_be_rational
1.0.1; vollib 1.0.11) run as subprocesses of ``$DESK_BENCH_PVV_PYTHON`` / ``$DESK_BENCH_VOLLIB_PYTHON``
(default /tmp/bench-pvv, /tmp/bench-vollib venvs), else of this interpreter when it has the package (the
``bench`` extra); when neither is there they are skipped with the reason printed.

Each result row: impl, case, n, seconds (median of the repeats; CPU seconds with ``--cpu-time``), per_second,
max_abs_err, failures. Where the compiled (numba) kernels run, a "deltadesk numpy path" row (DESK_NO_NUMBA=1) follows
in the same run. The run starts with ``app.pricing.black.warm_compiled(compile=True)``, which compiles into numba's
disk cache if needed and loads the kernels, so the 1,000-option chain takes the compiled kernel (the note says
"warmed"); its numpy-path row is what a process that never warmed (a TUI before warming) gets.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from app.pricing import black76, black76_price, implied_vol
from app.pricing.surface import VolSurface
from app.pricing.svi import SVIParams, fit_svi_slice
from app.risk import Book, scenario_grid
from benchmarks import _chains
from benchmarks._pricing_cases import CASES, mp_black76, mp_bsm

SEED = 20240601
HERE = Path(__file__).resolve().parent
PEERS = {
    "py_vollib_vectorized": ("pvv", os.environ.get("DESK_BENCH_PVV_PYTHON", "/tmp/bench-pvv/bin/python")),
    "vollib": ("vollib", os.environ.get("DESK_BENCH_VOLLIB_PYTHON", "/tmp/bench-vollib/bin/python")),
}
TARGETS_MS = {  # pricing.md §8, one core
    ("greeks", 1_000_000): 80.0,
    ("greeks", 1_000): 0.15,
    ("iv", 1_000): 0.5,
    ("iv", 1_000_000): 250.0,
    ("svi_slice_40", 1): 2.0,
    ("surface_btc_checks", 1): 25.0,
    ("reval_10k_x_63", 630_000): 40.0,
}


def make_inputs(n: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Black-76 inputs (F, K, T, v, r, c) per the module docstring."""
    rng = np.random.default_rng(seed)
    f = np.where(rng.random(n) < 0.5, 60000.0, 3000.0) * np.exp(rng.normal(0, 0.1, n))
    t = np.exp(rng.uniform(np.log(1 / 8760), np.log(2), n))
    v = rng.uniform(0.05, 2.5, n)
    r = rng.uniform(0, 0.08, n)
    z = rng.uniform(-8, 8, n)
    k = f * np.exp(np.clip(z * v * np.sqrt(t), -2.5, 2.5))
    c = rng.random(n) < 0.5
    return {"F": f, "K": k, "T": t, "v": v, "r": r, "c": c}


def mp_prices(d: dict[str, np.ndarray]) -> np.ndarray:
    """40-digit prices rounded to double."""
    return np.array([mp_black76(f, k, t, v, r, bool(c))["price"]
                     for f, k, t, v, r, c in zip(d["F"], d["K"], d["T"], d["v"], d["r"], d["c"])])


def tile(d: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Repeat a set to n elements."""
    reps = -(-n // d["F"].size)
    return {k: np.tile(v, reps)[:n] for k, v in d.items()}


def take(d: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The first n elements."""
    return {k: v[:n] for k, v in d.items()}


CLOCK = time.perf_counter  # --cpu-time: time.process_time (this process's CPU seconds; for a shared machine)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(median seconds, last result) of ``repeats`` calls after one warm-up call."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = CLOCK()
        out = fn()
        times.append(CLOCK() - t0)
    return float(np.median(times)), out


def numpy_path(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with the compiled (numba) kernels switched off: the numpy path, for a before/after in one run."""
    def run() -> Any:
        old = os.environ.get("DESK_NO_NUMBA")
        os.environ["DESK_NO_NUMBA"] = "1"
        try:
            return fn()
        finally:
            if old is None:
                del os.environ["DESK_NO_NUMBA"]
            else:
                os.environ["DESK_NO_NUMBA"] = old
    return run


def compiled_note(n: int) -> str:
    """Which path ``deltadesk`` greeks and prices took for n options (see app.pricing.black's dispatch)."""
    from app.pricing import black

    if black._kernel_for(n) is None:
        return "numpy"
    if not black.compiled_allowed(n):
        return "numba kernel (warmed: below NUMBA_MIN_SIZE)"
    return "numba kernel" + (", numpy log1p/exp per chunk" if n > black._CHUNK else "")


def iv_note(n: int) -> str:
    """Which path ``deltadesk`` implied vols took for n options (app.pricing.implied's dispatch)."""
    from app.pricing.black import compiled_allowed, compiled_for
    from app.pricing.implied import _compiled_solver

    if not compiled_for(n) or _compiled_solver() is None:
        return "numpy"
    return "numba solver" + ("" if compiled_allowed(n) else " (warmed: below NUMBA_MIN_SIZE)")


def row(impl: str, case: str, n: int, seconds: float, max_abs_err: float | None = None,
        failures: int | None = None, scaled_from: int | None = None, note: str = "") -> dict[str, Any]:
    """One result record."""
    rec: dict[str, Any] = {"impl": impl, "case": case, "n": n, "seconds": seconds,
                           "per_second": n / seconds if seconds > 0 else None,
                           "max_abs_err": max_abs_err, "failures": failures}
    if scaled_from is not None:
        rec["scaled_from"] = scaled_from
    if note:
        rec["note"] = note
    target = TARGETS_MS.get((case, n))
    if target is not None and impl == "deltadesk":
        rec["target_ms"] = target
    return rec


def run_peer(name: str, task: str, d: dict[str, np.ndarray], repeats: int) -> tuple[float, dict[str, np.ndarray]] | str:
    """Run a peer in its own environment; returns (seconds, outputs) or the reason it was skipped."""
    code, python = PEERS[name]
    if not Path(python).exists():
        module = {"pvv": "py_vollib_vectorized", "vollib": "vollib"}[code]
        if importlib.util.find_spec(module) is None:
            return f"{python} not found and {module} not installed here (see the module docstring)"
        python = sys.executable  # installed in this environment (the bench extra): still its own process
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(inp, **d)
        proc = subprocess.run([python, str(HERE / "_pricing_peers.py"), code, task, str(inp), str(out), str(repeats)],
                              capture_output=True, text=True, timeout=1800, check=False)
        if proc.returncode != 0:
            return "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
        res = dict(np.load(out))
    return float(res.pop("seconds")), res


def ql_greeks(d: dict[str, np.ndarray]) -> np.ndarray:
    """QuantLib BlackCalculator per option (price, delta, gamma, vega, theta-free)."""
    import QuantLib as ql

    out = np.empty((4, d["F"].size))
    for i in range(d["F"].size):
        t = float(d["T"][i])
        calc = ql.BlackCalculator(ql.PlainVanillaPayoff(ql.Option.Call if d["c"][i] else ql.Option.Put,
                                                        float(d["K"][i])),
                                  float(d["F"][i]), float(d["v"][i] * np.sqrt(t)), float(np.exp(-d["r"][i] * t)))
        out[:, i] = (calc.value(), calc.deltaForward(), calc.gammaForward(), calc.vega(t))
    return out


def ql_iv(d: dict[str, np.ndarray]) -> np.ndarray:
    """QuantLib blackFormulaImpliedStdDev per option (default accuracy), as a vol."""
    import QuantLib as ql

    res = np.empty(d["F"].size)
    for i in range(d["F"].size):
        t = float(d["T"][i])
        try:
            sd = ql.blackFormulaImpliedStdDev(ql.Option.Call if d["c"][i] else ql.Option.Put, float(d["K"][i]),
                                              float(d["F"][i]), float(d["p"][i]), float(np.exp(-d["r"][i] * t)))
            res[i] = sd / np.sqrt(t)
        except RuntimeError:
            res[i] = np.nan
    return res


def naive_black76(f: np.ndarray, k: np.ndarray, t: np.ndarray, v: np.ndarray, c: np.ndarray,
                  r: np.ndarray) -> tuple[np.ndarray, ...]:
    """pricing.md's "naive numpy" baseline: F·N(d1) − K·N(d2) with scipy's ndtr (not tail-safe)."""
    from scipy.special import ndtr

    sq = np.sqrt(t)
    s = v * sq
    d1 = np.log(f / k) / s + 0.5 * s
    d2 = d1 - s
    df = np.exp(-r * t)
    sign = np.where(c, 1.0, -1.0)
    n1 = ndtr(sign * d1)
    price = df * sign * (f * n1 - k * ndtr(sign * d2))
    pdf = np.exp(-0.5 * d1 * d1) / np.sqrt(2 * np.pi)
    return (price, df * sign * n1, df * pdf / (f * s), df * f * pdf * sq, r * price - df * f * pdf * v / (2 * sq),
            -t * price)


def bench_greeks(d: dict[str, np.ndarray], n: int, repeats: int, peers: bool) -> list[dict[str, Any]]:
    """Price + 5 greeks; the naive numpy kernel runs alongside as a load-independent yardstick."""
    rows = []
    for m in (1_000, n):
        s = take(d, m)
        greeks = lambda s=s: black76(s["F"], s["K"], s["T"], s["v"], s["c"], s["r"])  # noqa: E731
        sec, _ = timed(greeks, repeats)
        rows.append(row("deltadesk", "greeks", m, sec, note=compiled_note(m)))
        if compiled_note(m) != "numpy":
            sec, _ = timed(numpy_path(greeks), repeats)
            rows.append(row("deltadesk numpy path", "greeks", m, sec, note="DESK_NO_NUMBA=1"))
        sec, _ = timed(lambda s=s: naive_black76(s["F"], s["K"], s["T"], s["v"], s["c"], s["r"]), repeats)
        rows.append(row("numpy naive (ndtr)", "greeks", m, sec, note="pricing.md baseline, not tail-safe"))
    try:
        m = min(n, 10_000)
        s = take(d, m)
        sec, _ = timed(lambda: ql_greeks(s), 1)
        rows.append(row("QuantLib", "greeks", n, sec * n / m, scaled_from=m, note="per-option loop, scaled"))
    except ImportError as exc:
        print(f"QuantLib skipped: {exc}")
    if peers:
        res = run_peer("py_vollib_vectorized", "greeks", take(d, n), max(1, repeats // 2))
        if isinstance(res, str):
            print(f"py_vollib_vectorized skipped: {res}")
        else:
            rows.append(row("py_vollib_vectorized", "greeks", n, res[0], note="greeks by finite differences"))
        m = min(n, 2_000)
        res = run_peer("vollib", "greeks", take(d, m), 1)
        if isinstance(res, str):
            print(f"vollib skipped: {res}")
        else:
            rows.append(row("vollib", "greeks", n, res[0] * n / m, scaled_from=m, note="per-option loop, scaled"))
    return rows


def bench_iv(unique: dict[str, np.ndarray], n: int, repeats: int, peers: bool) -> list[dict[str, Any]]:
    """Implied vols: speed at 1e3 and N (tiled set), accuracy on the unique set."""
    vega = black76(unique["F"], unique["K"], unique["T"], unique["v"], unique["c"], unique["r"]).vega
    well = (unique["p"] > 0) & (np.spacing(unique["p"]) / vega < 1e-9)

    def score(iv: np.ndarray) -> tuple[float, int]:
        """(max error where not failed, failures) over the well-posed options of the set's first iv.size."""
        err = np.abs(iv - unique["v"][: iv.size])[well[: iv.size]]
        ok = err <= 1e-4
        return (float(err[ok].max()) if ok.any() else float("nan")), int(np.sum(~ok))

    rows = []
    full = tile(unique, n)
    for m in (1_000, n):
        s = take(full, m)
        ivs = lambda s=s: implied_vol(s["p"], s["F"], s["K"], s["T"], s["c"], s["r"])  # noqa: E731
        sec, iv = timed(ivs, repeats)
        everything = lambda: implied_vol(unique["p"], unique["F"], unique["K"], unique["T"], unique["c"],  # noqa: E731
                                         unique["r"])
        err, fails = score(everything())
        rows.append(row("deltadesk", "iv", m, sec, err, fails,
                        note=f"{iv_note(m)}; {int(well.sum())} well-posed of {well.size}"))
        if iv_note(m) != "numpy":
            sec, _ = timed(numpy_path(ivs), repeats)
            err, fails = score(numpy_path(everything)())
            rows.append(row("deltadesk numpy path", "iv", m, sec, err, fails, note="DESK_NO_NUMBA=1"))
    try:
        m = min(unique["F"].size, 10_000)
        s = take(unique, m)
        sec, iv = timed(lambda: ql_iv(s), 1)
        err, fails = score(iv)
        rows.append(row("QuantLib", "iv", n, sec * n / m, err, fails, scaled_from=m,
                        note="blackFormulaImpliedStdDev, per-option loop, scaled; errors on the first m"))
    except ImportError as exc:
        print(f"QuantLib skipped: {exc}")
    if peers:
        res = run_peer("py_vollib_vectorized", "iv", full, max(1, repeats // 2))
        if isinstance(res, str):
            print(f"py_vollib_vectorized skipped: {res}")
        else:
            err, fails = score(res[1]["iv"][: unique["F"].size])
            rows.append(row("py_vollib_vectorized", "iv", n, res[0], err, fails))
        m = min(unique["F"].size, 2_000)
        res = run_peer("vollib", "iv", take(unique, m), 1)
        if isinstance(res, str):
            print(f"vollib skipped: {res}")
        else:
            err, fails = score(res[1]["iv"])
            rows.append(row("vollib", "iv", n, res[0] * n / m, err, fails, scaled_from=m,
                            note="per-option loop, scaled; errors on the first m"))
    return rows


def bench_surface(repeats: int) -> list[dict[str, Any]]:
    """One 40-strike SVI slice; the BTC and ETH chains with arbitrage checks (fit quality in the note)."""
    rng = np.random.default_rng(SEED)
    true = SVIParams(0.002, 0.02, -0.3, 0.02, 0.1)
    k = np.linspace(-0.4, 0.4, 40)
    t = 30 / 365
    iv = true.iv(k, t) + rng.normal(0, 0.002, k.size)
    sec, fit = timed(lambda: fit_svi_slice(k, iv, None, t), repeats)
    rmse = float(100 * np.sqrt(np.mean((fit.params.iv(k, t) - true.iv(k, t)) ** 2)))
    rows = [row("deltadesk", "svi_slice_40", 1, sec, note=f"RMSE vs true smile {rmse:.3f} vol pts (0.2 pt noise)")]
    for name, fname in _chains.CHAINS.items():
        path = _chains.find(fname) or _chains.FIXTURES / _chains.FIXTURE_CHAINS[name]
        ch = _chains.load(path, name)
        m = ch.otm_two_sided()

        def fit_and_check(ch: _chains.Chain = ch, m: np.ndarray = m) -> tuple[VolSurface, Any]:
            s = VolSurface.from_quotes(ch.strike[m], ch.t[m], ch.bid_iv[m], ch.ask_iv[m], ch.forward[m])
            return s, s.arbitrage()

        sec, (surf, report) = timed(fit_and_check, repeats)
        model = surf.iv(ch.strike[m], ch.t[m])
        mid = 0.5 * (ch.bid_iv[m] + ch.ask_iv[m])
        inside = (model >= ch.bid_iv[m] - 1e-12) & (model <= ch.ask_iv[m] + 1e-12)
        deribit = (ch.mark_iv[m] >= ch.bid_iv[m]) & (ch.mark_iv[m] <= ch.ask_iv[m])
        slice_rmse = [100 * np.sqrt(np.mean((model[ch.t[m] == te] - mid[ch.t[m] == te]) ** 2))
                      for te in surf.expiries_years]
        worst = float(100 * np.max(np.maximum(ch.bid_iv[m] - model, model - ch.ask_iv[m])))
        case = "surface_btc_checks" if name.startswith("BTC") else "surface_eth_checks"
        note = (f"{name}: {len(surf.params)} slices / {int(m.sum())} quotes; RMSE vs mid {100 * np.sqrt(np.mean((model - mid) ** 2)):.2f}"
                f" vol pts (median slice {np.median(slice_rmse):.2f}); inside bid/ask {100 * inside.mean():.1f}%"
                f" (Deribit marks {100 * deribit.mean():.1f}%); worst outside {max(worst, 0):.2f} pts;"
                f" arbitrage-free: {report.ok}")
        rows.append(row("deltadesk", case, 1, sec, note=note))
    return rows


def bench_scenarios(repeats: int) -> list[dict[str, Any]]:
    """Price-only revaluation 10k options × 63 scenarios; a 200-position book over the 9 × 5 stress grid."""
    d = make_inputs(10_000, SEED + 1)
    spot = np.linspace(-0.3, 0.3, 21)
    dvol = np.array([-0.1, 0.0, 0.1])
    f = (d["F"][None, :] * (1 + np.repeat(spot, 3))[:, None])
    v = np.maximum(d["v"][None, :] + np.tile(dvol, 21)[:, None], 0.01)
    reval = lambda: black76_price(f, d["K"], d["T"], v, d["c"])  # noqa: E731
    sec, _ = timed(reval, repeats)
    rows = [row("deltadesk", "reval_10k_x_63", 630_000, sec, note=compiled_note(f.size))]
    if compiled_note(f.size) != "numpy":
        sec, _ = timed(numpy_path(reval), repeats)
        rows.append(row("deltadesk numpy path", "reval_10k_x_63", 630_000, sec, note="DESK_NO_NUMBA=1"))
    rng = np.random.default_rng(SEED)
    n = 200
    book = Book.options(60000 * np.exp(rng.uniform(-0.5, 0.5, n)), rng.uniform(1 / 365, 1, n), rng.random(n) < 0.5,
                        rng.uniform(-10, 10, n))
    vol = rng.uniform(0.4, 1.0, n)
    sec, _ = timed(lambda: scenario_grid(book, 60000.0, vol), repeats)
    rows.append(row("deltadesk", "stress_grid_200_x_45", 9_000, sec, note="app.risk.scenario_grid, coin and USD"))
    return rows


def accuracy_table() -> dict[str, Any]:
    """Max relative error per greek on the 20 fixed cases: deltadesk and QuantLib against mpmath."""
    from app.pricing import bsm

    names = ("price", "delta", "gamma", "vega", "theta", "rho")
    table: dict[str, Any] = {}
    # scalars take the compiled kernel once warm_compiled has run (main does), the numpy path otherwise
    for label, wrap in (("deltadesk_vs_mpmath", lambda fn: fn), ("deltadesk_numpy_path_vs_mpmath", numpy_path)):
        worst = {n: [0.0, 0] for n in names}
        for i, (f, k, t, v, r, q, c, is_bsm) in enumerate(CASES, 1):
            ref = mp_bsm(f, k, t, v, r, q, c) if is_bsm else mp_black76(f, k, t, v, r, c)
            g = wrap(partial(bsm, f, k, t, v, c, r, q) if is_bsm else partial(black76, f, k, t, v, c, r))()
            for n in names:
                e = abs(float(getattr(g, n)) - ref[n]) / abs(ref[n])
                if e > worst[n][0]:
                    worst[n] = [e, i]
        table[label] = worst
    try:
        import QuantLib as ql

        ql_err = {n: [0.0, 0] for n in ("price", "delta", "gamma", "vega")}
        ours_ql = {n: [0.0, 0] for n in ("price", "delta", "gamma", "vega")}
        for i, (f, k, t, v, r, _q, c, is_bsm) in enumerate(CASES, 1):
            if is_bsm:
                continue
            calc = ql.BlackCalculator(ql.PlainVanillaPayoff(ql.Option.Call if c else ql.Option.Put, k), f,
                                      v * np.sqrt(t), float(np.exp(-r * t)))
            theirs = dict(price=calc.value(), delta=calc.deltaForward(), gamma=calc.gammaForward(), vega=calc.vega(t))
            ref = mp_black76(f, k, t, v, r, c)
            g = black76(f, k, t, v, c, r)
            for n, val in theirs.items():
                e = abs(val - ref[n]) / abs(ref[n])
                if e > ql_err[n][0]:
                    ql_err[n] = [e, i]
                e2 = abs(float(getattr(g, n)) - val) / abs(val)
                if e2 > ours_ql[n][0]:
                    ours_ql[n] = [e2, i]
        table["quantlib_vs_mpmath"] = ql_err
        table["deltadesk_vs_quantlib"] = ours_ql
    except ImportError as exc:
        print(f"QuantLib accuracy skipped: {exc}")
    return table


def print_table(rows: list[dict[str, Any]], acc: dict[str, Any]) -> None:
    """Human-readable output."""
    print(f"{'case':22s} {'impl':22s} {'n':>9s} {'ms':>11s} {'M/s':>8s} {'max err':>9s} {'fail':>5s}  target/notes")
    for r in rows:
        ms = r["seconds"] * 1e3
        rate = (r["per_second"] or 0) / 1e6
        err = "" if r["max_abs_err"] is None else f"{r['max_abs_err']:.1e}"
        fails = "" if r["failures"] is None else str(r["failures"])
        tgt = f"≤{r['target_ms']} ms " if "target_ms" in r else ""
        star = "~" if "scaled_from" in r else " "
        print(f"{r['case']:22s} {r['impl']:22s} {r['n']:>9d} {star}{ms:>10.3f} {rate:>8.2f} {err:>9s} {fails:>5s}  "
              f"{tgt}{r.get('note', '')}")
    print("\nAccuracy, max relative error [case] on pricing.md's 20 cases:")
    for label, errs in acc.items():
        print(f"  {label:24s} " + "  ".join(f"{n} {e:.1e} [{c}]" for n, (e, c) in errs.items()))


def main(argv: list[str]) -> int:
    """Run the pricing benchmark; see the module docstring."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks pricing")
    ap.add_argument("--json", type=Path, help="write results as JSON to this file")
    ap.add_argument("--full", action="store_true", help="pricing.md sizes: N = 1e6, 100k unique IV set")
    ap.add_argument("--n", type=int, help="number of options for the large cases")
    ap.add_argument("--unique", type=int, help="size of the mpmath-priced IV set")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cpu", type=int, help="pin the process to this core")
    ap.add_argument("--no-peers", action="store_true", help="skip the subprocess peers")
    ap.add_argument("--cpu-time", action="store_true", help="time our cases in CPU seconds of this process")
    args = ap.parse_args(argv)
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    from app.pricing.black import compiled_ready, warm_compiled

    t0 = time.perf_counter()
    warm_compiled(background=False, compile=True)  # fills numba's disk cache on a fresh clone (a few seconds)
    print(f"compiled kernels {'loaded' if compiled_ready() else 'not available (numpy only)'}"
          f" in {time.perf_counter() - t0:.1f} s", flush=True)
    n = args.n or (1_000_000 if args.full else 100_000)
    n_unique = args.unique or (100_000 if args.full else 20_000)
    d = make_inputs(n)
    t0 = time.perf_counter()
    unique = make_inputs(n_unique)
    unique["p"] = mp_prices(unique)
    print(f"pricing benchmark: N = {n}, IV set {n_unique} unique (mpmath {time.perf_counter() - t0:.1f} s)", flush=True)
    rows = bench_greeks(d, n, args.repeats, not args.no_peers)
    rows += bench_iv(unique, n, args.repeats, not args.no_peers)
    rows += bench_surface(args.repeats)
    rows += bench_scenarios(args.repeats)
    acc = accuracy_table()
    print_table(rows, acc)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "accuracy": acc, "n": n, "iv_unique": n_unique,
                                         "python": sys.version.split()[0]}, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0
