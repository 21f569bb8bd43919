"""Which rules are disarmed, per (group, rule, asset), so that a pass visits only chats that can
fire.

A rule that fired stays disarmed until its value falls back below HYSTERESIS x its threshold. In
a steady market most crossed thresholds belong to disarmed rules, so a pass that looked at every
crossed chat would take a step per rule state: millions of them at a million chats. An `Arming`
keeps, for each (group, rule, asset) that has disarmed chats, the ladder positions still live:
the chats a value crosses and that may fire are then a bisection and a slice, and re-arming is
a bisection too.

It also remembers (`Settled`) the groups whose liquidation rules had nothing left to fire at the
last recorded pass. While the minute and their assets' totals stay the same, their rules can
neither fire nor re-arm, so the next pass skips them: a calm pass looks only at the groups whose
assets moved.

The engine keeps an `Arming` in step with its rule states: built from them, told of each firing
once it is recorded (`disarm`), and re-arming through `rearm`.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from storage.alerts import RuleState

if TYPE_CHECKING:
    from bot.rules import Group, Ladder, RuleBook, Snapshot, StateKey

LEVEL_RULES = ("window", "spike", "funding", "oi")  # rules with a level to fall back from
LIQUIDATION_RULES = ("window", "spike")
ContextKey = tuple["Group", str]  # group, asset (one dict of contexts per rule)
Fired = tuple[str, "Group", str, int]  # rule, group, asset, position in the group's ladder


class Context:
    """One ladder as one (group, rule, asset) sees it: positions (in the ladder's order) that
    fired and are disarmed are set aside until the value falls back; the rest are live."""

    __slots__ = ("disarmed", "ladder", "level", "live")

    def __init__(self, ladder: Ladder) -> None:
        self.ladder = ladder
        self.live = list(range(len(ladder.subs)))
        self.disarmed: list[int] = []
        self.level = -math.inf  # a value below this re-arms the highest disarmed threshold

    def _set_level(self) -> None:
        disarmed = self.disarmed
        self.level = self.ladder.rearm_level(disarmed[-1]) if disarmed else -math.inf

    def disarm(self, positions: list[int]) -> None:
        if len(positions) <= 8:
            for position in positions:
                index = bisect_left(self.live, position)
                if index < len(self.live) and self.live[index] == position:
                    del self.live[index]
                    insort(self.disarmed, position)
        else:
            gone = set(positions)
            self.disarmed = sorted([*self.disarmed, *(p for p in self.live if p in gone)])
            self.live = [p for p in self.live if p not in gone]
        self._set_level()

    def rearm(self, value: float) -> list[int]:
        """The disarmed positions that re-arm at `value`, moved back among the live ones."""
        if not value < self.level:
            return []  # the usual case: even the highest threshold holds
        start = bisect_left(self.disarmed, self.ladder.rearm_from(value))
        moved = self.disarmed[start:]
        del self.disarmed[start:]
        self.live = sorted(self.live + moved)
        self._set_level()
        return moved


def _window_value(snap: Snapshot, window: str, watch: frozenset[str], asset: str) -> float:
    return sum(snap.sides(window, watch))


def _spike_value(snap: Snapshot, window: str, watch: frozenset[str], asset: str) -> float:
    return snap.spike_ratio(window, watch) or 0.0


def _funding_value(snap: Snapshot, window: str, watch: frozenset[str], asset: str) -> float:
    return snap.funding_levels().get(asset, 0.0)


def _oi_value(snap: Snapshot, window: str, watch: frozenset[str], asset: str) -> float:
    return snap.oi_levels(window).get(asset, 0.0)


# A rule's value now for a window, watch list and asset (0 when the asset has none).
VALUE_OF: dict[str, Callable[[Snapshot, str, frozenset[str], str], float]] = {
    "window": _window_value,
    "spike": _spike_value,
    "funding": _funding_value,
    "oi": _oi_value,
}


@dataclass(slots=True)
class Settled:
    """A recorded pass: the groups it found waiting (a rule crossed but muted or cooling down,
    so it may fire later at the same values), by index; every other group was settled."""

    minute: int
    by_base: dict[str, dict[str, list[float]]]  # window -> that pass's sides by asset
    waiting: set[int]


class Arming:
    """The disarmed rules of every (group, rule, asset), built from the rule states; the caller
    then reports each recorded firing (`disarm`) and applies what `rearm` returns."""

    def __init__(self, book: RuleBook, states: Mapping[StateKey, RuleState]) -> None:
        self.book = book
        self.contexts: dict[str, dict[ContextKey, Context]] = {rule: {} for rule in LEVEL_RULES}
        # Funding and open interest contexts again, by what their value depends on: (window,
        # or "" for funding; asset). Re-arming computes each value once.
        self._by_value: dict[str, dict[tuple[str, str], dict[ContextKey, Context]]] = {
            "funding": {},
            "oi": {},
        }
        self.settled: Settled | None = None  # the last recorded pass
        self._due: tuple[Snapshot, set[int] | None] | None = None
        positions: dict[Ladder, dict[int, int]] = {}  # ladder -> id(sub) -> position
        found: list[Fired] = []
        for (chat, rule, asset), state in states.items():
            sub = book.by_key.get(chat)
            if state.armed or sub is None or rule not in LEVEL_RULES:
                continue
            group = book.by_group[sub.thresholds.window, sub.watch]
            ladder = group.ladders[rule]
            where = positions.get(ladder)
            if where is None:
                where = positions[ladder] = {id(s): i for i, s in enumerate(ladder.subs)}
            position = where.get(id(sub))
            if position is not None:  # else the rule is off for this chat
                found.append((rule, group, asset, position))
        self.disarm(found)

    def disarm(self, fired: Iterable[Fired]) -> None:
        by_context: defaultdict[tuple[str, Group, str], list[int]] = defaultdict(list)
        for rule, group, asset, position in fired:
            by_context[rule, group, asset].append(position)
        for (rule, group, asset), positions in by_context.items():
            contexts = self.contexts[rule]
            context = contexts.get((group, asset))
            if context is None:
                context = contexts[group, asset] = Context(group.ladders[rule])
                if rule in self._by_value:
                    key = (group.window if rule == "oi" else "", asset)
                    self._by_value[rule].setdefault(key, {})[group, asset] = context
            context.disarm(positions)

    def due(self, snap: Snapshot) -> set[int] | None:
        """Indexes of the groups whose liquidation rules this pass must look at (None: all):
        those waiting at the last recorded pass, and those whose assets' totals moved since."""
        if self._due is None or self._due[0] is not snap:
            self._due = (snap, self._find_due(snap))
        return self._due[1]

    def _find_due(self, snap: Snapshot) -> set[int] | None:
        settled = self.settled
        if settled is None or settled.minute != snap.market.minute:
            return None
        due = set(settled.waiting)
        for window, market_groups in self.book.windows.items():
            moved = snap.changed(window, settled.by_base.get(window))
            if moved is None:
                return None
            if moved:
                due.update(market_groups)
                for base in moved:
                    due.update(self.book.watching.get((window, base), ()))
        return due

    def rearm(
        self, snap: Snapshot, states: Mapping[StateKey, RuleState], include_market_data: bool
    ) -> dict[StateKey, RuleState]:
        """States to change: disarmed rules whose value fell below HYSTERESIS x the threshold.
        They are live again here at once; the caller applies the states."""
        changed: dict[StateKey, RuleState] = {}
        due = self.due(snap)
        for rule in LIQUIDATION_RULES:
            value_of = VALUE_OF[rule]
            rearming = []
            for (group, asset), context in self.contexts[rule].items():
                if due is not None and group.index not in due:
                    continue  # settled, and the same values: nothing can re-arm
                value = value_of(snap, group.window, group.watch, asset)
                if value < context.level:  # else even the highest disarmed threshold holds
                    rearming.append((group, asset, context, value))
            self._rearm(rule, rearming, states, changed)
        if include_market_data:
            for rule, by_value in self._by_value.items():
                value_of = VALUE_OF[rule]
                rearming = []
                for (window, asset), members in by_value.items():
                    value = value_of(snap, window, frozenset(), asset)
                    rearming += [
                        (group, asset, context, value)
                        for (group, _), context in members.items()
                        if value < context.level
                    ]
                self._rearm(rule, rearming, states, changed)
        return changed

    def _rearm(
        self,
        rule: str,
        rearming: list[tuple[Group, str, Context, float]],
        states: Mapping[StateKey, RuleState],
        changed: dict[StateKey, RuleState],
    ) -> None:
        for group, asset, context, value in rearming:
            moved = context.rearm(value)
            if not context.disarmed:
                del self.contexts[rule][group, asset]
                if rule in self._by_value:
                    value_key = (group.window if rule == "oi" else "", asset)
                    members = self._by_value[rule][value_key]
                    del members[group, asset]
                    if not members:
                        del self._by_value[rule][value_key]
            for position in moved:
                key = (context.ladder.subs[position].key, rule, asset)
                state = states.get(key)
                if state is not None and not state.armed:
                    changed[key] = RuleState(True, state.last_fired_at)
