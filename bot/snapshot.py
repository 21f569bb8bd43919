"""The market as the rules see it in one pass: every aggregate computed once and cached."""

from __future__ import annotations

from bot.derivatives import Derivatives, OpenInterestMove
from bot.market import WINDOWS, MarketState
from bot.messages import WindowView
from bot.model import FundingRate
from bot.norms import Norms

MS_PER_MINUTE = 60_000


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

    @property
    def sides_seen(self) -> dict[str, dict[str, list[float]]]:
        """window -> base -> [long_usd, short_usd], for the windows this pass looked at."""
        return self._by_base

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
            return self.spike_ratio_of(key, sum(self.sides(window, watch)))
        return self._ratios[key]

    def spike_ratio_of(self, key: tuple[str, frozenset[str]], total: float) -> float | None:
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
