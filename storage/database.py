"""Opening the database: WAL journal (so `liqbot status` can read while `run` writes) and the
versioned schema. A file that cannot be used is one `DatabaseError` line saying which file, what
is wrong and what to do, never a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from storage.schema import migrations

DAMAGED_ADVICE = "restore it from a backup, or move it away to start with a new, empty database"
UNWRITABLE_ADVICE = (
    "liqbot must write it: check the permissions of the file and its folder, free disk space, "
    "and that the disk is not mounted read-only"
)


class DatabaseError(Exception):
    """A database file liqbot cannot use; the message is one line for the person running it."""


class NoDatabase(DatabaseError):
    """`status` found no database: nothing has been collected there yet."""


def open_database(path: str | Path | None) -> Database:
    """The database at `path` (None: in memory), migrated to the current schema and checked to
    be writable; DatabaseError when the file is damaged, not SQLite or cannot be written."""
    if path is None:
        db = Database(memory=True)
        migrations.apply(db)
        return db
    path = Path(path)
    if path.is_dir():
        raise DatabaseError(f"{path}: is a folder, not a database file: set [storage] path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatabaseError(
            f"{path}: cannot create its folder ({error.strerror}): {UNWRITABLE_ADVICE}"
        ) from None
    try:
        db = Database(path)
        db.enable_wal()
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        migrations.apply(db)
        _probe_write(db)
    except sqlite3.DatabaseError as error:
        problem = file_problem(path, error)
        if problem is None:
            raise
        raise problem from None
    return db


def open_database_readonly(path: str | Path) -> Database:
    """The database at `path` for reading only (`liqbot status`): never creates or migrates a
    file. NoDatabase when there is none yet; DatabaseError when it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise NoDatabase(
            f"{path}: no database yet; `liqbot run` creates it and starts collecting "
            "(or point --config / [storage] path at the one `run` uses)"
        )
    if path.is_dir():
        raise DatabaseError(f"{path}: is a folder, not a database file: set [storage] path")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        db = Database(connection)
        db.execute("PRAGMA busy_timeout=5000")
        if "events" not in _tables(db):
            raise DatabaseError(
                f"{path}: not a liqbot database (no liqbot tables): "
                "point [storage] path at the file `liqbot run` writes"
            )
    except sqlite3.DatabaseError as error:
        problem = file_problem(path, error)
        if problem is None:
            raise
        raise problem from None
    return db


def _tables(db: Database) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _probe_write(db: Database) -> None:
    """Rewrite the header's user_version with its own value: a read-only file, folder or mount
    fails here, at start, rather than at the first write of collected data."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.execute(f"PRAGMA user_version={int(version)}")


def file_problem(path: str | Path, error: sqlite3.DatabaseError) -> DatabaseError | None:
    """One line for what SQLite said about the file itself (damaged, not SQLite, not writable,
    full, locked), or None when the error is about something else (a bug to raise as is)."""
    name = getattr(error, "sqlite_errorname", "") or ""
    text = str(error)
    if name.startswith("SQLITE_READONLY"):
        return DatabaseError(f"{path}: cannot be written ({text}): {UNWRITABLE_ADVICE}")
    if name.startswith("SQLITE_CANTOPEN"):
        return DatabaseError(f"{path}: cannot be opened ({text}): {UNWRITABLE_ADVICE}")
    if name.startswith("SQLITE_FULL"):
        return DatabaseError(f"{path}: the disk is full ({text}): free some space and start again")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return DatabaseError(
            f"{path}: locked by another program ({text}): wait for it (a backup?) or stop it"
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR")):
        return DatabaseError(
            f"{path}: damaged or not an SQLite database ({text}): {DAMAGED_ADVICE}"
        )
    return None
