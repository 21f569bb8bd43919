"""Bitget USDT-M: the v3 socket's sampled liquidation topic, and v2 mix REST polls."""

from __future__ import annotations

import time
from typing import Any

from bot.adapters.reload import ReloadOnUnknown
from bot.clock import now_ms
from bot.feeds import StreamSpec
from bot.model import FundingRate, Liquidation, OpenInterest
from bot.rest import RestClient
from bot.venues import bitget
from bot.venues.common import Instrument, Tally

PRODUCT = {"productType": bitget.PRODUCT_TYPE}


class BitgetSource:
    venue = bitget.NAME
    INTERVALS_MAX_AGE = 3600.0  # funding intervals change rarely: reload them hourly

    def __init__(self, rest: RestClient, ws_url: str) -> None:
        self.rest = rest
        self.ws_url = ws_url
        self.universe: dict[str, Instrument] = {}
        self._intervals: dict[str, float] = {}
        self._intervals_loaded_at = float("-inf")
        self._tally = Tally()

    def streams(self) -> list[StreamSpec]:
        return [
            StreamSpec(
                self.venue,
                self.ws_url,
                self._parse,
                subscribe_frames=lambda: [bitget.SUBSCRIBE_FRAME],
                prepare=self._ensure_universe,
                ping_frame=bitget.PING_FRAME,
                ping_interval=bitget.PING_INTERVAL,
                pong_frame=bitget.PONG_FRAME,
                tally=self._tally,
                control=bitget.control,
                symbols=lambda: len(self.universe),
                reload=ReloadOnUnknown(self.venue, self._tally, self.refresh_instruments),
            )
        ]

    def _parse(self, frame: Any, recv_ts: int) -> list[Liquidation] | None:
        return bitget.parse_liquidations(frame, recv_ts, self.universe, self._tally)

    async def _ensure_universe(self) -> None:
        if not self.universe:
            await self.refresh_instruments()

    async def refresh_instruments(self) -> list[list[str]]:
        data = await self.rest.get("/api/v2/mix/market/contracts", PRODUCT)
        self.universe = bitget.parse_contracts(bitget.unwrap(data))
        return [[]]  # the market-wide topic already covers new listings

    async def _tickers(self) -> tuple[list[FundingRate], list[OpenInterest]]:
        await self._ensure_universe()
        if time.monotonic() - self._intervals_loaded_at > self.INTERVALS_MAX_AGE:
            data = await self.rest.get("/api/v2/mix/market/current-fund-rate", PRODUCT)
            self._intervals = bitget.parse_funding_intervals(bitget.unwrap(data))
            self._intervals_loaded_at = time.monotonic()
        data = await self.rest.get("/api/v2/mix/market/tickers", PRODUCT)
        return bitget.parse_tickers(bitget.unwrap(data), self.universe, self._intervals, now_ms())

    async def poll_funding(self) -> list[FundingRate]:
        return (await self._tickers())[0]

    async def poll_open_interest(self) -> list[OpenInterest]:
        return (await self._tickers())[1]
