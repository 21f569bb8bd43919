"""A clock that tests move by hand: `advance` wakes every sleeper whose deadline it passes, in
order, letting the woken tasks run at each step, so a test of a 30-minute cooldown takes no time."""

from __future__ import annotations

import asyncio
import heapq
import itertools

START_MS = 1_763_700_000_000  # 2025-11-21T04:40:00Z
SETTLE_STEPS = 20  # loop iterations given to woken tasks after each step


class ManualClock:
    def __init__(self, start_ms: int = START_MS) -> None:
        self._start_ms = start_ms
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now_ms(self) -> int:
        return self._start_ms + round(self._elapsed * 1000)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._order), future))
        await future

    async def wait(self, event: asyncio.Event, within: float) -> bool:
        if event.is_set():
            return True
        waiter = asyncio.ensure_future(event.wait())
        timer = asyncio.ensure_future(self.sleep(within))
        try:
            await asyncio.wait((waiter, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
        return event.is_set()

    @property
    def sleepers(self) -> int:
        """How many tasks wait on this clock (cancelled waits excluded)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking sleepers in deadline order."""
        target = self._elapsed + seconds
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._elapsed = max(self._elapsed, deadline)
            if not future.done():
                future.set_result(None)
                await _settle()
        self._elapsed = target
        await _settle()


async def _settle() -> None:
    for _ in range(SETTLE_STEPS):
        await asyncio.sleep(0)
