"""Delivery: one worker per chat platform drains that platform's outbox rows in order and marks
each sent or failed. How a message is sent (and paced) is the platform adapter's job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlite_utils import Database

from bot.recorder import now_ms
from storage import alerts
from storage.alerts import FAILED, PENDING, SENT, OutboxRow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_BASE = 1.0  # seconds; doubles with each failed attempt
BATCH = 100


class DeliveryError(Exception):
    """A message could not be delivered. `permanent`: trying again cannot help (chat gone);
    `retry_after`: the platform said when to try again."""

    def __init__(
        self, message: str, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


Send = Callable[[OutboxRow], Awaitable[None]]


class OutboxWorker:
    def __init__(self, db: Database, platform: str, send: Send) -> None:
        self.db = db
        self.platform = platform
        self.send = send
        self._wake = asyncio.Event()
        self._wake.set()  # deliver what a previous run left pending

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.drain()

    async def drain(self) -> None:
        """Deliver until nothing is pending."""
        while rows := alerts.pending(self.db, self.platform, BATCH):
            for row in rows:
                await self._deliver(row)

    async def _deliver(self, row: OutboxRow) -> None:
        try:
            await self.send(row)
        except DeliveryError as error:
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
            if not final:
                await asyncio.sleep(error.retry_after or RETRY_BASE * 2 ** (attempts - 1))
            return
        alerts.mark(self.db, row.id, SENT, now_ms())
