"""Which chats' thresholds the market crossed. Pure decisions: nothing here writes or sends.

Chats are grouped by (window, watch list); each group's aggregate is computed once per pass and
its chats are kept sorted by each threshold, so the chats a value crosses are a prefix found by
bisection. A rule that fired stays disarmed until its value falls back (hysteresis); `Arming`
sets the disarmed chats of each (group, rule, asset) aside, so a pass visits only chats that can
fire and re-arms by bisection too. A pass over 100,000 chats therefore costs about one aggregate
per distinct group plus a step per alert, not a step per chat or per rule state.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from bot import messages
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
Message = Callable[[], tuple[str, str | None]]  # an alert's text and side, made on first use


@dataclass(frozen=True, slots=True)
class Trigger:
    sub: Subscription
    rule: str
    asset: str
    text: str
    side: str | None


class Ladder:
    """Subscriptions sorted by one threshold (0 = rule off, left out)."""

    def __init__(self, pairs: Iterable[tuple[float, Subscription]]) -> None:
        ordered = sorted((pair for pair in pairs if pair[0] > 0), key=lambda pair: pair[0])
        self.thresholds = [threshold for threshold, _ in ordered]
        self.subs = [sub for _, sub in ordered]

    def __bool__(self) -> bool:
        return bool(self.subs)

    @property
    def lowest(self) -> float:
        return self.thresholds[0] if self.thresholds else float("inf")

    def crossed(self, value: float) -> list[Subscription]:
        return self.subs[: bisect_right(self.thresholds, value)]

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
        self.liq = Ladder((s.thresholds.liq, s) for s in subs)
        self.spike = Ladder((s.thresholds.spike, s) for s in subs)
        self.funding = Ladder((s.thresholds.funding, s) for s in subs)
        self.oi = Ladder((s.thresholds.oi, s) for s in subs)

    def ladder(self, rule: str) -> Ladder:
        ladder: Ladder = getattr(self, THRESHOLD_OF[rule])
        return ladder


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
            norm = self.norms.norm(WINDOWS[window], watch or None)
            ratio = None
            if norm is not None and norm.average_usd > 0:
                ratio = sum(self.sides(window, watch)) / norm.average_usd
            self._ratios[key] = ratio
        return self._ratios[key]

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

    def move_of(self, window: str) -> dict[str, OpenInterestMove]:
        """base -> its open interest move over the window, in the order of `moves()`."""
        if window not in self._move_of:
            self._move_of[window] = {move.base: move for move in self.moves(window)}
        return self._move_of[window]


def _ranks(order: Iterable[str]) -> dict[str, int]:
    return {base: rank for rank, base in enumerate(order)}


def _in_order(ranks: dict[str, int], watch: frozenset[str]) -> list[str]:
    """The watched assets that `ranks` holds, in its order."""
    return sorted((base for base in watch if base in ranks), key=ranks.__getitem__)


def rule_value(
    snap: Snapshot, window: str, watch: frozenset[str], rule: str, asset: str
) -> float | None:
    """A rule's value now for a window and watch list; None when it has no level (whales)."""
    if rule == "window":
        return sum(snap.sides(window, watch))
    if rule == "spike":
        return snap.spike_ratio(window, watch) or 0.0
    if rule == "funding":
        return snap.funding_levels().get(asset, 0.0)
    if rule == "oi":
        move = snap.move_of(window).get(asset)
        return abs(move.change) if move is not None else 0.0
    return None


def current_value(snap: Snapshot, sub: Subscription, rule: str, asset: str) -> float | None:
    """A rule's value now, for re-arming; None when it cannot be known in this pass."""
    return rule_value(snap, sub.thresholds.window, sub.watch, rule, asset)


class Context:
    """One ladder as one (group, rule, asset) sees it: positions (in the ladder's order) that
    fired and are disarmed are set aside until the value falls back; the rest are live."""

    __slots__ = ("disarmed", "ladder", "live")

    def __init__(self, ladder: Ladder) -> None:
        self.ladder = ladder
        self.live = list(range(len(ladder.subs)))
        self.disarmed: list[int] = []

    def candidates(self, crossed: int) -> list[int]:
        """Live positions among the first `crossed`, in ladder order."""
        return self.live[: bisect_left(self.live, crossed)]

    def disarm(self, positions: list[int]) -> None:
        if len(positions) <= 8:
            for position in positions:
                index = bisect_left(self.live, position)
                if index < len(self.live) and self.live[index] == position:
                    del self.live[index]
                    insort(self.disarmed, position)
            return
        gone = set(positions)
        self.disarmed = sorted([*self.disarmed, *(p for p in self.live if p in gone)])
        self.live = [p for p in self.live if p not in gone]

    def rearm(self, value: float) -> list[int]:
        """The disarmed positions that re-arm at `value`, moved back among the live ones."""
        if not self.disarmed or not self.ladder.rearms(value, self.disarmed[-1]):
            return []
        start = bisect_left(self.disarmed, self.ladder.rearm_from(value))
        moved = self.disarmed[start:]
        del self.disarmed[start:]
        self.live = sorted(self.live + moved)
        return moved


ContextKey = tuple[Group, str]  # group, asset (one dict of contexts per rule)
Fired = tuple[str, Group, str, int]  # rule, group, asset, position in the group's ladder


class Arming:
    """Which rules of each (group, rule, asset) are disarmed, kept in step with the rule states
    by the caller: built from them, then told of every firing (`disarm`) and re-arming."""

    def __init__(self, book: RuleBook, states: Mapping[StateKey, RuleState]) -> None:
        self.book = book
        self.contexts: dict[str, dict[ContextKey, Context]] = {rule: {} for rule in THRESHOLD_OF}
        positions: dict[Ladder, dict[int, int]] = {}  # ladder -> id(sub) -> position
        found: list[Fired] = []
        for (chat, rule, asset), state in states.items():
            sub = self.book.by_key.get(chat)
            if state.armed or sub is None or rule not in THRESHOLD_OF:
                continue
            group = book.by_group[sub.thresholds.window, sub.watch]
            ladder = group.ladder(rule)
            where = positions.get(ladder)
            if where is None:
                where = positions[ladder] = {id(s): i for i, s in enumerate(ladder.subs)}
            position = where.get(id(sub))
            if position is not None:  # else the rule is off for this chat
                found.append((rule, group, asset, position))
        self.disarm(found)

    def candidates(self, rule: str, group: Group, asset: str, value: float) -> Sequence[int]:
        """Positions in the group's ladder for `rule` that `value` crosses and that are not
        disarmed, in ladder order."""
        crossed = bisect_right(group.ladder(rule).thresholds, value)
        context = self.contexts[rule].get((group, asset))
        return range(crossed) if context is None else context.candidates(crossed)

    def disarm(self, fired: Iterable[Fired]) -> None:
        by_context: defaultdict[tuple[str, Group, str], list[int]] = defaultdict(list)
        for rule, group, asset, position in fired:
            by_context[rule, group, asset].append(position)
        for (rule, group, asset), positions in by_context.items():
            contexts = self.contexts[rule]
            context = contexts.get((group, asset))
            if context is None:
                context = contexts[group, asset] = Context(group.ladder(rule))
            context.disarm(positions)

    def rearm(
        self, snap: Snapshot, states: Mapping[StateKey, RuleState], include_market_data: bool
    ) -> dict[StateKey, RuleState]:
        """States to change: disarmed rules whose value fell below HYSTERESIS x the threshold.
        They are live again here at once; the caller applies the states."""
        changed: dict[StateKey, RuleState] = {}
        rules = THRESHOLD_OF if include_market_data else ("window", "spike")
        for rule in rules:
            contexts = self.contexts[rule]
            for (group, asset), context in list(contexts.items()):
                value = rule_value(snap, group.window, group.watch, rule, asset)
                moved = context.rearm(value) if value is not None else []
                if not context.disarmed:
                    del contexts[group, asset]
                for position in moved:
                    key = (context.ladder.subs[position].key, rule, asset)
                    state = states.get(key)
                    if state is not None and not state.armed:
                        changed[key] = RuleState(True, state.last_fired_at)
        return changed


def rearm(
    book: RuleBook, snap: Snapshot, states: dict[StateKey, RuleState], include_market_data: bool
) -> dict[StateKey, RuleState]:
    """States to change: disarmed rules whose value fell below HYSTERESIS x the threshold."""
    return Arming(book, states).rearm(snap, states, include_market_data)


class Evaluation:
    """One pass: collects triggers for chats whose rules are armed and out of cooldown."""

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
        self.fired: list[Fired] = []  # the rules with a level that fired: disarmed if recorded
        self._texts: dict[tuple[str, str, str], str] = {}

    def _may_fire(self, sub: Subscription, rule: str, asset: str) -> bool:
        if sub.mute_until is not None and self.snap.now < sub.mute_until:
            return False
        state = self.states.get((sub.key, rule, asset))
        if state is None:
            return True
        cooled = self.snap.now - state.last_fired_at >= sub.thresholds.cooldown * 1000
        return state.armed and cooled

    def _fire(
        self, subs: Iterable[Subscription], rule: str, asset: str, text: str, side: str | None
    ) -> None:
        for sub in subs:
            if self._may_fire(sub, rule, asset):
                self.triggers.append(Trigger(sub, rule, asset, text, side))

    def _fire_crossed(
        self,
        group: Group,
        rule: str,
        asset: str,
        value: float,
        message: Message,
        share: float | None = None,
    ) -> None:
        """Fire the group's chats whose `rule` threshold `value` crosses (and, with `share`,
        whose side share it meets); the message is made once, for the first that fires."""
        subs = group.ladder(rule).subs
        made: tuple[str, str | None] | None = None
        for position in self.arming.candidates(rule, group, asset, value):
            sub = subs[position]
            if share is not None and sub.thresholds.side > share:
                continue
            if not self._may_fire(sub, rule, asset):
                continue
            if made is None:
                made = message()
            self.triggers.append(Trigger(sub, rule, asset, *made))
            self.fired.append((rule, group, asset, position))

    def _window_message(self, group: Group, spike: bool) -> tuple[str, str | None]:
        snap = self.snap
        view = snap.view(group.window, group.watch)
        alert = messages.spike_alert if spike else messages.window_alert
        return alert(view, snap.funding(), snap.open_interest()), view.dominant

    def liquidations(self, whales: Iterable[Liquidation]) -> None:
        snap = self.snap
        for group in self.book.groups:
            long_usd, short_usd = snap.sides(group.window, group.watch)
            total = long_usd + short_usd
            if group.liq and total >= group.liq.lowest:
                share = max(long_usd, short_usd) / total
                message = partial(self._window_message, group, False)
                self._fire_crossed(group, "window", MARKET, total, message, share)
            if group.spike and total > 0:
                ratio = snap.spike_ratio(group.window, group.watch)
                if ratio is not None and ratio >= group.spike.lowest:
                    message = partial(self._window_message, group, True)
                    self._fire_crossed(group, "spike", MARKET, ratio, message)
        for event in whales:
            text = messages.whale_alert(event)
            for base in (MARKET, event.base):
                ladder = self.book.whales.get(base)
                if ladder:
                    self._fire(ladder.crossed(event.usd), "whale", event.base, text, event.position)

    def _text(self, rule: str, asset: str, window: str) -> tuple[str, str | None]:
        key = (rule, asset, window)
        text = self._texts.get(key)
        if text is None:
            if rule == "funding":
                text = messages.funding_alert(self.snap.funding()[asset])
            else:
                text = messages.open_interest_alert(self.snap.move_of(window)[asset], window)
            self._texts[key] = text
        return text, None

    def funding_and_open_interest(self) -> None:
        snap = self.snap
        levels = snap.funding_levels()
        funding_ranks = _ranks(levels)
        move_ranks: dict[str, dict[str, int]] = {}
        for group in self.book.groups:
            if group.funding:
                lowest = group.funding.lowest
                for base in _in_order(funding_ranks, group.watch) if group.watch else levels:
                    value = levels[base]
                    if value >= lowest:
                        message = partial(self._text, "funding", base, "")
                        self._fire_crossed(group, "funding", base, value, message)
            if group.oi:
                lowest = group.oi.lowest
                moves = snap.move_of(group.window)
                if group.window not in move_ranks:
                    move_ranks[group.window] = _ranks(moves)
                ranks = move_ranks[group.window]
                for base in _in_order(ranks, group.watch) if group.watch else moves:
                    value = abs(moves[base].change)
                    if value >= lowest:
                        message = partial(self._text, "oi", base, group.window)
                        self._fire_crossed(group, "oi", base, value, message)
