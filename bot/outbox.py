"""Delivery: one worker per chat platform drains that platform's outbox rows and marks each sent
or failed. Messages to one chat go out in order, one at a time; different chats go out
concurrently. How a message is sent and paced is the platform adapter's job (`Send`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlite_utils import Database

from bot.recorder import now_ms
from storage import alerts
from storage.alerts import FAILED, PENDING, SENT, OutboxRow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_BASE = 1.0  # seconds; doubles with each failed attempt
BATCH = 200


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


Send = Callable[[OutboxRow], Awaitable[None]]
ChatEvent = Callable[[str, str, str | None], None]  # platform, chat id, new id (None: gone)


@dataclass(frozen=True, slots=True)
class Channel:
    """How one platform delivers: its send function and how many chats it serves at once."""

    send: Send
    concurrency: int = 1


class OutboxWorker:
    def __init__(
        self,
        db: Database,
        platform: str,
        channel: Channel,
        on_chat_change: ChatEvent,
    ) -> None:
        self.db = db
        self.platform = platform
        self.send = channel.send
        self.on_chat_change = on_chat_change
        self._slots = asyncio.Semaphore(channel.concurrency)
        self._busy_chats: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._wake.set()  # deliver what a previous run left pending
        self.sent = 0  # messages delivered (for metrics)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self.drain()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Deliver until nothing is pending; a chat's next row waits for its previous one.

        Pending rows are read afresh whenever every slot is taken: a list read before waiting
        would still hold rows that finished meanwhile, and they would be sent twice."""
        while True:
            started = False
            for row in alerts.pending(self.db, self.platform, BATCH):
                if self._slots.locked():
                    break
                if row.chat_id in self._busy_chats:
                    continue
                await self._slots.acquire()
                self._busy_chats.add(row.chat_id)
                task = asyncio.create_task(self._deliver(row))
                self._tasks.add(task)
                task.add_done_callback(self._done(row.chat_id))
                started = True
            if not self._tasks:
                return
            if not started or self._slots.locked():
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)

    def _done(self, chat_id: str) -> Callable[[asyncio.Task[None]], None]:
        def finished(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._busy_chats.discard(chat_id)
            self._slots.release()

        return finished

    async def _deliver(self, row: OutboxRow) -> None:
        try:
            await self.send(row)
        except DeliveryError as error:
            await self._failed(row, error)
            return
        alerts.mark(self.db, row.id, SENT, now_ms())
        self.sent += 1

    async def _failed(self, row: OutboxRow, error: DeliveryError) -> None:
        if error.moved_to is not None:  # the row moves with the chat and is tried again there
            self.on_chat_change(self.platform, row.chat_id, error.moved_to)
            return
        attempts = row.attempts + 1
        final = error.permanent or attempts >= MAX_ATTEMPTS
        alerts.mark(self.db, row.id, FAILED if final else PENDING, now_ms(), str(error))
        log.warning(
            "%s: delivery to %s failed (attempt %d%s): %s",
            self.platform,
            row.chat_id,
            attempts,
            ", giving up" if final else "",
            error,
        )
        if error.chat_gone:
            self.on_chat_change(self.platform, row.chat_id, None)
        if not final:
            await asyncio.sleep(error.retry_after or RETRY_BASE * 2 ** (attempts - 1))
