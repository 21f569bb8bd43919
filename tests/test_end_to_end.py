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

from bot.config import load_settings
from bot.main import App
from bot.recorder import now_ms
from tests.fakes import (
    all_liquidation,
    detail,
    force_order,
    liquidation_orders,
)
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
    app = App(load_settings(config))
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
                and count(app, "funding") == 3
                and count(app, "open_interest") == 3
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
    task = asyncio.create_task(App(load_settings(config)).run(stop))
    try:
        async with asyncio.timeout(WAIT):
            await watcher.wait_for(
                "reconnecting in",
                "(attempt 3)",
                "binance: GET /fapi/v1/",
                "bybit: cannot load instruments",
                "okx: cannot load instruments",
            )
        assert not task.done()
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
    first = App(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    async with asyncio.timeout(WAIT):
        await binance.wait_for_connections(1)
        await binance.push(force_order("BTCUSDT", "SELL", "1", "90000", now_ms()))
        await first.recorder.wait_for(lambda: count(first, "events") == 1)
        stop.set()
        await task
        before = first.market.totals("24h")

        second = App(settings)
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
