"""Reads and writes of market data: liquidations and their per-minute rollups, funding, open
interest, stream gaps and source health. Writers expect to run inside the caller's transaction
(`with db.atomic():`), so one flush is one commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlite_utils import Database

from bot.events import FundingRate, Gap, Liquidation, OpenInterest, SourceHealth

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
OI_BUCKET_MS = 5 * MS_PER_MINUTE
MS_PER_DAY = 86_400_000
# Open-interest history only feeds windows of up to 24 h; keep two days of 5-minute points.
OI_HISTORY_MS = 2 * MS_PER_DAY

_INSERT_EVENT = (
    "INSERT INTO events (ts, recv_ts, venue, symbol, base, position, price, qty, usd)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_ROLLUP = (
    "INSERT INTO rollups (minute, venue, base, position, usd, count) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (minute, venue, base, position)"
    " DO UPDATE SET usd = usd + excluded.usd, count = count + excluded.count"
)


def save_liquidations(db: Database, events: Sequence[Liquidation]) -> None:
    """Store events and add them to the per-minute rollups."""
    db.conn.executemany(
        _INSERT_EVENT,
        [
            (e.ts, e.recv_ts, e.venue, e.symbol, e.base, e.position, e.price, e.qty, e.usd)
            for e in events
        ],
    )
    rollups: dict[tuple[int, str, str, str], list[float]] = {}
    for e in events:
        key = (e.ts // MS_PER_MINUTE, e.venue, e.base, e.position)
        slot = rollups.get(key)
        if slot is None:
            rollups[key] = [e.usd, 1]
        else:
            slot[0] += e.usd
            slot[1] += 1
    db.conn.executemany(
        _UPSERT_ROLLUP, [(*key, usd, int(count)) for key, (usd, count) in rollups.items()]
    )


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
                "updated_at": now_ms,
            }
            for s in sources
        ),
        pk="venue",
    )


def prune(db: Database, now_ms: int, events_days: float, rollups_days: float) -> None:
    """Drop what is older than the retention periods."""
    db.execute("DELETE FROM events WHERE ts < ?", [now_ms - int(events_days * MS_PER_DAY)])
    rollup_cutoff = (now_ms - int(rollups_days * MS_PER_DAY)) // MS_PER_MINUTE
    db.execute("DELETE FROM rollups WHERE minute < ?", [rollup_cutoff])
    db.execute(
        "DELETE FROM funding_history WHERE hour < ?", [now_ms - int(rollups_days * MS_PER_DAY)]
    )
    db.execute("DELETE FROM oi_history WHERE bucket < ?", [now_ms - OI_HISTORY_MS])
    db.execute("DELETE FROM gaps WHERE end_ts < ?", [now_ms - int(rollups_days * MS_PER_DAY)])


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
