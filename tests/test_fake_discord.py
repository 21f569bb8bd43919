"""Self-tests of the fake Discord, driven by the real discord.py client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands

from tests.fakes import FakeDiscord

GUILD, CHANNEL, OTHER = 111_000_000_000_000_001, 222_000_000_000_000_001, 222_000_000_000_000_002


@dataclass
class Bot:
    client: discord.Client
    tree: app_commands.CommandTree[discord.Client]
    removed: list[int] = field(default_factory=list)
    guild_removed: asyncio.Event = field(default_factory=asyncio.Event)
    guild_joined: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    async with FakeDiscord(heartbeat_interval_ms=50) as fake:
        fake.add_guild(GUILD, "Test guild", [CHANNEL, OTHER])
        discord.http.Route.BASE = f"{fake.base_url}/api/v10"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
        try:
            yield fake
        finally:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[Bot]:
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    tree = app_commands.CommandTree(client)
    bot = Bot(client, tree)

    @tree.command(description="Health check")
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pong")

    @tree.command(description="Set a threshold")
    @app_commands.describe(usd="Minimum notional")
    async def threshold(interaction: discord.Interaction, symbol: str, usd: int) -> None:
        await interaction.response.defer(ephemeral=True)
        await interaction.followup.send(f"{symbol} >= {usd}", ephemeral=True)

    @threshold.autocomplete("symbol")
    async def symbols(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=s, value=s) for s in ("BTCUSDT", "ETHUSDT") if current in s
        ]

    @client.event
    async def on_guild_join(guild: discord.Guild) -> None:
        bot.guild_joined.set()

    @client.event
    async def on_guild_remove(guild: discord.Guild) -> None:
        bot.removed.append(guild.id)
        bot.guild_removed.set()

    await client.login(fake.token)
    runner = asyncio.create_task(client.connect(reconnect=True))
    try:
        async with asyncio.timeout(5):
            await client.wait_until_ready()
        yield bot
    finally:
        await client.close()
        await runner


async def test_login_and_ready(fake: FakeDiscord, bot: Bot) -> None:
    assert bot.client.user is not None and bot.client.user.id == fake.bot_id
    assert bot.client.application_id == fake.application_id
    assert fake.gateway_params[0] == {"v": "10", "encoding": "json", "compress": "zlib-stream"}
    guild = bot.client.get_guild(GUILD)
    assert guild is not None and guild.name == "Test guild"
    channel = bot.client.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    assert channel.permissions_for(guild.me).embed_links
    await fake.wait_until(lambda: fake.heartbeats >= 2)


async def test_bad_token_is_a_login_failure(fake: FakeDiscord) -> None:
    client = discord.Client(intents=discord.Intents.default())
    with pytest.raises(discord.LoginFailure):
        await client.login("wrong")
    await client.close()


async def test_sync_and_slash_commands(fake: FakeDiscord, bot: Bot) -> None:
    synced = await bot.tree.sync()
    assert {c.name for c in synced} == {"ping", "threshold"}
    assert {c["name"] for c in fake.commands} == {"ping", "threshold"}
    options = next(c for c in fake.commands if c["name"] == "threshold")["options"]
    assert [(o["name"], o["type"], o.get("autocomplete")) for o in options] == [
        ("symbol", 3, True),
        ("usd", 4, None),
    ]

    ping = await fake.inject_interaction("ping")
    await fake.wait_until(lambda: bool(fake.responses_to(ping)))
    [reply] = fake.responses_to(ping)
    assert (reply.kind, reply.type, reply.content, reply.ephemeral) == (
        "callback",
        4,
        "pong",
        False,
    )

    cmd = await fake.inject_interaction("threshold", {"symbol": "BTCUSDT", "usd": 100_000})
    await fake.wait_until(lambda: len(fake.responses_to(cmd)) == 2)
    deferred, followup = fake.responses_to(cmd)
    assert (deferred.type, deferred.ephemeral) == (5, True)
    assert (followup.kind, followup.content, followup.ephemeral) == (
        "followup",
        "BTCUSDT >= 100000",
        True,
    )

    auto = await fake.inject_autocomplete("threshold", {"symbol": "ETH"}, focused="symbol")
    await fake.wait_until(lambda: bool(fake.responses_to(auto)))
    [choices] = fake.responses_to(auto)
    assert choices.type == 8
    assert choices.data["choices"] == [{"name": "ETHUSDT", "value": "ETHUSDT"}]


async def test_member_permissions_reach_the_interaction(fake: FakeDiscord, bot: Bot) -> None:
    seen: list[tuple[bool, bool]] = []

    @bot.tree.command(description="Admin only")
    async def admin(interaction: discord.Interaction) -> None:
        perms = interaction.permissions
        seen.append((perms.manage_channels, interaction.app_permissions.embed_links))
        await interaction.response.send_message("ok", ephemeral=True)

    await fake.inject_interaction("admin", permissions=1 << 4)
    await fake.inject_interaction("admin", dm=True)
    await fake.wait_until(lambda: len(fake.interaction_responses) == 2)
    assert seen == [(True, True), (False, True)]


async def test_channel_messages_and_faults(fake: FakeDiscord, bot: Bot) -> None:
    channel = bot.client.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send(embed=discord.Embed(title="BTC liquidation", description="$1M"))
    [message] = fake.messages_to(CHANNEL)
    assert sent.id == message.id and sent.embeds[0].title == "BTC liquidation"
    assert message.embeds[0]["description"] == "$1M"

    fake.rate_limit_next(f"/channels/{CHANNEL}/messages", retry_after=0.1)
    await channel.send("after a 429")
    assert fake.rejected_429 == 1
    assert [m.content for m in fake.messages_to(CHANNEL)] == ["", "after a 429"]

    fake.forbid_channel(CHANNEL)
    with pytest.raises(discord.Forbidden) as forbidden:
        await channel.send("nope")
    assert forbidden.value.code == 50001

    other = bot.client.get_channel(OTHER)
    assert isinstance(other, discord.TextChannel)
    assert (await bot.client.fetch_channel(OTHER)).id == OTHER
    fake.delete_channel(OTHER)
    with pytest.raises(discord.NotFound) as missing:
        await other.send("gone")
    assert missing.value.code == 10003


async def test_guild_remove_and_resume(fake: FakeDiscord, bot: Bot) -> None:
    await fake.drop_clients()
    await fake.wait_until(lambda: fake.resumes == 1)
    await fake.remove_guild(GUILD)
    async with asyncio.timeout(2):
        await bot.guild_removed.wait()
    assert bot.removed == [GUILD]
    assert bot.client.get_guild(GUILD) is None
    await fake.join_guild(GUILD + 1, "New guild", [CHANNEL + 9])
    async with asyncio.timeout(2):
        await bot.guild_joined.wait()
    assert isinstance(bot.client.get_channel(CHANNEL + 9), discord.TextChannel)
    assert fake.identifies == 1


async def test_the_fake_answers_discords_limits_when_asked(
    fake: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    """The 6th message in 5 s to a channel, and the 51st request in a second, get 429s."""
    fake.enforce_limits = True
    headers = {"Authorization": f"Bot {fake.token}"}
    url = f"{fake.base_url}/api/v10/channels/{{}}/messages"
    statuses = []
    for _ in range(6):
        async with session.post(url.format(CHANNEL), json={"content": "x"}, headers=headers) as r:
            statuses.append(r.status)
    assert statuses == [200] * 5 + [429]
    fake.global_per_second = 7
    async with session.post(url.format(OTHER), json={"content": "x"}, headers=headers) as r:
        assert r.status == 200  # the 6th counted: the refused one is not
    async with session.post(url.format(OTHER), json={"content": "x"}, headers=headers) as r:
        assert r.status == 200
    async with session.post(url.format(OTHER), json={"content": "x"}, headers=headers) as r:
        body = await r.json()
        assert (r.status, r.headers["X-RateLimit-Global"], body["global"]) == (429, "true", True)
    assert fake.rejected_429 == 2
