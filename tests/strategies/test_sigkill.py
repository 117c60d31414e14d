"""SIGKILL suite: kill the hedger's runner process at random points; nothing is lost and nothing is doubled.

The simulated venue (SimVenue: our matching engine with market makers and takers) runs in its own process,
so its records survive each kill; the runner process trades against it over loopback, persisting to a
SqlStore. After the kills a last runner starts, reconciles, and stops cleanly; then:

- every fill the venue has of the run's orders is in the store exactly once (zero lost fills);
- every order the venue received has a distinct client order id that was in the outbox before it was sent,
  and at most one order of the run is open (zero duplicate hedges);
- the store's outbox has nothing pending, and its acked entries are exactly the venue's orders;
- the hedge position (venue's record) leaves the book's delta inside the band or with its last hedge working.

Default tier: a few kills; ``-m slow``: at least 50.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from storage.store import SqlStore
from tests.strategies.killable.runner_proc import CONFIG, option_delta

ROOT = Path(__file__).resolve().parents[2]
RUN = "kill1"


def _call(port: int, method: str, **params):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall((json.dumps({"id": 1, "method": method, "params": params}) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)["result"]


@pytest.fixture()
def venue(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, "-m", "tests.strategies.killable.venue_server", str(port_file), "11"], cwd=ROOT)
    try:
        for _ in range(600):
            if port_file.exists():
                break
            if proc.poll() is not None:
                raise RuntimeError("venue process died")
            time.sleep(0.05)
        yield int(port_file.read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def _spawn(port: int, db: Path, index0: float, seconds: float | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "tests.strategies.killable.runner_proc", str(port), str(db), RUN,
            "-" if seconds is None else str(seconds), repr(index0)]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_cycles(venue_port: int, db: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    index0 = _call(venue_port, "state")["index"]
    SqlStore(db).close()  # create and migrate once, outside the killed processes
    for _ in range(kills):
        p = _spawn(venue_port, db, index0)
        # Wait until it started (reconciled) half of the time, so kills land both in start-up and in trading.
        if rng.random() < 0.5:
            line = p.stdout.readline()
            assert line.startswith("started"), p.stderr.read()
        time.sleep(rng.uniform(0.05, 1.2))
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
    final = _spawn(venue_port, db, index0, seconds=4.0)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err[-3000:]
    # Quiesce before comparing: pause the run, and let a last runner cancel its working order and sweep up the
    # fills that landed meanwhile, so that the venue cannot fill anything of the run after we look.
    store = SqlStore(db)
    net_active = _net_delta(venue_port, index0)
    store.set_run_status(RUN, "paused")
    store.close()
    last = _spawn(venue_port, db, index0, seconds=0.3)
    out, err = last.communicate(timeout=120)
    assert last.returncode == 0, err[-3000:]
    _check(venue_port, db, index0, net_active)


def _net_delta(port: int, index0: float) -> float:
    state = _call(port, "state")
    return option_delta(state["index"], index0) + float(Decimal(state["position"])) / state["mark"]


def _check(port: int, db: Path, index0: float, net_active: float) -> None:
    store = SqlStore(db)
    try:
        prefix = f"{RUN}-"
        venue_orders = [o for o in _call(port, "orders") if (o["request"]["client_order_id"] or "").startswith(prefix)]
        venue_fills = [f for f in _call(port, "fill_reports", since_ms=0) if (f["client_order_id"] or "").startswith(prefix)]
        assert venue_orders, "the hedger never traded: the suite would prove nothing"
        # No order sent twice: client order ids are unique at the venue, and each was in the outbox first.
        coids = [o["request"]["client_order_id"] for o in venue_orders]
        assert len(coids) == len(set(coids))
        outbox = {e["client_order_id"]: e for e in store.outbox(run_id=RUN)}
        assert set(coids) <= set(outbox)
        assert store.outbox_pending(RUN) == []
        acked = {c for c, e in outbox.items() if e["status"] == "acked"}
        assert acked == set(coids)
        # No fill lost: the store has exactly the venue's fills of the run.
        stored = {f.trade_id for f in store.fills(run_id=RUN)}
        assert stored == {f["trade_id"] for f in venue_fills}
        # Paused: nothing of the run is left working at the venue.
        assert [o for o in venue_orders if o["status"] == "open"] == []
        # No double hedge: when the active runner stopped, the book was within the band plus what one clip of
        # a hedge in progress and the market's moves meanwhile account for; a doubled hedge would overshoot.
        slack = CONFIG["band"]["upper"] + CONFIG["limits"]["max_order_size"] + 0.15
        assert abs(net_active) <= slack, net_active
    finally:
        store.close()


def test_sigkill_few(venue, tmp_path) -> None:
    _kill_cycles(venue, tmp_path / "desk.db", kills=4, seed=1)


@pytest.mark.slow
def test_sigkill_many(venue, tmp_path) -> None:
    _kill_cycles(venue, tmp_path / "desk.db", kills=60, seed=2)
