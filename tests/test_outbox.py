"""The outbox worker on a manual clock: failed attempts back off and are bounded, whatever the
send raised; stale alerts expire; each chat's oldest row goes first and a slow or failing chat
holds no slot; the parts of a split message that arrived are stored."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlite_utils import Database

from bot.alert import plain
from bot.model import OutboxItem, OutboxRow
from bot.outbox import MAX_ATTEMPTS, Channel, DeliveryError, OutboxWorker, Progress, backoff
from bot.writer import Writer
from storage import alerts, open_database
from tests.clock import ManualClock
from tests.harness import traceback_of

PLATFORM = "telegram"
_keys = itertools.count(1)


class Sender:
    """A send function that records (clock seconds, chat, text) of each attempt and behaves
    per chat as `behaviour` says (default: delivered at once)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.attempts: list[tuple[float, str, str]] = []
        self.behaviour: dict[str, Callable[[OutboxRow, Progress], Awaitable[None]]] = {}

    async def __call__(self, row: OutboxRow, progress: Progress) -> None:
        self.attempts.append((self.clock.monotonic(), row.chat_id, row.text))
        behave = self.behaviour.get(row.chat_id)
        if behave is not None:
            await behave(row, progress)

    def times(self, chat_id: str) -> list[float]:
        return [at for at, chat, _ in self.attempts if chat == chat_id]

    def delivered(self, chat_id: str) -> list[str]:
        return [text for _, chat, text in self.attempts if chat == chat_id]


def enqueue(db: Database, chat_id: str, text: str, now: int) -> None:
    item = OutboxItem(f"k{next(_keys)}", PLATFORM, chat_id, "window", "*", None, (plain(text),))
    with db.atomic():
        alerts.enqueue(db, [item], now)


def rows(db: Database, chat_id: str) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM outbox WHERE chat_id = ? ORDER BY id", [chat_id]))


@asynccontextmanager
async def running(
    db: Database, clock: ManualClock, sender: Sender, concurrency: int = 4, **options: Any
) -> AsyncIterator[OutboxWorker]:
    worker = OutboxWorker(
        db,
        Writer.inline(db),
        PLATFORM,
        Channel(sender, concurrency),
        lambda *change: None,
        clock=clock,
        jitter=lambda: 1.0,  # the top of each backoff step, so waits are exact
        **options,
    )
    task = asyncio.create_task(worker.run())
    await clock.advance(0)
    try:
        yield worker
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def raise_unknown(row: OutboxRow, progress: Progress) -> None:
    raise RuntimeError("Invalid server response")


def test_backoff_doubles_up_to_its_cap_and_jitters_within_the_upper_half() -> None:
    assert [backoff(n, 1.0) for n in range(1, 11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert [backoff(n, 0.0) for n in (1, 2, 10)] == [0.5, 1.0, 150.0]
    assert backoff(3, 0.5) == 3.0


async def test_an_unknown_error_is_a_counted_attempt_with_growing_gaps_never_a_tight_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db, clock = open_database(None), ManualClock()
    sender = Sender(clock)
    sender.behaviour["bad"] = raise_unknown
    enqueue(db, "bad", "never arrives", clock.now_ms())
    good_at = None
    async with running(db, clock, sender) as worker:
        for _ in range(10):
            await clock.advance(1)
            if len(sender.times("bad")) == 3 and good_at is None:
                enqueue(db, "good", "arrives on time", clock.now_ms())
                worker.wake()
                good_at = clock.monotonic()
        await clock.advance(3600)  # an hour: sleepers wake at their deadlines, in order

    attempts = sender.times("bad")
    assert len(attempts) == MAX_ATTEMPTS  # bounded: then given up
    gaps = [round(b - a) for a, b in itertools.pairwise(attempts)]
    assert gaps == [1, 2, 4, 8, 16, 32, 64]
    [row] = rows(db, "bad")
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == (
        "failed",
        MAX_ATTEMPTS,
        None,
    )
    assert row["error"] == "RuntimeError: Invalid server response"
    assert sender.times("good") == [good_at]  # the other chat did not wait for the failing one
    raised = [r for r in caplog.records if r.message == "telegram: delivery to bad raised"]
    assert len(raised) == MAX_ATTEMPTS
    assert all("RuntimeError: Invalid server response" in traceback_of(r) for r in raised)


async def test_a_failed_attempt_records_its_retry_time_and_frees_the_slot() -> None:
    db, clock = open_database(None), ManualClock()
    sender = Sender(clock)
    sender.behaviour["bad"] = raise_unknown
    enqueue(db, "bad", "fails", clock.now_ms())
    enqueue(db, "good", "after it", clock.now_ms())
    async with running(db, clock, sender, concurrency=1):
        assert sender.delivered("good") == ["after it"]  # no slot slept through the backoff
        [row] = rows(db, "bad")
        assert (row["status"], row["attempts"]) == ("pending", 1)
        assert row["next_attempt_at"] == clock.now_ms() + 1000
        await clock.advance(0.999)
        assert len(sender.times("bad")) == 1
        await clock.advance(0.001)  # the worker woke at the retry time, not before
        assert sender.times("bad") == [0.0, 1.0]


async def test_a_flood_wait_longer_than_the_backoff_is_respected() -> None:
    db, clock = open_database(None), ManualClock()
    sender = Sender(clock)

    async def flooded(row: OutboxRow, progress: Progress) -> None:
        if len(sender.times("a")) == 1:
            raise DeliveryError("Too Many Requests", retry_after=7.0)

    sender.behaviour["a"] = flooded
    enqueue(db, "a", "later", clock.now_ms())
    async with running(db, clock, sender):
        await clock.advance(10)
    assert sender.times("a") == [0.0, 7.0]
    assert rows(db, "a")[0]["status"] == "sent"


async def test_an_alert_older_than_max_age_is_expired_not_sent_late() -> None:
    db, clock = open_database(None), ManualClock()
    sender = Sender(clock)
    enqueue(db, "a", "decided 31 minutes ago", clock.now_ms() - 31 * 60_000)
    enqueue(db, "a", "fresh", clock.now_ms())
    async with running(db, clock, sender):
        pass
    assert [row["status"] for row in rows(db, "a")] == ["expired", "sent"]
    assert sender.delivered("a") == ["fresh"]


async def test_a_retry_due_after_max_age_expires_the_alert() -> None:
    db, clock = open_database(None), ManualClock()
    sender = Sender(clock)

    async def down(row: OutboxRow, progress: Progress) -> None:
        raise DeliveryError("network: Bad Gateway")

    sender.behaviour["a"] = down
    enqueue(db, "a", "while the platform is down", clock.now_ms())
    async with running(db, clock, sender, max_age=20.0):
        await clock.advance(60)
    assert sender.times("a") == [0.0, 1.0, 3.0, 7.0, 15.0]  # the next would be at 31 s
    [row] = rows(db, "a")
    assert (row["status"], row["attempts"]) == ("expired", 5)


async def test_each_chat_s_oldest_row_goes_first_and_a_slow_chat_holds_up_no_one() -> None:
    db, clock = open_database(None), ManualClock()
    sender = Sender(clock)

    async def slow(row: OutboxRow, progress: Progress) -> None:
        await clock.sleep(10)

    sender.behaviour["slow"] = slow
    now = clock.now_ms()
    for n in range(50):
        enqueue(db, "busy", f"busy {n}", now)
    enqueue(db, "slow", "slow 0", now)
    for chat in ("c1", "c2", "c3"):
        enqueue(db, chat, f"{chat} 0", now)
    async with running(db, clock, sender, concurrency=2):
        for _ in range(100):  # let the deliveries run; the clock stays where it is
            await clock.advance(0)
        first_five = [chat for _, chat, _ in sender.attempts[:5]]
        assert first_five == ["busy", "slow", "c1", "c2", "c3"]  # one row per chat, oldest first
        assert sender.delivered("busy") == [f"busy {n}" for n in range(50)]  # in order
        assert {at for at, _, _ in sender.attempts} == {0.0}  # all while the slow send waits
        assert rows(db, "slow")[0]["status"] == "pending"
        await clock.advance(10)
        assert rows(db, "slow")[0]["status"] == "sent"


def test_the_due_read_takes_each_chat_s_oldest_due_row() -> None:
    db = open_database(None)
    for chat, text in (("a", "a1"), ("a", "a2"), ("b", "b1"), ("c", "c1"), ("b", "b2")):
        enqueue(db, chat, text, 1_000)
    db.execute("UPDATE outbox SET next_attempt_at = 5000 WHERE chat_id = 'c'")
    assert [r.text for r in alerts.due(db, PLATFORM, 4_999, 10)] == ["a1", "b1"]
    assert [r.text for r in alerts.due(db, PLATFORM, 5_000, 10)] == ["a1", "b1", "c1"]
    assert [r.text for r in alerts.due(db, PLATFORM, 5_000, 2)] == ["a1", "b1"]
    assert alerts.next_attempt_at(db, PLATFORM, 4_999) == 5_000
    assert alerts.next_attempt_at(db, PLATFORM, 5_000) is None


async def test_parts_that_arrived_are_stored_so_a_new_process_sends_only_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db, clock = open_database(None), ManualClock()
    sender = Sender(clock)
    sent_parts: list[int] = []

    async def stops_after_one_part(row: OutboxRow, progress: Progress) -> None:
        sent_parts.append(row.parts_sent)
        await progress(1)
        await asyncio.Event().wait()  # the process is stopped here

    sender.behaviour["a"] = stops_after_one_part
    enqueue(db, "a", "three parts", clock.now_ms())
    async with running(db, clock, sender):
        pass
    [row] = rows(db, "a")
    assert (row["status"], row["attempts"], row["parts_sent"]) == ("pending", 0, 1)

    async def resumes(row: OutboxRow, progress: Progress) -> None:
        sent_parts.append(row.parts_sent)

    sender.behaviour["a"] = resumes
    async with running(db, clock, sender):
        pass
    assert sent_parts == [0, 1]
    assert rows(db, "a")[0]["status"] == "sent"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_row_recorded_before_alerts_were_structured_reads_as_its_text() -> None:
    db = open_database(None)
    enqueue(db, "a", "placeholder", 1_000)
    db.execute("UPDATE outbox SET alerts = NULL, text = ?", ["$1M liquidated in 1h\nVenues: OKX"])
    [row] = alerts.due(db, PLATFORM, 1_000, 1)
    assert row.text == "$1M liquidated in 1h\nVenues: OKX"
    assert row.alerts[0].first_line == "$1M liquidated in 1h"


async def test_a_cancellation_raised_inside_a_send_is_a_failed_attempt_not_a_loop() -> None:
    db, clock = open_database(None), ManualClock()
    sender = Sender(clock)

    async def cancelled_inside(row: OutboxRow, progress: Progress) -> None:
        raise asyncio.CancelledError  # e.g. a library cancelling its own request

    sender.behaviour["a"] = cancelled_inside
    enqueue(db, "a", "x", clock.now_ms())
    async with running(db, clock, sender):
        await clock.advance(2.5)
    assert sender.times("a") == [0.0, 1.0]  # then 2 s later: backed off, not spinning
    assert rows(db, "a")[0]["attempts"] == 2
