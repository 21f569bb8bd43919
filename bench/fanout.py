"""Fan-out benchmark: one alert to N subscribed Telegram chats, delivered within Telegram's limits.

Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/fanout.py                  # 10,000 chats, about 6 minutes
    .venv/bin/python bench/fanout.py --chats 2000     # about 70 s
    .venv/bin/python bench/fanout.py --chats 2000 --groups 50 --concurrency 32
    .venv/bin/python bench/fanout.py --paid           # paid broadcast: 10,000 chats, ~11 s
    .venv/bin/python bench/fanout.py --discord 1000   # Discord: 1,000 channels, ~23 s

It builds a WAL SQLite database (as `liqbot run` opens it) with one subscription per chat,
records one alert per chat in the outbox in one transaction (as the alert engine does), then
wakes the real OutboxWorker, which delivers through the real TelegramBot.send (its Pacer and
python-telegram-bot) to the fake Bot API from tests/fakes, on 127.0.0.1 in the same event loop.
The fake answers 429 as Telegram does when a send would exceed 30 messages in any rolling
second, 1 a second in a chat or 20 a minute in a group. With --paid, alerts carry
allow_paid_broadcast and the fake holds them to 1,000 a second instead of 30.

Time to first / last / mean: from waking the worker to each chat's alert being accepted by the
fake. Groups (with --groups) are subscribed with a size, so they go first (delivery order).

With --discord N, the same alert goes to N Discord channels through the real DiscordBot.send
(discord.py's HTTP client) to the fake Discord API, which answers 429 as Discord does past 50
requests a second per bot or 5 messages per 5 s in a channel.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import math
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from sqlite_utils import Database

from bot.alert import plain
from bot.clock import now_ms
from bot.commands import CommandCore
from bot.core import Core, read_start
from bot.delivery_order import delivery_priority
from bot.main import DISCORD_CONCURRENCY, TELEGRAM_CONCURRENCY
from bot.model import FAILED, SENT, OutboxItem, OutboxRow, Subscription, Thresholds
from bot.outbox import Channel, OutboxWorker, Progress
from bot.ratelimit import Pacer
from bot.writer import Writer
from handlers import discord as discord_adapter
from handlers.discord import DiscordBot
from handlers.telegram import PACER_LIMITS, PACER_SPACING, PLATFORM, TelegramBot, paid_limit
from storage import alerts, open_database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ is not installed
from tests.fakes.discord import FakeDiscord
from tests.fakes.telegram import FakeTelegram

EVER = 2**62  # ms: a time at which every pending row is due
RATE_TARGET = 28.0  # messages/s sustained: 93% of Telegram's 30/s
PAID_RATE = 1000  # paid_broadcast_rate, the default
PAID_TARGET_S = 15.0  # paid broadcast: 10,000 chats within this
DISCORD_CAP = 50  # requests a second per bot
TELEGRAM_CAP = 30  # messages in any rolling second, as the fake counts them
PRIVATE_BASE = 100_000_000  # private chat ids are user ids: positive
GROUP_BASE = -1_001_000_000_000  # supergroup ids: -100...
ASSETS = "BTC,ETH,SOL"
ALERT_TEXT = (
    "$352M liquidated in 1h, 87% longs\n"
    "Top assets: BTC $201M, ETH $88.4M, SOL $31.2M\n"
    "Venues: Bybit $150M, Binance $140M, OKX $62M\n"
    "4.1x the 30-day hourly average ($85.9M)\n"
    "Funding per 8h: BTC +0.0100%, ETH +0.0125%, SOL -0.0310%\n"
    "Open interest: BTC $31.2B, ETH $14.8B, SOL $3.1B"
)
POLL = 0.05  # seconds between checks for undelivered rows
PROGRESS_EVERY = 15.0  # seconds between progress lines on stderr


@dataclass(frozen=True, slots=True)
class Arrival:
    """A sendMessage call as the fake answered it, on this process's monotonic clock."""

    time: float
    chat_id: str
    status: int


@dataclass
class Probe:
    """What the bench records while the worker delivers."""

    released: dict[str, float] = field(default_factory=dict)  # chat -> first pacer release
    arrivals: list[Arrival] = field(default_factory=list)
    delivered: list[float] = field(default_factory=list)  # when TelegramBot.send returned

    def middleware(self) -> Middleware:
        """Stamps each sendMessage when the fake has answered it (its limits checked)."""

        @web.middleware
        async def stamp(request: web.Request, handler: Handler) -> web.StreamResponse:
            response = await handler(request)
            if request.match_info.get("method") == "sendMessage":
                form = await request.post()  # cached: the fake has read the body already
                chat_id = str(form.get("chat_id", ""))
                self.arrivals.append(Arrival(time.monotonic(), chat_id, response.status))
            return response

        return stamp


class RemoteFake:
    """The fake Bot API in a child process (--fake-process), as Telegram is on other machines:
    the bot's process then spends its CPU on the bot alone. Arrivals are stamped there, on the
    same system-wide monotonic clock, and fetched with the refusals when delivery is over."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve_fake, args=(child,), daemon=True)
        self.token, self.base_url, self.rejected_429 = "", "", 0

    async def start(self) -> None:
        self._process.start()
        loop = asyncio.get_running_loop()
        self.token, self.base_url = await loop.run_in_executor(None, self._conn.recv)

    async def finish(self, probe: Probe) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.base_url}/_bench/stats") as response:
                stats = await response.json()
            async with session.post(f"{self.base_url}/_bench/stop"):
                pass
        probe.arrivals.extend(Arrival(t, chat, status) for t, chat, status in stats["arrivals"])
        self.rejected_429 = int(stats["rejected_429"])
        await asyncio.get_running_loop().run_in_executor(None, self._process.join, 10)


def serve_fake(conn: Connection) -> None:
    """The child process of RemoteFake: the fake with the probe, until asked to stop."""
    asyncio.run(_serve_fake(conn))


async def _serve_fake(conn: Connection) -> None:
    probe, fake, done = Probe(), FakeTelegram(), asyncio.Event()
    fake.app.middlewares.append(probe.middleware())

    async def stats(request: web.Request) -> web.Response:
        arrivals = [[a.time, a.chat_id, a.status] for a in probe.arrivals]
        return web.json_response({"arrivals": arrivals, "rejected_429": fake.rejected_429})

    async def stop(request: web.Request) -> web.Response:
        done.set()
        return web.json_response({})

    fake.app.router.add_get("/_bench/stats", stats)
    fake.app.router.add_post("/_bench/stop", stop)
    await fake.start()
    conn.send((fake.token, fake.base_url))
    await done.wait()
    await fake.stop()


class RecordingPacer(Pacer):
    """The adapter's own Pacer, unchanged, noting when each chat's first message is let through
    (the request leaves python-telegram-bot right after)."""

    def __init__(self, pacer: Pacer, probe: Probe) -> None:
        self.pacer = pacer  # the windows stay in the adapter's pacer: nothing is re-created
        self.probe = probe

    async def wait(self, chat_id: str, is_group: bool = False, paid: bool = False) -> None:
        await self.pacer.wait(chat_id, is_group, paid)
        self.probe.released.setdefault(chat_id, time.monotonic())


@dataclass(frozen=True, slots=True)
class Result:
    chats: int
    groups: int
    concurrency: int
    paid: bool
    setup_s: float
    enqueue_s: float
    total_s: float
    first_send_ms: float
    overall_rate: float
    sustained_rate: float | None
    slowest_second: int | None
    margin_ms: float
    rejected_429: int
    calls: int
    failed: int
    sent: int
    gaps_ms: tuple[float, float, float]  # p50, p99, max
    latency_ms: tuple[float, float, float]
    cpu_percent: float
    reached_s: tuple[float, float, float]  # wake -> a chat's alert accepted: first, last, mean
    groups_last_s: float  # the last group reached (nan without groups)


# -- setup ----------------------------------------------------------------------------------


def chat_ids(chats: int, groups: int) -> list[str]:
    private = [str(PRIVATE_BASE + i) for i in range(1, chats + 1)]
    return private + [str(GROUP_BASE - i) for i in range(1, groups + 1)]


def subscribe(db: Database, ids: Sequence[str], now: int, platform: str = PLATFORM) -> None:
    """Groups (negative ids) get the priority /subscribe gives them, sized 100 to 5,000."""
    thresholds = Thresholds(liq=10_000_000.0)
    with db.atomic():
        for index, chat_id in enumerate(ids):
            size = 100 + index % 4_900 if chat_id.startswith("-") else None
            priority = delivery_priority(chat_id.startswith("-"), size)
            sub = Subscription(platform, chat_id, thresholds, priority=priority)
            alerts.save_subscription(db, sub, now)


def enqueue_alert(db: Database, now: int, platform: str = PLATFORM) -> int:
    """One window alert for every active subscription, recorded as the engine records it."""
    minute = now // 60_000
    items = [
        OutboxItem(
            f"{sub.key}|liq|{ASSETS}|{minute}",
            sub.platform,
            sub.chat_id,
            "liq",
            ASSETS,
            "long",
            (plain(ALERT_TEXT),),
        )
        for sub in alerts.active_subscriptions(db)
        if sub.platform == platform
    ]
    with db.atomic():
        return alerts.enqueue(db, items, now)


def count(db: Database, status: str, platform: str = PLATFORM) -> int:
    return int(
        db.execute(
            "SELECT count(*) FROM outbox WHERE platform = ? AND status = ?", [platform, status]
        ).fetchone()[0]
    )


# -- the run --------------------------------------------------------------------------------


async def run(
    chats: int, groups: int, concurrency: int, paid: bool, directory: Path, separate: bool
) -> Result:
    started = time.perf_counter()
    db = open_database(directory / "fanout.db")
    subscribe(db, chat_ids(chats, groups), now_ms())
    setup_s = time.perf_counter() - started
    probe = Probe()
    fake = RemoteFake() if separate else FakeTelegram()
    if isinstance(fake, FakeTelegram):
        fake.app.middlewares.append(probe.middleware())
    await fake.start()
    service = Core(db, read_start(db, now_ms())).chats
    commands = CommandCore(service, Thresholds(), status=dict)
    bot = TelegramBot(
        fake.token,
        fake.base_url,
        commands,
        on_chat_change=service.chat_changed,
        paid_rate=PAID_RATE if paid else None,
    )
    bot.pacer = RecordingPacer(bot.pacer, probe)
    await bot.app.initialize()

    async def send(row: OutboxRow, progress: Progress) -> None:
        await bot.send(row, progress)
        probe.delivered.append(time.monotonic())

    channel = Channel(send, concurrency)
    # The worker's writes go to a writer thread with its own connection, as in `liqbot run`.
    writer = await Writer.start(lambda: open_database(directory / "fanout.db"))
    worker = OutboxWorker(db, writer, PLATFORM, channel, service.chat_changed)
    worker_task = asyncio.create_task(worker.run(), name="outbox-telegram")
    try:
        await asyncio.sleep(0.1)  # the worker's first drain finds nothing and goes idle
        cpu_before = time.process_time()
        before = time.perf_counter()
        enqueued = enqueue_alert(db, now_ms())
        enqueue_s = time.perf_counter() - before
        woken = time.monotonic()
        worker.wake()
        await _until_delivered(db, fake, woken, enqueued, deadline=enqueued / 20 + 120)
        cpu_s = time.process_time() - cpu_before
    finally:
        worker_task.cancel()
        await asyncio.gather(worker_task, return_exceptions=True)
        await writer.close()
        await bot.app.shutdown()
        await (fake.stop() if isinstance(fake, FakeTelegram) else fake.finish(probe))
    figures = (setup_s, enqueue_s, woken, cpu_s)
    return summarise(probe, fake, db, chats, groups, concurrency, paid, *figures)


async def _until_delivered(
    db: Database, fake: FakeTelegram | RemoteFake, woken: float, total: int, deadline: float
) -> None:
    """Return once no row is pending (rows in flight or waiting to retry stay pending)."""
    next_progress = PROGRESS_EVERY
    while alerts.due(db, PLATFORM, EVER, 1):  # a pending row: in flight or waiting to retry
        elapsed = time.monotonic() - woken
        if elapsed > deadline:
            raise TimeoutError(f"{count(db, SENT)} of {total} sent after {elapsed:.0f} s")
        if elapsed >= next_progress:
            next_progress += PROGRESS_EVERY
            sent = count(db, SENT)
            refused = f", {fake.rejected_429} x 429" if isinstance(fake, FakeTelegram) else ""
            print(
                f"  {elapsed:5.0f} s: {sent:>6,} of {total:,} sent ({sent / elapsed:.2f}/s)"
                f"{refused}",
                file=sys.stderr,
                flush=True,
            )
        await asyncio.sleep(POLL)


# -- figures --------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest rank; values sorted."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(fraction * len(values)) - 1))]


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    if not ordered:
        return (math.nan, math.nan, math.nan)
    return (percentile(ordered, 0.5), percentile(ordered, 0.99), ordered[-1])


def per_second(times: Sequence[float]) -> list[int]:
    """Sends in each whole second after the first one, [t0 + k, t0 + k + 1) for k >= 1, up to
    the last second that ends before the last send."""
    if not times:
        return []
    first, seconds = times[0], math.floor(times[-1] - times[0])
    counts = [0] * max(0, seconds - 1)
    for t in times:
        k = math.floor(t - first) - 1
        if 0 <= k < len(counts):
            counts[k] += 1
    return counts


def margin_ms(times: Sequence[float]) -> float:
    """The least time 31 consecutive sends span, less one second, in ms: how much longer a
    request could have taken than the one sent 30 sends after it before a second held 31
    (a 429). Negative when some second did hold 31 (one of them was refused)."""
    spans = [b - a for a, b in zip(times, times[TELEGRAM_CAP:], strict=False)]
    return (min(spans) - 1.0) * 1000 if spans else math.nan


def summarise(
    probe: Probe,
    fake: FakeTelegram | RemoteFake,
    db: Database,
    chats: int,
    groups: int,
    concurrency: int,
    paid: bool,
    setup_s: float,
    enqueue_s: float,
    woken: float,
    cpu_s: float,
) -> Result:
    accepted = sorted(a.time for a in probe.arrivals if a.status == 200)
    reached = {a.chat_id: a.time - woken for a in probe.arrivals if a.status == 200}
    group_times = [t for chat, t in reached.items() if chat.startswith("-")]
    first_arrival: dict[str, float] = {}
    for arrival in probe.arrivals:
        first_arrival.setdefault(arrival.chat_id, arrival.time)
    latencies = [
        (first_arrival[chat] - released) * 1000
        for chat, released in probe.released.items()
        if chat in first_arrival
    ]
    seconds = per_second(accepted)
    total_s = max(probe.delivered, default=woken) - woken
    span = accepted[-1] - accepted[0] if len(accepted) > 1 else math.nan
    return Result(
        chats=chats,
        groups=groups,
        concurrency=concurrency,
        paid=paid,
        setup_s=setup_s,
        enqueue_s=enqueue_s,
        total_s=total_s,
        first_send_ms=(accepted[0] - woken) * 1000 if accepted else math.nan,
        overall_rate=(len(accepted) - 1) / span if len(accepted) > 1 else math.nan,
        sustained_rate=sum(seconds) / len(seconds) if seconds else None,
        slowest_second=min(seconds) if seconds else None,
        margin_ms=margin_ms(accepted),
        rejected_429=fake.rejected_429,
        calls=len(probe.arrivals),
        failed=count(db, FAILED),
        sent=count(db, SENT),
        gaps_ms=spread([(b - a) * 1000 for a, b in itertools.pairwise(accepted)]),
        latency_ms=spread(latencies),
        cpu_percent=100 * cpu_s / total_s if total_s > 0 else math.nan,
        reached_s=reach(list(reached.values())),
        groups_last_s=max(group_times, default=math.nan),
    )


def reach(times: Sequence[float]) -> tuple[float, float, float]:
    """First, last and mean of the times chats were reached."""
    if not times:
        return (math.nan, math.nan, math.nan)
    return (min(times), max(times), sum(times) / len(times))


def passed(result: Result) -> bool:
    """The targets: paid, every chat reached within 15 s (at 10,000 chats); free, 28+ msg/s;
    no 429 and no failure either way."""
    if result.paid:
        on_time = result.reached_s[1] <= PAID_TARGET_S * (result.chats + result.groups) / 10_000
    else:
        on_time = result.sustained_rate is not None and result.sustained_rate >= RATE_TARGET
    return on_time and not result.rejected_429 and not result.failed


def report(result: Result) -> str:
    ok_rate = result.sustained_rate is not None and result.sustained_rate >= RATE_TARGET
    overall, chat, group = PACER_LIMITS
    if result.paid:
        paid = paid_limit(PAID_RATE)
        overall_text = f"paid {paid.count}/{paid.seconds:g}s evenly"
    else:
        overall_text = f"{overall.count}/{overall.seconds:g}s and 1/{PACER_SPACING * 1000:.1f}ms"
    pacing = (
        f"{overall_text} overall, {chat.count}/{chat.seconds:g}s a chat,"
        f" {group.count}/{group.seconds:g}s a group"
    )
    scale = (result.chats + result.groups) / 10_000
    reach_target = (
        f"last <= {PAID_TARGET_S * scale:g} s  {'ok' if passed(result) else 'MISS'}"
        if result.paid
        else ""
    )
    rows = [
        (
            "reached: first / last / mean",
            " / ".join(f"{t:.2f}" for t in result.reached_s) + " s",
            reach_target,
        ),
        ("last group reached", f"{result.groups_last_s:.2f} s", ""),
        ("chats (private + groups)", f"{result.chats:,} + {result.groups:,}", ""),
        ("delivered / failed", f"{result.sent:,} / {result.failed:,}", ""),
        ("total time, wake -> last sent", f"{result.total_s:.1f} s", ""),
        ("first send after wake", f"{result.first_send_ms:.0f} ms", ""),
        ("messages/s, first to last send", f"{result.overall_rate:.2f}", ""),
        (
            "messages/s sustained (after 1st s)",
            "n/a" if result.sustained_rate is None else f"{result.sustained_rate:.2f}",
            "" if result.paid else f">= {RATE_TARGET:g}  {'ok' if ok_rate else 'MISS'}",
        ),
        (
            "slowest whole second",
            "n/a" if result.slowest_second is None else str(result.slowest_second),
            "",
        ),
        (
            "31 sends span at least 1 s +",
            f"{result.margin_ms:.1f} ms",
            "" if result.paid else "> 0",
        ),
        (
            "429 answers",
            str(result.rejected_429),
            f"0  {'ok' if not result.rejected_429 else 'MISS'}",
        ),
        ("sendMessage calls", f"{result.calls:,}", ""),
        ("gap between sends p50/p99/max", _ms(result.gaps_ms), ""),
        ("pacer -> fake latency p50/p99/max", _ms(result.latency_ms), ""),
        (
            "setup: subscriptions / enqueue",
            f"{result.setup_s:.1f} s / {result.enqueue_s * 1000:.0f} ms",
            "",
        ),
        ("process CPU during delivery", f"{result.cpu_percent:.0f}% of a core", ""),
    ]
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    mode = "paid broadcast" if result.paid else "free"
    lines = [f"fanout ({mode}): concurrency {result.concurrency}, pacer {pacing}"]
    lines += [f"  {n:<{width}}  {v:>{value_width}}  {t}".rstrip() for n, v, t in rows]
    return "\n".join(lines)


def _ms(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values) + " ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, default=10_000, help="private chats (10000)")
    parser.add_argument("--groups", type=int, default=0, help="supergroups as well (0)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=TELEGRAM_CONCURRENCY,
        help=f"chats served at once (liqbot run: {TELEGRAM_CONCURRENCY})",
    )
    parser.add_argument("--paid", action="store_true", help="paid broadcast on (1,000/s)")
    parser.add_argument(
        "--fake-process", action="store_true", help="run the fake Bot API in a child process"
    )
    parser.add_argument(
        "--discord", type=int, default=0, metavar="N", help="instead: N Discord channels"
    )
    parser.add_argument("--verbose", action="store_true", help="log each 429 and retry")
    args = parser.parse_args(argv)
    if args.discord:
        return discord_main(args.discord, args.verbose)
    if args.chats < 0 or args.groups < 0 or args.chats + args.groups < 2 or args.concurrency < 1:
        parser.error("need at least two chats and a concurrency of at least one")
    logging.basicConfig(
        level=logging.WARNING if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    total = args.chats + args.groups
    print(
        f"Python {sys.version.split()[0]}, delivering one alert to {total:,}"
        f" chats (about {total / (PAID_RATE if args.paid else 29):.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="liqbot-fanout-") as directory:
        result = asyncio.run(
            run(
                args.chats,
                args.groups,
                args.concurrency,
                args.paid,
                Path(directory),
                args.fake_process,
            )
        )
    print(report(result))
    return 0 if passed(result) else 1


# -- Discord ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiscordResult:
    channels: int
    sent: int
    failed: int
    rejected_429: int
    requests: int
    peak_per_second: int  # most messages the fake accepted in any rolling second
    reached_s: tuple[float, float, float]


async def run_discord(channels: int, directory: Path) -> DiscordResult:
    """One alert to `channels` Discord channels through DiscordBot.send (REST only: the
    gateway plays no part in delivery)."""
    db = open_database(directory / "fanout.db")
    guild_base = 900_000_000_000_000_000
    ids = [str(guild_base + 1000 + i) for i in range(channels)]
    subscribe(db, ids, now_ms(), discord_adapter.PLATFORM)
    fake = FakeDiscord()
    fake.enforce_limits = True
    fake.add_guild(guild_base, channel_ids=[int(i) for i in ids])
    arrivals: list[float] = []  # accepted message posts, when the fake answered them

    @web.middleware
    async def stamp(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.method == "POST" and response.status == 200:
            arrivals.append(time.monotonic())
        return response

    fake.app.middlewares.append(stamp)
    await fake.start()
    discord_adapter.point_at(fake.base_url + "/api/v10", None)
    core = CommandCore(db, Thresholds(), status=dict, on_change=lambda: None)
    bot = DiscordBot(fake.token, core, list, on_chat_change=lambda *change: None)
    await bot.client.login(fake.token)
    reached: list[float] = []

    async def send(row: OutboxRow, progress: Progress) -> None:
        await bot.send(row, progress)
        reached.append(time.monotonic())

    channel = Channel(send, DISCORD_CONCURRENCY)
    worker = OutboxWorker(
        db, Writer.inline(db), discord_adapter.PLATFORM, channel, lambda *change: None
    )
    worker_task = asyncio.create_task(worker.run(), name="outbox-discord")
    try:
        await asyncio.sleep(0.1)
        before = len(fake.requests)
        enqueued = enqueue_alert(db, now_ms(), discord_adapter.PLATFORM)
        woken = time.monotonic()
        worker.wake()
        while alerts.due(db, discord_adapter.PLATFORM, EVER, 1):
            if time.monotonic() - woken > enqueued / 10 + 60:
                raise TimeoutError(f"{len(reached)} of {enqueued} sent")
            await asyncio.sleep(POLL)
    finally:
        worker_task.cancel()
        await asyncio.gather(worker_task, return_exceptions=True)
        await bot.client.close()
        await fake.stop()
    times = [t - woken for t in reached]
    return DiscordResult(
        channels=channels,
        sent=count(db, SENT, discord_adapter.PLATFORM),
        failed=count(db, FAILED, discord_adapter.PLATFORM),
        rejected_429=fake.rejected_429,
        requests=len(fake.requests) - before,
        peak_per_second=_peak(sorted(arrivals)),
        reached_s=reach(times),
    )


def _peak(times: Sequence[float]) -> int:
    """The most events in any rolling second."""
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def discord_main(channels: int, verbose: bool) -> int:
    logging.basicConfig(
        level=logging.WARNING if verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    print(f"delivering one alert to {channels:,} Discord channels", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="liqbot-fanout-") as directory:
        result = asyncio.run(run_discord(channels, Path(directory)))
    ok = not result.rejected_429 and not result.failed and result.sent == channels
    overall, chat = discord_adapter.PACER_LIMITS
    print(
        f"fanout (discord): concurrency {DISCORD_CONCURRENCY}, pacer {overall.count}/"
        f"{overall.seconds:g}s overall, {chat.count}/{chat.seconds:g}s a channel\n"
        f"  channels delivered / failed      {result.sent:,} / {result.failed:,}\n"
        f"  reached: first / last / mean     "
        + " / ".join(f"{t:.2f}" for t in result.reached_s)
        + " s\n"
        f"  messages/s, wake to last         {result.sent / result.reached_s[1]:.2f}\n"
        f"  most accepted in a rolling second {result.peak_per_second}  <= {DISCORD_CAP}\n"
        f"  REST requests                    {result.requests:,}\n"
        f"  429 answers                      {result.rejected_429}  0  {'ok' if ok else 'MISS'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
