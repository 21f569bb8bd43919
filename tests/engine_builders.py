"""The alert engine on a real SQLite file, driven by an explicit clock: subscriptions with every
rule off unless a test switches it on, market events, and a sender that records deliveries."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.clock import SystemClock
from bot.core import Core, read_start
from bot.model import (
    FundingRate,
    Liquidation,
    OpenInterest,
    OutboxRow,
    Position,
    Subscription,
    Thresholds,
)
from bot.outbox import Channel, Progress
from storage import alerts, market_data, open_database

T0 = 1_736_942_400_000  # 2025-01-15 12:00:00 UTC (07:00 in New York, 17:30 in Kolkata)
SECOND = 1_000
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
PLATFORM = "telegram"

# Every rule off; a test switches on what it checks.
OFF = Thresholds(
    window="1h",
    liq=0.0,
    side=0.0,
    funding=0.0,
    oi=0.0,
    whale=0.0,
    spike=0.0,
    cooldown=60.0,
    escalation=0.0,
)


def sub(
    chat_id: str,
    *,
    watch: Iterable[str] = (),
    mute_until: int | None = None,
    quiet: tuple[int, int] | None = None,
    timezone: str = "UTC",
    digest: str = "off",
    summary: bool = False,
    **thresholds: Any,
) -> Subscription:
    """A chat's subscription: `thresholds` are Thresholds fields; the rest stay off."""
    return Subscription(
        PLATFORM,
        chat_id,
        replace(OFF, **thresholds),
        watch=frozenset(watch),
        mute_until=mute_until,
        quiet=quiet,
        timezone=timezone,
        digest=digest,
        summary=summary,
    )


def liq(
    base: str, position: Position, usd: float, ts: int, venue: str = "binance", price: float = 100.0
) -> Liquidation:
    return Liquidation(venue, f"{base}USDT", base, position, price, usd / price, usd, ts, ts)


def rate(
    base: str, value: float, venue: str = "binance", interval_hours: float = 8.0
) -> FundingRate:
    """A funding rate of `value` per funding interval."""
    return FundingRate(venue, f"{base}USDT", base, value, interval_hours, None, None)


def interest(base: str, usd: float, ts: int, venue: str = "binance") -> OpenInterest:
    return OpenInterest(venue, f"{base}USDT", base, usd, ts)


def headline(text: str) -> str:
    """A message's first line; for a merged message (several alerts of one rule, separated by
    blank lines), the first line of each alert, joined by " | "."""
    return " | ".join(block.splitlines()[0] for block in text.split("\n\n"))


def seed_history(path: Path, events: list[Liquidation]) -> None:
    """Store past liquidations (and their rollups) before any Core opens the file."""
    db = open_database(path)
    with db.atomic():
        market_data.save_liquidations(db, events)
    db.conn.close()


def hourly_history(hours: int, usd: float, end: int = T0, base: str = "BTC") -> list[Liquidation]:
    """One long liquidation of `usd` per hour, the last one an hour before `end`."""
    return [liq(base, "long", usd, end - hour * HOUR) for hour in range(1, hours + 1)]


class Recording:
    """A sender that records each delivered row."""

    def __init__(self) -> None:
        self.rows: list[OutboxRow] = []

    async def __call__(self, row: OutboxRow, progress: Progress) -> None:
        self.rows.append(row)

    def texts(self, chat_id: str) -> list[str]:
        return [row.text for row in self.rows if row.chat_id == chat_id]


class StepClock(SystemClock):
    """The time of the step a test is at (outbox ages are measured on it), with real waits."""

    def __init__(self, now: int) -> None:
        self.now = now

    def now_ms(self) -> int:
        return self.now


class Bot:
    """A Core on a database file, with a recording sender for PLATFORM that serves up to
    `concurrency` chats at once (as `liqbot run` does for Telegram)."""

    def __init__(self, path: Path, now: int, concurrency: int = 16) -> None:
        self.sent = Recording()
        self.db = open_database(path)
        self.clock = StepClock(now)
        channels = {PLATFORM: Channel(self.sent, concurrency)}
        self.core = Core(self.db, read_start(self.db, now), channels=channels, clock=self.clock)
        self.engine = self.core.engine
        self._seen = 0

    def subscribe(self, *subs: Subscription, now: int = T0) -> None:
        with self.db.atomic():
            for subscription in subs:
                alerts.save_subscription(self.db, subscription, now)
        self.engine.reload_subscriptions()

    def liquidate(self, *events: Liquidation) -> None:
        self.core.on_liquidations(list(events))

    async def deliver(self) -> dict[str, list[str]]:
        """Drain the outbox; each message delivered since the last call, by chat, as its
        `headline`."""
        await self.core.workers[PLATFORM].drain()
        new = self.sent.rows[self._seen :]
        self._seen = len(self.sent.rows)
        by_chat: dict[str, list[str]] = {}
        for row in new:
            by_chat.setdefault(row.chat_id, []).append(headline(row.text))
        return by_chat

    async def step(self, now: int) -> dict[str, list[str]]:
        """One engine pass at `now`, then delivery."""
        self.clock.now = now
        await self.engine.evaluate(now)
        return await self.deliver()

    async def schedule(self, now: int) -> dict[str, list[str]]:
        """The clock tick and the scheduled-alerts job of `liqbot run` at `now`, then delivery."""
        self.clock.now = now
        self.core.market.advance(now)
        await self.engine.scheduled(now)
        return await self.deliver()


def outbox(path: Path) -> list[tuple[str, str, str]]:
    """(chat id, rule, status) of every outbox row, oldest first, read over a new connection."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT chat_id, rule, status FROM outbox ORDER BY id").fetchall()
    finally:
        connection.close()


def rule_states(path: Path) -> dict[tuple[str, str, str], bool]:
    """(chat key, rule, asset) -> armed, read over a new connection."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT chat, rule, asset, armed FROM rule_state").fetchall()
    finally:
        connection.close()
    return {(chat, rule, asset): bool(armed) for chat, rule, asset, armed in rows}
