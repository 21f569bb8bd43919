"""Telegram at community scale: channels (commands as channel posts, alerts to the channel,
removal and lost rights), paid broadcasts (the flag on alert sends only, the paid pace without
429s) and the delivery order (the most readers first; no chat waits behind another's retries).
`liqbot run` (the real App, python-telegram-bot, the outbox worker) against the fake Bot API,
fed the update shapes Telegram sends (`channel_post` with `sender_chat` and no `from`,
`my_chat_member` in a channel)."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.alert import plain
from bot.clock import now_ms
from bot.config import load_settings
from bot.delivery_order import delivery_priority
from bot.main import App
from bot.model import OutboxItem, Subscription
from bot.ratelimit import Limit, Pacer
from storage import alerts
from tests.fakes import FakeTelegram
from tests.harness import WAIT, Fakes, write_config
from tests.pacing import SCALE, fake_telegram, quicken

CHANNEL, OTHER_CHANNEL = -1001500000001, -1001500000002
GROUP, BIG_GROUP, ADMIN = -1001600000001, -1001600000002, 501
ALICE, BOB = 1001, 1002
_keys = itertools.count(1)


@dataclass
class Bot:
    app: App
    fake: FakeTelegram

    async def post(self, channel: int, text: str, first_words: str) -> str:
        """Post in a channel; the bot's next post there, which must start with `first_words`."""
        before = len(self.fake.messages_to(channel))
        self.fake.enqueue(self.fake.channel_post(channel, text))
        await self.fake.wait_until(lambda: len(self.fake.messages_to(channel)) > before)
        reply = self.fake.messages_to(channel)[before]
        assert reply.startswith(first_words), reply
        return reply

    async def say(self, chat: int, user: int, text: str, first_words: str) -> str:
        chat_type = "private" if chat > 0 else "supergroup"
        before = len(self.fake.messages_to(chat))
        self.fake.enqueue(self.fake.command(chat, user, text, chat_type=chat_type))
        await self.fake.wait_until(lambda: len(self.fake.messages_to(chat)) > before)
        reply = self.fake.messages_to(chat)[before]
        assert reply.startswith(first_words), reply
        return reply

    def active(self, chat: int) -> bool:
        sub = alerts.load_subscription(self.app.db, "telegram", str(chat))
        return sub is not None and sub.active

    def alert(self, *chats: int, text: str = "$352M liquidated in 1h, 90% longs") -> None:
        """One alert to each chat, recorded in one transaction in this order (as the engine
        records a fan-out), then the worker is woken."""
        items = [
            OutboxItem(
                f"scale-{next(_keys)}", "telegram", str(c), "window", "BTC", None, (plain(text),)
            )
            for c in chats
        ]
        with self.app.db.atomic():
            alerts.enqueue(self.app.db, items, now_ms())
        self.app.core.workers["telegram"].wake()

    def alert_sends(self) -> list[tuple[int, dict[str, object]]]:
        return [
            (int(str(params["chat_id"])), params)
            for method, params in self.fake.calls
            if method == "sendMessage" and " liquidated in " in str(params.get("text"))
        ]


@asynccontextmanager
async def running(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram, extra: str = "", scaled: bool = True
) -> AsyncIterator[Bot]:
    """`liqbot run` with Telegram; its limits and waits at `SCALE`, as `fake`'s must be, unless
    not `scaled`."""
    config = write_config(tmp_path, fakes)
    config.write_text(
        config.read_text()
        + f'\n[telegram]\ntoken = "{fake.token}"\napi_url = "{fake.base_url}"\n{extra}'
        + "[defaults]\nfunding_rate_8h = 0\noi_change = 0\n"  # only the alerts tests record
    )
    app = await App.open(load_settings(config))
    if scaled:
        quicken(app)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        async with asyncio.timeout(WAIT):
            await fake.wait_until(lambda: any(m == "getUpdates" for m, _ in fake.calls))
        yield Bot(app, fake)
    finally:
        stop.set()
        await task


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with fake_telegram() as telegram:
        telegram.set_member(GROUP, ADMIN, "administrator")
        telegram.set_member(BIG_GROUP, ADMIN, "administrator")
        yield telegram


# -- channels ----------------------------------------------------------------------------


async def test_a_channel_subscribes_tunes_gets_alerts_and_unsubscribes_by_posts(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    fake.member_counts[CHANNEL] = 12_345
    async with running(tmp_path, fakes, fake) as bot, asyncio.timeout(WAIT * 2):
        fake.enqueue(fake.my_chat_member(CHANNEL, "left", "administrator", chat_type="channel"))
        subscribed = await bot.post(CHANNEL, "/subscribe", "liqbot alerts are on in this channel.")
        assert subscribed == (
            "liqbot alerts are on in this channel.\n\nAlerts:\n- liquidations reaching $100M in 1h"
        )
        sub = alerts.load_subscription(bot.app.db, "telegram", str(CHANNEL))
        assert sub is not None and sub.active and sub.priority == 1 + 12_345
        assert await bot.post(CHANNEL, "/set liq 250m", "Saved") == (
            "Saved: liq: $250M in 1h, any side"
        )
        assert await bot.post(CHANNEL, "/set side 80%", "Saved") == (
            "Saved: liq: $250M in 1h, one side at least 80%"
        )
        await bot.post(CHANNEL, "/watch BTC ETH", "Watching BTC, ETH.")
        await bot.post(CHANNEL, "/quiet 23:00-07:00 UTC", "Quiet hours 23:00-07:00 UTC")
        await bot.post(CHANNEL, "/digest daily 08:00", "Digest: daily 08:00 (UTC).")
        settings = await bot.post(CHANNEL, "/settings", "Alerts: on")
        assert "liq: $250M in 1h, one side at least 80%" in settings
        await bot.post(CHANNEL, "/status", "liqbot status")
        await bot.post(CHANNEL, "/start", "liqbot posts liquidation")

        bot.alert(CHANNEL)
        await fake.wait_until(lambda: bool(bot.alert_sends()))
        [(chat_id, params)] = bot.alert_sends()
        assert chat_id == CHANNEL and "allow_paid_broadcast" not in params  # free by default

        await bot.post(CHANNEL, "/unsubscribe", "liqbot alerts are off in this channel.")
        assert not bot.active(CHANNEL)
        channel_calls = [(m, p) for m, p in fake.calls if p.get("chat_id") == CHANNEL]
        sends = [p for m, p in channel_calls if m == "sendMessage"]
        # Posts of their own: no buttons, not replies to the command posts; no admin look-ups.
        assert all("reply_markup" not in p and "reply_parameters" not in p for p in sends)
        assert not any(m == "getChatMember" for m, _ in channel_calls)
        assert [m for m, _ in channel_calls].count("getChatMemberCount") == 1  # cached
        assert fake.rejected_429 == 0


async def test_removal_or_lost_posting_rights_pause_a_channel(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    third = -1001500000003
    async with running(tmp_path, fakes, fake) as bot, asyncio.timeout(WAIT * 2):
        for channel in (CHANNEL, OTHER_CHANNEL, third):
            fake.enqueue(fake.my_chat_member(channel, "left", "administrator", chat_type="channel"))
            await bot.post(channel, "/subscribe", "liqbot alerts are on")
        fake.enqueue(fake.my_chat_member(CHANNEL, "administrator", "left", chat_type="channel"))
        fake.enqueue(
            fake.my_chat_member(
                OTHER_CHANNEL, "administrator", "administrator", chat_type="channel", can_post=False
            )
        )
        await bot.app.core.chats.wait_for(
            lambda: not bot.active(CHANNEL) and not bot.active(OTHER_CHANNEL)
        )
        assert bot.active(third)
        # Rights lost without an update reaching liqbot: the send's answer pauses it too.
        fake.my_chat_member(third, "administrator", "administrator", "channel", can_post=False)
        bot.alert(third)
        await bot.app.core.chats.wait_for(lambda: not bot.active(third))
        [row] = bot.app.db.execute(
            "SELECT status, error FROM outbox WHERE chat_id = ?", [str(third)]
        ).fetchall()
        assert row == ("failed", "Need administrator rights in the channel chat")
        # A post in the channel resumes it, as /subscribe does in a group.
        fake.my_chat_member(third, "administrator", "administrator", "channel", can_post=True)
        await bot.post(third, "/subscribe", "liqbot alerts are on")
        assert bot.active(third)


async def test_a_command_on_behalf_of_the_group_is_an_administrators(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    """An anonymous administrator posts as the group: `sender_chat` is the group itself and
    `from` is Telegram's placeholder user, who is no member at all."""
    async with running(tmp_path, fakes, fake) as bot, asyncio.timeout(WAIT):
        update = fake.command(GROUP, 1087968824, "/subscribe", chat_type="supergroup")
        update["message"]["sender_chat"] = update["message"]["chat"]
        fake.enqueue(update)
        await fake.wait_until(lambda: bool(fake.messages_to(GROUP)))
        assert fake.messages_to(GROUP)[0].startswith("Subscribed.")
        assert bot.active(GROUP)


# -- paid broadcasts ---------------------------------------------------------------------


async def test_paid_broadcast_flags_alert_sends_only(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with (
        running(tmp_path, fakes, fake, "paid_broadcast = true\n") as bot,
        asyncio.timeout(WAIT),
    ):
        await bot.say(ALICE, ALICE, "/subscribe", "Subscribed.")
        bot.alert(ALICE)
        await fake.wait_until(lambda: bool(bot.alert_sends()))
        await bot.say(ALICE, ALICE, "/help", "/start - ")
        sends = [p for m, p in fake.calls if m == "sendMessage"]  # a refused one may repeat
        alert = [" liquidated in " in str(p["text"]) for p in sends]
        assert [p.get("allow_paid_broadcast") for p in sends] == [a or None for a in alert]
        assert alert.count(False) >= 2 and fake.paid_sent == 1  # the replies are free


async def test_paid_broadcast_goes_past_the_free_pace_without_a_429(
    tmp_path: Path, fakes: Fakes
) -> None:
    """More than 30 sends in one second: at the free pace the fake would refuse the 31st. At
    Telegram's own time: in a window scaled down, how many sends fit would be the CPU's limit."""
    chats = [ALICE + i for i in range(150)]
    async with (
        FakeTelegram() as fake,
        running(tmp_path, fakes, fake, "paid_broadcast = true\n", scaled=False) as bot,
        asyncio.timeout(WAIT * 2),
    ):
        for chat in chats:
            alerts.save_subscription(bot.app.db, Subscription("telegram", str(chat)), now_ms())
        bot.alert(*chats)
        bot.alert(ALICE)  # a second alert to one chat: still one a second there
        await fake.wait_until(lambda: len(bot.alert_sends()) == len(chats) + 1)
        times = sorted(m.time for m in fake.sent)
        busiest = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
        assert busiest > fake.global_per_second  # 30: the free limit
        assert fake.rejected_429 == 0 and fake.paid_sent == len(chats) + 1
        alice = [m.time for m in fake.sent if m.chat_id == ALICE]
        assert alice[1] - alice[0] >= 1.0


async def test_the_paid_lane_keeps_the_chat_and_group_limits_and_replies_apart() -> None:
    """The pacer alone, with small windows: paid sends beat the free overall limit, yet a
    group still gets at most its count per window, a chat one per its window, and a free send
    (a command reply) is not queued behind paid ones."""
    pacer = Pacer(Limit(2, 0.3), Limit(1, 0.05), per_group=Limit(2, 0.4), paid=Limit(200, 0.3))
    started = time.monotonic()
    for index in range(20):
        await pacer.wait(str(index), paid=True)
    assert time.monotonic() - started < 0.2  # 20 paid sends; the free lane allows 2 per 0.3 s

    group_times = []
    for _ in range(3):
        await pacer.wait("-7", is_group=True, paid=True)
        group_times.append(time.monotonic())
    assert group_times[2] - group_times[0] >= 0.4 - 0.005  # the group's 2 per 0.4 s
    assert group_times[1] - group_times[0] >= 0.05 - 0.005  # the chat's 1 per 0.05 s

    paid = asyncio.gather(*(pacer.wait("-7", True, True) for _ in range(3)))
    before = time.monotonic()
    await pacer.wait("42")  # free: its own lane; the first free send of this test
    assert time.monotonic() - before < 0.05
    paid.cancel()
    await asyncio.gather(paid, return_exceptions=True)


# -- delivery order ----------------------------------------------------------------------


async def test_an_alert_reaches_the_most_readers_first(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    """Priorities as /subscribe stores them (the first test shows getChatMemberCount's part),
    saved directly: a command's reply would make the chat wait out its own 1.1 s first."""
    unknown = -1001600000009  # a group subscribed before sizes were kept (as the migration sets)
    sizes = {BIG_GROUP: 5_000, CHANNEL: 800, GROUP: 40, unknown: None, ALICE: None, BOB: None}
    async with running(tmp_path, fakes, fake) as bot, asyncio.timeout(WAIT * 2):
        for chat, size in sizes.items():
            priority = delivery_priority(chat < 0, size)
            sub = Subscription("telegram", str(chat), priority=priority)
            alerts.save_subscription(bot.app.db, sub, now_ms())
        assert [delivery_priority(c < 0, s) for c, s in sizes.items()] == [5001, 801, 41, 1, 0, 0]

        bot.alert(ALICE, GROUP, BOB, unknown, CHANNEL, BIG_GROUP)  # recorded in this order
        await fake.wait_until(lambda: len(bot.alert_sends()) == 6)
        order = [BIG_GROUP, CHANNEL, GROUP, unknown, ALICE, BOB]
        assert [chat for chat, _ in bot.alert_sends()] == order
        assert fake.rejected_429 == 0


async def test_no_chat_waits_behind_another_chats_retries(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with running(tmp_path, fakes, fake) as bot, asyncio.timeout(WAIT * 2):
        others = [ALICE + i for i in range(1, 8)]
        for chat in (BIG_GROUP, *others):
            alerts.save_subscription(bot.app.db, Subscription("telegram", str(chat)), now_ms())
        retry_after = 5
        fake.fail_next(
            "sendMessage",
            429,
            body={
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {retry_after}",
                "parameters": {"retry_after": retry_after},
            },
        )
        started = fake.clock() / 1000
        bot.alert(BIG_GROUP, *others)  # the first send (to BIG_GROUP) is refused for 5 s
        await fake.wait_until(lambda: len(fake.sent) == 1 + len(others))
        by_chat = {m.chat_id: m.time - started for m in fake.sent}
        # 7 sends at the free pace (one per 1/30 s, not scaled: it allows for latency): 0.2 s,
        # all before BIG_GROUP's retry is due
        assert max(by_chat[chat] for chat in others) < SCALE * retry_after
        assert by_chat[BIG_GROUP] >= SCALE * retry_after - 0.002  # the fake counts whole ms
