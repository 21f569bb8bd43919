"""liqbot run with Discord, end to end: the real discord.py client against a fake Discord REST
API and gateway, and the venue fakes feeding a cascade; then Telegram and Discord together. The
platforms' limits and waits run at `SCALE` of their length, in the bot and the fakes alike, and the
fakes enforce them (tests/pacing.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.clock import now_ms
from bot.config import load_settings
from bot.main import App
from handlers.discord import FAILED_REPLY
from storage import alerts
from tests.fakes import FakeDiscord, FakeTelegram, force_order
from tests.fakes.discord import EVERYONE_PERMISSIONS
from tests.harness import WAIT, Fakes, traceback_of, write_config
from tests.pacing import fake_discord as scaled_fake_discord
from tests.pacing import fake_telegram, quicken

GUILD, ALERTS, CHATTER, OTHER_GUILD, OTHER_CHANNEL = 900, 901, 902, 950, 951
MANAGE_CHANNELS = 1 << 4


@pytest.fixture
def restore_discord_endpoints() -> Iterator[None]:
    """liqbot points discord.py at the configured URLs (class attributes): undo it after."""
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE = base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


@pytest.fixture
async def fake_discord(restore_discord_endpoints: None) -> AsyncIterator[FakeDiscord]:
    async with scaled_fake_discord() as fake:
        fake.add_guild(GUILD, "Traders", [ALERTS, CHATTER])
        fake.add_guild(OTHER_GUILD, "Others", [OTHER_CHANNEL])
        yield fake


def configure(
    tmp_path: Path, fakes: Fakes, discord_fake: FakeDiscord, telegram: FakeTelegram | None = None
) -> Path:
    config = write_config(tmp_path, fakes)
    text = config.read_text() + (
        f'\n[discord]\ntoken = "{discord_fake.token}"\n'
        f'api_url = "{discord_fake.base_url}/api/v10"\ngateway_url = "{discord_fake.gateway_url}"\n'
        '[defaults]\nwindow = "5m"\nfunding_rate_8h = 0\noi_change = 0\n'
    )
    if telegram is not None:
        text += f'[telegram]\ntoken = "{telegram.token}"\napi_url = "{telegram.base_url}"\n'
    config.write_text(text)
    return config


async def command(
    fake: FakeDiscord, name: str, options: dict[str, Any] | None = None, **where: Any
) -> Any:
    """Run a slash command and wait for its (first) reply with content: the response, or the
    first follow-up of a deferred one."""

    def replies() -> list[Any]:
        return [r for r in fake.responses_to(payload) if r.content is not None or r.embeds]

    payload = await fake.inject_interaction(name, options, **where)
    await fake.wait_until(lambda: bool(replies()))
    return replies()[0]


async def start(app: App, fake: FakeDiscord) -> asyncio.Task[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    task.stop = stop  # type: ignore[attr-defined]
    await fake.wait_until(lambda: bool(fake.commands))
    assert app.discord is not None
    await asyncio.wait_for(app.discord.client.wait_until_ready(), WAIT)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.stop.set()  # type: ignore[attr-defined]
    await task


async def test_slash_commands_embeds_permissions_and_removal(
    tmp_path: Path, fakes: Fakes, fake_discord: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    app = quicken(await App.open(load_settings(configure(tmp_path, fakes, fake_discord))))
    async with asyncio.timeout(WAIT * 2):
        task = await start(app, fake_discord)
        assert {c["name"] for c in fake_discord.commands} >= {
            "subscribe",
            "unsubscribe",
            "status",
            "settings",
            "set",
            "watch",
            "mute",
            "unmute",
            "quiet",
            "digest",
            "help",
        }

        refused = await command(fake_discord, "subscribe", channel_id=ALERTS)
        assert refused.ephemeral
        assert refused.content == "Only the chat's administrators can change liqbot here."
        # Deferred before the core ran; the public "thinking" placeholder of a refusal removed.
        steps = [(r.kind, r.type) for r in fake_discord.interaction_responses]
        assert steps[-3:] == [("callback", 5), ("deleted", None), ("followup", None)]
        admin = EVERYONE_PERMISSIONS | MANAGE_CHANNELS
        reply = await command(fake_discord, "subscribe", channel_id=ALERTS, permissions=admin)
        assert reply.content.startswith("Subscribed.") and not reply.ephemeral
        assert reply.kind == "followup"
        helped = await command(fake_discord, "help", channel_id=ALERTS)  # no slow work: at once
        assert (helped.kind, helped.type) == ("callback", 4)
        reply = await command(
            fake_discord,
            "set",
            {"key": "liq", "value": "40k"},
            channel_id=ALERTS,
            permissions=admin,
        )
        assert "liq: $40K in 5m, any side" in reply.content
        bad = await command(
            fake_discord,
            "set",
            {"key": "side", "value": "30%"},
            channel_id=ALERTS,
            permissions=admin,
        )
        assert bad.ephemeral and bad.content.startswith("side must be from 50% to 100%")
        dm = await command(fake_discord, "subscribe", dm=True)
        assert dm.content.startswith("Subscribed.")
        await command(
            fake_discord,
            "subscribe",
            guild_id=OTHER_GUILD,
            channel_id=OTHER_CHANNEL,
            permissions=admin,
        )
        await command(
            fake_discord,
            "set",
            {"key": "liq", "value": "40k"},
            guild_id=OTHER_GUILD,
            channel_id=OTHER_CHANNEL,
            permissions=admin,
        )
        # A chat's first pass settles it (what is already crossed then starts disarmed).
        await app.core.recorder.wait_for(
            lambda: app.core.engine.has_settled(f"discord:{OTHER_CHANNEL}")
        )

        await fakes[0].push(force_order("BTCUSDT", "SELL", "0.5", "91000", now_ms()))
        await fake_discord.wait_until(lambda: bool(fake_discord.messages_to(ALERTS)))
        [message] = fake_discord.messages_to(ALERTS)
        [embed] = message.embeds
        assert embed["description"].splitlines()[0] == "$45.5K liquidated in 5m, 100% longs"
        assert embed["color"] == discord.Colour.red().value
        assert {field["name"]: field["value"] for field in embed["fields"]} == {
            "Top assets": "BTC $45.5K",
            "Venues": "Binance $45.5K",
        }
        assert fake_discord.messages_to(CHATTER) == []
        await fake_discord.wait_until(lambda: bool(fake_discord.messages_to(OTHER_CHANNEL)))

        fake_discord.forbid_channel(ALERTS)
        await command(
            fake_discord,
            "set",
            {"key": "whale", "value": "10k"},
            channel_id=ALERTS,
            permissions=admin,
        )
        await fakes[0].push(force_order("ETHUSDT", "SELL", "10", "3000", now_ms()))
        await app.core.chats.wait_for(
            lambda: str(ALERTS) not in {s.chat_id for s in alerts.active_subscriptions(app.db)}
        )

        await fake_discord.remove_guild(OTHER_GUILD)
        await app.core.chats.wait_for(
            lambda: (
                str(OTHER_CHANNEL) not in {s.chat_id for s in alerts.active_subscriptions(app.db)}
            )
        )

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("the core broke")

        assert app.discord is not None
        app.discord.core.handle = broken  # type: ignore[method-assign,assignment]
        failed = await command(fake_discord, "settings", channel_id=CHATTER)
        assert (failed.content, failed.ephemeral) == (FAILED_REPLY, True)
        [logged] = [r for r in caplog.records if r.message == "discord: error in /settings"]
        assert "RuntimeError: the core broke" in traceback_of(logged)
        await stop(task)


async def test_one_run_serves_telegram_and_discord_together(
    tmp_path: Path, fakes: Fakes, fake_discord: FakeDiscord
) -> None:
    async with fake_telegram() as telegram:
        settings = load_settings(configure(tmp_path, fakes, fake_discord, telegram))
        app = quicken(await App.open(settings))
        async with asyncio.timeout(WAIT * 2):
            task = await start(app, fake_discord)
            admin = EVERYONE_PERMISSIONS | MANAGE_CHANNELS
            await command(fake_discord, "subscribe", channel_id=ALERTS, permissions=admin)
            await command(
                fake_discord,
                "set",
                {"key": "liq", "value": "40k"},
                channel_id=ALERTS,
                permissions=admin,
            )
            telegram.enqueue(telegram.command(1001, 1001, "/subscribe"))
            await telegram.wait_until(lambda: len(telegram.messages_to(1001)) == 1)
            telegram.enqueue(telegram.command(1001, 1001, "/set liq 40k"))
            await telegram.wait_until(lambda: len(telegram.messages_to(1001)) == 2)
            # Both chats' first passes settle them (what is already crossed then starts disarmed).
            await app.core.recorder.wait_for(
                lambda: all(
                    app.core.engine.has_settled(chat)
                    for chat in (f"discord:{ALERTS}", "telegram:1001")
                )
            )

            await fakes[0].push(force_order("BTCUSDT", "SELL", "0.5", "91000", now_ms()))
            await fake_discord.wait_until(lambda: bool(fake_discord.messages_to(ALERTS)))
            await telegram.wait_until(lambda: len(telegram.messages_to(1001)) == 3)
            headline = "$45.5K liquidated in 5m, 100% longs"
            assert telegram.messages_to(1001)[2].splitlines()[0] == headline
            embed = fake_discord.messages_to(ALERTS)[0].embeds[0]
            assert embed["description"].splitlines()[0] == headline
            await stop(task)
