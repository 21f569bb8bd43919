"""Which chats' thresholds the market crossed. Pure decisions: nothing here writes or sends.

Chats are grouped by (window, watch list); each group's aggregate is computed once per pass and
its chats are kept sorted by each threshold, so the chats a value crosses are a prefix found by
bisection. A pass over 100,000 chats therefore costs about one aggregate per distinct group, not
one per chat.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

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


class Group:
    """Chats that share a window and a watch list, and so share every aggregate."""

    def __init__(self, window: str, watch: frozenset[str], subs: list[Subscription]) -> None:
        self.window = window
        self.watch = watch
        self.liq = Ladder((s.thresholds.liq, s) for s in subs)
        self.spike = Ladder((s.thresholds.spike, s) for s in subs)
        self.funding = Ladder((s.thresholds.funding, s) for s in subs)
        self.oi = Ladder((s.thresholds.oi, s) for s in subs)


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
        self.groups = [
            Group(window, watch, members) for (window, watch), members in grouped.items()
        ]
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
        self._funding: dict[str, FundingRate] | None = None
        self._moves: dict[str, list[OpenInterestMove]] = {}

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
            cached = (sum(r[0] for r in rows), sum(r[1] for r in rows))
            self._totals[key] = cached
        return cached

    def view(self, window: str, watch: frozenset[str]) -> WindowView:
        totals = self.market.totals(window, watch or None)
        return WindowView(
            window,
            totals.total_usd,
            totals.long_usd,
            totals.short_usd,
            totals.count,
            totals.by_base,
            totals.by_exchange,
            self.norms.norm(WINDOWS[window], watch or None),
        )

    def spike_ratio(self, window: str, watch: frozenset[str]) -> float | None:
        norm = self.norms.norm(WINDOWS[window], watch or None)
        if norm is None or norm.average_usd <= 0:
            return None
        return sum(self.sides(window, watch)) / norm.average_usd

    def funding(self) -> dict[str, FundingRate]:
        if self._funding is None:
            self._funding = self.derivatives.extreme_funding_by_base()
        return self._funding

    def moves(self, window: str) -> list[OpenInterestMove]:
        if window not in self._moves:
            self._moves[window] = self.derivatives.open_interest_moves(
                WINDOWS[window] * MS_PER_MINUTE, self.now
            )
        return self._moves[window]


def _watched(watch: frozenset[str], base: str) -> bool:
    return not watch or base in watch


class Evaluation:
    """One pass: collects triggers for chats whose rules are armed and out of cooldown."""

    def __init__(self, book: RuleBook, snap: Snapshot, states: dict[StateKey, RuleState]) -> None:
        self.book = book
        self.snap = snap
        self.states = states
        self.triggers: list[Trigger] = []

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

    def liquidations(self, whales: Iterable[Liquidation]) -> None:
        snap = self.snap
        for group in self.book.groups:
            long_usd, short_usd = snap.sides(group.window, group.watch)
            total = long_usd + short_usd
            if group.liq and total >= group.liq.lowest:
                share = max(long_usd, short_usd) / total
                crossed = [s for s in group.liq.crossed(total) if s.thresholds.side <= share]
                if crossed:
                    view = snap.view(group.window, group.watch)
                    text = messages.window_alert(
                        view, snap.funding(), snap.derivatives.open_interest_by_base()
                    )
                    self._fire(crossed, "window", MARKET, text, view.dominant)
            if group.spike and total > 0:
                ratio = snap.spike_ratio(group.window, group.watch)
                if ratio is not None and ratio >= group.spike.lowest:
                    view = snap.view(group.window, group.watch)
                    text = messages.spike_alert(
                        view, snap.funding(), snap.derivatives.open_interest_by_base()
                    )
                    self._fire(group.spike.crossed(ratio), "spike", MARKET, text, view.dominant)
        for event in whales:
            text = messages.whale_alert(event)
            for base in (MARKET, event.base):
                ladder = self.book.whales.get(base)
                if ladder:
                    self._fire(ladder.crossed(event.usd), "whale", event.base, text, event.position)

    def funding_and_open_interest(self) -> None:
        snap = self.snap
        funding = snap.funding()
        for group in self.book.groups:
            if group.funding:
                for base, rate in funding.items():
                    value = abs(rate.rate_8h)
                    if value >= group.funding.lowest and _watched(group.watch, base):
                        self._fire(
                            group.funding.crossed(value),
                            "funding",
                            base,
                            messages.funding_alert(rate),
                            None,
                        )
            if group.oi:
                for move in snap.moves(group.window):
                    value = abs(move.change)
                    if value >= group.oi.lowest and _watched(group.watch, move.base):
                        self._fire(
                            group.oi.crossed(value),
                            "oi",
                            move.base,
                            messages.open_interest_alert(move, group.window),
                            None,
                        )


def current_value(snap: Snapshot, sub: Subscription, rule: str, asset: str) -> float | None:
    """A rule's value now, for re-arming; None when it cannot be known in this pass."""
    window, watch = sub.thresholds.window, sub.watch
    if rule == "window":
        return sum(snap.sides(window, watch))
    if rule == "spike":
        return snap.spike_ratio(window, watch) or 0.0
    if rule == "funding":
        rate = snap.funding().get(asset)
        return abs(rate.rate_8h) if rate else 0.0
    if rule == "oi":
        moves = {move.base: move for move in snap.moves(window)}
        return abs(moves[asset].change) if asset in moves else 0.0
    return None


THRESHOLD_OF = {"window": "liq", "spike": "spike", "funding": "funding", "oi": "oi"}


def rearm(
    book: RuleBook, snap: Snapshot, states: dict[StateKey, RuleState], include_market_data: bool
) -> dict[StateKey, RuleState]:
    """States to change: disarmed rules whose value fell below HYSTERESIS x the threshold."""
    changed: dict[StateKey, RuleState] = {}
    for key, state in states.items():
        if state.armed:
            continue
        chat, rule, asset = key
        sub = book.by_key.get(chat)
        if sub is None or (rule in ("funding", "oi") and not include_market_data):
            continue
        value = current_value(snap, sub, rule, asset)
        threshold = getattr(sub.thresholds, THRESHOLD_OF.get(rule, "liq"))
        if value is not None and value < HYSTERESIS * threshold:
            changed[key] = RuleState(True, state.last_fired_at)
    return changed
