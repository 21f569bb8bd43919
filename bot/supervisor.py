"""One supervisor owns every long-running task. A task that raises is logged with its traceback,
counted and restarted after a capped, jittered backoff; one that keeps failing is marked failed
and left stopped (readiness then says so). A task that raises `Fatal` stops the whole process:
that is for conditions no restart can cure (storage not writable)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.clock import SYSTEM, Clock

log = logging.getLogger(__name__)

TaskState = Literal["running", "restarting", "failed"]
TaskFactory = Callable[[], Coroutine[Any, Any, None]]

BACKOFF_MIN = 1.0  # seconds before the first restart; doubles per consecutive failure
BACKOFF_MAX = 60.0
MAX_CONSECUTIVE_FAILURES = 8  # then the task is marked failed and not restarted
HEALTHY_AFTER = 120.0  # a task that ran this long before failing starts its count afresh


class Fatal(Exception):
    """A condition no restart can cure: the process ends with a non-zero exit and this line."""


@dataclass
class _Supervised:
    name: str
    factory: TaskFactory
    state: TaskState = "running"
    restarts: int = 0
    failures: int = 0  # consecutive
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, clock: Clock = SYSTEM, backoff_min: float = BACKOFF_MIN) -> None:
        self.clock = clock
        self.backoff_min = backoff_min
        self._tasks: dict[str, _Supervised] = {}
        self._fatal: asyncio.Future[Fatal] | None = None

    def add(self, name: str, factory: TaskFactory) -> None:
        """Supervise `factory()` under `name` (unique); it starts with `start`."""
        if name in self._tasks:
            raise ValueError(f"task {name!r} is supervised already")
        self._tasks[name] = _Supervised(name, factory)

    def states(self) -> dict[str, TaskState]:
        return {name: entry.state for name, entry in self._tasks.items()}

    def restarts(self) -> dict[str, int]:
        return {name: entry.restarts for name, entry in self._tasks.items()}

    def start(self) -> None:
        self._fatal = asyncio.get_running_loop().create_future()
        for entry in self._tasks.values():
            entry.task = asyncio.create_task(self._keep(entry), name=entry.name)

    async def wait_fatal(self) -> Fatal:
        """Return the first `Fatal` a task raised (waits forever if none does)."""
        assert self._fatal is not None, "start() first"
        return await asyncio.shield(self._fatal)

    async def stop(self) -> None:
        """Cancel every task in reverse order of `add` and await each."""
        for entry in reversed(list(self._tasks.values())):
            if entry.task is not None and not entry.task.done():
                entry.task.cancel()
                try:
                    await entry.task
                except asyncio.CancelledError:
                    pass
                except Fatal as fatal:  # raised while shutting down: still worth a line
                    log.error("%s: %s", entry.name, fatal)

    async def _keep(self, entry: _Supervised) -> None:
        while True:
            started = self.clock.monotonic()
            entry.state = "running"
            try:
                await entry.factory()
            except Fatal as fatal:
                entry.state = "failed"
                assert self._fatal is not None
                if not self._fatal.done():
                    self._fatal.set_result(fatal)
                return
            except Exception:
                log.exception("task %s crashed", entry.name)
            else:
                log.error("task %s returned; long-running tasks must not", entry.name)
            if self.clock.monotonic() - started >= HEALTHY_AFTER:
                entry.failures = 0
            entry.failures += 1
            if entry.failures >= MAX_CONSECUTIVE_FAILURES:
                entry.state = "failed"
                log.error(
                    "task %s failed %d times in a row; it stays stopped", entry.name, entry.failures
                )
                return
            entry.state = "restarting"
            entry.restarts += 1
            delay = min(BACKOFF_MAX, self.backoff_min * 2 ** (entry.failures - 1))
            delay *= random.uniform(0.8, 1.2)
            log.warning(
                "task %s restarts in %.1f s (restart %d)", entry.name, delay, entry.restarts
            )
            await self.clock.sleep(delay)
