"""Which chats' thresholds the market crossed. Pure decisions: nothing here writes or sends.

The chats are indexed by `bot.rulebook` (grouped by window and watch list, sorted by each
threshold, so the chats a value crosses are a prefix found by bisection); the market is seen
through a `bot.snapshot.Snapshot`. Chats whose rule fired and is disarmed are set aside
(`bot.arming`), and a calm pass skips the groups whose values did not move. A pass over 100,000
chats therefore costs about one aggregate per group whose assets moved, plus a step per alert;
not a step per chat or rule state.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from bot import messages
from bot.alert import Alert
from bot.arming import Arming, Fired, Settled
from bot.model import Liquidation, RuleState, Subscription
from bot.rulebook import MARKET, Group, GroupKey, RuleBook, StateKey
from bot.snapshot import Snapshot

GROUPS_PER_STEP = 64  # groups (or funding/OI pairs) looked at between two yields to the loop
TRIGGERS_PER_STEP = 250  # or, sooner, once this many triggers were made


@dataclass(frozen=True, slots=True)
class Trigger:
    sub: Subscription
    rule: str
    asset: str
    alert: Alert


class Evaluation:
    """One pass: collects triggers for chats whose rules are armed and out of cooldown.

    `arming` (the engine's, kept in step with `states`) sets disarmed chats aside; `fired`
    lists the rules with a level that fired, to disarm once recorded, and `settled` what the
    next pass may skip."""

    def __init__(
        self,
        book: RuleBook,
        snap: Snapshot,
        states: dict[StateKey, RuleState],
        arming: Arming | None = None,
    ) -> None:
        self.book = book
        self.snap = snap
        self.states = states
        self.arming = arming if arming is not None else Arming(book, states)
        self.triggers: list[Trigger] = []
        self.fired: list[Fired] = []
        self.settled = Settled(snap.market.minute, snap.sides_seen, set())
        self._due = self.arming.due(snap)
        self._alerts: dict[tuple[str, str, str], Alert] = {}
        # One alert per (rule, window, watch list, asset) however many shards share it.
        self._made: dict[tuple[str, GroupKey, str], Alert] = {}

    def _may_fire(self, sub: Subscription, rule: str, asset: str) -> bool:
        if sub.mute_until is not None and self.snap.now < sub.mute_until:
            return False
        state = self.states.get((sub.key, rule, asset))
        if state is None:
            return True
        cooled = self.snap.now - state.last_fired_at >= sub.thresholds.cooldown * 1000
        return state.armed and cooled

    def _fire(self, subs: Iterable[Subscription], rule: str, asset: str, alert: Alert) -> None:
        for sub in subs:
            if self._may_fire(sub, rule, asset):
                self.triggers.append(Trigger(sub, rule, asset, alert))

    def _fire_crossed(
        self, group: Group, rule: str, asset: str, value: float, share: float | None = None
    ) -> bool:
        """Fire the group's chats whose `rule` threshold `value` crosses (and, with `share`,
        whose side share it meets), unless disarmed; the message is made for the first.
        True when one of them cannot fire now (muted, or cooling down)."""
        ladder = group.ladders[rule]
        crossed = bisect_right(ladder.thresholds, value)
        context = self.arming.contexts[rule].get((group, asset))
        if context is None:
            positions: Sequence[int] = range(crossed)
        else:
            positions = context.live[: bisect_left(context.live, crossed)]
        if share is not None:
            sides = ladder.sides
            positions = [p for p in positions if sides[p] <= share]
        now, mutes = self.snap.now, ladder.mutes
        ready = [p for p in positions if now >= mutes[p]]  # not muted
        waiting = len(ready) < len(positions)
        subs, states = ladder.subs, self.states
        made: Alert | None = None
        for position in ready:
            sub = subs[position]
            state = states.get((sub.key, rule, asset))
            if state is not None and not (
                state.armed and now - state.last_fired_at >= sub.thresholds.cooldown * 1000
            ):
                waiting = True
                continue
            if made is None:
                made = self._made.get((rule, group.key, asset))
                if made is None:
                    made = self._made[rule, group.key, asset] = self._message(group, rule, asset)
            self.triggers.append(Trigger(sub, rule, asset, made))
            self.fired.append((rule, group, asset, position))
        return waiting

    def _live(self, rule: str, group: Group, asset: str, value: float) -> bool:
        """Whether `value` crosses a threshold that is not disarmed (a quick check)."""
        context = self.arming.contexts[rule].get((group, asset))
        if context is None:
            return value >= group.ladders[rule].thresholds[0]
        live = context.live
        return bool(live) and value >= context.ladder.thresholds[live[0]]

    def _message(self, group: Group, rule: str, asset: str) -> Alert:
        snap = self.snap
        if rule in ("window", "spike"):
            view = snap.view(group.window, group.watch)
            build = messages.window_alert if rule == "window" else messages.spike_alert
            return build(view, snap.funding(), snap.open_interest())
        window = group.window if rule == "oi" else ""
        key = (rule, asset, window)
        alert = self._alerts.get(key)
        if alert is None:
            if rule == "funding":
                alert = messages.funding_alert(snap.funding()[asset])
            else:
                alert = messages.open_interest_alert(snap.move_of(window)[asset], window)
            self._alerts[key] = alert
        return alert

    def liquidation_steps(self, whales: Iterable[Liquidation]) -> Iterator[None]:
        """The window, spike and whale rules, yielding every few groups (a slice of work)."""
        snap, groups = self.snap, self.book.groups
        sides, spike_ratio = snap.sides, snap.spike_ratio_of
        due = self._due
        waiting = self.settled.waiting
        mark = 0
        for step, index in enumerate(range(len(groups)) if due is None else sorted(due)):
            if step % GROUPS_PER_STEP == GROUPS_PER_STEP - 1 or len(self.triggers) > mark:
                mark = len(self.triggers) + TRIGGERS_PER_STEP
                yield
            group = groups[index]
            long_usd, short_usd = sides(*group.key)
            total = long_usd + short_usd
            thresholds = group.liq.thresholds
            if thresholds and total >= thresholds[0] and self._live("window", group, MARKET, total):
                share = (long_usd if long_usd > short_usd else short_usd) / total
                if self._fire_crossed(group, "window", MARKET, total, share):
                    waiting.add(index)
            if group.spike.thresholds and total > 0:
                ratio = spike_ratio(group.key, total)
                if (
                    ratio is not None
                    and ratio >= group.spike.thresholds[0]
                    and self._fire_crossed(group, "spike", MARKET, ratio)
                ):
                    waiting.add(index)
        for event in whales:
            if len(self.triggers) > mark:  # a cascade's whales reach many chats each
                mark = len(self.triggers) + TRIGGERS_PER_STEP
                yield
            alert = messages.whale_alert(event)
            for base in (MARKET, event.base):
                ladder = self.book.whales.get(base)
                if ladder:
                    self._fire(ladder.crossed(event.usd), "whale", event.base, alert)

    def funding_and_open_interest_steps(self) -> Iterator[None]:
        """Each group's funding, then open interest rules, assets in the order of the data,
        yielding every few steps. Only (group, asset) pairs whose value reaches the group's
        lowest threshold are looked at: they are found per asset, in that order, per group."""
        snap, book = self.snap, self.book
        groups = book.groups
        hits: defaultdict[int, list[tuple[bool, str]]] = defaultdict(list)  # group index ->
        # (open interest?, asset): funding first, each in the order of the data
        found = 0
        levels = snap.funding_levels()
        for base, level in levels.items():
            watchers = book.funding_watchers.get(base)
            reached = book.market_funding.reached(level)
            if watchers is not None:
                reached += watchers.reached(level)
            for index in reached:
                hits[index].append((False, base))
            found += len(reached)
            if found > TRIGGERS_PER_STEP:
                found = 0
                yield
        for window in book.oi_windows:
            market = book.market_oi[window]
            for base, level in snap.oi_levels(window).items():
                watchers = book.oi_watchers.get((window, base))
                reached = market.reached(level)
                if watchers is not None:
                    reached += watchers.reached(level)
                for index in reached:
                    hits[index].append((True, base))
                found += len(reached)
                if found > TRIGGERS_PER_STEP:
                    found = 0
                    yield
        contexts = self.arming.contexts
        mark = len(self.triggers) + TRIGGERS_PER_STEP
        looked = 0  # pairs, not groups: a group may have hundreds (every asset's funding, OI)
        for index in sorted(hits):
            group = groups[index]
            for oi, base in hits[index]:
                looked += 1
                if looked == GROUPS_PER_STEP or len(self.triggers) > mark:
                    looked, mark = 0, len(self.triggers) + TRIGGERS_PER_STEP
                    yield
                rule = "oi" if oi else "funding"
                value = snap.oi_levels(group.window)[base] if oi else levels[base]
                context = contexts[rule].get((group, base))
                if context is not None and (
                    not context.live or value < context.ladder.thresholds[context.live[0]]
                ):
                    continue  # every threshold the value crosses is disarmed
                self._fire_crossed(group, rule, base, value)
