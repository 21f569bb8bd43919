"""Plain counters kept on the hot path; the metrics collector (bot/metrics.py) reads them only
when Prometheus scrapes, so counting costs a dict lookup and two additions per liquidation."""

from __future__ import annotations

from collections.abc import Iterable

from bot.events import Liquidation


class LiquidationCounts:
    """Liquidations received since start, per (exchange, position): [count, USD]."""

    __slots__ = ("by_key",)

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], list[float]] = {}

    def add(self, events: Iterable[Liquidation]) -> None:
        by_key = self.by_key
        for event in events:
            key = (event.venue, event.position)
            slot = by_key.get(key)
            if slot is None:
                by_key[key] = [1, event.usd]
            else:
                slot[0] += 1
                slot[1] += event.usd
