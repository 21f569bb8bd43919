"""The one SQLite writer. A file database is written by one dedicated thread that owns the only
write connection: the event loop hands it work (a function of the `Database`) and awaits the
result, so a bulk insert or a long transaction never blocks the loop (sqlite3 releases the GIL
while SQLite works). Work runs one piece at a time, in the order it was handed over; the loop
keeps its own connection for reads (WAL: readers never wait for the writer).

An in-memory database has one connection only, so `Writer.inline` runs the work on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlite_utils import Database

T = TypeVar("T")


class Writer:
    def __init__(self, db: Database, executor: ThreadPoolExecutor | None) -> None:
        self._db = db
        self._executor = executor

    @classmethod
    async def start(cls, open_db: Callable[[], Database]) -> Writer:
        """A writer thread whose connection `open_db` makes (in that thread: a sqlite3
        connection belongs to the thread that opened it)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        try:
            db = await asyncio.get_running_loop().run_in_executor(executor, open_db)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(db, executor)

    @classmethod
    def inline(cls, db: Database) -> Writer:
        """Run the work on the calling thread, on `db` (in-memory databases, tools)."""
        return cls(db, None)

    async def call(self, work: Callable[[Database], T]) -> T:
        """Run `work(db)` on the writer's connection and return its result (or raise its
        exception). Work that needs atomicity opens `with db.atomic():` itself."""
        if self._executor is None:
            return work(self._db)
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, self._db)

    async def close(self) -> None:
        """Close the write connection once the work handed over so far is done."""
        if self._executor is None:
            return
        await self.call(lambda db: db.conn.close())
        self._executor.shutdown(wait=True)
