"""Telegram adapter (python-telegram-bot 22, in liqbot's own asyncio loop): turns updates into
calls of the command core and replies into HTML messages, and delivers outbox alerts within
Telegram's limits. No command logic lives here."""

from __future__ import annotations

import asyncio
import html
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from telegram import (
    BotCommand,
    Chat,
    ChatMember,
    ChatMemberAdministrator,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.chart_service import CACHE_SIZE, Chart, ChartKey, ChartService
from bot.commands import COMMANDS, ChatRef, CommandCore, Reply
from bot.formatting import split_message
from bot.model import OutboxRow
from bot.outbox import DeliveryError, Progress
from bot.ratelimit import Limit, Pacer
from handlers.telegram_http import AiohttpRequest
from handlers.telegram_polling import (
    Poller,
    PollingErrors,
    refused_token,
    retry_seconds,
    telegram_words,
)

log = logging.getLogger(__name__)

PLATFORM = "telegram"
MAX_TEXT = 4096
MAX_CAPTION = 1024
CHART_FAILED = "The chart could not be drawn just now; try again in a minute."
# Telegram allows 30 messages a second overall, 20 a minute in a group and about one a second
# in a chat. Requests reach Telegram a little earlier or later than they leave, so each limit
# keeps a margin: one message below the overall and group caps, 0.1 s on a chat's second.
PACER_LIMITS = (Limit(29, 1.0), Limit(1, 1.1, margin=0.1), Limit(19, 60.0))
# Sends also go out evenly, at most one per 1/30 s, not 29 at once: any 31 sends then span at
# least 1 s + 1/30 s, so a request may take up to 1/30 s longer than one sent a second after it
# before Telegram counts 31 in a second (in bursts, a few milliseconds longer was enough).
PACER_SPACING = 1 / 30
# Paid broadcasts (allow_paid_broadcast, Bot API 7.11) lift the overall limit to 1,000 a second:
# alerts are paced at the configured rate less 2% (980 of 1,000), evenly spread.
PAID_MARGIN = 0.02
START_RETRY_MAX = 60.0
ADMINS = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
GONE = (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED)
# The update types the handlers below use, and so the only ones asked of Telegram.
ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member", "channel_post")
# Commands come in new messages and channel posts: an edited one must not run a second time.
COMMAND_UPDATES = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
# A chat's size (getChatMemberCount) is asked at most once a day; it orders deliveries.
AUDIENCE_TTL = 86_400.0
# Bad Request answers that mean the bot may no longer post in the chat (as a block does).
NO_RIGHTS = ("chat not found", "need administrator rights", "not enough rights")
# Updates handled at once (PTB's default for concurrent handling, and its connection pool's
# size): a chat waiting out its pace holds up only its own replies, not the next chat's.
CONCURRENT_UPDATES = 256
ChatEvent = Callable[[str, str, str | None], object]  # platform, chat id, new id (None: gone)
FAILED_REPLY = "Something went wrong on our side; please try again in a minute."


def render(text: str, bold_first_line: bool = False) -> str:
    """Plain text as Telegram HTML, every character of it escaped."""
    escaped = html.escape(text, quote=False)
    if bold_first_line:
        first, _, rest = escaped.partition("\n")
        escaped = f"<b>{first}</b>" + (f"\n{rest}" if rest else "")
    return escaped


def alert_parts(row: OutboxRow) -> list[str]:
    """An outbox message as Telegram HTML, in parts within the length limit (counted on the
    visible text); the alert's first line is bold, every value escaped."""
    parts = split_message(row.text, MAX_TEXT)
    return [render(part, bold_first_line=index == 0) for index, part in enumerate(parts)]


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(b.label, callback_data=b.data) for b in row]
            for row in reply.buttons
        ]
    )


def _chat_ref(chat: Chat, audience: int | None = None) -> ChatRef:
    is_channel = chat.type == Chat.CHANNEL
    return ChatRef(PLATFORM, str(chat.id), chat.type != Chat.PRIVATE, is_channel, audience)


def paid_limit(rate: int) -> Limit:
    """The overall pace of paid broadcast sends at `rate` messages a second."""
    return Limit(rate - max(1, round(rate * PAID_MARGIN)), 1.0)


def can_post(member: ChatMember) -> bool:
    """Whether the bot, as this member of a channel, may post in it."""
    if member.status == ChatMemberStatus.OWNER:
        return True
    return isinstance(member, ChatMemberAdministrator) and bool(member.can_post_messages)


class TelegramBot:
    def __init__(
        self,
        token: str,
        api_url: str,
        core: CommandCore,
        on_chat_change: ChatEvent,
        charts: ChartService | None = None,
        paid_rate: int | None = None,
    ) -> None:
        """`paid_rate`: send alerts as paid broadcasts at up to this many a second (None: off)."""
        self.core = core
        self.on_chat_change = on_chat_change
        self.charts = charts
        # A chart is uploaded once; later copies go by the file_id Telegram returned.
        self._file_ids: OrderedDict[ChartKey, str] = OrderedDict()
        self._uploading: dict[ChartKey, asyncio.Lock] = {}
        self.paid = paid_rate is not None
        self._audiences: dict[int, tuple[float, int | None]] = {}  # chat -> (asked at, size)
        self._http = AiohttpRequest()
        self.paid_rate = paid_rate
        self.timescale = 1.0
        self.pacer = self._pacer()
        self.app: Application = (  # type: ignore[type-arg]
            ApplicationBuilder()
            .token(token)
            .base_url(f"{api_url}/bot")
            .base_file_url(f"{api_url}/file/bot")
            .job_queue(None)
            .updater(None)  # liqbot polls by itself: handlers/telegram_polling.py says why
            .request(self._http)  # its method calls; long polling stays on httpx
            .concurrent_updates(CONCURRENT_UPDATES)
            .build()
        )
        names = [name for name, _ in COMMANDS]
        self.app.add_handler(CommandHandler(names, self._command, filters=COMMAND_UPDATES))
        self.app.add_handler(CallbackQueryHandler(self._button))
        self.app.add_handler(ChatMemberHandler(self._membership, ChatMemberHandler.MY_CHAT_MEMBER))
        self.app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, self._migrated))
        self.app.add_error_handler(self._error)

    def scale_time(self, timescale: float) -> None:
        """Hold Telegram's limits and waits (the pace, flood waits, connection retries) at
        `timescale` times their length: for tests against a fake Bot API whose windows are
        scaled alike (`retry_after` stays in Telegram's seconds). Before `run`."""
        self.timescale = timescale
        self.pacer = self._pacer()

    def _pacer(self) -> Pacer:
        overall, chat, group = (limit.scaled(self.timescale) for limit in PACER_LIMITS)
        paid = None if self.paid_rate is None else paid_limit(self.paid_rate)
        return Pacer(
            overall,
            chat,
            per_group=group,
            spacing=PACER_SPACING,  # it allows for latency, as the margins do
            paid=None if paid is None else paid.scaled(self.timescale),
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect (retrying while Telegram cannot be reached), poll, and stop when cancelled.
        A token Telegram refuses, at start or later, raises the StartupError that ends `run`."""
        delay = 1.0
        while True:
            try:
                await self.app.initialize()
                await self.app.bot.set_my_commands(
                    [BotCommand(name, description) for name, description in COMMANDS]
                )
                await self.app.bot.delete_webhook()  # getUpdates is refused while one is set
                break
            except InvalidToken as error:  # 401/404 from getMe; its text holds the token
                await self._http.shutdown()  # PTB shuts down only what initialised fully
                raise refused_token(telegram_words(error)) from None
            except NetworkError as error:
                wait = delay * self.timescale
                log.warning("telegram: cannot connect (%s); retrying in %g s", error, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, START_RETRY_MAX)
        await self.app.start()
        poller = Poller(
            self.app.bot, self.app.update_queue, ALLOWED_UPDATES, PollingErrors(), self.timescale
        )
        log.info("telegram: polling as @%s", self.app.bot.username)
        try:
            await poller.run()
        finally:
            await poller.confirm()
            await self.app.stop()
            await self.app.shutdown()

    # -- commands ----------------------------------------------------------------------------

    async def _command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, chat, user = update.effective_message, update.effective_chat, update.effective_user
        if message is None or chat is None or not message.text:
            return
        # A channel post has `sender_chat` (the channel) and no `from`; an anonymous group
        # administrator's message has the group as `sender_chat` (and a placeholder `from`).
        as_chat = message.sender_chat is not None and message.sender_chat.id == chat.id
        if user is None and not as_chat:
            return
        command = message.text.split()[0][1:].split("@")[0].lower()
        reply = await self.core.handle(
            command,
            _chat_ref(chat, await self._audience(chat)),
            list(context.args or []),
            self._admin_check(chat, user.id if user is not None else 0),
            user=f"chat{chat.id}" if as_chat or user is None else str(user.id),
            as_chat=as_chat,
        )
        if reply is not None:
            await self._reply(message, reply)

    async def _audience(self, chat: Chat) -> int | None:
        """A group's or channel's member count, asked once a day (None: unknown or private)."""
        if chat.type == Chat.PRIVATE:
            return None
        now = asyncio.get_running_loop().time()
        cached = self._audiences.get(chat.id)
        if cached is not None and now - cached[0] < AUDIENCE_TTL:
            return cached[1]
        try:
            size: int | None = await self.app.bot.get_chat_member_count(chat.id)
        except TelegramError as error:  # the size only orders deliveries: go on without it
            log.warning("telegram: no member count for chat %s (%s)", chat.id, error)
            size = None
        self._audiences[chat.id] = (now, size)
        return size

    async def _button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query, chat = update.callback_query, update.effective_chat
        if query is None or chat is None:
            return
        if chat.type == Chat.CHANNEL:  # liqbot puts no buttons in channels: any reader could press
            await query.answer("Post a command in the channel to change liqbot there.")
            return
        await query.answer()
        reply = await self.core.handle(
            "button",
            _chat_ref(chat),
            [query.data or ""],
            self._admin_check(chat, query.from_user.id),
            user=str(query.from_user.id),
        )
        if reply is None:
            return
        message = query.message
        if not isinstance(message, Message):
            return
        if reply.refusal:
            await self._reply(message, reply)
            return

        async def edit() -> object:
            return await message.edit_text(
                render(reply.text), parse_mode=ParseMode.HTML, reply_markup=keyboard(reply)
            )

        await self._paced(str(chat.id), chat.type != Chat.PRIVATE, edit)

    def _admin_check(self, chat: Chat, user_id: int) -> Callable[[], Awaitable[bool]]:
        async def is_admin() -> bool:
            member = await self.app.bot.get_chat_member(chat.id, user_id)
            return member.status in ADMINS

        return is_admin

    async def _reply(self, message: Message, reply: Reply) -> None:
        """Answer a command; in a channel, as a post of its own (not a reply to the command)."""
        chat = message.chat
        if reply.chart is not None:
            chart = await self.charts.chart(reply.chart) if self.charts else None
            if chart is not None:

                async def photo() -> object:
                    return await self._photo(
                        chart,
                        lambda photo: message.reply_photo(
                            photo, caption=render(reply.text), parse_mode=ParseMode.HTML
                        ),
                    )

                await self._paced(str(chat.id), chat.type != Chat.PRIVATE, photo)
                return
            reply = Reply(CHART_FAILED, refusal=True)
        for part in split_message(reply.text, MAX_TEXT):

            async def send(text: str = part) -> object:
                if chat.type == Chat.CHANNEL:
                    return await self.app.bot.send_message(
                        chat.id, render(text), parse_mode=ParseMode.HTML
                    )
                return await message.reply_text(
                    render(text), parse_mode=ParseMode.HTML, reply_markup=keyboard(reply)
                )

            await self._paced(str(chat.id), chat.type != Chat.PRIVATE, send)

    async def _paced(
        self,
        chat_id: str,
        is_group: bool,
        call: Callable[[], Awaitable[object]],
        wait_out_flood: bool = True,
        paid: bool = False,
    ) -> None:
        """One API call that sends a message, within the limits; a flood answer is waited out
        once (a second one is raised). The retry is paced too: it counts in the windows.
        `paid`: a paid broadcast, paced by the paid lane."""
        await self.pacer.wait(chat_id, is_group, paid)
        try:
            await call()
        except RetryAfter as error:
            if not wait_out_flood:
                raise
            await asyncio.sleep(retry_seconds(error.retry_after) * self.timescale)
            await self.pacer.wait(chat_id, is_group, paid)
            await call()

    # -- chat membership -----------------------------------------------------------------------

    async def _membership(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change = update.my_chat_member
        if change is None:
            return
        member, chat = change.new_chat_member, change.chat
        if member.status in GONE:
            log.info("telegram: removed from chat %s", chat.id)
            self.on_chat_change(PLATFORM, str(chat.id), None)
        elif chat.type == Chat.CHANNEL and not can_post(member):
            log.info("telegram: can no longer post in channel %s", chat.id)
            self.on_chat_change(PLATFORM, str(chat.id), None)
        elif chat.type == Chat.CHANNEL:
            log.info("telegram: may post in channel %s; /subscribe there turns alerts on", chat.id)

    async def _migrated(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None and message.migrate_to_chat_id:
            self.on_chat_change(PLATFORM, str(message.chat.id), str(message.migrate_to_chat_id))

    async def _error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every error a handler raised: logged with its traceback, and the user who sent the
        update told in one line (if that reply fails too, it is logged, not raised again)."""
        log.error("telegram: error while handling an update", exc_info=context.error)
        message = update.effective_message if isinstance(update, Update) else None
        if message is None:
            return
        try:
            await message.reply_text(FAILED_REPLY)
        except TelegramError as error:
            log.warning(
                "telegram: could not tell chat %s about the error: %s", message.chat_id, error
            )

    # -- delivery ------------------------------------------------------------------------------

    async def _photo(
        self, chart: Chart, send: Callable[[InputFile | str], Awaitable[Message]]
    ) -> Message:
        """Send `chart` with `send`: the first copy uploads the PNG, later ones (and those that
        waited for the upload) use the file_id Telegram gave it."""
        file_id = self._file_ids.get(chart.key)
        if file_id is None:
            lock = self._uploading.setdefault(chart.key, asyncio.Lock())
            async with lock:
                file_id = self._file_ids.get(chart.key)
                if file_id is None:
                    try:
                        sent = await send(InputFile(chart.png, filename="chart.png"))
                    finally:  # uploaded or failed: either way the next copy takes over
                        self._uploading.pop(chart.key, None)
                    if sent.photo:
                        self._file_ids[chart.key] = sent.photo[-1].file_id
                        while len(self._file_ids) > CACHE_SIZE:
                            self._file_ids.popitem(last=False)
                    return sent
        return await send(file_id)

    def _chart_calls(self, row: OutboxRow, chart: Chart) -> list[Callable[[], Awaitable[object]]]:
        """An alert as a photo: the caption starts with the alert's first line (bold) and holds
        the rest when it fits Telegram's 1,024 characters; otherwise the rest follows as text
        messages."""
        chat_id = row.chat_id
        text = row.text
        first = row.alerts[0].first_line
        rest = text[len(first) :].lstrip("\n")
        fits = len(text) <= MAX_CAPTION
        caption = render(text if fits else first, bold_first_line=True)
        parts = [] if fits or not rest else split_message(rest, MAX_TEXT)

        async def photo() -> object:
            return await self._photo(
                chart,
                lambda photo: self.app.bot.send_photo(
                    int(chat_id),
                    photo,
                    caption=caption,
                    parse_mode=ParseMode.HTML,
                    allow_paid_broadcast=self.paid or None,
                ),
            )

        return [photo, *(self._text_call(chat_id, render(part)) for part in parts)]

    def _text_call(self, chat_id: str, html_text: str) -> Callable[[], Awaitable[object]]:
        async def send() -> object:
            return await self.app.bot.send_message(
                int(chat_id),
                html_text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                allow_paid_broadcast=self.paid or None,
            )

        return send

    async def send(self, row: OutboxRow, progress: Progress) -> None:
        """Deliver one outbox alert: as a photo when the chat gets a chart, else as text split
        when over Telegram's length limit. Either way it starts after the parts that arrived
        before (`row.parts_sent`, stored through `progress`). A flood answer is raised with its
        wait, for the outbox to schedule the retry without holding a slot."""
        chat_id = row.chat_id
        chart = await self.charts.chart_for(row) if self.charts else None
        if chart is not None:
            calls = self._chart_calls(row, chart)
        else:
            calls = [self._text_call(chat_id, part) for part in alert_parts(row)]
        for index in range(row.parts_sent, len(calls)):
            await self._deliver(chat_id, calls[index])
            if index + 1 < len(calls):
                await progress(index + 1)

    async def _deliver(self, chat_id: str, send: Callable[[], Awaitable[object]]) -> None:
        """One paced call of an alert's delivery; Telegram's answers as `DeliveryError`s (a
        flood answer too, with its wait: not waited out here)."""
        try:
            await self._paced(
                chat_id, chat_id.startswith("-"), send, wait_out_flood=False, paid=self.paid
            )
        except RetryAfter as error:
            raise DeliveryError(str(error), retry_after=retry_seconds(error.retry_after)) from None
        except ChatMigrated as error:
            raise DeliveryError(str(error), moved_to=str(error.new_chat_id)) from None
        except Forbidden as error:
            raise DeliveryError(str(error), chat_gone=True) from None
        except BadRequest as error:
            gone = any(words in error.message.lower() for words in NO_RIGHTS)
            raise DeliveryError(str(error), chat_gone=gone, permanent=True) from None
        except NetworkError as error:
            raise DeliveryError(f"network: {error}") from None
