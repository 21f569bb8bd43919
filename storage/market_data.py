"""Reads and writes of market data: liquidations and their per-minute rollups, funding, open
interest, stream gaps and source health. Writers expect to run inside the caller's transaction
(`with db.atomic():`), so one flush is one commit."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any

from sqlite_utils import Database

from bot.model import FundingRate, Gap, Liquidation, OpenInterest, SourceHealth

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
OI_BUCKET_MS = 5 * MS_PER_MINUTE
MS_PER_DAY = 86_400_000
# Open-interest history only feeds windows of up to 24 h; keep two days of 5-minute points.
OI_HISTORY_MS = 2 * MS_PER_DAY

# Rows per multi-row INSERT, largest first: one statement of 100 rows costs about half of 100
# executemany steps, and on the writer thread each statement is one more wait for the GIL, so
# big batches go 1,000 rows a statement where SQLite allows 9,000 parameters (3.32 and later;
# older builds allow 999). Sizes must each divide the one before.
_ROWS_PER_STATEMENT = (1000, 100, 1) if sqlite3.sqlite_version_info >= (3, 32) else (100, 1)


def _statements(sql: str, width: int) -> dict[int, str]:
    """`sql` (`{}` where its VALUES go) for each of `_ROWS_PER_STATEMENT` rows of `width`."""
    row = "(" + ", ".join("?" * width) + ")"
    return {size: sql.format(", ".join([row] * size)) for size in _ROWS_PER_STATEMENT}


_INSERT_EVENTS = _statements(
    "INSERT INTO events (ts, recv_ts, venue, symbol, base, position, price, qty, usd) VALUES {}",
    9,
)
# Each inserted row is added into its rollup as it is read, in rowid order (the order the
# in-memory windows add them): a GROUP BY would first sort the batch in a temporary b-tree,
# which cost more than the upserts it saves (CPU per event on a busy machine: 3.0-3.4 µs with
# the GROUP BY, 2.7-2.9 without).
_ROLLUP_INSERTED = (
    "INSERT INTO rollups (minute, venue, base, position, usd, count)"
    f" SELECT ts / {MS_PER_MINUTE}, venue, base, position, usd, 1"
    " FROM events WHERE rowid > ?"
    " ON CONFLICT (minute, venue, base, position)"
    " DO UPDATE SET usd = usd + excluded.usd, count = count + excluded.count"
)


# One `events` row: ts, recv_ts, venue, symbol, base, position, price, qty, usd.
LiquidationRow = tuple[int, int, str, str, str, str, float, float, float]
# A Liquidation as its `events` row (attrgetter builds the tuple in C: the ingest hot path).
liquidation_row: Callable[[Liquidation], LiquidationRow] = attrgetter(
    "ts", "recv_ts", "venue", "symbol", "base", "position", "price", "qty", "usd"
)


def save_liquidations(db: Database, events: Sequence[Liquidation]) -> None:
    """Store events and add them to the per-minute rollups."""
    save_liquidation_rows(db, list(map(liquidation_row, events)))


def save_liquidation_rows(db: Database, rows: Sequence[LiquidationRow]) -> None:
    """`save_liquidations` for events already turned into rows by `liquidation_row`. The
    rollups are summed by SQLite from the rows just inserted: on the writer thread that work
    runs without the GIL, beside the event loop, rather than in a Python loop."""
    if not rows:
        return
    last = db.execute("SELECT max(rowid) FROM events").fetchone()[0]
    _insert_rows(db, _INSERT_EVENTS, rows)
    db.execute(_ROLLUP_INSERTED, [last or 0])


def _insert_rows(db: Database, sql: dict[int, str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Run `_statements` for every row, in order, in as few statements as the sizes allow."""
    execute = db.conn.execute
    start = 0
    for size in _ROWS_PER_STATEMENT:
        statement = sql[size]
        full = start + (len(rows) - start) // size * size
        if size == 1:
            db.conn.executemany(statement, rows[start:])
            return
        for first in range(start, full, size):
            execute(statement, list(chain.from_iterable(rows[first : first + size])))
        start = full


def save_funding(db: Database, rates: Sequence[FundingRate], now_ms: int) -> None:
    rows = [
        {
            "venue": r.venue,
            "symbol": r.symbol,
            "base": r.base,
            "rate": r.rate,
            "interval_hours": r.interval_hours,
            "rate_8h": r.rate_8h,
            "apr": r.apr,
            "mark_price": r.mark_price,
            "next_funding_time": r.next_funding_time,
            "updated_at": now_ms,
        }
        for r in rates
    ]
    db.table("funding").upsert_all(rows, pk=("venue", "symbol"))
    hour = now_ms // MS_PER_HOUR * MS_PER_HOUR
    db.table("funding_history").upsert_all(
        [
            {"hour": hour, "venue": r["venue"], "symbol": r["symbol"], "rate_8h": r["rate_8h"]}
            for r in rows
        ],
        pk=("hour", "venue", "symbol"),
    )


def save_open_interest(db: Database, interests: Sequence[OpenInterest], now_ms: int) -> None:
    rows = [
        {"venue": i.venue, "symbol": i.symbol, "base": i.base, "usd": i.usd, "updated_at": now_ms}
        for i in interests
    ]
    db.table("open_interest").upsert_all(rows, pk=("venue", "symbol"))
    bucket = now_ms // OI_BUCKET_MS * OI_BUCKET_MS
    for venue in sorted({i.venue for i in interests}):
        db.execute(
            "INSERT INTO oi_history (bucket, venue, base, usd)"
            " SELECT ?, venue, base, SUM(usd) FROM open_interest WHERE venue = ? GROUP BY base"
            " ON CONFLICT (bucket, venue, base) DO UPDATE SET usd = excluded.usd",
            [bucket, venue],
        )


def save_gaps(db: Database, gaps: Iterable[Gap]) -> None:
    db.table("gaps").insert_all(
        {"venue": g.venue, "start_ts": g.start, "end_ts": g.end} for g in gaps
    )


def save_health(db: Database, sources: Iterable[SourceHealth], now_ms: int) -> None:
    db.table("sources").upsert_all(
        (
            {
                "venue": s.venue,
                "connected": int(s.connected),
                "last_message_at": s.last_message_at,
                "reconnects": s.reconnects,
                "messages": s.messages,
                "parse_errors": s.parse_errors,
                "ignored": s.ignored,
                "symbols": s.symbols,
                "refused": s.refused,
                "retrying_since": s.retrying_since,
                "last_error": s.last_error,
                "next_attempt_at": s.next_attempt_at,
                "updated_at": now_ms,
            }
            for s in sources
        ),
        pk="venue",
    )


@dataclass(frozen=True, slots=True)
class StorageOutage:
    """A time the database could not be written: the error, from `since` to `until` (ms)."""

    error: str
    since: int
    until: int


@dataclass(frozen=True, slots=True)
class StorageState:
    """What the recorder stores with the health rows: its last outage and the rows it dropped
    (during an outage nothing can be stored; a stale `updated_at` then says so)."""

    last_outage: StorageOutage | None
    dropped: int


def save_storage_state(db: Database, state: StorageState, now_ms: int) -> None:
    outage = state.last_outage
    db.table("storage_health").upsert(
        {
            "id": 1,
            "last_error": outage.error if outage else None,
            "outage_since": outage.since if outage else None,
            "outage_until": outage.until if outage else None,
            "dropped": state.dropped,
            "updated_at": now_ms,
        },
        pk="id",
    )


def read_storage_state(db: Database) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM storage_health WHERE id = 1"))
    return rows[0] if rows else None


def prune(db: Database, now_ms: int, events_days: float, rollups_days: float) -> None:
    """Drop what is older than the retention periods."""
    first_kept = _first_event_received_since(db, now_ms - int(events_days * MS_PER_DAY))
    db.execute("DELETE FROM events WHERE rowid < ?", [first_kept])
    rollup_cutoff = (now_ms - int(rollups_days * MS_PER_DAY)) // MS_PER_MINUTE
    db.execute("DELETE FROM rollups WHERE minute < ?", [rollup_cutoff])
    db.execute(
        "DELETE FROM funding_history WHERE hour < ?", [now_ms - int(rollups_days * MS_PER_DAY)]
    )
    db.execute("DELETE FROM oi_history WHERE bucket < ?", [now_ms - OI_HISTORY_MS])
    db.execute("DELETE FROM gaps WHERE end_ts < ?", [now_ms - int(rollups_days * MS_PER_DAY)])


def _first_event_received_since(db: Database, cutoff_ms: int) -> int:
    """The rowid of the first event received at or after `cutoff_ms`, found by bisecting rowids.

    Events are appended as they are received, so `recv_ts` grows with the rowid; bisecting the
    rowid's own b-tree replaces an index on time that every insert would pay for."""
    low, high = db.execute("SELECT MIN(rowid), MAX(rowid) + 1 FROM events").fetchone()
    if low is None:
        return 0
    while low < high:
        middle = (low + high) // 2
        row = db.execute(
            "SELECT rowid, recv_ts FROM events WHERE rowid >= ? ORDER BY rowid LIMIT 1", [middle]
        ).fetchone()
        if row[1] < cutoff_ms:
            low = row[0] + 1
        else:
            high = middle
    return int(low)


def read_rollups(db: Database, since_minute: int) -> list[tuple[int, str, str, str, float, int]]:
    return [
        (row[0], row[1], row[2], row[3], row[4], row[5])
        for row in db.execute(
            "SELECT minute, venue, base, position, usd, count FROM rollups WHERE minute >= ?",
            [since_minute],
        ).fetchall()
    ]


def read_funding(db: Database) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM funding ORDER BY abs(rate_8h) DESC, venue, symbol"))


def read_open_interest(db: Database) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM open_interest ORDER BY usd DESC, venue, symbol"))


def read_health(db: Database) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM sources ORDER BY venue"))


def read_gaps(db: Database, since_ms: int) -> list[dict[str, Any]]:
    return list(
        db.query(
            "SELECT venue, start_ts, end_ts FROM gaps WHERE end_ts >= ? ORDER BY start_ts",
            [since_ms],
        )
    )


def read_daily_liquidations(
    db: Database, since_minute: int, before_minute: int
) -> list[tuple[int, str, str, float]]:
    """Per-day sums by base and position (day = minute // 1440), for the 30-day norms."""
    return [
        (row[0], row[1], row[2], row[3])
        for row in db.execute(
            "SELECT minute / 1440, base, position, SUM(usd) FROM rollups"
            " WHERE minute >= ? AND minute < ? GROUP BY minute / 1440, base, position",
            [since_minute, before_minute],
        )
    ]


def read_first_rollup_minute(db: Database) -> int | None:
    row = db.execute("SELECT MIN(minute) FROM rollups").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def read_open_interest_history(db: Database, since_ms: int) -> list[tuple[int, str, float]]:
    """Open interest per asset, summed over venues, at each stored 5-minute bucket."""
    return [
        (row[0], row[1], row[2])
        for row in db.execute(
            "SELECT bucket, base, SUM(usd) FROM oi_history WHERE bucket >= ? GROUP BY bucket, base",
            [since_ms],
        )
    ]
