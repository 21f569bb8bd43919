"""The one source of time. Everything that reads the time or waits for it takes a `Clock`, so a
test can advance time instead of sleeping (tests/clock.py has a manual one)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


def now_ms() -> int:
    """Wall-clock time, epoch milliseconds, for code not yet handed a `Clock`."""
    return time.time_ns() // 1_000_000


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time, epoch milliseconds (what records carry)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals and deadlines)."""

    async def sleep(self, seconds: float) -> None: ...

    async def wait(self, event: asyncio.Event, within: float) -> bool:
        """Wait until `event` is set or `within` seconds pass; True if the event was set."""


class SystemClock:
    def now_ms(self) -> int:
        return now_ms()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, within: float) -> bool:
        # Not `asyncio.wait_for`: in Python 3.11 it swallows a cancellation that arrives as the
        # event is set (it returns the result instead), and the cancelled loop then runs on.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await event.wait()
        return event.is_set()


SYSTEM = SystemClock()
