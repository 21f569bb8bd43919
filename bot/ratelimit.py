"""Sliding-window pacing for chat platforms: wait until a message to a chat fits every limit
(overall, per chat, per group), counted over rolling windows exactly as the platforms count."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `count` events in any rolling `seconds`. `margin` is the part of `seconds` that
    allows for requests reaching the platform late: it is latency, not the platform's window."""

    count: int
    seconds: float
    margin: float = 0.0

    def scaled(self, timescale: float) -> Limit:
        """The same limit with the platform's window `timescale` times as long (the margin for
        latency kept as it is)."""
        window = (self.seconds - self.margin) * timescale
        return Limit(self.count, window + self.margin, self.margin)


class SlidingWindow:
    """At most `limit.count` events in any rolling `limit.seconds`."""

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self._stamps: deque[float] = deque()

    def next_free(self, now: float) -> float:
        """The earliest time (monotonic) at which one more event fits."""
        stamps = self._stamps
        while stamps and now - stamps[0] >= self.limit.seconds:
            stamps.popleft()
        if len(stamps) < self.limit.count:
            return now
        return stamps[-self.limit.count] + self.limit.seconds

    def record(self, now: float) -> None:
        self._stamps.append(now)


class Pacer:
    """Paces sends so that no window is ever exceeded; callers are served in arrival order.

    `spacing` (seconds) is the least time between two sends (to any chats): it spreads them
    evenly instead of letting a whole window go out at once. A burst leaves no margin: if its
    requests reach the platform late, the burst one window later can share a window with them.

    `paid` is a second, faster overall lane (Telegram's paid broadcasts): a `wait(paid=True)`
    is paced by it instead of the free overall limit; every send, free or paid, counts in it,
    so the two together never exceed it. Per-chat and per-group windows hold for both."""

    def __init__(
        self,
        overall: Limit,
        per_chat: Limit,
        per_group: Limit | None = None,
        spacing: float = 0.0,
        paid: Limit | None = None,
    ) -> None:
        self._free = _Lane(overall, spacing)
        self._paid = _Lane(paid, paid.seconds / paid.count) if paid is not None else None
        self._per_chat = per_chat
        self._per_group = per_group
        self._chats: dict[str, SlidingWindow] = {}
        self._groups: dict[str, SlidingWindow] = {}
        self._chat_locks: dict[str, asyncio.Lock] = {}

    async def wait(self, chat_id: str, is_group: bool = False, paid: bool = False) -> None:
        """Return when a message to `chat_id` may be sent now (and count it as sent).

        A chat waits for its own windows under its own lock, so a chat that must wait does not
        hold up the others; only the overall window is shared. A paid send waits in the paid
        lane only, so free sends (command replies) never queue behind a broadcast."""
        own = [self._window(self._chats, chat_id, self._per_chat)]
        if is_group and self._per_group is not None:
            own.append(self._window(self._groups, chat_id, self._per_group))
        lane = self._paid if paid and self._paid is not None else self._free
        # A free send fills a slot of the paid lane's window too.
        also = self._paid.windows[:1] if lane is self._free and self._paid is not None else []
        chat_lock = self._chat_locks.setdefault(chat_id, asyncio.Lock())
        async with chat_lock:
            await _until_free(own)
            async with lane.lock:
                await _until_free(lane.windows)
                now = time.monotonic()
                for window in (*own, *lane.windows, *also):
                    window.record(now)

    @staticmethod
    def _window(table: dict[str, SlidingWindow], key: str, limit: Limit) -> SlidingWindow:
        window = table.get(key)
        if window is None:
            window = table[key] = SlidingWindow(limit)
        return window


class _Lane:
    """An overall limit, with its least spacing between sends and its own queue (lock)."""

    def __init__(self, limit: Limit, spacing: float) -> None:
        self.windows = [SlidingWindow(limit)]
        if spacing > 0:
            self.windows.append(SlidingWindow(Limit(1, spacing)))
        self.lock = asyncio.Lock()


async def _until_free(windows: list[SlidingWindow]) -> None:
    while True:
        now = time.monotonic()
        ready = max(window.next_free(now) for window in windows)
        if ready <= now:
            return
        await asyncio.sleep(ready - now)
