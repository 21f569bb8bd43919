"""Plain counters kept on the hot path; the metrics collector (bot/metrics.py) reads them only
when Prometheus scrapes, so counting a liquidation costs two dict lookups and two additions
(bench/metrics.py measures it)."""

from __future__ import annotations

from collections.abc import Iterable

from bot.model import Liquidation


class LiquidationCounts:
    """Liquidations received since start: `by_venue[venue][position]` is [count, USD]."""

    __slots__ = ("by_venue",)

    def __init__(self) -> None:
        self.by_venue: dict[str, dict[str, list[float]]] = {}

    def add(self, events: Iterable[Liquidation]) -> None:
        by_venue = self.by_venue
        for event in events:
            try:
                slot = by_venue[event.venue][event.position]
            except KeyError:  # a venue's first liquidation
                sides = by_venue.setdefault(event.venue, {"long": [0, 0.0], "short": [0, 0.0]})
                slot = sides[event.position]
            slot[0] += 1
            slot[1] += event.usd

    def get(self, venue: str, position: str) -> tuple[int, float]:
        count, usd = self.by_venue.get(venue, {}).get(position, (0, 0.0))
        return int(count), usd
