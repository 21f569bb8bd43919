"""`liqbot demo`: replays a bundled liquidation cascade through the real pipeline (venue parsers,
market state, alert engine, outbox, console channel), offline and sped up.

The cascade (bot/data/demo_cascade.jsonl.gz, made by bench/make_demo_cascade.py) holds
wire-format frames and REST payloads; a calm 30-day history is seeded first, so the alerts can
compare the cascade with its norm.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from typing import Any, TextIO

from bot.clock import SystemClock
from bot.core import Core, read_start
from bot.model import Liquidation, OutboxRow, Thresholds
from bot.outbox import Channel, DeliveryError, Progress
from bot.venues import binance, bybit, okx
from handlers.console import ConsoleSender
from storage import market_data, open_database

DEMO_THRESHOLDS = Thresholds(window="1h", liq=100_000_000, whale=5_000_000, spike=3.0)
EVALUATE_EVERY_MS = 5_000
STEP_MS = 1_000
HOUR_MS = 3_600_000
BASELINE_HOURLY_USD = {
    "BTC": 9_000_000.0,
    "ETH": 4_000_000.0,
    "SOL": 2_000_000.0,
    "DOGE": 1_000_000.0,
}
BASELINE_LONG_SHARE = 0.52


def load_records() -> list[dict[str, Any]]:
    data = resources.files("bot").joinpath("data/demo_cascade.jsonl.gz").read_bytes()
    return [json.loads(line) for line in gzip.decompress(data).decode().splitlines() if line]


def baseline(start: int) -> Iterator[Liquidation]:
    """A calm month before the cascade: one rollup entry per hour, asset, venue and side."""
    for hour in range(30 * 24):
        at = start - (30 * 24 - hour) * HOUR_MS
        for base, usd in BASELINE_HOURLY_USD.items():
            for venue, venue_share in (("binance", 0.45), ("bybit", 0.35), ("okx", 0.2)):
                for position, share in (
                    ("long", BASELINE_LONG_SHARE),
                    ("short", 1 - BASELINE_LONG_SHARE),
                ):
                    value = usd * venue_share * share
                    yield Liquidation(
                        venue,
                        base + "USDT",
                        base,
                        position,  # type: ignore[arg-type]
                        1.0,
                        value,
                        value,
                        at,
                        at,
                    )


class ReplayClock(SystemClock):
    """The replay's time (outbox ages are measured on it), with real waits."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay

    def now_ms(self) -> int:
        return int(self.replay.clock)


class Replay:
    def __init__(self, records: list[dict[str, Any]], out: TextIO) -> None:
        self.records = records
        self.start = records[0]["at"]
        self.clock = self.start
        self.out = out
        db = open_database(None)
        with db.atomic():
            market_data.save_liquidations(db, list(baseline(self.start)))
        self.core = Core(
            db,
            read_start(db, self.start),
            channels={"console": Channel(self._send)},
            clock=ReplayClock(self),
        )
        self.contracts: dict[str, okx.Contract] = {}
        self.alerts = 0
        self._console = ConsoleSender(out)

    async def _send(self, row: OutboxRow, progress: Progress) -> None:
        stamp = datetime.fromtimestamp(self.clock / 1000, UTC).strftime("%H:%M:%S")
        minutes = (self.clock - self.start) // 60_000
        try:
            self.out.write(f"[{stamp} UTC, {minutes} min in]\n")
        except OSError as error:
            raise DeliveryError(f"demo: {error}", permanent=True) from None
        self.alerts += 1
        await self._console(row, progress)

    def feed(self, record: dict[str, Any]) -> None:
        venue, at = record["venue"], record["at"]
        if "rest" in record:
            if record["rest"] == "instruments":
                self.contracts = okx.parse_instruments(okx.unwrap(record["payload"]))
            else:
                rates, interests = bybit.parse_tickers(bybit.unwrap(record["payload"]), at)
                self.core.on_funding(rates)
                self.core.on_open_interest(interests, at)
            return
        frame = json.loads(record["frame"])
        events: list[Liquidation] | None
        if venue == "binance":
            events = binance.parse_liquidations(frame, at)
        elif venue == "bybit":
            events = bybit.parse_liquidations(frame, at)
        else:
            events = okx.parse_liquidations(frame, at, self.contracts)
        if events:
            self.core.on_liquidations(events)

    async def run(self, speed: float) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        end = self.records[-1]["at"]
        index = 0
        worker = self.core.workers["console"]
        await self.core.subscribe_console(DEMO_THRESHOLDS)
        # A pass before the first frame: the new subscriber is settled while nothing is crossed
        # (a chat that arrives over a threshold would start disarmed; see bot/engine.py).
        await self.core.engine.evaluate(self.clock)
        while self.clock <= end:
            self.clock += STEP_MS
            while index < len(self.records) and self.records[index]["at"] <= self.clock:
                self.feed(self.records[index])
                index += 1
            if (self.clock - self.start) % EVALUATE_EVERY_MS == 0:
                await self.core.engine.evaluate(self.clock)
                await self.core.recorder.flush()
                await worker.drain()
            ahead = (self.clock - self.start) / 1000 / speed - (loop.time() - began)
            if ahead > 0:
                await asyncio.sleep(ahead)


def run_demo(speed: float = 300.0, out: TextIO = sys.stdout) -> int:
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"demo speed must be a number above 0, not {speed!r}")
    records = load_records()
    minutes = (records[-1]["at"] - records[0]["at"]) / 60_000
    out.write(
        f"Replaying a {minutes:.0f}-minute liquidation cascade ({len(records):,} wire-format "
        f"frames from Binance, Bybit and OKX) at {speed:g}x, offline.\n"
        f"Thresholds: $100M in 1h, any side; whales from $5M; spikes from 3x the 30-day "
        f"average; funding 0.05% per 8h; open interest 5%.\n\n"
    )
    replay = Replay(records, out)
    asyncio.run(replay.run(speed))
    out.write(f"Done: {replay.alerts} alerts.\n")
    return 0
