"""What an operator sees of a running `liqbot run`: readiness and its reasons, and the runtime
row it rewrites every second for `liqbot status` (another process, reading SQLite)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from bot.clock import SYSTEM, Clock
from bot.loop_lag import LoopLag
from bot.model import SourceHealth
from bot.recorder import Recorder
from bot.supervisor import Supervisor
from bot.writer import Writer
from storage.runtime import RuntimeRow, count_pending, save_runtime

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 1.0  # seconds between runtime rows (and outbox backlog counts)


@dataclass(frozen=True, slots=True)
class Readiness:
    reasons: tuple[str, ...]  # empty: ready

    @property
    def ready(self) -> bool:
        return not self.reasons


class Runtime:
    """Reads the supervisor's task states, the collectors' health and the recorder's storage
    state; keeps the latest outbox backlog count for the metrics gauge."""

    def __init__(
        self,
        supervisor: Supervisor,
        health: Callable[[], Iterable[SourceHealth]],
        recorder: Recorder,
        lag: LoopLag,
        writer: Writer,
        platforms: Sequence[str],
        clock: Clock = SYSTEM,
    ) -> None:
        self.supervisor = supervisor
        self.health = health  # one per venue, read when asked
        self.recorder = recorder
        self.lag = lag
        self.writer = writer
        self.platforms = tuple(platforms)
        self.clock = clock
        self.started_at = clock.now_ms()
        self.outbox_pending = 0

    def readiness(self) -> Readiness:
        """Ready: storage writable, at least one venue connected, no supervised task failed."""
        reasons = []
        if not self.recorder.storage_ok:
            reasons.append(f"storage not writable: {self.recorder.storage_error or 'unknown'}")
        sources = list(self.health())
        if not any(source.connected for source in sources):
            venues = ", ".join(source.venue for source in sources)
            reasons.append(f"no venue connected ({venues})")
        failed = sorted(
            name for name, state in self.supervisor.states().items() if state == "failed"
        )
        if failed:
            reasons.append(f"tasks failed: {', '.join(failed)}")
        return Readiness(tuple(reasons))

    def readiness_json(self) -> dict[str, Any]:
        readiness = self.readiness()
        return {
            "ready": readiness.ready,
            "reasons": list(readiness.reasons),
            "storage": {
                "writable": self.recorder.storage_ok,
                "error": self.recorder.storage_error,
            },
            "venues": {source.venue: source.connected for source in self.health()},
            "tasks": self.supervisor.states(),
        }

    def row(self, stopped_at: int | None = None) -> RuntimeRow:
        summary = self.lag.summary()
        return RuntimeRow(
            started_at=self.started_at,
            updated_at=self.clock.now_ms(),
            stopped_at=stopped_at,
            loop_lag_p50_ms=summary.p50 if summary else None,
            loop_lag_p99_ms=summary.p99 if summary else None,
            loop_lag_max_ms=summary.max if summary else None,
            tasks=self.supervisor.states(),
        )

    async def run(self) -> None:
        """Rewrite the runtime row every second until cancelled; then mark it stopped."""
        try:
            while True:
                await self.refresh(self.row())
                await self.clock.sleep(REFRESH_INTERVAL)
        finally:
            await self.refresh(self.row(stopped_at=self.clock.now_ms()))

    async def refresh(self, row: RuntimeRow) -> None:
        platforms = self.platforms

        def work(db: Database) -> int:
            save_runtime(db, row)
            return count_pending(db, platforms)

        self.outbox_pending = await self.writer.call(work)
