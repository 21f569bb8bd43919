"""Benchmarks for the alert engine's targets: the cost of one evaluation pass, and the time from
a liquidation's arrival to its alert in the outbox.

Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/evaluate.py                     # both phases, default sizes (~3 min)
    .venv/bin/python bench/evaluate.py --phase pass --chats 1000000 --passes 5   # ~12 min, 6 GB
    .venv/bin/python bench/evaluate.py --phase latency --latency-chats 10000 --seconds 20

Everything runs offline: market history, subscriptions and liquidations are generated, and the
database is a temporary file opened as `liqbot run` opens it (WAL). The garbage collector stays
on, as in production, and what start-up built is frozen (`bot.heap.freeze`) as `liqbot run`
freezes it; full (generation 2) collections during timed work are counted.

pass (target: p99 <= 50 ms with 100,000 chats, <= 1 s with 1,000,000). The market: --symbols
assets on three venues, --days of quiet per-minute history (about $250M a day), funding for
every asset and venue (about 6% of assets at extremes), open interest every 5 minutes for a day
(about 8% of assets moving 10-30%). The chats: windows 5m-24h, liq $1M-$1B log-uniform, side
any or 50-95%, funding, open interest, whale and spike rules each on for some; 40% watch the
whole market, the rest 1-3 of 30 common assets; a few muted, some with quiet hours. Untimed
setup: the chats are inserted in bulk, Core starts on the database as `liqbot run` does, and a
first full pass records every rule already over its threshold disarmed, without alerts (a fresh
deployment, printed), so the timed passes start from the steady state: crossed rules disarmed.
Then, with AlertEngine.evaluate on a simulated clock:
- calm: a quarter second later each time, two ordinary liquidations arrive; a liquidation pass
  (what a feed batch triggers) and a full pass (with funding, open interest and their
  re-arming: the 10 s timer, or a poll);
- cascade: from the calm state, --cascade-usd of liquidations (85% longs) and a $1.5M DOGE
  whale in the current minute, then the pass in which rules cross for the first time. Before
  each repetition the pre-cascade rule states are restored (assigning `engine.states`, which
  rebuilds the engine's index of disarmed rules) and the previous repetition's outbox rows are
  deleted, both untimed: every repetition is the same first crossing, with its transaction.

latency (target: p99 <= 500 ms from a liquidation's arrival to its alert committed in the
outbox). Core's tasks run as `liqbot run` starts them (engine loop, recorder, a Telegram and a
Discord outbox worker paced at 30 messages/s) while a feed calls Core.on_liquidations with
--rate events/s in frames of 1-3, for --seconds. Arrival is a frame's scheduled time, so a loop
blocked by a pass or a flush delays it and the delay counts. Probe chats make the crossing
event known: 24 h window probes (whole market, and BTC) have thresholds spread over what the
feed will add (nothing leaves the 24 h window during the run), so the event that crossed each
is found from the running total; whale probes fire on a $2-5M whale sent each second on a new
asset. Latency is the commit of the pass that recorded the row minus that event's arrival.
"all rows (upper bound)" bounds it for every row: commit minus the start of the pass before.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from machine import cpu_check  # bench/ is on sys.path when a script here runs
from sqlite_utils import Database

from bot import heap
from bot.clock import now_ms
from bot.core import Core, read_start
from bot.engine import MIN_PASS_INTERVAL, AlertEngine
from bot.market import MS_PER_MINUTE, RollupRow
from bot.model import (
    SENT,
    FundingRate,
    Liquidation,
    OpenInterest,
    OutboxRow,
    Position,
    Subscription,
    Thresholds,
)
from bot.outbox import Channel, Progress, Send
from bot.supervisor import Supervisor
from storage import alerts, market_data, open_database

PASS_TARGETS_MS = ((100_000, 50.0), (1_000_000, 1000.0))  # (up to this many chats, p99 target)
LATENCY_TARGET_MS = 500.0

VENUES = ("binance", "bybit", "okx")
COMMON = (  # the assets chats watch, most watched first
    *("BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA", "SUI", "LINK", "AVAX"),
    *("PEPE", "WIF", "LTC", "DOT", "TRX", "TON", "NEAR", "APT", "ARB", "OP"),
    *("FIL", "ATOM", "UNI", "AAVE", "INJ", "TIA", "SEI", "WLD", "ENA", "HYPE"),
)
WINDOW_SHARES = {"5m": 0.1, "15m": 0.15, "1h": 0.35, "4h": 0.15, "24h": 0.25}
TIMEZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Singapore")
CALM_USD_PER_DAY = 250e6  # the whole market on a quiet day
KEYS_PER_MINUTE = 60  # (venue, base, position) keys with liquidations in a quiet minute
# No history in the 30 minutes that leave the 24 h window next, so the 24 h total only grows
# while the latency phase runs: probes can then know which event made their total cross.
EDGE_GAP_MINUTES = 30
OI_BUCKET_MS = 5 * MS_PER_MINUTE
# Liquidation sizes, log-normal: ~$1.5K median (mean ~$3K) in a busy feed, ~$8K in a cascade.
FEED_MU, FEED_SIGMA = 7.3, 1.2
CASCADE_MU, CASCADE_SIGMA = 9.0, 1.3


# --- the simulated market ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Market:
    bases: list[str]  # most liquid first; the first len(COMMON) are COMMON
    cum_weights: list[float]  # Zipf-like activity, for random.choices
    prices: dict[str, float]

    def share(self, base: str) -> float:
        index = self.bases.index(base)
        low = self.cum_weights[index - 1] if index else 0.0
        return (self.cum_weights[index] - low) / self.cum_weights[-1]


def make_market(symbols: int, rng: random.Random) -> Market:
    names = list(COMMON)
    seen = set(names)
    while len(names) < symbols:
        name = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ", k=rng.randint(3, 6)))
        if name not in seen:
            seen.add(name)
            names.append(name)
    names = names[:symbols]
    weights = itertools.accumulate(1 / (rank + 1) ** 0.9 for rank in range(len(names)))
    prices = {name: 10 ** rng.uniform(-4, 4) for name in names}
    prices.update(BTC=90_000.0, ETH=3_000.0, SOL=150.0)
    return Market(names, list(weights), prices)


class EventMaker:
    """Liquidations on `market`: bases drawn Zipf-like, sizes log-normal."""

    def __init__(self, market: Market, rng: random.Random) -> None:
        self.market = market
        self.rng = rng
        self._drawn: list[str] = []

    def base(self) -> str:
        if not self._drawn:  # one `choices` call for many draws is much cheaper
            self._drawn = self.rng.choices(
                self.market.bases, cum_weights=self.market.cum_weights, k=4096
            )
        return self._drawn.pop()

    def event(
        self, at: int, usd: float, base: str | None = None, long_share: float = 0.5
    ) -> Liquidation:
        base = base or self.base()
        price = self.market.prices[base]
        position: Position = "long" if self.rng.random() < long_share else "short"
        venue = VENUES[int(self.rng.random() * 3)]
        lag = 5 + int(self.rng.random() * 500)  # venue time runs a little behind ours
        return Liquidation(
            venue, base + "USDT", base, position, price, usd / price, usd, at - lag, at
        )

    def sized(self, at: int, mu: float, sigma: float, long_share: float = 0.5) -> Liquidation:
        return self.event(at, math.exp(self.rng.gauss(mu, sigma)), long_share=long_share)


def history_rows(
    market: Market, now_minute: int, days: int, rng: random.Random
) -> Iterator[RollupRow]:
    """Quiet per-minute rollups for `days` days up to the minute before `now_minute`, with the
    24 h window's trailing edge left empty (EDGE_GAP_MINUTES)."""
    per_key = CALM_USD_PER_DAY / 1440 / KEYS_PER_MINUTE
    gap = range(now_minute - 1440, now_minute - 1440 + EDGE_GAP_MINUTES + 1)
    for minute in range(now_minute - days * 1440, now_minute):
        if minute in gap:
            continue
        keys: dict[tuple[str, str, str], list[float]] = {}
        for base in rng.choices(market.bases, cum_weights=market.cum_weights, k=KEYS_PER_MINUTE):
            key = (VENUES[rng.randrange(3)], base, "long" if rng.random() < 0.5 else "short")
            slot = keys.setdefault(key, [0.0, 0])
            slot[0] += rng.expovariate(1 / per_key)
            slot[1] += rng.randint(1, 20)
        for (venue, base, position), (usd, count) in keys.items():
            yield minute, venue, base, position, usd, int(count)


def write_history(db: Database, rows: Iterator[RollupRow]) -> int:
    """Bulk SQL insert in one transaction (100 rows a statement); returns the row count."""
    written = 0
    sql = "INSERT INTO rollups (minute, venue, base, position, usd, count) VALUES "
    with db.atomic():
        while chunk := list(itertools.islice(rows, 100)):
            values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
            db.conn.execute(sql + values, list(itertools.chain.from_iterable(chunk)))
            written += len(chunk)
    return written


def funding_rates(market: Market, rng: random.Random) -> list[FundingRate]:
    """Every base on every venue: most near +0.01% per 8 h, about 6% of bases at extremes."""
    rates = []
    for base in market.bases:
        extreme = rng.random() < 0.06
        for venue in VENUES:
            hours = rng.choice((8.0, 8.0, 4.0, 1.0))
            rate_8h = rng.gauss(0.0001, 0.00005)
            if extreme:
                rate_8h = rng.choice((-1, 1)) * rng.uniform(0.0005, 0.003)
            price = market.prices[base]
            rates.append(
                FundingRate(venue, base + "USDT", base, rate_8h * hours / 8, hours, price, None)
            )
    return rates


def seed_derivatives(db: Database, market: Market, now: int, rng: random.Random) -> None:
    """Funding for every base and venue; open interest now and every 5 minutes for a day,
    drifting a few percent a day (about 8% of bases by 10-30%)."""
    interests = []
    history: list[tuple[int, str, str, float]] = []
    top = market.cum_weights[0]
    for index, base in enumerate(market.bases):
        weight = market.cum_weights[index] - (market.cum_weights[index - 1] if index else 0.0)
        trend = (
            rng.gauss(0, 0.03)
            if rng.random() > 0.08
            else rng.choice((-1, 1)) * rng.uniform(0.1, 0.3)
        )
        for venue in VENUES:
            usd = 8e9 * weight / top * rng.uniform(0.5, 1.5)
            interests.append(OpenInterest(venue, base + "USDT", base, usd, now))
            for step in range(1, 24 * 12 + 2):
                bucket = (now - step * OI_BUCKET_MS) // OI_BUCKET_MS * OI_BUCKET_MS
                history.append((bucket, venue, base, usd * (1 - trend * step / (24 * 12))))
    with db.atomic():
        market_data.save_funding(db, funding_rates(market, rng), now)
        market_data.save_open_interest(db, interests, now)
        db.conn.executemany(
            "INSERT OR REPLACE INTO oi_history (bucket, venue, base, usd) VALUES (?, ?, ?, ?)",
            history,
        )


# --- subscriptions -------------------------------------------------------------------------


def _some(rng: random.Random, share_on: float, value: Callable[[], float]) -> float:
    return value() if rng.random() < share_on else 0.0


def make_subscriptions(count: int, rng: random.Random, now: int) -> list[Subscription]:
    """Chats with varied thresholds: liq $1M-$1B log-uniform, about 40% watching the whole
    market and the rest 1-3 of the common assets (BTC and ETH the most watched)."""
    windows, window_weights = list(WINDOW_SHARES), list(WINDOW_SHARES.values())
    watch_weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(COMMON))))
    subs = []
    for number in range(count):
        thresholds = Thresholds(
            window=rng.choices(windows, window_weights)[0],
            liq=10 ** rng.uniform(6, 9),
            side=0.0 if rng.random() < 0.5 else rng.uniform(0.5, 0.95),
            funding=_some(rng, 0.5, lambda: 10 ** rng.uniform(-3.5, -2.5)),  # 0.03%-0.3%
            oi=_some(rng, 0.5, lambda: 10 ** rng.uniform(-1.7, -0.7)),  # 2%-20%
            whale=_some(rng, 0.25, lambda: 10 ** rng.uniform(6, 7.3)),  # $1M-$20M
            spike=_some(rng, 0.3, lambda: rng.uniform(2, 10)),
            cooldown=rng.choice((300.0, 900.0, 1800.0, 3600.0)),
        )
        watch: frozenset[str] = frozenset()
        if rng.random() >= 0.4:
            picks = rng.choices(COMMON, cum_weights=watch_weights, k=rng.randint(1, 3))
            watch = frozenset(picks)
        telegram = rng.random() < 0.7
        quiet = None
        if rng.random() < 0.1:
            start = rng.randrange(0, 1440, 30)
            quiet = (start, (start + 480) % 1440)
        subs.append(
            Subscription(
                "telegram" if telegram else "discord",
                f"-100{1_000_000_000 + number}" if telegram else str(10**17 + number),
                thresholds,
                watch,
                mute_until=now + 3_600_000 if rng.random() < 0.02 else None,
                quiet=quiet,
                timezone=rng.choice(TIMEZONES),
            )
        )
    return subs


def save_subscriptions(db: Database, subs: Sequence[Subscription], now: int) -> None:
    """The rows `alerts.save_subscription` writes, inserted in bulk in one transaction: one
    save_subscription call costs about 0.25 ms (a lookup and an upsert), four minutes for a
    million chats. Only the bench inserts this way; the engine reads them back as usual."""
    rows = (alerts._subscription_row(sub) | {"created_at": now, "updated_at": now} for sub in subs)
    with db.atomic():
        db.table("subscriptions").insert_all(rows, batch_size=500)


# --- measurements --------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def ms_row(values: Sequence[float]) -> str:
    """median, p99 and max of `values` (seconds) in ms."""
    if not values:
        return f"{'-':>8} {'-':>8} {'-':>8}"
    medians = statistics.median(values) * 1000
    return f"{medians:>8.1f} {percentile(values, 0.99) * 1000:>8.1f} {max(values) * 1000:>8.1f}"


class GcWatch:
    """Counts full (generation 2) garbage collections and the time they take, while entered."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.count += 1
            self.seconds += time.perf_counter() - self._started


def pass_target(chats: int) -> float | None:
    return next((target for size, target in PASS_TARGETS_MS if chats <= size), None)


def verdict(p99_ms: float, target: float | None) -> str:
    if target is None:
        return ""
    return f"<= {target:g} ms {'ok' if p99_ms <= target else 'MISS'}"


def last_outbox_id(db: Database) -> int:
    return int(db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0])


def delete_outbox_after(db: Database, outbox_id: int) -> None:
    with db.atomic():
        db.execute("DELETE FROM outbox WHERE id > ?", [outbox_id])


@dataclass(slots=True)
class World:
    """A database with market history and chats, and the core `liqbot run` would start on it."""

    db: Database
    core: Core
    market: Market
    maker: EventMaker
    setup_seconds: dict[str, float]


def build_world(
    path: Path, chats: int, args: argparse.Namespace, now: int, channels: Mapping[str, Channel]
) -> World:
    rng = random.Random(args.seed)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    db = open_database(path)
    market = make_market(args.symbols, rng)
    write_history(db, history_rows(market, now // MS_PER_MINUTE, args.days, rng))
    seed_derivatives(db, market, now, rng)
    timings["market"] = time.perf_counter() - started
    started = time.perf_counter()
    subs = make_subscriptions(chats, rng, now)
    timings["generate"] = time.perf_counter() - started
    started = time.perf_counter()
    save_subscriptions(db, subs, now)
    timings["save"] = time.perf_counter() - started
    del subs
    started = time.perf_counter()
    core = Core(db, read_start(db, now), channels)
    timings["core"] = time.perf_counter() - started
    if len(core.engine.book.by_key) != chats:
        raise SystemExit(f"bench bug: {len(core.engine.book.by_key)} of {chats} chats loaded")
    return World(db, core, market, EventMaker(market, rng), timings)


# --- phase 1: one evaluation pass ------------------------------------------------------------

WHALES = (("DOGE", 1.5e6),)  # the cascade's whale liquidations: (asset, USD)


@dataclass(slots=True)
class Case:
    name: str
    seconds: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    gc_count: int = 0
    gc_seconds: float = 0.0


def run_pass(engine: AlertEngine, now: int) -> int:
    """One engine pass, outside an event loop (the pass phase drives the engine directly)."""
    return asyncio.run(engine.evaluate(now))


def timed_pass(engine: AlertEngine, now: int, case: Case, full: bool, watch: GcWatch) -> None:
    if full:
        engine.on_market_data()
    count, seconds = watch.count, watch.seconds
    started = time.perf_counter()
    case.rows.append(run_pass(engine, now))
    case.seconds.append(time.perf_counter() - started)
    case.gc_count += watch.count - count
    case.gc_seconds += watch.seconds - seconds


def cascade(maker: EventMaker, now: int, usd: float) -> list[Liquidation]:
    """`usd` of liquidations in the current minute, 85% longs, with WHALES among them."""
    events = [maker.event(now, size, base, long_share=0.95) for base, size in WHALES]
    total = sum(event.usd for event in events)
    while total < usd:
        event = maker.sized(now, CASCADE_MU, CASCADE_SIGMA, long_share=0.85)
        events.append(event)
        total += event.usd
    return events


def phase_pass(args: argparse.Namespace, chats: int, tmp: str) -> None:
    now = now_ms()
    world = build_world(Path(tmp, f"pass-{chats}.db"), chats, args, now, {})
    core, engine, db = world.core, world.core.engine, world.db
    setup = world.setup_seconds
    print(
        f"pass: {chats:,} chats in {len(engine.book.groups):,} groups (window x watch list),"
        f" {args.symbols} symbols, {args.days} days of history; setup: market"
        f" {setup['market']:.1f} s, chats generated {setup['generate']:.1f} s, inserted"
        f" {setup['save']:.1f} s, core started {setup['core']:.1f} s",
        flush=True,
    )
    clock = now
    watch = GcWatch()

    def step(events: int) -> None:
        """A quarter second later, with a few quiet liquidations (flushed, untimed)."""
        nonlocal clock
        clock += int(MIN_PASS_INTERVAL * 1000)
        core.on_liquidations([world.maker.sized(clock, FEED_MU, FEED_SIGMA) for _ in range(events)])
        asyncio.run(core.recorder.flush())  # an inline writer: done at once

    with watch:
        first = Case("first pass")
        timed_pass(engine, clock, first, True, watch)
        heap.freeze()  # as `liqbot run` does once started
        disarmed = sum(not state.armed for state in engine.states.values())
        print(
            f"  first pass (fresh deployment: rules already over their threshold start"
            f" disarmed): {first.rows[0]:,} alerts in {first.seconds[0]:.1f} s; then"
            f" {len(engine.states):,} rule states, {disarmed:,} disarmed",
            flush=True,
        )
        calm = [Case("calm, liquidations"), Case("calm, full")]
        for case, full in zip(calm, (False, True), strict=True):
            for _ in range(args.passes):
                step(2)
                timed_pass(engine, clock, case, full, watch)

        step(2)
        run_pass(engine, clock)
        calm_states = dict(engine.states)
        calm_last = last_outbox_id(db)
        events = cascade(world.maker, clock, args.cascade_usd)
        core.on_liquidations(events)
        asyncio.run(core.recorder.flush())  # an inline writer: done at once
        by_rule: Counter[str] = Counter()
        chats_alerted = 0
        crossing = [Case("cascade, liquidations"), Case("cascade, full")]
        for case, full in zip(crossing, (False, True), strict=True):
            for repetition in range(args.passes):
                engine.states = dict(calm_states)
                heap.freeze()  # the calm state, as `liqbot run` freezes what start-up built
                if full or repetition:
                    engine.on_liquidations(events)  # its whales, queued again
                timed_pass(engine, clock, case, full, watch)
                if not by_rule:
                    rows = db.execute("SELECT rule FROM outbox WHERE id > ?", [calm_last])
                    by_rule.update(row[0] for row in rows)
                    chats_alerted = db.execute(
                        "SELECT count(DISTINCT chat_id) FROM outbox WHERE id > ?", [calm_last]
                    ).fetchone()[0]
                delete_outbox_after(db, calm_last)
    whales = ", ".join(f"${usd / 1e6:g}M {base}" for base, usd in WHALES)
    print(
        f"  cascade: ${sum(e.usd for e in events) / 1e6:,.1f}M in {len(events):,} liquidations"
        f" in one minute, 85% longs, whales {whales}: {chats_alerted:,} chats alerted"
        f" ({chats_alerted / chats:.1%}); rows by rule:"
        f" {', '.join(f'{rule} {count:,}' for rule, count in by_rule.most_common())}"
    )
    target = pass_target(chats)
    print(
        f"  {'pass':<22} {'runs':>4} {'median ms':>9} {'p99 ms':>8} {'max ms':>8} {'rows':>7}"
        f" {'full gc':>12}  target"
    )
    for case in (*calm, *crossing):
        p99 = percentile(case.seconds, 0.99) * 1000
        collected = f"{case.gc_count} ({case.gc_seconds * 1000:.0f} ms)"
        print(
            f"  {case.name:<22} {len(case.seconds):>4} {ms_row(case.seconds)} "
            f" {statistics.median(case.rows):>7,.0f} {collected:>12}  {verdict(p99, target)}"
        )
    rows = statistics.median(crossing[0].rows)
    extra = statistics.median(crossing[0].seconds) - statistics.median(calm[0].seconds)
    if rows:
        print(f"  a first crossing costs about {extra / rows * 1e6:.0f} us per outbox row")
    db.close()


# --- phase 2: arrival to outbox ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    kind: str  # "market": 24 h whole-market total; "BTC": 24 h BTC total; "whale"
    offset: float  # USD above the starting total (window probes)


class Feed:
    """Liquidations at `rate` a second for `seconds`, in frames of 1-3 events, fed to
    Core.on_liquidations as the collectors would; one whale a second on a new base each time.

    Arrival is the frame's scheduled time (when it would reach the socket), not the time this
    task gets to it: a loop blocked by a pass delays delivery, and that delay counts."""

    def __init__(
        self, core: Core, maker: EventMaker, rate: float, seconds: float, whale_bases: list[str]
    ) -> None:
        self.core = core
        self.maker = maker
        self.rate = rate
        self.seconds = seconds
        self.whale_bases = whale_bases
        self.arrivals: list[float] = []  # per event, in delivery order
        self.cum_market: list[float] = []  # USD delivered so far, after each event
        self.btc_arrivals: list[float] = []
        self.cum_btc: list[float] = []
        self.whales: dict[str, float] = {}  # base -> arrival of its whale
        self.max_lag = 0.0

    async def run(self) -> None:
        rng = self.maker.rng
        total = int(self.rate * self.seconds)
        market = btc = 0.0
        sent = 0
        start = time.perf_counter()
        next_whale = 0.5
        while sent < total:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            due = min(total, int((now - start) * self.rate))
            at = now_ms()
            while sent < due:
                arrival = start + sent / self.rate
                self.max_lag = max(self.max_lag, now - arrival)
                size = min(1 + int(rng.random() * 3), due - sent)
                frame = [self.maker.sized(at, FEED_MU, FEED_SIGMA, 0.8) for _ in range(size)]
                if arrival - start >= next_whale and self.whale_bases:
                    base = self.whale_bases.pop()
                    frame[0] = self.maker.event(at, rng.uniform(2e6, 5e6), base, 0.9)
                    self.whales[base] = arrival
                    next_whale += 1.0
                for event in frame:
                    market += event.usd
                    self.arrivals.append(arrival)
                    self.cum_market.append(market)
                    if event.base == "BTC":
                        btc += event.usd
                        self.btc_arrivals.append(arrival)
                        self.cum_btc.append(btc)
                self.core.on_liquidations(frame)
                sent += size


@dataclass(slots=True)
class PassLog:
    """What the engine did, through two hooks: each pass's start and end, and each commit that
    recorded alerts (with the highest outbox id it made)."""

    passes: list[tuple[float, float]] = field(default_factory=list)
    commits: list[tuple[int, float]] = field(default_factory=list)

    def hook(self, engine: AlertEngine, db: Database) -> None:
        evaluate, enqueued = engine.evaluate, engine.on_enqueued

        async def timed_evaluate(now: int) -> int:
            started = time.perf_counter()
            try:
                return await evaluate(now)
            finally:
                self.passes.append((started, time.perf_counter()))

        def on_enqueued(platforms: set[str]) -> None:
            self.commits.append((last_outbox_id(db), time.perf_counter()))
            enqueued(platforms)

        engine.evaluate = timed_evaluate  # type: ignore[method-assign]
        engine.on_enqueued = on_enqueued

    def commit_times(self, outbox_ids: Sequence[int]) -> list[float]:
        """When each row (ids ascending) was committed."""
        last_ids = [last for last, _ in self.commits]
        return [self.commits[bisect_left(last_ids, row)][1] for row in outbox_ids]

    def previous_pass_start(self, committed: float) -> float:
        """The start of the pass before the one that committed at `committed`: the event that
        made a rule cross in that pass arrived after it (or the pass before would have seen it)."""
        index = bisect_left([end for _, end in self.passes], committed)
        return self.passes[max(0, index - 1)][0]


def paced_sender(per_second: float) -> Send:
    """A platform that takes `per_second` messages a second overall, as Telegram's limit and
    PTB's rate limiter pace them."""
    next_slot = 0.0

    async def send(row: OutboxRow, progress: Progress) -> None:
        nonlocal next_slot
        now = time.monotonic()
        next_slot = max(next_slot, now) + 1 / per_second
        await asyncio.sleep(next_slot - now)

    return send


async def run_loop(core: Core, feed: Feed) -> None:
    """The engine, the recorder and the outbox workers as `liqbot run` starts them, with the
    feed; after the feed ends, long enough for the last pass."""
    supervisor = Supervisor()
    for name, factory in core.tasks():
        supervisor.add(name, factory)
    supervisor.start()
    try:
        await feed.run()
        await asyncio.sleep(MIN_PASS_INTERVAL * 4)
    finally:
        await supervisor.stop()


def add_probes(
    core: Core, rate: float, seconds: float, count: int, market: Market, now: int
) -> dict[str, Probe]:
    """Window probes (24 h, whole market and BTC) with thresholds spread over what the feed will
    add, and whale probes (whale >= $1M, everything else off)."""
    mean_usd = math.exp(FEED_MU + FEED_SIGMA**2 / 2)
    fed = rate * seconds * mean_usd
    counts = {"market": count, "BTC": count // 2, "whale": count // 10}
    steps = {"market": fed * 0.9 / counts["market"], "BTC": fed * market.share("BTC") * 0.9}
    steps["BTC"] /= counts["BTC"]
    start = {
        "market": core.market.totals("24h").total_usd,
        "BTC": core.market.totals("24h", frozenset({"BTC"})).total_usd,
    }
    probes: dict[str, Probe] = {}
    with core.db.atomic():
        for kind, number in ((kind, n) for kind, total in counts.items() for n in range(total)):
            chat = f"probe-{kind}-{number}"
            offset = (number + 0.5) * steps.get(kind, 0.0)
            liq = start[kind] + offset if kind != "whale" else 0.0
            window, whale = ("1h", 1e6) if kind == "whale" else ("24h", 0.0)
            thresholds = Thresholds(window, liq, 0.0, 0.0, 0.0, whale, 0.0, 60.0)
            watch = frozenset({"BTC"}) if kind == "BTC" else frozenset()
            sub = Subscription("telegram", chat, thresholds, watch)
            alerts.save_subscription(core.db, sub, now)
            probes[chat] = Probe(kind, offset)
    core.engine.reload_subscriptions()
    return probes


def phase_latency(args: argparse.Namespace, tmp: str) -> None:
    now = now_ms()
    channels = {platform: Channel(paced_sender(30), 16) for platform in ("telegram", "discord")}
    world = build_world(Path(tmp, "latency.db"), args.latency_chats, args, now, channels)
    core, engine, db = world.core, world.core.engine, world.db
    engine.on_market_data()  # the steady state: what is already over its threshold is disarmed
    run_pass(engine, now_ms())
    with db.atomic():
        db.execute("UPDATE outbox SET status = ?", [SENT])
    start_total = core.market.totals("24h").total_usd
    probes = add_probes(core, args.rate, args.seconds, args.probes, world.market, now)
    whale_bases = list(world.market.bases[len(COMMON) :])
    world.maker.rng.shuffle(whale_bases)
    feed = Feed(core, world.maker, args.rate, args.seconds, whale_bases)
    log = PassLog()
    log.hook(engine, db)
    first_row = last_outbox_id(db)
    with GcWatch() as watch:
        asyncio.run(run_loop(core, feed))

    grown = core.market.totals("24h").total_usd - start_total
    if abs(grown - feed.cum_market[-1]) > 1e-6 * grown:
        raise SystemExit(f"bench bug: the 24 h total grew {grown:,.0f}, not as fed")
    rows = db.execute(
        "SELECT id, chat_id, asset FROM outbox WHERE id > ? ORDER BY id", [first_row]
    ).fetchall()
    commits = log.commit_times([row[0] for row in rows])
    latencies: dict[str, list[float]] = {"market": [], "BTC": [], "whale": []}
    bounds: list[float] = []
    for (_, chat_id, asset), committed in zip(rows, commits, strict=True):
        bounds.append(committed - log.previous_pass_start(committed))
        probe = probes.get(chat_id)
        if probe is None:
            continue
        if probe.kind == "whale":
            arrival = min(feed.whales[base] for base in asset.split(","))
        elif probe.kind == "market":
            arrival = feed.arrivals[bisect_left(feed.cum_market, probe.offset)]
        else:
            arrival = feed.btc_arrivals[bisect_left(feed.cum_btc, probe.offset)]
        latencies[probe.kind].append(committed - arrival)
    delivered = db.execute(
        "SELECT count(*) FROM outbox WHERE id > ? AND status = ?", [first_row, SENT]
    ).fetchone()[0]
    db.close()

    print(
        f"latency: {args.latency_chats:,} chats + {len(probes)} probes;"
        f" {len(feed.arrivals):,} liquidations at {args.rate:,.0f}/s for {args.seconds:g} s"
        f" in frames of 1-3 (${feed.cum_market[-1] / 1e6:,.0f}M, {len(feed.whales)} whales of"
        f" $2-5M); engine loop, recorder and two outbox workers (30 msg/s each) running"
    )
    pass_seconds = [end - start for start, end in log.passes]
    print(
        f"  {len(log.passes)} passes, ms median/p99/max {ms_row(pass_seconds).strip()};"
        f" {len(rows):,} outbox rows ({delivered:,} delivered); frames up to"
        f" {feed.max_lag * 1000:.0f} ms late; {watch.count} full gc"
        f" ({watch.seconds * 1000:.0f} ms)"
    )
    print(
        f"  {'arrival to commit':<28} {'rows':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  target"
    )
    probed = [value for values in latencies.values() for value in values]
    lines = [
        ("window probes, whole market", latencies["market"], False),
        ("window probes, BTC", latencies["BTC"], False),
        ("whale probes", latencies["whale"], False),
        ("all probes", probed, True),
        ("all rows (upper bound)", bounds, False),
    ]
    for name, values, judged in lines:
        target = ""
        if judged and values:
            target = verdict(percentile(values, 0.99) * 1000, LATENCY_TARGET_MS)
        print(f"  {name:<28} {len(values):>6,} {ms_row(values)}  {target}".rstrip())
    missing = sum(1 for probe in probes.values() if probe.kind != "whale") - len(
        latencies["market"]
    )
    missing -= len(latencies["BTC"])
    if missing:
        print(f"  {missing} window probes never fired (the feed fell short of their thresholds)")


# --- command line ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--phase", choices=("pass", "latency", "all"), default="all")
    parser.add_argument("--chats", type=int, nargs="+", default=[100_000], help="pass phase")
    parser.add_argument("--passes", type=int, default=15, help="timed passes per case")
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--days", type=int, default=3, help="days of history (30-day norms)")
    parser.add_argument(
        "--cascade-usd", type=float, default=2e6, help="liquidations in the cascade (pass phase)"
    )
    parser.add_argument("--latency-chats", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=5_000.0, help="events/s, latency phase")
    parser.add_argument("--seconds", type=float, default=15.0, help="latency phase feed")
    parser.add_argument("--probes", type=int, default=200, help="window probes (latency phase)")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version},"
        f" {os.cpu_count()} cpus; cpu check {cpu_check():.1f} ms"
    )
    with tempfile.TemporaryDirectory(prefix="liqbot-bench-") as tmp:
        if args.phase in ("pass", "all"):
            for chats in args.chats:
                phase_pass(args, chats, tmp)
        if args.phase in ("latency", "all"):
            phase_latency(args, tmp)
    print(f"cpu check at the end {cpu_check():.1f} ms")


if __name__ == "__main__":
    main()
