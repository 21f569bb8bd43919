"""Sliding-window pacing for chat platforms: wait until a message to a chat fits every limit
(overall, per chat, per group), counted over rolling windows exactly as the platforms count."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    seconds: float


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
    requests reach the platform late, the burst one window later can share a window with them."""

    def __init__(
        self,
        overall: Limit,
        per_chat: Limit,
        per_group: Limit | None = None,
        spacing: float = 0.0,
    ) -> None:
        self._overall = [SlidingWindow(overall)]
        if spacing > 0:
            self._overall.append(SlidingWindow(Limit(1, spacing)))
        self._per_chat = per_chat
        self._per_group = per_group
        self._chats: dict[str, SlidingWindow] = {}
        self._groups: dict[str, SlidingWindow] = {}
        self._lock = asyncio.Lock()
        self._chat_locks: dict[str, asyncio.Lock] = {}

    async def wait(self, chat_id: str, is_group: bool = False) -> None:
        """Return when a message to `chat_id` may be sent now (and count it as sent).

        A chat waits for its own windows under its own lock, so a chat that must wait does not
        hold up the others; only the overall window is shared."""
        own = [self._window(self._chats, chat_id, self._per_chat)]
        if is_group and self._per_group is not None:
            own.append(self._window(self._groups, chat_id, self._per_group))
        chat_lock = self._chat_locks.setdefault(chat_id, asyncio.Lock())
        async with chat_lock:
            await _until_free(own)
            async with self._lock:
                await _until_free(self._overall)
                now = time.monotonic()
                for window in (*own, *self._overall):
                    window.record(now)

    @staticmethod
    def _window(table: dict[str, SlidingWindow], key: str, limit: Limit) -> SlidingWindow:
        window = table.get(key)
        if window is None:
            window = table[key] = SlidingWindow(limit)
        return window


async def _until_free(windows: list[SlidingWindow]) -> None:
    while True:
        now = time.monotonic()
        ready = max(window.next_free(now) for window in windows)
        if ready <= now:
            return
        await asyncio.sleep(ready - now)
