"""`liqbot run` and `liqbot status` refuse clearly at start: a damaged, foreign or unwritable
database, a second instance on the same database, an empty folder. One line on stderr, which
file, what is wrong, what to do, and a non-zero exit; never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.instance_lock import InstanceLocked, acquire, lock_path
from bot.venues.catalog import VENUES
from storage import open_database
from storage.database import DAMAGED_ADVICE, UNWRITABLE_ADVICE

ROOT = Path(__file__).parent.parent
CLOSED = "127.0.0.1:9"  # the discard port: nothing listens, so `run` keeps retrying the venues


def offline_config(folder: Path) -> Path:
    """Settings whose venues cannot be reached (run retries them) and a database in `folder`."""
    lines = [f'[storage]\npath = "{folder / "liqbot.db"}"\n']
    for venue in VENUES.values():
        stream = f'ws_url = "ws://{CLOSED}"\n' if venue.ws_url else ""
        lines.append(f'[exchanges.{venue.name}]\n{stream}rest_url = "http://{CLOSED}"\n')
    config = folder / "config.toml"
    config.write_text("\n".join(lines))
    return config


def refusal(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a refused command printed (and that it printed nothing else)."""
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    return err.rstrip("\n")


# -- a damaged or foreign database file ---------------------------------------------------


@pytest.mark.parametrize("command", ["run", "status"])
def test_a_file_that_is_not_sqlite_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    config = offline_config(tmp_path)
    database = tmp_path / "liqbot.db"
    database.write_bytes(b"these are my notes, not a database\n" * 200)
    assert main(["--config", str(config), command]) == 1
    assert refusal(capsys) == (
        f"liqbot {command}: {database}: damaged or not an SQLite database (file is not a "
        f"database): {DAMAGED_ADVICE}"
    )
    assert database.read_bytes() == b"these are my notes, not a database\n" * 200


@pytest.mark.parametrize("command", ["run", "status"])
def test_a_damaged_sqlite_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    config = offline_config(tmp_path)
    database = tmp_path / "liqbot.db"
    open_database(database).close()
    data = bytearray(database.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema page, past the 100-byte header
    database.write_bytes(bytes(data))
    assert main(["--config", str(config), command]) == 1
    assert refusal(capsys) == (
        f"liqbot {command}: {database}: damaged or not an SQLite database (database disk "
        f"image is malformed): {DAMAGED_ADVICE}"
    )


# -- a database that cannot be written -----------------------------------------------------


@pytest.fixture
def world_folder() -> Iterator[Path]:
    """A folder outside pytest's private tmp (which is mode 0700), for a read-only mount."""
    folder = Path(os.environ.get("TMPDIR", "/tmp"), f"liqbot-ro-{os.getpid()}-{time.time_ns()}")
    folder.mkdir()
    yield folder
    for path in (folder, *folder.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(folder)


def read_only(folder: Path, argv: list[str]) -> list[str]:
    """`argv` run where `folder` cannot be written: a read-only bind mount in a private mount
    namespace as root (whom permissions do not stop), else plain permissions."""
    if os.geteuid() != 0:
        for path in folder.iterdir():
            path.chmod(0o444)
        folder.chmod(0o555)
        return argv
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare(1): no way to make a folder read-only")
    remount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", remount, str(folder), *argv]


def run_cli(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


def test_run_refuses_to_start_on_a_read_only_folder(world_folder: Path) -> None:
    config = offline_config(world_folder)
    open_database(world_folder / "liqbot.db").close()
    argv = [sys.executable, "-m", "bot", "--config", str(config), "run"]
    done = run_cli(read_only(world_folder, argv))
    if "unshare" in done.stderr and done.returncode != 1:
        pytest.skip(f"no mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    lock = lock_path(world_folder / "liqbot.db")
    line = done.stderr.splitlines()[-1]
    # Read-only file system (a mount) or Permission denied (modes): the cause is the OS's word.
    assert line.startswith(
        f"liqbot run: {lock}: cannot write the lock file next to the database ("
    ), line
    assert line.endswith(
        "): liqbot must write there: check the folder's permissions, free disk space, and that "
        "the disk is not mounted read-only"
    ), line
    assert "Traceback" not in done.stderr


def test_a_database_that_cannot_be_written_is_refused_at_open(world_folder: Path) -> None:
    database = world_folder / "liqbot.db"
    open_database(database).close()
    probe = (
        "import sys\nfrom storage.database import DatabaseError, open_database\n"
        "try:\n    open_database(sys.argv[1])\nexcept DatabaseError as error:\n"
        "    print(error)\n    sys.exit(3)\n"
    )
    done = run_cli(read_only(world_folder, [sys.executable, "-c", probe, str(database)]))
    if "unshare" in done.stderr and done.returncode != 3:
        pytest.skip(f"no mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 3, done.stderr
    line = done.stdout.rstrip("\n")
    assert line.startswith(f"{database}: cannot be "), line
    assert line.endswith(f": {UNWRITABLE_ADVICE}"), line


# -- one `run` per database ------------------------------------------------------------------


def wait_for_holder(database: Path, pid: int) -> dict[str, object]:
    """The lock file's details once the process `pid` has written them."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            info = json.loads(lock_path(database).read_text() or "{}")
        except (FileNotFoundError, ValueError):
            info = {}
        if info.get("pid") == pid:
            return info
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never took the lock on {database}")


def test_a_second_run_refuses_naming_the_first_and_a_restart_after_kill_9_is_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = offline_config(tmp_path)
    database = tmp_path / "liqbot.db"
    first = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "run"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        info = wait_for_holder(database, first.pid)
        began = time.monotonic()
        assert main(["--config", str(config), "run"]) == 1
        assert time.monotonic() - began < 5
        assert refusal(capsys) == (
            f"liqbot run: {database}: another liqbot run is using this database (pid "
            f"{first.pid} on {info['host']}, since {info['since']}): stop it first, or give "
            "this one its own [storage] path"
        )
        assert first.poll() is None  # the first one runs on, untouched
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        began = time.monotonic()
        restarted = acquire(database)  # the kernel dropped the dead holder's lock
        assert time.monotonic() - began < 0.5
        assert json.loads(lock_path(database).read_text())["pid"] == os.getpid()
        restarted.release()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_the_lock_is_held_until_released(tmp_path: Path) -> None:
    database = tmp_path / "liqbot.db"
    held = acquire(database)
    with pytest.raises(InstanceLocked, match=rf"\(pid {os.getpid()} on "):
        acquire(database)
    held.release()
    acquire(database).release()


# -- status only reads -----------------------------------------------------------------------


def test_status_in_an_empty_folder_creates_nothing_and_says_how_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIQBOT_CONFIG", raising=False)
    assert main(["status"]) == 1
    assert refusal(capsys) == (
        "liqbot status: liqbot.db: no database yet; `liqbot run` creates it and starts "
        "collecting (or point --config / [storage] path at the one `run` uses)"
    )
    assert list(tmp_path.iterdir()) == []


def test_status_reads_an_existing_database_without_changing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = offline_config(tmp_path)
    database = tmp_path / "liqbot.db"
    open_database(database).close()
    before = database.read_bytes()
    assert main(["--config", str(config), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["liquidations"]["1h"]["total_usd"] == 0
    assert database.read_bytes() == before  # read only: no migration, no write (WAL readers
    # still need the -wal and -shm files beside it, as while `run` writes)
