"""The active subscriptions, indexed for evaluation, and kept up to date one chat at a time.

Chats are grouped by (window, watch list); each group's aggregate is computed once per pass and
its chats are kept sorted by each threshold, so the chats a value crosses are a prefix found by
bisection. A group holds at most SHARD_SIZE chats: the chats that share a window and watch list
are spread over as many groups (shards) as they need, and a settings change rebuilds the one or
two shards the chat leaves and joins, a bounded cost whatever the number of chats.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from operator import attrgetter

from bot.model import Subscription

MARKET = "*"  # the asset of market-wide rules
HYSTERESIS = 0.8  # a rule re-arms once its value falls below this share of the threshold
SHARD_SIZE = 256  # chats per group at most: the cost of one settings change
THRESHOLD_OF = {"window": "liq", "spike": "spike", "funding": "funding", "oi": "oi"}
GroupKey = tuple[str, frozenset[str]]  # window, watch list (empty: the whole market)
StateKey = tuple[str, str, str]  # chat key, rule, asset: what a rule state is kept for


def _key(pair: tuple[float, Subscription]) -> tuple[float, str]:
    return pair[0], pair[1].key


class Ladder:
    """Subscriptions sorted by one threshold (0 = rule off, left out). Ties are in chat key
    order where chats come and go one at a time (`insert`, `remove`), else in `subs` order."""

    def __init__(self, thresholds: list[float], subs: list[Subscription]) -> None:
        """`thresholds` ascending, `subs` in the same order."""
        self.thresholds = thresholds
        self.subs = subs
        self.sides = [sub.thresholds.side for sub in subs]  # for the window rule
        self.mutes = [_mute(sub) for sub in subs]

    @classmethod
    def of_pairs(cls, pairs: Iterable[tuple[float, Subscription]]) -> Ladder:
        """(threshold, chat) pairs, ties in chat key order (for `insert` and `remove`)."""
        ordered = sorted((pair for pair in pairs if pair[0] > 0), key=_key)
        return cls([threshold for threshold, _ in ordered], [sub for _, sub in ordered])

    @classmethod
    def of(cls, subs: Sequence[Subscription], threshold: str) -> Ladder:
        """The chats of `subs` by `Thresholds.<threshold>`."""
        value = attrgetter(f"thresholds.{threshold}")
        ordered = sorted([sub for sub in subs if value(sub) > 0], key=value)
        return cls([value(sub) for sub in ordered], ordered)

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

    def _position(self, threshold: float, key: str) -> int:
        low = bisect_left(self.thresholds, threshold)
        high = bisect_right(self.thresholds, threshold, low)
        return bisect_left(self.subs, key, low, high, key=lambda sub: sub.key)

    def insert(self, threshold: float, sub: Subscription) -> None:
        if threshold > 0:
            position = self._position(threshold, sub.key)
            self.thresholds.insert(position, threshold)
            self.subs.insert(position, sub)
            self.sides.insert(position, sub.thresholds.side)
            self.mutes.insert(position, _mute(sub))

    def remove(self, threshold: float, sub: Subscription) -> None:
        if threshold > 0:
            position = self._position(threshold, sub.key)
            del self.thresholds[position], self.subs[position]
            del self.sides[position], self.mutes[position]


def _mute(sub: Subscription) -> float:
    return -math.inf if sub.mute_until is None else sub.mute_until


class Group:
    """Chats (at most SHARD_SIZE) that share a window and a watch list, and so every aggregate."""

    def __init__(self, window: str, watch: frozenset[str], members: list[Subscription]) -> None:
        self.window = window
        self.watch = watch
        self.key: GroupKey = (window, watch)
        self.members = members
        self.index = -1  # in its RuleBook's groups
        self.liq = Ladder.of(members, "liq")
        self.spike = Ladder.of(members, "spike")
        self.funding = Ladder.of(members, "funding")
        self.oi = Ladder.of(members, "oi")
        self.ladders: dict[str, Ladder] = {
            rule: getattr(self, name) for rule, name in THRESHOLD_OF.items()
        }


class Watchers:
    """The groups that watch one asset, by their lowest threshold for one rule: the groups a
    value reaches are a prefix."""

    def __init__(self) -> None:
        self.pairs: list[tuple[float, int]] = []  # (lowest threshold, group index), sorted
        self.lowest: list[float] = []

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def reached(self, value: float) -> list[int]:
        return [index for _, index in self.pairs[: bisect_right(self.lowest, value)]]

    def move(self, index: int, before: Ladder | None, after: Ladder | None) -> None:
        """Group `index`'s ladder for this rule changed from `before` to `after`."""
        if before:
            position = bisect_left(self.pairs, (before.lowest, index))
            del self.pairs[position], self.lowest[position]
        if after:
            pair = (after.lowest, index)
            insort(self.pairs, pair)
            self.lowest.insert(bisect_left(self.pairs, pair), after.lowest)


class RuleBook:
    """The active subscriptions, indexed for evaluation; `update` applies one chat's change."""

    def __init__(self, subs: Iterable[Subscription]) -> None:
        self.by_key: dict[str, Subscription] = {}
        self.groups: list[Group] = []
        self.shards: defaultdict[GroupKey, list[int]] = defaultdict(list)  # key -> indexes
        self.group_of: dict[str, Group] = {}  # chat key -> its group
        # By group index: the whole-market groups of each window; the groups watching each
        # (window, asset); and for funding and open interest, which groups' lowest threshold
        # an asset's value reaches (market groups apart).
        self.windows: dict[str, list[int]] = {}
        self.watching: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
        self.funding_watchers: defaultdict[str, Watchers] = defaultdict(Watchers)
        self.oi_watchers: defaultdict[tuple[str, str], Watchers] = defaultdict(Watchers)
        self.market_funding = Watchers()
        self.market_oi: defaultdict[str, Watchers] = defaultdict(Watchers)
        self._with_oi: Counter[str] = Counter()  # window -> groups with an open interest rule
        self.whales: defaultdict[str, Ladder] = defaultdict(lambda: Ladder([], []))
        grouped: defaultdict[GroupKey, list[Subscription]] = defaultdict(list)
        whales: defaultdict[str, list[tuple[float, Subscription]]] = defaultdict(list)
        for sub in subs:
            self.by_key[sub.key] = sub
            grouped[sub.thresholds.window, sub.watch].append(sub)
            for base in sub.watch or (MARKET,):
                whales[base].append((sub.thresholds.whale, sub))
        for (window, watch), members in grouped.items():
            for start in range(0, len(members), SHARD_SIZE):
                self._add_group(Group(window, watch, members[start : start + SHARD_SIZE]))
        for base, pairs in whales.items():
            self.whales[base] = Ladder.of_pairs(pairs)
        self.min_whale = self._min_whale()

    @property
    def market_groups(self) -> list[int]:
        return [index for indexes in self.windows.values() for index in indexes]

    @property
    def oi_windows(self) -> set[str]:
        return {window for window, count in self._with_oi.items() if count}

    def _min_whale(self) -> float:
        return min((ladder.lowest for ladder in self.whales.values()), default=float("inf"))

    def update(self, sub: Subscription) -> list[tuple[Group | None, Group]]:
        """Apply one chat's new settings (inactive: it leaves). Returns the groups replaced,
        as (old, new); old is None for a new shard."""
        old = self.by_key.pop(sub.key, None)
        members: dict[int, list[Subscription]] = {}
        if old is not None:
            self._whale_ladders(old, add=False)
            group = self.group_of.pop(old.key)
            members[group.index] = [s for s in group.members if s.key != old.key]
        if sub.active:
            self.by_key[sub.key] = sub
            self._whale_ladders(sub, add=True)
            index = self._shard_for(sub, members)
            if index is None:
                group = Group(sub.thresholds.window, sub.watch, [sub])
                self._add_group(group)
                self.min_whale = self._min_whale()
                return [(self.groups[i], self._replace(i, m)) for i, m in members.items()] + [
                    (None, group)
                ]
            members.setdefault(index, list(self.groups[index].members)).append(sub)
        self.min_whale = self._min_whale()
        return [(self.groups[i], self._replace(i, m)) for i, m in members.items()]

    def _whale_ladders(self, sub: Subscription, add: bool) -> None:
        for base in sub.watch or (MARKET,):
            ladder = self.whales[base]
            if add:
                ladder.insert(sub.thresholds.whale, sub)
            else:
                ladder.remove(sub.thresholds.whale, sub)
            if not ladder:
                del self.whales[base]

    def _shard_for(self, sub: Subscription, members: dict[int, list[Subscription]]) -> int | None:
        """The shard of the chat's (window, watch list) with room, the smallest; None: none."""
        sizes = [
            (len(members[i]) if i in members else len(self.groups[i].members), i)
            for i in self.shards.get((sub.thresholds.window, sub.watch), ())
        ]
        size, index = min(sizes, default=(SHARD_SIZE, -1))
        return index if size < SHARD_SIZE else None

    def _add_group(self, group: Group) -> None:
        index = group.index = len(self.groups)
        self.groups.append(group)
        self.shards[group.key].append(index)
        market_groups = self.windows.setdefault(group.window, [])
        if not group.watch:
            market_groups.append(index)
        for base in group.watch:
            self.watching[group.window, base].append(index)
        self._index_group(None, group)

    def _replace(self, index: int, members: list[Subscription]) -> Group:
        old = self.groups[index]
        group = Group(old.window, old.watch, members)
        group.index = index
        self.groups[index] = group
        self._index_group(old, group)
        return group

    def _index_group(self, old: Group | None, group: Group) -> None:
        """Point the chats, the watchers and the counts at `group` (replacing `old`)."""
        index = group.index
        for sub in group.members:
            self.group_of[sub.key] = group
        old_funding = old.funding if old is not None else None
        old_oi = old.oi if old is not None else None
        if group.watch:
            for base in group.watch:
                self.funding_watchers[base].move(index, old_funding, group.funding)
                self.oi_watchers[group.window, base].move(index, old_oi, group.oi)
        else:
            self.market_funding.move(index, old_funding, group.funding)
            self.market_oi[group.window].move(index, old_oi, group.oi)
        self._with_oi[group.window] += bool(group.oi) - bool(old_oi)
