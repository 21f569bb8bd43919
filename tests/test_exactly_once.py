"""Exactly once: an alert decided before a crash (kill -9 between the decision and its delivery)
is delivered once after the restart, neither lost nor repeated."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from bot.alert import plain
from bot.clock import now_ms
from bot.core import Core, read_start
from bot.model import OutboxItem, OutboxRow
from bot.outbox import Channel, Progress
from storage import alerts, open_database
from tests.engine_builders import (
    MINUTE,
    PLATFORM,
    SECOND,
    T0,
    Bot,
    Recording,
    StepClock,
    liq,
    outbox,
    rule_states,
    sub,
)
from tests.fakes import force_order
from tests.harness import WAIT, Fakes, write_config

ALERT = "$150K liquidated in 1h, 100% longs"


async def test_an_alert_decided_before_a_crash_is_delivered_once_after_the_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.db"
    sending = asyncio.Event()

    async def never_returns(row: OutboxRow, progress: Progress) -> None:
        sending.set()
        await asyncio.Event().wait()

    channels = {PLATFORM: Channel(never_returns)}
    db = open_database(path)
    first = Core(db, read_start(db, T0), channels=channels, clock=StepClock(T0))
    with first.db.atomic():
        alerts.save_subscription(first.db, sub("a", liq=100_000, cooldown=60), T0)
    first.engine.reload_subscriptions()
    first.on_liquidations([liq("BTC", "long", 150_000, T0)])
    assert await first.engine.evaluate(T0) == 1
    await first.recorder.flush()
    stuck = asyncio.create_task(first.workers[PLATFORM].run())
    try:
        async with asyncio.timeout(WAIT):
            await sending.wait()
        assert outbox(path) == [("a", "window", "pending")]

        # The first process is gone without a shutdown; a new one opens the same file.
        second = Bot(path, T0 + 5 * SECOND)
        assert second.core.market.totals("1h").total_usd == 150_000  # rebuilt from rollups
        assert await second.engine.evaluate(T0 + 5 * SECOND) == 0
        assert await second.engine.evaluate(T0 + 2 * MINUTE) == 0  # past the cooldown, still above
        assert await second.deliver() == {"a": [ALERT]}
        assert await second.deliver() == {}
        assert outbox(path) == [("a", "window", "sent")]
    finally:
        stuck.cancel()
        await asyncio.gather(stuck, return_exceptions=True)


async def test_a_trigger_decided_twice_in_one_minute_is_recorded_and_delivered_once(
    tmp_path: Path,
) -> None:
    """Two engines whose memory missed each other's decision: the idempotency key collapses
    the second record of the same trigger."""
    path = tmp_path / "x.db"
    first, second = Bot(path, T0), Bot(path, T0)
    first.subscribe(sub("a", liq=100_000, cooldown=60))
    second.engine.reload_subscriptions()
    event = liq("BTC", "long", 150_000, T0)
    first.liquidate(event)
    second.liquidate(event)

    assert await first.engine.evaluate(T0 + 10 * SECOND) == 1
    assert await second.engine.evaluate(T0 + 20 * SECOND) == 0
    assert await first.deliver() == {"a": [ALERT]}
    assert await second.deliver() == {}
    assert outbox(path) == [("a", "window", "sent")]


class Crash(Exception):
    pass


async def test_a_decision_and_its_outbox_row_are_committed_together_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.db"
    bot = Bot(path, T0)
    bot.subscribe(sub("a", liq=100_000, cooldown=60))
    bot.liquidate(liq("BTC", "long", 150_000, T0))

    def crash(*args: object) -> None:
        raise Crash

    # The last write of the decision's transaction fails: the earlier ones roll back with it.
    monkeypatch.setattr(alerts, "mark_merged", crash)
    with pytest.raises(Crash):
        await bot.engine.evaluate(T0)
    assert outbox(path) == []
    assert rule_states(path) == {}

    monkeypatch.undo()
    assert await bot.step(T0 + SECOND) == {"a": [ALERT]}
    assert rule_states(path) == {("telegram:a", "window", "*"): False}


async def test_the_outbox_delivers_each_row_once_when_chats_outnumber_slots(
    tmp_path: Path,
) -> None:
    db = open_database(tmp_path / "x.db")
    sent = Recording()
    channels = {PLATFORM: Channel(sent, concurrency=1)}
    core = Core(db, read_start(db, T0), channels=channels, clock=StepClock(T0))
    with db.atomic():
        alerts.enqueue(
            db,
            [
                OutboxItem(
                    f"{chat}|{n}", PLATFORM, chat, "whale", "BTC", "long", (plain(f"{chat} {n}"),)
                )
                for chat, n in (("a", 1), ("a", 2), ("b", 1))
            ],
            T0,
        )
    await core.workers[PLATFORM].drain()

    assert sorted(row.text for row in sent.rows) == ["a 1", "a 2", "b 1"]


# The real `liqbot run`, killed with SIGKILL after it decided an alert and before it could
# deliver it, then started again.

WINDOW_ALERT = "$91K liquidated in 1h, 100% longs"
WHALE_ALERT = "Whale liquidation: $2.73M BTC long on Binance"
FILLER = b"."


def full_pipe() -> tuple[int, int]:
    """A pipe whose buffer is already full: a blocking write to it blocks until it is read,
    so the console channel cannot deliver anything through it."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    for size in (65_536, 4_096, 1):
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(write_end, FILLER * size)
    os.set_blocking(write_end, True)
    return read_end, write_end


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65_536):
        chunks.append(chunk)
    return b"".join(chunks)


async def start_liqbot(config: Path, stdout: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(config),
        "run",
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def outbox_rows(path: Path) -> list[tuple[str, str]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT rule, status FROM outbox ORDER BY id").fetchall()
    finally:
        connection.close()


async def test_liqbot_killed_between_decision_and_delivery_delivers_the_alert_once(
    tmp_path: Path, fakes: Fakes
) -> None:
    binance = fakes[0]
    config = write_config(tmp_path, fakes)
    config.write_text(
        config.read_text()
        + "\n[defaults]\nmin_liquidations_usd = 10000\nsingle_liquidation_usd = 1000000\n"
        "funding_rate_8h = 0\noi_change = 0\n"
        # No escalation: when the first run's event was flushed before the kill (the writer's
        # batch raced the decision), the second run's whale takes the told $91K past 2x, a new
        # window alert that the run may not deliver before it is stopped.
        "escalation = 0\n"
    )
    path = tmp_path / "liqbot.db"

    # First run: stdout is a full pipe nobody reads, so delivery blocks the whole process.
    read_end, write_end = full_pipe()
    try:
        first = await start_liqbot(config, write_end)
        os.close(write_end)
        assert first.stderr is not None
        try:
            async with asyncio.timeout(WAIT):
                await binance.wait_for_connections(1)
                await binance.push(force_order("BTCUSDT", "SELL", "1", "91000", now_ms()))
                log: list[str] = []
                while not any("alert(s) recorded" in line for line in log):
                    line = (await first.stderr.readline()).decode()
                    assert line, "liqbot run ended early:\n" + "".join(log)
                    log.append(line)
            at_kill = outbox_rows(path)
        finally:
            first.kill()
            await first.wait()
        assert first.returncode == -signal.SIGKILL
        written = read_all(read_end)
    finally:
        os.close(read_end)
    assert at_kill == [("window", "pending")]  # decided and recorded, not delivered
    assert written.strip(FILLER) == b""

    # Second run on the same database: it delivers what the first left pending by itself.
    # Then a whale: its alert proves a pass evaluated a market over the window threshold (the
    # whale's pass also runs the window rule), which must not decide the window alert again.
    second = await start_liqbot(config, asyncio.subprocess.PIPE)
    assert second.stdout is not None
    lines: list[str] = []

    async def read_until(text: str) -> None:
        assert second.stdout is not None
        while text not in lines:
            line = (await second.stdout.readline()).decode()
            assert line, "liqbot run ended early"
            lines.append(line.rstrip("\n"))

    try:
        async with asyncio.timeout(WAIT):
            await read_until(WINDOW_ALERT)
            await binance.wait_for_connections(2)
            await binance.push(force_order("BTCUSDT", "SELL", "30", "91000", now_ms()))
            await read_until(WHALE_ALERT)
    finally:
        second.send_signal(signal.SIGTERM)
        rest, err = await second.communicate()
    assert second.returncode == 0, err.decode()
    lines += rest.decode().splitlines()
    assert lines.count(WINDOW_ALERT) == 1
    assert lines.count(WHALE_ALERT) == 1
    # The window alert opened a story: when the first run's events were not flushed before the
    # kill, the second run sees the window below half its threshold and closes the story.
    rows = outbox_rows(path)
    assert [row for row in rows if row[0] != "summary"] == [("window", "sent"), ("whale", "sent")]
    assert rows.count(("summary", "sent")) == len(rows) - 2 <= 1
