"""Composition of the trader's terminal (``desk tui``): the Desk it drives, its hedger, and stored runs.

The TUI (``ui.tui``) imports only the Desk's surface; the wiring that needs ``strategies`` and ``storage``
lives here, in the composition root.

    desk = open_sim_desk(settings, seed=7)            # the embedded simulated market, account funded
    run_id = await add_default_hedger(desk)           # delta hedger in dry-run (a scratch store is attached)
    view = StoredDesk.open(Path("run.db"))            # read-only browse of a headless `desk run`
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.bus import Bus, Subscription
from app.config import Settings
from app.domain import (
    DeskSnapshot,
    Instrument,
    MarginReport,
    Order,
    OrderRequest,
    StrategyStatus,
)
from app.errors import InvalidInstrument, OrderRejected

READ_ONLY_CODE = "tui.read_only"


def open_sim_desk(settings: Settings, *, seed: int, store: Any = None, speed: float | None = None) -> Any:
    """A Desk on the embedded simulated market (``seed``; ``speed`` simulated s per wall s), optionally with a store.

    The compiled pricing kernels load in the background (the fronts open on numpy pricing and switch when ready)."""
    from app.desk import Desk

    return Desk(settings, venue="sim", seed=seed, store=store, speed=speed, kernels="background")


REPLAY_SPEED = 60.0
"""Simulated seconds per wall second of a replay in a front when no speed is given: a day in 24 minutes."""


def open_replay_desk(settings: Settings, *, day: str | None, seed: int, speed: float | None = None) -> Any:
    """A Desk on a replayed UTC ``day`` of real prices (``shared/data``; default 2020-03-12), 10 s market steps."""
    from app.desk import Desk
    from connectors.replay import DEFAULT_DAY, ReplayConfig

    cfg = ReplayConfig(day=day or DEFAULT_DAY, seed=seed, margin_model=settings.margin.model, step_ms=10_000)
    return Desk(settings, venue="replay", seed=seed, speed=REPLAY_SPEED if speed is None else speed, replay=cfg,
                kernels="background")


def ccxt_venue(settings: Settings, name: str) -> Any:
    """The ccxt connector of ``[venues.NAME]``: URLs from the section, keys from it or ``DESK_<NAME>_KEY``/``_SECRET``
    (and ``_PASSPHRASE``) in the environment or keyring; never printed."""
    import os

    from app.errors import ConfigError
    from connectors.base import Credentials
    from connectors.ccxt_venue import CcxtVenue

    section = settings.venues.get(name)
    if section is None:
        known = ", ".join(sorted(settings.venues)) or "none"
        raise ConfigError(f"no [venues.{name}] section in the configuration (configured: {known})", key=f"venues.{name}")
    prefix = f"DESK_{name.upper()}"
    if section.api_key is not None and section.api_secret is not None:
        creds = Credentials(section.api_key.get_secret_value(), section.api_secret.get_secret_value(),
                            os.environ.get(f"{prefix}_PASSPHRASE") or None)
    else:
        creds = Credentials.from_env(prefix)
    return CcxtVenue(section.exchange, credentials=creds, rest_url=section.rest_url, ws_url=section.ws_url,
                     testnet=section.testnet, name=name)


def open_venue_desk(settings: Settings, name: str, *, store: Any = None) -> Any:
    """A desk over the account at the external venue ``[venues.NAME]`` (wall clock; it connects when started)."""
    from app.venue_desk import VenueDesk

    return VenueDesk(ccxt_venue(settings, name), settings, store=store)


_SCRATCH_DIRS: set[Path] = set()  # temp dirs made by scratch_store, removed by close_session


def scratch_store(directory: Path | None = None) -> Any:
    """A fresh SQLite store for one terminal session (strategy runs need one), in ``directory`` or a temp dir."""
    from storage.store import SqlStore

    if directory is None:
        folder = Path(tempfile.mkdtemp(prefix="deltadesk-tui-"))
        _SCRATCH_DIRS.add(folder)
    else:
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
    return SqlStore(folder / "session.db")


def close_session(desk: Any) -> None:
    """Close the desk's store after the terminal exits; a scratch store's temp dir is deleted with it."""
    store = getattr(desk, "store", None)
    if store is None:
        return
    close = getattr(store, "close", None)
    if callable(close):
        close()
    path = getattr(store, "path", None)
    folder = Path(path).parent if path is not None else None
    if folder is not None and folder in _SCRATCH_DIRS:
        shutil.rmtree(folder, ignore_errors=True)
        _SCRATCH_DIRS.discard(folder)


def hedger_config(settings: Settings, underlying: str) -> Any:
    """The hedger's config: ``[strategies.delta_hedger]`` of desk.toml (if any) for ``underlying``, dry-run."""
    from strategies.hedger_config import HedgerConfig

    raw = dict(settings.strategies.get("delta_hedger", {}))
    raw.update(underlying=underlying, active=False)
    return HedgerConfig(**raw)


def _hedger_class() -> type:
    from strategies.delta_hedger import DeltaHedger

    return DeltaHedger


async def add_default_hedger(desk: Any, underlying: str = "BTC", *, store_dir: Path | None = None) -> str:
    """Register the delta hedger of ``underlying`` on ``desk`` in dry-run; returns its run id.

    The Desk reads ``desk.store`` when it books fills and runs strategies, so a scratch store attached here
    takes effect at once. The run is started right away when the desk's market task is running.
    """
    # Importing SQL and strategy code costs about a second: done off the event loop so the screen stays live.
    if desk.store is None:
        desk.store = await asyncio.to_thread(scratch_store, store_dir)
    hedger_cls = await asyncio.to_thread(_hedger_class)
    n = sum(1 for r in desk.runners if r.startswith(f"hedge-{underlying.lower()}"))
    run_id = f"hedge-{underlying.lower()}" + (f"-{n + 1}" if n else "")
    cfg = hedger_config(desk.settings, underlying)
    runner = desk.add_strategy(hedger_cls(cfg), run_id,
                               check_interval_ms=int(cfg.check_interval_s * 1000))
    await runner.start()
    return run_id


class StoredDesk:
    """A read-only Desk over a store written by ``desk run``: last margin, greeks, positions, hedger decisions.

    It cannot trade: ``place``, ``what_if`` and ``strategy_control`` raise ``OrderRejected`` with code
    ``tui.read_only``. There is no option chain (stored runs keep history rows, not chains).
    """

    read_only = True

    def __init__(self, store: Any) -> None:
        self.store = store
        self.bus = Bus()
        self._ts = 0

    @classmethod
    def open(cls, db: Path | str) -> StoredDesk:
        """Open ``db`` read-only; StoreError when it is missing, empty or of an older schema."""
        from storage.store import SqlStore

        if isinstance(db, Path) and "://" not in str(db) and not db.exists():
            from app.errors import StoreError

            raise StoreError(f"{db} does not exist", code="store.missing", path=str(db))
        return cls(SqlStore(db, read_only=True))

    def now_ms(self) -> int:
        """Time of the newest stored desk row (epoch ms)."""
        return self._ts

    def subscribe(self, topics: Any = None, maxsize: int = 10_000) -> Subscription:
        """An (idle) subscription: a stored run publishes nothing."""
        return self.bus.subscribe(topics, maxsize=maxsize)

    def snapshot(self) -> DeskSnapshot:
        """The newest stored desk row, the stored positions and the strategy runs with their last decisions."""
        from app.analytics import snapshot_from_row, stored_position

        row = self.store.latest_snapshot("desk")
        base = snapshot_from_row(row) if row is not None else None
        ts = base.ts if base is not None else 0
        self._ts = ts
        positions = []
        for name, (size, avg, account) in sorted(self._positions().items()):
            try:
                Instrument.parse(name)
            except InvalidInstrument:
                continue
            # A stored run keeps sizes and averages, not marks: mark, PnL and greeks are unknown (shown as —), not 0.
            positions.append(stored_position(name, float(size), float(avg), account))
        runs = []
        for run in self.store.list_runs():
            decisions = self.store.decisions(run["run_id"], limit=20, newest_first=True)
            status = run.get("status") or "stopped"
            if status not in ("dry_run", "active", "paused", "killed"):
                status = "stopped"
            runs.append(StrategyStatus(run["run_id"], run.get("name") or run["run_id"], status,
                                       {"decisions": len(decisions)}, tuple(reversed(decisions))))
        if base is not None:  # keeps what the row stored beyond margin and greeks (its PnL total)
            return replace(base, venue="stored", positions=tuple(positions), strategies=tuple(runs))
        return DeskSnapshot(
            ts=ts, venue="stored", index_prices={}, instruments=(), chains={}, quotes={}, positions=tuple(positions),
            portfolio={}, margin={}, strategies=tuple(runs),
        )

    def _positions(self) -> dict[str, tuple[Decimal, Decimal, str]]:
        """Stored positions, or (when the run saved none) the net of its stored fills: size, average price, account."""
        saved = {p.instrument: (p.size, p.average_price, p.account) for p in self.store.positions()}
        if saved:
            return saved
        net: dict[str, tuple[Decimal, Decimal, str]] = {}
        for f in self.store.fills():
            size, avg, _ = net.get(f.instrument, (Decimal(0), Decimal(0), f.account))
            signed = f.amount * f.side.sign
            new = size + signed
            if size == 0 or (size > 0) == (signed > 0):  # opening or adding: volume-weighted average
                avg = (avg * abs(size) + f.price * f.amount) / abs(new) if new else Decimal(0)
            elif new == 0:
                avg = Decimal(0)
            elif (new > 0) != (size > 0):  # flipped through zero: the remainder opened at this price
                avg = f.price
            net[f.instrument] = (new, avg, f.account)
        return {k: v for k, v in net.items() if v[0] != 0}

    async def place(self, req: OrderRequest) -> Order:
        """Refused: a stored run cannot trade."""
        raise OrderRejected("this is a stored run, opened read-only", code=READ_ONLY_CODE)

    def what_if(self, orders: list[OrderRequest]) -> dict[str, MarginReport]:
        """Refused: no live margin engine behind a stored run."""
        raise OrderRejected("what-if needs a live desk; this is a stored run", code=READ_ONLY_CODE)

    def strategy_control(self, run_id: str, action: str) -> None:
        """Refused: use ``desk hedge`` on the running desk."""
        raise OrderRejected(f"cannot {action} {run_id}: this is a stored run (use `desk hedge`)", code=READ_ONLY_CODE)

    def close(self) -> None:
        """Close the store."""
        self.store.close()


