"""The alert engine: runs the rules after each ingest batch (at most a few times a second) and on
a timer, applies hygiene (mute, cooldown, hysteresis, quiet hours) and records every decision
together with its outbox row in one transaction, so a restart neither loses nor repeats one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from bot import messages
from bot.alert import Alert
from bot.arming import Arming
from bot.derivatives import Derivatives
from bot.events import Liquidation
from bot.market import MarketState
from bot.norms import Norms
from bot.recorder import now_ms
from bot.rules import Evaluation, RuleBook, Snapshot, StateKey, Trigger
from bot.subscriptions import Subscription, is_quiet
from storage import alerts
from storage.alerts import HELD, PENDING, OutboxItem, RuleState

log = logging.getLogger(__name__)

MIN_PASS_INTERVAL = 0.25  # seconds between passes triggered by liquidations
FULL_PASS_INTERVAL = 10.0  # funding, open interest and re-arming are checked at least this often
DIGEST_GRACE_MINUTES = 10  # a digest missed by a restart is still sent this long after its time
MS_PER_MINUTE = 60_000


class AlertEngine:
    def __init__(
        self,
        db: Database,
        market: MarketState,
        norms: Norms,
        derivatives: Derivatives,
        on_enqueued: Callable[[set[str]], None] = lambda platforms: None,
    ) -> None:
        self.db = db
        self.market = market
        self.norms = norms
        self.derivatives = derivatives
        self.on_enqueued = on_enqueued
        self.book = RuleBook(alerts.active_subscriptions(db))
        self.states = alerts.load_rule_states(db)
        self._whales: list[Liquidation] = []
        self._wake = asyncio.Event()
        self._market_data_changed = True
        self.decided: Counter[str] = Counter()  # alerts recorded, by rule (for metrics)

    @property
    def states(self) -> dict[StateKey, RuleState]:
        """Every rule's state; owned by the engine (assign a new dict rather than edit it)."""
        return self._states

    @states.setter
    def states(self, states: dict[StateKey, RuleState]) -> None:
        self._states = states
        self.arming = Arming(self.book, states)

    def reload_subscriptions(self) -> None:
        self.book = RuleBook(alerts.active_subscriptions(self.db))
        self.arming = Arming(self.book, self.states)

    def on_liquidations(self, events: list[Liquidation]) -> None:
        minimum = self.book.min_whale
        self._whales += [event for event in events if event.usd >= minimum]
        self._wake.set()

    def on_market_data(self) -> None:
        self._market_data_changed = True
        self._wake.set()

    async def run(self) -> None:
        last_pass = last_full = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FULL_PASS_INTERVAL)
            if time.monotonic() - last_full >= FULL_PASS_INTERVAL:
                self._market_data_changed = True  # a full pass at least this often, busy or not
            delay = last_pass + MIN_PASS_INTERVAL - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._wake.clear()
            last_pass = time.monotonic()
            if self._market_data_changed:
                last_full = last_pass
            self.evaluate(now_ms())

    def evaluate(self, now: int) -> int:
        """One pass over every rule; returns how many alerts were recorded."""
        full, self._market_data_changed = self._market_data_changed, False
        whales, self._whales = self._whales, []
        self.market.advance(now)
        snap = Snapshot(self.market, self.norms, self.derivatives, now)
        rearmed = self.arming.rearm(snap, self.states, include_market_data=full)
        self.states.update(rearmed)
        evaluation = Evaluation(self.book, snap, self.states, self.arming)
        self.arming.settled = None  # until this pass is recorded
        evaluation.liquidations(whales)
        if full:
            evaluation.funding_and_open_interest()
        items, fired = self._outbox_items(evaluation.triggers, now)
        added = self._record(items, rearmed | fired, now)
        self.arming.disarm(evaluation.fired)  # recorded: those rules are now disarmed
        self.arming.settled = evaluation.settled
        return added

    def _outbox_items(
        self, triggers: list[Trigger], now: int
    ) -> tuple[list[OutboxItem], dict[StateKey, RuleState]]:
        """One message per chat and rule in a pass; the states the firing rules move to."""
        grouped: defaultdict[tuple[str, str], list[Trigger]] = defaultdict(list)
        fired: dict[StateKey, RuleState] = {}
        for trigger in triggers:
            chat, rule = trigger.sub.key, trigger.rule
            grouped[chat, rule].append(trigger)
            # A single liquidation has no level to fall back from: whales only cool down.
            fired[chat, rule, trigger.asset] = RuleState(rule == "whale", now)
        items = []
        minute = now // MS_PER_MINUTE
        for (chat, rule), group in grouped.items():
            sub = group[0].sub
            assets = ",".join(sorted({t.asset for t in group}))
            items.append(
                self._item(
                    sub,
                    f"{chat}|{rule}|{assets}|{minute}",
                    rule,
                    assets,
                    group[0].alert.side,
                    tuple(t.alert for t in group),
                    now,
                )
            )
        return items, fired

    @staticmethod
    def _item(
        sub: Subscription,
        key: str,
        rule: str,
        asset: str,
        side: str | None,
        message: tuple[Alert, ...],
        now: int,
    ) -> OutboxItem:
        status = HELD if is_quiet(sub, now) else PENDING
        return OutboxItem(key, sub.platform, sub.chat_id, rule, asset, side, message, status)

    def _record(
        self,
        items: list[OutboxItem],
        states: dict[StateKey, RuleState],
        now: int,
        merged_ids: Iterable[int] = (),
    ) -> int:
        if not items and not states:
            return 0
        with self.db.atomic():
            added = alerts.enqueue(self.db, items, now)
            alerts.save_rule_states(self.db, states)
            alerts.mark_merged(self.db, merged_ids, now)
        self.states.update(states)
        self.decided.update(item.rule for item in items)
        if items:
            log.info("%d alert(s) recorded", added)
            self.on_enqueued({item.platform for item in items})
        return added

    def scheduled(self, now: int) -> int:
        """Digests that are due and summaries of alerts held back by quiet hours that ended.
        Keys carry the local date or hour, so a repeated call sends nothing twice."""
        items: list[OutboxItem] = []
        merged: list[int] = []
        self.market.advance(now)
        funding = self.derivatives.extreme_funding_by_base()
        interest = self.derivatives.open_interest_by_base()
        snap = Snapshot(self.market, self.norms, self.derivatives, now)
        for sub in self.book.by_key.values():
            muted = sub.mute_until is not None and now < sub.mute_until
            due = None if muted else self._due_digest(sub, now)
            if due is not None:
                key, title, windows = due
                views = [snap.view(window, sub.watch) for window in windows]
                alert = messages.digest(title, views, funding, interest)
                items.append(self._item(sub, key, "digest", "*", None, (alert,), now))
        for (platform, chat_id), rows in alerts.held(self.db).items():
            quiet_chat = self.book.by_key.get(f"{platform}:{chat_id}")
            if quiet_chat is not None and is_quiet(quiet_chat, now):
                continue
            summary = messages.quiet_summary([row.alerts[0].first_line for row in rows])
            key = f"{platform}:{chat_id}|quiet|{rows[0].id}"
            items.append(OutboxItem(key, platform, chat_id, "quiet", "*", None, (summary,)))
            merged += [row.id for row in rows]
        return self._record(items, {}, now, merged)

    @staticmethod
    def _due_digest(sub: Subscription, now: int) -> tuple[str, str, tuple[str, ...]] | None:
        """(outbox key, title, windows) when the chat's digest is due now: within the grace
        minutes after its time (a digest at 23:55 is still due at 00:02)."""
        if sub.digest == "off":
            return None
        local = datetime.fromtimestamp(now / 1000, ZoneInfo(sub.timezone))
        if sub.digest == "hourly":
            if local.minute >= DIGEST_GRACE_MINUTES:
                return None
            return f"{sub.key}|digest|{local:%Y-%m-%dT%H}", "Hourly digest", ("1h",)
        hour, minute = (int(part) for part in sub.digest.removeprefix("daily ").split(":"))
        due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if due > local:
            due -= timedelta(days=1)
        if local - due >= timedelta(minutes=DIGEST_GRACE_MINUTES):
            return None
        return f"{sub.key}|digest|{due:%Y-%m-%d}", "Daily digest", ("24h", "1h")
