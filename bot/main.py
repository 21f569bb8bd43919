"""`liqbot run`: collectors, pollers, the writer, the alert engine and delivery in one asyncio
loop until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlite_utils import Database

from bot.commands import CommandCore
from bot.config import Settings
from bot.core import Core, cancel_all
from bot.errors import StartupError
from bot.events import OpenInterest, SourceHealth, merge_health
from bot.feeds import Collector, send_new
from bot.operations import Operations
from bot.outbox import Channel
from bot.recorder import now_ms
from bot.rest import RestClient, RestError
from bot.sources import BinanceSource, BybitSource, OkxSource, Source
from bot.status import build_status
from bot.supervisor import Fatal, Supervisor
from bot.venues.common import MALFORMED
from bot.writer import Writer
from handlers import console, discord, telegram
from handlers.discord import DiscordBot
from handlers.telegram import TelegramBot
from storage import market_data, open_database

log = logging.getLogger(__name__)

SOURCE_TYPES: dict[str, type[BinanceSource] | type[BybitSource] | type[OkxSource]] = {
    "binance": BinanceSource,
    "bybit": BybitSource,
    "okx": OkxSource,
}
SESSION_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=None)
CLOCK_TICK = 1.0
PRUNE_INTERVAL = 3600.0
SCHEDULED_ALERTS_INTERVAL = 60.0
TELEGRAM_CONCURRENCY = 16  # chats served at once; the platforms' pacing is the real limit
DISCORD_CONCURRENCY = 8
T = TypeVar("T")


class App:
    """Everything `liqbot run` owns. Built from settings; `run()` returns after `stop` is set."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db if db is not None else open_database(settings.storage.path)
        self.collectors: list[Collector] = []
        channels = {console.PLATFORM: Channel(console.ConsoleSender())}
        self.telegram: TelegramBot | None = None
        if settings.telegram.enabled:
            assert settings.telegram.token is not None
            self.telegram = TelegramBot(
                settings.telegram.token,
                settings.telegram.api_url,
                self._commands(),
                on_chat_change=lambda *change: self.core.chat_changed(*change),
                paid_rate=settings.telegram.paid_broadcast_rate
                if settings.telegram.paid_broadcast
                else None,
            )
            channels[telegram.PLATFORM] = Channel(self.telegram.send, TELEGRAM_CONCURRENCY)
        self.discord: DiscordBot | None = None
        if settings.discord.enabled:
            assert settings.discord.token is not None
            discord.point_at(settings.discord.api_url, settings.discord.gateway_url)
            self.discord = DiscordBot(
                settings.discord.token,
                self._commands(),
                self._assets_seen,
                on_chat_change=lambda *change: self.core.chat_changed(*change),
            )
            channels[discord.PLATFORM] = Channel(self.discord.send, DISCORD_CONCURRENCY)
        self.core = Core(
            self.db,
            now_ms(),
            channels,
            health=lambda: merge_health(c.current_health() for c in self.collectors),
            outbox_max_age=settings.outbox.max_age,
        )
        # Without a chat platform, alerts go to stdout with the [defaults] thresholds.
        chat_platforms = self.telegram is not None or self.discord is not None
        self.core.subscribe_console(settings.defaults, now_ms(), active=not chat_platforms)
        self.market = self.core.market
        self.recorder = self.core.recorder
        self.fatal: StartupError | None = None  # why `run` stopped before it could serve

    def _assets_seen(self) -> list[str]:
        """Assets liquidated in the last day or with funding data, for autocompletion."""
        seen = set(self.core.market.totals("24h").by_base) | {
            rate.base for rate in self.core.derivatives.funding.values()
        }
        return sorted(seen)

    def _commands(self) -> CommandCore:
        return CommandCore(
            self.db,
            self.settings.defaults,
            status=lambda: build_status(self.db, self.settings, now_ms()),
            on_change=lambda: self.core.engine.reload_subscriptions(),
        )

    async def run(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession(timeout=SESSION_TIMEOUT) as session:
            sources = self._sources(session)
            scheduler = self._scheduler(sources)
            # Operator endpoints and the runtime row, under the supervisor.
            supervisor = Supervisor()
            writer = await self._writer()
            operations = Operations(
                self.settings.metrics,
                supervisor,
                self.core,
                self._source_health,
                writer,
            )
            try:
                await operations.start()
            except StartupError:
                await writer.close()
                raise
            supervisor.start()
            tasks = [asyncio.create_task(coroutine) for coroutine in self.core.coroutines()]
            for platform in (self.telegram, self.discord):
                if platform is not None:
                    tasks.append(asyncio.create_task(self._or_stop(platform.run(), stop)))
            tasks += [
                asyncio.create_task(collector.run(), name=f"collector-{collector.spec.venue}-{i}")
                for i, collector in enumerate(self.collectors)
            ]
            scheduler.start()
            log.info("liqbot running: %s", ", ".join(s.venue for s, _ in sources))
            fatal = asyncio.ensure_future(supervisor.wait_fatal())
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait((fatal, stopping), return_when=asyncio.FIRST_COMPLETED)
            finally:
                log.info("stopping")
                fatal.cancel()
                stopping.cancel()
                scheduler.shutdown(wait=False)
                await cancel_all(tasks)  # the recorder last, so its final flush sees all
                await supervisor.stop()
                await operations.stop()
                await writer.close()
            if fatal.done() and not fatal.cancelled():
                raise fatal.result()
        if self.fatal is not None:
            raise self.fatal

    def _source_health(self) -> list[SourceHealth]:
        """One health per venue, merged over its connections (what `status` shows)."""
        return merge_health(c.current_health() for c in self.collectors)

    async def _writer(self) -> Writer:
        path = self.settings.storage.path
        return await Writer.start(lambda: open_database(path))

    async def _or_stop(self, run: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
        """A platform's run; a StartupError (a refused token) stops all of `run`."""
        try:
            await run
        except StartupError as error:
            self.fatal = error
            stop.set()

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

    def _scheduler(self, sources: list[tuple[Source, list[Collector]]]) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1})
        config = self.settings.collector
        for source, collectors in sources:
            self._every(
                scheduler,
                config.funding_interval,
                f"{source.venue}-funding",
                self._poll(source.venue, source.poll_funding, self.core.on_funding),
            )
            self._every(
                scheduler,
                config.open_interest_interval,
                f"{source.venue}-oi",
                self._poll(source.venue, source.poll_open_interest, self._on_open_interest),
            )
            self._every(
                scheduler,
                config.instruments_interval,
                f"{source.venue}-instruments",
                self._poll(source.venue, source.refresh_instruments, partial(send_new, collectors)),
                start_now=False,
            )
        self._every(scheduler, CLOCK_TICK, "clock", self._tick)
        self._every(scheduler, PRUNE_INTERVAL, "prune", self._prune)
        self._every(scheduler, SCHEDULED_ALERTS_INTERVAL, "digests", self._scheduled_alerts)
        return scheduler

    @staticmethod
    def _every(
        scheduler: AsyncIOScheduler,
        seconds: float,
        name: str,
        job: Callable[[], Awaitable[None]],
        start_now: bool = True,
    ) -> None:
        first_run: dict[str, Any] = {"next_run_time": datetime.now(UTC)} if start_now else {}
        scheduler.add_job(job, "interval", seconds=seconds, id=name, name=name, **first_run)

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

    def _on_open_interest(self, interests: list[OpenInterest]) -> None:
        self.core.on_open_interest(interests, now_ms())

    async def _tick(self) -> None:
        self.market.advance(now_ms())

    async def _scheduled_alerts(self) -> None:
        self.core.engine.scheduled(now_ms())

    async def _prune(self) -> None:
        storage = self.settings.storage
        with self.db.atomic():
            market_data.prune(
                self.db, now_ms(), storage.events_retention_days, storage.rollups_retention_days
            )


def run_forever(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; flush and return 0. A `Fatal` condition: its line, 1."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await App(settings).run(stop)

    try:
        asyncio.run(main())
    except Fatal as fatal:
        log.error("%s", fatal)
        return 1
    return 0
