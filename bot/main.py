"""`liqbot run`: collectors, pollers, the writer, the alert engine and delivery in one asyncio
loop until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from sqlite_utils import Database

from bot import heap
from bot.chart_data import MarketHistory
from bot.chart_service import ChartService
from bot.clock import SYSTEM, Clock
from bot.commands import CommandCore
from bot.config import Settings
from bot.core import Core, Start, load_start
from bot.errors import StartupError
from bot.feeds import Collector, send_new
from bot.loop_lag import LoopLag
from bot.model import FundingRate, OpenInterest, SourceHealth, merge_health
from bot.operations import Operations
from bot.outbox import Channel
from bot.rest import RestClient, RestError
from bot.sources import SOURCE_TYPES, Source
from bot.status import LiveStatus
from bot.supervisor import Fatal, Supervisor
from bot.venues.common import MALFORMED
from bot.writer import Writer
from handlers import console
from storage import market_data, open_database

if TYPE_CHECKING:  # the platforms' client libraries load only when a token is set
    from handlers.discord import DiscordBot
    from handlers.telegram import TelegramBot

log = logging.getLogger(__name__)

SESSION_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=None)
CLOCK_TICK = 1.0
PRUNE_INTERVAL = 3600.0
SCHEDULED_ALERTS_INTERVAL = 60.0
TELEGRAM_CONCURRENCY = 16  # chats served at once; the platforms' pacing is the real limit
DISCORD_CONCURRENCY = 8
T = TypeVar("T")


class App:
    """Everything `liqbot run` owns, built in dependency order (the composition root): storage
    (the writer thread and the loop's read connection), the core with its chats service, the
    commands, the platform clients, and at `run` the collectors and pollers. Every long-running
    task runs under `supervisor`. `run()` returns after `stop` is set."""

    def __init__(
        self,
        settings: Settings,
        writer: Writer,
        db: Database,
        start: Start,
        lag: LoopLag,
        clock: Clock = SYSTEM,
    ) -> None:
        """From what `open` opened, loaded and sampled (nothing here reads much)."""
        self.settings = settings
        self.lag = lag
        self.clock = clock
        self.writer = writer
        self.db = db  # the loop's connection: reads
        self.collectors: list[Collector] = []
        self.supervisor = Supervisor(clock)
        self.core = Core(
            self.db,
            start,
            health=self._source_health,
            writer=self.writer,
            outbox_max_age=settings.outbox.max_age,
            clock=clock,
        )
        self.live_status = LiveStatus(self.db, settings, self.core.market, self.core.derivatives)
        self.history = MarketHistory()  # mark prices, funding and OI per minute, for charts
        self.charts: ChartService | None = None
        if settings.charts_enabled:
            self.charts = ChartService(self.db, self.core.market, self.core.norms, self.history)
        self.market = self.core.market
        self.recorder = self.core.recorder
        self.fatal: StartupError | None = None  # why `run` stopped before it could serve
        commands = CommandCore(
            self.core.chats,
            settings.defaults,
            status=self._status,
            clock=clock.now_ms,
            chart_assets=self._assets_seen if settings.charts_enabled else None,
        )
        self.core.add_channel(console.PLATFORM, Channel(console.ConsoleSender()))
        self.telegram: TelegramBot | None = None
        if settings.telegram.enabled:
            assert settings.telegram.token is not None
            from handlers import telegram

            self.telegram = telegram.TelegramBot(
                settings.telegram.token,
                settings.telegram.api_url,
                commands,
                on_chat_change=self.core.chats.chat_changed,
                charts=self.charts,
                paid_rate=settings.telegram.paid_broadcast_rate
                if settings.telegram.paid_broadcast
                else None,
            )
            self.core.add_channel(
                telegram.PLATFORM, Channel(self.telegram.send, TELEGRAM_CONCURRENCY)
            )
        self.discord: DiscordBot | None = None
        if settings.discord.enabled:
            assert settings.discord.token is not None
            from handlers import discord

            discord.point_at(settings.discord.api_url, settings.discord.gateway_url)
            self.discord = discord.DiscordBot(
                settings.discord.token,
                commands,
                self._assets_seen,
                on_chat_change=self.core.chats.chat_changed,
                charts=self.charts,
            )
            self.core.add_channel(discord.PLATFORM, Channel(self.discord.send, DISCORD_CONCURRENCY))

    @classmethod
    async def open(cls, settings: Settings, clock: Clock = SYSTEM) -> App:
        """Open storage and load what the core starts from on the writer's thread, then build
        the app. At 100,000 chats the load took 23.7 s on a busy 2-core machine; meanwhile the
        loop's thread ran for 0.1 s (mostly the lag sampler), free for whatever else it has."""
        path = settings.storage.path
        lag = LoopLag(clock)  # sampled from the first moment: start-up's lag is reported too
        sampling = asyncio.create_task(lag.run())
        began = clock.monotonic()
        try:
            # The writer opens (and migrates) the database first, in its own thread.
            writer = await Writer.start(partial(open_database, path))
            db: Database | None = None
            try:
                db = open_database(path)  # the loop's connection: reads
                start = await load_start(writer, clock.now_ms())
                app = cls(settings, writer, db, start, lag, clock)
            except BaseException:
                if db is not None:
                    db.close()
                await writer.close()
                raise
        finally:
            sampling.cancel()
            await asyncio.wait((sampling,))
        summary = lag.summary()
        log.info(
            "started in %.1f s: %d chat(s), %d rule state(s); loop lag meanwhile: %s",
            clock.monotonic() - began,
            len(start.index.book.by_key),
            len(start.index.states),
            "not sampled" if summary is None else f"p99 {summary.p99} ms, max {summary.max} ms",
        )
        return app

    def _source_health(self) -> list[SourceHealth]:
        """One health per venue, merged over its connections (what `status` shows)."""
        return merge_health(c.current_health() for c in self.collectors)

    def _status(self) -> dict[str, Any]:
        """A chat's /status, from the market held in memory."""
        return self.live_status.build(self.clock.now_ms())

    def _assets_seen(self) -> list[str]:
        """Assets liquidated in the last day or with funding data, for autocompletion."""
        seen = set(self.core.market.totals("24h").by_base) | {
            rate.base for rate in self.core.derivatives.funding.values()
        }
        return sorted(seen)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; raise `Fatal` when a task met a condition no restart cures,
        or the `StartupError` that stopped it (everything is stopped first)."""
        try:
            # Without a chat platform, alerts go to stdout with the [defaults] thresholds.
            chat_platforms = self.telegram is not None or self.discord is not None
            await self.core.subscribe_console(self.settings.defaults, active=not chat_platforms)
            async with aiohttp.ClientSession(timeout=SESSION_TIMEOUT) as session:
                sources = self._sources(session)
                self._supervise(sources, stop)
                # Operator endpoints and the runtime row, under the supervisor too.
                operations = Operations(
                    self.settings.metrics,
                    self.supervisor,
                    self.core,
                    self._source_health,
                    self.writer,
                    self.lag,
                )
                await operations.start()  # a listen address that cannot be served: refused
                self.supervisor.start()
                heap.freeze()  # start-up's objects live on: out of the collector's sight
                log.info("liqbot running: %s", ", ".join(s.venue for s, _ in sources))
                fatal = asyncio.ensure_future(self.supervisor.wait_fatal())
                stopped = asyncio.ensure_future(stop.wait())
                try:
                    await asyncio.wait((fatal, stopped), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    fatal.cancel()
                    stopped.cancel()
                    log.info("stopping")
                    await self.supervisor.stop()  # in reverse: the recorder flushes last
                    await operations.stop()
                if not fatal.cancelled():
                    raise fatal.result()
        finally:
            await self.close()
        if self.fatal is not None:
            raise self.fatal

    async def close(self) -> None:
        """Close the writer (once its work is done) and the chart worker (`run` does, last)."""
        await self.writer.close()
        if self.charts is not None:
            self.charts.close()

    async def _or_stop(self, run: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        """A platform's run; a StartupError (a refused token) stops all of `run`."""
        try:
            await run()
        except StartupError as error:
            self.fatal = error
            stop.set()
            await asyncio.get_running_loop().create_future()  # until `run` cancels it

    def _supervise(
        self, sources: list[tuple[Source, list[Collector]]], stop: asyncio.Event
    ) -> None:
        add = self.supervisor.add
        for name, factory in self.core.tasks():
            add(name, factory)
        if self.telegram is not None:
            add("telegram", partial(self._or_stop, self.telegram.run, stop))
        if self.discord is not None:
            add("discord", partial(self._or_stop, self.discord.run, stop))
        config = self.settings.collector
        for source, collectors in sources:
            venue = source.venue
            for index, collector in enumerate(collectors):
                add(f"collector-{venue}-{index}", collector.run)
            self._every(
                f"{venue}-funding",
                config.funding_interval,
                self._poll(venue, source.poll_funding, self._on_funding),
            )
            self._every(
                f"{venue}-oi",
                config.open_interest_interval,
                self._poll(venue, source.poll_open_interest, self._on_open_interest),
            )
            self._every(
                f"{venue}-instruments",
                config.instruments_interval,
                self._poll(venue, source.refresh_instruments, partial(send_new, collectors)),
                start_now=False,
            )
        self._every("clock", CLOCK_TICK, self._tick)
        self._every("prune", PRUNE_INTERVAL, self._prune)
        self._every("digests", SCHEDULED_ALERTS_INTERVAL, self._scheduled_alerts)

    def _sources(self, session: aiohttp.ClientSession) -> list[tuple[Source, list[Collector]]]:
        last_seen = {
            row["venue"]: row["last_message_at"] for row in market_data.read_health(self.db)
        }
        sources: list[tuple[Source, list[Collector]]] = []
        for exchange in self.settings.enabled_exchanges:
            rest = RestClient(session, exchange.name, exchange.rest_url)
            source = SOURCE_TYPES[exchange.name](rest, exchange.ws_url)
            collectors = [
                Collector(
                    spec,
                    session,
                    exchange,
                    self.settings.collector,
                    self.core.on_liquidations,
                    self.recorder.add_gap,
                    gap_since=last_seen.get(exchange.name),
                )
                for spec in source.streams()
            ]
            sources.append((source, collectors))
            self.collectors += collectors
        return sources

    def _every(
        self, name: str, seconds: float, job: Callable[[], Awaitable[None]], start_now: bool = True
    ) -> None:
        """Run `job` every `seconds` (first at once, or after one interval) as a supervised
        task; a run that overruns its interval is followed at once by one more, not a backlog."""

        async def every() -> None:
            clock = self.clock
            due = clock.monotonic() + (0 if start_now else seconds)
            while True:
                await clock.sleep(due - clock.monotonic())
                await job()
                due = max(due + seconds, clock.monotonic())

        self.supervisor.add(name, every)

    @staticmethod
    def _poll(
        venue: str, fetch: Callable[[], Awaitable[T]], deliver: Callable[[T], object]
    ) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            try:
                result = await fetch()
            except RestError as error:
                log.warning("%s", error)
                return
            except MALFORMED as error:
                log.warning("%s: unexpected REST payload (%r); skipped", venue, error)
                return
            outcome = deliver(result)
            if asyncio.iscoroutine(outcome):
                await outcome

        return job

    def _on_funding(self, rates: list[FundingRate]) -> None:
        self.core.on_funding(rates)
        extremes = self.core.derivatives.extreme_funding_by_base()
        self.history.record_funding(rates, extremes, self.clock.now_ms())

    def _on_open_interest(self, interests: list[OpenInterest]) -> None:
        now = self.clock.now_ms()
        self.core.on_open_interest(interests, now)
        self.history.record_open_interest(self.core.derivatives.open_interest_by_base(), now)

    async def _tick(self) -> None:
        self.market.advance(self.clock.now_ms())

    async def _scheduled_alerts(self) -> None:
        await self.core.engine.scheduled(self.clock.now_ms())

    async def _prune(self) -> None:
        storage = self.settings.storage
        now = self.clock.now_ms()

        def prune(db: Database) -> None:
            with db.atomic():
                market_data.prune(
                    db, now, storage.events_retention_days, storage.rollups_retention_days
                )

        try:
            await self.writer.call(prune)
        except sqlite3.OperationalError as error:  # storage trouble: the recorder reports it
            log.warning("prune skipped: %s", error)


def run_forever(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; flush and return 0. A `Fatal` condition: one line, 1."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        app = await App.open(settings)
        await app.run(stop)

    try:
        asyncio.run(main())
    except Fatal as fatal:
        log.error("%s", fatal)
        return 1
    return 0
