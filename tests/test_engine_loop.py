"""The engine's mechanics on the loop: settings changes applied one chat at a time, recording
through the writer thread, rule states changed only once the write commits, and what a chat gets
when it arrives while a threshold is already crossed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest
from sqlite_utils import Database

from bot import engine
from bot.engine import MIN_PASS_INTERVAL, PRIMED, AlertEngine, read_index
from bot.model import RuleState
from bot.writer import Writer
from storage import alerts, open_database
from tests.clock import ManualClock
from tests.engine_builders import (
    MINUTE,
    SECOND,
    T0,
    Bot,
    liq,
    outbox,
    rule_states,
    seed_history,
    sub,
)

T = TypeVar("T")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "liqbot.db"


def counts(delivered: dict[str, list[str]]) -> dict[str, int]:
    """How many messages each chat got (the texts are tested elsewhere)."""
    return {chat: len(texts) for chat, texts in delivered.items()}


def save(bot: Bot, *subs: object) -> None:
    """Save settings and tell the engine, as the chats service does."""
    for subscription in subs:
        assert isinstance(subscription, alerts.Subscription)
        with bot.db.atomic():
            alerts.save_subscription(bot.db, subscription, T0)
        bot.engine.subscription_changed(subscription)


async def test_a_chat_arriving_over_its_threshold_fires_only_at_the_next_crossing(
    path: Path,
) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("old", liq=100_000, window="5m"))
    bot.liquidate(liq("BTC", "long", 150_000, T0))
    save(bot, sub("new", liq=100_000, window="5m"))

    assert counts(await bot.step(T0 + SECOND)) == {"old": 1}
    assert rule_states(path) == {
        ("telegram:old", "window", "*"): False,
        ("telegram:new", "window", "*"): False,  # recorded disarmed, without a message
    }
    assert await bot.step(T0 + 6 * MINUTE) == {}  # the window emptied: both re-arm
    bot.liquidate(liq("BTC", "long", 150_000, T0 + 6 * MINUTE))
    assert counts(await bot.step(T0 + 6 * MINUTE + SECOND)) == {"old": 1, "new": 1}


async def test_a_fresh_deployment_over_thresholds_sends_nothing_until_the_next_crossing(
    path: Path,
) -> None:
    seed_history(path, [liq("BTC", "long", 150_000, T0 - MINUTE)])
    db = open_database(path)
    with db.atomic():
        for chat in ("a", "b", "c"):
            alerts.save_subscription(db, sub(chat, liq=100_000, window="5m", whale=100_000), T0)
    db.conn.close()

    bot = Bot(path, T0)  # no rule state recorded yet: a fresh deployment
    assert await bot.step(T0) == {}
    assert set(rule_states(path).values()) == {False}
    assert len(rule_states(path)) == 3
    whale = liq("ETH", "short", 200_000, T0 + SECOND)  # a new event: fires
    bot.liquidate(whale)
    assert counts(await bot.step(T0 + 2 * SECOND)) == {"a": 1, "b": 1, "c": 1}


async def test_many_committed_states_join_memory_in_slices_whichever_dict_is_bigger(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "SLICE_STATES", 2)  # more than 2 states: applied in slices
    bot = Bot(path, T0)
    bot.subscribe(sub("x", liq=100_000, window="5m"))
    bot.liquidate(liq("BTC", "long", 150_000, T0))
    assert counts(await bot.step(T0 + SECOND)) == {"x": 1}
    save(bot, *(sub(chat, liq=100_000, window="1h", whale=100_000) for chat in "pqr"))

    # x re-arms, p, q and r arrive over their threshold: 4 new states into a dict of 1.
    assert await bot.step(T0 + 6 * MINUTE) == {}
    window = {(f"telegram:{chat}", "window", "*"): PRIMED for chat in "pqr"}
    x = ("telegram:x", "window", "*")
    assert bot.engine.states == {x: RuleState(True, T0 + SECOND), **window}

    # x fires again and three whales: 4 new states into a dict of 4.
    bot.liquidate(liq("ETH", "short", 200_000, T0 + 7 * MINUTE))
    now = T0 + 7 * MINUTE + SECOND
    assert counts(await bot.step(now)) == {"x": 1, "p": 1, "q": 1, "r": 1}
    whales = {(f"telegram:{chat}", "whale", "ETH"): RuleState(True, now) for chat in "pqr"}
    assert bot.engine.states == {x: RuleState(False, now, 200_000.0), **window, **whales}
    assert rule_states(path) == {key: state.armed for key, state in bot.engine.states.items()}


async def test_a_removed_chat_gets_nothing_and_a_changed_one_fires_at_its_new_threshold(
    path: Path,
) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("a", liq=100_000, window="5m"), sub("b", liq=500_000, window="5m"))
    save(bot, replace(sub("a", liq=100_000, window="5m"), active=False))
    save(bot, sub("b", liq=120_000, window="5m"))
    bot.liquidate(liq("BTC", "long", 150_000, T0))
    assert counts(await bot.step(T0 + SECOND)) == {"b": 1}
    assert sorted(bot.engine.book.by_key) == ["telegram:b"]


class FailingWriter(Writer):
    """A writer whose next `fail` calls raise as a full disk does."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, None)
        self.fail = 0

    async def call(self, work: Callable[[Database], T]) -> T:
        if self.fail:
            self.fail -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return await super().call(work)


async def test_a_failed_write_changes_nothing_in_memory_and_the_next_pass_decides_again(
    path: Path,
) -> None:
    bot = Bot(path, T0)
    writer = FailingWriter(bot.db)
    bot.engine.writer = writer
    bot.subscribe(sub("a", liq=100_000, window="5m"), sub("w", whale=100_000))
    bot.liquidate(liq("BTC", "long", 150_000, T0))
    writer.fail = 1
    with pytest.raises(sqlite3.OperationalError):
        await bot.engine.evaluate(T0 + SECOND)
    assert bot.engine.states == {}
    assert bot.engine.arming.contexts["window"] == {}
    assert outbox(path) == []

    # The whale seen before the failure is kept for the pass that records.
    assert counts(await bot.step(T0 + 2 * SECOND)) == {"a": 1, "w": 1}
    assert bot.engine.states.keys() == {
        ("telegram:a", "window", "*"),
        ("telegram:w", "whale", "BTC"),
    }


async def test_the_run_loop_logs_a_failed_write_and_records_at_the_next_pass(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot(path, T0)
    writer = FailingWriter(bot.db)
    clock = ManualClock(T0 + SECOND)
    bot.engine.writer, bot.engine.clock = writer, clock
    bot.subscribe(sub("a", liq=100_000, window="1h"))
    writer.fail = 1
    recorded = asyncio.Event()
    bot.engine.on_enqueued = lambda platforms: recorded.set()
    bot.liquidate(liq("BTC", "long", 150_000, T0))
    task = asyncio.create_task(bot.engine.run())
    try:
        await clock.advance(0)  # the first pass, which fails
        assert "alert pass not recorded (database or disk is full)" in caplog.text
        assert outbox(path) == []
        await clock.advance(MIN_PASS_INTERVAL)  # the next pass
        assert recorded.is_set()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert outbox(path) == [("a", "window", "pending")]


async def test_recording_runs_on_the_writer_thread(path: Path) -> None:
    bot = Bot(path, T0)
    threads: list[str] = []
    writer = await Writer.start(lambda: open_database(path))
    real_call = writer.call

    async def call(work: Callable[[Database], T]) -> T:
        def traced(db: Database) -> T:
            threads.append(threading.current_thread().name)
            return work(db)

        return await real_call(traced)

    writer.call = call  # type: ignore[method-assign]
    core = bot.core
    index = read_index(bot.db)
    engine = AlertEngine(bot.db, core.market, core.norms, core.derivatives, index, writer=writer)
    try:
        with bot.db.atomic():
            alerts.save_subscription(bot.db, sub("a", liq=100_000), T0)
        engine.subscription_changed(sub("a", liq=100_000))
        assert await engine.evaluate(T0) == 0  # its first pass: nothing was crossed
        engine.on_liquidations([event := liq("BTC", "long", 150_000, T0)])
        bot.core.market.add(event)
        assert await engine.evaluate(T0 + SECOND) == 1
    finally:
        await writer.close()
    assert threads and all(name.startswith("sqlite-writer") for name in threads)
    assert outbox(path) == [("a", "window", "pending")]


async def test_a_settings_change_during_a_pass_applies_when_the_pass_ends(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("a", liq=100_000, window="5m"))
    gate = asyncio.Event()
    real_call = bot.engine.writer.call

    async def held(work: Callable[[Database], T]) -> T:
        await gate.wait()
        return await real_call(work)

    bot.engine.writer.call = held  # type: ignore[method-assign]
    bot.liquidate(liq("BTC", "long", 150_000, T0))
    passing = asyncio.create_task(bot.engine.evaluate(T0 + SECOND))
    await asyncio.sleep(0.01)
    bot.engine.subscription_changed(replace(sub("a", liq=100_000, window="5m"), active=False))
    assert "telegram:a" in bot.engine.book.by_key  # the pass in flight keeps its index
    gate.set()
    assert await passing == 1
    assert bot.engine.book.by_key == {}
