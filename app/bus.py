"""In-process publish/subscribe of domain events.

Publishing never blocks and never awaits: each subscriber has its own bounded queue, and when a slow
subscriber's queue is full its new events are dropped and counted. The subscriber then receives one
:class:`app.domain.Lost` event telling it how many it missed, before the next real event.

    bus = Bus()
    sub = bus.subscribe({"quote", "fill_event"}, maxsize=1000)
    bus.publish(quote)
    async for event in sub:          # or: event = await sub.get()
        ...
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

from app.domain import Event, Lost


class Subscription:
    """One subscriber's bounded inbox; iterate it or ``await get()``."""

    def __init__(self, bus: Bus, topics: frozenset[str] | None, maxsize: int) -> None:
        self._bus = bus
        self.topics = topics
        self.maxsize = maxsize
        self._queue: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.lost = 0  # total events lost over the subscription's life
        self._pending_lost = 0
        self.closed = False

    def wants(self, topic: str) -> bool:
        """True when this subscription listens to ``topic``."""
        return self.topics is None or topic in self.topics

    def _offer(self, event: Event) -> None:
        if len(self._queue) >= self.maxsize:
            self.lost += 1
            self._pending_lost += 1
            return
        self._queue.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> Event | None:
        """The next event, a Lost marker if events were dropped, or None when empty."""
        if self._pending_lost:
            count, self._pending_lost = self._pending_lost, 0
            ts = self._queue[0].ts if self._queue else 0
            return Lost(ts=ts, count=count)
        if self._queue:
            return self._queue.popleft()
        return None

    def drain(self) -> list[Event]:
        """All queued events at once (with a leading Lost marker if some were dropped)."""
        out: list[Event] = []
        while (event := self.get_nowait()) is not None:
            out.append(event)
        return out

    async def get(self) -> Event:
        """Wait for the next event."""
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def __len__(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop receiving events; a waiting ``get`` ends iteration."""
        self.closed = True
        self._bus._remove(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Bus:
    """Typed publish/subscribe with bounded queues per subscriber and synchronous handlers."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._handlers: list[tuple[frozenset[str] | None, Callable[[Event], None]]] = []
        self.published = 0

    def subscribe(self, topics: Iterable[str] | None = None, maxsize: int = 10_000) -> Subscription:
        """A new subscription to ``topics`` (event topics such as ``quote``; None for all)."""
        sub = Subscription(self, None if topics is None else frozenset(topics), maxsize)
        self._subs.append(sub)
        return sub

    def on(self, topics: Iterable[str] | None, handler: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``handler`` synchronously on each matching event; returns an unsubscribe function."""
        entry = (None if topics is None else frozenset(topics), handler)
        self._handlers.append(entry)
        return lambda: self._handlers.remove(entry) if entry in self._handlers else None

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every interested subscriber; never blocks."""
        self.published += 1
        topic = event.topic
        for topics, handler in self._handlers:
            if topics is None or topic in topics:
                handler(event)
        for sub in self._subs:
            if sub.topics is None or topic in sub.topics:
                sub._offer(event)

    def has_listeners(self, topic: str) -> bool:
        """True when a subscription or handler would receive events of ``topic`` (publishers may skip building them)."""
        return any(t is None or topic in t for t, _ in self._handlers) or any(s.wants(topic) for s in self._subs)

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    @property
    def subscriber_count(self) -> int:
        """Number of live queue subscriptions."""
        return len(self._subs)
