"""What the terminal needs from a Desk: the slice of :class:`app.desk.Desk` it drives.

The TUI is typed against this protocol rather than the concrete class so a read-only view of a stored
run (``desk tui --db``) can stand in for a live Desk. Methods that may be sync or async on the concrete
object are awaited through :func:`maybe_await`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar, runtime_checkable

from app.bus import Subscription
from app.domain import DeskSnapshot, MarginReport, Order, OrderRequest

T = TypeVar("T")


@runtime_checkable
class DeskPort(Protocol):
    """The calls the TUI makes on a Desk (see INTERFACES.md, ``app.desk.Desk``)."""

    def snapshot(self) -> DeskSnapshot:
        """Everything a front draws, at one instant."""
        ...

    def subscribe(self, topics: Any) -> Subscription:
        """A bus subscription to event ``topics`` (``alert``, ``fill_event``...)."""
        ...

    async def place(self, req: OrderRequest) -> Order:
        """Send an order; raises OrderRejected / InsufficientMargin."""
        ...

    def what_if(self, orders: list[OrderRequest]) -> dict[str, MarginReport]:
        """Margin after ``orders``, per settlement currency; changes nothing."""
        ...

    def strategy_control(self, run_id: str, action: str) -> Any:
        """``activate``, ``pause``, ``kill`` or ``hedge_now`` a strategy run (may be a coroutine)."""
        ...

    def now_ms(self) -> int:
        """The desk's clock, epoch ms."""
        ...


async def maybe_await(value: T | Awaitable[T]) -> T:
    """Await ``value`` when the Desk returned a coroutine, else return it (sync and async Desk methods)."""
    if inspect.isawaitable(value):
        return await value  # type: ignore[no-any-return]
    return value  # type: ignore[return-value]


def is_read_only(desk: object) -> bool:
    """True when the desk is a stored-run browser that cannot trade (``read_only`` attribute)."""
    return bool(getattr(desk, "read_only", False))
