"""Rolling liquidation totals, kept in memory so a window read never scans stored events.

Liquidations land in per-minute buckets keyed by (venue, base asset, position). Each window keeps
a running sum of its *completed* minutes: when the clock passes a minute, that minute is added
to every window and the minute that falls out of each window is subtracted. A read is then that
running sum plus the current minute's bucket, whatever the window's length.

A window of N minutes covers the current (partial) minute and the N-1 minutes before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bot.model import Liquidation

WINDOWS: dict[str, int] = {"5m": 5, "15m": 15, "1h": 60, "4h": 240, "24h": 1440}
HISTORY_MINUTES = max(WINDOWS.values())
MS_PER_MINUTE = 60_000

Key = tuple[str, str, str]  # venue, base asset, position
Bucket = dict[Key, list[float]]  # key -> [usd, count]
RollupRow = tuple[int, str, str, str, float, int]  # minute, venue, base, position, usd, count
MinuteClosed = Callable[[int, Iterable[tuple[Key, list[float]]]], None]
# A bucket's keys by base asset with their place in it, for the bucket at its size and minute
KeyIndex = tuple[Bucket, int, int, dict[str, list[tuple[int, Key]]]]


@dataclass(slots=True)
class WindowTotals:
    window: str
    total_usd: float = 0.0
    long_usd: float = 0.0
    short_usd: float = 0.0
    count: int = 0
    by_exchange: dict[str, float] = field(default_factory=dict)
    by_base: dict[str, float] = field(default_factory=dict)

    @property
    def long_share(self) -> float:
        return self.long_usd / self.total_usd if self.total_usd else 0.0


def _add_into(target: Bucket, source: Bucket, sign: int) -> None:
    for key, (usd, count) in source.items():
        slot = target.get(key)
        if slot is None:
            target[key] = [usd * sign, count * sign]
            continue
        slot[0] += usd * sign
        slot[1] += count * sign
        if slot[1] == 0:  # counts are exact, so an empty key leaves no float residue behind
            del target[key]


class MarketState:
    def __init__(self, now_ms: int, on_minute_closed: MinuteClosed | None = None) -> None:
        self._on_minute_closed = on_minute_closed
        self._minute = now_ms // MS_PER_MINUTE
        self._buckets: dict[int, Bucket] = {}
        self._current: Bucket = self._buckets.setdefault(self._minute, {})
        self._completed: dict[str, Bucket] = {name: {} for name in WINDOWS}
        self._keys_by_base: dict[str, KeyIndex] = {}  # for watch-list totals, see _keys_for

    @property
    def minute(self) -> int:
        return self._minute

    def add(self, event: Liquidation) -> None:
        """Count one liquidation."""
        self.add_all((event,))

    def add_all(self, events: Iterable[Liquidation]) -> None:
        """Count a frame's liquidations: one call per frame (the ingest hot path). The common
        case, an event of the current minute, is two dict lookups."""
        minute = self._minute
        current = self._current
        for event in events:
            key = (event.venue, event.base, event.position)
            if event.ts // MS_PER_MINUTE == minute:
                bucket = current
            else:
                other = self._bucket_for_other_minute(
                    event.ts // MS_PER_MINUTE, event.recv_ts // MS_PER_MINUTE, key, event.usd
                )
                minute, current = self._minute, self._current  # the clock may have moved on
                if other is None:
                    continue
                bucket = other
            slot = bucket.get(key)
            if slot is None:
                bucket[key] = [event.usd, 1]
            else:
                slot[0] += event.usd
                slot[1] += 1

    def _bucket_for_other_minute(
        self, minute: int, received_minute: int, key: Key, usd: float
    ) -> Bucket | None:
        """The bucket for an event outside the current minute, or None for one too old to count.

        A late event is also added to the running sums of the windows that already hold its
        minute. A venue clock ahead of ours moves the clock on, but never past our own clock.
        """
        if minute > self._minute:
            self.advance(min(minute, received_minute + 1) * MS_PER_MINUTE)
            return self._current
        age = self._minute - minute
        if age >= HISTORY_MINUTES:
            return None
        for name, length in WINDOWS.items():
            if age < length:
                _add_into(self._completed[name], {key: [usd, 1]}, 1)
        return self._buckets.setdefault(minute, {})

    def advance(self, now_ms: int) -> None:
        """Move the clock to `now_ms`, folding finished minutes into the windows."""
        target = now_ms // MS_PER_MINUTE
        if target <= self._minute:
            return
        if target - self._minute > HISTORY_MINUTES:
            self._minute = target
            self._buckets = {}
            self._completed = {name: {} for name in WINDOWS}
        while self._minute < target:
            finished = self._buckets.get(self._minute)
            if finished and self._on_minute_closed is not None:
                self._on_minute_closed(self._minute, finished.items())
            self._minute += 1
            for name, length in WINDOWS.items():
                completed = self._completed[name]
                if finished:
                    _add_into(completed, finished, 1)
                leaving = self._buckets.get(self._minute - length)
                if leaving:
                    _add_into(completed, leaving, -1)
            self._buckets.pop(self._minute - HISTORY_MINUTES, None)
        self._current = self._buckets.setdefault(self._minute, {})

    def load_rollups(self, rows: Iterable[RollupRow]) -> None:
        """Rebuild from stored per-minute rollups (at start, or in another process)."""
        oldest = self._minute - HISTORY_MINUTES + 1
        for minute, venue, base, position, usd, count in rows:
            if oldest <= minute <= self._minute:
                bucket = self._buckets.setdefault(minute, {})
                _add_into(bucket, {(venue, base, position): [usd, count]}, 1)
        self._current = self._buckets.setdefault(self._minute, {})
        for name, length in WINDOWS.items():
            completed: Bucket = {}
            for minute in range(self._minute - length + 1, self._minute):
                if minute in self._buckets:
                    _add_into(completed, self._buckets[minute], 1)
            self._completed[name] = completed

    def totals(self, window: str, bases: frozenset[str] | None = None) -> WindowTotals:
        """Totals in the window, for some base assets only or (None) the whole market."""
        long_usd = short_usd = 0.0
        count = 0
        by_exchange: dict[str, float] = {}
        by_base: dict[str, float] = {}
        for name, bucket in ((window, self._completed[window]), ("", self._current)):
            items: Iterable[tuple[Key, list[float]]] = bucket.items()
            if bases is not None:
                items = [(key, bucket[key]) for key in self._keys_for(name, bucket, bases)]
            for (venue, base, position), (usd, n) in items:
                count += int(n)
                if position == "long":
                    long_usd += usd
                else:
                    short_usd += usd
                by_exchange[venue] = by_exchange.get(venue, 0.0) + usd
                by_base[base] = by_base.get(base, 0.0) + usd
        return WindowTotals(
            window,
            long_usd + short_usd,
            long_usd,
            short_usd,
            count,
            by_exchange,
            dict(sorted(by_base.items(), key=lambda item: -item[1])),
        )

    def _keys_for(self, name: str, bucket: Bucket, bases: frozenset[str]) -> list[Key]:
        """The bucket's keys for `bases`, in the bucket's order, from an index of the bucket.

        Within a minute a window's bucket only gains keys (it loses some only when the clock
        moves on), so the index stays right while the bucket, its size and the minute do."""
        cached = self._keys_by_base.get(name)
        if (
            cached is None
            or cached[0] is not bucket
            or cached[1] != len(bucket)
            or cached[2] != self._minute
        ):
            index: dict[str, list[tuple[int, Key]]] = {}
            for place, key in enumerate(bucket):
                index.setdefault(key[1], []).append((place, key))
            cached = self._keys_by_base[name] = (bucket, len(bucket), self._minute, index)
        index = cached[3]
        found = [entry for base in bases for entry in index.get(base, ())]
        if len(bases) > 1:
            found.sort()
        return [key for _, key in found]

    def minute_sides(
        self, first_minute: int, last_minute: int, bases: frozenset[str] | None = None
    ) -> list[tuple[int, float, float]]:
        """(minute, long_usd, short_usd) of each minute from `first_minute` to `last_minute`
        (at most the current one) that has liquidations, for some base assets only or (None)
        the whole market: the buckets the window totals are made of."""
        rows = []
        first = max(first_minute, self._minute - HISTORY_MINUTES + 1)
        for minute in range(first, min(last_minute, self._minute) + 1):
            bucket = self._buckets.get(minute)
            if not bucket:
                continue
            long_usd = short_usd = 0.0
            for (_, base, position), (usd, _) in bucket.items():
                if bases is not None and base not in bases:
                    continue
                if position == "long":
                    long_usd += usd
                else:
                    short_usd += usd
            if long_usd or short_usd:
                rows.append((minute, long_usd, short_usd))
        return rows

    def sides_by_base(self, window: str) -> dict[str, list[float]]:
        """base -> [long_usd, short_usd] in the window, all venues together."""
        sides: dict[str, list[float]] = {}
        for bucket in (self._completed[window], self._current):
            for (_, base, position), (usd, _) in bucket.items():
                slot = sides.get(base)
                if slot is None:
                    slot = sides[base] = [0.0, 0.0]
                slot[0 if position == "long" else 1] += usd
        return sides
