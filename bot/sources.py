"""Per-venue I/O around the pure parsers: the stream each venue needs, its instrument lists,
and the REST polls for funding and open interest."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from bot.events import FundingRate, OpenInterest
from bot.feeds import StreamSpec
from bot.recorder import now_ms
from bot.rest import RestClient
from bot.venues import binance, bybit, okx

log = logging.getLogger(__name__)


class Source(Protocol):
    venue: str
    rest: RestClient

    def stream(self) -> StreamSpec: ...

    async def refresh_instruments(self) -> list[str]:
        """Reload the venue's instruments; returns subscribe frames for new listings."""
        ...

    async def poll_funding(self) -> list[FundingRate]: ...

    async def poll_open_interest(self) -> list[OpenInterest]: ...


class BinanceSource:
    venue = binance.NAME
    # Binance allows 2,400 request weight a minute per IP; the open-interest sweep (one call per
    # symbol) pauses once this much is used, leaving room for everything else.
    WEIGHT_BUDGET = 1_200
    FUNDING_INFO_MAX_AGE = 3600.0

    def __init__(self, rest: RestClient, ws_url: str) -> None:
        self.rest = rest
        self.ws_url = ws_url
        self._intervals: dict[str, float] = {}
        self._intervals_loaded_at = float("-inf")
        self._mark_prices: dict[str, float] = {}

    def stream(self) -> StreamSpec:
        return StreamSpec(self.venue, binance.stream_url(self.ws_url), binance.parse_liquidations)

    async def refresh_instruments(self) -> list[str]:
        return []  # one all-market stream: new listings arrive on it by themselves

    async def poll_funding(self) -> list[FundingRate]:
        if time.monotonic() - self._intervals_loaded_at > self.FUNDING_INFO_MAX_AGE:
            self._intervals = binance.parse_funding_intervals(
                await self.rest.get("/fapi/v1/fundingInfo")
            )
            self._intervals_loaded_at = time.monotonic()
        rates = binance.parse_premium_index(
            await self.rest.get("/fapi/v1/premiumIndex"), self._intervals
        )
        self._mark_prices = {rate.symbol: rate.mark_price or 0.0 for rate in rates}
        return rates

    async def poll_open_interest(self) -> list[OpenInterest]:
        if not self._mark_prices:
            await self.poll_funding()
        interests = []
        for symbol, mark_price in sorted(self._mark_prices.items()):
            payload = await self.rest.get("/fapi/v1/openInterest", {"symbol": symbol})
            interest = binance.parse_open_interest(payload, mark_price)
            if interest is not None:
                interests.append(interest)
            await self._respect_weight_budget()
        return interests

    async def _respect_weight_budget(self) -> None:
        used = self.rest.last_headers.get("X-MBX-USED-WEIGHT-1M", "0")
        if used.isdigit() and int(used) >= self.WEIGHT_BUDGET:
            wait = 60.0 - (time.time() % 60.0) + 0.5
            log.info("binance: %s request weight used this minute; waiting %.0f s", used, wait)
            await asyncio.sleep(wait)


class BybitSource:
    venue = bybit.NAME
    PAGE_SIZE = "1000"

    def __init__(self, rest: RestClient, ws_url: str) -> None:
        self.rest = rest
        self.ws_url = ws_url
        self.symbols: set[str] = set()

    def stream(self) -> StreamSpec:
        return StreamSpec(
            self.venue,
            self.ws_url,
            bybit.parse_liquidations,
            subscribe_frames=lambda: bybit.subscribe_frames(sorted(self.symbols)),
            prepare=self._ensure_instruments,
            ping_frame=bybit.PING_FRAME,
            ping_interval=bybit.PING_INTERVAL,
        )

    async def _ensure_instruments(self) -> None:
        if not self.symbols:
            await self.refresh_instruments()

    async def refresh_instruments(self) -> list[str]:
        symbols: set[str] = set()
        cursor = ""
        while True:
            params = {"category": "linear", "limit": self.PAGE_SIZE}
            if cursor:
                params["cursor"] = cursor
            page, cursor = bybit.parse_instruments_page(
                bybit.unwrap(await self.rest.get("/v5/market/instruments-info", params))
            )
            symbols.update(page)
            if not cursor:
                break
        new = sorted(symbols - self.symbols) if self.symbols else []
        self.symbols |= symbols
        if new:
            log.info("bybit: %d new listings: %s", len(new), ", ".join(new[:10]))
        return bybit.subscribe_frames(new) if new else []

    async def _tickers(self) -> tuple[list[FundingRate], list[OpenInterest]]:
        result = bybit.unwrap(await self.rest.get("/v5/market/tickers", {"category": "linear"}))
        return bybit.parse_tickers(result, now_ms())

    async def poll_funding(self) -> list[FundingRate]:
        return (await self._tickers())[0]

    async def poll_open_interest(self) -> list[OpenInterest]:
        return (await self._tickers())[1]


class OkxSource:
    venue = okx.NAME

    def __init__(self, rest: RestClient, ws_url: str) -> None:
        self.rest = rest
        self.ws_url = ws_url
        self.contracts: dict[str, okx.Contract] = {}

    def stream(self) -> StreamSpec:
        return StreamSpec(
            self.venue,
            self.ws_url,
            self._parse,
            subscribe_frames=lambda: [okx.SUBSCRIBE_FRAME],
            prepare=self._ensure_instruments,
            ping_frame=okx.PING_FRAME,
            ping_when_idle=okx.PING_WHEN_IDLE,
            pong_frame=okx.PONG_FRAME,
        )

    def _parse(self, frame: Any, recv_ts: int) -> Any:
        return okx.parse_liquidations(frame, recv_ts, self.contracts)

    async def _ensure_instruments(self) -> None:
        if not self.contracts:
            await self.refresh_instruments()

    async def refresh_instruments(self) -> list[str]:
        data = okx.unwrap(await self.rest.get("/api/v5/public/instruments", {"instType": "SWAP"}))
        self.contracts.update(okx.parse_instruments(data))
        return []  # the instType-wide subscription already covers new listings

    async def poll_funding(self) -> list[FundingRate]:
        data = await self.rest.get("/api/v5/public/funding-rate", {"instId": "ANY"})
        return okx.parse_funding_rates(okx.unwrap(data))

    async def poll_open_interest(self) -> list[OpenInterest]:
        data = await self.rest.get("/api/v5/public/open-interest", {"instType": "SWAP"})
        return okx.parse_open_interest(okx.unwrap(data))
