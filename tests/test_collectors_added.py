"""Gate, Bitget, Deribit and Hyperliquid against their fakes: subscriptions, each venue's own
keep-alive, silence, reconnects, malformed and unknown frames, and the REST polls."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp

from bot.adapters.bitget import BitgetSource
from bot.adapters.deribit import DeribitSource
from bot.adapters.gate import GateSource
from bot.adapters.hyperliquid import HyperliquidSource
from bot.clock import now_ms
from bot.feeds import Collector
from bot.rest import RestClient, RestError
from tests.fakes import (
    FakeBitget,
    FakeDeribit,
    FakeGate,
    FakeHyperliquid,
    liquidate,
    liquidation_push,
    public_liquidates,
    trade,
    trades,
)
from tests.fakes.bitget import TOPIC as BITGET_TOPIC
from tests.fakes.gate import ALL as GATE_ALL
from tests.harness import FAST, WAIT, Sink, exchange
from tests.test_collectors import stop, until


async def test_gate_subscribes_to_all_values_contracts_and_answers_server_pings(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeGate() as fake, asyncio.timeout(WAIT):
        fake.add_contract("BTC_USDT", "0.0001", "91000")
        fake.add_contract("ETH_USDT", "0.01", "3000")
        source = GateSource(
            RestClient(session, "gate", fake.base_url), fake.ws_base + "/v4/ws/usdt"
        )
        [spec] = source.streams()
        collector = Collector(
            spec, session, exchange("gate", spec.url, ""), FAST, sink.on_events, sink.on_gap
        )
        task = asyncio.create_task(collector.run())
        await fake.wait_for_subscribed({GATE_ALL})
        ts = now_ms()
        await fake.push(
            public_liquidates(
                [
                    liquidate("BTC_USDT", "-20", "90000", ts),
                    liquidate("BTC_USDT", "5", "90100", ts),
                ],
                ts,
            )
        )
        await fake.push(public_liquidates([liquidate("ETH_USDT", "-300", "2990", ts)], ts))
        await fake.push("{broken")
        await sink.wait_for(lambda: len(sink.events) == 3)
        assert [(e.symbol, e.base, e.position, e.usd) for e in sink.events] == [
            ("BTC_USDT", "BTC", "long", 20 * 0.0001 * 90000.0),
            ("BTC_USDT", "BTC", "short", 5 * 0.0001 * 90100.0),
            ("ETH_USDT", "ETH", "long", 300 * 0.01 * 2990.0),
        ]
        await fake.ping_clients()
        await fake.wait_until(lambda: fake.pongs_received >= 1)
        await until(collector, lambda: collector.health.parse_errors == 1)
        assert collector.current_health().symbols == 2
        assert collector.health.ignored == 1  # the subscribe ack
        await stop(task)


async def test_gate_push_naming_a_new_contract_reloads_the_list(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeGate() as fake, asyncio.timeout(WAIT):
        fake.add_contract("BTC_USDT", "0.0001", "91000")
        source = GateSource(
            RestClient(session, "gate", fake.base_url), fake.ws_base + "/v4/ws/usdt"
        )
        [spec] = source.streams()
        collector = Collector(
            spec, session, exchange("gate", spec.url, ""), FAST, sink.on_events, sink.on_gap
        )
        task = asyncio.create_task(collector.run())
        await fake.wait_for_subscribed({GATE_ALL})
        fake.add_contract("NEW_USDT", "10", "0.5")
        await fake.push(public_liquidates([liquidate("NEW_USDT", "-7", "0.5", now_ms())], now_ms()))
        contract_calls = lambda: [p for p, _ in fake.requests if p.endswith("/contracts")]  # noqa: E731
        await fake.wait_until(lambda: len(contract_calls()) == 2)  # reloaded before reading on
        await fake.push(public_liquidates([liquidate("NEW_USDT", "-7", "0.5", now_ms())], now_ms()))
        await sink.wait_for(lambda: len(sink.events) == 1)
        assert (sink.events[0].base, sink.events[0].usd) == ("NEW", 7 * 10 * 0.5)
        assert collector.health.ignored >= 1
        await stop(task)


async def test_bitget_sampled_feed_pings_and_ignores_pairs_it_does_not_list(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeBitget(idle_timeout=0.3) as fake, asyncio.timeout(WAIT):
        fake.add_contract("BTCUSDT", "BTC")
        fake.add_contract("ETHUSDT", "ETH", symbol_type="delivery")
        source = BitgetSource(
            RestClient(session, "bitget", fake.base_url), fake.ws_base + "/v3/ws/public"
        )
        [spec] = source.streams()
        spec = dataclasses.replace(spec, ping_interval=0.1)
        collector = Collector(
            spec, session, exchange("bitget", spec.url, ""), FAST, sink.on_events, sink.on_gap
        )
        task = asyncio.create_task(collector.run())
        await fake.wait_for_subscribed({BITGET_TOPIC})
        ts = now_ms()
        await fake.push(liquidation_push("BTCUSDT", "buy", "90000", "45000", ts))
        await fake.push(liquidation_push("ETHUSDT", "sell", "3000", "600", ts))
        await fake.push(liquidation_push("BTCUSDT", "sell", "90500", "9050", ts))
        await sink.wait_for(lambda: len(sink.events) == 2)
        assert [(e.position, e.qty, e.usd) for e in sink.events] == [
            ("long", 0.5, 45000.0),
            ("short", 0.1, 9050.0),
        ]
        await fake.wait_until(lambda: fake.pings_received >= 4)  # > idle_timeout has passed
        assert fake.connections_accepted == 1
        await until(collector, lambda: collector.health.ignored >= 2)  # the ack and ETHUSDT
        assert collector.health.parse_errors == 0
        await stop(task)


async def test_bitget_polls_funding_with_listed_intervals_and_oi_in_coin(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeBitget() as fake:
        fake.add_contract("BTCUSDT", "BTC")
        fake.add_contract("SOLUSDT", "SOL")
        fake.set_ticker("BTCUSDT", "90000", "0.0001", "1000")
        fake.set_ticker("SOLUSDT", "150", "-0.0002", "20000", interval_h=4)
        source = BitgetSource(RestClient(session, "bitget", fake.base_url), "")
        rates = {r.symbol: (r.rate_8h, r.interval_hours) for r in await source.poll_funding()}
        assert rates == {"BTCUSDT": (0.0001, 8.0), "SOLUSDT": (-0.0004, 4.0)}
        interests = {i.symbol: i.usd for i in await source.poll_open_interest()}
        assert interests == {"BTCUSDT": 90_000_000.0, "SOLUSDT": 3_000_000.0}
        funding_calls = [q for p, q in fake.requests if p.endswith("current-fund-rate")]
        assert funding_calls == [{"productType": "USDT-FUTURES"}]  # cached for an hour


async def test_deribit_answers_test_requests_and_trades_keep_a_quiet_feed_alive(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeDeribit() as fake, asyncio.timeout(WAIT):
        source = DeribitSource(
            RestClient(session, "deribit", fake.base_url), fake.ws_base + "/ws/api/v2"
        )
        [spec] = source.streams()
        settings = exchange("deribit", spec.url, "", silence=0.6)
        collector = Collector(spec, session, settings, FAST, sink.on_events, sink.on_gap)
        task = asyncio.create_task(collector.run())
        await fake.wait_for_subscribed({"trades.future.BTC.100ms", "trades.future.USDC.100ms"})
        assert fake.refused_requests == 0  # no .raw channel in the request
        assert await fake.send_test_requests() == 1
        await fake.wait_until(lambda: fake.tests_answered == 1)
        ts = now_ms()
        for _ in range(9):  # plain trades for longer than silence_timeout: no reconnect
            await fake.push(
                trades("trades.future.BTC.100ms", [trade("BTC-PERPETUAL", "buy", 10, 90000, ts)])
            )
            await asyncio.sleep(0.1)
        await fake.push(
            trades(
                "trades.future.BTC.100ms",
                [trade("BTC-PERPETUAL", "sell", 50_000, 89_000, ts, liquidation="T")],
            )
        )
        await fake.push(
            trades(
                "trades.future.USDC.100ms",
                [trade("SOL_USDC-PERPETUAL", "sell", 3, 140, ts, liquidation="MT")],
            )
        )
        await sink.wait_for(lambda: len(sink.events) == 3)
        assert [(e.symbol, e.base, e.position, e.usd) for e in sink.events] == [
            ("BTC-PERPETUAL", "BTC", "long", 50_000.0),
            ("SOL_USDC-PERPETUAL", "SOL", "long", 420.0),
            ("SOL_USDC-PERPETUAL", "SOL", "short", 420.0),
        ]
        assert fake.connections_accepted == 1
        assert collector.health.reconnects == 0
        await stop(task)


async def test_deribit_silent_feed_is_replaced(session: aiohttp.ClientSession) -> None:
    sink = Sink()
    async with FakeDeribit() as fake, asyncio.timeout(WAIT):
        source = DeribitSource(
            RestClient(session, "deribit", fake.base_url), fake.ws_base + "/ws/api/v2"
        )
        [spec] = source.streams()
        settings = exchange("deribit", spec.url, "", silence=0.2)
        collector = Collector(spec, session, settings, FAST, sink.on_events, sink.on_gap)
        task = asyncio.create_task(collector.run())
        await fake.wait_for_connections(2)  # heartbeat replies alone do not count as feed
        await until(collector, lambda: collector.health.reconnects >= 1)
        assert len(sink.gaps) >= 1
        await stop(task)


async def test_deribit_polls_perpetual_summaries_of_each_currency(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeDeribit() as fake:
        fake.add_summary("BTC", "BTC-PERPETUAL", 90000.0, 800_000_000.0, 0.0001)
        fake.add_summary("BTC", "BTC-27MAR26", 91000.0, 50_000_000.0, 0.0)
        fake.add_summary("USDC", "SOL_USDC-PERPETUAL", 140.0, 1000.0, -0.0002)
        source = DeribitSource(RestClient(session, "deribit", fake.base_url), "")
        rates = {r.symbol: (r.base, r.rate_8h) for r in await source.poll_funding()}
        assert rates == {"BTC-PERPETUAL": ("BTC", 0.0001), "SOL_USDC-PERPETUAL": ("SOL", -0.0002)}
        interests = {i.symbol: i.usd for i in await source.poll_open_interest()}
        assert interests == {"BTC-PERPETUAL": 800_000_000.0, "SOL_USDC-PERPETUAL": 140_000.0}
        assert sorted(q["currency"] for _, q in fake.requests) == [
            "BTC",
            "BTC",
            "ETH",
            "ETH",
            "USDC",
            "USDC",
        ]


async def test_hyperliquid_one_query_serves_both_polls_and_skips_delisted(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeHyperliquid() as fake:
        fake.add_asset("BTC", "90000", "0.0000125", "30000")
        fake.add_asset("MATIC", "0.37", "0.0", "0.0", delisted=True)
        fake.add_asset("kPEPE", "0.01", "-0.00002", "5000000")
        source = HyperliquidSource(RestClient(session, "hyperliquid", fake.base_url), "")
        assert source.streams() == []
        rates = {
            r.symbol: (r.base, r.interval_hours, r.rate_8h) for r in await source.poll_funding()
        }
        assert rates == {
            "BTC": ("BTC", 1.0, 0.0000125 * 8),
            "kPEPE": ("PEPE", 1.0, -0.00002 * 8),
        }
        interests = {i.symbol: i.usd for i in await source.poll_open_interest()}
        assert interests == {"BTC": 30000 * 90000.0, "kPEPE": 5_000_000 * 0.01}
        assert fake.requests == [("/info", {"type": "metaAndAssetCtxs"})]


async def test_hyperliquid_keeps_under_its_weight_budget(session: aiohttp.ClientSession) -> None:
    async with FakeHyperliquid() as fake:
        fake.add_asset("BTC", "90000", "0.0000125", "30000")
        source = HyperliquidSource(RestClient(session, "hyperliquid", fake.base_url), "")
        source.SHARE_FOR = 0.0  # every poll queries
        source.WEIGHT_BUDGET = 40  # two queries a minute
        await source.poll_funding()
        await source.poll_open_interest()
        try:
            await source.poll_funding()
        except RestError as error:
            assert "weight budget" in str(error)
        else:
            raise AssertionError("a third query within the minute was sent")
        assert len(fake.requests) == 2


async def test_bitget_push_naming_a_new_pair_reloads_the_contracts(
    session: aiohttp.ClientSession,
) -> None:
    sink = Sink()
    async with FakeBitget() as fake, asyncio.timeout(WAIT):
        fake.add_contract("BTCUSDT", "BTC")
        source = BitgetSource(
            RestClient(session, "bitget", fake.base_url), fake.ws_base + "/v3/ws/public"
        )
        [spec] = source.streams()
        collector = Collector(
            spec, session, exchange("bitget", spec.url, ""), FAST, sink.on_events, sink.on_gap
        )
        task = asyncio.create_task(collector.run())
        await fake.wait_for_subscribed({BITGET_TOPIC})
        fake.add_contract("NEWUSDT", "NEW")  # listed after liqbot loaded the list
        await fake.push(liquidation_push("NEWUSDT", "buy", "2", "100", now_ms()))
        contract_calls = lambda: [p for p, _ in fake.requests if p.endswith("/contracts")]  # noqa: E731
        await fake.wait_until(lambda: len(contract_calls()) == 2)  # reloaded before reading on
        await fake.push(liquidation_push("NEWUSDT", "buy", "2", "100", now_ms()))
        await sink.wait_for(lambda: len(sink.events) == 1)
        assert (sink.events[0].base, sink.events[0].qty, sink.events[0].usd) == ("NEW", 50.0, 100.0)
        await stop(task)
