"""Everything downstream of the venues, shared by `liqbot run` and `liqbot demo`: the market
views rebuilt from storage, the writer, the alert engine and the outbox workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from sqlite_utils import Database

from bot.clock import SYSTEM, Clock
from bot.counters import LiquidationCounts
from bot.derivatives import OI_HISTORY_MS, Derivatives
from bot.engine import AlertEngine
from bot.events import FundingRate, Liquidation, OpenInterest, SourceHealth
from bot.market import HISTORY_MINUTES, MarketState
from bot.norms import MINUTES_PER_DAY, NORM_DAYS, Norms
from bot.outbox import DEFAULT_MAX_AGE, Channel, OutboxWorker
from bot.recorder import Recorder, now_ms
from bot.subscriptions import Subscription, Thresholds
from bot.writer import Writer
from storage import alerts, market_data

log = logging.getLogger(__name__)


class Core:
    def __init__(
        self,
        db: Database,
        now: int,
        channels: Mapping[str, Channel],
        health: Callable[[], Iterable[SourceHealth]] = tuple,
        writer: Writer | None = None,
        outbox_max_age: float = DEFAULT_MAX_AGE,
        clock: Clock = SYSTEM,
    ) -> None:
        self.db = db
        self.writer = writer if writer is not None else Writer.inline(db)
        self.norms = Norms()
        self.market = MarketState(now, on_minute_closed=self.norms.add_minute)
        minute = self.market.minute
        self.market.load_rollups(market_data.read_rollups(db, minute - HISTORY_MINUTES))
        self.norms.load(
            market_data.read_daily_liquidations(
                db, (minute // MINUTES_PER_DAY - NORM_DAYS) * MINUTES_PER_DAY, minute
            ),
            market_data.read_first_rollup_minute(db),
            minute,
        )
        self.derivatives = Derivatives()
        self.derivatives.update_funding(_funding_rows(market_data.read_funding(db)))
        self.derivatives.load_history(
            market_data.read_open_interest_history(db, now - OI_HISTORY_MS)
        )
        self.derivatives.update_open_interest(
            _interest_rows(market_data.read_open_interest(db)), now
        )
        self.recorder = Recorder(db, health)
        self.liquidation_counts = LiquidationCounts()
        self.workers = {
            platform: OutboxWorker(
                db,
                self.writer,
                platform,
                channel,
                self.chat_changed,
                max_age=outbox_max_age,
                clock=clock,
            )
            for platform, channel in channels.items()
        }
        self.engine = AlertEngine(db, self.market, self.norms, self.derivatives, self._wake_workers)

    def _wake_workers(self, platforms: set[str]) -> None:
        for platform in platforms:
            worker = self.workers.get(platform)
            if worker is not None:
                worker.wake()

    def chat_changed(self, platform: str, chat_id: str, new_id: str | None) -> None:
        """A chat blocked or removed the bot (`new_id` None: its alerts stop until /subscribe),
        or got a new id (its subscription, rule state and pending alerts follow)."""
        if new_id is None:
            log.info("%s: chat %s is gone; its subscription is paused", platform, chat_id)
            alerts.set_active(self.db, platform, chat_id, False, now_ms())
        else:
            log.info("%s: chat %s is now %s", platform, chat_id, new_id)
            alerts.move_chat(self.db, platform, chat_id, new_id, now_ms())
        self.engine.reload_subscriptions()
        worker = self.workers.get(platform)
        if worker is not None:
            worker.wake()

    def subscribe_console(self, thresholds: Thresholds, now: int, active: bool = True) -> None:
        """The console subscriber: the `[defaults]` thresholds, refreshed at every start."""
        existing = alerts.load_subscription(self.db, "console", "stdout")
        sub = Subscription("console", "stdout", thresholds, active=active)
        if existing is None or existing != sub:
            with self.db.atomic():
                alerts.save_subscription(self.db, sub, now)
        self.engine.reload_subscriptions()

    def on_liquidations(self, events: list[Liquidation]) -> None:
        add = self.market.add
        for event in events:
            add(event)
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

    def coroutines(self) -> list[Coroutine[Any, Any, None]]:
        """The long-running parts; the recorder first, so a shutdown can stop it last."""
        return [self.recorder.run(), self.engine.run(), *(w.run() for w in self.workers.values())]


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


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel and await tasks in reverse start order."""
    for task in reversed(tasks):
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
