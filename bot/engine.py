"""The alert engine: runs the rules after each ingest batch (at most a few times a second) and on
a timer, applies hygiene (mute, cooldown, hysteresis, quiet hours) and records every decision
together with its outbox row in one transaction, so a restart neither loses nor repeats one.

The loop never waits on it for long: a pass yields between slices of groups and of outbox items,
the transaction runs on the writer's thread, and rule states change in memory only once it has
committed (a failed write changes nothing, and the next pass decides again). A settings change
updates the rule index for that one chat (`subscription_changed`).

Starting never floods the outbox: a chat that subscribes while one of its level rules (window,
spike, funding, open interest) is already over its threshold, and every chat of a fresh
deployment (no rule state recorded yet), gets that rule recorded disarmed without a message at
the next pass: it fires at the next crossing. Whale alerts are single new events and fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from bot import cascade, heap, messages
from bot.alert import Alert
from bot.arming import LEVEL_RULES, Arming
from bot.clock import SYSTEM, Clock
from bot.derivatives import Derivatives
from bot.escalation import escalation_steps
from bot.market import MarketState
from bot.model import HELD, PENDING, Liquidation, OutboxItem, RuleState, Story, Subscription
from bot.norms import Norms
from bot.rulebook import MARKET, RuleBook, StateKey
from bot.rules import Evaluation, Trigger
from bot.snapshot import Snapshot
from bot.subscriptions import is_quiet
from bot.writer import Writer
from storage import alerts

log = logging.getLogger(__name__)
T = TypeVar("T")

MIN_PASS_INTERVAL = 0.25  # seconds between passes triggered by liquidations
FULL_PASS_INTERVAL = 10.0  # funding, open interest and re-arming are checked at least this often
STORY_MERGE_MS = 60_000  # a spike alert within this of a window alert is the same story
DIGEST_GRACE_MINUTES = 10  # a digest missed by a restart is still sent this long after its time
MS_PER_MINUTE = 60_000
SLICE_CHATS = 250  # chats whose outbox items are built between two yields to the loop
SLICE_FIRED = 500  # firings applied to the index between two yields (a fresh deployment's
# make a context each: 2,000 of them were a 10-25 ms step)
SLICE_TRIGGERS = 1000  # triggers sorted out between two yields
SLICE_STATES = 10_000  # committed rule states applied to memory between two yields
SLICE_DROP = 10_000  # triggers of a pass freed between two yields (50,000: 25 ms)
BULK_STATES = 10_000  # a pass that records more rule states freezes them (see bot.heap)
PRIMED = RuleState(False, 0)  # over its threshold when the chat arrived: disarmed, never fired


@dataclass(frozen=True, slots=True)
class Index:
    """What the engine starts from, read from storage and built by `read_index` (in `liqbot
    run`, on the writer's thread: see bot.core.load_start)."""

    book: RuleBook
    states: dict[StateKey, RuleState]
    arming: Arming
    open: set[str]  # chats whose window story may escalate
    stories: dict[str, Story]  # open cascades, to close with a summary
    arriving: set[str]  # chats whose rules already over threshold start disarmed


def read_index(db: Database) -> Index:
    book, states = RuleBook(alerts.active_subscriptions(db)), alerts.load_rule_states(db)
    # A fresh deployment (no rule state recorded): every chat is arriving (see the module's note).
    arriving = set() if states else set(book.by_key)
    stories = alerts.load_stories(db)
    return Index(book, states, Arming(book, states), _open_stories(states), stories, arriving)


class AlertEngine:
    def __init__(
        self,
        db: Database,
        market: MarketState,
        norms: Norms,
        derivatives: Derivatives,
        index: Index,
        on_enqueued: Callable[[set[str]], None] = lambda platforms: None,
        writer: Writer | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.db = db
        self.market = market
        self.norms = norms
        self.derivatives = derivatives
        self.on_enqueued = on_enqueued
        self.writer = writer if writer is not None else Writer.inline(db)
        self.clock = clock
        self.book, self._states, self.arming = index.book, index.states, index.arming
        self._open = index.open
        self._stories = index.stories
        self._arriving = index.arriving
        self._largest: dict[str, Liquidation] = {}  # per base, since the last pass
        self._whales: list[Liquidation] = []
        self._wake = asyncio.Event()
        self._market_data_changed = True
        self._in_pass = False
        self._changes: list[Subscription] = []  # settings changes that came during a pass
        self.decided: Counter[str] = Counter()  # alerts recorded, by rule (for metrics)

    @property
    def states(self) -> dict[StateKey, RuleState]:
        """Every rule's state; owned by the engine (assign a new dict rather than edit it)."""
        return self._states

    @states.setter
    def states(self, states: dict[StateKey, RuleState]) -> None:
        self._states = states
        self._open = _open_stories(states)
        self.arming = Arming(self.book, states)

    def reload_subscriptions(self) -> None:
        """Rebuild the rule index from storage (tools and tests; `liqbot run` uses
        `subscription_changed`)."""
        self.book = RuleBook(alerts.active_subscriptions(self.db))
        self.arming = Arming(self.book, self.states)

    def subscription_changed(self, sub: Subscription) -> None:
        """A chat's settings were saved (inactive: its alerts stopped): update the index for
        that chat alone. During a pass the change waits for the pass to end."""
        if self._in_pass:
            self._changes.append(sub)
            return
        if sub.active and sub.key not in self.book.by_key:
            self._arriving.add(sub.key)
        elif not sub.active:
            self._arriving.discard(sub.key)
        self.arming.regroup(self.book.update(sub))
        self._wake.set()

    def has_settled(self, chat_key: str) -> bool:
        """Whether the chat has been through a pass since it subscribed (until then a rule it
        finds over threshold starts disarmed)."""
        return chat_key not in self._arriving

    def on_liquidations(self, events: list[Liquidation]) -> None:
        """A frame's events: the whales for the next pass, and each base's largest since the
        last pass. One loop per frame: this runs for every frame of every venue."""
        minimum = self.book.min_whale
        largest = self._largest
        for event in events:
            usd = event.usd
            if usd >= minimum:
                self._whales.append(event)
            seen = largest.get(event.base)
            if seen is None or usd > seen.usd:
                largest[event.base] = event
        self._wake.set()

    def on_market_data(self) -> None:
        self._market_data_changed = True
        self._wake.set()

    async def run(self) -> None:
        clock = self.clock
        last_pass = last_full = -FULL_PASS_INTERVAL
        while True:
            await clock.wait(self._wake, FULL_PASS_INTERVAL)
            if clock.monotonic() - last_full >= FULL_PASS_INTERVAL:
                self._market_data_changed = True  # a full pass at least this often, busy or not
            delay = last_pass + MIN_PASS_INTERVAL - clock.monotonic()
            if delay > 0:
                await clock.sleep(delay)
            self._wake.clear()
            last_pass = clock.monotonic()
            if self._market_data_changed:
                last_full = last_pass
            try:
                await self.evaluate(clock.now_ms())
            except sqlite3.Error as error:
                log.warning("alert pass not recorded (%s); deciding again next pass", error)
                self._wake.set()

    async def evaluate(self, now: int) -> int:
        """One pass over every rule; returns how many alerts were recorded. If recording
        fails, the engine is as before the pass (the whales seen are kept for the next)."""
        self._in_pass = True
        bulk = len(self._arriving) > BULK_STATES  # a fresh deployment: see bot.heap
        try:
            with heap.bulk_build() if bulk else contextlib.nullcontext():
                return await self._evaluate(now)
        finally:
            self._in_pass = False
            changes, self._changes = self._changes, []
            for sub in changes:
                self.subscription_changed(sub)

    async def _evaluate(self, now: int) -> int:
        arriving = set(self._arriving)
        full = self._market_data_changed or bool(arriving)
        self._market_data_changed = False
        whales, self._whales = self._whales, []
        largest, self._largest = self._largest, {}
        biggest = cascade.Largest(largest)
        self.market.advance(now)
        snap = Snapshot(self.market, self.norms, self.derivatives, now)
        arming = self.arming
        rearming = arming.rearm(snap, self.states, include_market_data=full)
        evaluation = Evaluation(self.book, snap, self.states, arming)
        arming.settled = None  # until this pass is recorded
        try:
            for _ in evaluation.liquidation_steps(whales):
                await asyncio.sleep(0)
            if full:
                for _ in evaluation.funding_and_open_interest_steps():
                    await asyncio.sleep(0)
            escalated: list[Trigger] = []
            if self._open:
                stories = list(self._open)
                for _ in escalation_steps(stories, self.book, snap, self.states, escalated):
                    await asyncio.sleep(0)
            followed: dict[str, Story] = {}
            closing: list[tuple[Subscription, Story, Alert]] = []
            if self._stories:
                steps = cascade.follow_steps(
                    self._stories, self.book.by_key, snap, biggest, followed, closing
                )
                for _ in steps:
                    await asyncio.sleep(0)
            triggers: list[Trigger] = []
            fired: dict[StateKey, RuleState] = {}  # and, for arriving chats, primed
            made = [*evaluation.triggers, *escalated] if escalated else evaluation.triggers
            for start in range(0, len(made), SLICE_TRIGGERS):
                triggers += _set_apart(made[start : start + SLICE_TRIGGERS], arriving, fired)
                await asyncio.sleep(0)
            if fired:
                log.info("%d rule(s) already over threshold on arrival: disarmed", len(fired))
            items: list[OutboxItem] = []
            for chunk in _by_chat_slices(triggers):
                chunk_items, chunk_fired = self._outbox_items(chunk, now)
                items += chunk_items
                fired.update(chunk_fired)
                await asyncio.sleep(0)
            fired.update(rearming.states)  # no rule both re-arms and fires in one pass
            told, closed = await self._stories_told(items, followed, closing, biggest, now)
            bulk_states = len(fired) > BULK_STATES
            added = await self._record(items, fired, now, stories=(told, closed))
        except BaseException:
            self._whales = whales + self._whales
            for base, event in largest.items():
                self._largest.setdefault(base, event)
            self._market_data_changed |= full
            raise
        # Committed: now the rules' states and the stories change in memory.
        self._stories.update(followed)
        self._stories.update((story.chat, story) for story in told)
        for chat in closed:
            self._stories.pop(chat, None)
        if self.arming is arming:
            arming.apply(rearming)
            for start in range(0, len(evaluation.fired), SLICE_FIRED):
                arming.disarm(evaluation.fired[start : start + SLICE_FIRED])
                await asyncio.sleep(0)
            arming.settled = evaluation.settled
        else:  # the index was rebuilt during the pass: rebuild from the states
            self.arming = Arming(self.book, self.states)
        self._arriving -= arriving
        await _drop(made)  # (`evaluation.triggers` itself, unless escalations joined it)
        await _drop(evaluation.triggers)
        await _drop(evaluation.fired)
        if bulk_states:
            heap.freeze()  # a fresh deployment's states: long-lived, out of the collector's way
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
            # A window alert keeps the total it told: the story escalates from there.
            told = trigger.alert.figures.get("total_usd", 0.0) if rule == "window" else 0.0
            fired[chat, rule, trigger.asset] = RuleState(rule == "whale", now, told)
        items = []
        minute = now // MS_PER_MINUTE
        for (chat, rule), group in grouped.items():
            sub = group[0].sub
            message = tuple(t.alert for t in group)
            if rule == "spike" and self._told_by_window(grouped, chat, now):
                continue  # one story: the window alert tells it (and carries the ratio)
            if rule == "window" and (chat, "spike") in grouped:
                message = (messages.with_spike(message[0], grouped[chat, "spike"][0].alert),)
            elif rule in ("oi", "funding") and len(message) > 1:
                message = (messages.asset_lines(message),)
            assets = ",".join(sorted({t.asset for t in group}))
            items.append(
                self._item(
                    sub,
                    f"{chat}|{rule}|{assets}|{minute}",
                    rule,
                    assets,
                    group[0].alert.side,
                    message,
                    now,
                )
            )
        return items, fired

    def _told_by_window(
        self, grouped: Mapping[tuple[str, str], list[Trigger]], chat: str, now: int
    ) -> bool:
        """Whether a window alert of this pass, or one sent within the last minute, already
        tells the story of this chat's spike (a chat's spike and window rules share a window)."""
        if (chat, "window") in grouped:
            return True
        state = self._states.get((chat, "window", MARKET))
        return (
            state is not None
            and state.last_fired_at > 0
            and (now - state.last_fired_at < STORY_MERGE_MS)
        )

    async def _stories_told(
        self,
        items: list[OutboxItem],
        followed: Mapping[str, Story],
        closing: list[tuple[Subscription, Story, Alert]],
        largest: cascade.Largest,
        now: int,
    ) -> tuple[list[Story], list[str]]:
        """The stories window alerts of this pass open or tell, and the chats whose story closes;
        each closing story's summary joins `items` (unless the chat switched summaries off or is
        muted). A story told in this pass does not close in it. Yields every few stories (4,000
        opening in one cascade pass took 78 ms)."""
        told: dict[str, Story] = {}
        for number, item in enumerate(items):
            if number % SLICE_CHATS == SLICE_CHATS - 1:
                await asyncio.sleep(0)
            if item.rule == "window":
                chat = f"{item.platform}:{item.chat_id}"
                story = followed.get(chat) or self._stories.get(chat)
                if story is None:  # opened now: the largest liquidation of the opening pass
                    opened = cascade.told(None, chat, item.alerts[0], now)
                    story = cascade.with_largest(opened, largest.watched_by(self.book.by_key[chat]))
                told[chat] = cascade.told(story, chat, item.alerts[0], now)
        closed = []
        for sub, story, summary in closing:
            if sub.key in told:
                continue
            closed.append(sub.key)
            muted = sub.mute_until is not None and now < sub.mute_until
            if sub.summary and not muted:
                key = f"{sub.key}|summary|{story.started_at}"
                items.append(self._item(sub, key, "summary", "*", summary.side, (summary,), now))
        return list(told.values()), closed

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

    async def _record(
        self,
        items: list[OutboxItem],
        states: dict[StateKey, RuleState],
        now: int,
        merged_ids: Iterable[int] = (),
        stories: tuple[list[Story], list[str]] = ([], []),
    ) -> int:
        """Record the items and states in one transaction on the writer; then, committed, the
        states change in memory."""
        told, closed = stories
        if not items and not states and not closed:
            return 0
        merged = list(merged_ids)

        def write(db: Database) -> int:
            with db.atomic():
                added = alerts.enqueue(db, items, now)
                alerts.save_rule_states(db, states)
                alerts.mark_merged(db, merged, now)
                alerts.save_stories(db, told, closed)
            return added

        added = await self.writer.call(write)
        if len(states) <= SLICE_STATES:
            self._states.update(states)
            self._track_stories(states.items())
        else:  # a fresh deployment's hundreds of thousands
            await self._apply_states(states)
        self.decided.update(item.rule for item in items)
        if items:
            log.info("%d alert(s) recorded", added)
            self.on_enqueued({item.platform for item in items})
        return added

    async def _apply_states(self, states: dict[StateKey, RuleState]) -> None:
        """Committed states (many, and `states` is the caller's to give away) into memory, in
        slices. The smaller dict joins the bigger one: a fresh deployment's 610,000 added to the
        engine's near-empty dict made it grow and rehash hundreds of thousands of keys at once
        (a 40 ms step)."""
        into_old = len(states) <= len(self._states)
        pairs = iter(states.items())
        while chunk := list(islice(pairs, SLICE_STATES)):
            if into_old:
                self._states.update(chunk)
            self._track_stories(chunk)
            await asyncio.sleep(0)
        if not into_old:
            old = iter(self._states.items())
            while chunk := list(islice(old, SLICE_STATES)):
                for key, state in chunk:
                    states.setdefault(key, state)  # the committed new state wins
                await asyncio.sleep(0)
            self._states = states

    def _track_stories(self, states: Iterable[tuple[StateKey, RuleState]]) -> None:
        for (chat, rule, _), state in states:
            if rule != "window":
                continue
            if state.last_total > 0 and not state.armed:
                self._open.add(chat)
            else:
                self._open.discard(chat)

    async def scheduled(self, now: int) -> int:
        """Digests that are due and summaries of alerts held back by quiet hours that ended.
        Keys carry the local date or hour, so a repeated call sends nothing twice."""
        items: list[OutboxItem] = []
        merged: list[int] = []
        self.market.advance(now)
        funding = self.derivatives.extreme_funding_by_base()
        interest = self.derivatives.open_interest_by_base()
        snap = Snapshot(self.market, self.norms, self.derivatives, now)
        for number, sub in enumerate(list(self.book.by_key.values())):
            if number % SLICE_CHATS == SLICE_CHATS - 1:
                await asyncio.sleep(0)  # 100,000 chats' local times: in slices
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
        return await self._record(items, {}, now, merged)

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


def _open_stories(states: dict[StateKey, RuleState]) -> set[str]:
    return {
        chat
        for (chat, rule, _), state in states.items()
        if rule == "window" and state.last_total > 0 and not state.armed
    }


async def _drop(made: list[T]) -> None:
    """Free what a pass made from the end, in slices: a fresh deployment's 600,000 triggers
    freed at once, when the pass returned, held the loop for 100 ms."""
    while len(made) > SLICE_DROP:
        del made[-SLICE_DROP:]
        await asyncio.sleep(0)


def _set_apart(
    triggers: list[Trigger], arriving: set[str], primed: dict[StateKey, RuleState]
) -> list[Trigger]:
    """The triggers to send; the level rules of arriving chats go to `primed` instead, to be
    recorded disarmed."""
    if not arriving:
        return triggers
    kept = []
    for trigger in triggers:
        if trigger.sub.key in arriving and trigger.rule in LEVEL_RULES:
            primed[trigger.sub.key, trigger.rule, trigger.asset] = PRIMED
        else:
            kept.append(trigger)
    return kept


def _by_chat_slices(triggers: list[Trigger]) -> Iterator[list[Trigger]]:
    """The triggers in slices of SLICE_CHATS chats (a chat's triggers stay together)."""
    by_chat: defaultdict[str, list[Trigger]] = defaultdict(list)
    for trigger in triggers:
        by_chat[trigger.sub.key].append(trigger)
    chats = list(by_chat.values())
    for start in range(0, len(chats), SLICE_CHATS):
        yield [trigger for chat in chats[start : start + SLICE_CHATS] for trigger in chat]
