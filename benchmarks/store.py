"""Store speed and size: fills batched and one by one, snapshot writes, reading a day, a week's size on disk.

    python -m benchmarks store [--json FILE] [--pg URL] [--quick] [--full-week]

Backends: SQLite (a temp file, WAL, synchronous=FULL for fills) always; PostgreSQL when ``--pg`` or
``$DESK_TEST_PG_URL`` gives a server (a throwaway schema is created and dropped). Records:
``{"case", "backend", "per_second" | "seconds" | "bytes", "n", ...}``. Targets: fills_batched >= 20,000/s
on SQLite; read_day < 0.2 s. On a shared machine the wall-clock figures move with the load; the CPU-time
figures next to them (this process's CPU only) do much less.

The size case writes what the desk stores for a 200-position book: one ``risk`` snapshot a second
(greeks per underlying, margin per currency: 42 numbers) and one ``positions`` snapshot a minute (size,
mark, PnL and four greeks of each of 200 positions), and measures the database's growth. By default one
day is written and multiplied by 7 (``--full-week`` writes the seven days). For contrast it also measures
per-position detail every second (one hour, extrapolated).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.domain import Fill, Liquidity, Side
from storage.store import SqlStore, open_store

DAY_S = 86_400
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
UNDERLYINGS = ("BTC", "ETH")
GREEKS = ("delta", "delta_bs", "gamma", "vega", "theta", "delta_usd", "gamma_usd", "vega_usd", "theta_usd")
MARGIN = ("balance", "equity", "margin_balance", "im", "mm", "available", "im_usage", "mm_usage", "dist_down", "dist_up")


def risk_snapshot(rng: random.Random, i: int) -> dict[str, Any]:
    """The per-second portfolio snapshot: greeks per underlying, margin per currency, totals (42 numbers)."""
    return {
        "portfolio": {u: {g: rng.gauss(0.0, 1.0) * 10 ** rng.randint(-4, 4) for g in GREEKS} for u in UNDERLYINGS},
        "margin": {u: {m: 10.0 + rng.random() for m in MARGIN} for u in UNDERLYINGS},
        "positions": 200,
        "pnl": rng.gauss(0.0, 0.1),
        "pnl_usd": rng.gauss(0.0, 5000.0),
        "orders_open": rng.randint(0, 20),
    }


def positions_snapshot(rng: random.Random, names: list[str]) -> dict[str, Any]:
    """Per-position detail of a 200-position book (7 numbers a position)."""
    return {
        n: {k: rng.gauss(0.0, 1.0) for k in ("size", "mark", "pnl", "delta", "gamma", "vega", "theta")} for n in names
    }


def fills(n: int, prefix: str) -> list[Fill]:
    """``n`` distinct fills."""
    base = Fill("x", "o", "BTC-PERPETUAL", Side.BUY, Decimal("98000.5"), Decimal("10"), Decimal("0.0000051"), "BTC",
                Liquidity.TAKER, T0)
    return [
        replace(base, trade_id=f"{prefix}{i}", order_id=f"o{i // 4}", side=Side.BUY if i % 2 else Side.SELL,
                price=Decimal(98000 + i % 400) + Decimal("0.5"), ts=T0 + i)
        for i in range(n)
    ]


@contextmanager
def backend_url(backend: str, pg_url: str | None) -> Iterator[str]:
    """A fresh empty database of the backend, removed afterwards."""
    if backend == "sqlite":
        d = tempfile.mkdtemp(prefix="desk-bench-")
        try:
            yield f"sqlite:///{d}/bench.db"
        finally:
            shutil.rmtree(d, ignore_errors=True)
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    assert pg_url is not None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def bench_fills(store: SqlStore, backend: str, n_batched: int, n_single: int) -> list[dict[str, Any]]:
    """fills_batched (1,000 per durable transaction) and fills_single_sync (one durable commit each)."""
    out = []
    batch = fills(n_batched, "b")
    t, c = time.perf_counter(), time.process_time()
    for k in range(0, n_batched, 1000):
        store.record_fills(batch[k : k + 1000])
    dt, dc = time.perf_counter() - t, time.process_time() - c
    out.append({"case": "fills_batched", "backend": backend, "per_second": n_batched / dt, "n": n_batched,
                "cpu_per_second": n_batched / dc, "batch": 1000, "target": 20_000 if backend == "sqlite" else None})
    single = fills(n_single, "s")
    t = time.perf_counter()
    for f in single:
        store.record_fill(f)
    dt = time.perf_counter() - t
    out.append({"case": "fills_single_sync", "backend": backend, "per_second": n_single / dt, "n": n_single})
    return out


def bench_snapshots(store: SqlStore, backend: str, n: int) -> list[dict[str, Any]]:
    """snapshots: queue ``n`` 1 s risk snapshots and wait until committed; read_day: read them back."""
    rng = random.Random(7)
    data = [risk_snapshot(rng, i) for i in range(n)]
    t = time.perf_counter()
    for i, d in enumerate(data):
        store.record_snapshot("risk", T0 + i * 1000, d)
    store.flush()
    dt = time.perf_counter() - t
    out: list[dict[str, Any]] = [{"case": "snapshots", "backend": backend, "per_second": n / dt, "n": n}]
    until = T0 + (n - 1) * 1000
    best, best_cpu = math.inf, math.inf
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        series = store.snapshot_series("risk", T0, until)
        best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
    assert len(series["ts"]) == n
    out.append({"case": "read_day", "backend": backend, "seconds": best, "cpu_seconds": best_cpu, "n": n,
                "api": "snapshot_series", "target": 0.2})
    t = time.perf_counter()
    rows = store.snapshots("risk", T0, until)
    out.append({"case": "read_day_dicts", "backend": backend, "seconds": time.perf_counter() - t, "n": len(rows),
                "api": "snapshots"})
    return out


def bench_week_size(url: str, backend: str, days: int, scale_to_days: int) -> list[dict[str, Any]]:
    """Bytes a week of 1 s snapshots takes for a 200-position book (see the module docstring)."""
    rng = random.Random(11)
    names = [f"BTC-{d}DEC26-{50000 + 1000 * k}-{'C' if k % 2 else 'P'}" for d in (4, 11, 18, 25) for k in range(50)]
    out = []
    with open_store(url) as store:
        before = store.size_bytes()
        for s in range(days * DAY_S):
            ts = T0 + s * 1000
            store.record_snapshot("risk", ts, risk_snapshot(rng, s))
            if s % 60 == 0:
                store.record_snapshot("positions", ts, positions_snapshot(rng, names))
        store.flush()
        store.prune(snapshot_retention_days=10_000, now_ms=T0)  # checkpoints the WAL into the file
        grown = store.size_bytes() - before
    week = grown * scale_to_days / days
    out.append({"case": "week_size", "backend": backend, "bytes": int(week), "mb": round(week / 1e6, 1),
                "measured_days": days, "layout": "risk 1 s (42 numbers) + positions 60 s (200 x 7 numbers)"})
    with open_store(url.replace("bench.db", "bench_full.db") if backend == "sqlite" else url) as store:
        store.prune(snapshot_retention_days=10_000, now_ms=T0 + 10**12, vacuum=True)
        before = store.size_bytes()
        for s in range(3600):
            store.record_snapshot("positions_1s", T0 + s * 1000, positions_snapshot(rng, names))
        store.flush()
        store.prune(snapshot_retention_days=10_000, now_ms=T0)
        grown = store.size_bytes() - before
    out.append({"case": "week_size_per_position_1s", "backend": backend, "bytes": int(grown * 24 * 7),
                "mb": round(grown * 24 * 7 / 1e6, 1), "measured_days": round(1 / 24, 3),
                "layout": "positions 1 s (200 x 7 numbers)"})
    return out


def run(backend: str, pg_url: str | None, quick: bool, full_week: bool) -> list[dict[str, Any]]:
    """Every case on one backend."""
    records: list[dict[str, Any]] = []
    n_batched, n_single, n_snap = (10_000, 200, 3_600) if quick else (100_000, 2_000, DAY_S)
    with backend_url(backend, pg_url) as url:
        with open_store(url) as store:
            records += bench_fills(store, backend, n_batched, n_single)
            records += bench_snapshots(store, backend, n_snap)
    with backend_url(backend, pg_url) as url:
        days = 7 if full_week else (0 if quick else 1)
        if days:
            records += bench_week_size(url, backend, days, 7)
    return records


def _fmt(r: dict[str, Any]) -> str:
    if "per_second" in r:
        value = f"{r['per_second']:>12,.0f} /s"
    elif "seconds" in r:
        value = f"{r['seconds'] * 1000:>12,.1f} ms"
    else:
        value = f"{r['mb']:>12,.1f} MB"
    target = r.get("target")
    note = ""
    if target is not None:
        ok = r["per_second"] >= target if "per_second" in r else r["seconds"] <= target
        note = f"  target {'>=' if 'per_second' in r else '<='} {target:g}: {'ok' if ok else 'MISSED'}"
    cpu = ""
    if "cpu_per_second" in r:
        cpu = f"  (CPU-time rate {r['cpu_per_second']:,.0f} /s)"
    elif "cpu_seconds" in r:
        cpu = f"  (CPU time {r['cpu_seconds'] * 1000:,.1f} ms)"
    return f"{r['case']:<28}{r['backend']:<12}{value}  n={r.get('n', r.get('measured_days'))}{note}{cpu}"


def main(argv: list[str]) -> int:
    """Run the store benchmarks; print a table and optionally write JSON records."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks store", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the records to this file")
    parser.add_argument("--pg", help="PostgreSQL URL (default: $DESK_TEST_PG_URL; skipped when neither)")
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds), no size case")
    parser.add_argument("--full-week", action="store_true", help="write seven days for the size case, not one")
    args = parser.parse_args(argv)
    pg_url = args.pg or os.environ.get("DESK_TEST_PG_URL")
    backends = ["sqlite"] + (["postgresql"] if pg_url else [])
    records: list[dict[str, Any]] = []
    for backend in backends:
        for r in run(backend, pg_url, args.quick, args.full_week):
            print(_fmt(r), flush=True)
            records.append(r)
    if not pg_url:
        print("postgresql: skipped (give --pg URL or set DESK_TEST_PG_URL)")
    if args.json:
        args.json.write_text(json.dumps(records, indent=2))
    return 0
