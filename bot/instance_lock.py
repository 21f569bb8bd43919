"""One `liqbot run` per database: an OS file lock (flock) on `<database>.lock`, held for the life
of the process. The kernel drops it when its holder exits in any way, kill -9 included, so a
restart after a crash never waits for a timeout. The file tells a second instance who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from bot.clock import now_ms
from bot.formatting import iso_utc


class LockError(Exception):
    """`run` cannot hold its database; the message is one line for the person running it."""


class InstanceLocked(LockError):
    """Another running liqbot holds the database; the message names it (pid, host, since)."""


@dataclass
class InstanceLock:
    """A held lock; `release()` (or the process's end) frees it."""

    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1


def lock_path(database: str | Path) -> Path:
    return Path(f"{database}.lock")


def acquire(database: str | Path) -> InstanceLock:
    """Hold the lock next to `database`, or raise InstanceLocked at once naming its holder."""
    path = lock_path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise LockError(
            f"{path}: cannot write the lock file next to the database ({error.strerror}): "
            "liqbot must write there: check the folder's permissions, free disk space, and "
            "that the disk is not mounted read-only"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise InstanceLocked(
            f"{database}: another liqbot run is using this database ({holder}): stop it first, "
            "or give this one its own [storage] path"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": iso_utc(now_ms())}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    return InstanceLock(path, fd)


def _read_holder(fd: int) -> str:
    """ "pid 123 on host, since 2026-12-02T04:00:00Z", or what can be said when the holder has
    not written its details yet."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "its details are not written yet"
