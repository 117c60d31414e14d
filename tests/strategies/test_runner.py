"""The runner: dry run by default, activation, kill switch, lease, outbox-before-send, restart reconciliation."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

from app.clock import SimClock
from app.domain import IndexPrice
from app.errors import DeskError, LeaseHeld
from storage.store import SqlStore
from strategies.delta_hedger import DeltaHedger
from strategies.hedger_config import parse_hedger_config
from strategies.runner import Runner, run_status, set_run_mode
from tests.strategies.fakes import Crash, FakeRouter, RouterView, option_position

CALL = "BTC-26JAN24-40000-C"


@pytest.fixture()
def store(tmp_path):
    s = SqlStore(tmp_path / "desk.db")
    yield s
    s.close()


def setup(store, *, active=True, delta=0.5, run_id="h1", router=None, clock=None, **cfg):
    clock = clock or SimClock(1_704_067_200_000)
    router = router or FakeRouter(clock)
    view = RouterView(router, [option_position(CALL, 1, delta=delta, gamma=0.0)])
    view.set_perp(39_999.5, 40_000.5)
    hedger = DeltaHedger(parse_hedger_config({"active": active, **cfg}))
    runner = Runner(hedger, router, store, view, run_id=run_id, clock=clock, active=active, check_interval_ms=5_000, lease_ttl_ms=10_000)
    return runner, router, view, clock


async def step(runner, view, clock, ms=5_000):
    clock.advance(ms)
    await runner.on_event(IndexPrice(clock.now_ms(), "btc_usd", view.index))
    await runner.tick()


async def test_dry_run_by_default_records_but_sends_nothing(store) -> None:
    runner, router, view, clock = setup(store, active=False)
    await runner.start()
    assert runner.mode == "dry_run"
    await step(runner, view, clock)
    await step(runner, view, clock)
    assert router.placed == []
    ds = store.decisions("h1")
    hedges = [d for d in ds if d["action"] == "hedge"]
    assert len(hedges) == 2 and all(d["mode"] == "dry_run" for d in hedges)
    assert hedges[0]["inputs"]["delta"] == pytest.approx(0.5)


async def test_activate_then_orders_go_out_after_the_outbox(store) -> None:
    runner, router, view, clock = setup(store, active=False)
    await runner.start()
    seen = []
    router.on_place = lambda req: seen.append(store.outbox_get(req.client_order_id))
    set_run_mode(store, "h1", "active")
    await step(runner, view, clock)
    assert runner.mode == "active" and len(router.placed) == 1
    req = router.placed[0]
    assert req.client_order_id.startswith("h1-") and req.amount == Decimal("20000")
    assert seen[0] is not None and seen[0]["status"] == "sent"  # durable before the venue saw it
    assert store.outbox_get(req.client_order_id)["status"] == "acked"
    saved = store.load_strategy_state("h1")
    assert saved["strategy"]["work"]["child"]["key"] == req.client_order_id.split("-", 1)[1]


async def test_kill_cancels_and_survives_restart(store) -> None:
    runner, router, view, clock = setup(store)
    await runner.start()
    await step(runner, view, clock)
    oid = next(iter(router.orders))
    set_run_mode(store, "h1", "killed")
    await step(runner, view, clock)
    assert runner.stopped and router.orders[oid]["status"] == "cancelled"
    assert run_status(store, "h1") == "killed"
    with pytest.raises(DeskError, match="killed"):
        set_run_mode(store, "h1", "active")
    runner2, *_ = setup(store, router=router, clock=clock)
    await runner2.start()
    assert runner2.stopped and runner2.mode == "killed"
    await step(runner2, view, clock)
    assert len(router.placed) == 1


async def test_pause_cancels_working_orders_and_sends_nothing(store) -> None:
    runner, router, view, clock = setup(store)
    await runner.start()
    await step(runner, view, clock)
    set_run_mode(store, "h1", "paused")
    await step(runner, view, clock)
    await step(runner, view, clock)
    assert all(o["status"] == "cancelled" for o in router.orders.values()) and len(router.placed) == 1
    assert any(d["action"] == "hedge" and d["mode"] == "paused" for d in store.decisions("h1"))


async def test_crash_after_venue_accepted_does_not_double_hedge(store) -> None:
    runner, router, view, clock = setup(store)
    await runner.start()
    router.crash_after_place = True
    with pytest.raises(Crash):
        await step(runner, view, clock)
    assert store.outbox_pending("h1")[0]["status"] == "sent"
    # Restart: a new process with a new hedger object over the same store and venue.
    runner2, *_ = setup(store, router=router, clock=clock)
    runner2.holder = runner.holder  # the same host's supervisor restarting it
    rep = await runner2.start()
    assert rep.outbox_acked == [router.placed[0].client_order_id]
    for _ in range(3):
        await step(runner2, view, clock, 1_000)
    assert len(router.placed) == 1  # the resting order is recognised, not sent again
    # The order fills while we run: the hedge completes and nothing more is sent.
    router.fill("V1", Decimal("20000"), Decimal("40000.5"))
    for f in router.fills:
        from app.domain import FillEvent

        await runner2.on_event(FillEvent(f.ts, f))
    await step(runner2, view, clock)
    await step(runner2, view, clock)
    assert len(router.placed) == 1 and router.perp_position() == -20000


async def test_crash_before_send_resends_under_a_new_id(store) -> None:
    runner, router, view, clock = setup(store)
    await runner.start()
    original = store.outbox_put

    def boom(*a, **k):
        original(*a, **k)
        raise Crash("after outbox put")

    store.outbox_put = boom
    with pytest.raises(Crash):
        await step(runner, view, clock)
    store.outbox_put = original
    assert router.placed == []
    runner2, *_ = setup(store, router=router, clock=clock)
    runner2.holder = runner.holder
    rep = await runner2.start()
    assert len(rep.outbox_failed) == 1
    assert len(router.placed) == 1  # re-sent once, during reconciliation
    assert router.placed[0].client_order_id not in rep.outbox_failed
    await step(runner2, view, clock)
    assert len(router.placed) == 1


async def test_fill_never_heard_of_is_recovered_once(store) -> None:
    runner, router, view, clock = setup(store, execution={"style": "market"})
    await runner.start()
    await step(runner, view, clock)
    # The IOC filled at the venue, but the process died before the fill event reached it.
    assert len(router.fills) == 1 and runner.strategy.totals["fills"] == 0
    clock.advance(1000)
    runner2, *_ = setup(store, router=router, clock=clock, execution={"style": "market"})
    runner2.holder = runner.holder
    rep = await runner2.start()
    assert rep.fills_new == 1 and runner2.strategy.totals["fills"] == 1
    assert len(store.fills(run_id="h1")) == 1
    await runner2.stop()
    runner3, *_ = setup(store, router=router, clock=clock, execution={"style": "market"})
    rep = await runner3.start()
    assert rep.fills_new == 0 and rep.fills_seen == 1 and runner3.strategy.totals["fills"] == 1
    await step(runner3, view, clock)
    assert len(router.placed) == 1  # the book is hedged: nothing more to do


async def test_lease_held_by_a_live_runner_refuses_a_second(store) -> None:
    runner, router, view, clock = setup(store)
    await runner.start()
    runner2, *_ = setup(store, router=router, clock=clock)
    runner2.holder = "otherhost:1:abc"
    with pytest.raises(LeaseHeld):
        await runner2.start()


async def test_lease_of_a_dead_process_is_taken_over(store) -> None:
    runner, router, view, clock = setup(store)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    import socket

    runner.holder = f"{socket.gethostname()}:{int(dead.stdout)}:dead"
    await runner.start()
    runner2, *_ = setup(store, router=router, clock=clock)
    await runner2.start()
    assert store.get_run("h1")["lease_holder"] == runner2.holder
    clock.advance(5_000)  # its next heartbeat is due
    with pytest.raises(LeaseHeld):
        await runner.tick()  # the old holder, were it alive, stops at its next heartbeat


async def test_timers_are_restart_safe(store) -> None:
    runner, router, view, clock = setup(store, active=False)
    await runner.start()
    await step(runner, view, clock)
    n1 = len(store.decisions("h1"))
    await runner.stop()
    clock.advance(60_000)  # down for twelve intervals
    runner2, *_ = setup(store, router=router, clock=clock, active=False)
    await runner2.start()
    await runner2.tick()
    await runner2.tick()
    assert len(store.decisions("h1")) == n1 + 1  # an overdue timer fires once, not twelve times


async def test_saved_order_ids_stay_bounded(store) -> None:
    from strategies import runner as runner_mod

    runner, router, view, clock = setup(store, execution={"style": "market"})
    await runner.start()
    runner._orders = {f"{i}.1": f"V{i}" for i in range(runner_mod.MAX_ORDER_IDS + 10)}
    runner._save()
    assert len(store.load_strategy_state("h1")["runner"]["orders"]) <= runner_mod.MAX_ORDER_IDS // 2 + 1


async def test_dry_run_and_paused_hedges_do_not_use_up_limits_or_totals(store) -> None:
    # Dry-run "hedges" (never sent) used to take the hourly rate, the small-move filter's last-hedge spot and the
    # totals: after activation the hedger refused to hedge a delta far outside its band for up to an hour.
    runner, router, view, clock = setup(store, active=False, limits={"max_hedges_per_hour": 2}, band={"min_move_pct": 1.0})
    await runner.start()
    for _ in range(3):
        await step(runner, view, clock)
    set_run_mode(store, "h1", "paused")
    for _ in range(2):
        await step(runner, view, clock)
    tot = runner.strategy.totals
    assert router.placed == [] and tot["hedges"] == 0 and tot["orders"] == 0
    assert tot["dry_run_hedges"] == 5 and tot["dry_run_orders"] == 5
    hedges = [d for d in store.decisions("h1") if d["action"] == "hedge"]
    assert len(hedges) == 5 and {d["mode"] for d in hedges} == {"dry_run", "paused"}  # still journaled
    assert runner.strategy.state()["last_hedge_spot"] is None and runner.strategy.state()["hour"] == []
    set_run_mode(store, "h1", "active")
    await step(runner, view, clock)
    assert len(router.placed) == 1 and router.placed[0].amount == Decimal("20000")
    tot = runner.strategy.totals
    assert tot["hedges"] == 1 and tot["orders"] == 1 and tot["dry_run_hedges"] == 5
    assert len(runner.strategy.state()["hour"]) == 1 and runner.strategy.state()["last_hedge_spot"] == pytest.approx(40_000)


async def test_dry_run_scheduled_hedge_stays_due_after_activation(store) -> None:
    runner, router, view, clock = setup(store, active=False, delta=0.2,
                                        band={"rule": "time", "upper": 0.5, "lower": 0.5, "inner_upper": 0.05,
                                              "inner_lower": 0.05, "interval_s": 60})
    await runner.start()
    for _ in range(14):  # the schedule starts, then its first hedge is due (dry run)
        await step(runner, view, clock)
    assert [d["code"] for d in store.decisions("h1") if d["action"] == "hedge"][:1] == ["hedge.scheduled_hedge"]
    set_run_mode(store, "h1", "active")
    await step(runner, view, clock)
    assert len(router.placed) == 1  # not an interval later: the dry-run hedge did not use the schedule up
