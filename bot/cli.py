"""The `liqbot` command line: run, status, check-config, demo.

A problem the person running liqbot can fix (a bad setting, a damaged or unwritable database, a
refused bot token, a second instance) is one line on stderr and a non-zero exit, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
from collections.abc import Sequence
from importlib.metadata import version

from bot.clock import now_ms
from bot.config import ConfigError, Settings, config_path, load_settings
from bot.errors import StartupError
from bot.instance_lock import LockError, acquire
from bot.logs import configure_logging
from storage.database import DatabaseError, file_problem

CONFIG_HELP = "TOML settings file (default: $LIQBOT_CONFIG, else ./config.toml)"
EXIT_CONFIG = 2  # check-config's contract: problems in the settings
EXIT_FAILED = 1  # anything else that stops a command at start


def _speed(text: str) -> float:
    try:
        speed = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(speed) and speed > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: use a number above 0, e.g. 300")
    return speed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liqbot", description="Liquidation, funding and open-interest alerts."
    )
    parser.add_argument("--version", action="version", version=f"liqbot {version('liqbot')}")
    parser.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    # --config is accepted after the command too; SUPPRESS keeps an absent one from overriding
    # the value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=description, parents=[common])

    command(
        "run",
        "collect market data and send alerts until SIGTERM/SIGINT",
        "Collect liquidations (websockets), funding and open interest (REST polls) from the "
        "enabled venues into the database, decide alerts per chat and deliver them to Telegram, "
        "Discord or the console, until SIGTERM or SIGINT (then flush and exit 0). Refuses to "
        "start, with one line and exit 1, on a damaged or unwritable database, a refused bot "
        "token or another `liqbot run` on the same database.",
    )
    status = command(
        "status",
        "summarise what `run` has collected",
        "Read the database `run` writes (never creating or changing it) and print liquidation "
        "totals, funding, open interest and source health.",
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    command(
        "check-config",
        "validate the settings file and list every problem",
        "Read the settings file and list every problem with its key, including every value "
        "`run` could not use; exit 2 when there are any, 0 when it is fine.",
    )
    demo = command(
        "demo",
        "replay a bundled liquidation cascade, offline",
        "Replay a bundled 70-minute liquidation cascade through the real pipeline, offline, "
        "printing the alerts it makes.",
    )
    demo.add_argument(
        "--speed", type=_speed, default=300.0, help="times real time, above 0 (default 300)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = config_path(args.config)
    try:
        settings = load_settings(path)
    except ConfigError as error:
        print(f"{path}: {len(error.problems)} problem(s):", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        print(f"{path or 'built-in defaults'}: OK")
        return 0
    if args.command == "status":
        return _status(settings, as_json=args.json)
    if args.command == "demo":
        from bot.demo import run_demo

        try:
            return run_demo(args.speed)
        except BrokenPipeError:  # `liqbot demo | head`: the reader is gone, which is fine
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    return _run(settings)


def _run(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.secrets)
    from bot.main import run_forever

    try:
        lock = acquire(settings.storage.path)
    except LockError as error:  # another instance holds it, or it cannot be written
        return _refuse("run", error)
    try:
        return run_forever(settings)
    except (DatabaseError, StartupError) as error:
        return _refuse("run", error)
    except sqlite3.DatabaseError as error:  # a damaged page found while loading history
        return _refuse("run", _file_problem(settings, error))
    finally:
        lock.release()


def _status(settings: Settings, as_json: bool) -> int:
    from bot.status import build_status, render_status
    from storage.database import open_database_readonly

    try:
        status = build_status(open_database_readonly(settings.storage.path), settings, now_ms())
    except DatabaseError as error:  # none yet, damaged, not SQLite, unreadable
        return _refuse("status", error)
    except sqlite3.DatabaseError as error:  # a damaged page found while reading
        return _refuse("status", _file_problem(settings, error))
    print(json.dumps(status, indent=2) if as_json else render_status(status, with_runtime=True))
    return 0


def _file_problem(settings: Settings, error: sqlite3.DatabaseError) -> DatabaseError:
    problem = file_problem(settings.storage.path, error)
    if problem is None:  # not about the file: a bug, shown in full
        raise error
    return problem


def _refuse(command: str, error: Exception) -> int:
    print(f"liqbot {command}: {error}", file=sys.stderr)
    return EXIT_FAILED
