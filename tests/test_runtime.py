"""Loop lag percentiles and histogram, readiness reasons, and the runtime part of `status`."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlite_utils import Database

from bot.alert import plain
from bot.counters import LiquidationCounts
from bot.loop_lag import BUCKETS, LagSummary, LoopLag
from bot.metrics import LiqbotCollector, registry
from bot.model import Liquidation, OutboxItem, Position, SourceHealth
from bot.outbox import Channel, OutboxWorker
from bot.recorder import Recorder
from bot.runtime import Runtime
from bot.status import HEALTH_STALE_MS, render_runtime, runtime_json
from bot.supervisor import MAX_CONSECUTIVE_FAILURES, Supervisor
from bot.writer import Writer
from handlers.console import ConsoleSender
from storage import open_database
from storage.alerts import enqueue
from storage.runtime import RuntimeRow, read_runtime, save_runtime
from tests.clock import START_MS, ManualClock


async def test_lag_percentiles_cover_the_last_five_minutes_only() -> None:
    clock = ManualClock()
    lag = LoopLag(clock)
    for i in range(1, 101):  # 1..100 ms, one a second
        await clock.advance(1.0)
        lag.observe(i / 1000, clock.monotonic())
    assert lag.summary() == pytest.approx(LagSummary(p50=50.0, p99=99.0, max=100.0))
    await clock.advance(250.0)  # 350 s: the samples of the first 49 s are out of the window
    assert lag.summary() == pytest.approx(LagSummary(p50=75.0, p99=100.0, max=100.0))


def test_lag_histogram_counts_each_sample_in_the_first_bucket_that_holds_it() -> None:
    lag = LoopLag(ManualClock())
    assert LoopLag(ManualClock()).summary() is None
    for sample in (0.0, 0.001, 0.0011, 0.3, 99.0):
        lag.observe(sample, 0.0)
    expected = [0] * (len(BUCKETS) + 1)
    expected[BUCKETS.index(0.001)] = 2  # le="0.001" holds 0 and exactly 0.001
    expected[BUCKETS.index(0.0025)] = 1
    expected[BUCKETS.index(0.5)] = 1
    expected[-1] = 1  # +Inf
    assert lag.bucket_counts == expected
    assert (lag.count, lag.sum) == (5, 0.0 + 0.001 + 0.0011 + 0.3 + 99.0)


async def test_a_blocked_loop_shows_as_lag_at_least_as_long_as_the_block() -> None:
    lag = LoopLag(interval=0.005)
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.02)
    time.sleep(0.06)  # noqa: ASYNC251 (blocks the loop on purpose, as a slow step would)
    await asyncio.sleep(0.02)
    task.cancel()
    summary = lag.summary()
    assert summary is not None and summary.max >= 55.0


def test_liquidations_are_counted_per_venue_and_liquidated_side() -> None:
    def liq(venue: str, position: Position, usd: float) -> Liquidation:
        return Liquidation(venue, "BTCUSDT", "BTC", position, 1.0, 1.0, usd, 0, 0)

    counts = LiquidationCounts()
    counts.add([liq("bybit", "long", 1_500.25), liq("bybit", "long", 0.75)])
    counts.add([liq("okx", "short", 90_000.0)])
    counts.add([])
    assert counts.get("bybit", "long") == (2, 1_501.0)
    assert counts.get("bybit", "short") == (0, 0.0)
    assert counts.get("okx", "short") == (1, 90_000.0)
    assert counts.get("binance", "long") == (0, 0.0)


def _runtime(
    sources: list[SourceHealth], supervisor: Supervisor, recorder: Recorder, db: Database
) -> Runtime:
    clock = supervisor.clock
    return Runtime(
        supervisor, lambda: sources, recorder, LoopLag(clock), Writer.inline(db), ["console"], clock
    )


async def test_readiness_names_every_reason() -> None:
    clock = ManualClock()
    db = open_database(None)
    sources = [SourceHealth("binance", connected=True), SourceHealth("okx")]
    supervisor = Supervisor(clock)

    async def broken() -> None:
        raise RuntimeError("always")

    async def fine() -> None:
        await asyncio.Event().wait()

    supervisor.add("engine", broken)
    supervisor.add("outbox-console", fine)
    recorder = Recorder(db)
    runtime = _runtime(sources, supervisor, recorder, db)
    assert runtime.readiness().reasons == ()
    assert runtime.readiness().ready is True

    supervisor.start()
    for _ in range(MAX_CONSECUTIVE_FAILURES):
        await clock.advance(60.0)
    sources[0].connected = False
    recorder.storage_ok, recorder.storage_error = False, "disk I/O error"
    assert runtime.readiness_json() == {
        "ready": False,
        "reasons": [
            "storage not writable: disk I/O error",
            "no venue connected (binance, okx)",
            "tasks failed: engine",
        ],
        "storage": {"writable": False, "error": "disk I/O error"},
        "venues": {"binance": False, "okx": False},
        "tasks": {"engine": "failed", "outbox-console": "running"},
    }
    await supervisor.stop()


async def test_the_runtime_row_is_rewritten_and_marked_stopped_at_the_end() -> None:
    clock = ManualClock()
    db = open_database(None)
    supervisor = Supervisor(clock)
    runtime = _runtime([SourceHealth("bybit")], supervisor, Recorder(db), db)
    enqueue(
        db, [OutboxItem("k1", "console", "stdout", "whale", "BTC", "long", (plain("x"),))], START_MS
    )
    enqueue(
        db, [OutboxItem("k2", "telegram", "1", "whale", "BTC", "long", (plain("x"),))], START_MS
    )
    supervisor.add("runtime", runtime.run)
    runtime.lag.observe(0.002, 0.0)
    supervisor.start()
    await clock.advance(2.5)
    row = read_runtime(db)
    assert row == RuntimeRow(START_MS, START_MS + 2000, None, 2.0, 2.0, 2.0, {"runtime": "running"})
    assert runtime.outbox_pending == 1  # its own platforms only: console
    await supervisor.stop()
    row = read_runtime(db)
    assert row is not None and row.stopped_at == START_MS + 2500


def test_status_runtime_while_running_stale_and_stopped() -> None:
    db = open_database(None)
    assert runtime_json(db, START_MS) == {
        "running": False,
        "started_at": None,
        "uptime_s": None,
        "updated_at": None,
        "loop_lag_ms": {"p50": None, "p99": None, "max": None},
        "outbox_pending": 0,
        "tasks": {},
    }
    started = START_MS - 3_723_000  # 1 h 2 min 3 s ago
    tasks = {"collector-okx": "restarting", "engine": "running", "outbox-telegram": "failed"}
    save_runtime(db, RuntimeRow(started, START_MS - 500, None, 0.4, 12.25, 80.0, tasks))
    enqueue(db, [OutboxItem("k", "telegram", "1", "whale", "BTC", "long", (plain("x"),))], START_MS)
    status = {"runtime": runtime_json(db, START_MS)}
    assert status["runtime"] == {
        "running": True,
        "started_at": "2025-11-21T03:37:57Z",
        "uptime_s": 3723,
        "updated_at": "2025-11-21T04:39:59Z",
        "loop_lag_ms": {"p50": 0.4, "p99": 12.25, "max": 80.0},
        "outbox_pending": 1,
        "tasks": tasks,
    }
    assert render_runtime(status) == (
        "Runtime: up 1h 02m, loop lag p99 12.2 ms, outbox 1 pending, "
        "not running: collector-okx restarting, outbox-telegram failed"
    )
    stale = {"runtime": runtime_json(db, START_MS - 500 + HEALTH_STALE_MS + 1)}
    assert stale["runtime"]["running"] is False
    assert stale["runtime"]["tasks"] == {}
    assert render_runtime(stale) == (
        "Runtime: not running (last seen 2025-11-21T04:39:59Z), outbox 1 pending"
    )
    save_runtime(db, RuntimeRow(started, START_MS - 500, START_MS - 500, 0.4, 12.25, 80.0, tasks))
    assert runtime_json(db, START_MS)["running"] is False


async def test_the_collector_exposes_every_contract_metric_with_exact_values() -> None:
    clock = ManualClock()
    db = open_database(None)
    sources = [
        SourceHealth("binance", connected=True, reconnects=2, parse_errors=3),
        SourceHealth("okx", connected=False, reconnects=0, parse_errors=0),
    ]
    supervisor = Supervisor(clock)
    crashed = asyncio.Event()

    async def crashes_once() -> None:
        if not crashed.is_set():
            crashed.set()
            raise RuntimeError("once")
        await asyncio.Event().wait()

    supervisor.add("engine", crashes_once)
    supervisor.start()
    await clock.advance(2.0)  # crashed, backed off about 1 s, running again
    counts = LiquidationCounts()
    counts.add([Liquidation("okx", "X", "X", "short", 1.0, 1.0, 250.5, 0, 0)])
    channel = Channel(ConsoleSender())
    worker = OutboxWorker(db, Writer.inline(db), "telegram", channel, lambda *change: None)
    worker.sent = 7
    runtime = _runtime(sources, supervisor, Recorder(db), db)
    runtime.outbox_pending = 4
    for lag in (0.0005, 0.03, 20.0):
        runtime.lag.observe(lag, 0.0)
    collector = LiqbotCollector(
        lambda: sources,
        counts,
        Counter({"whale": 2, "funding": 1}),
        {"telegram": worker},
        runtime.lag,
        runtime,
    )
    text = generate_latest(registry(collector)).decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("liqbot_")
    }
    buckets = {
        (("le", le),): cumulative
        for le, cumulative in zip(
            [*(str(b) for b in BUCKETS), "+Inf"],
            [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3],
            strict=True,
        )
    }
    expected = {
        "liqbot_liquidations_total": {
            (("exchange", "binance"), ("side", "long")): 0,
            (("exchange", "binance"), ("side", "short")): 0,
            (("exchange", "okx"), ("side", "long")): 0,
            (("exchange", "okx"), ("side", "short")): 1,
        },
        "liqbot_liquidations_usd_total": {
            (("exchange", "binance"), ("side", "long")): 0.0,
            (("exchange", "binance"), ("side", "short")): 0.0,
            (("exchange", "okx"), ("side", "long")): 0.0,
            (("exchange", "okx"), ("side", "short")): 250.5,
        },
        "liqbot_ws_connected": {(("exchange", "binance"),): 1, (("exchange", "okx"),): 0},
        "liqbot_ws_reconnects_total": {(("exchange", "binance"),): 2, (("exchange", "okx"),): 0},
        "liqbot_parse_errors_total": {(("exchange", "binance"),): 3, (("exchange", "okx"),): 0},
        "liqbot_alerts_total": {(("rule", "funding"),): 1, (("rule", "whale"),): 2},
        "liqbot_messages_sent_total": {(("platform", "telegram"),): 7},
        "liqbot_task_restarts_total": {(("task", "engine"),): 1},
        "liqbot_outbox_pending": {(): 4},
        "liqbot_event_loop_lag_seconds_bucket": buckets,
        "liqbot_event_loop_lag_seconds_count": {(): 3},
        "liqbot_event_loop_lag_seconds_sum": {(): 0.0005 + 0.03 + 20.0},
    }
    assert samples == {
        (name, labels): value
        for name, series in expected.items()
        for labels, value in series.items()
    }
    assert "# TYPE liqbot_event_loop_lag_seconds histogram" in text
    assert "# TYPE liqbot_liquidations_total counter" in text
    await supervisor.stop()
