"""The recorder on the real writer thread and a real database file, while storage cannot be
written: a lock held by another connection (a backup), a full disk (SQLite's page limit), a
read-only database (query_only, as after a read-only remount). It keeps its buffer, retries
with capped backoff, resumes, says so, and stores what happened for `liqbot status`."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from sqlite_utils import Database

from bot import recorder as recorder_module
from bot.config import settings_from_dict
from bot.model import Liquidation, SourceHealth
from bot.recorder import RETRY_MAX, RETRY_MIN, STORAGE_GIVE_UP, Recorder
from bot.status import build_status, render_status
from bot.supervisor import Fatal
from bot.writer import Writer
from storage import open_database
from tests.clock import ManualClock

WAIT = 10.0
T = TypeVar("T")


def liq(usd: float, ts: int) -> Liquidation:
    return Liquidation("bybit", "BTCUSDT", "BTC", "long", 90_000.0, usd / 90_000, usd, ts, ts)


def stored(path: Path) -> list[float]:
    reader = Database(path)
    try:
        return [row[0] for row in reader.execute("SELECT usd FROM events ORDER BY rowid")]
    finally:
        reader.close()


def quick_to_give_up(path: Path) -> Database:
    db = open_database(path)
    db.execute("PRAGMA busy_timeout=50")  # a held lock fails a write in 50 ms, not 5 s
    return db


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[Writer]:
    started = await Writer.start(lambda: quick_to_give_up(tmp_path / "liq.db"))
    yield started
    await started.close()


class RecordingClock(ManualClock):
    """A manual clock that notes each sleep and says when someone sleeps on it."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []
        self.asleep = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.asleep.set()
        try:
            await super().sleep(seconds)
        finally:
            self.asleep.clear()


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


async def fails_then_sleeps(recorder: Recorder, clock: RecordingClock) -> None:
    """Wait until a flush has failed and the recorder sleeps in its backoff."""
    async with asyncio.timeout(WAIT):
        await recorder.wait_for(lambda: not recorder.storage_ok)
        await clock.asleep.wait()


async def test_a_held_lock_keeps_the_batch_retries_and_resumes(
    tmp_path: Path, writer: Writer, clock: RecordingClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "liq.db"
    backup = sqlite3.connect(path, isolation_level=None)
    backup.execute("BEGIN IMMEDIATE")
    health = [SourceHealth("bybit", connected=True, messages=3)]
    recorder = Recorder(writer, lambda: health, clock)
    recorder.add_liquidations([liq(1_000.0, clock.now_ms()), liq(2_000.0, clock.now_ms())])
    with caplog.at_level(logging.WARNING, "bot.recorder"):
        flushing = asyncio.create_task(recorder.flush())
        await fails_then_sleeps(recorder, clock)
        assert (recorder.storage_ok, recorder.storage_error) == (False, "database is locked")
        assert recorder.buffered == 2
        recorder.add_liquidations([liq(3_000.0, clock.now_ms())])  # arrives meanwhile
        await clock.advance(RETRY_MIN)  # the lock is still held: a second failure
        await fails_then_sleeps(recorder, clock)
        backup.execute("ROLLBACK")
        backup.close()
        await clock.advance(2 * RETRY_MIN)
        async with asyncio.timeout(WAIT):
            await flushing
    assert (recorder.storage_ok, recorder.storage_error, recorder.dropped) == (True, None, 0)
    assert stored(path) == [1_000.0, 2_000.0, 3_000.0]  # once each, in order
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "storage: cannot write the database (database is locked); keeping up to 200000 events"
        " and retrying",
        "storage: writable again after 1.5 s; 0 buffered rows dropped since start",
    ]
    # What happened is stored with the health rows, for `liqbot status` in another process.
    status = build_status(Database(path), settings_from_dict({}), clock.now_ms())
    assert status["storage"] == {
        "written_at": "2025-11-21T04:40:01Z",
        "fresh": True,
        "last_error": "database is locked",
        "last_error_from": "2025-11-21T04:40:00Z",
        "last_error_to": "2025-11-21T04:40:01Z",
        "dropped_rows": 0,
    }
    assert status["sources"]["bybit"]["messages"] == 3
    assert (
        "Storage: last write failure 2025-11-21T04:40:00Z to 2025-11-21T04:40:01Z:"
        " database is locked"
    ) in render_status(status)


async def test_a_full_disk_then_room_again(
    tmp_path: Path, writer: Writer, clock: RecordingClock
) -> None:
    recorder = Recorder(writer, clock=clock)
    pages = await writer.call(lambda db: db.execute("PRAGMA page_count").fetchone()[0])
    await writer.call(lambda db: db.execute(f"PRAGMA max_page_count = {pages}"))
    recorder.add_liquidations([liq(float(n), clock.now_ms()) for n in range(5_000)])
    flushing = asyncio.create_task(recorder.flush())
    await fails_then_sleeps(recorder, clock)
    assert recorder.storage_error == "database or disk is full"
    await writer.call(lambda db: db.execute("PRAGMA max_page_count = 1000000"))
    await clock.advance(RETRY_MIN)
    async with asyncio.timeout(WAIT):
        await flushing
    assert recorder.storage_ok
    assert stored(tmp_path / "liq.db") == [float(n) for n in range(5_000)]


async def test_the_buffer_is_bounded_and_what_it_drops_is_counted_and_logged(
    tmp_path: Path,
    writer: Writer,
    clock: RecordingClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recorder_module, "MAX_BUFFERED_EVENTS", 3)
    recorder = Recorder(writer, clock=clock)
    await writer.call(lambda db: db.execute("PRAGMA query_only = 1"))  # a read-only remount
    recorder.add_liquidations([liq(1.0, clock.now_ms()), liq(2.0, clock.now_ms())])
    with caplog.at_level(logging.WARNING, "bot.recorder"):
        flushing = asyncio.create_task(recorder.flush())
        await fails_then_sleeps(recorder, clock)
        assert recorder.storage_error == "attempt to write a readonly database"
        recorder.add_liquidations([liq(3.0, clock.now_ms()), liq(4.0, clock.now_ms())])
        await clock.advance(RETRY_MIN)  # fails again: four rows for three places
        await fails_then_sleeps(recorder, clock)
        assert (recorder.buffered, recorder.dropped) == (3, 1)
        await writer.call(lambda db: db.execute("PRAGMA query_only = 0"))
        await clock.advance(2 * RETRY_MIN)
        async with asyncio.timeout(WAIT):
            await flushing
    assert stored(tmp_path / "liq.db") == [2.0, 3.0, 4.0]  # the oldest went first
    assert "storage: buffer full; dropped the 1 oldest rows (1 in all)" in caplog.messages
    assert "storage: writable again after 1.5 s; 1 buffered rows dropped since start" in (
        caplog.messages
    )
    status = build_status(Database(tmp_path / "liq.db"), settings_from_dict({}), clock.now_ms())
    assert status["storage"]["dropped_rows"] == 1


async def test_the_backoff_doubles_up_to_its_cap_and_storage_gone_for_good_is_fatal(
    writer: Writer, clock: RecordingClock
) -> None:
    recorder = Recorder(writer, clock=clock)
    await writer.call(lambda db: db.execute("PRAGMA query_only = 1"))
    flushing = asyncio.create_task(recorder.flush())
    await fails_then_sleeps(recorder, clock)
    async with asyncio.timeout(WAIT):
        while not flushing.done():  # each retry, at once: the writer fails it in microseconds
            await clock.advance(clock.slept[-1])
            asleep = asyncio.ensure_future(clock.asleep.wait())
            await asyncio.wait((flushing, asleep), return_when=asyncio.FIRST_COMPLETED)
            asleep.cancel()
    assert clock.slept[:7] == [RETRY_MIN, 1.0, 2.0, 4.0, 8.0, RETRY_MAX, RETRY_MAX]
    assert sum(clock.slept[:-1]) < STORAGE_GIVE_UP <= sum(clock.slept)
    with pytest.raises(Fatal) as fatal:
        await flushing
    assert str(fatal.value) == (
        "storage: the database could not be written for 900 s (attempt to write a readonly"
        " database); stopping"
    )


async def test_run_flushes_once_more_at_shutdown_and_never_writes_a_batch_twice(
    tmp_path: Path, writer: Writer, clock: RecordingClock
) -> None:
    recorder = Recorder(writer, clock=clock)
    running = asyncio.create_task(recorder.run())
    recorder.add_liquidations([liq(1.0, clock.now_ms())])
    await clock.advance(1.0)
    async with asyncio.timeout(WAIT):
        await recorder.wait_for(lambda: recorder.buffered == 0)
    recorder.add_liquidations([liq(2.0, clock.now_ms())])
    running.cancel()  # mid-wait: the final flush writes what is left
    with pytest.raises(asyncio.CancelledError):
        await running
    assert stored(tmp_path / "liq.db") == [1.0, 2.0]


class DamagedWriter(Writer):
    """A writer whose database turned out damaged (SQLite's own error, raised at each write)."""

    def __init__(self, error: sqlite3.DatabaseError) -> None:
        self.error = error

    async def call(self, work: Callable[[Database], T]) -> T:
        raise self.error


async def test_a_damaged_database_is_fatal_and_a_bug_is_not_mistaken_for_one() -> None:
    recorder = Recorder(DamagedWriter(sqlite3.DatabaseError("database disk image is malformed")))
    recorder.add_liquidations([liq(1.0, 0)])
    with pytest.raises(Fatal) as fatal:
        await recorder.flush()
    assert str(fatal.value) == (
        "storage: the database is damaged (database disk image is malformed); stopping"
    )
    assert recorder.buffered == 1  # kept, for all the good it does
    buggy = Recorder(DamagedWriter(sqlite3.IntegrityError("UNIQUE constraint failed")))
    with pytest.raises(sqlite3.IntegrityError):  # a crash for the supervisor, not a verdict
        await buggy.flush()
