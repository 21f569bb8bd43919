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
once it is recorded (`disarm`), re-arming through `rearm` (which only plans: `apply` once the
new states are committed), and told of the ladder positions a settings change gave up or took
(`regroup`): only the contexts of that chat's ladders change, by a shift of the positions after
it, and the chat's own position is live or disarmed as its rule states say.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from bot.model import RuleState
from bot.rulebook import Edit, Group, Ladder, RuleBook, StateKey
from bot.snapshot import Snapshot

LEVEL_RULES = ("window", "spike", "funding", "oi")  # rules with a level to fall back from
LIQUIDATION_RULES = ("window", "spike")
ContextKey = tuple[Group, str]  # group, asset (one dict of contexts per rule)
Fired = tuple[str, Group, str, int]  # rule, group, asset, position in the group's ladder


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

    def remove(self, position: int) -> None:
        """The chat at `position` left the ladder: the later positions move down by one."""
        for positions in (self.live, self.disarmed):
            start = bisect_left(positions, position)
            end = start + 1 if start < len(positions) and positions[start] == position else start
            positions[start:] = [p - 1 for p in positions[end:]]
        self._set_level()

    def insert(self, position: int, disarmed: bool) -> None:
        """A chat took `position` in the ladder (its rule live, or disarmed): the positions from
        there on move up by one."""
        for positions in (self.live, self.disarmed):
            start = bisect_left(positions, position)
            positions[start:] = [p + 1 for p in positions[start:]]
        taken = self.disarmed if disarmed else self.live
        taken.insert(bisect_left(taken, position), position)
        self._set_level()

    def rearming(self, value: float) -> list[int]:
        """The disarmed positions that re-arm at `value` (nothing changes here)."""
        if not value < self.level:
            return []  # the usual case: even the highest threshold holds
        return self.disarmed[bisect_left(self.disarmed, self.ladder.rearm_from(value)) :]

    def rearm(self, value: float) -> list[int]:
        """The disarmed positions that re-arm at `value`, moved back among the live ones."""
        moved = self.rearming(value)
        if not moved:
            return moved
        del self.disarmed[len(self.disarmed) - len(moved) :]
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


@dataclass(slots=True)
class Rearming:
    """What a pass's re-arming would change: the rule states, and the contexts to update once
    those states are committed (`Arming.apply`)."""

    states: dict[StateKey, RuleState] = field(default_factory=dict)
    moves: list[tuple[str, Group, str, float]] = field(default_factory=list)  # rule, group,
    # asset, value


class Arming:
    """The disarmed rules of every (group, rule, asset), built from the rule states; the caller
    then reports each recorded firing (`disarm`), applies what `rearm` plans once its states are
    committed (`apply`), and reports the ladder positions a settings change moved (`regroup`)."""

    def __init__(self, book: RuleBook, states: Mapping[StateKey, RuleState]) -> None:
        self.book = book
        self.contexts: dict[str, dict[ContextKey, Context]] = {rule: {} for rule in LEVEL_RULES}
        # Funding and open interest contexts again, by what their value depends on: (window,
        # or "" for funding; asset). Re-arming computes each value once.
        self._by_value: dict[str, dict[tuple[str, str], dict[ContextKey, Context]]] = {
            "funding": {},
            "oi": {},
        }
        self._of_group: defaultdict[Group, set[tuple[str, str]]] = defaultdict(set)
        # chat key -> its disarmed (rule, asset) pairs, rules switched off included: what a
        # rebuilt group's contexts are made from.
        self._disarmed: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)
        self.settled: Settled | None = None  # the last recorded pass
        self._due: tuple[Snapshot, set[int] | None] | None = None
        for (chat, rule, asset), state in states.items():
            if not state.armed and rule in LEVEL_RULES:
                self._disarmed[chat].add((rule, asset))
        for group in book.groups:
            self._add_contexts(group)

    def _add_contexts(self, group: Group) -> None:
        """The group's contexts, from its chats' disarmed rules."""
        disarmed = self._disarmed
        by_context: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
        where: dict[str, dict[int, int]] = {}  # rule -> id(sub) -> position in its ladder
        for sub in group.members.values():
            pairs = disarmed.get(sub.key)
            if pairs:
                for rule, asset in pairs:
                    positions = where.get(rule)
                    if positions is None:
                        subs = group.ladders[rule].subs
                        positions = where[rule] = {id(s): p for p, s in enumerate(subs)}
                    position = positions.get(id(sub))
                    if position is not None:  # else the rule is off for this chat
                        by_context[rule, asset].append(position)
        for (rule, asset), found in by_context.items():
            self._context(rule, group, asset).disarm(sorted(found))

    def regroup(self, edits: Iterable[Edit]) -> None:
        """A settings change moved one chat in these ladders (in this order); their groups are
        looked at by the next pass."""
        for edit in edits:
            group, rule, position = edit.group, edit.rule, edit.position
            pairs = self._of_group.get(group, set())
            assets = [asset for r, asset in pairs if r == rule]
            contexts = self.contexts[rule]
            if edit.added:
                disarmed = {a for r, a in self._disarmed.get(edit.chat, ()) if r == rule}
                for asset in assets:
                    contexts[group, asset].insert(position, asset in disarmed)
                for asset in disarmed.difference(assets):
                    self._context(rule, group, asset).disarm([position])
            else:
                for asset in assets:
                    context = contexts[group, asset]
                    context.remove(position)
                    if not context.disarmed:
                        pairs.discard((rule, asset))
                        self._drop(rule, group, asset)
            if self.settled is not None:
                self.settled.waiting.add(group.index)
        self._due = None

    def _drop(self, rule: str, group: Group, asset: str) -> None:
        del self.contexts[rule][group, asset]
        if rule in self._by_value:
            value_key = (group.window if rule == "oi" else "", asset)
            members = self._by_value[rule][value_key]
            del members[group, asset]
            if not members:
                del self._by_value[rule][value_key]

    def disarm(self, fired: Iterable[Fired]) -> None:
        by_context: defaultdict[tuple[str, Group, str], list[int]] = defaultdict(list)
        for rule, group, asset, position in fired:
            by_context[rule, group, asset].append(position)
        for (rule, group, asset), positions in by_context.items():
            context = self._context(rule, group, asset)
            context.disarm(positions)
            subs = context.ladder.subs
            for position in positions:
                self._disarmed[subs[position].key].add((rule, asset))

    def _context(self, rule: str, group: Group, asset: str) -> Context:
        contexts = self.contexts[rule]
        context = contexts.get((group, asset))
        if context is None:
            context = contexts[group, asset] = Context(group.ladders[rule])
            self._of_group[group].add((rule, asset))
            if rule in self._by_value:
                key = (group.window if rule == "oi" else "", asset)
                self._by_value[rule].setdefault(key, {})[group, asset] = context
        return context

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
    ) -> Rearming:
        """Plan the re-arming of disarmed rules whose value fell below HYSTERESIS x the
        threshold; nothing changes until `apply`."""
        plan = Rearming()
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
            self._plan(rule, rearming, states, plan)
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
                self._plan(rule, rearming, states, plan)
        return plan

    @staticmethod
    def _plan(
        rule: str,
        rearming: list[tuple[Group, str, Context, float]],
        states: Mapping[StateKey, RuleState],
        plan: Rearming,
    ) -> None:
        for group, asset, context, value in rearming:
            moved = context.rearming(value)
            if not moved:
                continue
            plan.moves.append((rule, group, asset, value))
            for position in moved:
                key = (context.ladder.subs[position].key, rule, asset)
                state = states.get(key)
                if state is not None and not state.armed:
                    plan.states[key] = RuleState(True, state.last_fired_at)

    def apply(self, plan: Rearming) -> None:
        """The plan's states are committed: its rules are live again."""
        for chat, rule, asset in plan.states:
            self._disarmed[chat].discard((rule, asset))
        for rule, group, asset, value in plan.moves:
            context = self.contexts[rule].get((group, asset))
            if context is None:
                continue  # the group was rebuilt since, from the chats' disarmed rules
            context.rearm(value)
            if not context.disarmed:
                self._of_group[group].discard((rule, asset))
                self._drop(rule, group, asset)
