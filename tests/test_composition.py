"""The composition root at work: the real App against the fake venues, a task killed mid-flight
and restarted by the supervisor, a Fatal condition ending `run`; the chats service saving
through the writer thread before the engine and the outbox hear of it."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from bot import main
from bot.chats import ChatService, Outboxes
from bot.clock import now_ms
from bot.commands import ChatRef, CommandCore
from bot.config import Settings, load_settings
from bot.main import App, run_forever
from bot.model import Liquidation, Subscription, Thresholds
from bot.supervisor import Fatal
from bot.writer import Writer
from storage import alerts, market_data, open_database
from tests.clock import ManualClock
from tests.fakes import force_order
from tests.harness import WAIT, Fakes, write_config


def count(app: App, table: str) -> int:
    return int(app.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_a_task_killed_mid_flight_is_logged_counted_and_restarted(
    tmp_path: Path, fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    binance = fakes[0]
    app = await App.open(load_settings(write_config(tmp_path, fakes)))
    app.supervisor.backoff_min = 0.05  # the first restart after 50 ms, not 1 s
    deliver = app.core.on_liquidations
    calls = 0

    def killed_once(events: list[Liquidation]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("killed mid-flight")
        deliver(events)

    app.core.on_liquidations = killed_once  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        with caplog.at_level(logging.WARNING, "bot.supervisor"):
            async with asyncio.timeout(WAIT):
                await binance.wait_for_connections(1)
                await binance.push(force_order("BTCUSDT", "SELL", "1", "91000", now_ms()))
                await binance.wait_for_connections(2)  # the collector, restarted, reconnected
                await binance.push(force_order("BTCUSDT", "BUY", "2", "91000", now_ms()))
                await app.recorder.wait_for(lambda: count(app, "events") == 1)
        restarted = {name: n for name, n in app.supervisor.restarts().items() if n}
        assert len(restarted) == 1  # every other task ran on undisturbed
        [(name, times)] = restarted.items()
        assert (name, times) == ("collector-binance-0", 1)
        assert set(app.supervisor.states().values()) == {"running"}
        crash = next(r for r in caplog.records if r.message.startswith("task "))
        assert crash.message == f"task {name} crashed"
        traceback = crash.exc_text or logging.Formatter().formatException(crash.exc_info)  # type: ignore[arg-type]
        assert "RuntimeError: killed mid-flight" in traceback
        assert app.db.execute("SELECT usd FROM events").fetchall() == [(182_000.0,)]
    finally:
        stop.set()
        await task


async def test_a_fatal_condition_stops_every_task_and_ends_run(
    tmp_path: Path, fakes: Fakes
) -> None:
    binance, _, _ = fakes
    app = await App.open(load_settings(write_config(tmp_path, fakes)))
    connected = asyncio.Event()

    async def storage_gone() -> None:
        await binance.wait_for_connections(1)
        connected.set()
        raise Fatal("storage: the database is damaged (file is not a database); stopping")

    app.core.engine.run = storage_gone  # type: ignore[method-assign]
    with pytest.raises(Fatal) as fatal:
        async with asyncio.timeout(WAIT):
            await app.run(asyncio.Event())
    assert connected.is_set()
    assert str(fatal.value).startswith("storage: the database is damaged")
    names = set(app.supervisor.states())
    assert {"recorder", "engine", "outbox-console", "collector-okx-0", "okx-funding"} <= names
    assert [t.get_name() for t in asyncio.all_tasks() if t.get_name() in names] == []


async def test_start_up_reads_storage_on_the_writer_thread(
    tmp_path: Path,
    fakes: Fakes,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The market, the subscriptions, rule states and stories that `liqbot run` starts from are
    read on the writer's thread, never the loop's; the log says what was loaded."""
    config = write_config(tmp_path, fakes)
    db = open_database(load_settings(config).storage.path)
    with db.atomic():
        alerts.save_subscription(db, Subscription("telegram", "1", Thresholds()), now_ms())
    db.close()
    threads: dict[str, str] = {}

    def traced(name: str, read: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: object) -> Any:
            threads[name] = threading.current_thread().name
            return read(*args)

        return call

    for module, name in (
        (market_data, "read_rollups"),
        (market_data, "read_open_interest"),
        (alerts, "active_subscriptions"),
        (alerts, "load_rule_states"),
        (alerts, "load_stories"),
    ):
        monkeypatch.setattr(module, name, traced(name, getattr(module, name)))
    with caplog.at_level(logging.INFO, "bot.main"):
        app = await App.open(load_settings(config))
    await app.close()
    assert sorted(threads) == [
        "active_subscriptions",
        "load_rule_states",
        "load_stories",
        "read_open_interest",
        "read_rollups",
    ]
    assert {thread.split("_")[0] for thread in threads.values()} == {"sqlite-writer"}
    [started] = [r.message for r in caplog.records if r.message.startswith("started in ")]
    assert started.split(": ", 1)[1].startswith("1 chat(s), 0 rule state(s); loop lag meanwhile")


def test_run_forever_turns_fatal_into_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Doomed:
        @classmethod
        async def open(cls, settings: Settings) -> Doomed:
            return cls()

        async def run(self, stop: asyncio.Event) -> None:
            raise Fatal("storage: the database could not be written for 900 s (disk full)")

    monkeypatch.setattr(main, "App", Doomed)
    with caplog.at_level(logging.INFO, "bot.main"):
        assert run_forever(load_settings(None)) == 1
    assert [(r.levelname, r.message) for r in caplog.records] == [
        ("ERROR", "storage: the database could not be written for 900 s (disk full)")
    ]


# -- the chats service ---------------------------------------------------------------------


class Observer:
    """Stands in for the engine and an outbox worker; notes what each heard, in order, and
    what a second connection saw in the database at that moment."""

    def __init__(self, path: Path) -> None:
        self.reader = Database(path)
        self.heard: list[tuple[str, str, bool | None]] = []

    def subscription_changed(self, sub: Subscription) -> None:
        row = alerts.load_subscription(self.reader, sub.platform, sub.chat_id)
        self.heard.append(("engine", sub.key, row.active if row else None))

    def wake(self) -> None:
        self.heard.append(("outbox", "telegram", None))


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[ChatService, Observer]]:
    path = tmp_path / "chats.db"
    writer = await Writer.start(lambda: open_database(path))
    observer = Observer(path)
    outboxes = Outboxes()
    outboxes.add("telegram", observer)
    chats = ChatService(open_database(path), writer, observer, outboxes, ManualClock())
    running = asyncio.create_task(chats.run())
    yield chats, observer
    running.cancel()
    await writer.close()


async def test_a_save_is_committed_before_the_engine_hears_then_the_outbox_wakes(
    service: tuple[ChatService, Observer],
) -> None:
    chats, observer = service
    sub = Subscription("telegram", "42", Thresholds(liq=5e6))
    saving = chats.save(sub)
    assert chats.load("telegram", "42") == sub  # staged: a command reading now sees it
    assert observer.heard == []
    await saving
    assert observer.heard == [("engine", "telegram:42", True), ("outbox", "telegram", None)]
    assert chats.load("telegram", "42") == sub  # from the database now


async def test_a_chat_gone_or_moved_is_applied_in_order_and_the_engine_told(
    service: tuple[ChatService, Observer],
) -> None:
    chats, observer = service
    await chats.save(Subscription("telegram", "-5"))
    await chats.save(Subscription("telegram", "7"))
    observer.heard.clear()
    chats.chat_changed("telegram", "7", None)
    await chats.chat_changed("telegram", "-5", "-1005")
    assert observer.heard == [
        ("engine", "telegram:7", False),
        ("outbox", "telegram", None),
        ("engine", "telegram:-5", None),  # the old id: no subscription any more
        ("engine", "telegram:-1005", True),
        ("outbox", "telegram", None),
    ]
    moved = chats.load("telegram", "-1005")
    assert moved is not None and moved.active
    assert chats.load("telegram", "-5") is None


async def test_a_setting_storage_cannot_take_is_refused_clearly_and_changes_nothing(
    service: tuple[ChatService, Observer],
) -> None:
    chats, observer = service
    await chats.save(Subscription("telegram", "42"))
    await chats.writer.call(lambda db: db.execute("PRAGMA query_only = 1"))
    observer.heard.clear()
    commands = CommandCore(chats, Thresholds(), status=dict)

    async def admin() -> bool:
        return True

    reply = await commands.handle("set", ChatRef("telegram", "42"), ["liq", "250m"], admin)
    assert reply is not None
    assert reply.text == "liqbot cannot save settings right now; try again in a few minutes."
    assert observer.heard == []
    assert chats.load("telegram", "42") == Subscription("telegram", "42")
