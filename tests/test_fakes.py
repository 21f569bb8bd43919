"""Self-tests of the fake exchanges, driven by a plain aiohttp client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from tests.fakes import (
    RATE_LIMITED,
    FakeBinance,
    FakeBybit,
    FakeOkx,
    all_liquidation,
    detail,
    force_order,
    liquidation_orders,
)


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as fake:
        yield fake


@pytest.fixture
async def bybit() -> AsyncIterator[FakeBybit]:
    async with FakeBybit() as fake:
        for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"):
            fake.add_instrument(symbol, symbol.removesuffix("USDT"))
        yield fake


@pytest.fixture
async def okx() -> AsyncIterator[FakeOkx]:
    async with FakeOkx() as fake:
        yield fake


async def get_json(session: aiohttp.ClientSession, url: str, **params: str) -> Any:
    async with session.get(url, params=params) as response:
        assert response.status == 200
        return await response.json()


async def test_bybit_paginates_instruments(
    bybit: FakeBybit, session: aiohttp.ClientSession
) -> None:
    url = f"{bybit.base_url}/v5/market/instruments-info"
    symbols: list[str] = []
    cursor = ""
    while True:
        params = {"category": "linear", "limit": "2"} | ({"cursor": cursor} if cursor else {})
        body = await get_json(session, url, **params)
        assert (body["retCode"], body["retMsg"]) == (0, "OK")
        symbols += [item["symbol"] for item in body["result"]["list"]]
        cursor = body["result"]["nextPageCursor"]
        if not cursor:
            break
    assert symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]
    assert len(bybit.requests) == 3


async def test_bybit_subscribe_ping_and_targeted_push(
    bybit: FakeBybit, session: aiohttp.ClientSession
) -> None:
    async with (
        session.ws_connect(f"{bybit.ws_base}/v5/public/linear") as btc,
        session.ws_connect(f"{bybit.ws_base}/v5/public/linear") as eth,
    ):
        await btc.send_json({"op": "subscribe", "args": ["allLiquidation.BTCUSDT"], "req_id": "1"})
        ack = await btc.receive_json()
        assert ack == {
            "success": True,
            "ret_msg": "",
            "conn_id": ack["conn_id"],
            "req_id": "1",
            "op": "subscribe",
        }
        await eth.send_json(
            {"op": "subscribe", "args": ["allLiquidation.ETHUSDT", "liquidation.ETHUSDT"]}
        )
        nack = await eth.receive_json()
        assert nack["success"] is False
        assert nack["ret_msg"] == "error:handler not found,topic:liquidation.ETHUSDT"
        await bybit.wait_for_subscribed({"allLiquidation.BTCUSDT", "allLiquidation.ETHUSDT"})

        await eth.send_json({"op": "ping"})
        assert (await eth.receive_json())["ret_msg"] == "pong"
        assert bybit.pings_received == 1

        btc_frame = all_liquidation(
            "BTCUSDT", "Buy", "0.5", "91000", 1_000, more=[("Sell", "1", "90990", 2_000)]
        )
        assert await bybit.push(btc_frame) == 1
        assert await btc.receive_json() == btc_frame
        assert btc_frame["ts"] == 2_000 and len(btc_frame["data"]) == 2
        eth_frame = all_liquidation("ETHUSDT", "Sell", "3", "3000", 3_000)
        assert await bybit.push(eth_frame) == 1
        assert await eth.receive_json() == eth_frame  # the BTC frame never reached it


async def test_silent_venue_tracks_but_never_answers(
    bybit: FakeBybit, session: aiohttp.ClientSession
) -> None:
    bybit.silent = True
    async with session.ws_connect(f"{bybit.ws_base}/v5/public/linear") as ws:
        await ws.send_json({"op": "subscribe", "args": ["allLiquidation.BTCUSDT"]})
        await ws.send_json({"op": "ping"})
        await bybit.wait_until(lambda: bybit.pings_received == 1)
        assert bybit.subscribed_topics() == {"allLiquidation.BTCUSDT"}
        assert await bybit.push(all_liquidation("BTCUSDT", "Buy", "1", "90000", 1)) == 0
        await bybit.drop_clients()
        assert (await ws.receive()).type is WSMsgType.CLOSE  # no ack, pong or push came first


async def test_drop_clients_closes_the_connection(
    bybit: FakeBybit, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{bybit.ws_base}/v5/public/linear") as ws:
        await bybit.wait_for_connections(1)
        await bybit.drop_clients()
        msg = await ws.receive()
        assert msg.type is WSMsgType.CLOSE
        assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
    await bybit.wait_until(lambda: not bybit.clients)


async def test_binance_legacy_path_stays_silent(
    binance: FakeBinance, session: aiohttp.ClientSession
) -> None:
    base = binance.ws_base
    async with (
        session.ws_connect(f"{base}/ws/!forceOrder@arr") as legacy,
        session.ws_connect(f"{base}/market/ws/!forceOrder@arr") as raw,
        session.ws_connect(f"{base}/market/stream?streams=!forceOrder@arr") as combined,
    ):
        await binance.wait_for_connections(3)
        event = force_order("ETHUSDT", "SELL", "12.5", "3021.44", 1_763_700_000_120)
        assert await binance.push(event) == 2
        assert await raw.receive_json() == event
        assert await combined.receive_json() == {"stream": "!forceOrder@arr", "data": event}
        await binance.drop_clients()
        assert (await legacy.receive()).type is WSMsgType.CLOSE  # nothing came before


async def test_binance_counts_pongs(binance: FakeBinance, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(f"{binance.ws_base}/market/ws/!forceOrder@arr") as ws:
        reader = asyncio.create_task(ws.receive())  # the client answers pings while reading
        await binance.wait_for_connections(1)
        await binance.ping_clients()
        await binance.wait_until(lambda: binance.pongs_received == 1)
        await binance.drop_clients()
        assert (await reader).type is WSMsgType.CLOSE


async def test_binance_rest_weight_and_injected_429(
    binance: FakeBinance, session: aiohttp.ClientSession
) -> None:
    binance.set_market("BTCUSDT", "91000.1", "0.00010000", "80000.5")
    binance.set_market("WIFUSDT", "2.5", "-0.00030000", "1000", interval_hours=4)
    binance.fail_next("/fapi/v1/premiumIndex", 429, headers={"Retry-After": "1"})
    url = f"{binance.base_url}/fapi/v1/premiumIndex"
    async with session.get(url) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "1"
        assert response.headers["X-MBX-USED-WEIGHT-1M"] == "10"
    async with session.get(url) as response:
        assert response.headers["X-MBX-USED-WEIGHT-1M"] == "20"
        assert [m["symbol"] for m in await response.json()] == ["BTCUSDT", "WIFUSDT"]
    info = await get_json(session, f"{binance.base_url}/fapi/v1/fundingInfo")
    assert [(i["symbol"], i["fundingIntervalHours"]) for i in info] == [("WIFUSDT", 4)]
    oi_url = f"{binance.base_url}/fapi/v1/openInterest"
    oi = await get_json(session, oi_url, symbol="BTCUSDT")
    assert (oi["symbol"], oi["openInterest"]) == ("BTCUSDT", "80000.5")
    async with session.get(oi_url, params={"symbol": "NOPE"}) as response:
        assert response.status == 400
        assert await response.json() == {"code": -1121, "msg": "Invalid symbol."}
    assert binance.used_weight == 23
    assert binance.requests[-1] == ("/fapi/v1/openInterest", {"symbol": "NOPE"})


async def test_okx_ping_subscribe_and_push(okx: FakeOkx, session: aiohttp.ClientSession) -> None:
    async with (
        session.ws_connect(f"{okx.ws_base}/ws/v5/public") as ws,
        session.ws_connect(f"{okx.ws_base}/ws/v5/public") as idle,
    ):
        await ws.send_str("ping")
        assert await ws.receive_str() == "pong"
        arg = {"channel": "liquidation-orders", "instType": "SWAP"}
        await ws.send_json({"op": "subscribe", "args": [arg, {"channel": "nope"}]})
        ack = await ws.receive_json()
        assert ack == {"event": "subscribe", "arg": arg, "connId": ack["connId"]}
        error = await ws.receive_json()
        assert (error["event"], error["code"]) == ("error", "60018")
        await okx.wait_for_subscribed({"liquidation-orders:SWAP"})
        frame = liquidation_orders(
            "BTC-USDT-SWAP",
            [
                detail("sell", "long", "250", "91250.5", 2_000),
                detail("buy", "net", "1", "91300", 1_000),
            ],
        )
        assert await okx.push(frame) == 1  # not to the unsubscribed `idle` client
        assert await ws.receive_json() == frame
        assert okx.pings_received == 1 and idle.closed is False


async def test_okx_closes_idle_connections(session: aiohttp.ClientSession) -> None:
    async with (
        FakeOkx(idle_timeout=0.05) as okx,
        session.ws_connect(f"{okx.ws_base}/ws/v5/public") as ws,
    ):
        assert (await ws.receive()).type is WSMsgType.CLOSE
        assert ws.close_code == 4004


async def test_okx_rest_and_rate_limit(okx: FakeOkx, session: aiohttp.ClientSession) -> None:
    okx.add_instrument("BTC-USDT-SWAP", "0.01")
    okx.add_instrument("BTC-USD-SWAP", "100", ct_type="inverse")
    okx.set_funding("BTC-USDT-SWAP", "0.0001", 1_000, 28_801_000)
    okx.set_open_interest("BTC-USDT-SWAP", "250000", "2500", "228000000")
    okx.fail_next("/api/v5/public/funding-rate", 429, body=RATE_LIMITED)
    base = f"{okx.base_url}/api/v5/public"
    instruments = await get_json(session, f"{base}/instruments", instType="SWAP")
    assert instruments["code"] == "0"
    assert [(i["instId"], i["ctVal"], i["settleCcy"]) for i in instruments["data"]] == [
        ("BTC-USDT-SWAP", "0.01", "USDT"),
        ("BTC-USD-SWAP", "100", "BTC"),
    ]
    async with session.get(f"{base}/funding-rate", params={"instId": "ANY"}) as response:
        assert response.status == 429
        assert await response.json() == RATE_LIMITED
    funding = await get_json(session, f"{base}/funding-rate", instId="ANY")
    assert funding["data"][0]["nextFundingTime"] == "28801000"
    oi = await get_json(session, f"{base}/open-interest", instType="SWAP")
    assert oi["data"][0]["oiUsd"] == "228000000"


async def test_bybit_refuses_args_past_21000_characters_per_connection(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeBybit() as fake:
        symbols = [f"S{i:05d}USDT" for i in range(1_000)]  # 25-character topics
        for symbol in symbols:
            fake.add_instrument(symbol, symbol.removesuffix("USDT"))
        topics = [f"allLiquidation.{s}" for s in symbols]
        async with session.ws_connect(f"{fake.ws_base}/v5/public/linear") as ws:
            await ws.send_json({"op": "subscribe", "args": topics[:840]})  # 21,000 exactly
            assert (await ws.receive_json())["success"] is True
            await ws.send_json({"op": "subscribe", "args": topics[840:841]})
            refused = await ws.receive_json()
        async with session.ws_connect(f"{fake.ws_base}/v5/public/linear") as other:
            await other.send_json({"op": "subscribe", "args": topics[840:]})
            assert (await other.receive_json())["success"] is True
        assert refused["success"] is False
        assert refused["ret_msg"] == "error:args over 21000 characters,topic:" + topics[840]
        assert fake.refused_for_length == 1


async def test_bybit_lists_trading_symbols_unless_asked_for_another_status(
    bybit: FakeBybit, session: aiohttp.ClientSession
) -> None:
    bybit.add_instrument("BIOUSDT", "BIO", status="PreLaunch")
    bybit.add_instrument("BTC-26DEC25", "BTC", contract_type="LinearFutures")
    url = f"{bybit.base_url}/v5/market/instruments-info"
    listed = (await get_json(session, url, category="linear"))["result"]["list"]
    assert [i["symbol"] for i in listed][-1] == "BTC-26DEC25" and len(listed) == 6
    pre = (await get_json(session, url, category="linear", status="PreLaunch"))["result"]["list"]
    assert [i["symbol"] for i in pre] == ["BIOUSDT"]


async def test_binance_lists_delivery_and_settling_contracts_like_the_venue(
    binance: FakeBinance, session: aiohttp.ClientSession
) -> None:
    binance.set_market("BTCUSDT", "91000", "0.0001", "1")
    binance.set_market("BTCUSDT_251226", "92000", "0.0003", "1", contract_type="CURRENT_QUARTER")
    binance.set_market("EOSUSDT", "0.5", "0.0001", "1", status="SETTLING")
    binance.serve_recorded_universe()
    info = await get_json(session, f"{binance.base_url}/fapi/v1/exchangeInfo")
    listed = {s["symbol"]: (s["contractType"], s["status"]) for s in info["symbols"]}
    assert len(listed) == 647  # the recorded dump lists BTCUSDT_251226 too
    assert listed["BTCUSDT_251226"] == ("CURRENT_QUARTER", "TRADING")
    assert listed["EOSUSDT"] == ("PERPETUAL", "SETTLING")
    premium = await get_json(session, f"{binance.base_url}/fapi/v1/premiumIndex")
    delivery = next(e for e in premium if e["symbol"] == "BTCUSDT_251226")
    assert (delivery["lastFundingRate"], delivery["nextFundingTime"]) == ("0.00000000", 0)
    assert len(premium) == 3 + 521 - 2  # BTCUSDT's and EOSUSDT's recorded rows replaced


async def test_okx_notice_comes_before_the_cut(
    okx: FakeOkx, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{okx.ws_base}/ws/v5/public") as ws:
        await ws.send_json(
            {"op": "subscribe", "args": [{"channel": "liquidation-orders", "instType": "SWAP"}]}
        )
        assert (await ws.receive_json())["event"] == "subscribe"
        await okx.announce_upgrade(cut_after=0.05)
        notice = await ws.receive_json()
        assert (notice["event"], notice["code"]) == ("notice", "64008")
        assert (await ws.receive()).type is WSMsgType.CLOSE
