"""Which chats' thresholds the market crossed. Pure decisions: nothing here writes or sends.

Chats are grouped by (window, watch list); each group's aggregate is computed once per pass and
its chats are kept sorted by each threshold, so the chats a value crosses are a prefix found by
bisection. Chats whose rule fired and is disarmed are set aside (`bot.arming`), and a calm pass
skips the groups whose values did not move. A pass over 100,000 chats therefore costs about one
aggregate per group whose assets moved, plus a step per alert; not a step per chat or rule state.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot import messages
from bot.alert import Alert
from bot.arming import Arming, Fired, Settled
from bot.derivatives import Derivatives, OpenInterestMove
from bot.events import FundingRate, Liquidation
from bot.market import WINDOWS, MarketState
from bot.messages import WindowView
from bot.norms import Norms
from bot.subscriptions import Subscription
from storage.alerts import RuleState

MARKET = "*"  # the asset of market-wide rules
HYSTERESIS = 0.8  # a rule re-arms once its value falls below this share of the threshold
MS_PER_MINUTE = 60_000
StateKey = tuple[str, str, str]  # chat key, rule, asset
THRESHOLD_OF = {"window": "liq", "spike": "spike", "funding": "funding", "oi": "oi"}


@dataclass(frozen=True, slots=True)
class Trigger:
    sub: Subscription
    rule: str
    asset: str
    alert: Alert


class Ladder:
    """Subscriptions sorted by one threshold (0 = rule off, left out)."""

    def __init__(self, pairs: Iterable[tuple[float, Subscription]]) -> None:
        ordered = sorted((pair for pair in pairs if pair[0] > 0), key=lambda pair: pair[0])
        self.thresholds = [threshold for threshold, _ in ordered]
        self.subs = [sub for _, sub in ordered]
        self.sides = [sub.thresholds.side for sub in self.subs]  # for the window rule
        self.mutes = [-math.inf if s.mute_until is None else s.mute_until for s in self.subs]

    def __bool__(self) -> bool:
        return bool(self.subs)

    @property
    def lowest(self) -> float:
        return self.thresholds[0] if self.thresholds else float("inf")

    def crossed(self, value: float) -> list[Subscription]:
        return self.subs[: bisect_right(self.thresholds, value)]

    def rearm_level(self, position: int) -> float:
        """A value below this re-arms the rule of the chat at `position`."""
        return HYSTERESIS * self.thresholds[position]

    def rearms(self, value: float, position: int) -> bool:
        return value < HYSTERESIS * self.thresholds[position]

    def rearm_from(self, value: float) -> int:
        """The first position whose rule re-arms at `value` (all later ones do too)."""
        thresholds = self.thresholds
        start = bisect_right(thresholds, value / HYSTERESIS)
        # Division and multiplication round differently: check the boundary, and settle it
        # with the exact test when rounding moved it.
        if (start == 0 or not self.rearms(value, start - 1)) and (
            start == len(thresholds) or self.rearms(value, start)
        ):
            return start
        return bisect_right(thresholds, value, key=lambda threshold: HYSTERESIS * threshold)


class Group:
    """Chats that share a window and a watch list, and so share every aggregate."""

    def __init__(self, window: str, watch: frozenset[str], subs: list[Subscription]) -> None:
        self.window = window
        self.watch = watch
        self.key = (window, watch)
        self.index = -1  # in its RuleBook's groups
        self.liq = Ladder((s.thresholds.liq, s) for s in subs)
        self.spike = Ladder((s.thresholds.spike, s) for s in subs)
        self.funding = Ladder((s.thresholds.funding, s) for s in subs)
        self.oi = Ladder((s.thresholds.oi, s) for s in subs)
        self.ladders: dict[str, Ladder] = {
            rule: getattr(self, name) for rule, name in THRESHOLD_OF.items()
        }


class Watchers:
    """The groups that watch one asset, by their lowest threshold for one rule: the groups a
    value reaches are a prefix."""

    def __init__(self, pairs: list[tuple[float, int]]) -> None:
        pairs.sort()
        self.lowest = [threshold for threshold, _ in pairs]
        self.groups = [index for _, index in pairs]

    def reached(self, value: float) -> list[int]:
        return self.groups[: bisect_right(self.lowest, value)]


class RuleBook:
    """The active subscriptions, indexed for evaluation. Rebuilt when settings change."""

    def __init__(self, subs: Iterable[Subscription]) -> None:
        grouped: defaultdict[tuple[str, frozenset[str]], list[Subscription]] = defaultdict(list)
        whales: defaultdict[str, list[tuple[float, Subscription]]] = defaultdict(list)
        self.by_key: dict[str, Subscription] = {}
        for sub in subs:
            self.by_key[sub.key] = sub
            grouped[sub.thresholds.window, sub.watch].append(sub)
            for base in sub.watch or (MARKET,):
                whales[base].append((sub.thresholds.whale, sub))
        self.by_group = {key: Group(*key, members) for key, members in grouped.items()}
        self.groups = list(self.by_group.values())
        # By group index: the whole-market groups of each window; the groups watching each
        # (window, asset); and for funding and open interest, which groups' lowest threshold
        # an asset's value reaches.
        self.windows: dict[str, list[int]] = {}
        self.watching: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
        funding: defaultdict[str, list[tuple[float, int]]] = defaultdict(list)
        interest: defaultdict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
        for index, group in enumerate(self.groups):
            group.index = index
            market_groups = self.windows.setdefault(group.window, [])
            if not group.watch:
                market_groups.append(index)
            for base in group.watch:
                self.watching[group.window, base].append(index)
                if group.funding:
                    funding[base].append((group.funding.lowest, index))
                if group.oi:
                    interest[group.window, base].append((group.oi.lowest, index))
        self.market_groups = [index for indexes in self.windows.values() for index in indexes]
        self.oi_windows = {group.window for group in self.groups if group.oi}
        self.funding_watchers = {base: Watchers(pairs) for base, pairs in funding.items()}
        self.oi_watchers = {key: Watchers(pairs) for key, pairs in interest.items()}
        self.whales = {base: Ladder(pairs) for base, pairs in whales.items()}
        self.min_whale = min(
            (ladder.lowest for ladder in self.whales.values()), default=float("inf")
        )


class Snapshot:
    """The market as the rules see it in one pass; every aggregate is computed once and cached."""

    def __init__(
        self, market: MarketState, norms: Norms, derivatives: Derivatives, now: int
    ) -> None:
        self.market = market
        self.norms = norms
        self.derivatives = derivatives
        self.now = now
        self._by_base: dict[str, dict[str, list[float]]] = {}
        self._totals: dict[tuple[str, frozenset[str]], tuple[float, float]] = {}
        self._views: dict[tuple[str, frozenset[str]], WindowView] = {}
        self._ratios: dict[tuple[str, frozenset[str]], float | None] = {}
        self._funding: dict[str, FundingRate] | None = None
        self._levels: dict[str, float] | None = None
        self._interest: dict[str, float] | None = None
        self._moves: dict[str, list[OpenInterestMove]] = {}
        self._move_of: dict[str, dict[str, OpenInterestMove]] = {}
        self._oi_levels: dict[str, dict[str, float]] = {}
        self._changed: dict[str, set[str] | None] = {}

    def by_base(self, window: str) -> dict[str, list[float]]:
        """base -> [long_usd, short_usd] in the window."""
        if window not in self._by_base:
            self._by_base[window] = self.market.sides_by_base(window)
        return self._by_base[window]

    def sides(self, window: str, watch: frozenset[str]) -> tuple[float, float]:
        """(long_usd, short_usd) in the window for the watch list (empty: whole market)."""
        key = (window, watch)
        cached = self._totals.get(key)
        if cached is None:
            by_base = self.by_base(window)
            rows = by_base.values() if not watch else [by_base[b] for b in watch if b in by_base]
            cached = (sum([r[0] for r in rows]), sum([r[1] for r in rows]))
            self._totals[key] = cached
        return cached

    def changed(self, window: str, before: dict[str, list[float]] | None) -> set[str] | None:
        """The assets whose sides in the window differ from `before` (the same `before` for a
        window throughout a pass); None: all may."""
        if window not in self._changed:
            now = self.by_base(window)
            self._changed[window] = (
                None
                if before is None
                else {base for base, row in now.items() if before.get(base) != row}
                | (before.keys() - now.keys())
            )
        return self._changed[window]

    def view(self, window: str, watch: frozenset[str]) -> WindowView:
        key = (window, watch)
        cached = self._views.get(key)
        if cached is None:
            totals = self.market.totals(window, watch or None)
            cached = self._views[key] = WindowView(
                window,
                totals.total_usd,
                totals.long_usd,
                totals.short_usd,
                totals.count,
                totals.by_base,
                totals.by_exchange,
                self.norms.norm(WINDOWS[window], watch or None),
            )
        return cached

    def spike_ratio(self, window: str, watch: frozenset[str]) -> float | None:
        key = (window, watch)
        if key not in self._ratios:
            return self._spike_ratio(key, sum(self.sides(window, watch)))
        return self._ratios[key]

    def _spike_ratio(self, key: tuple[str, frozenset[str]], total: float) -> float | None:
        """`spike_ratio` for a (window, watch list) whose total is known."""
        if key in self._ratios:
            return self._ratios[key]
        window, watch = key
        norm = self.norms.norm(WINDOWS[window], watch or None)
        ratio = self._ratios[key] = (
            total / norm.average_usd if norm is not None and norm.average_usd > 0 else None
        )
        return ratio

    def funding(self) -> dict[str, FundingRate]:
        if self._funding is None:
            self._funding = self.derivatives.extreme_funding_by_base()
        return self._funding

    def funding_levels(self) -> dict[str, float]:
        """base -> |rate per 8 h| of its most extreme venue, in the order of `funding()`."""
        if self._levels is None:
            self._levels = {base: abs(rate.rate_8h) for base, rate in self.funding().items()}
        return self._levels

    def open_interest(self) -> dict[str, float]:
        if self._interest is None:
            self._interest = self.derivatives.open_interest_by_base()
        return self._interest

    def moves(self, window: str) -> list[OpenInterestMove]:
        if window not in self._moves:
            self._moves[window] = self.derivatives.open_interest_moves(
                WINDOWS[window] * MS_PER_MINUTE, self.now
            )
        return self._moves[window]

    def oi_levels(self, window: str) -> dict[str, float]:
        """base -> |open interest change| over the window, in the order of `moves()`."""
        if window not in self._oi_levels:
            self._oi_levels[window] = {
                base: abs(move.change) for base, move in self.move_of(window).items()
            }
        return self._oi_levels[window]

    def move_of(self, window: str) -> dict[str, OpenInterestMove]:
        """base -> its open interest move over the window, in the order of `moves()`."""
        if window not in self._move_of:
            self._move_of[window] = {move.base: move for move in self.moves(window)}
        return self._move_of[window]


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
        self.settled = Settled(snap.market.minute, snap._by_base, set())
        self._due = self.arming.due(snap)
        self._alerts: dict[tuple[str, str, str], Alert] = {}

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
                made = self._message(group, rule, asset)
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

    def liquidations(self, whales: Iterable[Liquidation]) -> None:
        snap, groups = self.snap, self.book.groups
        totals, sides, spike_ratio = snap._totals, snap.sides, snap._spike_ratio
        due = self._due
        waiting = self.settled.waiting
        for index in range(len(groups)) if due is None else sorted(due):
            group = groups[index]
            long_usd, short_usd = totals.get(group.key) or sides(*group.key)
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
            alert = messages.whale_alert(event)
            for base in (MARKET, event.base):
                ladder = self.book.whales.get(base)
                if ladder:
                    self._fire(ladder.crossed(event.usd), "whale", event.base, alert)

    def funding_and_open_interest(self) -> None:
        """Each group's funding, then open interest rules, assets in the order of the data.
        Only (group, asset) pairs whose value reaches the group's lowest threshold are looked
        at: they are found per asset, then put in that order."""
        snap, book = self.snap, self.book
        groups = book.groups
        hits: list[tuple[int, int, int, str]] = []  # group index, 0 funding/1 oi, rank, asset
        levels = snap.funding_levels()
        market = [(i, groups[i].funding.lowest) for i in book.market_groups if groups[i].funding]
        for rank, (base, level) in enumerate(levels.items()):
            watchers = book.funding_watchers.get(base)
            if watchers is not None:
                hits += [(index, 0, rank, base) for index in watchers.reached(level)]
            hits += [(index, 0, rank, base) for index, lowest in market if level >= lowest]
        for window in book.oi_windows:
            changes = snap.oi_levels(window)
            market = [(i, groups[i].oi.lowest) for i in book.windows[window] if groups[i].oi]
            for rank, (base, level) in enumerate(changes.items()):
                watchers = book.oi_watchers.get((window, base))
                if watchers is not None:
                    hits += [(index, 1, rank, base) for index in watchers.reached(level)]
                hits += [(index, 1, rank, base) for index, lowest in market if level >= lowest]
        hits.sort()
        contexts = self.arming.contexts
        for index, kind, _, base in hits:
            group = groups[index]
            rule = "oi" if kind else "funding"
            value = snap.oi_levels(group.window)[base] if kind else levels[base]
            context = contexts[rule].get((group, base))
            if context is not None and (
                not context.live or value < context.ladder.thresholds[context.live[0]]
            ):
                continue  # every threshold the value crosses is disarmed
            self._fire_crossed(group, rule, base, value)
