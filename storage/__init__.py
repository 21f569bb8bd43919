"""SQLite storage through sqlite-utils. Only this package writes SQL."""

from storage.database import open_database

__all__ = ["open_database"]
