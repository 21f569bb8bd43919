"""Discord adapter (discord.py 2.7, in liqbot's own asyncio loop): slash commands that call the
one command core, alerts as embeds, delivery paced per channel. No command logic lives here."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands

from bot.chart_service import Chart, ChartService
from bot.commands import PRESETS, ChatRef, CommandCore, Reply
from bot.errors import StartupError
from bot.formatting import split_message
from bot.model import OutboxRow
from bot.outbox import DeliveryError, Progress
from bot.ratelimit import Limit, Pacer
from bot.subscriptions import SETTING_KEYS

log = logging.getLogger(__name__)

PLATFORM = "discord"
MAX_CONTENT = 2000
MAX_DESCRIPTION = 4096
# Discord allows 50 requests a second per bot and about 5 messages per 5 s in a channel.
PACER_LIMITS = (Limit(45, 1.0), Limit(5, 5.5))
# ...and evenly, at most one per 1/50 s: a whole second's 45 sent at once could, arriving a
# little late, share one of Discord's seconds with the next burst (429s in the fan-out bench).
PACER_SPACING = 1 / 50
COLOURS = {"long": discord.Colour.red(), "short": discord.Colour.green()}
FAILED_REPLY = "Something went wrong on our side; please try again in a minute."
# Commands whose core call reads or writes storage: answered after a deferral (Discord allows 3 s
# for the first response), so a slow moment never loses the reply.
DEFERRED = frozenset(
    {"subscribe", "unsubscribe", "status", "settings", "set", "watch", "mute", "unmute", "quiet"}
    | {"digest", "button", "chart"}
)
START_RETRY_MAX = 60.0
# The gateway's close code for a token it does not accept (also when it is revoked while running).
GATEWAY_AUTHENTICATION_FAILED = 4004
CHART_FILE = "chart.png"
CHART_FAILED = "The chart could not be drawn just now; try again in a minute."
ChatEvent = Callable[[str, str, str | None], object]  # platform, chat id, new id (None: gone)


def point_at(api_url: str, gateway_url: str | None) -> None:
    """discord.py reads its endpoints from class attributes: set them for this process."""
    discord.http.Route.BASE = api_url.rstrip("/")
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def alert_embeds(row: OutboxRow) -> list[discord.Embed]:
    """An outbox message as embeds, from its alerts' data: coloured by the dominant side, the
    labelled lines (top assets, venues) as fields; the description starts with the same first
    line as on Telegram."""
    body = "\n\n".join("\n".join([a.first_line, *a.plain_lines]) for a in row.alerts)
    colour = COLOURS.get(row.alerts[0].side or "", discord.Colour.blurple())
    embeds = [
        discord.Embed(description=part, colour=colour)
        for part in split_message(body, MAX_DESCRIPTION)
    ]
    for alert in row.alerts:
        for field in alert.fields:
            embeds[0].add_field(name=field.name, value=field.value, inline=False)
    return embeds


def chart_file(chart: Chart) -> discord.File:
    """The PNG as an upload; an embed shows it with `set_image(url="attachment://chart.png")`.
    Discord has no reusable upload id for bots, so each message uploads its copy."""
    return discord.File(io.BytesIO(chart.png), filename=CHART_FILE)


class _Client(discord.Client):
    def __init__(
        self,
        on_ready_to_sync: Callable[[], Awaitable[None]],
        on_guild_left: Callable[[discord.Guild], None],
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(intents=intents)
        self._sync = on_ready_to_sync
        self._guild_left = on_guild_left

    async def setup_hook(self) -> None:
        await self._sync()

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        self._guild_left(guild)


class DiscordBot:
    def __init__(
        self,
        token: str,
        core: CommandCore,
        assets: Callable[[], list[str]],
        on_chat_change: ChatEvent,
        charts: ChartService | None = None,
    ) -> None:
        self.token = token
        self.core = core
        self.assets = assets
        self.on_chat_change = on_chat_change
        self.charts = charts
        self.pacer = Pacer(*PACER_LIMITS, spacing=PACER_SPACING)
        self.client = _Client(self._sync_commands, self._guild_left)
        self.tree = app_commands.CommandTree(self.client)
        self.tree.on_error = self._on_error  # type: ignore[method-assign]
        self._register()

    async def run(self) -> None:
        """Log in (retrying while Discord cannot be reached) and stay connected until cancelled."""
        delay = 1.0
        while True:
            try:
                async with self.client:
                    await self.client.start(self.token)
                return
            except discord.LoginFailure:  # 401 from /users/@me
                raise StartupError(
                    "discord: the bot token was refused (401 Unauthorized): set a valid "
                    "[discord] token or DISCORD_BOT_TOKEN (Developer Portal -> Bot -> Reset Token)"
                ) from None
            except discord.ConnectionClosed as error:
                if error.code != GATEWAY_AUTHENTICATION_FAILED:
                    raise
                raise StartupError(
                    "discord: the gateway refused the bot token (4004 Authentication failed): "
                    "set a valid [discord] token or DISCORD_BOT_TOKEN (Developer Portal -> Bot -> "
                    "Reset Token)"
                ) from None
            except (aiohttp.ClientError, OSError, discord.GatewayNotFound) as error:
                log.warning("discord: cannot connect (%s); retrying in %.0f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, START_RETRY_MAX)
                self.client = _Client(self._sync_commands, self._guild_left)
                self.tree = app_commands.CommandTree(self.client)
                self.tree.on_error = self._on_error  # type: ignore[method-assign]
                self._register()

    async def _sync_commands(self) -> None:
        await self.tree.sync()
        log.info("discord: slash commands synced")

    def _guild_left(self, guild: discord.Guild) -> None:
        log.info("discord: removed from server %s", guild.id)
        for channel in guild.channels:
            self.on_chat_change(PLATFORM, str(channel.id), None)

    async def _on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Every error a command raised: logged with its traceback, the user told in one line
        (if that reply fails too, it is logged, not raised again)."""
        log.error(
            "discord: error in /%s",
            interaction.command and interaction.command.name,
            exc_info=error,
        )
        try:
            if interaction.response.is_done():
                with contextlib.suppress(discord.NotFound):  # no "thinking" placeholder left
                    await interaction.delete_original_response()
                await interaction.followup.send(FAILED_REPLY, ephemeral=True)
            else:
                await interaction.response.send_message(FAILED_REPLY, ephemeral=True)
        except (discord.HTTPException, aiohttp.ClientError, OSError) as reply_error:
            log.warning("discord: could not tell the user about the error: %s", reply_error)

    # -- commands ----------------------------------------------------------------------------

    async def _run(self, interaction: discord.Interaction, command: str, args: list[str]) -> None:
        chat = ChatRef(
            PLATFORM, str(interaction.channel_id), is_group=interaction.guild_id is not None
        )

        async def is_admin() -> bool:
            return interaction.permissions.manage_channels

        if command in DEFERRED:
            await interaction.response.defer(thinking=True)
        reply = await self.core.handle(command, chat, args, is_admin, user=str(interaction.user.id))
        if reply is None:
            reply = Reply("Too many commands: wait a minute and try again.", refusal=True)
        await self._respond(interaction, reply)

    async def _respond_chart(self, interaction: discord.Interaction, reply: Reply) -> None:
        """/chart: deferred (drawing may take longer than Discord's 3 s to answer; `_run`
        defers it before the core runs), then the image in an embed saying what it shows."""
        assert reply.chart is not None
        if not interaction.response.is_done():
            await interaction.response.defer(thinking=True)
        chart = await self.charts.chart(reply.chart) if self.charts else None
        if chart is None:
            await interaction.followup.send(CHART_FAILED)
            return
        embed = discord.Embed(description=reply.text, colour=discord.Colour.blurple())
        embed.set_image(url=f"attachment://{CHART_FILE}")
        await interaction.followup.send(embed=embed, file=chart_file(chart))

    async def _respond(self, interaction: discord.Interaction, reply: Reply) -> None:
        """The reply: as the interaction's response, or after a deferral as follow-ups. A
        refusal is for the user alone: its public "thinking" placeholder is removed first."""
        if reply.chart is not None:
            await self._respond_chart(interaction, reply)
            return
        parts = split_message(discord.utils.escape_markdown(reply.text), MAX_CONTENT)
        view = self._buttons(reply)
        extra: dict[str, Any] = {} if view is None else {"view": view}
        if interaction.response.is_done():
            if reply.refusal:
                await interaction.delete_original_response()
            await interaction.followup.send(parts[0], ephemeral=reply.refusal, **extra)
        else:
            await interaction.response.send_message(parts[0], ephemeral=reply.refusal, **extra)
        for part in parts[1:]:
            await interaction.followup.send(part, ephemeral=reply.refusal)

    def _buttons(self, reply: Reply) -> discord.ui.View | None:
        if not reply.buttons:
            return None
        view = discord.ui.View(timeout=900)
        for row_index, row in enumerate(reply.buttons):
            for button in row:
                item: discord.ui.Button[discord.ui.View] = discord.ui.Button(
                    label=button.label, custom_id=button.data, row=min(row_index, 4)
                )
                item.callback = self._pressed(button.data)  # type: ignore[method-assign,assignment]
                view.add_item(item)
        return view

    def _pressed(self, data: str) -> Callable[[discord.Interaction], Coroutine[Any, Any, None]]:
        async def pressed(interaction: discord.Interaction) -> None:
            await self._run(interaction, "button", [data])

        return pressed

    def _register(self) -> None:
        tree, run = self.tree, self._run
        presets = [app_commands.Choice(name=p.label, value=name) for name, p in PRESETS.items()]
        keys = [app_commands.Choice(name=key, value=key) for key in SETTING_KEYS]

        @tree.command(name="start", description="What liqbot does; subscribe with a preset")
        async def start(interaction: discord.Interaction) -> None:
            await run(interaction, "start", [])

        @tree.command(name="help", description="Commands and settings")
        async def help_(interaction: discord.Interaction) -> None:
            await run(interaction, "help", [])

        @tree.command(name="subscribe", description="Send alerts to this channel (or this DM)")
        @app_commands.describe(preset="Start from a preset instead of the defaults")
        @app_commands.choices(preset=presets)
        async def subscribe(
            interaction: discord.Interaction, preset: app_commands.Choice[str] | None = None
        ) -> None:
            await run(interaction, "subscribe", [preset.value] if preset else [])

        @tree.command(name="unsubscribe", description="Stop alerts here")
        async def unsubscribe(interaction: discord.Interaction) -> None:
            await run(interaction, "unsubscribe", [])

        @tree.command(name="status", description="Liquidations, funding, open interest, sources")
        async def status(interaction: discord.Interaction) -> None:
            await run(interaction, "status", [])

        @tree.command(name="settings", description="This channel's thresholds")
        async def settings(interaction: discord.Interaction) -> None:
            await run(interaction, "settings", [])

        @tree.command(name="set", description="Change a threshold")
        @app_commands.describe(key="What to change", value="e.g. 250m, 80%, 0.05%, 3x, 30m, off")
        @app_commands.choices(key=keys)
        async def set_(
            interaction: discord.Interaction, key: app_commands.Choice[str], value: str
        ) -> None:
            await run(interaction, "set", [key.value, *value.split()])

        @tree.command(name="watch", description="Assets to watch, or all")
        @app_commands.describe(assets="e.g. BTC ETH SOL, or all")
        async def watch(interaction: discord.Interaction, assets: str) -> None:
            await run(interaction, "watch", assets.split())

        @watch.autocomplete("assets")
        async def watch_assets(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            head, _, last = current.rpartition(" ")
            prefix = f"{head} " if head else ""
            known = [a for a in self.assets() if a.startswith(last.upper())][:25]
            return [app_commands.Choice(name=prefix + a, value=prefix + a) for a in known]

        @tree.command(name="mute", description="Pause alerts, e.g. 2h")
        async def mute(interaction: discord.Interaction, duration: str) -> None:
            await run(interaction, "mute", duration.split())

        @tree.command(name="unmute", description="Resume alerts")
        async def unmute(interaction: discord.Interaction) -> None:
            await run(interaction, "unmute", [])

        @tree.command(
            name="quiet", description="Quiet hours, e.g. 23:00-07:00 Europe/Berlin, or off"
        )
        async def quiet(
            interaction: discord.Interaction, hours: str, timezone: str | None = None
        ) -> None:
            await run(interaction, "quiet", [hours, *([timezone] if timezone else [])])

        @tree.command(name="chart", description="A chart of liquidations, e.g. BTC 4h")
        @app_commands.describe(
            asset="An asset such as BTC (default: the watch list, or the whole market)",
            window="5m, 15m, 1h, 4h or 24h (default 24h)",
        )
        async def chart(
            interaction: discord.Interaction, asset: str | None = None, window: str | None = None
        ) -> None:
            await run(interaction, "chart", [word for word in (asset, window) if word])

        @chart.autocomplete("asset")
        async def chart_assets(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            known = [a for a in self.assets() if a.startswith(current.strip().upper())][:25]
            return [app_commands.Choice(name=a, value=a) for a in known]

        @tree.command(name="digest", description="daily HH:MM, hourly or off")
        async def digest(interaction: discord.Interaction, schedule: str) -> None:
            await run(interaction, "digest", schedule.split())

    # -- delivery ------------------------------------------------------------------------------

    async def _send_with_chart(
        self, channel: discord.PartialMessageable, embed: discord.Embed, chart: Chart
    ) -> None:
        embed.set_image(url=f"attachment://{CHART_FILE}")
        try:
            await channel.send(embed=embed, file=chart_file(chart))
        except discord.Forbidden:  # no Attach Files permission here: the alert goes without it
            log.warning("discord: cannot attach a chart in %s; sending the text", channel.id)
            embed.set_image(url=None)
            await self.pacer.wait(str(channel.id))
            await channel.send(embed=embed)

    async def send(self, row: OutboxRow, progress: Progress) -> None:
        """Deliver one outbox alert to its channel as embeds, one message each, starting after
        those that arrived before (`row.parts_sent`, stored through `progress`); the first
        carries the chart when the chat gets one."""
        channel = self.client.get_partial_messageable(int(row.chat_id))
        embeds = alert_embeds(row)
        first_due = row.parts_sent == 0  # the chart goes in the first embed only
        chart = await self.charts.chart_for(row) if self.charts and first_due else None
        for index in range(row.parts_sent, len(embeds)):
            embed = embeds[index]
            await self.pacer.wait(row.chat_id)
            try:
                if chart is not None and index == 0:  # the image in the alert's embed
                    await self._send_with_chart(channel, embed, chart)
                else:
                    await channel.send(embed=embed)
            except (discord.Forbidden, discord.NotFound) as error:
                raise DeliveryError(f"discord: {error}", chat_gone=True) from None
            except (discord.HTTPException, aiohttp.ClientError, OSError) as error:
                raise DeliveryError(f"discord: {error}") from None
            if index + 1 < len(embeds):
                await progress(index + 1)
