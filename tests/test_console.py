"""The embedded default a new user sees first: alerts on stdout, and the offline demo."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from bot.clock import now_ms
from tests.fakes import force_order
from tests.harness import WAIT, Fakes, write_config


async def test_run_prints_alerts_to_stdout_with_the_config_defaults(
    tmp_path: Path, fakes: Fakes
) -> None:
    binance = fakes[0]
    config = write_config(tmp_path, fakes)
    config.write_text(
        config.read_text()
        + '\n[defaults]\nwindow = "5m"\nmin_liquidations_usd = 40000\nfunding_rate_8h = 0\n'
        "oi_change = 0\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(config),
        "run",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(WAIT):
            await binance.wait_for_connections(1)
            await binance.push(force_order("BTCUSDT", "SELL", "0.5", "91000", now_ms()))
            first = (await process.stdout.readline()).decode().rstrip("\n")
            rest = [(await process.stdout.readline()).decode().rstrip("\n") for _ in range(3)]
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    assert first == "$45.5K liquidated in 5m, 100% longs"
    assert rest == [
        "Top assets: BTC $45.5K",
        "Venues: Binance $45.5K",
        "Not enough history yet for a 30-day comparison.",
    ]


def test_demo_replays_the_bundled_cascade_offline_in_under_30_seconds() -> None:
    import subprocess

    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--speed", "100000"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Liquidation spike: $48.6M in 1h, 3.0x the 30-day hourly average" in lines
    assert "$100M liquidated in 1h, 68% longs" in lines
    assert "Whale liquidation: $8.4M BTC long on Binance" in lines
    assert "DOGE funding +0.0900% per 8h on Bybit: longs pay shorts" in lines
    # One story, one message: the four open-interest moves of one pass, a line per asset.
    moves = lines.index("Open interest moves: BTC, ETH, SOL, DOGE")
    assert lines[moves + 1] == (
        "BTC open interest down 11.4% in 1h to $5.32B (From $6B, summed across venues)"
    )
    assert "Up from $100M at 12:30 UTC" in lines  # the cascade doubled: told again
    assert "Cascade over: $369M liquidated in 1h at the peak (80% longs), 12:30-13:03 UTC" in lines
    assert lines[-1] == "Done: 8 alerts."
    assert elapsed < 30
