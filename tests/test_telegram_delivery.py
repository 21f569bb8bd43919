"""Delivering alerts to Telegram: `liqbot run` (the real App, python-telegram-bot and the outbox
worker) against a fake Bot API that answers floods, outages, blocks, unknown chats and group
migrations as Telegram does. Also: long alerts in parts, HTML escaping, a button press, and the
bot token kept out of the logs. Telegram's limits and the outbox's waits run at `SCALE` of their
length, in the bot and the fake alike (tests/pacing.py)."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from bot.alert import plain
from bot.clock import now_ms
from bot.commands import PRESETS
from bot.config import load_settings
from bot.formatting import split_message
from bot.logs import REDACTED, RedactSecrets, configure_logging
from bot.main import App
from bot.model import OutboxItem, OutboxRow, Subscription, Thresholds
from bot.outbox import OutboxWorker, Progress
from handlers.telegram import FAILED_REPLY
from storage import alerts
from tests.fakes import FakeTelegram
from tests.harness import WAIT, Fakes, traceback_of, write_config
from tests.pacing import SCALE, TELEGRAM_CHAT_PACE, fake_telegram, quicken

TOKEN = "123456:TEST-TOKEN"
BAD_GATEWAY = "<html>502</html>"  # what Telegram's front end answers when the API is down
_keys = itertools.count(1)


class Deliveries:
    """Watches the Telegram outbox worker's sends. An attempt is recorded as soon as it ends,
    and waiters wake only after the worker has stored its outcome: the worker hands the store to
    the writer thread in the step that ends the attempt, so a no-op handed over after it (and
    after the chat changes that outcome queued) runs once the store is done."""

    def __init__(self, worker: OutboxWorker, app: App) -> None:
        self.app = app
        self.outcomes: list[tuple[int, Exception | None]] = []
        self._changed = asyncio.Event()
        inner = worker.send

        async def send(row: OutboxRow, progress: Progress) -> None:
            try:
                await inner(row, progress)
            except Exception as error:  # DeliveryError, or what the worker counts as unknown
                self._record(row.id, error)
                raise
            self._record(row.id, None)

        worker.send = send

    def _record(self, outbox_id: int, error: Exception | None) -> None:
        self.outcomes.append((outbox_id, error))
        asyncio.get_running_loop().call_soon(self._changed.set)

    async def wait_for(self, attempts: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.outcomes) < attempts:
                self._changed.clear()
                await self._changed.wait()
            await self.app.writer.call(lambda db: None)
            await self.app.core.chats.changes_applied()
            await self.app.writer.call(lambda db: None)


@dataclass
class Bot:
    app: App
    fake: FakeTelegram
    deliveries: Deliveries

    def subscribe(self, chat_id: int, **changes: Any) -> Subscription:
        sub = replace(Subscription("telegram", str(chat_id)), **changes)
        alerts.save_subscription(self.app.db, sub, now_ms())
        self.app.core.engine.reload_subscriptions()
        return sub

    def subscription(self, chat_id: int) -> Subscription | None:
        return alerts.load_subscription(self.app.db, "telegram", str(chat_id))

    def alert(self, chat_id: int, text: str) -> int:
        """Record an alert in the outbox as the engine does, wake the worker; its outbox id."""
        item = OutboxItem(
            f"test-{next(_keys)}", "telegram", str(chat_id), "window", "BTC", None, (plain(text),)
        )
        with self.app.db.atomic():
            alerts.enqueue(self.app.db, [item], now_ms())
        self.app.core.workers["telegram"].wake()
        row = self.app.db.execute("SELECT id FROM outbox WHERE key = ?", [item.key]).fetchone()
        return int(row[0])

    def outbox(self, outbox_id: int) -> dict[str, Any]:
        return dict(self.app.db.table("outbox").get(outbox_id))

    def raw_texts(self, chat_id: int) -> list[str]:
        """The `text` parameter of every sendMessage call to `chat_id`, as the bot sent it."""
        return [
            str(params["text"])
            for method, params in self.fake.calls
            if method == "sendMessage" and params.get("chat_id") == chat_id
        ]

    async def say(self, chat_id: int, user_id: int, text: str, chat_type: str = "private") -> str:
        """Send a command; its (first) reply."""
        before = len(self.fake.messages_to(chat_id))
        self.fake.enqueue(self.fake.command(chat_id, user_id, text, chat_type=chat_type))
        await self.fake.wait_until(lambda: len(self.fake.messages_to(chat_id)) > before)
        return self.fake.messages_to(chat_id)[before]


@asynccontextmanager
async def running(tmp_path: Path, fakes: Fakes, fake: FakeTelegram) -> AsyncIterator[Bot]:
    """`liqbot run` with Telegram, polling and ready to deliver."""
    config = write_config(tmp_path, fakes)
    config.write_text(
        config.read_text() + f'\n[telegram]\ntoken = "{fake.token}"\napi_url = "{fake.base_url}"\n'
    )
    app = quicken(await App.open(load_settings(config)))
    deliveries = Deliveries(app.core.workers["telegram"], app)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        async with asyncio.timeout(WAIT):
            await fake.wait_until(
                lambda: bool(fake.commands) and any(m == "getUpdates" for m, _ in fake.calls)
            )
        yield Bot(app, fake, deliveries)
    finally:
        stop.set()
        await task


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with fake_telegram(TOKEN) as telegram:
        yield telegram


def flood(retry_after: int) -> dict[str, Any]:
    return {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }


# -- floods and outages ----------------------------------------------------------------------


async def test_a_flood_answer_is_waited_out_and_the_alert_arrives_once(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with running(tmp_path, fakes, fake) as bot:
        bot.subscribe(3001)
        fake.fail_next("sendMessage", 429, body=flood(1))
        started = fake.clock() / 1000
        outbox_id = bot.alert(3001, "$352M liquidated in 1h, 90% longs\nBTC $200M")
        await bot.deliveries.wait_for(2)

        # The wait is scheduled as the row's next attempt: no delivery slot sleeps through it.
        (_, flooded), (_, delivered) = bot.deliveries.outcomes
        assert flooded is not None and flooded.retry_after == 1.0
        assert delivered is None
        sent = [m for m in fake.sent if m.chat_id == 3001]
        assert [m.text for m in sent] == ["$352M liquidated in 1h, 90% longs\nBTC $200M"]
        assert sent[0].time - started >= SCALE * 1.0 - 0.002  # the fake's clock counts whole ms
        assert len(bot.raw_texts(3001)) == 2  # the refused call, then the one that arrived
        row = bot.outbox(outbox_id)
        assert (row["status"], row["attempts"], row["error"]) == ("sent", 2, None)

        # Nothing else broke: the next alert and a command go through as usual.
        second = bot.alert(3002, "second")
        await bot.deliveries.wait_for(3)
        assert fake.messages_to(3002) == ["second"]
        assert bot.outbox(second)["status"] == "sent"
        assert (await bot.say(3003, 3003, "/help")).startswith("/start - ")
        assert bot.subscription(3001) == Subscription("telegram", "3001")
        assert fake.rejected_429 == 0


async def test_a_bad_gateway_is_retried_with_backoff_and_delivered_once(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with running(tmp_path, fakes, fake) as bot:
        bot.app.core.workers["telegram"].jitter = lambda: 1.0  # the top of each backoff step
        bot.subscribe(3011)
        fake.fail_next("sendMessage", 502, times=2, body=BAD_GATEWAY)
        started = fake.clock() / 1000
        outbox_id = bot.alert(3011, "BTC whale: $12.3M long liquidated on Bybit")
        await bot.deliveries.wait_for(3)

        errors = [error for _, error in bot.deliveries.outcomes]
        assert [str(e) if e else None for e in errors] == [
            "network: Bad Gateway (502). Parsing the server response b'<html>502</html>' failed",
            "network: Bad Gateway (502). Parsing the server response b'<html>502</html>' failed",
            None,
        ]
        assert fake.messages_to(3011) == ["BTC whale: $12.3M long liquidated on Bybit"]
        # Backoff of 1 s, then 2 s, between the attempts (scaled).
        assert fake.sent[-1].time - started >= SCALE * 3.0 - 0.002
        row = bot.outbox(outbox_id)
        assert (row["status"], row["attempts"], row["error"]) == ("sent", 3, None)
        assert bot.subscription(3011) == Subscription("telegram", "3011")


async def test_chats_answered_401_or_a_non_json_200_back_off_while_others_get_alerts_on_time(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    revoked, garbled = 3101, 3102
    unauthorized = {"ok": False, "error_code": 401, "description": "Unauthorized"}
    async with running(tmp_path, fakes, fake) as bot:
        bot.app.core.workers["telegram"].jitter = lambda: 1.0  # backoff steps of 1 s, 2 s, 4 s
        fake.fail_chat(revoked, 401, unauthorized)
        fake.fail_chat(garbled, 200, "<html>Welcome to the hotel Wi-Fi</html>")
        failing = {chat: bot.alert(chat, f"to {chat}") for chat in (revoked, garbled)}
        on_time: list[float] = []
        for n, chat in enumerate(range(3110, 3116)):
            if n == 3:  # the failing chats are backing off now
                await fake.wait_until(lambda: len(attempts(fake, revoked)) >= 2)
            asked = fake.clock() / 1000
            bot.alert(chat, f"alert {n}")
            await fake.wait_until(lambda chat=chat: bool(fake.messages_to(chat)))  # type: ignore[misc]
            on_time.append(next(m.time for m in fake.sent if m.chat_id == chat) - asked)
        await bot.deliveries.wait_for(6 + 6)  # 3 failed attempts each, 6 alerts delivered

        # Seconds from enqueue to arrival, for every other chat: less than the failing chats'
        # longest wait here (4 s scaled), which a worker asleep until their retries would show.
        # (Not less than one step, 0.1 s: latency, up to 0.2 s on a loaded machine, is not
        # scaled; the outbox's own tests show a failing chat holds up no one, on a manual clock.)
        assert max(on_time) < SCALE * 4.0
        for chat, outbox_id in failing.items():
            times = attempts(fake, chat)
            assert len(times) == 3  # bounded: no attempt beyond the ones counted
            first, second = times[1] - times[0], times[2] - times[1]
            # Backed off, growing (1 s, 2 s, 4 s scaled, each from the answer): the first retry
            # also waits for the chat's pace, 1.1 s, which keeps its 0.1 s margin at any scale.
            assert SCALE * 1.0 <= first < TELEGRAM_CHAT_PACE + SCALE * 0.9
            assert SCALE * 2.0 <= second < SCALE * 2.9
            row = bot.outbox(outbox_id)
            assert (row["status"], row["attempts"]) == ("pending", 3)
            after_answer = row["next_attempt_at"] / 1000 - times[2]
            assert SCALE * 4.0 <= after_answer < SCALE * 4.5  # 4 s after the answer
        assert bot.outbox(failing[revoked])["error"] == "InvalidToken: Unauthorized"
        assert bot.outbox(failing[garbled])["error"].startswith("TelegramError: Invalid server")
        raised = [r.message for r in caplog.records if traceback_of(r) and r.name == "bot.outbox"]
        assert (
            sorted(raised)
            == [f"telegram: delivery to {revoked} raised"] * 3
            + [f"telegram: delivery to {garbled} raised"] * 3
        )  # each failed attempt logged with its traceback


def attempts(fake: FakeTelegram, chat_id: int) -> list[float]:
    """When each sendMessage to the chat reached the fake (seconds on its clock)."""
    return [at for at, chat in fake.send_attempts if chat == chat_id]


# -- chats that are gone or moved ----------------------------------------------------------


async def test_a_chat_that_blocked_the_bot_is_unsubscribed(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with running(tmp_path, fakes, fake) as bot:
        sub = bot.subscribe(3021, thresholds=Thresholds(liq=40e6))
        bot.subscribe(3022)
        fake.block_chat(3021)
        blocked = bot.alert(3021, "to the blocked chat")
        other = bot.alert(3022, "to another chat")
        await bot.deliveries.wait_for(2)

        row = bot.outbox(blocked)
        assert (row["status"], row["attempts"]) == ("failed", 1)
        assert row["error"] == "Forbidden: bot was blocked by the user"
        assert bot.subscription(3021) == replace(sub, active=False)  # kept, switched off
        assert "telegram:3021" not in bot.app.core.engine.book.by_key
        assert fake.messages_to(3021) == []
        assert bot.outbox(other)["status"] == "sent"
        assert bot.subscription(3022) == Subscription("telegram", "3022")


async def test_a_chat_telegram_does_not_know_is_unsubscribed(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with running(tmp_path, fakes, fake) as bot:
        sub = bot.subscribe(-3031)
        fake.forget_chat(-3031)
        outbox_id = bot.alert(-3031, "to a deleted group")
        await bot.deliveries.wait_for(1)

        row = bot.outbox(outbox_id)
        assert (row["status"], row["attempts"]) == ("failed", 1)
        assert row["error"] == "Chat not found"
        assert bot.subscription(-3031) == replace(sub, active=False)


async def test_another_bad_request_fails_the_alert_but_keeps_the_chat(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with running(tmp_path, fakes, fake) as bot:
        sub = bot.subscribe(3041)
        body = {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
        fake.fail_next("sendMessage", 400, body=body)
        outbox_id = bot.alert(3041, "refused once")
        await bot.deliveries.wait_for(1)

        row = bot.outbox(outbox_id)
        assert (row["status"], row["attempts"]) == ("failed", 1)  # permanent: not retried
        assert row["error"] == "Message is too long"
        assert bot.subscription(3041) == sub


async def test_an_alert_to_a_migrated_group_follows_it(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    old, new = -3051, -1003051
    async with running(tmp_path, fakes, fake) as bot:
        sub = bot.subscribe(old, watch=frozenset({"BTC"}))
        fake.migrate_chat(old, new)
        outbox_id = bot.alert(old, "$1.2B liquidated in 4h, 70% longs")
        await bot.deliveries.wait_for(2)

        (_, moved), (_, delivered) = bot.deliveries.outcomes
        assert moved is not None and moved.moved_to == str(new)
        assert delivered is None
        assert fake.messages_to(new) == ["$1.2B liquidated in 4h, 70% longs"]
        assert fake.messages_to(old) == []
        assert bot.subscription(old) is None
        assert bot.subscription(new) == replace(sub, chat_id=str(new))
        row = bot.outbox(outbox_id)
        assert (row["chat_id"], row["status"], row["attempts"]) == (str(new), "sent", 2)


# -- what arrives -----------------------------------------------------------------------------


def long_alert(lines: int) -> str:
    """A headline with HTML-looking text, then `lines` lines of 66 characters."""
    body = [f"{i:03d} BTCUSDT " + "x" * 54 for i in range(lines)]
    return "\n".join(["$9.99B liquidated in 24h <b>& more</b>", *body])


async def test_a_long_alert_arrives_in_parts_at_line_boundaries(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    text = long_alert(100)  # 6,738 characters: two parts
    assert len(text) > 4096
    async with running(tmp_path, fakes, fake) as bot:
        outbox_id = bot.alert(3061, text)
        await bot.deliveries.wait_for(1)

        sent = [m for m in fake.sent if m.chat_id == 3061]
        parts = [m.text for m in sent]
        assert len(parts) == 2
        assert parts[0].endswith("\n059 BTCUSDT " + "x" * 54)  # 4,058 characters
        assert all(len(part) <= 4096 for part in parts)
        assert "\n".join(parts) == text  # cut only between lines, nothing lost, in order
        assert parts[0].startswith("$9.99B liquidated in 24h <b>& more</b>\n000 BTCUSDT")
        assert [m.message_id for m in sent] == sorted(m.message_id for m in sent)
        assert all(b.time - a.time >= SCALE * 1.0 for a, b in itertools.pairwise(sent))  # paced
        assert {m.parse_mode for m in sent} == {"HTML"}
        assert all(m.link_preview_options == {"is_disabled": True} for m in sent)
        raw = bot.raw_texts(3061)
        assert raw[0].startswith("<b>$9.99B liquidated in 24h &lt;b&gt;&amp; more&lt;/b&gt;</b>\n")
        assert raw[1].startswith("060 BTCUSDT x")  # only the alert's first line is bold
        assert "<b>" not in raw[1]
        assert (bot.outbox(outbox_id)["status"], fake.rejected_429) == ("sent", 0)


async def test_a_retried_long_alert_does_not_repeat_parts_that_arrived(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    text = long_alert(100)  # two parts
    async with running(tmp_path, fakes, fake) as bot:
        bot.alert(3071, text)
        await fake.wait_until(lambda: len(fake.messages_to(3071)) == 1)
        fake.fail_next("sendMessage", 502)  # the second part, which waits for the pacer
        await bot.deliveries.wait_for(2)

        assert fake.messages_to(3071) == split_message(text, 4096)


async def test_html_in_alerts_and_replies_arrives_as_literal_text(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    text = "ETH <b>not bold</b> & <i>x</i>\nlong < short > 1 &amp; 2"
    async with running(tmp_path, fakes, fake) as bot:
        bot.alert(3081, text)
        bot.subscribe(3082)
        reply = await bot.say(3082, 3082, "/watch <b>&amp;")
        await bot.deliveries.wait_for(1)

        assert fake.messages_to(3081) == [text]
        assert bot.raw_texts(3081) == [
            "<b>ETH &lt;b&gt;not bold&lt;/b&gt; &amp; &lt;i&gt;x&lt;/i&gt;</b>\n"
            "long &lt; short &gt; 1 &amp;amp; 2"
        ]
        assert reply == "not an asset symbol: <B>&AMP; (use e.g. BTC ETH SOL, or all)"
        assert bot.raw_texts(3082) == [
            "not an asset symbol: &lt;B&gt;&amp;AMP; (use e.g. BTC ETH SOL, or all)"
        ]
        assert bot.subscription(3082) == Subscription("telegram", "3082")


async def test_a_preset_button_subscribes_and_edits_the_message(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    group, admin, member = -3091, 3091, 3092
    fake.set_member(group, admin, "administrator")
    async with running(tmp_path, fakes, fake) as bot:
        start = await bot.say(3090, 3090, "/start")
        assert start.startswith("liqbot watches liquidations")
        menu = [m for m in fake.sent if m.chat_id == 3090][-1]
        assert menu.reply_markup == {
            "inline_keyboard": [
                [{"text": "Big events only", "callback_data": "preset:big"}],
                [{"text": "Balanced", "callback_data": "preset:balanced"}],
                [{"text": "Everything", "callback_data": "preset:everything"}],
            ]
        }
        await bot.say(group, member, "/start", chat_type="group")  # anyone may read

        fake.enqueue(fake.callback(3090, 3090, "preset:everything"))
        fake.enqueue(fake.callback(group, member, "preset:everything"))
        await fake.wait_until(lambda: len(fake.edits) == 1 and len(fake.messages_to(group)) == 2)

        (edit,) = fake.edits
        assert (edit.chat_id, edit.message_id, edit.parse_mode) == (3090, menu.message_id, "HTML")
        assert edit.text.startswith("Subscribed.\n\nAlerts: on\nwindow: 1h\nliq: $10M in 1h")
        assert edit.reply_markup is not None
        assert edit.reply_markup["inline_keyboard"][1][1] == {
            "text": "$250M",
            "callback_data": "set:liq:250m",
        }
        assert bot.subscription(3090) == Subscription(
            "telegram", "3090", PRESETS["everything"].thresholds
        )
        assert "telegram:3090" in bot.app.core.engine.book.by_key
        assert len(fake.answered) == 2  # every press is answered, refused or not

        # A group member who is not an admin is told so in a new message; nothing changes.
        assert fake.messages_to(group)[1] == (
            "Only the chat's administrators can change liqbot here."
        )
        assert bot.subscription(group) is None


# -- the token stays out of the logs --------------------------------------------------------


@pytest.fixture
def log_handler() -> Iterator[logging.StreamHandler[io.StringIO]]:
    """A handler on the root logger, as basicConfig would add; afterwards, undo what
    configure_logging does to the process's loggers."""
    root = logging.getLogger()
    names = ("httpx", "httpcore", "apscheduler")
    levels = {name: logging.getLogger(name).level for name in names}
    root_level = root.level
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    for other in root.handlers:
        for log_filter in [f for f in other.filters if isinstance(f, RedactSecrets)]:
            other.removeFilter(log_filter)
    root.setLevel(root_level)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


async def test_the_token_never_reaches_the_log(
    tmp_path: Path,
    fakes: Fakes,
    fake: FakeTelegram,
    log_handler: logging.StreamHandler[io.StringIO],
) -> None:
    configure_logging("DEBUG", [TOKEN])
    assert any(isinstance(f, RedactSecrets) for f in log_handler.filters)
    # configure_logging quietens httpx, whose request lines carry the token in the URL; let
    # them through to prove that they are redacted anyway.
    logging.getLogger().setLevel(logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.DEBUG)

    async with running(tmp_path, fakes, fake) as bot:
        assert (await bot.say(3101, 3101, "/help")).startswith("/start - ")
        bot.subscribe(3102)
        fake.block_chat(3102)
        bot.alert(3102, "to a blocked chat")
        bot.alert(3103, "delivered")
        await bot.deliveries.wait_for(2)
        logging.getLogger("tests").error("token %s in a message", TOKEN)
        try:
            raise RuntimeError(f"https://api.telegram.org/bot{TOKEN}/getMe failed")
        except RuntimeError:
            logging.getLogger("tests").exception("and in a traceback")

    output = log_handler.stream.getvalue()
    assert f"Set Bot API URL: {fake.base_url}/bot{REDACTED}" in output  # PTB, at DEBUG
    assert "HTTP Request: POST" in output
    assert f"/bot{REDACTED}/getUpdates" in output  # httpx polls; sends go through aiohttp
    assert "bot was blocked by the user" in output
    assert "token [REDACTED] in a message" in output
    assert f"RuntimeError: https://api.telegram.org/bot{REDACTED}/getMe failed" in output
    assert TOKEN not in output
    assert quote(TOKEN, safe="") not in output
    assert TOKEN.split(":")[1] not in output


def test_redact_secrets_on_one_record() -> None:
    try:
        raise ValueError(f"bad url /bot{TOKEN}/getUpdates")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s"', None, exc_info
    )
    record.args = ("POST", f"http://127.0.0.1:1/bot{TOKEN}/sendMessage", "HTTP/1.1 200 OK")
    assert RedactSecrets([TOKEN, "", "other-secret"]).filter(record)
    text = logging.Formatter("%(name)s: %(message)s").format(record)
    assert text.startswith(
        f'httpx: HTTP Request: POST http://127.0.0.1:1/bot{REDACTED}/sendMessage "HTTP/1.1 200 OK"'
    )
    assert f"ValueError: bad url /bot{REDACTED}/getUpdates" in text
    assert TOKEN not in text


def test_a_malformed_log_call_neither_raises_nor_leaks(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets([TOKEN]))
    logger = logging.getLogger("tests.malformed")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.error("url %s, status %s", f"/bot{TOKEN}/getMe")  # one argument short
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert TOKEN not in stream.getvalue() + capsys.readouterr().err


async def test_a_command_that_fails_is_logged_and_the_user_told(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the core broke")

    async with running(tmp_path, fakes, fake) as bot:
        assert bot.app.telegram is not None
        bot.app.telegram.core.handle = broken  # type: ignore[method-assign,assignment]
        assert await bot.say(3201, 3201, "/settings") == FAILED_REPLY
    [logged] = [
        r for r in caplog.records if r.message == "telegram: error while handling an update"
    ]
    assert "RuntimeError: the core broke" in traceback_of(logged)


async def test_after_a_crash_a_split_alert_sends_only_the_parts_not_yet_delivered(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    text = long_alert(100)  # two parts
    async with running(tmp_path, fakes, fake) as bot:
        # What a process that stopped after the first part left behind.
        db = bot.app.db
        item = OutboxItem("crashed", "telegram", "3081", "window", "*", None, (plain(text),))
        with db.atomic():
            alerts.enqueue(db, [item], now_ms())
        outbox_id = int(db.execute("SELECT id FROM outbox WHERE key = 'crashed'").fetchone()[0])
        alerts.mark_parts_sent(db, outbox_id, 1, now_ms())
        bot.app.core.workers["telegram"].wake()
        await bot.deliveries.wait_for(1)

        assert fake.messages_to(3081) == split_message(text, 4096)[1:]
        assert bot.outbox(outbox_id)["status"] == "sent"
