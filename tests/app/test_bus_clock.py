"""The bus under a slow subscriber; the simulated clock."""

import asyncio

import pytest

from app.bus import Bus
from app.clock import SimClock, WallClock
from app.domain import Alert, IndexPrice, Lost
from app.errors import InvalidInput


def _px(i: int) -> IndexPrice:
    return IndexPrice(ts=i, index="btc_usd", price=60000.0 + i)


def test_slow_subscriber_never_blocks_and_learns_what_it_lost() -> None:
    bus = Bus()
    slow = bus.subscribe({"index_price"}, maxsize=5)
    fast = bus.subscribe(None, maxsize=1000)
    for i in range(20):
        bus.publish(_px(i))  # returns immediately although `slow` never reads
    got = slow.drain()
    assert isinstance(got[0], Lost) and got[0].count == 15
    assert [e.ts for e in got[1:]] == [0, 1, 2, 3, 4]
    assert slow.lost == 15
    assert len(fast.drain()) == 20


def test_topic_filtering_and_handlers() -> None:
    bus = Bus()
    sub = bus.subscribe({"alert"})
    seen = []
    off = bus.on({"index_price"}, seen.append)
    bus.publish(_px(1))
    bus.publish(Alert(ts=2, source="t", message="hello"))
    assert [e.topic for e in sub.drain()] == ["alert"]
    assert len(seen) == 1
    off()
    bus.publish(_px(3))
    assert len(seen) == 1


async def test_async_iteration_and_close() -> None:
    bus = Bus()
    sub = bus.subscribe()

    async def producer() -> None:
        for i in range(3):
            await asyncio.sleep(0)
            bus.publish(_px(i))
        sub.close()

    task = asyncio.create_task(producer())
    seen = [e.ts async for e in sub]
    await task
    assert seen == [0, 1, 2]
    assert bus.subscriber_count == 0


def test_sim_clock() -> None:
    clock = SimClock(1_000)
    assert clock.advance(500) == 1_500
    assert clock.set(2_000) == 2_000
    assert clock.ms == clock.now_ms() == 2_000  # the attribute hot loops read
    with pytest.raises(InvalidInput):
        clock.advance(-1)
    with pytest.raises(InvalidInput):
        clock.set(10)
    assert clock.ms == 2_000  # refused moves change nothing
    assert WallClock().now_ms() > 1_600_000_000_000
    assert abs(WallClock().ms - WallClock().now_ms()) < 60_000
