"""Per-venue I/O around the pure parsers: the streams each venue needs, its instrument universe,
and the REST polls for funding and open interest, every row filtered through that universe."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from bot.adapters.bitget import BitgetSource
from bot.adapters.deribit import DeribitSource
from bot.adapters.gate import GateSource
from bot.adapters.hyperliquid import HyperliquidSource
from bot.clock import now_ms
from bot.feeds import StreamSpec
from bot.model import FundingRate, Liquidation, OpenInterest
from bot.rest import RestClient, RestError
from bot.venues import binance, bybit, okx
from bot.venues.common import MALFORMED, USD_QUOTES, Instrument, Tally

log = logging.getLogger(__name__)


class Source(Protocol):
    venue: str
    rest: RestClient

    def streams(self) -> list[StreamSpec]:
        """The venue's websocket connections (Bybit shards its topics over several)."""
        ...

    async def refresh_instruments(self) -> list[list[str]]:
        """Reload the venue's instruments; returns, per stream, subscribe frames for new
        listings."""
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
        self.universe: dict[str, Instrument] = {}
        self._intervals: dict[str, float] = {}
        self._intervals_loaded_at = float("-inf")
        self._mark_prices: dict[str, float] = {}  # USD, per symbol of the universe
        self._usd_prices: dict[str, float] = dict.fromkeys(USD_QUOTES, 1.0)  # per quote asset
        self._tally = Tally()

    def streams(self) -> list[StreamSpec]:
        return [
            StreamSpec(
                self.venue,
                binance.stream_url(self.ws_url),
                self._parse,
                prepare=self._ensure_instruments,
                tally=self._tally,
                symbols=lambda: len(self.universe),
            )
        ]

    def _parse(self, frame: Any, recv_ts: int) -> list[Liquidation] | None:
        """The all-market stream also carries symbols outside the universe (delivery
        contracts): those are ignored. Pairs quoted in a coin (ETHBTC) get their real base and
        a USD value from the quote's price, or are ignored while that price is unknown."""
        events = binance.parse_liquidations(frame, recv_ts)
        if not events:
            return events
        kept = []
        for event in events:
            instrument = self.universe.get(event.symbol)
            quote_usd = self._usd_prices.get(instrument.quote) if instrument else None
            if instrument is None or quote_usd is None:
                self._tally.ignored += 1
                continue
            if instrument.quote not in USD_QUOTES:
                event.base = instrument.base
                event.usd *= quote_usd
            kept.append(event)
        return kept

    async def _ensure_instruments(self) -> None:
        if not self.universe:
            await self.refresh_instruments()

    async def refresh_instruments(self) -> list[list[str]]:
        self.universe = binance.parse_exchange_info(await self.rest.get("/fapi/v1/exchangeInfo"))
        return [[]]  # one all-market stream: new listings arrive on it by themselves

    async def poll_funding(self) -> list[FundingRate]:
        await self._ensure_instruments()
        if time.monotonic() - self._intervals_loaded_at > self.FUNDING_INFO_MAX_AGE:
            self._intervals = binance.parse_funding_intervals(
                await self.rest.get("/fapi/v1/fundingInfo")
            )
            self._intervals_loaded_at = time.monotonic()
        payload = await self.rest.get("/fapi/v1/premiumIndex")
        self._usd_prices = binance.usd_prices(payload)
        rates = binance.parse_premium_index(payload, self._intervals, self.universe)
        self._mark_prices = {r.symbol: r.mark_price for r in rates if r.mark_price is not None}
        return rates

    async def poll_open_interest(self) -> list[OpenInterest]:
        if not self._mark_prices:
            await self.poll_funding()
        interests = []
        for symbol, mark_price in sorted(self._mark_prices.items()):
            instrument = self.universe.get(symbol)
            if instrument is None:
                continue
            payload = await self.rest.get("/fapi/v1/openInterest", {"symbol": symbol})
            interest = binance.parse_open_interest(payload, mark_price, instrument.base)
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
    """`allLiquidation` has one topic per symbol, and one connection's args may not pass
    `bybit.ARGS_LIMIT` characters, so topics are spread over `CONNECTIONS` connections: each
    new topic goes to the shard with the shortest args, where it fits."""

    venue = bybit.NAME
    PAGE_SIZE = "500"
    # Three connections carry about 2,400 symbols; Bybit lists about 800 linear perpetuals.
    CONNECTIONS = 3

    def __init__(self, rest: RestClient, ws_url: str) -> None:
        self.rest = rest
        self.ws_url = ws_url
        self.universe: dict[str, Instrument] = {}
        self.shards: list[list[str]] = [[] for _ in range(self.CONNECTIONS)]
        self.unplaced: list[str] = []  # symbols no shard had room for
        self._tallies = [Tally() for _ in range(self.CONNECTIONS)]
        self._loading = asyncio.Lock()  # every shard's first connect wants the instruments

    def streams(self) -> list[StreamSpec]:
        return [self._stream(index) for index in range(self.CONNECTIONS)]

    def _stream(self, index: int) -> StreamSpec:
        tally = self._tallies[index]

        def parse(frame: Any, recv_ts: int) -> list[Liquidation] | None:
            return bybit.parse_liquidations(frame, recv_ts, tally)

        return StreamSpec(
            self.venue,
            self.ws_url,
            parse,
            subscribe_frames=lambda: bybit.subscribe_frames(self.shards[index], f"{index}-"),
            prepare=self._ensure_instruments,
            ping_frame=bybit.PING_FRAME,
            ping_interval=bybit.PING_INTERVAL,
            tally=tally,
            control=bybit.control,
            symbols=lambda: len(self.shards[index]),
            idle_without_topics=True,
        )

    async def _ensure_instruments(self) -> None:
        async with self._loading:
            if not self.universe:
                await self.refresh_instruments()

    async def refresh_instruments(self) -> list[list[str]]:
        universe: dict[str, Instrument] = {}
        cursor = ""
        while True:
            params = {"category": "linear", "limit": self.PAGE_SIZE}
            if cursor:
                params["cursor"] = cursor
            page, cursor = bybit.parse_instruments_page(
                bybit.unwrap(await self.rest.get("/v5/market/instruments-info", params))
            )
            universe.update((instrument.symbol, instrument) for instrument in page)
            if not cursor:
                break
        placed = {symbol for shard in self.shards for symbol in shard}
        new = sorted(set(universe) - placed - set(self.unplaced))
        self.universe = universe
        added = self._place(new)
        if new and placed:
            log.info("bybit: %d new listings: %s", len(new), ", ".join(new[:10]))
        return [
            bybit.subscribe_frames(symbols, f"{index}-new-") if placed else []
            for index, symbols in enumerate(added)
        ]

    def _place(self, symbols: list[str]) -> list[list[str]]:
        """Put each symbol on the shard with the shortest args where it fits."""
        lengths = [bybit.args_length([bybit.topic(s) for s in shard]) for shard in self.shards]
        added: list[list[str]] = [[] for _ in self.shards]
        for symbol in symbols:
            cost = bybit.args_length([bybit.topic(symbol)])
            index = min(range(len(lengths)), key=lengths.__getitem__)
            if lengths[index] + cost > bybit.ARGS_LIMIT:
                self.unplaced.append(symbol)
                log.error("bybit: no connection has room for %s; it is not watched", symbol)
                continue
            lengths[index] += cost
            self.shards[index].append(symbol)
            added[index].append(symbol)
        return added

    async def _tickers(self) -> tuple[list[FundingRate], list[OpenInterest]]:
        await self._ensure_instruments()
        result = bybit.unwrap(await self.rest.get("/v5/market/tickers", {"category": "linear"}))
        return bybit.parse_tickers(result, now_ms(), self.universe)

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
        self._tally = Tally()
        self._reloaded_at = float("-inf")

    def streams(self) -> list[StreamSpec]:
        return [
            StreamSpec(
                self.venue,
                self.ws_url,
                self._parse,
                subscribe_frames=lambda: [okx.SUBSCRIBE_FRAME],
                prepare=self._ensure_instruments,
                ping_frame=okx.PING_FRAME,
                ping_when_idle=okx.PING_WHEN_IDLE,
                pong_frame=okx.PONG_FRAME,
                tally=self._tally,
                control=okx.control,
                symbols=lambda: len(self.contracts),
                reload=self._reload_for_unknown,
            )
        ]

    # A push may name an instrument listed after the last reload; reload at most this often
    # (an instrument that stays unknown, say a suspended one, must not cause a reload storm).
    RELOAD_COOLDOWN = 60.0

    def _parse(self, frame: Any, recv_ts: int) -> list[Liquidation] | None:
        return okx.parse_liquidations(frame, recv_ts, self.contracts, self._tally)

    async def _reload_for_unknown(self) -> None:
        unknown = sorted(self._tally.unknown)
        self._tally.unknown.clear()
        if time.monotonic() - self._reloaded_at < self.RELOAD_COOLDOWN:
            return
        self._reloaded_at = time.monotonic()
        log.info("okx: %s not in the instrument list; reloading it", ", ".join(unknown[:10]))
        try:
            await self.refresh_instruments()
        except (RestError, *MALFORMED) as error:
            log.warning("okx: reloading instruments failed: %s", error)

    async def _ensure_instruments(self) -> None:
        if not self.contracts:
            await self.refresh_instruments()

    async def refresh_instruments(self) -> list[list[str]]:
        data = okx.unwrap(await self.rest.get("/api/v5/public/instruments", {"instType": "SWAP"}))
        self.contracts = okx.parse_instruments(data)
        return [[]]  # the instType-wide subscription already covers new listings

    async def poll_funding(self) -> list[FundingRate]:
        await self._ensure_instruments()
        data = await self.rest.get("/api/v5/public/funding-rate", {"instId": "ANY"})
        return okx.parse_funding_rates(okx.unwrap(data), self.contracts)

    async def poll_open_interest(self) -> list[OpenInterest]:
        await self._ensure_instruments()
        data = await self.rest.get("/api/v5/public/open-interest", {"instType": "SWAP"})
        return okx.parse_open_interest(okx.unwrap(data), self.contracts)


# Every venue's source class, by its config name (bot/venues/catalog.py lists the venues).
SOURCE_TYPES: dict[str, Callable[[RestClient, str], Source]] = {
    "binance": BinanceSource,
    "bybit": BybitSource,
    "okx": OkxSource,
    "gate": GateSource,
    "bitget": BitgetSource,
    "deribit": DeribitSource,
    "hyperliquid": HyperliquidSource,
}
