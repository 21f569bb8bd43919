"""Hyperliquid: REST only (no public liquidation feed). One `metaAndAssetCtxs` query answers
both funding and open interest; the two polls share an answer while it is fresh, and the weight
spent per minute is kept under a budget."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from bot.clock import now_ms
from bot.feeds import StreamSpec
from bot.model import FundingRate, OpenInterest
from bot.rest import RestClient, RestError
from bot.venues import hyperliquid


class HyperliquidSource:
    venue = hyperliquid.NAME
    WEIGHT_BUDGET = 600  # a minute; half of the 1200 Hyperliquid allows per IP
    SHARE_FOR = 30.0  # seconds one answer serves both polls

    def __init__(self, rest: RestClient, ws_url: str) -> None:
        self.rest = rest
        self._answer: tuple[float, Any] | None = None
        self._spent: deque[float] = deque()  # monotonic times of queries in the last minute

    def streams(self) -> list[StreamSpec]:
        return []

    async def refresh_instruments(self) -> list[list[str]]:
        return []  # no streams to hand new listings to

    async def _query(self) -> Any:
        now = time.monotonic()
        if self._answer is not None and now - self._answer[0] < self.SHARE_FOR:
            return self._answer[1]
        while self._spent and now - self._spent[0] >= 60.0:
            self._spent.popleft()
        if (len(self._spent) + 1) * hyperliquid.QUERY_WEIGHT > self.WEIGHT_BUDGET:
            raise RestError(f"{self.venue}: weight budget for this minute spent; poll skipped")
        self._spent.append(now)
        payload = await self.rest.post(hyperliquid.INFO_PATH, hyperliquid.QUERY)
        self._answer = (now, payload)
        return payload

    async def poll_funding(self) -> list[FundingRate]:
        return hyperliquid.parse(await self._query(), now_ms())[0]

    async def poll_open_interest(self) -> list[OpenInterest]:
        return hyperliquid.parse(await self._query(), now_ms())[1]
