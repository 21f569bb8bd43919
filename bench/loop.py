"""Event-loop lag (target: p99 <= 20 ms, max <= 100 ms at 100,000 chats) through four situations,
each measured the old way (baseline) and the new way in the same run:

    .venv/bin/python bench/loop.py                      # 100,000 chats (~4 min)
    .venv/bin/python bench/loop.py --chats 1000000      # report figures (~25 min, 8 GB)
    .venv/bin/python bench/loop.py --only commands      # one situation (repeatable option)

The world is bench/evaluate.py's (same market, chats and database file, opened as `liqbot run`
opens it). A probe task sleeps 5 ms again and again; its lateness is the loop's lag, sampled
while each situation runs:
- cascade: the pass in which rules cross for the first time (bench/evaluate.py's cascade), from
  the calm state. Baseline: the same pass run through without yielding, recorded on the loop's
  connection (as the engine did). New: `await engine.evaluate`, recording on the writer thread.
- commands: a burst of /set (200) and /status (50), 2 ms apart, each its own task. Baseline
  (a few: they take seconds): save on the loop then rebuild the index (`reload_subscriptions`),
  /status rebuilt from SQL. New: save through the writer then `engine.subscription_changed`;
  /status from memory (`LiveStatus`).
- restart: what `liqbot run` does before its tasks start, on the database. Baseline: Core
  built on the loop (market rollups, norms, derivatives, subscriptions, rule states and index
  read and built there: `Core(db, read_start(db, now))`). New: `await App.open(settings)`
  (the writer thread opens the database and `load_start` reads and builds all that there);
  its note gives the loop thread's CPU time (`time.thread_time`) during it.
- fresh deployment: no rule state recorded, thresholds already crossed. Baseline: the first
  pass fires everything, on the loop. New: rules already crossed are recorded disarmed, no
  alerts, on the writer thread.
All baselines run first, then the heap is frozen (`bot.heap.freeze`), then the new ways;
full collections are timed in both halves.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from evaluate import World, build_world, cascade, delete_outbox_after, last_outbox_id
from machine import cpu_check  # bench/ is on sys.path when a script here runs
from sqlite_utils import Database

from bot import heap
from bot.arming import Arming
from bot.config import settings_from_dict
from bot.core import Core, read_start
from bot.engine import MIN_PASS_INTERVAL, AlertEngine, Index, read_index
from bot.main import App
from bot.model import RuleState
from bot.rulebook import RuleBook
from bot.status import LiveStatus, build_status, render_status
from bot.writer import Writer
from storage import alerts, open_database

T = TypeVar("T")
TICK = 0.005  # the probe's sleep
BURST_SPACING = 0.002  # between two commands of the burst: 500 commands/s, each its own task
P99_TARGET_MS, MAX_TARGET_MS = 20.0, 100.0
NOT_FRESH = {("bench:none", "whale", "*"): RuleState(True, 0)}  # a recorded state: not fresh


class LagProbe:
    """Sleeps TICK again and again; how late it wakes is the loop's lag."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.recording = False

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            if self.recording:
                self.samples.append(time.perf_counter() - started - TICK)

    async def measure(self, work: Awaitable[T]) -> tuple[T, list[float]]:
        await asyncio.sleep(2 * TICK)  # what ran before is not this work's lag
        self.samples = []
        self.recording = True
        result = await work
        await asyncio.sleep(2 * TICK)
        self.recording = False
        return result, self.samples


def drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that only yields bare (asyncio.sleep(0)) to its end without giving the
    loop a turn: what the engine did before its passes yielded."""
    try:
        while True:
            coroutine.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def blocking(work: Callable[[], T]) -> T:
    return work()


@dataclass(slots=True)
class Row:
    situation: str
    way: str
    lags: list[float]
    note: str = ""

    def line(self) -> str:
        ms = sorted(lag * 1000 for lag in self.lags) or [0.0]
        p50 = statistics.median(ms)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        ok = "ok" if p99 <= P99_TARGET_MS and ms[-1] <= MAX_TARGET_MS else "MISS"
        verdict = ok if self.way == "new" else ""
        return (
            f"  {self.situation:<17} {self.way:<9} {len(ms):>6} {p50:>8.1f} {p99:>8.1f}"
            f" {ms[-1]:>8.1f}  {verdict:<4} {self.note}"
        )


@dataclass(slots=True)
class GcPauses:
    """Full collections while entered: how many, the longest."""

    pauses: list[float] = field(default_factory=list)
    _started: float = 0.0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                self._started = time.perf_counter()
            else:
                self.pauses.append(time.perf_counter() - self._started)


class Bench:
    def __init__(self, world: World, writer: Writer, args: argparse.Namespace, path: Path) -> None:
        self.world = world
        self.path = path
        self.db = world.db
        self.core = world.core
        self.engine = world.core.engine
        self.writer = writer
        self.args = args
        self.probe = LagProbe()
        self.pauses = GcPauses()
        self.rows: list[Row] = []
        self.settings = settings_from_dict({})
        self.clock = world.core.market.minute * 60_000 + 30_000

    async def lag(self, situation: str, way: str, work: Awaitable[T], note: str = "") -> T:
        seen = len(self.pauses.pauses)
        result, lags = await self.probe.measure(work)
        collections = self.pauses.pauses[seen:]
        if collections:
            note = f"{len(collections)} full gc, longest {max(collections) * 1000:.0f} ms {note}"
        row = Row(situation, way, lags, note)
        self.rows.append(row)
        print(row.line(), flush=True)
        return result

    def engine_on(self, writer: Writer, index: Index) -> AlertEngine:
        core = self.core
        return AlertEngine(self.db, core.market, core.norms, core.derivatives, index, writer=writer)

    # (a) cascade ---------------------------------------------------------------------------

    async def settle(self) -> None:
        """From the fresh deployment to the calm state, and the cascade in the market."""
        self.engine.writer = self.writer
        await self.engine.evaluate(self.clock)  # fresh: what is crossed starts disarmed
        self.clock += int(MIN_PASS_INTERVAL * 1000)
        self.engine.on_market_data()
        await self.engine.evaluate(self.clock)
        self.calm_states = dict(self.engine.states)
        self.calm_last = last_outbox_id(self.db)
        self.events = cascade(self.world.maker, self.clock, self.args.cascade_usd)
        self.core.on_liquidations(self.events)
        await self.core.recorder.flush()
        self.clock += int(MIN_PASS_INTERVAL * 1000)

    async def cascade(self, way: str) -> None:
        for _ in range(self.args.repeat):
            delete_outbox_after(self.db, self.calm_last)
            self.engine.states = dict(self.calm_states)
            if way == "new":
                heap.freeze()  # the calm state, as a process that reached it at start-up has it
            self.engine.on_liquidations(self.events)
            if way == "baseline":
                self.engine.writer = Writer.inline(self.db)
                work = blocking(lambda: drive(self.engine.evaluate(self.clock)))
            else:
                self.engine.writer = self.writer
                work = self.engine.evaluate(self.clock)
            added = await self.lag("cascade", way, work)
            print(f"    {added:,} alerts recorded", flush=True)
        delete_outbox_after(self.db, self.calm_last)
        self.engine.states = dict(self.calm_states)
        if way == "new":
            heap.freeze()  # the calm state, as a process that reached it at start-up has it

    # (b) a burst of /set and /status -------------------------------------------------------

    def changed(self, count: int) -> Iterator[alerts.Subscription]:
        """The first `count` chats with a new threshold, made one at a time (the burst's own
        work stays out of its lag)."""
        for s in list(islice(self.engine.book.by_key.values(), count)):
            yield replace(s, thresholds=replace(s.thresholds, liq=s.thresholds.liq * 1.1))

    async def commands(self, way: str) -> None:
        now = self.clock
        if way == "baseline":
            count = self.args.baseline_commands

            def old_set(sub: alerts.Subscription) -> None:
                with self.db.atomic():
                    alerts.save_subscription(self.db, sub, now)
                self.engine.reload_subscriptions()

            def old_status() -> str:
                return render_status(
                    build_status(self.db, self.settings, now), windows=("1h", "24h")
                )

            async def burst() -> list[float]:
                timings = []
                for sub in self.changed(count):
                    started = time.perf_counter()
                    old_set(sub)
                    timings.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    old_status()
                    timings.append(time.perf_counter() - started)
                    await asyncio.sleep(0)
                return timings

            timings = await self.lag("commands", way, burst())
            sets, statuses = timings[::2], timings[1::2]
            note = f"{count} /set {statistics.median(sets) * 1000:.0f} ms each, {count} /status"
            self.rows[-1].note += note + f" {statistics.median(statuses) * 1000:.0f} ms each"
            print(f"    {self.rows[-1].note}", flush=True)
            return
        on_loop: list[float] = []
        cpu: dict[str, list[float]] = {"/set": [], "/status": []}  # the loop thread's CPU

        async def set_command(sub: alerts.Subscription) -> None:
            def save(db: Database) -> None:
                with db.atomic():
                    alerts.save_subscription(db, sub, now)

            await self.writer.call(save)
            started, thread = time.perf_counter(), time.thread_time()
            self.engine.subscription_changed(sub)
            cpu["/set"].append(time.thread_time() - thread)
            on_loop.append(time.perf_counter() - started)

        live = LiveStatus(self.db, self.settings, self.core.market, self.core.derivatives)

        async def status_command() -> str:
            started, thread = time.perf_counter(), time.thread_time()
            text = render_status(live.build(now), windows=("1h", "24h"))
            cpu["/status"].append(time.thread_time() - thread)
            on_loop.append(time.perf_counter() - started)
            return text

        async def burst() -> None:
            tasks: list[asyncio.Task[object]] = []
            for number, sub in enumerate(self.changed(200)):
                tasks.append(asyncio.create_task(set_command(sub)))
                if number % 4 == 0:
                    tasks.append(asyncio.create_task(status_command()))
                await asyncio.sleep(BURST_SPACING)
            await asyncio.gather(*tasks)

        await self.lag("commands", way, burst())
        ordered = sorted(on_loop)
        self.rows[-1].note += (
            f"on the loop per command: median {statistics.median(ordered) * 1000:.2f} ms,"
            f" max {ordered[-1] * 1000:.2f} ms; its thread's CPU: "
            + ", ".join(
                f"{name} median {statistics.median(times) * 1000:.2f} ms,"
                f" max {max(times) * 1000:.2f} ms"
                for name, times in cpu.items()
            )
        )
        print(f"    {self.rows[-1].note}", flush=True)

    # (c) restart ---------------------------------------------------------------------------

    async def restart(self, way: str) -> None:
        if way == "baseline":
            core = await self.lag(
                "restart", way, blocking(lambda: Core(self.db, read_start(self.db, self.clock)))
            )
            engine = core.engine
            print(f"    {len(engine.book.by_key):,} chats, {len(engine.states):,} rule states")
            return
        settings = settings_from_dict({"storage": {"path": str(self.path)}})
        cpu = time.thread_time()

        async def start() -> App:
            app = await App.open(settings)
            heap.freeze()  # what `liqbot run` does once started
            return app

        app = await self.lag("restart", way, start())
        cpu = time.thread_time() - cpu
        engine = app.core.engine
        self.rows[-1].note += f"App.open: {cpu * 1000:.0f} ms CPU on the loop's thread"
        chats, states = len(engine.book.by_key), len(engine.states)
        print(f"    {self.rows[-1].note}; {chats:,} chats, {states:,} rule states", flush=True)
        await app.close()
        app.db.close()

    # (d) fresh deployment ------------------------------------------------------------------

    async def fresh(self, way: str) -> None:
        with self.db.atomic():
            self.db.execute("DELETE FROM rule_state")
        delete_outbox_after(self.db, 0)
        if way == "baseline":
            book = RuleBook(alerts.active_subscriptions(self.db))
            states = dict(NOT_FRESH)
            stories = alerts.load_stories(self.db)
            index = Index(book, states, Arming(book, states), set(), stories, set())
            engine = self.engine_on(Writer.inline(self.db), index)
            work = blocking(lambda: drive(engine.evaluate(self.clock)))
        else:
            with heap.bulk_build():  # as `load_start` does
                index = await self.writer.call(read_index)
            engine = self.engine_on(self.writer, index)
            heap.freeze()  # what `liqbot run` does once started
            work = engine.evaluate(self.clock)
        added = await self.lag("fresh deployment", way, work)
        disarmed = sum(not state.armed for state in engine.states.values())
        print(f"    {added:,} alerts recorded, {disarmed:,} rules disarmed", flush=True)
        with self.db.atomic():  # the calm state's rules again: the next restart loads them
            self.db.execute("DELETE FROM rule_state")
            alerts.save_rule_states(self.db, self.calm_states)
        delete_outbox_after(self.db, 0)


def full_collection_ms() -> float:
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1000


async def run(args: argparse.Namespace, tmp: str) -> None:
    path = Path(tmp, "loop.db")
    now = time.time_ns() // 1_000_000
    started = time.perf_counter()
    world = build_world(path, args.chats, args, now, {})
    writer = await Writer.start(lambda: open_database(path))
    bench = Bench(world, writer, args, path)
    print(
        f"{args.chats:,} chats in {len(bench.engine.book.groups):,} groups; world built in"
        f" {time.perf_counter() - started:.0f} s (its Core, on the loop:"
        f" {world.setup_seconds['core']:.1f} s)",
        flush=True,
    )
    probe = asyncio.create_task(bench.probe.run())
    pauses = bench.pauses
    gc.callbacks.append(pauses.callback)
    try:
        await bench.settle()
        print(
            f"  {'situation':<17} {'way':<9} {'samples':>6} {'p50 ms':>8} {'p99 ms':>8}"
            f" {'max ms':>8}  (target p99 <= {P99_TARGET_MS:g}, max <= {MAX_TARGET_MS:g})"
        )
        situations = [
            situation
            for situation in (bench.cascade, bench.commands, bench.restart, bench.fresh)
            if not args.only or situation.__name__ in args.only
        ]
        for situation in situations if args.baseline else ():
            await situation("baseline")
        unfrozen_gc, unfrozen_pauses = full_collection_ms(), list(pauses.pauses)
        heap.freeze()  # the start-up heap (the baselines' garbage was just collected)
        pauses.pauses.clear()
        for situation in situations:
            await situation("new")
        frozen_gc = full_collection_ms()
        print(
            f"  full collection before the second freeze: {unfrozen_gc:.0f} ms, after it"
            f" {frozen_gc:.0f} ms; longest full collection during the situations: baseline"
            f" {max(unfrozen_pauses, default=0) * 1000:.0f} ms, new"
            f" {max(pauses.pauses, default=0) * 1000:.0f} ms ({len(pauses.pauses)} of them)",
            flush=True,
        )
    finally:
        gc.callbacks.remove(pauses.callback)
        probe.cancel()
        await asyncio.gather(probe, return_exceptions=True)
        await writer.close()
        world.db.close()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--days", type=int, default=30, help="days of history (30-day norms)")
    parser.add_argument("--cascade-usd", type=float, default=2e6)
    parser.add_argument("--repeat", type=int, default=2, help="cascade passes per way")
    parser.add_argument("--baseline-commands", type=int, default=2)
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="the new ways only (at 1M chats each baseline takes minutes)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=("cascade", "commands", "restart", "fresh"),
        help="run this situation (repeat for more; default: all four)",
    )
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version},"
        f" {os.cpu_count()} cpus; cpu check {cpu_check():.1f} ms"
    )
    with tempfile.TemporaryDirectory(prefix="liqbot-bench-") as tmp:
        asyncio.run(run(args, tmp))
    print(f"cpu check at the end {cpu_check():.1f} ms")


if __name__ == "__main__":
    main()
