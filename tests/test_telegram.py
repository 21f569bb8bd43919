"""liqbot run with Telegram, end to end: the real python-telegram-bot against a fake Bot API
that enforces Telegram's limits, and the venue fakes feeding a cascade. The limits and waits run
at `SCALE` of their length, in the bot and the fake alike (tests/pacing.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import commands
from bot.clock import now_ms
from bot.config import load_settings
from bot.main import App
from storage import alerts
from tests.fakes import FakeTelegram, force_order
from tests.harness import WAIT, Fakes, write_config
from tests.pacing import fake_telegram, quicken

ALICE, BOB, CAROL, DAVE = 1001, 1002, 1003, 1004  # private chats (chat id = user id)
GROUP, GROUP_ADMIN, GROUP_MEMBER = -2001, 501, 502


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with fake_telegram() as fake:
        fake.set_member(GROUP, GROUP_ADMIN, "administrator")
        fake.set_member(GROUP, GROUP_MEMBER, "member")
        yield fake


def config_with_telegram(tmp_path: Path, fakes: Fakes, telegram: FakeTelegram) -> Path:
    config = write_config(tmp_path, fakes)
    config.write_text(
        config.read_text()
        + f'\n[telegram]\ntoken = "{telegram.token}"\napi_url = "{telegram.base_url}"\n'
        + '[defaults]\nwindow = "5m"\nfunding_rate_8h = 0\noi_change = 0\n'
    )
    return config


async def say(telegram: FakeTelegram, chat: int, user: int, text: str, first_words: str) -> str:
    """Send a command and wait for its reply, which must start with `first_words`."""
    chat_type = "group" if chat < 0 else "private"
    before = len(telegram.messages_to(chat))
    telegram.enqueue(telegram.command(chat, user, text, chat_type=chat_type))
    await telegram.wait_until(lambda: len(telegram.messages_to(chat)) > before)
    reply = telegram.messages_to(chat)[before]
    assert reply.startswith(first_words), reply
    return reply


def headlines(telegram: FakeTelegram, chat: int) -> list[str]:
    return [m.splitlines()[0] for m in telegram.messages_to(chat) if " liquidated in " in m]


async def test_subscribe_set_cascade_refusal_block_and_restart(
    tmp_path: Path, fakes: Fakes, telegram: FakeTelegram
) -> None:
    binance = fakes[0]
    settings = load_settings(config_with_telegram(tmp_path, fakes, telegram))
    app = quicken(await App.open(settings))
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    async with asyncio.timeout(WAIT * 3):
        await telegram.wait_until(lambda: bool(telegram.commands))
        assert [c["command"] for c in telegram.commands][:5] == [
            "start",
            "help",
            "subscribe",
            "unsubscribe",
            "status",
        ]

        await say(telegram, ALICE, ALICE, "/subscribe", "Subscribed.")
        saved = await say(telegram, ALICE, ALICE, "/set liq 40k", "Saved.")
        assert "liq: $40K in 5m, any side" in saved
        refused = await say(telegram, ALICE, ALICE, "/set liq lots", "'lots' is not")
        assert (
            refused == "'lots' is not understood: liq must be from $10K to $100B, or off, e.g. 250m"
        )
        await say(telegram, BOB, BOB, "/subscribe", "Subscribed.")  # the default $100M
        await say(telegram, GROUP, GROUP_MEMBER, "/subscribe", "Only the chat's administrators")
        await say(telegram, GROUP, GROUP_ADMIN, "/subscribe", "Subscribed.")
        await say(telegram, GROUP, GROUP_ADMIN, "/set liq 45k", "Saved.")
        status = await say(telegram, GROUP, GROUP_MEMBER, "/status", "liqbot status")
        assert "lower bounds" in status
        await say(telegram, CAROL, CAROL, "/subscribe", "Subscribed.")
        await say(telegram, CAROL, CAROL, "/set whale 10k", "Saved.")
        telegram.block_chat(CAROL)
        # The chats' first passes settle them (what is already crossed then starts disarmed).
        await app.core.recorder.wait_for(
            lambda: all(
                app.core.engine.has_settled(f"telegram:{chat}") for chat in (ALICE, GROUP, CAROL)
            )
        )

        await binance.push(force_order("BTCUSDT", "SELL", "0.5", "91000", now_ms()))
        await telegram.wait_until(
            lambda: bool(headlines(telegram, ALICE) and headlines(telegram, GROUP))
        )
        await app.core.chats.wait_for(
            lambda: not (alerts.load_subscription(app.db, "telegram", str(CAROL)) or 0).active  # type: ignore[union-attr]
        )
        assert headlines(telegram, ALICE) == ["$45.5K liquidated in 5m, 100% longs"]
        assert headlines(telegram, GROUP) == ["$45.5K liquidated in 5m, 100% longs"]
        assert headlines(telegram, BOB) == []
        assert telegram.rejected_429 == 0
        stop.set()
        await task

        sent_before = len(telegram.sent)
        again = quicken(await App.open(settings))
        assert {s.chat_id for s in alerts.active_subscriptions(again.db)} == {
            str(ALICE),
            str(BOB),
            str(GROUP),
        }
        assert (
            await again.core.engine.evaluate(now_ms()) == 0
        )  # the same market: nothing new decided
        await again.core.workers["telegram"].drain()
        assert len(telegram.sent) == sent_before


async def test_removed_bot_and_migrated_group_update_the_subscription(
    tmp_path: Path, fakes: Fakes, telegram: FakeTelegram
) -> None:
    settings = load_settings(config_with_telegram(tmp_path, fakes, telegram))
    app = quicken(await App.open(settings))
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    async with asyncio.timeout(WAIT * 2):
        await say(telegram, GROUP, GROUP_ADMIN, "/subscribe", "Subscribed.")
        await say(telegram, ALICE, ALICE, "/subscribe", "Subscribed.")
        telegram.enqueue(telegram.migrate(GROUP, -1002001))
        telegram.enqueue(telegram.my_chat_member(ALICE, "member", "kicked", chat_type="private"))
        await telegram.wait_until(lambda: len(telegram.pending) == 0)
        await app.core.chats.wait_for(
            lambda: {s.chat_id for s in alerts.active_subscriptions(app.db)} == {"-1002001"}
        )
        await say(telegram, ALICE, ALICE, "/subscribe", "Subscribed.")  # resumed
        assert {s.chat_id for s in alerts.active_subscriptions(app.db)} == {"-1002001", str(ALICE)}
    stop.set()
    await task


async def start_app(
    tmp_path: Path, fakes: Fakes, telegram: FakeTelegram
) -> tuple[App, asyncio.Event, asyncio.Task[None]]:
    app = quicken(await App.open(load_settings(config_with_telegram(tmp_path, fakes, telegram))))
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    await telegram.wait_until(lambda: bool(telegram.commands))  # polling has begun
    return app, stop, task


async def test_one_chats_pace_never_delays_another_chats_help(
    tmp_path: Path, fakes: Fakes, telegram: FakeTelegram
) -> None:
    _, stop, task = await start_app(tmp_path, fakes, telegram)
    busy = (ALICE, BOB, CAROL)
    async with asyncio.timeout(WAIT * 2):
        for chat in busy:  # each chat's replies go at most one per 1.1 s: 4 take 3.3 s (scaled)
            for _ in range(4):
                telegram.enqueue(telegram.command(chat, chat, "/help"))
        telegram.enqueue(telegram.command(DAVE, DAVE, "/help"))
        await telegram.wait_until(lambda: bool(telegram.messages_to(DAVE)))
        first = min(m.time for m in telegram.sent)
        dave = next(m.time for m in telegram.sent if m.chat_id == DAVE)
        # Served one at a time, it would have come after 12 replies (9.9 s, 1.8 s scaled); 0.5 s
        # allows for the replies ahead of it at the free pace (1/30 s each, not scaled).
        assert dave - first < 0.5
        assert telegram.messages_to(DAVE)[0].startswith("/start - ")
        await telegram.wait_until(lambda: all(len(telegram.messages_to(c)) == 4 for c in busy))
        assert telegram.rejected_429 == 0
    stop.set()
    await task


async def test_an_edited_message_does_not_run_its_command(
    tmp_path: Path, fakes: Fakes, telegram: FakeTelegram
) -> None:
    app, stop, task = await start_app(tmp_path, fakes, telegram)
    async with asyncio.timeout(WAIT):
        edited = telegram.command(ALICE, ALICE, "/subscribe")
        edited["edited_message"] = edited.pop("message") | {"edit_date": 1_764_000_000}
        telegram.enqueue(edited)
        await say(telegram, ALICE, ALICE, "/help", "/start - ")
        assert len(telegram.messages_to(ALICE)) == 1  # the /help reply only
        assert alerts.load_subscription(app.db, "telegram", str(ALICE)) is None
        polls = [params for method, params in telegram.calls if method == "getUpdates"]
        assert polls[0]["allowed_updates"] == [
            "message",
            "callback_query",
            "my_chat_member",
            "channel_post",
        ]
    stop.set()
    await task


async def test_a_member_spamming_a_group_leaves_the_admin_answered(
    tmp_path: Path, fakes: Fakes, telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commands, "COMMAND_RATE", 2)  # the budget, small to keep this quick
    _, stop, task = await start_app(tmp_path, fakes, telegram)
    async with asyncio.timeout(WAIT * 2):
        for _ in range(2):
            await say(telegram, GROUP, GROUP_MEMBER, "/subscribe", "Only the chat's administrators")
        await say(telegram, GROUP, GROUP_MEMBER, "/subscribe", "Too many commands")
        telegram.enqueue(telegram.command(GROUP, GROUP_MEMBER, "/subscribe", chat_type="group"))
        await say(telegram, GROUP, GROUP_ADMIN, "/subscribe", "Subscribed.")
        assert len(telegram.messages_to(GROUP)) == 4  # the 4th spam got no reply
    stop.set()
    await task
