"""Opening the database: WAL journal (so `liqbot status` can read while `run` writes) and the
versioned schema."""

from __future__ import annotations

from pathlib import Path

from sqlite_utils import Database

from storage.schema import migrations


def open_database(path: str | Path | None) -> Database:
    """The database at `path` (None: in memory), migrated to the current schema."""
    if path is None:
        db = Database(memory=True)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = Database(path)
        db.enable_wal()
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
    migrations.apply(db)
    return db
