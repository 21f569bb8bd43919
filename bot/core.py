"""Everything downstream of the venues, shared by `liqbot run` and `liqbot demo`: the market
views rebuilt from storage, the writer, the alert engine and the outbox workers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlite_utils import Database

from bot import heap
from bot.chats import ChatService, Outboxes
from bot.clock import SYSTEM, Clock
from bot.counters import LiquidationCounts
from bot.derivatives import OI_HISTORY_MS, Derivatives
from bot.engine import AlertEngine, Index, read_index
from bot.market import HISTORY_MINUTES, MarketState
from bot.model import FundingRate, Liquidation, OpenInterest, SourceHealth, Subscription, Thresholds
from bot.norms import MINUTES_PER_DAY, NORM_DAYS, Norms
from bot.outbox import DEFAULT_MAX_AGE, Channel, OutboxWorker
from bot.recorder import Recorder
from bot.supervisor import TaskFactory
from bot.writer import Writer
from storage import market_data

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Start:
    """What Core starts from: the market views and the rule index, read from storage and built
    by `read_start` on whichever thread calls it (`load_start`: the writer's)."""

    market: MarketState
    norms: Norms
    derivatives: Derivatives
    index: Index


def read_start(db: Database, now: int) -> Start:
    norms = Norms()
    market = MarketState(now, on_minute_closed=norms.add_minute)
    minute = market.minute
    market.load_rollups(market_data.read_rollups(db, minute - HISTORY_MINUTES))
    norms.load(
        market_data.read_daily_liquidations(
            db, (minute // MINUTES_PER_DAY - NORM_DAYS) * MINUTES_PER_DAY, minute
        ),
        market_data.read_first_rollup_minute(db),
        minute,
    )
    derivatives = Derivatives()
    derivatives.update_funding(_funding_rows(market_data.read_funding(db)))
    derivatives.load_history(market_data.read_open_interest_history(db, now - OI_HISTORY_MS))
    derivatives.update_open_interest(_interest_rows(market_data.read_open_interest(db)), now)
    return Start(market, norms, derivatives, read_index(db))


async def load_start(writer: Writer, now: int) -> Start:
    """`read_start` on the writer's thread (its connection): at 100,000 chats the loop's thread
    would stall for seconds; there it gets the GIL back at every switch interval (sqlite3
    releases it while SQLite works)."""
    with heap.bulk_build():
        return await writer.call(partial(read_start, now=now))


class Core:
    """The composition root of everything downstream of the venues. Built in dependency order:
    the recorder, the engine, the chats service, then one outbox worker per channel (channels
    can be added later: `liqbot run` builds the platform clients after the chats service they
    depend on). Every long-running part is listed by `tasks` for the supervisor."""

    def __init__(
        self,
        db: Database,
        start: Start,
        channels: Mapping[str, Channel] | None = None,
        health: Callable[[], Iterable[SourceHealth]] = tuple,
        writer: Writer | None = None,
        outbox_max_age: float = DEFAULT_MAX_AGE,
        clock: Clock = SYSTEM,
    ) -> None:
        self.db = db  # the loop's connection (reads; writes go through `writer`)
        self.writer = writer if writer is not None else Writer.inline(db)
        self.clock = clock
        self.outbox_max_age = outbox_max_age
        self.market, self.norms, self.derivatives = start.market, start.norms, start.derivatives
        self.recorder = Recorder(self.writer, health, clock)
        self.liquidation_counts = LiquidationCounts()
        self.outboxes = Outboxes()
        self.engine = AlertEngine(
            db,
            self.market,
            self.norms,
            self.derivatives,
            start.index,
            self.outboxes.wake,
            writer=self.writer,
            clock=clock,
        )
        self.chats = ChatService(db, self.writer, self.engine, self.outboxes, clock)
        self.workers: dict[str, OutboxWorker] = {}
        for platform, channel in (channels or {}).items():
            self.add_channel(platform, channel)

    def add_channel(self, platform: str, channel: Channel) -> None:
        """Deliver `platform`'s outbox through `channel`."""
        worker = OutboxWorker(
            self.db,
            self.writer,
            platform,
            channel,
            self.chats.chat_changed,
            max_age=self.outbox_max_age,
            clock=self.clock,
        )
        self.workers[platform] = worker
        self.outboxes.add(platform, worker)

    async def subscribe_console(self, thresholds: Thresholds, active: bool = True) -> None:
        """The console subscriber: the `[defaults]` thresholds, refreshed at every start."""
        existing = self.chats.load("console", "stdout")
        sub = Subscription("console", "stdout", thresholds, active=active)
        if existing != sub:
            await self.chats.save(sub)

    def on_liquidations(self, events: list[Liquidation]) -> None:
        self.market.add_all(events)
        self.recorder.add_liquidations(events)
        self.liquidation_counts.add(events)
        self.engine.on_liquidations(events)

    def on_funding(self, rates: list[FundingRate]) -> None:
        self.recorder.add_funding(rates)
        self.derivatives.update_funding(rates)
        self.engine.on_market_data()

    def on_open_interest(self, interests: list[OpenInterest], now: int) -> None:
        self.recorder.add_open_interest(interests)
        self.derivatives.update_open_interest(interests, now)
        self.engine.on_market_data()

    def tasks(self) -> list[tuple[str, TaskFactory]]:
        """The long-running parts, by name; the recorder first, so a shutdown (in reverse
        order) stops it last and its final flush sees everything."""
        return [
            ("recorder", self.recorder.run),
            ("chats", self.chats.run),
            ("engine", self.engine.run),
            *((f"outbox-{platform}", worker.run) for platform, worker in self.workers.items()),
        ]


def _funding_rows(rows: list[dict[str, Any]]) -> list[FundingRate]:
    return [
        FundingRate(
            r["venue"],
            r["symbol"],
            r["base"],
            r["rate"],
            r["interval_hours"],
            r["mark_price"],
            r["next_funding_time"],
        )
        for r in rows
    ]


def _interest_rows(rows: list[dict[str, Any]]) -> list[OpenInterest]:
    return [
        OpenInterest(r["venue"], r["symbol"], r["base"], r["usd"], r["updated_at"]) for r in rows
    ]
