"""The `liqbot` command line: run, status, check-config."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from bot.config import ConfigError, Settings, config_path, load_settings
from bot.logs import configure_logging
from bot.recorder import now_ms


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liqbot", description="Liquidation, funding and open-interest alerts."
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML settings file (default: $LIQBOT_CONFIG, else ./config.toml)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="collect market data until SIGTERM/SIGINT")
    status = commands.add_parser("status", help="summarise what `run` has collected")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    commands.add_parser("check-config", help="validate the settings file and list every problem")
    demo = commands.add_parser("demo", help="replay a bundled liquidation cascade, offline")
    demo.add_argument("--speed", type=float, default=300.0, help="times real time (default 300)")
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
        return 2
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
    configure_logging(settings.log_level, settings.secrets)
    from bot.main import run_forever

    return run_forever(settings)


def _status(settings: Settings, as_json: bool) -> int:
    from bot.status import build_status, render_status
    from storage import open_database

    status = build_status(open_database(settings.storage.path), settings, now_ms())
    print(json.dumps(status, indent=2) if as_json else render_status(status, with_runtime=True))
    return 0
