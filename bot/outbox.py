"""Delivery: one worker per chat platform drains that platform's outbox rows and marks each sent,
failed or expired. Messages to one chat go out in order, one at a time; different chats go out
concurrently. How a message is sent and paced is the platform adapter's job (`Send`).

The worker cannot spin or starve: every failed attempt, whatever raised it, is counted and
schedules the next one (`next_attempt_at`, capped and jittered exponential backoff) instead of
sleeping in a delivery slot; each chat's oldest due row goes first, so a chat with a backlog or
one that keeps failing never delays the others; an alert older than `max_age` is expired rather
than sent late. All writes go through the `Writer`."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlite_utils import Database

from bot.clock import SYSTEM, Clock
from bot.model import OutboxRow
from bot.writer import Writer
from storage import alerts

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
RETRY_BASE = 1.0  # seconds before the second attempt; doubles with each failed attempt
RETRY_CAP = 300.0  # the longest wait between two attempts
DEFAULT_MAX_AGE = 1800.0  # seconds: an alert not delivered by then is expired, not sent late
BATCH = 200  # chats' oldest rows read at once
IDLE = 60.0  # seconds between looks at the outbox when nothing wakes the worker
SWEEP_EVERY = 10.0  # seconds between sweeps that expire stale rows (each row is checked anyway)


class DeliveryError(Exception):
    """A message could not be delivered.

    `permanent`: trying again cannot help; `chat_gone`: the chat blocked or removed the bot, so
    its subscription is switched off; `moved_to`: the chat has a new id (retry there);
    `retry_after`: the platform said when to try again.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        chat_gone: bool = False,
        moved_to: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent or chat_gone
        self.chat_gone = chat_gone
        self.moved_to = moved_to
        self.retry_after = retry_after


Progress = Callable[[int], Awaitable[None]]  # parts of a split message delivered so far
Send = Callable[[OutboxRow, Progress], Awaitable[None]]
# platform, chat id, new id (None: gone); done when the change is applied
ChatEvent = Callable[[str, str, str | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Channel:
    """How one platform delivers: its send function and how many chats it serves at once."""

    send: Send
    concurrency: int = 1


def backoff(attempts: int, jitter: float) -> float:
    """Seconds to wait after the `attempts`-th failed attempt; `jitter` in [0, 1) spreads
    retries over the upper half of the capped exponential step, so they never bunch up."""
    step = min(RETRY_CAP, RETRY_BASE * 2.0 ** (attempts - 1))
    return step * (0.5 + jitter / 2)


class OutboxWorker:
    def __init__(
        self,
        db: Database,
        writer: Writer,
        platform: str,
        channel: Channel,
        on_chat_change: ChatEvent,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Clock = SYSTEM,
        jitter: Callable[[], float] = random.random,
        timescale: float = 1.0,
    ) -> None:
        """`timescale`: every wait between attempts (the backoff, a platform's `retry_after`)
        lasts this many times its length; tests run a platform and its fake faster alike."""
        self.db = db  # reads only
        self.writer = writer
        self.platform = platform
        self.send = channel.send
        self.concurrency = channel.concurrency
        self.on_chat_change = on_chat_change
        self.max_age_ms = round(max_age * 1000)
        self.clock = clock
        self.jitter = jitter
        self.timescale = timescale
        self._queue: deque[OutboxRow] = deque()  # chats' oldest due rows, not yet started
        self._stale = True  # the queue may be out of date: read it again
        self._swept_at = -SWEEP_EVERY
        self._busy_chats: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._wake.set()  # deliver what a previous run left pending
        self.sent = 0  # messages delivered (for metrics)

    def wake(self) -> None:
        """New rows, or chats changed: look at the outbox again."""
        self._stale = True
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                await self.clock.wait(self._wake, await self._next_look())
                self._wake.clear()
                await self._start_due()
        finally:
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks)

    async def drain(self) -> None:
        """Deliver until no row is due (tools and tests; `run` does not wait like this)."""
        while True:
            await self._start_due()
            if not self._tasks:
                return
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)

    async def _start_due(self) -> None:
        """Start delivering each chat's oldest due row, as many chats at once as there are slots.
        Returns without waiting for the deliveries: each one wakes the worker when it ends."""
        now = self.clock.now_ms()
        if self._stale or not self._queue:
            self._stale = False
            if self.clock.monotonic() - self._swept_at >= SWEEP_EVERY:
                self._swept_at = self.clock.monotonic()
                cutoff = now - self.max_age_ms
                expired = await self.writer.call(
                    lambda db: alerts.expire(db, self.platform, cutoff, now)
                )
                if expired:
                    log.warning("%s: %d undelivered alert(s) expired", self.platform, expired)
            busy = self._busy_chats
            rows = alerts.due(self.db, self.platform, now, BATCH + len(busy))
            self._queue = deque(row for row in rows if row.chat_id not in busy)
        while self._queue and len(self._busy_chats) < self.concurrency:
            row = self._queue.popleft()
            if row.chat_id in self._busy_chats:  # read before its previous row finished
                continue
            self._busy_chats.add(row.chat_id)
            task = asyncio.create_task(self._deliver(row))
            self._tasks.add(task)
            task.add_done_callback(self._done(row.chat_id))

    async def _next_look(self) -> float:
        """Seconds until a row's retry is due (or `IDLE`); deliveries under way wake earlier."""
        if self._queue:  # every slot is taken: a delivery that ends wakes the worker
            return IDLE
        now = self.clock.now_ms()
        retry_at = alerts.next_attempt_at(self.db, self.platform, now)
        return IDLE if retry_at is None else min(IDLE, (retry_at - now) / 1000)

    def _done(self, chat_id: str) -> Callable[[asyncio.Task[None]], None]:
        def finished(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._busy_chats.discard(chat_id)
            self._wake.set()  # a slot is free, and the chat's next row may be waiting

        return finished

    async def _deliver(self, row: OutboxRow) -> None:
        now = self.clock.now_ms()
        cutoff = now - self.max_age_ms
        if row.created_at < cutoff:  # waited too long in the queue: expire it with any older
            await self.writer.call(lambda db: alerts.expire(db, self.platform, cutoff, now))
            log.warning("%s: an alert to %s expired undelivered", self.platform, row.chat_id)
            return

        async def progress(parts: int) -> None:
            at = self.clock.now_ms()
            await self.writer.call(lambda db: alerts.mark_parts_sent(db, row.id, parts, at))

        try:
            await self.send(row, progress)
        except DeliveryError as error:
            await self._failed(row, error)
            return
        except asyncio.CancelledError as error:
            task = asyncio.current_task()
            if task is None or task.cancelling():  # the worker is stopping
                raise
            # A library's own cancellation, not ours: a failed attempt like any other, or the
            # row would be picked up again at once, without end.
            log.exception("%s: delivery to %s was cancelled", self.platform, row.chat_id)
            await self._failed(row, DeliveryError(f"{type(error).__name__}: {error}"))
            return
        except Exception as error:  # unexpected: still a failed attempt, never a silent retry
            log.exception("%s: delivery to %s raised", self.platform, row.chat_id)
            await self._failed(row, DeliveryError(f"{type(error).__name__}: {error}"))
            return
        at = self.clock.now_ms()
        await self.writer.call(lambda db: alerts.mark_sent(db, row.id, at))
        self.sent += 1

    async def _failed(self, row: OutboxRow, error: DeliveryError) -> None:
        attempts = row.attempts + 1
        final = error.permanent or attempts >= MAX_ATTEMPTS
        now = self.clock.now_ms()
        delay = max(error.retry_after or 0.0, backoff(attempts, self.jitter())) * self.timescale
        if error.moved_to is not None and not final:
            delay = 0.0  # the chat has a new id: the row moves with it and is tried there now
        retry_at = None if final else now + round(delay * 1000)
        await self.writer.call(lambda db: alerts.mark_failed(db, row.id, now, str(error), retry_at))
        log.warning(
            "%s: delivery to %s failed (attempt %d, %s): %s",
            self.platform,
            row.chat_id,
            attempts,
            "giving up" if final else f"next in {delay:.1f} s",
            error,
        )
        if error.chat_gone:
            self.on_chat_change(self.platform, row.chat_id, None)
        elif error.moved_to is not None:  # the subscription follows the chat in any case
            # Applied before the retry, so the row is tried at the new id, not the old one.
            await self.on_chat_change(self.platform, row.chat_id, error.moved_to)
            self._stale = True
