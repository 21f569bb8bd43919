"""Self-tests of the fake Telegram Bot API, driven by the real python-telegram-bot."""

from __future__ import annotations

import asyncio
import datetime as dtm
import warnings
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from telegram import (
    Bot,
    BotCommand,
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberMember,
    ChatMemberOwner,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Update,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    TypeHandler,
)

from tests.fakes import FakeTelegram

# PTB warns on every RetryAfter that retry_after will become a timedelta (PTB_TIMEDELTA).
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

TOKEN = "123456:TEST-TOKEN"


class FrozenClock:
    """Milliseconds that only move when a test says so."""

    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def fake(clock: FrozenClock) -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as fake:
        fake.clock = clock
        yield fake


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=f"{fake.base_url}/bot") as bot:
        yield bot


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else value


async def test_bot_methods(fake: FakeTelegram, bot: Bot, clock: FrozenClock) -> None:
    assert bot.username == "liqbot_test_bot"
    assert (await bot.get_me()).id == 123456
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Mute", callback_data="mute")]])
    message = await bot.send_message(
        42,
        "<b>BTC</b> long &amp; short",
        parse_mode="HTML",
        reply_markup=markup,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    assert (message.message_id, message.text) == (1, "BTC long & short")
    assert message.reply_markup == markup
    clock.advance(1)
    assert (await bot.send_message(42, "again")).message_id == 2
    [first, second] = fake.sent
    assert (first.chat_id, first.parse_mode, first.link_preview_options) == (
        42,
        "HTML",
        {"is_disabled": True},
    )
    assert first.reply_markup == markup.to_dict()
    assert fake.messages_to(42) == ["BTC long & short", "again"]
    assert second.time == first.time + 1

    await bot.set_my_commands([BotCommand("start", "Subscribe"), BotCommand("stop", "Leave")])
    assert fake.commands == [
        {"command": "start", "description": "Subscribe"},
        {"command": "stop", "description": "Leave"},
    ]

    assert isinstance(await bot.get_chat_member(-100, 7), ChatMemberMember)
    fake.set_member(-100, 7, "administrator")
    fake.set_member(-100, 8, "creator")
    fake.set_member(-100, 9, "kicked")
    assert isinstance(await bot.get_chat_member(-100, 7), ChatMemberAdministrator)
    assert isinstance(await bot.get_chat_member(-100, 8), ChatMemberOwner)
    assert isinstance(await bot.get_chat_member(-100, 9), ChatMemberBanned)
    assert (await bot.get_chat(-100)).type == "group"

    clock.advance(1)
    photo = await bot.send_photo(42, "https://example.com/chart.png", caption="chart")
    assert (photo.caption, fake.sent[-1].photo) == ("chart", "https://example.com/chart.png")


async def test_application_polls_and_replies(fake: FakeTelegram) -> None:
    seen: list[Update] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        button = InlineKeyboardButton("Mute", callback_data="mute")
        await context.bot.send_message(
            update.effective_chat.id, "subscribed", reply_markup=InlineKeyboardMarkup([[button]])
        )

    async def press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("muted")
        await query.edit_message_text(f"muted by {query.from_user.username}")

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(update)

    app = ApplicationBuilder().token(TOKEN).base_url(f"{fake.base_url}/bot").build()
    app.add_handler(TypeHandler(Update, record), group=-1)
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(press))
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        fake.enqueue(fake.command(-1001, 7, "/start@liqbot_test_bot", "supergroup", "alice"))
        await fake.wait_for_sent(1)
        assert fake.messages_to(-1001) == ["subscribed"]

        fake.enqueue(fake.callback(-1001, 7, "mute"))
        await fake.wait_until(lambda: bool(fake.edits))
        assert fake.answered[0]["text"] == "muted"
        [reply], [edit] = fake.sent, fake.edits
        assert (edit.text, edit.message_id) == ("muted by alice", reply.message_id)

        fake.enqueue(fake.my_chat_member(55, "member", "kicked", "private"))
        fake.enqueue(fake.migrate(-77, -1000077))
        await fake.wait_until(lambda: len(seen) == 4)
        member_update, migration = seen[2], seen[3]
        assert member_update.my_chat_member is not None
        assert member_update.my_chat_member.new_chat_member.status == "kicked"
        assert migration.message is not None
        assert migration.message.migrate_to_chat_id == -1000077
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert fake.pending == []  # PTB's last getUpdates confirmed everything


async def test_per_chat_limit(fake: FakeTelegram, bot: Bot, clock: FrozenClock) -> None:
    await bot.send_message(5, "one")
    for text in ("two", "three"):
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(5, text)
        assert retry_seconds(caught.value) == 1
    assert fake.rejected_429 == 2
    clock.advance(1)
    await bot.send_message(5, "four")
    assert fake.messages_to(5) == ["one", "four"]


async def test_global_limit(fake: FakeTelegram, bot: Bot, clock: FrozenClock) -> None:
    for chat in range(1, 31):
        await bot.send_message(chat, "hi")
    clock.advance(0.5)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(31, "hi")
    assert retry_seconds(caught.value) == 1
    clock.advance(0.5)
    await bot.send_message(31, "hi")


async def test_paid_limit(fake: FakeTelegram, bot: Bot, clock: FrozenClock) -> None:
    """Flagged sends pass the free 30 a second up to 1,000 sends of any kind (here 40); free
    sends still stop at 30 free ones; the chat limit holds for both."""
    fake.paid_per_second = 40
    for chat in range(1, 31):
        await bot.send_message(chat, "free")
    with pytest.raises(RetryAfter):
        await bot.send_message(31, "free")
    for chat in range(31, 41):
        await bot.send_message(chat, "paid", allow_paid_broadcast=True)
    with pytest.raises(RetryAfter):
        await bot.send_message(41, "paid", allow_paid_broadcast=True)  # 40 sends this second
    assert (fake.paid_sent, fake.rejected_429, len(fake.sent)) == (10, 2, 40)
    clock.advance(1)
    await bot.send_message(41, "paid", allow_paid_broadcast=True)
    with pytest.raises(RetryAfter):
        await bot.send_message(41, "again", allow_paid_broadcast=True)  # 1 a second in a chat
    assert (fake.paid_sent, fake.rejected_429) == (11, 3)


async def test_group_limit(fake: FakeTelegram, bot: Bot, clock: FrozenClock) -> None:
    for _ in range(20):
        await bot.send_message(-100, "alert")
        clock.advance(1)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(-100, "alert")
    assert retry_seconds(caught.value) == 40
    await bot.send_message(100, "private chats are not limited per minute")
    clock.advance(40)
    await bot.send_message(-100, "alert")


async def test_window_scale_and_switch(clock: FrozenClock) -> None:
    async with FakeTelegram(TOKEN, window_scale=0.01) as fake:
        fake.clock = clock
        async with Bot(TOKEN, base_url=f"{fake.base_url}/bot") as bot:
            await bot.send_message(5, "one")
            with pytest.raises(RetryAfter):
                await bot.send_message(5, "two")
            clock.advance(0.01)
            await bot.send_message(5, "three")
            fake.enforce_limits = False
            await bot.send_message(5, "four")
    assert fake.messages_to(5) == ["one", "three", "four"]


async def test_errors(fake: FakeTelegram, bot: Bot) -> None:
    fake.block_chat(10)
    fake.forget_chat(11)
    fake.migrate_chat(-12, -10012)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(10, "hi")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(11, "hi")
    with pytest.raises(ChatMigrated) as migrated:
        await bot.send_message(-12, "hi")
    assert migrated.value.new_chat_id == -10012
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(13, "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(14, "price < 5", parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", chat_id=15, message_id=99)
    fake.fail_next("sendMessage", 502, body={"ok": False, "error_code": 502})
    with pytest.raises(NetworkError):
        await bot.send_message(16, "hi")
    await bot.send_message(16, "hi")
    assert fake.messages_to(16) == ["hi"]
    assert fake.rejected_429 == 0
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=f"{fake.base_url}/bot"):
            pass


async def test_raw_wire_long_polling(fake: FakeTelegram) -> None:
    url = f"{fake.base_url}/bot{TOKEN}"
    async with aiohttp.ClientSession() as session:

        async def call(method: str, **params: object) -> Any:
            async with session.post(f"{url}/{method}", json=params) as response:
                body = await response.json()
                assert body["ok"], body
                return body["result"]

        assert await call("getUpdates", timeout=0.05) == []  # waits, then gives up

        poll = asyncio.create_task(call("getUpdates", timeout=5))
        await fake.wait_until(lambda: len(fake.calls) == 2)
        first = fake.enqueue(fake.text_message(3, 3, "hello"))
        [update] = await asyncio.wait_for(poll, 1)
        assert update["update_id"] == first
        assert update["message"]["text"] == "hello"

        second = fake.enqueue(fake.text_message(3, 3, "again"))
        updates = await call("getUpdates", timeout=5)
        assert [u["update_id"] for u in updates] == [first, second]
        assert await call("getUpdates", offset=second + 1) == []
        assert fake.pending == []

        query = {"chat_id": "3", "user_id": "3"}
        async with session.get(f"{url}/getChatMember", params=query) as response:
            assert (await response.json())["result"]["status"] == "member"
