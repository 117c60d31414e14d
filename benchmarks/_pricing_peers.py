"""Peer-library timings, run by benchmarks/pricing.py in the peer's own virtual environment.

py_vollib_vectorized needs py_vollib==1.0.1 and py_lets_be_rational==1.0.1 and monkey-patches py_vollib
on import, and vollib 1.0.11 needs the newer lets_be_rational: neither can share a process (or an
environment) with the other, so each runs here, in a subprocess, on inputs passed as an .npz file.
This file imports only numpy and the peer library.

    python _pricing_peers.py IMPL TASK INPUTS.npz OUT.npz REPEATS
    IMPL: pvv | vollib     TASK: greeks | iv
"""

from __future__ import annotations

import sys
import time

import numpy as np


def _median_time(fn, repeats: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    out = None
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def run_pvv(task: str, d: dict[str, np.ndarray], repeats: int) -> tuple[float, dict[str, np.ndarray]]:
    import py_vollib_vectorized as pvv  # noqa: F401  (registers the vectorised functions)
    from py_vollib_vectorized import get_all_greeks, vectorized_implied_volatility_black

    flags = np.where(d["c"], "c", "p")
    if task == "greeks":
        def fn():  # type: ignore[no-untyped-def]
            price = pvv.vectorized_black(flags, d["F"], d["K"], d["T"], d["r"], d["v"], return_as="numpy")
            g = get_all_greeks(flags, d["F"], d["K"], d["T"], d["r"], d["v"], model="black", return_as="dict")
            return price, g
        get_all_greeks(flags[:10], d["F"][:10], d["K"][:10], d["T"][:10], d["r"][:10], d["v"][:10],
                       model="black", return_as="dict")  # JIT warm-up
        seconds, (price, g) = _median_time(fn, repeats)  # type: ignore[misc]
        return seconds, {"price": np.asarray(price, float), **{k: np.asarray(v, float) for k, v in g.items()}}

    def fn_iv():  # type: ignore[no-untyped-def]
        return vectorized_implied_volatility_black(d["p"], d["F"], d["K"], d["r"], d["T"], flags, return_as="numpy")
    vectorized_implied_volatility_black(d["p"][:10], d["F"][:10], d["K"][:10], d["r"][:10], d["T"][:10],
                                        flags[:10], return_as="numpy")
    seconds, iv = _median_time(fn_iv, repeats)
    return seconds, {"iv": np.asarray(iv, float)}


def run_vollib(task: str, d: dict[str, np.ndarray], repeats: int) -> tuple[float, dict[str, np.ndarray]]:
    from vollib.black import black
    from vollib.black.greeks.analytical import delta, gamma, rho, theta, vega
    from vollib.black.implied_volatility import implied_volatility

    n = d["F"].size
    flags = ["c" if c else "p" for c in d["c"]]
    if task == "greeks":
        def fn():  # type: ignore[no-untyped-def]
            out = np.empty((6, n))
            for i in range(n):
                args = (flags[i], float(d["F"][i]), float(d["K"][i]), float(d["T"][i]), float(d["r"][i]),
                        float(d["v"][i]))
                out[:, i] = (black(*args), delta(*args), gamma(*args), vega(*args), theta(*args), rho(*args))
            return out
        seconds, out = _median_time(fn, repeats)
        return seconds, {"price": out[0]}  # type: ignore[index]

    def fn_iv():  # type: ignore[no-untyped-def]
        res = np.empty(n)
        for i in range(n):
            try:
                res[i] = implied_volatility(float(d["p"][i]), float(d["F"][i]), float(d["K"][i]), float(d["r"][i]),
                                            float(d["T"][i]), flags[i])
            except Exception:  # noqa: BLE001  (vollib raises on prices outside the bounds)
                res[i] = np.nan
        return res
    seconds, iv = _median_time(fn_iv, repeats)
    return seconds, {"iv": np.asarray(iv, float)}


def main(argv: list[str]) -> int:
    impl, task, inputs, out, repeats = argv[0], argv[1], argv[2], argv[3], int(argv[4])
    d = dict(np.load(inputs))
    runner = {"pvv": run_pvv, "vollib": run_vollib}[impl]
    seconds, arrays = runner(task, d, repeats)
    np.savez(out, seconds=np.array(seconds), **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
