"""30-day norms: how much is usually liquidated, per asset and side, so an alert can say
"4.8x the 30-day hourly average; longs usually 52%".

Completed minutes are folded into per-day totals by base asset and position; a running sum
over the last 30 days answers any window length and watch list without scanning history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MS_PER_MINUTE = 60_000
MINUTES_PER_DAY = 1440
NORM_DAYS = 30
# Below a day of history an average says more about the day than about the norm.
MIN_HISTORY_MINUTES = MINUTES_PER_DAY

Sides = list[float]  # [long_usd, short_usd]
DailyRow = tuple[int, str, str, float]  # day, base, position, usd


@dataclass(frozen=True, slots=True)
class Norm:
    """The 30-day (or shorter, if history is shorter) average for one window length."""

    average_usd: float
    long_share: float | None  # None when nothing was liquidated in the period
    history_days: float


class Norms:
    def __init__(self, history_start_minute: int | None = None) -> None:
        self._days: dict[int, dict[str, Sides]] = {}
        self._totals: dict[str, Sides] = {}
        self._start = history_start_minute
        self._minute = history_start_minute or 0
        # Answers of `norm`, until the totals or the clock change
        self._norms: dict[tuple[int, frozenset[str] | None], Norm | None] = {}

    def add_minute(
        self, minute: int, bucket: Iterable[tuple[tuple[str, str, str], list[float]]]
    ) -> None:
        """Fold one completed minute: bucket items of (venue, base, position) -> [usd, count]."""
        if self._start is None:
            self._start = minute
        self._minute = max(self._minute, minute)
        day = self._days.setdefault(minute // MINUTES_PER_DAY, {})
        for (_, base, position), (usd, _) in bucket:
            index = 0 if position == "long" else 1
            day.setdefault(base, [0.0, 0.0])[index] += usd
            self._totals.setdefault(base, [0.0, 0.0])[index] += usd
        self._expire()
        self._norms.clear()

    def load(
        self, rows: Iterable[DailyRow], history_start_minute: int | None, now_minute: int
    ) -> None:
        """Rebuild from per-day sums of stored rollups."""
        for day, base, position, usd in rows:
            index = 0 if position == "long" else 1
            self._days.setdefault(day, {}).setdefault(base, [0.0, 0.0])[index] += usd
            self._totals.setdefault(base, [0.0, 0.0])[index] += usd
        self._start = history_start_minute
        self._minute = now_minute
        self._expire()
        self._norms.clear()

    def _expire(self) -> None:
        oldest_day = self._minute // MINUTES_PER_DAY - NORM_DAYS
        for day in [d for d in self._days if d < oldest_day]:
            for base, (long_usd, short_usd) in self._days.pop(day).items():
                totals = self._totals[base]
                totals[0] -= long_usd
                totals[1] -= short_usd

    def norm(self, window_minutes: int, bases: frozenset[str] | None) -> Norm | None:
        """The average per window for these assets (None: the whole market); None when the
        history is too short to say."""
        key = (window_minutes, bases)
        if key not in self._norms:
            self._norms[key] = self._norm(window_minutes, bases)
        return self._norms[key]

    def _norm(self, window_minutes: int, bases: frozenset[str] | None) -> Norm | None:
        if self._start is None:
            return None
        oldest = (self._minute // MINUTES_PER_DAY - NORM_DAYS) * MINUTES_PER_DAY
        covered = self._minute + 1 - max(self._start, oldest)
        if covered < MIN_HISTORY_MINUTES:
            return None
        sides = (
            list(self._totals.values())
            if bases is None
            else [self._totals[b] for b in bases if b in self._totals]
        )
        long_usd = sum(s[0] for s in sides)
        short_usd = sum(s[1] for s in sides)
        total = long_usd + short_usd
        return Norm(
            average_usd=total * window_minutes / covered,
            long_share=long_usd / total if total > 0 else None,
            history_days=covered / MINUTES_PER_DAY,
        )
