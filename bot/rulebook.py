"""The active subscriptions, indexed for evaluation, and kept up to date one chat at a time.

Chats are grouped by (window, watch list); each group's aggregate is computed once per pass and
its chats are kept sorted by each threshold, so the chats a value crosses are a prefix found by
bisection. A group holds at most SHARD_SIZE chats: the chats that share a window and watch list
are spread over as many groups (shards) as they need. A settings change moves the one chat in
the ladders of its shard (and of the shard it joins, when its window or watch list changed) and
reports each position it gave up or took (`Edit`), so that `bot.arming` shifts only the
positions after it: a cost bounded by SHARD_SIZE, whatever the number of chats.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from bot.model import Subscription

MARKET = "*"  # the asset of market-wide rules
HYSTERESIS = 0.8  # a rule re-arms once its value falls below this share of the threshold
SHARD_SIZE = 256  # chats per group at most: the cost of one settings change
THRESHOLD_OF = {"window": "liq", "spike": "spike", "funding": "funding", "oi": "oi"}
GroupKey = tuple[str, frozenset[str]]  # window, watch list (empty: the whole market)
StateKey = tuple[str, str, str]  # chat key, rule, asset: what a rule state is kept for


class Ladder:
    """Subscriptions sorted by one threshold (0 = rule off, left out), ties in chat key order
    (so that `insert`, `remove` and `replace` find a chat by bisection)."""

    def __init__(self, thresholds: list[float], subs: list[Subscription]) -> None:
        """`thresholds` ascending, `subs` in the same order."""
        self.thresholds = thresholds
        self.subs = subs
        self.sides = [sub.thresholds.side for sub in subs]  # for the window rule
        self.mutes = [-math.inf if sub.mute_until is None else sub.mute_until for sub in subs]

    @classmethod
    def of(cls, subs: Sequence[Subscription], threshold: str) -> Ladder:
        """The chats of `subs` (in chat key order) by `Thresholds.<threshold>`."""
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

    def _find(self, threshold: float, key: str) -> int:
        position = self._position(threshold, key)
        if position == len(self.subs) or self.subs[position].key != key:
            raise KeyError(f"{key} is not in the ladder at {threshold}")
        return position

    def insert(self, threshold: float, sub: Subscription) -> int | None:
        """Add the chat (unless its threshold is 0); returns its position."""
        if threshold <= 0:
            return None
        position = self._position(threshold, sub.key)
        self.thresholds.insert(position, threshold)
        self.subs.insert(position, sub)
        self.sides.insert(position, sub.thresholds.side)
        self.mutes.insert(position, _mute(sub))
        return position

    def remove(self, threshold: float, sub: Subscription) -> int | None:
        """Take the chat out (unless its threshold is 0); returns the position it had."""
        if threshold <= 0:
            return None
        position = self._find(threshold, sub.key)
        del self.thresholds[position], self.subs[position]
        del self.sides[position], self.mutes[position]
        return position

    def replace(self, threshold: float, sub: Subscription) -> None:
        """The chat's new settings, at the same threshold (so at the same position)."""
        if threshold > 0:
            position = self._find(threshold, sub.key)
            self.subs[position] = sub
            self.sides[position] = sub.thresholds.side
            self.mutes[position] = _mute(sub)


def _mute(sub: Subscription) -> float:
    return -math.inf if sub.mute_until is None else sub.mute_until


def _threshold(sub: Subscription, rule: str) -> float:
    return float(getattr(sub.thresholds, THRESHOLD_OF[rule]))


@dataclass(frozen=True, slots=True)
class Edit:
    """A chat took (`added`) or gave up a position in one of a group's ladders: the positions
    after it moved up or down by one."""

    group: Group
    rule: str
    position: int
    chat: str
    added: bool


class Group:
    """Chats (at most SHARD_SIZE) that share a window and a watch list, and so every aggregate.
    Its ladders change in place, one chat at a time (`join`, `leave`, `change`)."""

    def __init__(self, window: str, watch: frozenset[str], members: list[Subscription]) -> None:
        self.window = window
        self.watch = watch
        self.key: GroupKey = (window, watch)
        ordered = sorted(members, key=attrgetter("key"))
        self.members = {sub.key: sub for sub in ordered}
        self.index = -1  # in its RuleBook's groups
        self.liq = Ladder.of(ordered, "liq")
        self.spike = Ladder.of(ordered, "spike")
        self.funding = Ladder.of(ordered, "funding")
        self.oi = Ladder.of(ordered, "oi")
        self.ladders: dict[str, Ladder] = {
            rule: getattr(self, name) for rule, name in THRESHOLD_OF.items()
        }

    def join(self, sub: Subscription) -> list[Edit]:
        self.members[sub.key] = sub
        return [self._insert(rule, sub) for rule in THRESHOLD_OF if _threshold(sub, rule) > 0]

    def leave(self, sub: Subscription) -> list[Edit]:
        del self.members[sub.key]
        return [self._remove(rule, sub) for rule in THRESHOLD_OF if _threshold(sub, rule) > 0]

    def change(self, old: Subscription, sub: Subscription) -> list[Edit]:
        """The chat's new settings (same window and watch list): it moves only in the ladders
        whose threshold changed."""
        self.members[sub.key] = sub
        edits = []
        for rule, ladder in self.ladders.items():
            before, after = _threshold(old, rule), _threshold(sub, rule)
            if before == after:
                ladder.replace(after, sub)
                continue
            if before > 0:
                edits.append(self._remove(rule, old))
            if after > 0:
                edits.append(self._insert(rule, sub))
        return edits

    def _insert(self, rule: str, sub: Subscription) -> Edit:
        position = self.ladders[rule].insert(_threshold(sub, rule), sub)
        assert position is not None  # (a threshold over 0)
        return Edit(self, rule, position, sub.key, added=True)

    def _remove(self, rule: str, sub: Subscription) -> Edit:
        position = self.ladders[rule].remove(_threshold(sub, rule), sub)
        assert position is not None
        return Edit(self, rule, position, sub.key, added=False)


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

    def move(self, index: int, before: float, after: float) -> None:
        """Group `index`'s lowest threshold for this rule changed from `before` to `after`
        (inf: none)."""
        if before == after:
            return
        if before != math.inf:
            position = bisect_left(self.pairs, (before, index))
            del self.pairs[position], self.lowest[position]
        if after != math.inf:
            pair = (after, index)
            insort(self.pairs, pair)
            self.lowest.insert(bisect_left(self.pairs, pair), after)


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
        whales: defaultdict[str, list[Subscription]] = defaultdict(list)
        for sub in sorted(subs, key=attrgetter("key")):  # then every ladder's ties are in order
            self.by_key[sub.key] = sub
            grouped[sub.thresholds.window, sub.watch].append(sub)
            for base in sub.watch or (MARKET,):
                whales[base].append(sub)
        for (window, watch), members in grouped.items():
            for start in range(0, len(members), SHARD_SIZE):
                self._add_group(Group(window, watch, members[start : start + SHARD_SIZE]))
        for base, watching in whales.items():
            ladder = Ladder.of(watching, "whale")
            if ladder:
                self.whales[base] = ladder
        self.min_whale = self._min_whale()

    @property
    def market_groups(self) -> list[int]:
        return [index for indexes in self.windows.values() for index in indexes]

    @property
    def oi_windows(self) -> set[str]:
        return {window for window, count in self._with_oi.items() if count}

    def _min_whale(self) -> float:
        return min((ladder.lowest for ladder in self.whales.values()), default=float("inf"))

    def update(self, sub: Subscription) -> list[Edit]:
        """Apply one chat's new settings (inactive: it leaves). Returns the ladder positions it
        gave up and took, in that order (a new shard's, too)."""
        old = self.by_key.pop(sub.key, None)
        edits: list[Edit] = []
        group = self.group_of.pop(old.key) if old is not None else None
        if old is not None:
            self._whale_ladders(old, add=False)
        if sub.active:
            self.by_key[sub.key] = sub
            self._whale_ladders(sub, add=True)
        self.min_whale = self._min_whale()
        if group is not None and old is not None:
            if sub.active and group.key == (sub.thresholds.window, sub.watch):
                self.group_of[sub.key] = group  # it stays in its shard
                return self._edited(group, lambda: group.change(old, sub))
            edits = self._edited(group, lambda: group.leave(old))
        if sub.active:
            index = self._shard_for(sub)
            if index is None:
                joined = Group(sub.thresholds.window, sub.watch, [])
                self._add_group(joined)
            else:
                joined = self.groups[index]
            self.group_of[sub.key] = joined
            edits += self._edited(joined, lambda: joined.join(sub))
        return edits

    def _edited(self, group: Group, edit: Callable[[], list[Edit]]) -> list[Edit]:
        """Run `edit` on the group's ladders, then point the watchers and counts at what
        changed."""
        before = (group.funding.lowest, group.oi.lowest, bool(group.oi))
        edits = edit()
        self._index_group(group, *before)
        return edits

    def _index_group(self, group: Group, funding: float, oi: float, with_oi: bool) -> None:
        """The group's lowest funding and open interest thresholds were `funding` and `oi`
        (inf: none), and it had an open interest rule or not: point the watchers and the
        counts at what it has now."""
        index = group.index
        if group.watch:
            for base in group.watch:
                self.funding_watchers[base].move(index, funding, group.funding.lowest)
                self.oi_watchers[group.window, base].move(index, oi, group.oi.lowest)
        else:
            self.market_funding.move(index, funding, group.funding.lowest)
            self.market_oi[group.window].move(index, oi, group.oi.lowest)
        self._with_oi[group.window] += bool(group.oi) - with_oi

    def _whale_ladders(self, sub: Subscription, add: bool) -> None:
        for base in sub.watch or (MARKET,):
            ladder = self.whales[base]
            if add:
                ladder.insert(sub.thresholds.whale, sub)
            else:
                ladder.remove(sub.thresholds.whale, sub)
            if not ladder:
                del self.whales[base]

    def _shard_for(self, sub: Subscription) -> int | None:
        """The shard of the chat's (window, watch list) with room, the smallest; None: none."""
        groups = self.groups
        sizes = [
            (len(groups[i].members), i)
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
        for sub in group.members.values():
            self.group_of[sub.key] = group
        self._index_group(group, math.inf, math.inf, False)
