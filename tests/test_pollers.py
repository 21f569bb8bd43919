"""Funding and open-interest polls against the fake venues: normalisation and rate limits."""

from __future__ import annotations

import aiohttp
import pytest

from bot.rest import RateLimited, RestClient
from bot.sources import BinanceSource, BybitSource, OkxSource
from tests.fakes import RATE_LIMITED, FakeBinance, FakeBybit, FakeOkx

HOUR = 3_600_000


async def test_binance_funding_uses_listed_intervals_and_oi_is_valued_at_mark(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeBinance() as fake:
        fake.set_market("BTCUSDT", "91000", "0.0001", "1500")
        fake.set_market("1000PEPEUSDT", "0.01", "-0.0003", "2000000", interval_hours=4)
        source = BinanceSource(RestClient(session, "binance", fake.base_url), "")
        rates = {r.symbol: r for r in await source.poll_funding()}
        assert (rates["BTCUSDT"].rate_8h, rates["BTCUSDT"].interval_hours) == (0.0001, 8.0)
        pepe = rates["1000PEPEUSDT"]
        assert (pepe.base, pepe.rate_8h, pepe.apr) == ("PEPE", -0.0006, -0.0003 * 6 * 365)
        interests = {i.symbol: i.usd for i in await source.poll_open_interest()}
        assert interests == {"BTCUSDT": 1500 * 91000.0, "1000PEPEUSDT": 2_000_000 * 0.01}


async def test_bybit_open_interest_counts_one_side(session: aiohttp.ClientSession) -> None:
    async with FakeBybit() as fake:
        fake.add_instrument("ETHUSDT", "ETH")
        fake.set_ticker("ETHUSDT", "3000", "0.0002", "1000", funding_interval_hours=4)
        source = BybitSource(RestClient(session, "bybit", fake.base_url), "")
        [rate] = await source.poll_funding()
        assert (rate.base, rate.rate, rate.rate_8h, rate.mark_price) == (
            "ETH",
            0.0002,
            0.0004,
            3000.0,
        )
        [interest] = await source.poll_open_interest()
        assert interest.usd == 3_000_000.0  # single side, not openInterestValue (6,000,000)


async def test_okx_funding_interval_comes_from_settlement_times(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeOkx() as fake:
        fake.add_instrument("BTC-USDT-SWAP", "0.01")
        fake.set_funding("BTC-USDT-SWAP", "0.00005", 10 * HOUR, 12 * HOUR)
        fake.set_open_interest("BTC-USDT-SWAP", "100000", "1000", "91000000")
        source = OkxSource(RestClient(session, "okx", fake.base_url), "")
        [rate] = await source.poll_funding()
        assert (rate.interval_hours, rate.rate_8h) == (2.0, 0.0002)
        [interest] = await source.poll_open_interest()
        assert (interest.base, interest.usd) == ("BTC", 91_000_000.0)


async def test_binance_polls_only_trading_perpetuals_and_values_coin_quotes_in_usd(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeBinance() as fake:
        fake.set_market("BTCUSDT", "91000", "0.0001", "1500")
        fake.set_market("ETHBTC", "0.035", "0.00002", "300", quote="BTC")
        fake.set_market("BTCUSDT_251226", "92000", "0", "100", contract_type="CURRENT_QUARTER")
        fake.set_market("EOSUSDT", "0.5", "0", "100", status="SETTLING")
        source = BinanceSource(RestClient(session, "binance", fake.base_url), "")
        rates = {r.symbol: r for r in await source.poll_funding()}
        assert sorted(rates) == ["BTCUSDT", "ETHBTC"]
        assert (rates["ETHBTC"].base, rates["ETHBTC"].mark_price) == ("ETH", 0.035 * 91000)
        interests = {i.symbol: (i.base, i.usd) for i in await source.poll_open_interest()}
        assert interests == {
            "BTCUSDT": ("BTC", 1500 * 91000.0),
            "ETHBTC": ("ETH", 300 * 0.035 * 91000),
        }
        polled = {q["symbol"] for path, q in fake.requests if path == "/fapi/v1/openInterest"}
        assert polled == {"BTCUSDT", "ETHBTC"}  # the delivery and settling contracts are not


async def test_binance_recorded_universe_gives_funding_for_its_trading_perpetuals(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeBinance() as fake:
        fake.serve_recorded_universe()
        source = BinanceSource(RestClient(session, "binance", fake.base_url), "")
        rates = await source.poll_funding()
        assert len(rates) == 454 and len(source.universe) == 552
        assert not [r for r in rates if "_" in r.symbol]


async def test_bybit_rows_without_single_side_fields_use_half_of_both_sides(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeBybit() as fake:
        fake.add_instrument("BTCUSDT", "BTC")
        fake.add_instrument("BTC-26DEC25", "BTC", contract_type="LinearFutures")
        fake.set_ticker("BTCUSDT", "90000", "0.0001", "500", single_side_fields=False)
        fake.set_ticker("BTC-26DEC25", "91000", "", "100")
        source = BybitSource(RestClient(session, "bybit", fake.base_url), "")
        [interest] = await source.poll_open_interest()
        assert (interest.symbol, interest.usd) == ("BTCUSDT", 2 * 500 * 90000 / 2)


async def test_okx_any_rows_for_x_perps_and_suspended_swaps_make_no_funding(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeOkx() as fake:
        fake.add_instrument("BTC-USDT-SWAP", "0.01")
        fake.add_instrument("OLD-USDT-SWAP", "1", state="suspend")
        fake.set_funding("BTC-USDT-SWAP", "0.0001", 8 * HOUR, 16 * HOUR)
        fake.set_funding("OLD-USDT-SWAP", "0.0001", 8 * HOUR, 16 * HOUR)
        fake.add_x_perp("XAU-USD_UM_XPERP", "0.0001", 8 * HOUR, 9 * HOUR)
        fake.set_open_interest("OLD-USDT-SWAP", "1", "1", "1")
        source = OkxSource(RestClient(session, "okx", fake.base_url), "")
        assert [r.symbol for r in await source.poll_funding()] == ["BTC-USDT-SWAP"]
        assert await source.poll_open_interest() == []


@pytest.mark.parametrize(
    ("status", "headers", "body", "pause"),
    [
        (429, {"Retry-After": "7"}, None, 7.0),
        (418, {"Retry-After": "120"}, None, 120.0),
        (403, {}, None, 600.0),
    ],
)
async def test_rate_limit_answers_pause_calls_without_asking_again(
    session: aiohttp.ClientSession, status: int, headers: dict[str, str], body: None, pause: float
) -> None:
    async with FakeBinance() as fake:
        fake.set_market("BTCUSDT", "91000", "0.0001", "1500")
        fake.fail_next("/fapi/v1/premiumIndex", status, headers=headers, body=body)
        source = BinanceSource(RestClient(session, "binance", fake.base_url), "")
        with pytest.raises(RateLimited) as caught:
            await source.poll_funding()
        assert caught.value.pause == pause
        calls = len(fake.requests)
        with pytest.raises(RateLimited):
            await source.poll_funding()
        assert len(fake.requests) == calls


async def test_okx_50011_pauses_briefly(session: aiohttp.ClientSession) -> None:
    async with FakeOkx() as fake:
        fake.fail_next("/api/v5/public/funding-rate", 429, body=RATE_LIMITED)
        source = OkxSource(RestClient(session, "okx", fake.base_url), "")
        with pytest.raises(RateLimited) as caught:
            await source.poll_funding()
        assert caught.value.pause == 2.0
