"""Margin engine speed: full portfolio margin, incremental pre-trade check, distance to liquidation.

    python -m benchmarks margin [--quick] [--json FILE]

- full PM: the whole risk matrix (every option revalued with Black-76 over 27 + 8 scenarios, futures with the
  inverse PnL formula, aggregation, worst case, shocks) for 1,000 and 10,000 positions on BTC and ETH, on one
  core (the default, ``DESK_PM_THREADS=1``; the target), and for a calls-only book on one core and two threads;
- incremental pre-trade check: ``MarginEngine.check_order`` on a warm cache (SM and PM accounts of 1,000
  positions), and its ratio to a full recomputation of the same account;
- distance to liquidation (spot move solved on the full model) for a 200-position PM book, before and after
  ``app.pricing.black.warm_compiled`` (small arrays on the compiled kernels too).

Targets (issue 6): full PM for 10,000 positions < 50 ms; incremental check < 20 us.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from app.clock import SimClock
from app.domain import Instrument, OrderRequest, Side, expiry_code
from app.engine.margin import MarginEngine
from app.engine.margin_pm import MarkInput, PMPortfolio
from app.pricing import black76

NOW = 1_718_000_000_000
SPOT = {"BTC": 65_000.0, "ETH": 3_500.0}


def _listing(n: int, seed: int = 7, puts: bool = True) -> list[tuple[Instrument, float]]:
    """``n`` distinct instruments (options on many strikes and expiries, plus futures) with random sizes.

    With ``puts`` each strike and expiry holds a call and a put (their revaluation is shared); without, every
    option is a call on its own strike, the book with the most distinct revaluations per position.
    """
    rng = random.Random(seed)
    start = datetime.fromtimestamp(NOW / 1000, tz=timezone.utc).replace(hour=8, minute=0, second=0, microsecond=0)
    expiries = [start + timedelta(days=d) for d in (1, 2, 3, 7, 14, 21, 28, 56, 91, 182, 273, 364)]
    out: list[tuple[Instrument, float]] = []
    names: set[str] = set()
    per_ccy = n // 2
    for base in ("BTC", "ETH"):
        s = SPOT[base]
        step = 250 if base == "BTC" else 10
        for e in expiries:
            fut = f"{base}-{expiry_code(e)}"
            if fut not in names:
                names.add(fut)
                out.append((Instrument.parse(fut), rng.uniform(-5, 5)))
        out.append((Instrument.parse(f"{base}-PERPETUAL"), rng.uniform(-5, 5)))
        k = 0
        while sum(1 for i, _ in out if i.base == base) < per_ccy:
            e = expiries[k % len(expiries)]
            if puts:
                strike = int(s * 0.3 / step + (k // (2 * len(expiries)))) * step
                cp = "C" if (k // len(expiries)) % 2 == 0 else "P"
            else:
                strike, cp = int(s * 0.3 / step + k // len(expiries)) * step, "C"
            name = f"{base}-{expiry_code(e)}-{strike}-{cp}"
            k += 1
            if name in names:
                continue
            names.add(name)
            out.append((Instrument.parse(name), rng.uniform(-3, 3)))
    return out[:n]


def _marks(listing: list[tuple[Instrument, float]]) -> tuple[dict[str, MarkInput], dict[str, float]]:
    marks: dict[str, MarkInput] = {}
    for inst, _ in listing:
        s = SPOT[inst.base]
        if inst.is_option:
            fwd = s * 1.002
            t = inst.years_to_expiry(NOW)
            iv = 0.5 + 0.3 * abs(float(inst.strike) / fwd - 1.0)  # type: ignore[arg-type]
            px = float(black76(fwd, float(inst.strike), t, iv, inst.is_call).price) / fwd  # type: ignore[arg-type]
            marks[inst.name] = MarkInput(px, iv, fwd)
        else:
            marks[inst.name] = MarkInput(s * 1.002)
    return marks, {"btc_usd": SPOT["BTC"], "eth_usd": SPOT["ETH"]}


CPU: dict[str, float] = {}
"""CPU seconds per call of the last timing of each benchmark (wall time is what the results report; on a shared
machine the CPU time shows the work itself)."""


def _time(fn: Callable[[], Any], repeat: int, number: int = 1, label: str = "") -> float:
    """Median wall seconds per call over ``repeat`` batches of ``number`` calls (CPU seconds kept in CPU[label])."""
    runs = []
    cpu = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        c0 = time.process_time()
        for _ in range(number):
            fn()
        cpu.append((time.process_time() - c0) / number)
        runs.append((time.perf_counter() - t0) / number)
    if label:
        CPU[label] = statistics.median(cpu)
    return statistics.median(runs)


def bench_full_pm(n: int, repeat: int, *, puts: bool = True, threads: int | None = None, label: str = "") -> float:
    """Seconds for one full PM computation (both currencies) of ``n`` positions.

    ``threads``: DESK_PM_THREADS for the run (1: one core; None: as the environment says)."""
    listing = _listing(n, puts=puts)
    marks, index = _marks(listing)
    positions = {i.name: size for i, size in listing}

    def run() -> None:
        pf = PMPortfolio(positions, marks, index, NOW)
        for ccy in ("BTC", "ETH"):
            pf.result(ccy)

    old = os.environ.get("DESK_PM_THREADS")
    if threads is not None:
        os.environ["DESK_PM_THREADS"] = str(threads)
    try:
        run()
        return _time(run, repeat, label=label or f"full_pm_{n}_ms")
    finally:
        if threads is not None:
            if old is None:
                del os.environ["DESK_PM_THREADS"]
            else:
                os.environ["DESK_PM_THREADS"] = old


def _engine(n: int, model: str) -> tuple[MarginEngine, list[tuple[Instrument, float]]]:
    listing = _listing(n)
    marks, index = _marks(listing)
    eng = MarginEngine(clock=SimClock(NOW))
    for inst, _ in listing:
        eng.add_instrument(inst)
    eng.set_index("btc_usd", index["btc_usd"])
    eng.set_index("eth_usd", index["eth_usd"])
    eng.set_marks({name: (m.mark_price, m.mark_iv, m.underlying_price) for name, m in marks.items()})
    eng.open_account("a", model, {"BTC": Decimal("100000"), "ETH": Decimal("1000000")})  # type: ignore[arg-type]
    eng.open_account("cp", "sm", {"BTC": Decimal("1000000"), "ETH": Decimal("10000000")})
    for inst, size in listing:
        amount = Decimal(repr(round(abs(size), 1))) if inst.is_option else Decimal(int(abs(size) * SPOT[inst.base] / 10) * 10)
        if amount <= 0:
            continue
        buyer, seller = ("a", "cp") if size > 0 else ("cp", "a")
        px = Decimal(repr(round(max(eng.mark_of(inst.name), 0.0001), 4))) if inst.is_option else Decimal(repr(round(eng.mark_of(inst.name), 1)))
        eng.accounts.apply_trade(inst, buyer, seller, amount, px, NOW)
    return eng, listing


def bench_check(n: int, model: str, repeat: int) -> tuple[float, float]:
    """(seconds per incremental check, seconds per full recomputation) for an account of ``n`` positions."""
    eng, listing = _engine(n, model)
    rng = random.Random(3)
    opts = [i for i, _ in listing if i.is_option and i.base == "BTC"]
    reqs = []
    for _ in range(200):
        inst = rng.choice(opts)
        reqs.append(OrderRequest(inst.name, rng.choice([Side.BUY, Side.SELL]), Decimal("1"), Decimal("0.0100"), account="a"))
    reqs.append(OrderRequest("BTC-PERPETUAL", Side.BUY, Decimal("10000"), Decimal("65000"), account="a"))
    for r in reqs:
        eng.check_order(r)  # warm the per-instrument unit vectors
    it = iter(reqs * 10_000)
    check = _time(lambda: eng.check_order(next(it)), repeat, 2000, label=f"check_{model}_us")
    full = _time(lambda: eng.evaluate("a", "BTC"), max(3, repeat // 2), label=f"full_account_{model}_ms")
    return check, full


def bench_distance(n: int, repeat: int, label: str = "") -> float:
    """Seconds to solve the distance to liquidation of an ``n``-position PM book."""
    eng, _ = _engine(n, "pm")
    return _time(lambda: eng.distance_to_liquidation("a", "BTC"), repeat, label=label or f"distance_pm_{n}_ms")


def main(argv: list[str]) -> int:
    """Run the margin benchmarks; print a table (and JSON with --json FILE)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks margin")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and a 2,000-position large case")
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args(argv)
    rep = 3 if args.quick else 7
    large = 2_000 if args.quick else 10_000
    results: dict[str, float] = {}
    results["full_pm_1000_ms"] = bench_full_pm(1_000, rep, threads=1) * 1e3
    # One core (the target); then a book of calls on distinct strikes, where no call shares its revaluation with
    # a put, on one core and with a pool of two threads (its grids are large enough to be split; wall time where
    # a core is free).
    results[f"full_pm_{large}_ms"] = bench_full_pm(large, rep, threads=1) * 1e3
    calls = f"full_pm_{large}_calls"
    results[f"{calls}_ms"] = bench_full_pm(large, rep, puts=False, threads=1, label=f"{calls}_ms") * 1e3
    results[f"{calls}_pool_ms"] = bench_full_pm(large, rep, puts=False, threads=2, label=f"{calls}_pool_ms") * 1e3
    for model in ("sm", "pm"):
        chk, full = bench_check(1_000, model, rep)
        results[f"check_{model}_us"] = chk * 1e6
        results[f"full_account_{model}_ms"] = full * 1e3
        results[f"check_over_full_{model}"] = chk / full
    results["distance_pm_200_ms"] = bench_distance(200, max(2, rep // 2)) * 1e3
    # With app.pricing's kernels warmed (a long-running desk can warm them at start-up), small arrays such as a
    # 200-position book's 33 evaluations use them too; measured last because warming is process-wide.
    from app.pricing.black import warm_compiled

    warm_compiled(background=False)
    results["distance_pm_200_warm_ms"] = bench_distance(200, max(2, rep // 2), label="distance_pm_200_warm_ms") * 1e3
    width = max(map(len, results))
    print(f"{'':<{width}}  {'wall':>12}  {'cpu':>12}")
    for k, v in results.items():
        scale = 1e6 if k.endswith("_us") else 1e3
        cpu = f"{CPU[k] * scale:12.2f}" if k in CPU else ""
        print(f"{k:<{width}}  {v:12.4f}" if "over" in k else f"{k:<{width}}  {v:12.2f}  {cpu}")
    results.update({f"cpu_{k}": v * (1e6 if k.endswith("_us") else 1e3) for k, v in CPU.items()})
    big = results.get("full_pm_10000_ms")
    if big is not None:
        cpu = CPU["full_pm_10000_ms"] * 1e3
        calls = CPU["full_pm_10000_calls_ms"] * 1e3
        verdict = "met" if max(big, cpu, calls) < 50 else "NOT met"
        print(f"target full PM 10,000 < 50 ms on one core: {verdict} ({big:.1f} ms wall, {cpu:.1f} ms CPU; "
              f"calls-only book {calls:.1f} ms CPU)")
    print(f"target incremental check < 20 us: PM {results['check_pm_us']:.1f} us, SM {results['check_sm_us']:.1f} us")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0
