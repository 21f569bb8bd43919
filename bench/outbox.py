"""Outbox reads and writes at scale: what the delivery worker's queries cost on the event loop
with many chats waiting, against the plain GROUP BY a first version used, in the same run.

    .venv/bin/python bench/outbox.py                   # 100,000 pending chats, about 30 s
    .venv/bin/python bench/outbox.py --chats 1000000   # and a million

It builds a WAL database file (as `liqbot run` opens it), records one window alert for each of
`--chats` chats in one transaction (as the engine does for a cascade; `enqueue us/row`), makes
`--failing` chats wait for a retry, then times, median and max of `--reads` runs:
- `due`: the worker's read of each chat's oldest due row, `--batch` at a time (on the loop);
- `due, GROUP BY baseline`: the same rows by MIN(id) ... GROUP BY chat_id;
- `next retry`: when the earliest retry is due (the worker's wait);
- `expiry sweep`: expiring stale rows when none are (on the writer thread).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from machine import cpu_check  # bench/ is on sys.path when a script here runs

from bot import messages
from bot.messages import WindowView
from bot.model import PENDING, OutboxItem
from bot.norms import Norm
from storage import alerts, open_database

PLATFORM = "telegram"
NOW = 1_763_700_000_000
BASELINE = (
    "SELECT id, chat_id, alerts FROM outbox WHERE id IN (SELECT MIN(id) FROM outbox"
    " WHERE platform = ? AND status = ? GROUP BY chat_id)"
    " AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ?"
)


def timed(runs: int, work: Callable[[], object]) -> tuple[float, float]:
    """(median, max) milliseconds of `runs` calls."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=100_000)
    parser.add_argument("--failing", type=int, default=1_000, help="chats waiting for a retry")
    parser.add_argument("--batch", type=int, default=200, help="rows per read (the worker's)")
    parser.add_argument("--reads", type=int, default=15)
    args = parser.parse_args()
    print(f"cpu check {cpu_check():.1f} ms; {args.chats:,} chats, {args.failing:,} retrying")
    view = WindowView(
        "1h",
        351.6e6,
        316.4e6,
        35.2e6,
        1_234,
        {"BTC": 200e6, "ETH": 100e6, "SOL": 40e6},
        {"binance": 180e6, "bybit": 120e6, "okx": 51.6e6},
        Norm(73.25e6, 0.52, 30.0),
    )
    alert = messages.window_alert(view, {}, {})
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(Path(tmp, "outbox.db"))
        items = [
            OutboxItem(f"k{n}", PLATFORM, str(n), "window", "*", "long", (alert,))
            for n in range(args.chats)
        ]
        started = time.perf_counter()
        with db.atomic():
            alerts.enqueue(db, items, NOW)
        enqueue_us = (time.perf_counter() - started) * 1e6 / args.chats
        for row in alerts.due(db, PLATFORM, NOW, args.failing):
            alerts.mark_failed(db, row.id, NOW, "RuntimeError: test", NOW + 60_000)
        print(f"  enqueue us/row                 {enqueue_us:8.1f}")
        figures = {
            "due": lambda: alerts.due(db, PLATFORM, NOW, args.batch),
            "due, GROUP BY baseline": lambda: db.execute(
                BASELINE, [PLATFORM, PENDING, NOW, args.batch]
            ).fetchall(),
            "next retry": lambda: alerts.next_attempt_at(db, PLATFORM, NOW),
            "expiry sweep": lambda: alerts.expire(db, PLATFORM, NOW - 1_800_000, NOW),
        }
        print(f"  {'query':<30} {'median ms':>9} {'max ms':>8}")
        for name, work in figures.items():
            median, worst = timed(args.reads, work)
            print(f"  {name:<30} {median:9.2f} {worst:8.2f}")
        assert len(alerts.due(db, PLATFORM, NOW, args.batch)) == args.batch
    print(f"cpu check at the end {cpu_check():.1f} ms")


if __name__ == "__main__":
    main()
