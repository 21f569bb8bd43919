"""The real app against all three fake venues; `liqbot status --json` read from a second process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.clock import now_ms
from bot.config import load_settings, settings_from_dict
from bot.main import App
from bot.model import Gap, SourceHealth, merge_health
from bot.status import build_status, render_status
from storage import market_data, open_database
from tests.fakes import (
    FakeBinance,
    FakeBybit,
    FakeOkx,
    all_liquidation,
    detail,
    force_order,
    liquidation_orders,
)
from tests.fakes.binance import RECORDED
from tests.harness import WAIT, Fakes, write_config


async def liqbot(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


def count(app: App, table: str) -> int:
    return int(app.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_status_json_has_exact_totals_per_venue_side_and_asset(
    tmp_path: Path, fakes: Fakes
) -> None:
    binance, bybit, okx = fakes
    config = write_config(tmp_path, fakes)
    app = await App.open(load_settings(config))
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    async with asyncio.timeout(WAIT):
        await binance.wait_for_connections(1)
        await bybit.wait_for_subscribed({"allLiquidation.BTCUSDT", "allLiquidation.SOLUSDT"})
        await okx.wait_for_subscribed({"liquidation-orders:SWAP"})
        ts = now_ms()
        await binance.push(force_order("BTCUSDT", "SELL", "2", "91000", ts))
        await binance.push(force_order("ETHUSDT", "BUY", "10", "3000", ts))
        await bybit.push(all_liquidation("BTCUSDT", "Buy", "1", "91000", ts))
        await bybit.push(all_liquidation("SOLUSDT", "Sell", "100", "150", ts))
        await bybit.push(all_liquidation("ETHUSDT", "Sell", "1", "3000", ts - 2 * 3_600_000))
        await okx.push(
            liquidation_orders("BTC-USDT-SWAP", [detail("sell", "long", "100", "90000", ts)])
        )
        await okx.push("{broken")
        await okx.push(
            liquidation_orders("ETH-USDT-SWAP", [detail("buy", "short", "10", "3000", ts)])
        )
        await app.recorder.wait_for(
            lambda: (
                count(app, "events") == 7
                and count(app, "funding") == 4
                and count(app, "open_interest") == 4
            )
        )
        code, out, err = await liqbot("--config", str(config), "status", "--json")
    assert code == 0, err
    status: dict[str, Any] = json.loads(out)
    hour = status["liquidations"]["1h"]
    assert hour == {
        "total_usd": 411_000.0,
        "long_usd": 363_000.0,
        "short_usd": 48_000.0,
        "long_share": 363_000.0 / 411_000.0,
        "count": 6,
        "by_exchange": {"binance": 212_000.0, "bybit": 106_000.0, "okx": 93_000.0},
        "by_symbol": {"BTC": 363_000.0, "ETH": 33_000.0, "SOL": 15_000.0},
    }
    assert status["liquidations"]["5m"] == hour
    day = status["liquidations"]["24h"]
    assert (day["total_usd"], day["short_usd"], day["count"]) == (414_000.0, 51_000.0, 7)
    assert day["by_exchange"]["bybit"] == 109_000.0
    funding = {(f["exchange"], f["symbol"]): f for f in status["funding"]}
    assert funding["bybit", "SOLUSDT"]["rate_8h"] == -0.0014
    assert funding["okx", "BTC-USDT-SWAP"]["interval_hours"] == 8.0
    assert funding["binance", "BTCUSDT"]["apr"] == 0.0001 * 3 * 365
    interest = {(i["exchange"], i["symbol"]): i["usd"] for i in status["open_interest"]}
    assert interest == {
        ("binance", "BTCUSDT"): 91_000_000.0,
        ("binance", "ETHUSDT"): 300_000.0,
        ("bybit", "SOLUSDT"): 3_000_000.0,
        ("okx", "BTC-USDT-SWAP"): 9_000_000.0,
    }
    sources = status["sources"]
    assert {venue: s["connected"] for venue, s in sources.items()} == {
        "binance": True,
        "bybit": True,
        "okx": True,
    }
    assert sources["okx"]["parse_errors"] == 1
    assert sources["binance"]["gaps"] == []

    code, text, _ = await liqbot("--config", str(config), "status")
    assert "  1h     $411K  88% longs  (6 events)" in text
    assert "lower bounds" in text
    stop.set()
    await task


class LogWatcher(logging.Handler):
    """Wakes a test whenever a log record arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.changed.set()

    async def wait_for(self, *fragments: str) -> None:
        while not all(any(f in m for m in self.messages) for f in fragments):
            self.changed.clear()
            await self.changed.wait()


async def test_without_network_it_keeps_retrying_with_clear_logs(
    tmp_path: Path, fakes: Fakes
) -> None:
    config = write_config(tmp_path, fakes, base_urls=("http://127.0.0.1:9", "ws://127.0.0.1:9"))
    watcher = LogWatcher()
    logging.getLogger("bot").addHandler(watcher)
    stop = asyncio.Event()
    app = await App.open(load_settings(config))
    task = asyncio.create_task(app.run(stop))
    try:
        async with asyncio.timeout(WAIT):
            await watcher.wait_for(
                "reconnecting in",
                "(attempt 3)",
                "binance: GET /fapi/v1/",
                "bybit: cannot load instruments",
                "okx: cannot load instruments",
            )
            await app.recorder.wait_for(
                lambda: (
                    all(row["retrying_since"] for row in app.db.query("SELECT * FROM sources"))
                    and count(app, "sources") == 3
                )
            )
            code, out, _ = await liqbot("--config", str(config), "status", "--json")
            _, text, _ = await liqbot("--config", str(config), "status")
        assert not task.done()
        assert code == 0
        for source in json.loads(out)["sources"].values():
            assert not source["connected"]
            assert source["retrying_since"] <= source["next_attempt_at"]
            assert "cannot load instruments" in source["last_error"]
        assert "okx      DISCONNECTED" in text and "retrying since 20" in text
        assert "next attempt 20" in text
    finally:
        logging.getLogger("bot").removeHandler(watcher)
        stop.set()
        await task


async def test_run_stops_on_sigterm_flushes_and_exits_zero(tmp_path: Path, fakes: Fakes) -> None:
    config = write_config(tmp_path, fakes)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(config),
        "run",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    async with asyncio.timeout(WAIT):
        connected: set[str] = set()
        while connected != {"binance", "bybit", "okx"}:
            line = (await process.stderr.readline()).decode()
            assert line, "liqbot run ended early"
            if "connected to" in line:
                connected.add(line.split("bot.feeds: ")[1].split(":")[0])
        process.send_signal(signal.SIGTERM)
        rest = (await process.stderr.read()).decode()
        assert await process.wait() == 0
    assert "stopping" in rest
    _, out, _ = await liqbot("--config", str(config), "status", "--json")
    sources = json.loads(out)["sources"]
    assert {venue: s["connected"] for venue, s in sources.items()} == {
        "binance": False,
        "bybit": False,
        "okx": False,
    }


async def test_restart_keeps_totals_and_records_the_downtime_as_a_gap(
    tmp_path: Path, fakes: Fakes
) -> None:
    binance = fakes[0]
    settings = load_settings(write_config(tmp_path, fakes))
    first = await App.open(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    async with asyncio.timeout(WAIT):
        await binance.wait_for_connections(1)
        await binance.push(force_order("BTCUSDT", "SELL", "1", "90000", now_ms()))
        await first.recorder.wait_for(lambda: count(first, "events") == 1)
        stop.set()
        await task
        before = first.market.totals("24h")

        second = await App.open(settings)
        assert second.market.totals("24h") == before
        assert before.total_usd == 90_000.0
        stop = asyncio.Event()
        task = asyncio.create_task(second.run(stop))
        await binance.wait_for_connections(2)
        await second.recorder.wait_for(lambda: count(second, "gaps") >= 1)
        stop.set()
        await task
    [gap] = [row for row in second.db.query("SELECT * FROM gaps") if row["venue"] == "binance"]
    assert gap["start_ts"] == first.collectors[0].health.last_message_at
    assert count(second, "events") == 1


async def test_run_against_real_universes_gives_exact_totals_and_only_live_perpetuals(
    tmp_path: Path,
) -> None:
    """Binance serves its recorded exchangeInfo (647 symbols) and premiumIndex (521 rows,
    delivery and delisted ones included); Bybit lists 1,205 perpetuals over three pages plus a
    dated future and a pre-market contract; OKX answers `ANY` with an X-Perps row, lists a
    suspended swap, announces an upgrade and pushes an instrument newer than its list."""
    async with FakeBinance() as binance, FakeBybit() as bybit, FakeOkx() as okx:
        binance.serve_recorded_universe()
        binance.set_market("BTCUSDT_251226", "92000", "0", "5", contract_type="CURRENT_QUARTER")
        symbols = [f"C{i:04d}USDT" for i in range(1_205)]
        for symbol in symbols:
            bybit.add_instrument(symbol, symbol.removesuffix("USDT"))
        bybit.add_instrument("BTC-26DEC25", "BTC", contract_type="LinearFutures")
        bybit.add_instrument("BIOUSDT", "BIO", status="PreLaunch")
        bybit.set_ticker("C1204USDT", "2", "0.0001", "1000", single_side_fields=False)
        bybit.set_ticker("BTC-26DEC25", "91000", "", "10")
        bybit.set_ticker("BIOUSDT", "0.1", "0.0005", "10")
        okx.add_instrument("BTC-USDT-SWAP", "0.01")
        okx.add_instrument("OLD-USDT-SWAP", "1", state="suspend")
        okx.set_funding("BTC-USDT-SWAP", "0.0002", 8 * 3_600_000, 12 * 3_600_000)
        okx.set_funding("OLD-USDT-SWAP", "0.0002", 8 * 3_600_000, 16 * 3_600_000)
        okx.add_x_perp("XAU-USD_UM_XPERP-250926", "0.0001", 8 * 3_600_000, 9 * 3_600_000)
        fakes = (binance, bybit, okx)
        config = write_config(tmp_path, fakes)
        app = await App.open(load_settings(config))
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        async with asyncio.timeout(3 * WAIT):
            topics = {f"allLiquidation.{symbol}" for symbol in symbols}
            await bybit.wait_for_subscribed(topics)
            await binance.wait_for_connections(1)
            await okx.wait_for_subscribed({"liquidation-orders:SWAP"})
            ts = now_ms()
            await binance.push(force_order("BTCUSDT", "SELL", "2", "100000", ts))
            await binance.push(force_order("ETHBTC", "BUY", "10", "0.025", ts))
            await binance.push(force_order("BTCUSDT_251226", "SELL", "1", "92000", ts))
            await bybit.push(all_liquidation("C0000USDT", "Buy", "1000", "1", ts))
            await bybit.push(all_liquidation("C1204USDT", "Sell", "500", "2", ts))
            await okx.announce_upgrade(cut_after=3 * WAIT)
            await okx.wait_for_connections(2)
            await okx.wait_for_subscribed({"liquidation-orders:SWAP"})
            okx.add_instrument("NEW-USDT-SWAP", "10")
            push = liquidation_orders("BTC-USDT-SWAP", [detail("sell", "long", "100", "90000", ts)])
            push["data"] += liquidation_orders(
                "NEW-USDT-SWAP", [detail("buy", "net", "1", "5", ts)]
            )["data"]
            await okx.push(push)
            await app.recorder.wait_for(
                lambda: (
                    count(app, "events") == 5
                    and count(app, "funding") == 454 + 1 + 1
                    and count(app, "open_interest") >= 454 + 1
                )
            )
            code, out, err = await liqbot("--config", str(config), "status", "--json")
        stop.set()
        await task
    assert code == 0, err
    status: dict[str, Any] = json.loads(out)
    btc_usd = 106599.9  # BTCUSDT's mark price in the recorded premiumIndex
    hour = status["liquidations"]["1h"]
    assert hour["count"] == 5
    assert hour["by_exchange"] == {
        "binance": pytest.approx(200_000.0 + 10 * 0.025 * btc_usd),
        "bybit": 2_000.0,
        "okx": 90_000.0,
    }
    assert hour["by_symbol"]["ETH"] == pytest.approx(10 * 0.025 * btc_usd)
    assert hour["long_usd"] == 200_000.0 + 1_000.0 + 90_000.0
    funding = {(f["exchange"], f["symbol"]) for f in status["funding"]}
    assert len(funding) == 454 + 1 + 1
    assert ("bybit", "C1204USDT") in funding and ("okx", "BTC-USDT-SWAP") in funding
    recorded = {e["symbol"] for e in json.loads((RECORDED / "premium_index_all.json").read_text())}
    listed = json.loads((RECORDED / "exchange_info.json").read_text())["symbols"]
    live = {
        s["symbol"] for s in listed if (s["contractType"], s["status"]) == ("PERPETUAL", "TRADING")
    }
    assert {symbol for venue, symbol in funding if venue == "binance"} == recorded & live
    interest = {(i["exchange"], i["symbol"]): i["usd"] for i in status["open_interest"]}
    assert interest["bybit", "C1204USDT"] == 2 * 1000 * 2 / 2  # half of both sides
    assert ("binance", "BTCUSDT_251226") not in interest
    sources = status["sources"]
    assert {
        v: (s["symbols"], s["parse_errors"], s["refused_subscriptions"]) for v, s in sources.items()
    } == {
        "binance": (552, 0, 0),
        "bybit": (1_205, 0, 0),
        "okx": (2, 0, 0),
    }
    assert sources["binance"]["ignored"] == 1  # the delivery contract's liquidation
    assert sources["okx"]["reconnects"] == 1
    assert sources["okx"]["ignored"] >= 3  # two acks, the notice, the unknown instrument
    assert bybit.refused_for_length == 0


def test_status_merges_shard_health_and_gaps_into_one_source(tmp_path: Path) -> None:
    db = open_database(tmp_path / "liq.db")
    now = now_ms()
    shards = [
        SourceHealth("bybit", True, now - 5_000, 1, 40, 1, 3, 402, 0),
        SourceHealth("bybit", True, now - 2_000, 1, 60, 0, 2, 401, 2),
        SourceHealth("bybit", False, None, 0, 0, 0, 0, 0, 0),  # idle: no topics yet
    ]
    [bybit] = merge_health(shards)
    assert bybit == SourceHealth("bybit", True, now - 2_000, 2, 100, 1, 5, 803, 2)
    with db.atomic():
        market_data.save_health(db, [bybit], now)
        # Each connection recorded the same outage; a separate later one stays apart.
        market_data.save_gaps(
            db,
            [
                Gap("bybit", now - 60_000, now - 50_000),
                Gap("bybit", now - 59_990, now - 49_000),
                Gap("bybit", now - 30_000, now - 29_000),
            ],
        )
    settings = settings_from_dict({"exchanges": {"binance": {"enabled": False}}})
    status = build_status(db, settings, now)
    source = status["sources"]["bybit"]
    assert [g["seconds"] for g in source["gaps"]] == [11.0, 1.0]
    assert (source["symbols"], source["ignored"], source["refused_subscriptions"]) == (803, 5, 2)
    assert source["parse_errors"] == 1 and source["retrying_since"] is None
    text = render_status(status)
    assert "  bybit    connected, 803 symbols, " in text
    assert "2 gaps in 24h, 1 bad frames, 5 ignored" in text
    assert "2 subscriptions REFUSED by the venue" in text
