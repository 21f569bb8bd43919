"""The writer thread: work runs off the loop, in order, on its own connection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlite_utils import Database

from bot.writer import Writer
from storage import open_database


async def test_work_runs_on_one_other_thread_in_order(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = await Writer.start(lambda: open_database(path))
    threads: set[int] = set()

    def insert(n: int) -> Callable[[Database], None]:
        def work(db: Database) -> None:
            threads.add(threading.get_ident())
            with db.atomic():
                db["t"].insert({"n": n})

        return work

    await asyncio.gather(*(writer.call(insert(n)) for n in range(50)))
    assert threads and threading.get_ident() not in threads and len(threads) == 1
    reader = Database(path)
    assert [row["n"] for row in reader["t"].rows] == list(range(50))
    await writer.close()


async def test_errors_reach_the_caller(tmp_path: Path) -> None:
    writer = await Writer.start(lambda: open_database(tmp_path / "w.db"))

    def fail(db: Database) -> None:
        db.execute("INSERT INTO nowhere VALUES (1)")

    with pytest.raises(Exception, match="no such table: nowhere"):
        await writer.call(fail)
    assert await writer.call(lambda db: db.execute("SELECT 41 + 1").fetchone()[0]) == 42
    await writer.close()


async def test_inline_runs_on_the_loop() -> None:
    db = Database(memory=True)
    writer = Writer.inline(db)
    assert await writer.call(lambda d: threading.get_ident()) == threading.get_ident()
