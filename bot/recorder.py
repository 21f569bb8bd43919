"""The recorder: buffers everything the collectors and pollers produce and commits it through the
writer thread in batches, at least once a second, in one transaction per flush.

When the database cannot be written (disk full, read-only remount, a lock held by a backup), the
batch stays buffered and the flush is retried with capped backoff; the buffer is bounded (the
oldest rows go first, counted and logged) and `storage_ok` / `storage_error` say what is wrong,
for readiness and `liqbot status` (the state is stored with the health rows once it can be).
Storage that stays unwritable for STORAGE_GIVE_UP seconds, or a damaged database, is `Fatal`."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TypeVar

from sqlite_utils import Database

from bot.clock import SYSTEM, Clock
from bot.model import FundingRate, Gap, Liquidation, OpenInterest, SourceHealth
from bot.supervisor import Fatal
from bot.writer import Writer
from storage import market_data

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0
# A flush starts early once this many events wait, so a cascade never builds a huge batch.
MAX_BATCH = 20_000
# While storage is not writable: what the buffer keeps (~40 MB of liquidations: minutes of a
# cascade, hours of a normal market), and how often a write is tried again.
MAX_BUFFERED_EVENTS = 200_000
MAX_BUFFERED_ROWS = 20_000  # funding, open interest and gaps, each
RETRY_MIN = 0.5
RETRY_MAX = 10.0
STORAGE_GIVE_UP = 900.0  # seconds of unwritable storage before `run` stops

T = TypeVar("T")


class Recorder:
    def __init__(
        self,
        writer: Writer,
        health: Callable[[], Iterable[SourceHealth]] = tuple,
        clock: Clock = SYSTEM,
    ) -> None:
        self.writer = writer
        self._health = health
        self.clock = clock
        # Buffered as rows, not events: a row keeps no reference to its parsed frame (`raw`),
        # so waiting events hold no JSON alive and the garbage collector has far less to scan.
        self._rows: list[market_data.LiquidationRow] = []
        self._funding: list[FundingRate] = []
        self._interests: list[OpenInterest] = []
        self._gaps: list[Gap] = []
        self._full = asyncio.Event()
        self._flushed = asyncio.Event()
        self.storage_ok = True
        self.storage_error: str | None = None  # why storage is not writable now
        self.dropped = 0  # buffered rows dropped while storage was not writable, since start
        self._outage: market_data.StorageOutage | None = None  # the current one
        self.last_outage: market_data.StorageOutage | None = None

    def add_liquidations(self, events: list[Liquidation]) -> None:
        self._rows += map(market_data.liquidation_row, events)
        if len(self._rows) >= MAX_BATCH:
            self._full.set()
            if not self.storage_ok:  # between retries too, the buffer stays bounded
                self._rows = _bounded(self._rows, MAX_BUFFERED_EVENTS, self._dropped)

    def add_funding(self, rates: Iterable[FundingRate]) -> None:
        self._funding += rates

    def add_open_interest(self, interests: Iterable[OpenInterest]) -> None:
        self._interests += interests

    def add_gap(self, gap: Gap) -> None:
        self._gaps.append(gap)

    @property
    def buffered(self) -> int:
        return len(self._rows) + len(self._funding) + len(self._interests) + len(self._gaps)

    async def flush(self, retry: bool = True) -> None:
        """Commit everything buffered (and the current source health) in one transaction.
        While storage is not writable, keep the batch and try again with backoff (`retry`
        False: once, for the last flush at shutdown)."""
        delay = RETRY_MIN
        while True:
            try:
                await self._write()
            except sqlite3.OperationalError as error:  # locked, read-only, full, I/O error
                failing_for = self._failed(error)
                self._signal()
                if not retry:
                    log.error("storage: %d buffered rows not written at shutdown", self.buffered)
                    return
                if failing_for >= STORAGE_GIVE_UP:
                    raise Fatal(
                        f"storage: the database could not be written for {STORAGE_GIVE_UP:.0f}"
                        f" s ({error}); stopping"
                    ) from error
                await self.clock.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
                continue
            except sqlite3.DatabaseError as error:
                if type(error) is not sqlite3.DatabaseError:  # integrity, programming: bugs
                    raise
                # Malformed, or not a database (any more): no restart can cure that.
                raise Fatal(f"storage: the database is damaged ({error}); stopping") from error
            break
        self._signal()

    def _signal(self) -> None:
        self._flushed.set()
        self._flushed = asyncio.Event()

    async def _write(self) -> None:
        rows, self._rows = self._rows, []
        funding, self._funding = self._funding, []
        interests, self._interests = self._interests, []
        gaps, self._gaps = self._gaps, []
        self._full.clear()
        now = self.clock.now_ms()
        health = list(self._health())
        outage = self._outage
        if outage is not None:
            outage = replace(outage, until=now)
        state = market_data.StorageState(outage or self.last_outage, self.dropped)

        def write(db: Database) -> None:
            with db.atomic():
                if rows:
                    market_data.save_liquidation_rows(db, rows)
                if funding:
                    market_data.save_funding(db, funding, now)
                if interests:
                    market_data.save_open_interest(db, interests, now)
                if gaps:
                    market_data.save_gaps(db, gaps)
                market_data.save_health(db, health, now)
                market_data.save_storage_state(db, state, now)

        # The work goes on in the writer thread even if this task is cancelled meanwhile: wait
        # for its outcome, so that a batch is never written twice nor dropped.
        written = asyncio.ensure_future(self.writer.call(write))
        try:
            await asyncio.shield(written)
        except asyncio.CancelledError:
            await asyncio.wait([written])
            if written.exception() is not None:
                self._keep(rows, funding, interests, gaps)
            raise
        except BaseException:
            self._keep(rows, funding, interests, gaps)
            raise
        if outage is not None:
            log.warning(
                "storage: writable again after %.1f s; %d buffered rows dropped since start",
                (now - outage.since) / 1000,
                self.dropped,
            )
            self.last_outage, self._outage = outage, None
            self.storage_ok, self.storage_error = True, None

    def _keep(
        self,
        rows: list[market_data.LiquidationRow],
        funding: list[FundingRate],
        interests: list[OpenInterest],
        gaps: list[Gap],
    ) -> None:
        """Put a batch that was not written back in front of what arrived meanwhile."""
        self._rows = _bounded(rows + self._rows, MAX_BUFFERED_EVENTS, self._dropped)
        self._funding = _bounded(funding + self._funding, MAX_BUFFERED_ROWS, self._dropped)
        self._interests = _bounded(interests + self._interests, MAX_BUFFERED_ROWS, self._dropped)
        self._gaps = _bounded(gaps + self._gaps, MAX_BUFFERED_ROWS, self._dropped)

    def _failed(self, error: sqlite3.OperationalError) -> float:
        """Note a failed write; return how long storage has been failing, in seconds."""
        now = self.clock.now_ms()
        if self._outage is None:
            log.error(
                "storage: cannot write the database (%s); keeping up to %d events and retrying",
                error,
                MAX_BUFFERED_EVENTS,
            )
            self._outage = market_data.StorageOutage(str(error), now, now)
        self.storage_ok, self.storage_error = False, str(error)
        return (now - self._outage.since) / 1000

    def _dropped(self, count: int) -> None:
        if count:
            self.dropped += count
            log.warning(
                "storage: buffer full; dropped the %d oldest rows (%d in all)",
                count,
                self.dropped,
            )

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Return once `condition()` holds, checking after every flush and every failed attempt
        (tests and tools that read the database wait on this rather than on a timer)."""
        while not condition():
            await self._flushed.wait()

    async def run(self) -> None:
        """Flush every second (or sooner when a batch fills) until cancelled; then flush once
        more so a shutdown loses nothing that can be written."""
        try:
            while True:
                await self.clock.wait(self._full, FLUSH_INTERVAL)
                await self.flush()
        finally:
            await self.flush(retry=False)


def _bounded(rows: list[T], limit: int, dropped: Callable[[int], None]) -> list[T]:
    excess = len(rows) - limit
    if excess <= 0:
        return rows
    dropped(excess)
    return rows[excess:]
