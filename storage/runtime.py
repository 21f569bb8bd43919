"""The runtime row (`run` rewrites it every second; `status` reads it) and the outbox backlog
count that both show."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlite_utils import Database

from bot.model import PENDING


@dataclass(frozen=True, slots=True)
class RuntimeRow:
    started_at: int
    updated_at: int
    stopped_at: int | None
    loop_lag_p50_ms: float | None
    loop_lag_p99_ms: float | None
    loop_lag_max_ms: float | None
    tasks: Mapping[str, str]


def save_runtime(db: Database, row: RuntimeRow) -> None:
    db.table("runtime").upsert(
        {
            "id": 1,
            "started_at": row.started_at,
            "updated_at": row.updated_at,
            "stopped_at": row.stopped_at,
            "loop_lag_p50_ms": row.loop_lag_p50_ms,
            "loop_lag_p99_ms": row.loop_lag_p99_ms,
            "loop_lag_max_ms": row.loop_lag_max_ms,
            "tasks": json.dumps(dict(row.tasks)),
        },
        pk="id",
    )


def read_runtime(db: Database) -> RuntimeRow | None:
    """The row, or None when no `run` has written one (or the database predates the table)."""
    if not db["runtime"].exists():
        return None
    for r in db.query("SELECT * FROM runtime WHERE id = 1"):
        return RuntimeRow(
            r["started_at"],
            r["updated_at"],
            r["stopped_at"],
            r["loop_lag_p50_ms"],
            r["loop_lag_p99_ms"],
            r["loop_lag_max_ms"],
            json.loads(r["tasks"]),
        )
    return None


def count_pending(db: Database, platforms: Iterable[str] | None = None) -> int:
    """Outbox rows waiting to be sent, on `platforms` (None: all). Per platform it is one lookup
    in the (platform, status) index; for all it scans that index (fine once, for `status`;
    `run` counts every second, so it names its platforms)."""
    if platforms is None:
        return int(
            db.execute("SELECT count(*) FROM outbox WHERE status = ?", [PENDING]).fetchone()[0]
        )
    return sum(
        db.execute(
            "SELECT count(*) FROM outbox WHERE platform = ? AND status = ?", [platform, PENDING]
        ).fetchone()[0]
        for platform in platforms
    )
