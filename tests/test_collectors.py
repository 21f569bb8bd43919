"""Collectors against the fake venues: subscriptions, keep-alive, reconnects, gaps, silence and
malformed frames."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp

from bot.feeds import Collector
from bot.recorder import now_ms
from bot.rest import RestClient
from bot.sources import BinanceSource, BybitSource, OkxSource
from tests.fakes import (
    FakeBinance,
    FakeBybit,
    FakeOkx,
    all_liquidation,
    detail,
    force_order,
    liquidation_orders,
)
from tests.harness import FAST, WAIT, Sink, exchange


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_binance_events_pings_malformed_frames_and_reconnect(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeBinance() as fake, asyncio.timeout(WAIT):
        source = BinanceSource(
            RestClient(session, "binance", fake.base_url), fake.ws_base + "/market"
        )
        collector = Collector(
            source.stream(),
            session,
            exchange("binance", source.ws_url, ""),
            FAST,
            sink.on_events,
            sink.on_gap,
        )
        task = asyncio.create_task(collector.run())
        await fake.wait_for_connections(1)
        ts = now_ms()
        await fake.push(force_order("BTCUSDT", "SELL", "0.5", "91000", ts))
        await fake.push("not json at all")
        await fake.push({"e": "forceOrder", "o": {"s": "BTCUSDT"}})
        await fake.push(force_order("ETHUSDT", "BUY", "2", "3000", ts + 1))
        await sink.wait_for(lambda: len(sink.events) == 2)
        assert [(e.base, e.position, e.usd) for e in sink.events] == [
            ("BTC", "long", 45_500.0),
            ("ETH", "short", 6_000.0),
        ]
        assert (collector.health.messages, collector.health.parse_errors) == (4, 2)

        await fake.ping_clients()
        await fake.wait_until(lambda: fake.pongs_received >= 1)

        await fake.drop_clients()
        await sink.wait_for(lambda: len(sink.gaps) == 1)
        assert collector.health.reconnects == 1
        assert collector.health.connected
        gap = sink.gaps[0]
        assert gap.venue == "binance" and gap.start <= gap.end
        await fake.push(force_order("SOLUSDT", "SELL", "10", "140", now_ms()))
        await sink.wait_for(lambda: len(sink.events) == 3)
        await stop(task)


async def test_old_binance_ws_base_is_silent_and_treated_as_a_fault(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeBinance() as fake, asyncio.timeout(WAIT):
        source = BinanceSource(RestClient(session, "binance", fake.base_url), fake.ws_base)
        settings = exchange("binance", fake.ws_base, "", silence=0.2)
        collector = Collector(source.stream(), session, settings, FAST, sink.on_events, sink.on_gap)
        task = asyncio.create_task(collector.run())
        await fake.wait_for_connections(3)
        await sink.wait_for(lambda: len(sink.gaps) >= 1)
        assert collector.health.messages == 0
        await stop(task)


async def test_bybit_pages_instruments_subscribes_pings_and_adds_new_listings(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeBybit() as fake, asyncio.timeout(WAIT):
        symbols = [f"C{i:04d}USDT" for i in range(1_205)]  # more than one 1,000-row page
        for symbol in symbols:
            fake.add_instrument(symbol, symbol.removesuffix("USDT"))
        source = BybitSource(
            RestClient(session, "bybit", fake.base_url), fake.ws_base + "/v5/public/linear"
        )
        spec = dataclasses.replace(source.stream(), ping_interval=0.05)
        collector = Collector(
            spec, session, exchange("bybit", spec.url, ""), FAST, sink.on_events, sink.on_gap
        )
        task = asyncio.create_task(collector.run())
        topics = {f"allLiquidation.{symbol}" for symbol in symbols}
        await fake.wait_for_subscribed(topics)
        pages = [query for path, query in fake.requests if path == "/v5/market/instruments-info"]
        assert len(pages) == 2

        ts = now_ms()
        await fake.push(
            all_liquidation(
                "C0007USDT", "Buy", "100", "2.5", ts, more=[("Sell", "40", "2.5", ts + 5)]
            )
        )
        await sink.wait_for(lambda: len(sink.events) == 2)
        assert [(e.base, e.position, e.usd) for e in sink.events] == [
            ("C0007", "long", 250.0),
            ("C0007", "short", 100.0),
        ]

        await fake.wait_until(lambda: fake.pings_received >= 2)

        fake.add_instrument("NEWUSDT", "NEW")
        await collector.send(await source.refresh_instruments())
        await fake.wait_for_subscribed({"allLiquidation.NEWUSDT"})

        await fake.drop_clients()
        await fake.wait_for_connections(2)
        await fake.wait_for_subscribed(topics | {"allLiquidation.NEWUSDT"})
        await stop(task)


async def test_okx_values_contracts_and_pings_when_idle(session: aiohttp.ClientSession) -> None:
    sink = Sink()
    async with FakeOkx(idle_timeout=0.3) as fake, asyncio.timeout(WAIT):
        fake.add_instrument("ETH-USDT-SWAP", "0.1")
        fake.add_instrument("ETH-USD-SWAP", "10", ct_type="inverse")
        source = OkxSource(
            RestClient(session, "okx", fake.base_url), fake.ws_base + "/ws/v5/public"
        )
        spec = dataclasses.replace(source.stream(), ping_when_idle=0.1)
        collector = Collector(
            spec, session, exchange("okx", spec.url, ""), FAST, sink.on_events, sink.on_gap
        )
        task = asyncio.create_task(collector.run())
        await fake.wait_for_subscribed({"liquidation-orders:SWAP"})
        ts = now_ms()
        await fake.push(
            liquidation_orders(
                "ETH-USDT-SWAP",
                [detail("sell", "long", "30", "3000", ts), detail("buy", "net", "5", "3010", ts)],
            )
        )
        await fake.push(
            liquidation_orders("ETH-USD-SWAP", [detail("sell", "net", "7", "3000", ts)])
        )
        await sink.wait_for(lambda: len(sink.events) == 3)
        assert [(e.position, e.usd) for e in sink.events] == [
            ("long", 30 * 0.1 * 3000.0),
            ("short", 5 * 0.1 * 3010.0),
            ("long", 70.0),
        ]
        await fake.wait_until(lambda: fake.pings_received >= 4)  # > idle_timeout has passed
        assert fake.connections_accepted == 1
        assert collector.health.reconnects == 0
        await stop(task)


async def test_a_feed_that_only_answers_pings_is_replaced(session: aiohttp.ClientSession) -> None:
    sink = Sink()
    async with FakeBybit() as fake, asyncio.timeout(WAIT):
        fake.add_instrument("BTCUSDT", "BTC")
        source = BybitSource(
            RestClient(session, "bybit", fake.base_url), fake.ws_base + "/v5/public/linear"
        )
        spec = dataclasses.replace(source.stream(), ping_interval=0.05)
        settings = exchange("bybit", spec.url, "", silence=0.4)
        collector = Collector(spec, session, settings, FAST, sink.on_events, sink.on_gap)
        task = asyncio.create_task(collector.run())
        await fake.wait_until(lambda: fake.pings_received >= 3)  # pongs flow...
        await fake.wait_for_connections(2)  # ...yet no liquidations: replaced
        await sink.wait_for(lambda: len(sink.gaps) >= 1)
        assert collector.health.parse_errors == 0
        await stop(task)
