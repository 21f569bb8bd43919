"""Charts end to end: `liqbot run` with python-telegram-bot against the fake Bot API (multipart
sendPhoto, field `photo`, its size limits, file_id reuse) and discord.py against the fake
Discord (multipart `files[n]` + `payload_json` with `attachments`, the upload size limit)."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import replace
from pathlib import Path

import pytest

from bot.alert import plain
from bot.clock import now_ms
from bot.config import ConfigError, load_settings
from bot.main import App
from bot.model import OutboxItem, Subscription, Thresholds
from bot.outbox import DeliveryError
from storage import alerts
from tests.builders import liquidation
from tests.chart_faults import broken
from tests.fakes import FakeDiscord, FakeTelegram
from tests.fakes.discord import EVERYONE_PERMISSIONS
from tests.fakes.telegram import MAX_PHOTO_BYTES, png_size
from tests.harness import WAIT, Fakes
from tests.pacing import quicken
from tests.test_discord import ALERTS, GUILD, command, configure, start, stop

# fixtures, shared with the modules that define them
from tests.test_discord import fake_discord as fake_discord
from tests.test_discord import restore_discord_endpoints as restore_discord_endpoints
from tests.test_telegram_delivery import Bot, flood, running
from tests.test_telegram_delivery import fake as fake

HEADLINE = "$352M liquidated in 1h, 90% longs"
_keys = itertools.count(1)


def feed(app: App) -> None:
    """A few liquidations now, so the charts have bars and BTC is an asset liqbot knows."""
    now = now_ms()
    events = [
        replace(liquidation(base, side, 1.0, 1.0, usd=usd), ts=now, recv_ts=now)  # type: ignore[arg-type]
        for base, side, usd in (("BTC", "long", 3e6), ("BTC", "short", 4e5), ("ETH", "long", 1e6))
    ]
    app.core.on_liquidations(events)


def enqueue(app: App, platform: str, chat_ids: list[str], text: str, rule: str = "window") -> None:
    alert = plain(text, rule, "long")
    items = [
        OutboxItem(f"chart-{next(_keys)}", platform, chat, rule, "*", "long", (alert,))
        for chat in chat_ids
    ]
    with app.db.atomic():
        alerts.enqueue(app.db, items, now_ms())
    app.core.workers[platform].wake()


def subscribe(app: App, platform: str, chat_id: str, chart: bool) -> None:
    alerts.save_subscription(app.db, Subscription(platform, chat_id, chart=chart), now_ms())


async def test_telegram_alerts_arrive_as_one_uploaded_photo_then_by_file_id(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with running(tmp_path, fakes, fake) as bot:
        feed(bot.app)
        for chat in ("5001", "5002", "5003"):
            subscribe(bot.app, "telegram", chat, chart=True)
        subscribe(bot.app, "telegram", "5004", chart=False)
        text = f"{HEADLINE}\nTop assets: BTC $200M\nVenues: Binance $300M"
        enqueue(bot.app, "telegram", ["5001", "5002", "5003", "5004"], text)
        await bot.deliveries.wait_for(4)

        photos = [m for m in fake.sent if m.method == "sendPhoto"]
        assert sorted(m.chat_id for m in photos) == [5001, 5002, 5003]
        assert all(m.text == text for m in photos)  # the whole alert fits the caption
        assert [m.text for m in fake.sent if m.method == "sendMessage"] == [text]  # 5004
        uploads = [m for m in photos if m.photo == "upload:chart.png"]
        assert len(uploads) == 1  # uploaded once, multipart, in the field named "photo"
        calls = [params for method, params in fake.calls if method == "sendPhoto"]
        upload = next(p["_uploads"]["photo"] for p in calls if "_uploads" in p)
        assert (upload.field, upload.filename) == ("photo", "chart.png")
        assert len(upload.data) < MAX_PHOTO_BYTES
        width, height = png_size(upload.data)
        assert width >= 1000 and height >= 560
        reused = {m.photo for m in photos} - {"upload:chart.png"}
        assert len(reused) == 1 and fake.photos[reused.pop()] == upload.data  # by file_id
        assert calls[0]["parse_mode"] == "HTML"
        assert str(calls[0]["caption"]).startswith(f"<b>{HEADLINE}</b>\n")
        assert bot.app.charts is not None and bot.app.charts.renders == 1


async def test_the_engines_window_alert_and_digest_arrive_as_photos(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with running(tmp_path, fakes, fake) as bot:
        thresholds = Thresholds(window="1h", liq=1_000_000.0, funding=0, oi=0)
        sub = Subscription("telegram", "5401", thresholds, chart=True, digest="hourly")
        alerts.save_subscription(bot.app.db, sub, now_ms())
        bot.app.core.engine.reload_subscriptions()
        feed(bot.app)
        assert await bot.app.core.engine.evaluate(now_ms()) == 1
        await bot.deliveries.wait_for(1)

        (photo,) = fake.sent
        assert photo.method == "sendPhoto" and photo.photo == "upload:chart.png"
        assert photo.text.startswith("$4.4M liquidated in 1h, 91% longs\n")
        # The next hour's digest: one decided an hour back would be past the outbox's max age.
        top_of_hour = (now_ms() // 3_600_000 + 1) * 3_600_000 + 60_000
        assert await bot.app.core.engine.scheduled(top_of_hour) == 1  # the hourly digest
        await bot.deliveries.wait_for(2)
        digest = fake.sent[-1]
        assert digest.method == "sendPhoto"
        assert digest.text.startswith("Hourly digest: ")


async def test_a_long_telegram_alert_puts_the_rest_in_a_second_message(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with running(tmp_path, fakes, fake) as bot:
        feed(bot.app)
        subscribe(bot.app, "telegram", "5101", chart=True)
        rest = "\n".join(f"Context line {i}: " + "x" * 60 for i in range(20))
        text = f"{HEADLINE}\n{rest}"
        assert len(text) > 1024
        enqueue(bot.app, "telegram", ["5101"], text)
        await bot.deliveries.wait_for(1)

        assert [(m.method, m.text) for m in fake.sent] == [
            ("sendPhoto", HEADLINE),
            ("sendMessage", rest),
        ]


async def test_a_chart_alert_retried_after_its_photo_arrived_sends_only_the_rest(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with running(tmp_path, fakes, fake) as bot:
        feed(bot.app)
        subscribe(bot.app, "telegram", "5301", chart=True)
        rest = "\n".join(f"Context line {i}: " + "x" * 60 for i in range(20))
        fake.fail_next("sendMessage", 502)  # the text after the photo
        enqueue(bot.app, "telegram", ["5301"], f"{HEADLINE}\n{rest}")
        await bot.deliveries.wait_for(2)

        (outbox_id, failed), (_, delivered) = bot.deliveries.outcomes
        assert failed is not None and delivered is None
        # The photo's arrival was stored on the row (parts_sent): the retry sent the rest only.
        assert [(m.method, m.text) for m in fake.sent] == [
            ("sendPhoto", HEADLINE),
            ("sendMessage", rest),
        ]
        row = bot.outbox(outbox_id)
        assert (row["status"], row["attempts"], row["parts_sent"]) == ("sent", 2, 1)


async def test_a_flood_answer_to_a_photo_is_scheduled_as_the_retry(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with running(tmp_path, fakes, fake) as bot:
        feed(bot.app)
        subscribe(bot.app, "telegram", "5302", chart=True)
        fake.fail_next("sendPhoto", 429, body=flood(1))
        enqueue(bot.app, "telegram", ["5302"], f"{HEADLINE}\nTop assets: BTC $200M")
        await bot.deliveries.wait_for(2)

        (outbox_id, flooded), (_, delivered) = bot.deliveries.outcomes
        assert isinstance(flooded, DeliveryError) and flooded.retry_after == 1.0
        assert delivered is None
        assert [(m.method, m.text) for m in fake.sent] == [
            ("sendPhoto", f"{HEADLINE}\nTop assets: BTC $200M")
        ]
        assert (bot.outbox(outbox_id)["status"], fake.rejected_429) == ("sent", 0)


async def test_a_chart_that_fails_to_render_sends_the_text(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tmp_path, fakes, fake) as bot:
        assert bot.app.charts is not None

        bot.app.charts.render_png = broken
        subscribe(bot.app, "telegram", "5201", chart=True)
        enqueue(bot.app, "telegram", ["5201"], f"{HEADLINE}\nTop assets: BTC $200M")
        await bot.deliveries.wait_for(1)

        assert [(m.method, m.text) for m in fake.sent] == [
            ("sendMessage", f"{HEADLINE}\nTop assets: BTC $200M")
        ]
        assert bot.deliveries.outcomes[0][1] is None
        assert bot.app.charts.failures == 1 and "ValueError: no fonts here" in caplog.text


async def say_and_wait(bot: Bot, chat_id: int, text: str) -> None:
    before = len(bot.fake.sent)
    bot.fake.enqueue(bot.fake.command(chat_id, chat_id, text))
    await bot.fake.wait_until(lambda: len(bot.fake.sent) > before)


async def test_telegram_chart_command_replies_with_a_photo_or_a_refusal(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    async with running(tmp_path, fakes, fake) as bot:
        feed(bot.app)
        await say_and_wait(bot, 5301, "/chart BTC 4h")
        photo = fake.sent[-1]
        assert (photo.method, photo.chat_id, photo.photo) == ("sendPhoto", 5301, "upload:chart.png")
        assert photo.text.startswith("BTC: liquidations in the last 4h, longs above zero")

        for bad in ("/chart banana", "/chart BTC 7y"):
            await say_and_wait(bot, 5301, bad)
            assert fake.sent[-1].method == "sendMessage"
            assert "is neither an asset liqbot has data for nor a window: use /chart" in (
                fake.sent[-1].text
            )
        assert [m.method for m in fake.sent].count("sendPhoto") == 1


async def test_telegram_charts_switched_off_by_the_operator(
    tmp_path: Path, fakes: Fakes, fake: FakeTelegram
) -> None:
    config = tmp_path / "off.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "off.db"}"\n[charts]\nenabled = false\n')
    assert not load_settings(config).charts_enabled
    assert load_settings(None).charts_enabled
    app = await App.open(load_settings(config))
    assert app.charts is None  # alerts go as text, /chart says charts are off
    config.write_text('[charts]\nenabled = "yes"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert [p for p in raised.value.problems if p.startswith("charts.")] == [
        "charts.enabled: expected true or false"
    ]


async def test_discord_alert_embeds_the_chart_and_chart_command_attaches_it(
    tmp_path: Path,
    fakes: Fakes,
    fake_discord: FakeDiscord,
) -> None:
    app = quicken(await App.open(load_settings(configure(tmp_path, fakes, fake_discord))))
    async with asyncio.timeout(WAIT * 2):
        task = await start(app, fake_discord)
        feed(app)
        subscribe(app, "discord", str(ALERTS), chart=True)
        text = f"{HEADLINE}\nTop assets: BTC $200M\nVenues: Binance $300M"
        enqueue(app, "discord", [str(ALERTS)], text)
        await fake_discord.wait_until(lambda: bool(fake_discord.messages))

        message = fake_discord.messages[0]
        (embed,) = message.embeds
        assert embed["description"].startswith(HEADLINE)
        assert embed["image"] == {"url": "attachment://chart.png"}
        (attachment,) = message.payload["attachments"]
        assert attachment["filename"] == "chart.png"
        (upload,) = fake_discord.uploads
        assert (upload.field, upload.filename) == ("files[0]", "chart.png")
        assert upload.content_type in ("image/png", "application/octet-stream")
        assert attachment["size"] == len(upload.data)
        assert png_size(upload.data)[0] >= 1000

        admin = EVERYONE_PERMISSIONS | (1 << 4)
        followup = await command(
            fake_discord,
            "chart",
            {"asset": "BTC", "window": "1h"},
            channel_id=ALERTS,
            guild_id=GUILD,
            permissions=admin,
        )
        steps = [
            (r.kind, r.type)
            for r in fake_discord.interaction_responses
            if r.interaction_id == followup.interaction_id
        ]
        assert steps == [("callback", 5), ("followup", None)]  # thinking, then the image
        assert len(fake_discord.uploads) == 2
        assert fake_discord.uploads[1].filename == "chart.png"
        assert followup.embeds[0]["image"] == {"url": "attachment://chart.png"}
        assert followup.embeds[0]["description"].startswith("BTC: liquidations in the last 1h")

        refused = await command(
            fake_discord, "chart", {"asset": "banana"}, channel_id=ALERTS, guild_id=GUILD
        )
        assert refused.ephemeral
        assert refused.content.startswith("'banana' is neither an asset liqbot has data for")
        assert len(fake_discord.uploads) == 2
        asked = await fake_discord.inject_interaction(
            "chart", {"asset": "bt"}, channel_id=ALERTS, focused="asset"
        )
        await fake_discord.wait_until(lambda: bool(fake_discord.responses_to(asked)))
        (completed,) = fake_discord.responses_to(asked)
        assert completed.type == 8
        assert completed.data["choices"] == [{"name": "BTC", "value": "BTC"}]
        await stop(task)


# -- the fakes' upload checks, as the platforms make them ------------------------------------


def oversized_png() -> bytes:
    """A PNG header and 11 MB of padding: over both platforms' 10 MB limits."""
    header = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR"
    return header + (1080).to_bytes(4, "big") + (607).to_bytes(4, "big") + bytes(11 << 20)


async def test_fake_telegram_checks_photo_uploads_as_telegram_does(fake: FakeTelegram) -> None:
    from telegram import Bot as TelegramClient
    from telegram import InputFile
    from telegram.error import BadRequest, TelegramError

    async with TelegramClient(fake.token, base_url=f"{fake.base_url}/bot") as client:
        with pytest.raises(TelegramError, match="Request Entity Too Large"):
            await client.send_photo(42, InputFile(oversized_png(), filename="big.png"))
        with pytest.raises(BadRequest, match=r"(?i)image_process_failed"):
            await client.send_photo(42, InputFile(b"not an image", filename="x.png"))
        with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
            await client.send_photo(42, "AgACnever-issued")
        assert not [m for m in fake.sent if m.method == "sendPhoto"]


async def test_fake_discord_checks_attachments_as_discord_does(
    fake_discord: FakeDiscord,
) -> None:
    import aiohttp

    url = f"{fake_discord.base_url}/api/v10/channels/{ALERTS}/messages"
    headers = {"Authorization": f"Bot {fake_discord.token}"}

    def form(data: bytes, field: str = "files[0]", described: bool = True) -> aiohttp.FormData:
        body = aiohttp.FormData()
        attachments = [{"id": 0, "filename": "chart.png"}] if described else []
        body.add_field("payload_json", json.dumps({"content": "", "attachments": attachments}))
        body.add_field(field, data, filename="chart.png", content_type="image/png")
        return body

    async with aiohttp.ClientSession(headers=headers) as client:
        async with client.post(url, data=form(oversized_png())) as response:
            assert (response.status, (await response.json())["code"]) == (413, 40005)
        async with client.post(url, data=form(b"png", field="file")) as response:
            assert (response.status, (await response.json())["code"]) == (400, 50035)
        async with client.post(url, data=form(b"png", described=False)) as response:
            assert (response.status, (await response.json())["code"]) == (400, 50035)
        async with client.post(url, data=form(b"\x89PNG")) as response:
            assert response.status == 200
            (attachment,) = (await response.json())["attachments"]
            assert (attachment["filename"], attachment["size"]) == ("chart.png", 4)
    assert len(fake_discord.uploads) == 1
