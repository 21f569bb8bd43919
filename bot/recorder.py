"""The one writer: buffers everything the collectors and pollers produce and commits it in
batches, at least once a second, in one transaction per flush."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from sqlite_utils import Database

from bot.events import FundingRate, Gap, Liquidation, OpenInterest, SourceHealth
from storage import market_data

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0
# A flush starts early once this many events wait, so a cascade never builds a huge batch.
MAX_BATCH = 20_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Recorder:
    def __init__(self, db: Database, health: Callable[[], Iterable[SourceHealth]] = tuple) -> None:
        self.db = db
        self._health = health
        # Buffered as rows, not events: a row keeps no reference to its parsed frame (`raw`),
        # so waiting events hold no JSON alive and the garbage collector has far less to scan.
        self._rows: list[market_data.LiquidationRow] = []
        self._funding: list[FundingRate] = []
        self._interests: list[OpenInterest] = []
        self._gaps: list[Gap] = []
        self._full = asyncio.Event()
        self._flushed = asyncio.Event()
        # Whether the last write succeeded (readiness and status report it).
        self.storage_ok = True
        self.storage_error: str | None = None

    def add_liquidations(self, events: list[Liquidation]) -> None:
        self._rows += map(market_data.liquidation_row, events)
        if len(self._rows) >= MAX_BATCH:
            self._full.set()

    def add_funding(self, rates: Iterable[FundingRate]) -> None:
        self._funding += rates

    def add_open_interest(self, interests: Iterable[OpenInterest]) -> None:
        self._interests += interests

    def add_gap(self, gap: Gap) -> None:
        self._gaps.append(gap)

    def flush(self) -> None:
        """Commit everything buffered (and the current source health) in one transaction."""
        rows, self._rows = self._rows, []
        funding, self._funding = self._funding, []
        interests, self._interests = self._interests, []
        gaps, self._gaps = self._gaps, []
        self._full.clear()
        now = now_ms()
        with self.db.atomic():
            if rows:
                market_data.save_liquidation_rows(self.db, rows)
            if funding:
                market_data.save_funding(self.db, funding, now)
            if interests:
                market_data.save_open_interest(self.db, interests, now)
            if gaps:
                market_data.save_gaps(self.db, gaps)
            market_data.save_health(self.db, self._health(), now)
        self._flushed.set()
        self._flushed = asyncio.Event()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Return once `condition()` holds, checking after every flush (tests and tools that
        read the database wait on this rather than on a timer)."""
        while not condition():
            await self._flushed.wait()

    async def run(self) -> None:
        """Flush every second (or sooner when a batch fills) until cancelled; then flush once
        more so a shutdown loses nothing."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), FLUSH_INTERVAL)
                self.flush()
        finally:
            self.flush()
