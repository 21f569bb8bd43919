"""Where normalised liquidations go: the in-memory windows first, then the writer's buffer."""

from __future__ import annotations

from bot.events import Liquidation
from bot.market import MarketState
from bot.recorder import Recorder


class Pipeline:
    def __init__(self, market: MarketState, recorder: Recorder) -> None:
        self.market = market
        self.recorder = recorder

    def on_liquidations(self, events: list[Liquidation]) -> None:
        add = self.market.add
        for event in events:
            add(event)
        self.recorder.add_liquidations(events)
