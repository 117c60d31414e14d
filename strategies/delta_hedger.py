"""The delta hedger: keeps a book's delta inside a band with every rule of the best hedgers, and says why.

Delta. The book is every position of the hedger's underlying in one account (scope ``all`` and ``underlying``
alike: a hedger hedges one coin with that coin's perpetual or future, so other coins' deltas never count; book
tags are not supported). Option delta is premium-adjusted (Deribit ``delta_total``: Black-Scholes delta minus the
option's price in coin) or plain Black-Scholes, read from the desk's greeks; futures and perpetuals count their
coin exposure (USD size / price for inverse ones, size for linear ones), decayed linearly to 0 over the 30 minutes
before a future's expiry like the desk's own greeks (deribit.md §1.7). The USD view is the coin delta times the index.

Limits and totals count live hedges only: a hedge whose orders the runner did not send (dry run, paused) is
journaled as what the hedger would have done and counted in ``dry_run_hedges``/``dry_run_orders``, but it does
not use up the hourly rate and notional limits nor set the small-move filter's last-hedge spot.

``hedge_ratio`` above 1 over-hedges: the hedge means to carry delta past the target to
``target + (1 - ratio) x (delta - target)`` (from the band edge with ``rehedge_to = "edge"``). The rest of a hedge
is dropped only once delta is past that end point, and after a live over-hedge the far side of the band is
measured from its end point until delta comes back across the target, so that the over-hedge is not bought back
at the next check (a round trip that only pays costs).

Each check (a ``Timer`` event every ``check_interval_s``) makes one decision, recorded with its inputs:
pause (stale index, margin, rejects), keep working the current hedge, no hedge (inside band, small move,
limit, below lot) or hedge (outside band / scheduled). A hedge is worked by
:class:`strategies.execution.HedgeWork` (maker first, pay-up, TWAP clips, IOC at the slippage cap).
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from app.domain import (
    Event,
    FillEvent,
    IndexPrice,
    Instrument,
    Kind,
    MarginAlert,
    OrderStatus,
    OrderUpdate,
    PositionView,
    Quote,
    Side,
    Timer,
)
from app.errors import InvalidInstrument
from app.portfolio_view import delta_decay
from strategies.bands import Band, hedge_size, make_band
from strategies.base import DeskView, Intent, copy_state, underlying_base
from strategies.execution import HedgeWork
from strategies.hedger_config import HedgerConfig

HOUR_MS = 3_600_000
MS_PER_DAY = 86_400_000


def key_of(client_order_id: str | None) -> str | None:
    """The strategy key (``"<seq>.<n>"``) of a client order id ``"<run>-<seq>.<n>"``."""
    if not client_order_id or "-" not in client_order_id:
        return None
    return client_order_id.rsplit("-", 1)[1]


def _fresh_state() -> dict[str, Any]:
    return {
        "seq": 0,
        "index": None,
        "index_ts": None,
        "index_stale": False,
        "last_hedge_ms": None,
        "last_hedge_spot": None,
        "last_scheduled_ms": None,
        "work": None,
        # The hedge decision behind ``work`` (limits it counts against once live, its guard and end point): a
        # hedge counts against the hourly limits, the small-move filter and the totals only when the venue took
        # one of its orders, never when the runner answered "dry run" (dry run or paused).
        "plan": None,
        "over": None,  # the last live over-hedge (hedge_ratio > 1): {"side", "end"}, until delta is back across target
        "hour": [],  # [ts, notional_usd] of live hedges in the last hour
        "rejects": 0,
        "paused_until": 0,
        "pause_reason": "",
        "totals": {"hedges": 0, "orders": 0, "fills": 0, "fees_usd": 0.0, "slippage_usd": 0.0, "notional_usd": 0.0,
                   "dry_run_hedges": 0, "dry_run_orders": 0},
        "seen_fills": [],
        "last": {},
    }


class DeltaHedger:
    """A :class:`strategies.base.Strategy` that hedges a book's delta with a perpetual or future."""

    def __init__(self, config: HedgerConfig) -> None:
        self.cfg = config
        self.name = config.name
        self._s: dict[str, Any] = _fresh_state()
        self._decisions: list[dict[str, Any]] = []

    # -- Strategy protocol ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON-serialisable state (the runner persists it)."""
        return copy_state(self._s)

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a saved state."""
        fresh = _fresh_state()
        fresh.update(copy_state(state))
        self._s = fresh

    def take_decisions(self) -> list[dict[str, Any]]:
        """Decisions since the last call."""
        out, self._decisions = self._decisions, []
        return out

    @property
    def totals(self) -> dict[str, Any]:
        """Running cost-of-hedge totals (USD) and counts of live hedges, orders and fills; ``dry_run_hedges`` and
        ``dry_run_orders`` (what dry run or a pause did not send) only once there are some."""
        return {k: v for k, v in self._s["totals"].items() if not (k.startswith("dry_run_") and not v)}

    @property
    def last_band(self) -> dict[str, Any] | None:
        """The band of the last decision that computed one: ``lower``, ``upper`` (delta units), ``ts``, ``delta``."""
        return self._s["last"].get("band")

    @property
    def working(self) -> bool:
        """True while a hedge has a child order out or is not finished."""
        w = self._s["work"]
        return w is not None and (not w["done"] or w["child"] is not None)

    def live_keys(self) -> set[str]:
        """Keys of the orders this hedger still owns (the runner cancels any other open order of the run)."""
        w = self._s["work"]
        if w is None or w["child"] is None:
            return set()
        return {w["child"]["key"]}

    def on_event(self, event: Event, view: DeskView) -> list[Intent]:
        """Route one event: index and quotes update inputs; timers decide; order and fill events drive execution."""
        if isinstance(event, Timer):
            # "hedge_now" (the TUI's palette, Desk.strategy_control) hedges to the target whatever the band says,
            # still inside the safety pauses and limits.
            return self._check(view, force=event.name == "hedge_now")
        if isinstance(event, IndexPrice):
            if not event.source and underlying_base(event.index) == self.cfg.underlying:
                self._s["index"] = event.price
                self._s["index_ts"] = event.ts
                self._s["index_stale"] = bool(event.stale)
            return []
        if isinstance(event, Quote):
            if event.index_price and _base_of(event.instrument) == self.cfg.underlying and not self._s["index_stale"]:
                if self._s["index_ts"] is None or event.ts >= self._s["index_ts"]:
                    self._s["index"] = event.index_price
                    self._s["index_ts"] = event.ts
            return []
        if isinstance(event, OrderUpdate):
            return self._on_order(event, view)
        if isinstance(event, FillEvent):
            return self._on_fill(event, view)
        if isinstance(event, MarginAlert):
            self._s["last"]["margin_alert"] = {"level": event.level, "mm_usage": event.mm_usage, "ts": event.ts}
        return []

    # -- measurement ----------------------------------------------------------------------------------
    def _in_scope(self, p: PositionView) -> bool:
        # One underlying only, whatever the scope: the hedge instrument is that coin's perpetual or future, and
        # adding another coin's delta (1 ETH counted as 1 BTC) would hedge a risk the book does not have.
        return p.account == self.cfg.account and _base_of(p.instrument) == self.cfg.underlying

    def measure(self, view: DeskView) -> dict[str, float]:
        """Delta (coin and USD, premium-adjusted or BS as configured) and gamma (coin per USD) of the book."""
        spot = self._spot(view)
        now = view.now_ms()
        delta = 0.0
        delta_bs = 0.0
        gamma = 0.0
        futures = 0.0
        for p in view.positions():
            if not self._in_scope(p) or p.size == 0:
                continue
            kind = _kind_of(p.instrument)
            if kind is Kind.OPTION:
                delta += p.greeks.delta
                delta_bs += p.greeks.delta_bs
                gamma += p.greeks.gamma
            elif kind in (Kind.FUTURE, Kind.PERPETUAL, Kind.SPOT):
                futures += _coin_delta_of(p.instrument, p.size, p.mark or spot, now_ms=now)
        chosen = delta if self.cfg.delta_basis == "premium_adjusted" else delta_bs
        coin = chosen + futures
        return {
            "delta_coin": coin,
            "delta_usd": coin * spot if spot else float("nan"),
            "delta_options_pa": delta,
            "delta_options_bs": delta_bs,
            "delta_futures": futures,
            "gamma_coin": gamma,
            "spot": spot,
        }

    def _spot(self, view: DeskView) -> float:
        s = self._s["index"]
        if s is None:
            s = view.index_price(self.cfg.underlying)
        return float(s) if s else float("nan")

    # -- the check ------------------------------------------------------------------------------------
    def _record(self, now: int, action: str, code: str, reason: str, inputs: dict[str, Any], intents: list[Intent] = ()) -> None:  # type: ignore[assignment]
        self._s["seq"] += 1
        d = {
            "seq": self._s["seq"],
            "ts": now,
            "strategy": self.name,
            "action": action,
            "code": code,
            "reason": reason,
            "inputs": {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in inputs.items()},
            "intents": [i.to_dict() for i in intents],
        }
        self._s["last"]["decision"] = {"seq": d["seq"], "ts": now, "action": action, "code": code, "reason": reason}
        self._decisions.append(d)

    def _check(self, view: DeskView, force: bool = False) -> list[Intent]:
        cfg = self.cfg
        now = view.now_ms()
        m = self.measure(view)
        unit_delta = m["delta_coin"] if cfg.delta_unit == "coin" else m["delta_usd"]
        inputs: dict[str, Any] = dict(m, delta=unit_delta, unit=cfg.delta_unit, basis=cfg.delta_basis, target=cfg.target_delta, rule=cfg.band.rule)
        idx_ts = self._s["index_ts"]
        inputs["index_age_ms"] = None if idx_ts is None else now - idx_ts
        mm = max((r.mm_usage for r in view.margin().values()), default=0.0)
        inputs["mm_usage"] = mm
        self._s["hour"] = [h for h in self._s["hour"] if now - h[0] < HOUR_MS]

        # Safety first: these pause even a hedge in progress.
        pause = None
        if self._s["paused_until"] > now:
            pause = ("pause.rejects", f"paused after {cfg.safety.max_rejects} consecutive rejects until {self._s['paused_until']}")
        elif idx_ts is None or not math.isfinite(m["spot"]):
            pause = ("pause.no_index", "no index price received yet")
        elif self._s["index_stale"] or now - idx_ts > cfg.safety.max_index_age_s * 1000:
            pause = ("pause.stale_index", f"index is {(now - idx_ts) / 1000:.1f}s old (max {cfg.safety.max_index_age_s:g}s)")
        elif mm > cfg.safety.max_margin_usage:
            pause = ("pause.margin", f"maintenance margin usage {mm:.1%} above {cfg.safety.max_margin_usage:.0%}")
        if pause is not None:
            intents = self._abort_work(pause[1])
            self._s["pause_reason"] = pause[0]
            self._record(now, "pause", pause[0], pause[1], inputs, intents)
            return intents
        if self._s["pause_reason"]:
            self._s["pause_reason"] = ""
            self._s["rejects"] = 0

        if self.working:
            w = HedgeWork.from_dict(self._s["work"])
            # The book moved the other way: what is left of the hedge would now add risk. "The other way" is past
            # the hedge's guard: the target, or an over-hedge's (hedge_ratio > 1) end point beyond it, which the
            # fills themselves are meant to cross.
            guard, guard_what = self._guard_of(w)
            inputs["guard"] = guard
            if not w.done and (unit_delta - guard) * (1 if w.side == "sell" else -1) < 0:
                intents = w.abort(f"delta crossed {guard_what}, rest of the hedge dropped")
                self._s["work"] = w.to_dict()
                self._record(now, "cancel", "hedge.crossed", w.outcome, inputs, intents)
                return intents
            intents = w.step(now, self._quote(view, w.instrument, w.venue), cfg.execution)
            self._s["work"] = w.to_dict()
            why = f"hedge {w.seq}: {w.remaining} of {w.total} {w.instrument} left"
            if intents:
                why += "; " + "; ".join(i.reason for i in intents)
            self._record(now, "working", "hedge.working", why, inputs, intents)
            return intents
        self._close_work()

        hedge_name, venue, quote = self._pick_instrument(view, unit_delta)
        if hedge_name is None:
            self._record(now, "none", "none.no_instrument", "no hedge instrument with a usable quote", inputs)
            return []
        cost = cfg.band.cost
        if cost is None:
            cost = _cost_estimate(hedge_name, quote)
        band = make_band(cfg.band, cfg.target_delta, gamma_coin=m["gamma_coin"], spot=m["spot"], cost=cost, unit=cfg.delta_unit)
        inputs.update(band_lower=band.lower, band_upper=band.upper, inner_lower=band.inner_lower, inner_upper=band.inner_upper,
                      half_width=band.half_width, cost=cost, instrument=hedge_name, venue=venue)
        self._s["last"]["band"] = {"lower": band.lower, "upper": band.upper, "ts": now, "delta": unit_delta}

        sched_before = self._s["last_scheduled_ms"]
        held = self._over_hedge_hold(unit_delta, band)  # every check: it also forgets an over-hedge delta came back from
        trigger, to, use = self._trigger(now, unit_delta, band)
        if force:
            trigger, to, use, held = "manual hedge", "target", band, None
        if trigger is None:
            self._record(now, "none", "none.inside_band", f"delta {unit_delta:+.4f} inside [{band.lower:+.4f}, {band.upper:+.4f}]", inputs)
            return []
        if held is not None:
            inputs["over_hedge_end"] = held
            self._record(now, "none", "none.over_hedged",
                         f"{trigger}, but delta {unit_delta:+.4f} is within the last over-hedge's range (end point {held:+.4f}, "
                         f"hedge_ratio {cfg.hedge_ratio:.0%}): not bought back", inputs)
            return []
        last_spot = self._s["last_hedge_spot"]
        if cfg.band.min_move_pct > 0 and last_spot and not force:
            move = abs(m["spot"] / last_spot - 1) * 100
            inputs["move_pct"] = move
            if move < cfg.band.min_move_pct:
                self._record(now, "none", "none.small_move", f"{trigger}, but the underlying moved only {move:.2f}% since the last hedge (< {cfg.band.min_move_pct:g}%)", inputs)
                return []
        size = hedge_size(unit_delta, use, cfg.target_delta, cfg.hedge_ratio, to)
        size_coin = size if cfg.delta_unit == "coin" else size / m["spot"]
        inputs["wanted_coin"] = size_coin

        if len(self._s["hour"]) >= cfg.limits.max_hedges_per_hour:
            self._record(now, "none", "none.limit_rate", f"{trigger}, but {len(self._s['hour'])} hedges in the last hour (max {cfg.limits.max_hedges_per_hour})", inputs)
            return []
        used = sum(h[1] for h in self._s["hour"])
        room_usd = cfg.limits.max_notional_per_hour - used
        clipped: list[str] = []
        if abs(size_coin) * m["spot"] > room_usd:
            size_coin = math.copysign(max(room_usd, 0.0) / m["spot"], size_coin)
            clipped.append(f"notional per hour ({used:,.0f} of {cfg.limits.max_notional_per_hour:,.0f} USD used)")
        pos_coin = self._position_coin(view, hedge_name, m["spot"])
        max_pos_coin = cfg.limits.max_position
        if abs(pos_coin + size_coin) > max_pos_coin:
            allowed = math.copysign(max_pos_coin, pos_coin + size_coin) - pos_coin
            if allowed * size_coin <= 0:
                size_coin = 0.0
            else:
                size_coin = allowed
            clipped.append(f"max position {cfg.limits.max_position:g} coin in {hedge_name}")
        inputs["position_coin"] = pos_coin
        ref = _mid(quote) or m["spot"]
        amount = _to_amount(hedge_name, abs(size_coin), ref)
        if amount <= 0:
            why = f"{trigger}, but the hedge ({size_coin:+.5f} coin) rounds below one lot of {hedge_name}"
            if clipped:
                why = f"{trigger}, but limited to nothing by " + ", ".join(clipped)
            self._record(now, "none", "none.limit" if clipped else "none.below_lot", why, inputs)
            return []

        side = Side.BUY if size_coin > 0 else Side.SELL
        clip_coin = cfg.limits.max_order_size if cfg.execution.twap_clip is None else min(cfg.execution.twap_clip, cfg.limits.max_order_size)
        clip_amt = _to_amount(hedge_name, clip_coin, ref)
        inst = Instrument.parse(hedge_name)
        clip_amt = max(clip_amt, inst.min_amount)
        seq = self._s["seq"] + 1
        w = HedgeWork(
            seq=seq, instrument=hedge_name, venue=venue, side=side.value, total=str(amount), remaining=str(amount),
            ref_mid=ref, index=m["spot"], started_ms=now, next_clip_ms=now, clip=str(clip_amt), account=cfg.account,
        )
        intents = w.step(now, quote, cfg.execution)
        self._s["work"] = w.to_dict()
        # Where the hedge means to take delta (delta units): past the target when hedge_ratio > 1.
        end = unit_delta + (size_coin if cfg.delta_unit == "coin" else size_coin * m["spot"])
        beyond = (cfg.target_delta - end) * (1 if side is Side.SELL else -1) > 0
        # The limits, the last-hedge spot and the totals are taken when the venue has one of its orders
        # (_on_order); a dry-run answer leaves them as they were, and gives the time rule its schedule back.
        self._s["plan"] = {
            "seq": seq, "ts": now, "notional": abs(size_coin) * m["spot"], "spot": m["spot"], "live": False, "dry": False,
            "keys": [], "guard": end if beyond else cfg.target_delta, "end": end, "side": side.value, "over": beyond,
            "scheduled": trigger == "scheduled hedge", "sched_before": sched_before,
        }
        inputs.update(side=side.value, amount=str(amount), ref_mid=ref, clip=str(clip_amt), end=end)
        why = f"{trigger}: {side.value} {amount} {hedge_name} to bring delta {unit_delta:+.4f} {'to the band edge' if to == 'edge' else 'to the target'}"
        if cfg.hedge_ratio != 1.0:
            why += f" at {cfg.hedge_ratio:.0%} of the deviation"
        if clipped:
            why += " (clipped by " + ", ".join(clipped) + ")"
        self._record(now, "hedge", "hedge." + trigger.split(":")[0].replace(" ", "_"), why, inputs, intents)
        return intents

    def _trigger(self, now: int, delta: float, band: Band) -> tuple[str | None, str, Band]:
        cfg = self.cfg
        to = cfg.band.rehedge_to or ("edge" if cfg.band.rule == "whalley_wilmott" else "target")
        if band.outside(delta):
            return "outside band", to, band
        if cfg.band.rule == "time":
            last = self._s["last_scheduled_ms"]
            if last is None:
                self._s["last_scheduled_ms"] = now
                return None, to, band
            if now - last >= cfg.band.interval_s * 1000:
                # Taken now (a blocked scheduled hedge waits for the next interval), given back if the hedge turns
                # out not to be sent (dry run): see _on_order.
                self._s["last_scheduled_ms"] = now
                if band.outside_inner(delta):
                    inner = Band(band.inner_lower, band.inner_upper, band.inner_lower, band.inner_upper, band.rule)
                    return "scheduled hedge", to, inner
        return None, to, band

    def _guard_of(self, w: HedgeWork) -> tuple[float, str]:
        """The delta level (delta units) past which the rest of hedge ``w`` would add risk, and its name."""
        plan = self._s["plan"]
        if plan is not None and plan["seq"] == w.seq and plan.get("over"):
            return float(plan["guard"]), f"the over-hedge's end point {plan['guard']:+.4f}"
        return self.cfg.target_delta, "the target"

    def _over_hedge_hold(self, delta: float, band: Band) -> float | None:
        """The last live over-hedge's end point (delta units) when ``delta`` still lies in its range, else None.

        An over-hedge (hedge_ratio > 1) leaves delta past the target on purpose; trading it back at the next check
        would undo it at twice the cost. Its range runs from the target to its end point plus the band's width on
        that side; the memory ends once delta comes back across the target, or leaves the range.
        """
        over = self._s["over"]
        if over is None:
            return None
        target = self.cfg.target_delta
        s = -1.0 if over["side"] == "sell" else 1.0  # the direction the over-hedge moved delta
        if (delta - target) * s <= 0:
            self._s["over"] = None
            return None
        width = (target - band.lower) if s < 0 else (band.upper - target)
        if (delta - (over["end"] + s * width)) * s > 0:
            self._s["over"] = None
            return None
        return float(over["end"])

    # -- instruments ----------------------------------------------------------------------------------
    def _quote(self, view: DeskView, name: str, venue: str | None) -> Quote | None:
        return view.quote(name, venue) if venue is not None and len(self.cfg.instrument.venues) > 1 else view.quote(name)

    def _pick_instrument(self, view: DeskView, delta: float) -> tuple[str | None, str | None, Quote | None]:
        """Hedge instrument and venue: the configured one, or the cheapest by carry; the venue with the best price."""
        cfg = self.cfg
        now = view.now_ms()
        buy = delta < cfg.target_delta  # we are short delta: buy the hedge
        best: tuple[float, str, str | None, Quote] | None = None
        spot = self._spot(view)
        for name in cfg.hedge_candidates():
            try:
                inst = Instrument.parse(name)
            except InvalidInstrument:
                continue
            if inst.expiry_ms is not None and inst.expiry_ms - now < cfg.instrument.min_days_to_expiry * MS_PER_DAY:
                continue
            for venue in cfg.instrument.venues:
                q = self._quote(view, name, venue)
                mid = _mid(q)
                if q is None or mid is None:
                    continue
                price = (q.ask if buy else q.bid) or mid
                # Carry: annualised premium over the index, paid when long the hedge, earned when short.
                carry = 0.0
                if cfg.instrument.mode == "cheapest_carry" and spot and math.isfinite(spot):
                    prem = mid / spot - 1.0
                    years = inst.years_to_expiry(now)
                    carry = prem * 3 * 365 if math.isinf(years) else prem / max(years, 1e-6)
                    carry = carry if buy else -carry
                # Venue choice: cheaper to buy / dearer to sell, as a fraction of mid.
                score = carry + (price / mid - 1.0 if buy else 1.0 - price / mid)
                if best is None or score < best[0]:
                    best = (score, name, venue, q)
        if best is None:
            return None, None, None
        return best[1], (best[2] if len(cfg.instrument.venues) > 1 else None), best[3]

    def _position_coin(self, view: DeskView, name: str, spot: float) -> float:
        # Undecayed: max_position limits what is held in the instrument, not its delta in a settlement window.
        for p in view.positions():
            if p.instrument == name and p.account == self.cfg.account:
                return _coin_delta_of(name, p.size, p.mark or spot)
        return 0.0

    # -- orders and fills -----------------------------------------------------------------------------
    def _abort_work(self, reason: str) -> list[Intent]:
        w = self._s["work"]
        if w is None:
            return []
        hw = HedgeWork.from_dict(w)
        if hw.done and hw.child is None:
            return []
        intents = hw.abort(reason)
        self._s["work"] = hw.to_dict()
        return intents

    def _close_work(self) -> None:
        w = self._s["work"]
        if w is not None and w["done"] and w["child"] is None:
            self._s["last"]["work"] = {"seq": w["seq"], "outcome": w["outcome"], "filled": w["filled"], "total": w["total"]}
            self._s["work"] = None

    def _count(self, key: str, status: OrderStatus, reject_code: str | None) -> None:
        """Count the order ``key`` of the current hedge once: live (sent) or dry run; the hedge goes live (and
        against the limits) with the first order the venue took."""
        plan = self._s["plan"]
        if plan is None or key.split(".")[0] != str(plan["seq"]) or reject_code == "not_sent":
            return
        tot = self._s["totals"]
        new = key not in plan["keys"]
        if new:
            plan["keys"].append(key)
        if reject_code == "dry_run":
            if new:
                tot["dry_run_orders"] = tot.get("dry_run_orders", 0) + 1
            if not plan["live"] and not plan["dry"]:
                plan["dry"] = True
                tot["dry_run_hedges"] = tot.get("dry_run_hedges", 0) + 1
                if plan["scheduled"]:
                    # Not sent: the scheduled hedge is still due.
                    self._s["last_scheduled_ms"] = plan["sched_before"]
            return
        if new:
            tot["orders"] += 1
        if status is not OrderStatus.REJECTED and not plan["live"]:
            plan["live"] = True
            self._s["hour"].append([plan["ts"], plan["notional"]])
            self._s["last_hedge_ms"] = plan["ts"]
            self._s["last_hedge_spot"] = plan["spot"]
            self._s["over"] = {"side": plan["side"], "end": plan["end"]} if plan["over"] else None
            tot["hedges"] += 1

    def _on_order(self, event: OrderUpdate, view: DeskView) -> list[Intent]:
        key = key_of(event.order.request.client_order_id)
        w = self._s["work"]
        if key is None or w is None:
            return []
        order = event.order
        now = view.now_ms()
        self._count(key, order.status, order.reject_code)
        hw = HedgeWork.from_dict(w)
        before = hw.child
        res = hw.on_order(key, order.status, order.filled, order.reject_code, now, self.cfg.execution)
        intents: list[Intent] = []
        inputs: dict[str, Any] = {
            "hedge": hw.seq, "instrument": hw.instrument, "venue": hw.venue, "side": hw.side, "total": hw.total,
            "order": key, "order_status": order.status.value, "order_filled": str(order.filled), "reject_code": order.reject_code,
        }
        if res == "rejected":
            self._s["rejects"] += 1
            if self._s["rejects"] >= self.cfg.safety.max_rejects:
                self._s["paused_until"] = now + int(self.cfg.safety.reject_cooldown_s * 1000)
                intents = hw.abort(f"{self._s['rejects']} consecutive rejects (last: {order.reject_code})")
                inputs.update(rejects=self._s["rejects"], paused_until=self._s["paused_until"])
                self._record(now, "pause", "pause.rejects", hw.outcome, inputs, intents)
        elif order.status in (OrderStatus.OPEN, OrderStatus.FILLED):
            self._s["rejects"] = 0
        if not intents and not hw.done and hw.child is None:
            quote = self._quote(view, hw.instrument, hw.venue)
            intents = hw.step(now, quote, self.cfg.execution)
            if intents:
                # Orders placed from order events are decisions too: the journal shows every order sent.
                code = _follow_up_code(before, order.status, hw.child, self.cfg.execution.style)
                inputs.update(remaining=hw.remaining, filled=hw.filled, payups=hw.payups, clip=hw.clip, ref_mid=hw.ref_mid,
                              bid=None if quote is None else quote.bid, ask=None if quote is None else quote.ask,
                              previous=None if before is None else before["kind"])
                why = f"hedge {hw.seq}: {hw.remaining} of {hw.total} {hw.instrument} left after {key} {order.status.value}; " + \
                    "; ".join(i.reason for i in intents)
                self._record(now, "working", code, why, inputs, intents)
        self._s["work"] = hw.to_dict()
        return intents

    def _on_fill(self, event: FillEvent, view: DeskView) -> list[Intent]:
        f = event.fill
        if f.trade_id in self._s["seen_fills"]:
            return []
        key = key_of(f.client_order_id)
        self._s["seen_fills"] = (self._s["seen_fills"] + [f.trade_id])[-256:]
        tot = self._s["totals"]
        tot["fills"] += 1
        w = self._s["work"]
        index = self._s["index"] or float(f.price)
        if w is not None and key is not None and key.split(".")[0] == str(w["seq"]):
            hw = HedgeWork.from_dict(w)
            before = (hw.fees_usd, hw.slippage_usd, hw.notional_usd)
            hw.on_fill(f.trade_id, key, f.price, f.amount, f.fee, f.fee_currency, index)
            tot["fees_usd"] += hw.fees_usd - before[0]
            tot["slippage_usd"] += hw.slippage_usd - before[1]
            tot["notional_usd"] += hw.notional_usd - before[2]
            self._s["work"] = hw.to_dict()
        else:
            # A fill of an older hedge (e.g. reported after a restart): fees still count.
            inst = _parse(f.instrument)
            fee = float(f.fee)
            tot["fees_usd"] += fee * index if inst is not None and f.fee_currency == inst.base else fee
            tot["notional_usd"] += float(f.amount) if inst is not None and inst.inverse else float(f.amount * f.price)
        return []


# -- helpers --------------------------------------------------------------------------------------------


def _parse(name: str) -> Instrument | None:
    try:
        return Instrument.parse(name)
    except InvalidInstrument:
        return None


def _base_of(name: str) -> str:
    inst = _parse(name)
    return inst.base if inst is not None else name.split("-")[0].split("_")[0]


def _kind_of(name: str) -> Kind | None:
    inst = _parse(name)
    return None if inst is None else inst.kind


def _coin_delta_of(name: str, size: float, price: float, *, now_ms: int | None = None) -> float:
    """Coin delta of a future/perpetual/spot position: USD size / price for inverse, size for linear; with
    ``now_ms`` (epoch ms), decayed in the future's settlement window as the desk book's greeks are
    (:func:`app.portfolio_view.delta_decay`, deribit.md §1.7)."""
    inst = _parse(name)
    if inst is None:
        return 0.0
    if inst.inverse:
        d = float(size) / price if price and math.isfinite(price) else 0.0
    else:
        d = float(size)
    return d if now_ms is None else d * delta_decay(inst.expiry_ms, now_ms)


def _follow_up_code(before: dict[str, Any] | None, status: OrderStatus, child: dict[str, Any] | None, style: str) -> str:
    """Decision code of an order placed after order ``before`` ended with ``status``: the next TWAP clip after a
    fill, a pay-up or the IOC fallback after a cancelled limit, else a retry (reject, lost send, venue cancel)."""
    if child is None:
        return "hedge.working"
    if status is OrderStatus.FILLED:
        return "hedge.clip"
    if status is OrderStatus.REJECTED or before is None:
        return "hedge.retry"
    if child["kind"] == "ioc" and style != "market":
        return "hedge.ioc"
    if child["kind"] == "limit":
        return "hedge.payup"
    return "hedge.retry"


def _mid(q: Quote | None) -> float | None:
    if q is None:
        return None
    if q.bid and q.ask and q.bid > 0 and q.ask > 0:
        return (q.bid + q.ask) / 2
    return q.mark_price or q.bid or q.ask or None


def _cost_estimate(name: str, q: Quote | None) -> float:
    """One-way cost fraction: taker fee plus half the quoted spread over mid."""
    inst = _parse(name)
    fee = float(inst.taker_fee) if inst is not None else 5e-4
    mid = _mid(q)
    half = 0.0
    if q is not None and mid and q.bid and q.ask:
        half = (q.ask - q.bid) / (2 * mid)
    return fee + max(half, 0.0)


def _to_amount(name: str, coin: float, price: float) -> Decimal:
    """Coin exposure -> order amount in instrument units (USD for inverse futures), rounded down to lots."""
    inst = Instrument.parse(name)
    if not math.isfinite(coin) or coin <= 0 or not price or not math.isfinite(price):
        return Decimal("0")
    # A relative nudge so that 0.1 BTC x 40,000 (3999.9999...) is 4,000 and not 3,990.
    raw = (coin * price if inst.inverse else coin) * (1 + 1e-9)
    lots = (Decimal(repr(raw)) / inst.min_amount).to_integral_value(rounding=ROUND_FLOOR)
    return lots * inst.min_amount
