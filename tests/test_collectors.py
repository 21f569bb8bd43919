"""Collectors against the fake venues: subscriptions, keep-alive, reconnects, gaps, silence and
malformed frames."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import aiohttp

from bot.clock import now_ms
from bot.feeds import Collector, send_new
from bot.rest import RestClient
from bot.sources import BinanceSource, BybitSource, OkxSource
from bot.venues import bybit
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


async def until(collector: Collector, condition: Callable[[], bool]) -> None:
    """Wait for a condition on a collector's health, re-checked on every health update."""
    async with asyncio.timeout(WAIT):
        while not condition():
            collector.health_changed.clear()
            await collector.health_changed.wait()


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_binance_events_pings_malformed_frames_and_reconnect(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeBinance() as fake, asyncio.timeout(WAIT):
        for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
            fake.set_market(symbol, "100", "0.0001", "1")
        fake.set_market("BTCUSDT_251226", "100", "0", "1", contract_type="CURRENT_QUARTER")
        source = BinanceSource(
            RestClient(session, "binance", fake.base_url), fake.ws_base + "/market"
        )
        [spec] = source.streams()
        collector = Collector(
            spec,
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
        await fake.push(force_order("BTCUSDT_251226", "SELL", "1", "90000", ts))  # a delivery
        await fake.push({"e": "markPriceUpdate", "s": "BTCUSDT"})  # another event type
        await fake.push(force_order("ETHUSDT", "BUY", "2", "3000", ts + 1))
        await sink.wait_for(lambda: len(sink.events) == 2)
        assert [(e.base, e.position, e.usd) for e in sink.events] == [
            ("BTC", "long", 45_500.0),
            ("ETH", "short", 6_000.0),
        ]
        health = collector.health
        assert (health.messages, health.parse_errors, health.ignored) == (6, 2, 2)
        assert health.symbols == 3

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
        [spec] = source.streams()
        collector = Collector(spec, session, settings, FAST, sink.on_events, sink.on_gap)
        task = asyncio.create_task(collector.run())
        await fake.wait_for_connections(3)
        await sink.wait_for(lambda: len(sink.gaps) >= 1)
        assert collector.health.messages == 0
        await stop(task)


def bybit_collectors(
    source: BybitSource, session: aiohttp.ClientSession, sink: Sink, silence: float = 5.0
) -> list[Collector]:
    specs = [dataclasses.replace(spec, ping_interval=0.05) for spec in source.streams()]
    settings = exchange("bybit", specs[0].url, "", silence=silence)
    return [Collector(spec, session, settings, FAST, sink.on_events, sink.on_gap) for spec in specs]


async def test_bybit_shards_topics_under_the_args_limit_and_places_new_listings(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeBybit() as fake, asyncio.timeout(WAIT):
        symbols = [f"C{i:04d}USDT" for i in range(1_205)]  # 28,920 characters of topics
        for symbol in symbols:
            fake.add_instrument(symbol, symbol.removesuffix("USDT"))
        fake.add_instrument("BTC-26DEC25", "BTC", contract_type="LinearFutures")
        fake.add_instrument("BIOUSDT", "BIO", status="PreLaunch")
        source = BybitSource(
            RestClient(session, "bybit", fake.base_url), fake.ws_base + "/v5/public/linear"
        )
        collectors = bybit_collectors(source, session, sink)
        tasks = [asyncio.create_task(c.run()) for c in collectors]
        topics = {f"allLiquidation.{symbol}" for symbol in symbols}
        await fake.wait_for_subscribed(topics)
        assert fake.subscribed_topics() == topics  # no dated future, no pre-market contract
        pages = [query for path, query in fake.requests if path == "/v5/market/instruments-info"]
        assert len(pages) == 3  # 500 a page, one load for all three connections
        assert len(fake.clients) == 3 and fake.refused_for_length == 0
        assert sorted(len(shard) for shard in source.shards) == [401, 402, 402]
        assert sum(c.health.symbols for c in collectors) == 1_205

        ts = now_ms()
        await fake.push(
            all_liquidation(
                "C1204USDT", "Buy", "100", "2.5", ts, more=[("Sell", "40", "2.5", ts + 5)]
            )
        )
        await sink.wait_for(lambda: len(sink.events) == 2)
        assert [(e.symbol, e.position, e.usd) for e in sink.events] == [
            ("C1204USDT", "long", 250.0),
            ("C1204USDT", "short", 100.0),
        ]
        await fake.wait_until(lambda: fake.pings_received >= 6)

        fake.add_instrument("NEWUSDT", "NEW")
        await send_new(collectors, await source.refresh_instruments())
        await fake.wait_for_subscribed({"allLiquidation.NEWUSDT"})
        assert sorted(len(shard) for shard in source.shards) == [402, 402, 402]

        await fake.drop_clients()
        await fake.wait_for_connections(6)
        await fake.wait_for_subscribed(topics | {"allLiquidation.NEWUSDT"})
        assert fake.refused_for_length == 0
        assert sum(c.health.refused for c in collectors) == 0
        for task in tasks:
            await stop(task)


async def test_one_connection_for_every_topic_is_refused_by_the_fake(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeBybit() as fake, asyncio.timeout(WAIT):
        symbols = [f"C{i:04d}USDT" for i in range(1_205)]
        for symbol in symbols:
            fake.add_instrument(symbol, symbol.removesuffix("USDT"))
        source = BybitSource(
            RestClient(session, "bybit", fake.base_url), fake.ws_base + "/v5/public/linear"
        )
        [first, *_] = bybit_collectors(source, session, sink)
        everything = dataclasses.replace(
            first.spec, subscribe_frames=lambda: bybit.subscribe_frames(symbols)
        )
        collector = Collector(
            everything,
            session,
            exchange("bybit", everything.url, ""),
            FAST,
            sink.on_events,
            sink.on_gap,
        )
        task = asyncio.create_task(collector.run())
        # 24-character topics: the first 8 requests of 100 fit in 21,000; requests 9 to 12
        # are refused (every refused topic counted); the 13th, of 5 topics, still fits.
        await fake.wait_until(lambda: fake.refused_for_length == 4)
        await until(collector, lambda: collector.health.refused == 400)
        assert len(fake.subscribed_topics()) == 805
        assert collector.health.parse_errors == 0
        await stop(task)


async def test_okx_values_contracts_and_pings_when_idle(session: aiohttp.ClientSession) -> None:
    sink = Sink()
    async with FakeOkx(idle_timeout=0.3) as fake, asyncio.timeout(WAIT):
        fake.add_instrument("ETH-USDT-SWAP", "0.1")
        fake.add_instrument("ETH-USD-SWAP", "10", ct_type="inverse")
        source = OkxSource(
            RestClient(session, "okx", fake.base_url), fake.ws_base + "/ws/v5/public"
        )
        [spec] = source.streams()
        spec = dataclasses.replace(spec, ping_when_idle=0.1)
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
        collectors = bybit_collectors(source, session, sink, silence=0.4)
        tasks = [asyncio.create_task(c.run()) for c in collectors]
        await fake.wait_until(lambda: fake.pings_received >= 3)  # pongs flow...
        await fake.wait_for_connections(2)  # ...yet no liquidations: replaced
        await sink.wait_for(lambda: len(sink.gaps) >= 1)
        assert sum(c.health.parse_errors for c in collectors) == 0
        assert [c.health.symbols for c in collectors] == [1, 0, 0]  # two shards idle, unconnected
        for task in tasks:
            await stop(task)


async def test_okx_notice_reconnects_before_the_cut_and_is_not_an_error(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeOkx() as fake, asyncio.timeout(WAIT):
        fake.add_instrument("ETH-USDT-SWAP", "0.1")
        source = OkxSource(
            RestClient(session, "okx", fake.base_url), fake.ws_base + "/ws/v5/public"
        )
        [spec] = source.streams()
        collector = Collector(
            spec, session, exchange("okx", spec.url, ""), FAST, sink.on_events, sink.on_gap
        )
        task = asyncio.create_task(collector.run())
        await fake.wait_for_subscribed({"liquidation-orders:SWAP"})
        await fake.announce_upgrade(cut_after=WAIT)  # the cut would come long after the test
        await fake.wait_for_connections(2)
        await fake.wait_for_subscribed({"liquidation-orders:SWAP"})
        await sink.wait_for(lambda: len(sink.gaps) == 1)
        health = collector.health
        assert (health.reconnects, health.parse_errors) == (1, 0)
        assert health.ignored == 2  # the first connection's ack and the notice
        await stop(task)


async def test_okx_push_naming_a_new_instrument_keeps_the_rest_and_reloads_the_list(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeOkx() as fake, asyncio.timeout(WAIT):
        fake.add_instrument("ETH-USDT-SWAP", "0.1")
        source = OkxSource(
            RestClient(session, "okx", fake.base_url), fake.ws_base + "/ws/v5/public"
        )
        [spec] = source.streams()
        collector = Collector(
            spec, session, exchange("okx", spec.url, ""), FAST, sink.on_events, sink.on_gap
        )
        task = asyncio.create_task(collector.run())
        await fake.wait_for_subscribed({"liquidation-orders:SWAP"})
        fake.add_instrument("NEW-USDT-SWAP", "10")  # listed after liqbot loaded the list
        ts = now_ms()
        push = liquidation_orders("ETH-USDT-SWAP", [detail("sell", "long", "30", "3000", ts)])
        push["data"] += liquidation_orders("NEW-USDT-SWAP", [detail("buy", "net", "2", "5", ts)])[
            "data"
        ]
        await fake.push(push)
        await sink.wait_for(lambda: len(sink.events) == 1)
        assert (sink.events[0].symbol, sink.events[0].usd) == ("ETH-USDT-SWAP", 30 * 0.1 * 3000)
        instrument_calls = lambda: [p for p, _ in fake.requests if p.endswith("/instruments")]  # noqa: E731
        await fake.wait_until(lambda: len(instrument_calls()) == 2)
        await fake.push(liquidation_orders("NEW-USDT-SWAP", [detail("buy", "net", "2", "5", ts)]))
        await sink.wait_for(lambda: len(sink.events) == 2)  # reloaded before reading on
        assert (sink.events[1].position, sink.events[1].usd) == ("short", 2 * 10 * 5.0)
        assert (collector.health.parse_errors, collector.health.symbols) == (0, 1)
        await stop(task)


async def test_a_venue_being_retried_says_since_when_why_and_when_next(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeOkx() as fake:
        url = fake.ws_base + "/ws/v5/public"
        rest = fake.base_url
    # The fake has stopped: nothing listens on its port any more.
    source = OkxSource(RestClient(session, "okx", rest), url)
    [spec] = source.streams()
    slow = dataclasses.replace(FAST, reconnect_min=5.0, reconnect_max=5.0)
    collector = Collector(
        spec, session, exchange("okx", url, ""), slow, sink.on_events, sink.on_gap
    )
    before = now_ms()
    task = asyncio.create_task(collector.run())
    await until(collector, lambda: collector.health.next_attempt_at is not None)
    health = collector.health
    assert health.retrying_since is not None and before <= health.retrying_since <= now_ms()
    assert health.last_error is not None and "cannot load instruments" in health.last_error
    assert health.next_attempt_at is not None
    assert 2_500 <= health.next_attempt_at - health.retrying_since <= 5_100  # jittered 5 s
    assert not health.connected
    await stop(task)
