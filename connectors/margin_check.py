"""Cross-check a venue's own margin figures against the embedded margin engine for the same positions.

    rows = await margin_drift(venue)          # venue: a connected CcxtVenue (any ConnectorVenue with quotes)
    for r in rows: print(r.currency, r.venue_im, r.local_im, r.im_drift)

The venue's positions and marks (mark price, mark IV, forward) are loaded into a fresh
:class:`app.engine.margin.MarginEngine`; its IM/MM are compared with what the venue reports in
``get_account_summary``. A drift shows when the local replica and the venue disagree (different
parameters, a model change at the venue, missing positions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Protocol

from app.clock import WallClock
from app.domain import Instrument, Quote, Side
from app.engine.margin import MarginEngine
from app.ports import AccountReport, PositionStatusReport

LOCAL = "venue-replica"
COUNTERPARTY = "counterparty"


class QuotingVenue(Protocol):
    """What the check needs from a venue connector."""

    name: str

    async def instruments(self) -> Sequence[Instrument]: ...
    async def position_reports(self) -> Sequence[PositionStatusReport]: ...
    async def account(self, currency: str) -> AccountReport: ...
    async def quote(self, name: str) -> Quote: ...


@dataclass(frozen=True, slots=True)
class MarginDrift:
    """Venue vs embedded-engine margin of one currency (coin amounts; drift = local - venue)."""

    currency: str
    model: str
    positions: int
    venue_im: float
    local_im: float
    venue_mm: float
    local_mm: float

    @property
    def im_drift(self) -> float:
        """Local IM minus venue IM (coin)."""
        return self.local_im - self.venue_im

    @property
    def mm_drift(self) -> float:
        """Local MM minus venue MM (coin)."""
        return self.local_mm - self.venue_mm

    @property
    def im_drift_pct(self) -> float | None:
        """IM drift as a fraction of the venue's IM (None when the venue reports 0)."""
        return None if self.venue_im == 0 else self.im_drift / self.venue_im

    @property
    def mm_drift_pct(self) -> float | None:
        """MM drift as a fraction of the venue's MM (None when the venue reports 0)."""
        return None if self.venue_mm == 0 else self.mm_drift / self.venue_mm

    def as_dict(self) -> dict[str, Any]:
        """Figures and drifts as a JSON-friendly dict."""
        out = asdict(self)
        out.update(
            im_drift=self.im_drift,
            mm_drift=self.mm_drift,
            im_drift_pct=self.im_drift_pct,
            mm_drift_pct=self.mm_drift_pct,
        )
        return out


async def margin_drift(venue: QuotingVenue, currencies: Sequence[str] | None = None) -> list[MarginDrift]:
    """For every currency with positions (or the given ones): the venue's IM/MM next to the engine's."""
    listed = {i.name: i for i in await venue.instruments()}
    positions = [p for p in await venue.position_reports() if p.instrument in listed and p.size != 0]
    ccys = sorted(set(currencies or []) | {listed[p.instrument].settlement for p in positions})
    engine = MarginEngine(clock=WallClock())
    rows = []
    for ccy in ccys:
        account = await venue.account(ccy)
        model = "pm" if "pm" in str(account.raw.get("margin_model", "")) else "sm"
        held = [p for p in positions if listed[p.instrument].settlement == ccy]
        name = f"{LOCAL}-{ccy}"
        engine.open_account(name, model, deposits={ccy: max(account.balance, Decimal(0))})
        if COUNTERPARTY not in engine.accounts:
            engine.open_account(COUNTERPARTY, "sm")
        for p in held:
            inst = listed[p.instrument]
            q = await venue.quote(p.instrument)
            engine.add_instrument(inst)
            index = q.index_price or q.underlying_price or q.mark_price
            if index:
                engine.set_index(inst.underlying, float(index))
            if q.mark_price is not None:
                engine.set_mark(inst.name, float(q.mark_price), iv=q.mark_iv, underlying=q.underlying_price)
            price = p.average_price if p.average_price > 0 else Decimal(str(q.mark_price or 1))
            side = Side.BUY if p.size > 0 else Side.SELL
            engine.accounts.apply_fill(
                name,
                inst,
                side,
                abs(p.size),
                price,
                engine.clock.now_ms(),
                counterparty=COUNTERPARTY,
                ref="margin-check",
            )
        if held:
            report = engine.report(name, ccy, with_distance=False, publish=False)
            local_im, local_mm = report.initial_margin, report.maintenance_margin
        else:
            local_im = local_mm = 0.0
        rows.append(
            MarginDrift(
                currency=ccy,
                model=model,
                positions=len(held),
                venue_im=float(account.initial_margin),
                local_im=float(local_im),
                venue_mm=float(account.maintenance_margin),
                local_mm=float(local_mm),
            )
        )
    return rows


async def check_venue(venue: Any, currencies: Sequence[str] | None = None) -> list[MarginDrift]:
    """Connect ``venue`` (a CcxtVenue), compute the drift per currency, and close it again."""
    from app.bus import Bus

    await venue.connect(Bus())
    try:
        return await margin_drift(venue, currencies)
    finally:
        await venue.close()
