"""Benchmarks for liqbot's performance targets: ingest throughput, peak RSS and window reads.

Run from the repository root with the project's virtualenv (see bench/README.md):

    .venv/bin/python bench/ingest.py                  # every phase, default sizes
    .venv/bin/python bench/ingest.py --phase ingest --events 2000000 --runs 5

Everything runs offline: frames are generated in wire format, the database is a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import json
import math
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from machine import cpu_check  # bench/ is on sys.path when a script here runs
from sqlite_utils import Database

from bot.clock import now_ms
from bot.core import Core, load_start
from bot.market import HISTORY_MINUTES, MS_PER_MINUTE, WINDOWS, MarketState, RollupRow
from bot.model import Liquidation, SourceHealth
from bot.recorder import MAX_BATCH
from bot.venues import binance, bitget, bybit, deribit, gate, okx
from bot.venues.common import Instrument, base_asset
from bot.writer import Writer
from storage import market_data, open_database

INGEST_TARGET = 150_000  # events/s on one core
RSS_TARGET_MB = 150.0
WINDOW_TARGET_MS = 5.0

VENUES = (binance.NAME, bybit.NAME, okx.NAME, gate.NAME, bitget.NAME, deribit.NAME)
# Share of frames per venue (Hyperliquid has no liquidation stream): Bybit's feed is complete,
# Binance and OKX throttle; Gate, Bitget and Deribit are smaller venues.
VENUE_WEIGHTS = (0.25, 0.3, 0.2, 0.1, 0.08, 0.07)
POSITIONS = ("long", "short")
_MAJORS = ("BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA", "SUI", "LINK", "AVAX")
_SMALL_PRICED = ("PEPE", "SHIB", "BONK", "FLOKI", "SATS", "RATS", "CAT", "LUNC")

decode = orjson.loads  # as bot/feeds.py decodes a frame
YIELD_EVERY = 256  # frames between two yields to the event loop
Parse = Callable[[Any, int], list[Liquidation] | None]
Frame = tuple[int, int, str]  # venue index, receive time (ms), text as received


# --- the simulated market ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Coin:
    base: str  # as the venues spell it: "1000PEPE" for a coin quoted per 1,000 units
    price: float
    ct_val: float  # OKX contract value (coin per contract)


def make_coins(count: int, rng: random.Random) -> list[Coin]:
    """`count` coins with distinct (normalised) names, most liquid first."""
    names: list[str] = list(_MAJORS) + ["1000" + name for name in _SMALL_PRICED]
    seen = {base_asset(name + "USDT") for name in names}
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    while len(names) < count:
        name = "".join(rng.choices(letters, k=rng.randint(3, 6)))
        normalised = base_asset(name + "USDT")
        if normalised not in seen and not name.endswith(("USD", "PERP", "USDT", "USDC")):
            seen.add(normalised)
            names.append(name)
    coins = []
    for name in names[:count]:
        price = 10 ** rng.uniform(-4, 5) if name not in ("BTC", "ETH") else 90_000.0
        ct_val = rng.choice((0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0))
        coins.append(Coin(name, price, ct_val))
    return coins


@dataclass(frozen=True, slots=True)
class Markets:
    """What the parsers need to value frames: OKX contracts, Gate multipliers, Bitget's pairs."""

    okx: dict[str, okx.Contract]
    gate: dict[str, gate.Contract]
    bitget: dict[str, Instrument]


def markets(coins: Sequence[Coin]) -> Markets:
    """OKX: linear USDT swaps for every coin, plus inverse USD swaps for the ten majors; Gate and
    Bitget: a USDT perpetual for every coin (Gate's multiplier is the coin's ct_val)."""
    contracts = {f"{c.base}-USDT-SWAP": okx.Contract(c.ct_val, inverse=False) for c in coins}
    for coin in coins[: len(_MAJORS)]:
        contracts[f"{coin.base}-USD-SWAP"] = okx.Contract(100.0, inverse=True)
    return Markets(
        contracts,
        {f"{c.base}_USDT": gate.Contract(c.ct_val) for c in coins},
        {f"{c.base}USDT": Instrument(f"{c.base}USDT", base_asset(c.base), "USDT") for c in coins},
    )


def _num(value: float) -> str:
    return f"{value:.6g}"


class FrameMaker:
    """Wire-format liquidation frames of all three venues, stamped on a simulated clock that
    starts at `start_ms` and advances `1000 / rate` ms per event, like a live feed would.

    Text is built with f-strings in the venues' compact form (json.dumps would make the
    generation several times slower); `ingest` fails loudly if any frame does not parse."""

    def __init__(self, coins: Sequence[Coin], rate: float, start_ms: int, seed: int) -> None:
        self.coins = coins
        self.rate = rate
        self.start_ms = start_ms
        self.rng = random.Random(seed)
        # Zipf-like activity: BTC and ETH dominate, the long tail still sees a few events.
        self._cum_weights = list(
            itertools.accumulate(1.0 / rank for rank in range(1, 1 + len(coins)))
        )

    def frames(self, events: int) -> Iterator[tuple[Frame, int]]:
        """Frames carrying at least `events` events in all; each with its event count."""
        random_ = self.rng.random
        shares = list(itertools.accumulate(VENUE_WEIGHTS))
        binance_share, bybit_share, okx_share, gate_share, bitget_share = shares[:5]
        emitted = 0
        while emitted < events:
            # Draw coins in blocks: one `choices` call is much cheaper than many.
            for coin in self._draw(4096):
                if emitted >= events:
                    break
                recv_ts = self.start_ms + int(emitted * 1000 / self.rate)
                draw = random_()
                if draw < binance_share:
                    venue, count, text = 0, 1, self._binance(coin, recv_ts)
                else:
                    count = 1 + int(random_() * 3)
                    if draw < bybit_share:
                        venue, text = 1, self._bybit(coin, recv_ts, count)
                    elif draw < okx_share:
                        venue, text = 2, self._okx(coin, recv_ts, count)
                    elif draw < gate_share:
                        venue, text = 3, self._gate(coin, recv_ts, count)
                    elif draw < bitget_share:
                        venue, text = 4, self._bitget(coin, recv_ts, count)
                    else:
                        venue, text = 5, self._deribit(coin, recv_ts, count)
                emitted += count
                yield (venue, recv_ts, text), count

    def _gate(self, coin: Coin, recv_ts: int, count: int) -> str:
        return _gate_frame(self, coin, recv_ts, count)

    def _bitget(self, coin: Coin, recv_ts: int, count: int) -> str:
        return _bitget_frame(self, coin, recv_ts, count)

    def _deribit(self, coin: Coin, recv_ts: int, count: int) -> str:
        return _deribit_frame(self, coin, recv_ts, count)

    def _draw(self, count: int) -> list[Coin]:
        return self.rng.choices(self.coins, cum_weights=self._cum_weights, k=count)

    def _size(self, coin: Coin) -> tuple[float, float]:
        """Price and coin quantity of one liquidation: notional log-normal around $3,000."""
        random_ = self.rng.random
        price = coin.price * (0.98 + 0.04 * random_())
        return price, math.exp(self.rng.gauss(8.0, 1.5)) / price

    def _binance(self, coin: Coin, recv_ts: int) -> str:
        price, qty = self._size(coin)
        q = _num(qty)
        side = "SELL" if self.rng.random() < 0.5 else "BUY"
        ts = recv_ts - 2 - int(self.rng.random() * 40)
        return (
            f'{{"e":"forceOrder","E":{recv_ts - 1},"o":{{"s":"{coin.base}USDT","S":"{side}",'
            f'"o":"LIMIT","f":"IOC","q":"{q}","p":"{_num(price * 0.995)}","ap":"{_num(price)}",'
            f'"X":"FILLED","l":"{q}","z":"{q}","T":{ts}}}}}'
        )

    def _bybit(self, coin: Coin, recv_ts: int, count: int) -> str:
        random_ = self.rng.random
        symbol = coin.base + "USDT"
        items = []
        for _ in range(count):
            price, qty = self._size(coin)
            side = "Buy" if random_() < 0.5 else "Sell"
            ts = recv_ts - 5 - int(random_() * 495)
            items.append(
                f'{{"T":{ts},"s":"{symbol}","S":"{side}","v":"{_num(qty)}","p":"{_num(price)}"}}'
            )
        return (
            f'{{"topic":"{bybit.TOPIC_PREFIX}{symbol}","type":"snapshot","ts":{recv_ts - 2},'
            f'"data":[{",".join(items)}]}}'
        )

    def _okx(self, coin: Coin, recv_ts: int, count: int) -> str:
        """`count` details, spread over one to `count` instruments."""
        random_ = self.rng.random
        entries = []
        while count:
            inverse = coin.base in _MAJORS and random_() < 0.2
            family = f"{coin.base}-{'USD' if inverse else 'USDT'}"
            details = []
            for _ in range(1 + int(random_() * count)):
                price, qty = self._size(coin)
                size = max(qty * price / 100.0 if inverse else qty / coin.ct_val, 1.0)
                side = "sell" if random_() < 0.5 else "buy"
                pos_side = "net" if random_() < 0.5 else ("long" if side == "sell" else "short")
                ts = recv_ts - 5 - int(random_() * 995)
                details.append(
                    f'{{"side":"{side}","posSide":"{pos_side}","sz":"{_num(size)}",'
                    f'"bkPx":"{_num(price)}","bkLoss":"0","ccy":"","ts":"{ts}"}}'
                )
            count -= len(details)
            entries.append(
                f'{{"instId":"{family}-SWAP","instType":"SWAP","instFamily":"{family}",'
                f'"uly":"{family}","details":[{",".join(details)}]}}'
            )
            coin = self._draw(1)[0]
        return (
            '{"arg":{"channel":"liquidation-orders","instType":"SWAP"},'
            f'"data":[{",".join(entries)}]}}'
        )


def _gate_frame(maker: FrameMaker, coin: Coin, recv_ts: int, count: int) -> str:
    """One contract's liquidation orders of the period: signed sizes in contracts."""
    orders = []
    for _ in range(count):
        price, qty = maker._size(coin)
        size = max(round(qty / coin.ct_val), 1) * (-1 if maker.rng.random() < 0.5 else 1)
        ts = recv_ts - 5 - int(maker.rng.random() * 995)
        orders.append(
            f'{{"price":"{_num(price)}","size":"{size}","time":{ts},"contract":"{coin.base}_USDT"}}'
        )
    return (
        f'{{"channel":"futures.public_liquidates","event":"update","time":{recv_ts // 1000},'
        f'"time_ms":{recv_ts - 2},"result":[{",".join(orders)}]}}'
    )


def _bitget_frame(maker: FrameMaker, coin: Coin, recv_ts: int, count: int) -> str:
    """The sampled push: `amount` is the USDT value, `side` the position side."""
    items = []
    for _ in range(count):
        price, qty = maker._size(coin)
        side = "buy" if maker.rng.random() < 0.5 else "sell"
        items.append(
            f'{{"symbol":"{coin.base}USDT","side":"{side}","price":"{_num(price)}",'
            f'"amount":"{_num(qty * price)}","ts":"{recv_ts - 3}"}}'
        )
    return (
        '{"action":"update","arg":{"instType":"usdt-futures","topic":"liquidation"},'
        f'"data":[{",".join(items)}],"ts":{recv_ts - 1}}}'
    )


def _deribit_frame(maker: FrameMaker, coin: Coin, recv_ts: int, count: int) -> str:
    """Flagged trades: inverse perpetuals (USD amounts) for the majors, linear USDC ones (coin
    amounts) for the rest."""
    inverse = coin.base in ("BTC", "ETH")
    name = f"{coin.base}-PERPETUAL" if inverse else f"{coin.base}_USDC-PERPETUAL"
    rows = []
    for _ in range(count):
        price, qty = maker._size(coin)
        amount = _num(qty * price if inverse else qty)
        direction = "sell" if maker.rng.random() < 0.5 else "buy"
        flag = "T" if maker.rng.random() < 0.5 else "M"
        rows.append(
            f'{{"trade_seq":1,"trade_id":"1","timestamp":{recv_ts - 4},"tick_direction":0,'
            f'"price":{_num(price)},"mark_price":{_num(price)},"index_price":{_num(price)},'
            f'"instrument_name":"{name}","direction":"{direction}","amount":{amount},'
            f'"liquidation":"{flag}"}}'
        )
    currency = coin.base if inverse else "USDC"
    return (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
        f'"trades.future.{currency}.100ms","data":[{",".join(rows)}]}}}}'
    )


def parsers(contracts: Markets) -> tuple[Parse, ...]:
    """The stream parsers exactly as `bot.sources` and `bot.adapters` bind them, indexed like
    VENUES."""

    def parse_okx(frame: Any, recv_ts: int) -> list[Liquidation] | None:
        return okx.parse_liquidations(frame, recv_ts, contracts.okx)

    def parse_gate(frame: Any, recv_ts: int) -> list[Liquidation] | None:
        return gate.parse_liquidations(frame, recv_ts, contracts.gate)

    def parse_bitget(frame: Any, recv_ts: int) -> list[Liquidation] | None:
        return bitget.parse_liquidations(frame, recv_ts, contracts.bitget)

    return (
        binance.parse_liquidations,
        bybit.parse_liquidations,
        parse_okx,
        parse_gate,
        parse_bitget,
        deribit.parse_liquidations,
    )


# --- ingest --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IngestResult:
    events: int
    seconds: float  # wall clock (perf_counter)
    cpu_seconds: float  # this process's CPU time: leaves out time other processes took
    flushes: int
    loop_cpu: float = 0.0  # CPU seconds of the event loop's thread (pipeline only)
    writer_cpu: float = 0.0  # CPU seconds of the writer's thread (pipeline only)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_rate(self) -> float:
        return self.events / self.cpu_seconds


@dataclass(slots=True)
class Bot:
    """What `liqbot run` builds at startup (not timed): the writer thread, the core, and the
    collectors' health."""

    core: Core
    health: list[SourceHealth]
    writer: Writer

    async def close(self) -> None:
        await self.writer.close()
        self.core.db.close()


async def start_bot(path: Path, now: int) -> Bot:
    """`App.open` without chat platforms: the writer thread opens the database, the loop its
    read connection; the writer's thread loads the windows, norms and funding. No
    subscriptions, so the alert engine collects no whales."""
    writer = await Writer.start(partial(open_database, path))
    health = [SourceHealth(venue, connected=True) for venue in VENUES]
    start = await load_start(writer, now)
    core = Core(open_database(path), start, health=lambda: health, writer=writer)
    return Bot(core, health, writer)


async def ingest(
    frames: Iterator[Frame] | Sequence[Frame],
    contracts: Markets,
    app: Bot,
    flush_every: int,
) -> IngestResult:
    """Push frames through the real pipeline, as `Collector._handle_text`, the recorder task
    and the clock tick of `liqbot run` would: the frame decode, the venue parser,
    Core.on_liquidations (windows, the recorder's buffer, the alert engine's whale filter),
    and a flush every `flush_every` events or simulated second, handed to the writer thread
    while parsing goes on (one flush at a time, as the recorder does; a flush point reached
    while one is under way leaves the rows for the next). Alert-engine passes not included."""
    db, market, recorder = app.core.db, app.core.market, app.core.recorder
    on_events = app.core.on_liquidations
    health = app.health
    parse = parsers(contracts)
    loads = decode
    events = pending = flushes = 0
    next_second = 0
    flushing: asyncio.Task[None] | None = None
    writer_started = await app.writer.call(_thread_cpu)
    loop_started = time.thread_time()
    cpu_started = time.process_time()
    started = time.perf_counter()
    due = False
    for index, (venue, recv_ts, text) in enumerate(frames):
        if not index % YIELD_EVERY:  # as a collector's reads do: a finished flush reports back
            await asyncio.sleep(0)
        if recv_ts >= next_second:  # the 1 s clock tick, and the recorder's 1 s flush
            market.advance(recv_ts)
            next_second = (recv_ts // 1000 + 1) * 1000
            due = True
        if (due or pending >= flush_every) and (flushing is None or flushing.done()):
            if flushing is not None:
                flushing.result()  # raises what the flush raised
            flushing = asyncio.create_task(recorder.flush())
            flushes += 1
            due, pending = False, 0
            await asyncio.sleep(0)  # the flush takes its batch and hands it to the writer
        source = health[venue]
        source.messages += 1
        source.last_message_at = recv_ts
        batch = parse[venue](loads(text), recv_ts)
        if batch is None:
            source.parse_errors += 1
            continue
        if batch:
            on_events(batch)
            events += len(batch)
            pending += len(batch)
    if flushing is not None:
        await flushing
    await recorder.flush()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    loop_cpu = time.thread_time() - loop_started
    writer_cpu = await app.writer.call(_thread_cpu) - writer_started
    stored = db.execute("SELECT count(*) FROM events").fetchone()[0]
    errors = sum(source.parse_errors for source in health)
    if errors or stored != events:
        raise SystemExit(f"bench bug: {errors} parse errors, {stored} of {events} events stored")
    return IngestResult(events, seconds, cpu_seconds, flushes + 1, loop_cpu, writer_cpu)


def _thread_cpu(_db: Database) -> float:
    """The calling thread's CPU time (handed to the writer: its thread's)."""
    return time.thread_time()


_BASELINE_SCHEMA = (
    "CREATE TABLE events (ts INTEGER, recv_ts INTEGER, venue TEXT, symbol TEXT, base TEXT,"
    " position TEXT, price FLOAT, qty FLOAT, usd FLOAT)",
    "CREATE INDEX idx_events_ts ON events (ts)",
)
_BASELINE_INSERT = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_BINANCE_POSITION = {"SELL": "long", "BUY": "short"}
_BYBIT_POSITION = {"Buy": "long", "Sell": "short"}
_OKX_POSITION = {"sell": "long", "buy": "short"}
_BITGET_POSITION = {"buy": "long", "sell": "short"}
_DERIBIT_TAKER = {"sell": "long", "buy": "short"}
_DERIBIT_MAKER = {"buy": "long", "sell": "short"}


def ingest_baseline(
    frames: Sequence[Frame], contracts: Markets, db_path: Path, flush_every: int
) -> IngestResult:
    """The floor to compare with: json.loads, the same columns as plain tuples, executemany
    into an equivalent table (same PRAGMAs and index). No dataclasses, windows or rollups."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for statement in _BASELINE_SCHEMA:
        conn.execute(statement)
    loads = json.loads
    rows: list[tuple[int, int, str, str, str, str, float, float, float]] = []
    append = rows.append
    flushes = 0

    def flush() -> None:
        nonlocal rows, append, flushes
        conn.execute("BEGIN")
        conn.executemany(_BASELINE_INSERT, rows)
        conn.execute("COMMIT")
        rows = []
        append = rows.append
        flushes += 1

    cpu_started = time.process_time()
    started = time.perf_counter()
    for venue, recv_ts, text in frames:
        frame = loads(text)
        if venue == 0:
            o = frame["o"]
            symbol, qty, price = o["s"], float(o["z"]), float(o["ap"])
            append(
                (
                    o["T"],
                    recv_ts,
                    "binance",
                    symbol,
                    base_asset(symbol),
                    _BINANCE_POSITION[o["S"]],
                    price,
                    qty,
                    qty * price,
                )
            )
        elif venue == 1:
            for item in frame["data"]:
                symbol, qty, price = item["s"], float(item["v"]), float(item["p"])
                position = _BYBIT_POSITION[item["S"]]
                base = base_asset(symbol)
                append(
                    (item["T"], recv_ts, "bybit", symbol, base, position, price, qty, qty * price)
                )
        elif venue == 3:
            for item in frame["result"]:
                name = item["contract"]
                size, price = float(item["size"]), float(item["price"])
                qty = abs(size) * contracts.gate[name].multiplier
                position = "long" if size < 0 else "short"
                base = base_asset(name)
                append(
                    (item["time"], recv_ts, "gate", name, base, position, price, qty, qty * price)
                )
        elif venue == 4:
            for item in frame["data"]:
                symbol, usd, price = item["symbol"], float(item["amount"]), float(item["price"])
                position = _BITGET_POSITION[item["side"]]
                base = contracts.bitget[symbol].base
                append(
                    (
                        int(item["ts"]),
                        recv_ts,
                        "bitget",
                        symbol,
                        base,
                        position,
                        price,
                        usd / price,
                        usd,
                    )
                )
        elif venue == 5:
            for t in frame["params"]["data"]:
                name, amount, price = t["instrument_name"], float(t["amount"]), float(t["price"])
                usd, qty = (amount, amount / price) if "_" not in name else (amount * price, amount)
                sides = _DERIBIT_TAKER if t["liquidation"] == "T" else _DERIBIT_MAKER
                position = sides[t["direction"]]
                base = base_asset(name)
                append((t["timestamp"], recv_ts, "deribit", name, base, position, price, qty, usd))
        else:
            for item in frame["data"]:
                inst_id = item["instId"]
                contract = contracts.okx[inst_id]
                base = base_asset(inst_id)
                for d in item["details"]:
                    size, price = float(d["sz"]) * contract.ct_val, float(d["bkPx"])
                    usd, qty = (size, size / price) if contract.inverse else (size * price, size)
                    position = _OKX_POSITION[d["side"]]
                    append((int(d["ts"]), recv_ts, "okx", inst_id, base, position, price, qty, usd))
        if len(rows) >= flush_every:
            flush()
    flush()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    return IngestResult(stored, seconds, cpu_seconds, flushes)


async def ingest_run(
    frames: Sequence[Frame],
    contracts: dict[str, okx.Contract],
    path: Path,
    start_ms: int,
    flush_every: int,
) -> IngestResult:
    app = await start_bot(path, start_ms)
    try:
        return await ingest(frames, contracts, app, flush_every)
    finally:
        await app.close()


def phase_ingest(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    coins = make_coins(args.symbols, rng)
    contracts = markets(coins)
    start_ms = now_ms()
    generated = time.perf_counter()
    maker = FrameMaker(coins, args.feed_rate, start_ms, args.seed)
    frames: list[Frame] = []
    total = 0
    for frame, count in maker.frames(args.events):
        frames.append(frame)
        total += count
    generated = time.perf_counter() - generated
    by_venue = [0] * len(VENUES)
    for venue, _, _ in frames:
        by_venue[venue] += 1
    span = (frames[-1][1] - start_ms) / 1000
    print(
        f"ingest: {total:,} events in {len(frames):,} frames"
        f" ({', '.join(f'{name} {n:,}' for name, n in zip(VENUES, by_venue, strict=True))}),"
        f" {args.symbols:,} symbols, {span:.1f} s simulated at {args.feed_rate:,.0f} ev/s;"
        f" flush every {args.flush_every:,} events or simulated second;"
        f" generated in {generated:.1f} s"
    )
    pipeline: list[IngestResult] = []
    baseline: list[IngestResult] = []
    with tempfile.TemporaryDirectory(prefix="liqbot-bench-") as tmp:
        for run in range(args.runs):
            pipeline.append(
                asyncio.run(
                    ingest_run(
                        frames, contracts, Path(tmp, f"p{run}.db"), start_ms, args.flush_every
                    )
                )
            )
            if run < args.baseline_runs:
                path = Path(tmp, f"b{run}.db")
                baseline.append(ingest_baseline(frames, contracts, path, args.flush_every))
    verdict = "ok" if _median(pipeline, "rate") >= INGEST_TARGET else "MISS"
    print(
        f"  {'loop':<9} {'runs':>4} {'median ev/s':>12} {'min':>8} {'max':>8}"
        f" {'ev/cpu-s':>9} {'s/run':>6}  target"
    )
    for name, results, target in (
        ("pipeline", pipeline, f">= {INGEST_TARGET:,} {verdict}"),
        ("baseline", baseline, ""),
    ):
        if not results:
            continue
        rates = [r.rate for r in results]
        print(
            f"  {name:<9} {len(results):>4} {_median(results, 'rate'):>12,.0f} {min(rates):>8,.0f}"
            f" {max(rates):>8,.0f} {_median(results, 'cpu_rate'):>9,.0f}"
            f" {_median(results, 'seconds'):>6.2f}  {target}".rstrip()
        )
    ratio = (
        f"; pipeline/baseline {_median(pipeline, 'rate') / _median(baseline, 'rate'):.2f}"
        if baseline
        else ""
    )
    print(
        f"  pipeline runs: {', '.join(f'{r.rate:,.0f}' for r in pipeline)} ev/s;"
        f" {pipeline[0].flushes} flushes/run{ratio}"
    )
    loop_us = statistics.median(r.loop_cpu / r.events * 1e6 for r in pipeline)
    writer_us = statistics.median(r.writer_cpu / r.events * 1e6 for r in pipeline)
    baseline_us = (
        f", baseline {statistics.median(r.cpu_seconds / r.events * 1e6 for r in baseline):.2f}"
        if baseline
        else ""
    )
    print(
        f"  CPU per event (median): loop thread {loop_us:.2f} us, writer thread"
        f" {writer_us:.2f} us{baseline_us}"
    )


def _median(results: Sequence[IngestResult], figure: str) -> float:
    return float(statistics.median(getattr(r, figure) for r in results))


# --- peak RSS -------------------------------------------------------------------------------


def _peak_rss_mb() -> tuple[float, float | None]:
    """Peak RSS in MB: ru_maxrss, and the kernel's VmHWM where there is one (Linux).

    They differ in a child process: Linux carries the parent's peak over into the child's
    ru_maxrss across fork and exec, while VmHWM counts only this process's own memory."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return maxrss, None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return maxrss, int(line.split()[1]) / 1024
    return maxrss, None


def _rss_mb() -> float:
    maxrss, hwm = _peak_rss_mb()
    return maxrss if hwm is None else hwm


def phase_rss(args: argparse.Namespace) -> None:
    """In this (fresh) process: the modules `liqbot run` loads, a day of rollups loaded at
    startup, then `--events` events streamed through the pipeline (never held in a list)."""
    importlib.import_module("bot.main")  # all that `liqbot run` loads: aiohttp, telegram...

    after_imports = _rss_mb()
    rng = random.Random(args.seed)
    coins = make_coins(args.symbols, rng)
    contracts = markets(coins)
    start_ms = now_ms()
    maker = FrameMaker(coins, args.feed_rate, start_ms, args.seed)
    with tempfile.TemporaryDirectory(prefix="liqbot-bench-") as tmp:
        path = Path(tmp, "rss.db")
        db = open_database(path)
        minute = start_ms // MS_PER_MINUTE
        write_rollups(db, rollup_rows(coins, minute, HISTORY_MINUTES, args.keys_per_minute, rng))
        db.close()

        async def run() -> tuple[float, IngestResult]:
            app = await start_bot(path, start_ms)
            try:
                after_startup = _rss_mb()
                frames = (frame for frame, _ in maker.frames(args.rss_events))
                return after_startup, await ingest(frames, contracts, app, args.flush_every)
            finally:
                await app.close()

        after_startup, result = asyncio.run(run())
    maxrss, hwm = _peak_rss_mb()
    peak = _rss_mb()
    verdict = "ok" if peak <= RSS_TARGET_MB else "MISS"
    print(
        f"rss (fresh process, peak RSS): after imports {after_imports:.0f} MB,"
        f" after loading a day of rollups for {args.symbols:,} symbols {after_startup:.0f} MB,"
        f" after ingesting {result.events:,} events {peak:.0f} MB"
        f" (target <= {RSS_TARGET_MB:.0f} MB) {verdict}"
        f"  [ru_maxrss {maxrss:.0f} MB, VmHWM {'n/a' if hwm is None else f'{hwm:.0f} MB'}]"
    )


def spawn_rss(args: argparse.Namespace) -> None:
    command = [sys.executable, str(Path(__file__).resolve()), "--phase", "rss", "--no-header"]
    for option in ("rss_events", "symbols", "seed", "feed_rate", "flush_every"):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    command += ["--keys-per-minute", "{}-{}".format(*args.keys_per_minute)]
    subprocess.run(command, check=True)


# --- window reads ---------------------------------------------------------------------------


def rollup_rows(
    coins: Sequence[Coin], last_minute: int, minutes: int, keys: tuple[int, int], rng: random.Random
) -> Iterator[RollupRow]:
    """Per-minute rollups ending at `last_minute`: each minute a random `keys` subset of the
    (venue, base, position) keys saw liquidations."""
    all_keys = [
        (venue, base_asset(coin.base + "USDT"), position)
        for coin in coins
        for venue in VENUES
        for position in POSITIONS
    ]
    low, high = keys
    for minute in range(last_minute - minutes + 1, last_minute + 1):
        for venue, base, position in rng.sample(all_keys, rng.randint(low, high)):
            yield minute, venue, base, position, rng.expovariate(1 / 20_000), rng.randint(1, 30)


_INSERT_ROLLUPS = "INSERT INTO rollups (minute, venue, base, position, usd, count) VALUES "


def write_rollups(db: Database, rows: Iterator[RollupRow]) -> None:
    """Bulk SQL insert in one transaction, 100 rows per statement (twice executemany's speed)."""
    with db.atomic():
        values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * 100)
        while chunk := list(itertools.islice(rows, 100)):
            if len(chunk) < 100:
                values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
            db.conn.execute(_INSERT_ROLLUPS + values, list(itertools.chain.from_iterable(chunk)))


def phase_window(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    coins = make_coins(args.window_symbols, rng)
    now = now_ms()
    minute = now // MS_PER_MINUTE
    minutes = args.days * 1440
    with tempfile.TemporaryDirectory(prefix="liqbot-bench-") as tmp:
        db = open_database(Path(tmp, "window.db"))
        started = time.perf_counter()
        write_rollups(db, rollup_rows(coins, minute, minutes, args.keys_per_minute, rng))
        built = time.perf_counter() - started
        stored = db.execute("SELECT count(*) FROM rollups").fetchone()[0]
        print(
            f"window: {stored:,} rollup rows ({args.days} days x {args.window_symbols:,} symbols,"
            f" {args.keys_per_minute[0]}-{args.keys_per_minute[1]} keys a minute),"
            f" written in {built:.1f} s"
        )
        reads: list[float] = []
        loads: list[float] = []
        market = MarketState(now)
        for _ in range(args.startups):
            started = time.perf_counter()
            rows = market_data.read_rollups(db, minute - HISTORY_MINUTES)
            read_done = time.perf_counter()
            market = MarketState(now)
            market.load_rollups(rows)
            loaded = time.perf_counter()
            reads.append(read_done - started)
            loads.append(loaded - read_done)
        db.close()
    totals = [r + lo for r, lo in zip(reads, loads, strict=True)]
    print(
        f"  startup ({len(rows):,} rows in 24 h, {args.startups} runs): median"
        f" {statistics.median(totals) * 1000:.0f} ms (read_rollups"
        f" {statistics.median(reads) * 1000:.0f} + load_rollups"
        f" {statistics.median(loads) * 1000:.0f}), min {min(totals) * 1000:.0f},"
        f" max {max(totals) * 1000:.0f} ms"
    )
    print(
        f"  {'window':<7} {'keys':>5} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}"
        f" {'p99 cpu-ms':>10}  target"
    )
    for window in WINDOWS:
        keys = len(market.totals(window).by_base)
        times: list[float] = []
        cpu_times: list[float] = []
        for _ in range(args.reads):
            cpu_started = time.process_time()
            started = time.perf_counter()
            market.totals(window)
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
        p99 = _p99(times)
        target = ""
        if window == "24h":
            ok = p99 * 1000 <= WINDOW_TARGET_MS
            target = f"<= {WINDOW_TARGET_MS:g} ms {'ok' if ok else 'MISS'}"
        print(
            f"  {window:<7} {keys:>5} {statistics.median(times) * 1000:>10.3f}"
            f" {p99 * 1000:>8.3f} {max(times) * 1000:>8.3f} {_p99(cpu_times) * 1000:>10.3f}"
            f"  {target}".rstrip()
        )


def _p99(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


# --- command line ---------------------------------------------------------------------------


def _key_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--phase", choices=("ingest", "rss", "window", "all"), default="all")
    parser.add_argument("--events", type=int, default=1_000_000, help="events per ingest run")
    parser.add_argument("--runs", type=int, default=3, help="ingest runs of the pipeline")
    parser.add_argument("--baseline-runs", type=int, default=2, help="runs of the baseline loop")
    parser.add_argument(
        "--rss-events", type=int, default=300_000, help="events ingested by the rss phase"
    )
    parser.add_argument("--symbols", type=int, default=1_000, help="symbols in the ingest feed")
    parser.add_argument(
        "--feed-rate",
        type=float,
        default=float(INGEST_TARGET),
        help="simulated feed rate, events per second of event time",
    )
    parser.add_argument(
        "--flush-every", type=int, default=MAX_BATCH, help="early flush after this many events"
    )
    parser.add_argument("--days", type=int, default=30, help="days of rollups (window phase)")
    parser.add_argument("--window-symbols", type=int, default=500)
    parser.add_argument("--keys-per-minute", type=_key_range, default=(20, 60), help="e.g. 20-60")
    parser.add_argument("--startups", type=int, default=5, help="MarketState rebuilds to time")
    parser.add_argument("--reads", type=int, default=1_000, help="totals() reads per window")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-header", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.no_header:
        print(
            f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version},"
            f" {os.cpu_count()} cpus; cpu check {cpu_check():.1f} ms"
        )
    if args.phase == "rss":
        phase_rss(args)
    elif args.phase == "all":  # first, while this process is still small
        sys.stdout.flush()
        spawn_rss(args)
    if args.phase in ("ingest", "all"):
        phase_ingest(args)
        print(f"  cpu check after ingest {cpu_check():.1f} ms")
    if args.phase in ("window", "all"):
        phase_window(args)


if __name__ == "__main__":
    main()
