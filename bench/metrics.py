"""What metrics cost: bench/ingest.py's pipeline with liquidation counting on and off, in one
process on the same frames (runs alternate, so a drifting host slows both alike), and the time
one Prometheus scrape of a running bot's figures takes on the event loop.

    .venv/bin/python bench/metrics.py --events 300000 --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from ingest import (
    POSITIONS,
    VENUES,
    Bot,
    Frame,
    FrameMaker,
    make_coins,
    okx_contracts,
    parsers,
    start_bot,
)
from ingest import ingest as run_ingest
from machine import cpu_check  # bench/ is on sys.path when a script here runs
from prometheus_client import generate_latest

from bot.clock import SYSTEM, now_ms
from bot.counters import LiquidationCounts
from bot.loop_lag import LoopLag
from bot.metrics import LiqbotCollector, registry
from bot.model import Liquidation
from bot.runtime import Runtime
from bot.supervisor import Supervisor
from bot.venues import okx
from bot.writer import Writer
from storage import open_database


class CountingOff:
    """Stands in for LiquidationCounts: the pipeline as it was before metrics."""

    def add(self, events: Iterable[Liquidation]) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=300_000, help="events per ingest run")
    parser.add_argument("--runs", type=int, default=5, help="runs with counting on (and off)")
    parser.add_argument("--symbols", type=int, default=1_000)
    parser.add_argument("--scrapes", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"cpu check {cpu_check():.1f} ms")
    rng = random.Random(args.seed)
    coins = make_coins(args.symbols, rng)
    contracts = okx_contracts(coins)
    start = now_ms()
    frames = [f for f, _ in FrameMaker(coins, 150_000.0, start, args.seed).frames(args.events)]
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="liqbot-bench-") as tmp:
        for run in range(args.runs):
            for mode in ("on", "off") if run % 2 == 0 else ("off", "on"):
                db = open_database(Path(tmp, f"{mode}{run}.db"))
                bot = start_bot(db, start)
                if mode == "off":
                    bot.core.liquidation_counts = CountingOff()  # type: ignore[assignment]
                result = run_ingest(frames, contracts, bot, 20_000)
                cpu[mode].append(result.cpu_rate)
                db.close()
                if mode == "on":
                    counts = bot.core.liquidation_counts
                    counted = sum(counts.get(v, side)[0] for v in VENUES for side in POSITIONS)
                    assert counted == result.events, (counted, result.events)
        on, off = statistics.median(cpu["on"]), statistics.median(cpu["off"])
        print(f"ingest, {args.events:,} events x {args.runs} runs each (ev per CPU second):")
        for mode, median in (("on", on), ("off", off)):
            runs = ", ".join(f"{rate:,.0f}" for rate in cpu[mode])
            print(f"  counting {mode:<3}  median {median:>9,.0f}  runs {runs}")
        print(f"  on/off {on / off:.3f}")
        print(f"counting alone: {time_counting(frames, contracts, on)}")
        db = open_database(Path(tmp, "scrape.db"))
        bot = start_bot(db, start)
        run_ingest(frames[:20_000], contracts, bot, 20_000)
        print(f"scrape: {time_scrapes(bot, args.scrapes)}")
        print(f"cpu check after {cpu_check():.1f} ms")


def time_counting(frames: list[Frame], contracts: dict[str, okx.Contract], rate: float) -> str:
    """LiquidationCounts.add over the frames' parsed batches, best of five passes: the exact
    cost that ingest's on/off runs see through their noise."""
    parse = parsers(contracts)
    batches = [
        batch
        for venue, recv_ts, text in frames
        if (batch := parse[venue](json.loads(text), recv_ts))
    ]
    events = sum(map(len, batches))
    best = float("inf")
    for _ in range(5):
        counts = LiquidationCounts()
        add = counts.add
        started = time.process_time()
        for batch in batches:
            add(batch)
        best = min(best, time.process_time() - started)
    per_event = best / events
    return (
        f"{per_event * 1e9:.0f} ns per event, {per_event * rate:.1%} of the pipeline's"
        f" CPU per event ({1e9 / rate:,.0f} ns)"
    )


def time_scrapes(bot: Bot, scrapes: int) -> str:
    """A scrape of a bot with four supervised tasks, three venues and a full lag window."""
    core = bot.core
    supervisor = Supervisor(SYSTEM)
    for name in ("recorder", "engine", "outbox-telegram", "collector-binance"):
        supervisor.add(name, asyncio.Event().wait)
    lag = LoopLag()
    for i in range(3_000):
        lag.observe(i / 1e6, 0.0)
    runtime = Runtime(
        supervisor, lambda: bot.health, core.recorder, lag, Writer.inline(core.db), []
    )
    collector = LiqbotCollector(
        lambda: bot.health, core.liquidation_counts, core.engine.decided, core.workers, lag, runtime
    )
    scraped = registry(collector)
    times = []
    for _ in range(scrapes):
        started = time.perf_counter()
        generate_latest(scraped)
        times.append(time.perf_counter() - started)
    return (
        f"{scrapes:,} scrapes of the whole registry:"
        f" median {statistics.median(times) * 1e6:.0f} us,"
        f" max {max(times) * 1e6:.0f} us on the loop"
    )


if __name__ == "__main__":
    main()
