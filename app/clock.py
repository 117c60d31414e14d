"""Injected time: a wall clock for live trading and a simulated clock for backtests and replay.

Nothing in the core reads the system time; it asks a :class:`Clock`.

    clock = SimClock(start_ms=1_700_000_000_000)
    clock.advance(60_000)          # one simulated minute
    clock.now_ms()                 # 1_700_000_060_000
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Protocol, runtime_checkable

from app.domain import utc_from_ms
from app.errors import InvalidInput


@runtime_checkable
class Clock(Protocol):
    """Source of the current time in epoch milliseconds UTC."""

    def now_ms(self) -> int:
        """Current time, epoch milliseconds UTC."""
        ...


class WallClock:
    """The real time of the machine (live trading only)."""

    def now_ms(self) -> int:
        """Current wall time, epoch milliseconds UTC."""
        return time.time_ns() // 1_000_000

    @property
    def ms(self) -> int:
        """Current wall time, epoch milliseconds UTC (the attribute form of :meth:`now_ms`)."""
        return time.time_ns() // 1_000_000

    def now(self) -> datetime:
        """Current wall time as an aware UTC datetime."""
        return utc_from_ms(self.now_ms())


class SimClock:
    """A clock that moves only when told: deterministic time for simulations and backtests.

    ``clock.ms`` is the current time as a plain attribute: a hot loop (the matching engine reads the
    time on every command) reads it without the cost of a call. Move it with :meth:`advance` or
    :meth:`set` only; they refuse to go back."""

    __slots__ = ("ms",)

    def __init__(self, start_ms: int = 1_704_067_200_000) -> None:
        self.ms = int(start_ms)

    def now_ms(self) -> int:
        """Current simulated time, epoch milliseconds UTC."""
        return self.ms

    def now(self) -> datetime:
        """Current simulated time as an aware UTC datetime."""
        return utc_from_ms(self.ms)

    def advance(self, ms: int) -> int:
        """Move time forward by ``ms`` milliseconds (never backwards); return the new time."""
        if ms < 0:
            raise InvalidInput(f"a clock cannot go back ({ms} ms)", code="clock.backwards")
        self.ms += int(ms)
        return self.ms

    def set(self, ts_ms: int) -> int:
        """Jump to ``ts_ms`` (not earlier than now); return the new time."""
        if ts_ms < self.ms:
            raise InvalidInput(f"a clock cannot go back to {ts_ms} from {self.ms}", code="clock.backwards")
        self.ms = int(ts_ms)
        return self.ms
