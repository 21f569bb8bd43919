"""Chats and what they asked for, in one place: a settings change is saved through the writer,
then the alert engine learns of it, then the chat's outbox is woken. Commands and platform
adapters get this service; none of them writes a subscription or wires a callback itself.

A chat that blocked or removed the bot, or that got a new id, is reported with `chat_changed`
(a plain call, safe from any callback); the service applies such changes in order in `run`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from sqlite_utils import Database

from bot.clock import SYSTEM, Clock
from bot.model import Subscription
from bot.writer import Writer
from storage import alerts

log = logging.getLogger(__name__)


class Engine(Protocol):
    def subscription_changed(self, sub: Subscription) -> None: ...


class Wakeable(Protocol):
    def wake(self) -> None: ...


class Outboxes:
    """The outbox worker of each platform, to wake when something is enqueued for it."""

    def __init__(self) -> None:
        self._workers: dict[str, Wakeable] = {}

    def add(self, platform: str, worker: Wakeable) -> None:
        self._workers[platform] = worker

    def wake(self, platforms: Iterable[str]) -> None:
        for platform in platforms:
            worker = self._workers.get(platform)
            if worker is not None:
                worker.wake()


class ChatService:
    def __init__(
        self,
        db: Database,
        writer: Writer,
        engine: Engine,
        outboxes: Outboxes,
        clock: Clock = SYSTEM,
    ) -> None:
        self.db = db  # the loop's connection: reads only
        self.writer = writer
        self.engine = engine
        self.outboxes = outboxes
        self.clock = clock
        # Saved but not yet committed: a command that reads meanwhile sees what it will be.
        self._saving: dict[str, Subscription] = {}
        self._changes: asyncio.Queue[_Change] = asyncio.Queue()
        self._applied = asyncio.Condition()  # notified after each chat change

    def load(self, platform: str, chat_id: str) -> Subscription | None:
        saving = self._saving.get(f"{platform}:{chat_id}")
        if saving is not None:
            return saving
        return alerts.load_subscription(self.db, platform, chat_id)

    def save(self, sub: Subscription) -> Awaitable[None]:
        """Stage `sub` now (`load` returns it from this call on) and return what commits it:
        awaiting that writes it, then tells the engine, then wakes the chat's outbox. If the
        write fails, the staged value is dropped and the error raised."""
        self._saving[sub.key] = sub
        return self._commit(sub)

    async def _commit(self, sub: Subscription) -> None:
        now = self.clock.now_ms()
        try:
            await self.writer.call(lambda db: _save(db, sub, now))
        finally:
            if self._saving.get(sub.key) is sub:
                del self._saving[sub.key]
        self.engine.subscription_changed(sub)
        self.outboxes.wake((sub.platform,))

    def chat_changed(self, platform: str, chat_id: str, new_id: str | None) -> asyncio.Future[None]:
        """A chat blocked or removed the bot (`new_id` None: its alerts stop until /subscribe),
        or got a new id (its subscription, rule state and pending alerts follow). Callable from
        anywhere; the change is applied by `run`, and the future returned is done after (the
        outbox awaits it before it retries a moved chat's row)."""
        done = asyncio.get_running_loop().create_future()
        self._changes.put_nowait(_Change(platform, chat_id, new_id, done))
        return done

    async def run(self) -> None:
        """Apply chat changes in the order they were reported."""
        while True:
            change = await self._changes.get()
            try:
                await self.apply_change(change.platform, change.chat_id, change.new_id)
            finally:
                if not change.done.done():
                    change.done.set_result(None)
                self._changes.task_done()
                async with self._applied:
                    self._applied.notify_all()

    async def apply_change(self, platform: str, chat_id: str, new_id: str | None) -> None:
        now = self.clock.now_ms()
        if new_id is None:
            log.info("%s: chat %s is gone; its subscription is paused", platform, chat_id)
            sub = await self.writer.call(lambda db: _pause(db, platform, chat_id, now))
            changed = [sub] if sub is not None else []
        else:
            log.info("%s: chat %s is now %s", platform, chat_id, new_id)
            moved = await self.writer.call(lambda db: _move(db, platform, chat_id, new_id, now))
            changed = [replace(moved, chat_id=chat_id, active=False), moved] if moved else []
        for sub in changed:
            self.engine.subscription_changed(sub)
        self.outboxes.wake((platform,))

    async def changes_applied(self) -> None:
        """Return once every change reported so far is applied (tests, shutdown)."""
        await self._changes.join()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Return once `condition()` holds, checking after every chat change applied (tests
        and tools that read the database wait on this rather than on a timer)."""
        async with self._applied:
            await self._applied.wait_for(condition)


@dataclass(frozen=True, slots=True)
class _Change:
    platform: str
    chat_id: str
    new_id: str | None
    done: asyncio.Future[None]


def _save(db: Database, sub: Subscription, now: int) -> None:
    with db.atomic():
        alerts.save_subscription(db, sub, now)


def _pause(db: Database, platform: str, chat_id: str, now: int) -> Subscription | None:
    alerts.set_active(db, platform, chat_id, False, now)
    return alerts.load_subscription(db, platform, chat_id)


def _move(db: Database, platform: str, old_id: str, new_id: str, now: int) -> Subscription | None:
    alerts.move_chat(db, platform, old_id, new_id, now)
    return alerts.load_subscription(db, platform, new_id)
