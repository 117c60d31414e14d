"""``desk run``: the desk headless, with its strategies, logging what it does, until stopped or for a duration.

One line per significant event (our fills and order updates, alerts, margin alerts, listings and settlements)
and a status line every ``status_every_ms`` of simulated time; with ``json_lines`` every line is a JSON object
and the run ends with one ``{"type": "summary", ...}`` line: orders, fills, events, final positions and equity,
and ``fills_sha256`` (the digest of the venue's fill stream, equal for two runs with the same seed).
SIGINT/SIGTERM stop the market at the next step, stop the strategies and flush the store.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from app.config import Settings
from app.desk import Desk
from app.domain import Alert, Event, FillEvent, MarginAlert, OrderUpdate, PositionUpdate, utc_from_ms
from app.errors import ConfigError, InvalidInput
from app.ports import Store

if TYPE_CHECKING:
    from app.venue_desk import VenueDesk

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_TOPICS = ("fill_event", "order_update", "alert", "margin_alert", "position_update")


def parse_duration(text: str | None) -> int | None:
    """``10m``, ``2h``, ``1d``, ``90s``, ``500ms`` or plain seconds → milliseconds (None stays None)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", text)
    if m is None:
        raise InvalidInput(f"duration {text!r} is not like 10m, 2h, 1d or 90s", code="input.duration", field="duration")
    ms = int(float(m[1]) * _UNITS[m[2] or "s"])
    if ms <= 0:
        raise InvalidInput(f"duration {text!r} must be positive", code="input.duration", field="duration")
    return ms


def _event_record(e: Event) -> dict[str, Any] | None:
    if isinstance(e, FillEvent):
        f = e.fill
        return {"type": "fill", "ts": f.ts, "instrument": f.instrument, "side": f.side.value, "amount": str(f.amount),
                "price": str(f.price), "fee": str(f.fee), "liquidity": f.liquidity.value, "order_id": f.order_id,
                "client_order_id": f.client_order_id}
    if isinstance(e, OrderUpdate):
        o = e.order
        return {"type": "order", "ts": e.ts, "order_id": o.order_id, "instrument": o.instrument,
                "side": o.request.side.value, "status": o.status.value, "amount": str(o.request.amount),
                "filled": str(o.filled), "price": None if o.request.price is None else str(o.request.price),
                "client_order_id": o.request.client_order_id}
    if isinstance(e, PositionUpdate):
        p = e.position
        return {"type": "position", "ts": e.ts, "instrument": p.instrument, "size": str(p.size),
                "average_price": str(p.average_price)}
    if isinstance(e, MarginAlert):
        return {"type": "margin_alert", "ts": e.ts, "account": e.account, "currency": e.currency, "level": e.level,
                "mm_usage": e.mm_usage, "message": e.message}
    if isinstance(e, Alert):
        if e.code == "instrument.listed":
            return None  # one line per listing batch would drown the log; the status line counts instruments
        return {"type": "alert", "ts": e.ts, "source": e.source, "severity": e.severity, "code": e.code,
                "message": e.message}
    return None


def _human(rec: dict[str, Any]) -> str:
    when = utc_from_ms(int(rec.get("ts", 0))).strftime("%Y-%m-%d %H:%M:%S")
    kind = rec["type"]
    if kind == "fill":
        body = f"FILL {rec['side']} {rec['amount']} {rec['instrument']} @ {rec['price']} fee {rec['fee']} ({rec['liquidity']})"
    elif kind == "order":
        body = f"ORDER {rec['order_id']} {rec['status']} {rec['side']} {rec['amount']} {rec['instrument']} @ {rec['price']}"
    elif kind == "position":
        body = f"POSITION {rec['instrument']} {rec['size']} avg {rec['average_price']}"
    elif kind == "margin_alert":
        body = f"MARGIN {rec['currency']} {rec['message']}"
    elif kind == "alert":
        body = f"{rec['severity'].upper()} {rec['source']}: {rec['message']}"
    elif kind == "status":
        idx = " ".join(f"{b} {p:,.2f}" for b, p in rec["index"].items())
        delta = " ".join(f"{b} Δ{d:+.4f}" for b, d in rec["delta"].items())
        eq = " ".join(f"{c} {v:.6f}" for c, v in rec["equity"].items())
        body = (f"STATUS {idx} | {delta} | equity {eq} | orders {rec['orders']} fills {rec['our_fills']}/{rec['fills']} "
                f"events {rec['events']} | {rec['events_per_s']:,.0f} ev/s")
        conn = rec.get("connection")
        if conn:
            body += f" | disconnects {conn['disconnects']} resyncs {conn['resyncs']} gaps {conn['gaps']}"
    elif kind == "decision":
        body = f"DECISION {rec['run_id']} {rec['action']} [{rec['code']}] {rec['reason']} ({rec['mode']})"
    elif kind == "start":
        body = (f"START {rec['venue']} seed {rec['seed']} speed {rec['speed']} duration_ms {rec['duration_ms']} "
                f"instruments {rec['instruments']} store {rec['store']}")
    elif kind == "summary":
        body = f"SUMMARY {json.dumps({k: v for k, v in rec.items() if k != 'type'}, sort_keys=True)}"
    else:
        body = json.dumps(rec)
    return f"{when} {body}"


def build_strategies(desk: Desk | VenueDesk, names: list[str], settings: Settings) -> list[Any]:
    """Add the strategies named on the command line (sections of ``[strategies]``; ``hedger`` = defaults)."""
    from strategies.delta_hedger import DeltaHedger
    from strategies.hedger_config import parse_hedger_config

    runners = []
    for name in names:
        section = settings.strategies.get(name)
        if section is None and name not in ("hedger", "delta_hedger"):
            raise ConfigError(f"no [strategies.{name}] section in the configuration", key=f"strategies.{name}")
        data = dict(section or {})
        kind = data.pop("kind", "delta_hedger")
        if kind != "delta_hedger":
            raise ConfigError(f"strategy kind {kind!r} is not known (delta_hedger)", key=f"strategies.{name}.kind")
        data.setdefault("name", name)
        cfg = parse_hedger_config(data, prefix=f"strategies.{name}", known_instruments=[i.name for i in desk.instruments()])
        runners.append(desk.add_strategy(DeltaHedger(cfg), name, active=cfg.active,
                                         check_interval_ms=int(cfg.check_interval_s * 1000)))
    return runners


async def run_headless(desk: Desk | VenueDesk, *, duration_ms: int | None, json_lines: bool, out: TextIO | None = None,
                       status_every_ms: int = 60_000, install_signals: bool = True,
                       on_started: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Run ``desk`` until ``duration_ms`` of its time passed or a signal came; return the summary.

    ``desk`` is the embedded :class:`app.desk.Desk` or an :class:`app.venue_desk.VenueDesk` (wall clock)."""
    out = out or sys.stdout
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    if install_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix loops
                pass
    sub = desk.subscribe(_TOPICS, maxsize=1_000_000)

    def emit(rec: dict[str, Any]) -> None:
        assert out is not None
        out.write((json.dumps(rec, sort_keys=True) if json_lines else _human(rec)) + "\n")

    last_seen: dict[str, Any] = {}

    def drain() -> None:
        for e in sub.drain():
            rec = _event_record(e)
            if rec is not None:
                emit(rec)
        # Strategy decisions that act (hedge, cancel, pause, mode changes), not the periodic "nothing to do".
        for run_id, runner in desk.runners.items():
            recent = list(runner.last_decisions)
            mark = last_seen.get(run_id)
            start = next((i + 1 for i in range(len(recent) - 1, -1, -1) if recent[i] is mark), 0)
            if recent:
                last_seen[run_id] = recent[-1]
            for d in recent[start:]:
                if d.get("action") in ("none", "working"):
                    continue
                emit({"type": "decision", "ts": d.get("ts", desk.now_ms()), "run_id": run_id,
                      "action": d.get("action"), "code": d.get("code", ""), "reason": d.get("reason", ""),
                      "mode": d.get("mode", "")})
        assert out is not None
        out.flush()

    t0 = time.perf_counter()
    start_ms = desk.now_ms()
    emit({"type": "start", "ts": start_ms, "venue": desk.venue.name, "seed": desk.seed, "speed": desk.speed,
          "duration_ms": duration_ms, "instruments": len(desk.instruments()),
          "store": None if desk.store is None else getattr(desk.store, "describe", lambda: "store")()})
    await desk.start(duration_ms)
    if on_started is not None:
        on_started(desk)
    next_status = start_ms + status_every_ms
    stopped_by_signal = False
    try:
        while True:
            task = desk._task
            if task is None or task.done():
                break
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait({task, waiter}, timeout=0.1, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            drain()
            if stop.is_set():
                stopped_by_signal = True
                break
            if desk.now_ms() >= next_status:
                next_status = desk.now_ms() + status_every_ms
                emit(_status(desk, t0))
        if desk._task is not None and desk._task.done() and desk._task.exception() is not None:
            raise desk._task.exception()  # type: ignore[misc]
    finally:
        await desk.stop()
        drain()
        sub.close()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.remove_signal_handler(sig)
                except (NotImplementedError, RuntimeError):  # pragma: no cover
                    pass
    summary = {"type": "summary", **desk.summary(), "duration_ms": desk.now_ms() - start_ms,
               "wall_s": round(time.perf_counter() - t0, 3), "stopped_by_signal": stopped_by_signal}
    emit(summary)
    out.flush()
    return summary


def _status(desk: Any, t0: float) -> dict[str, Any]:
    wall = max(time.perf_counter() - t0, 1e-9)
    margin = desk._refresh_margin(with_distance=False)
    c = desk.counters
    # app.venue_desk.VenueDesk reports its own counts (and the connection's health); the embedded venue its own.
    counts = desk.status_counts() if hasattr(desk, "status_counts") else {
        "fills": desk.venue.fill_count, "events": desk.venue.market_events,
        "instruments": len(desk.venue.instruments_by_name)}
    return {"type": "status", "ts": desk.now_ms(), "index": {b: round(p, 2) for b, p in desk.index_prices.items()},
            "delta": {b: round(g.delta, 6) for b, g in desk.portfolio().items()},
            "equity": {cc: round(r.equity, 8) for cc, r in margin.items()}, "orders": c["orders"],
            "our_fills": c["fills"], "events_per_s": counts["events"] / wall, **counts}


async def run_venue_headless(desk: VenueDesk, strategies: list[str], settings: Settings, *, duration_ms: int | None,
                             json_lines: bool, out: TextIO | None = None) -> dict[str, Any]:
    """``desk run --venue NAME``: connect (reconcile first), add the strategies, run headless, close the connection."""
    try:
        await desk.connect()
        build_strategies(desk, strategies, settings)
        return await run_headless(desk, duration_ms=duration_ms, json_lines=json_lines, out=out)
    finally:
        await desk.close()


def open_run_store(db: Any) -> Store:
    """The store of a run (``storage.store.open_store``; migrations included)."""
    from storage.store import open_store

    return open_store(db)
