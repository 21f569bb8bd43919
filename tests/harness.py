"""Small pieces the network tests share: settings pointed at the fakes, and an event sink that
tests can wait on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.config import CollectorSettings, ExchangeSettings
from bot.events import Gap, Liquidation

FAST = CollectorSettings(reconnect_min=0.01, reconnect_max=0.05)
WAIT = 10.0  # seconds a test may wait for something that should happen at once


def exchange(name: str, ws_url: str, rest_url: str, silence: float = 5.0) -> ExchangeSettings:
    return ExchangeSettings(name, True, ws_url, rest_url, silence)


class Sink:
    """Collects what a collector emits; `wait_for` wakes on every emission."""

    def __init__(self) -> None:
        self.events: list[Liquidation] = []
        self.gaps: list[Gap] = []
        self._changed = asyncio.Event()

    def on_events(self, events: list[Liquidation]) -> None:
        self.events += events
        self._changed.set()

    def on_gap(self, gap: Gap) -> None:
        self.gaps.append(gap)
        self._changed.set()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()
