"""Telegram adapter (python-telegram-bot 22, in liqbot's own asyncio loop): turns updates into
calls of the command core and replies into HTML messages, and delivers outbox alerts within
Telegram's limits. No command logic lives here."""

from __future__ import annotations

import asyncio
import html
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta

from telegram import (
    BotCommand,
    Chat,
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
from bot.errors import StartupError
from bot.formatting import split_message
from bot.outbox import DeliveryError, Progress
from bot.ratelimit import Limit, Pacer
from storage.alerts import OutboxRow

log = logging.getLogger(__name__)

PLATFORM = "telegram"
MAX_TEXT = 4096
MAX_CAPTION = 1024
CHART_FAILED = "The chart could not be drawn just now; try again in a minute."
# Telegram allows 30 messages a second overall, 20 a minute in a group and about one a second
# in a chat. Requests reach Telegram a little earlier or later than they leave, so each limit
# keeps a margin: one message below the overall and group caps, 0.1 s on a chat's second.
PACER_LIMITS = (Limit(29, 1.0), Limit(1, 1.1), Limit(19, 60.0))
# Sends also go out evenly, at most one per 1/30 s, not 29 at once: any 31 sends then span at
# least 1 s + 1/30 s, so a request may take up to 1/30 s longer than one sent a second after it
# before Telegram counts 31 in a second (in bursts, a few milliseconds longer was enough).
PACER_SPACING = 1 / 30
START_RETRY_MAX = 60.0
ADMINS = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
GONE = (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED)
# The update types the handlers below use, and so the only ones asked of Telegram.
ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member")
# Updates handled at once (PTB's default for concurrent handling, and its connection pool's
# size): a chat waiting out its pace holds up only its own replies, not the next chat's.
CONCURRENT_UPDATES = 256
ChatEvent = Callable[[str, str, str | None], object]  # platform, chat id, new id (None: gone)
FAILED_REPLY = "Something went wrong on our side; please try again in a minute."


def _seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


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


def _chat_ref(chat: Chat) -> ChatRef:
    return ChatRef(PLATFORM, str(chat.id), is_group=chat.type != Chat.PRIVATE)


class TelegramBot:
    def __init__(
        self,
        token: str,
        api_url: str,
        core: CommandCore,
        on_chat_change: ChatEvent,
        charts: ChartService | None = None,
    ) -> None:
        self.core = core
        self.on_chat_change = on_chat_change
        self.charts = charts
        # A chart is uploaded once; later copies go by the file_id Telegram returned.
        self._file_ids: OrderedDict[ChartKey, str] = OrderedDict()
        self._uploading: dict[ChartKey, asyncio.Lock] = {}
        self.pacer = Pacer(*PACER_LIMITS[:2], per_group=PACER_LIMITS[2], spacing=PACER_SPACING)
        self.app: Application = (  # type: ignore[type-arg]
            ApplicationBuilder()
            .token(token)
            .base_url(f"{api_url}/bot")
            .base_file_url(f"{api_url}/file/bot")
            .job_queue(None)
            .concurrent_updates(CONCURRENT_UPDATES)
            .build()
        )
        names = [name for name, _ in COMMANDS]
        # New messages only: an edited message must not run its command a second time.
        self.app.add_handler(
            CommandHandler(names, self._command, filters=filters.UpdateType.MESSAGE)
        )
        self.app.add_handler(CallbackQueryHandler(self._button))
        self.app.add_handler(ChatMemberHandler(self._membership, ChatMemberHandler.MY_CHAT_MEMBER))
        self.app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, self._migrated))
        self.app.add_error_handler(self._error)

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect (retrying while Telegram cannot be reached), poll, and stop when cancelled."""
        delay = 1.0
        while True:
            try:
                await self.app.initialize()
                await self.app.bot.set_my_commands(
                    [BotCommand(name, description) for name, description in COMMANDS]
                )
                break
            except InvalidToken as error:  # 401/404 from getMe; its text holds the token
                cause: BaseException = error
                while cause.__cause__ is not None:  # the innermost: Telegram's own words
                    cause = cause.__cause__
                raise StartupError(
                    f"telegram: the bot token was refused ({cause}): set a valid [telegram] "
                    "token or TELEGRAM_BOT_TOKEN (from @BotFather)"
                ) from None
            except NetworkError as error:
                log.warning("telegram: cannot connect (%s); retrying in %.0f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, START_RETRY_MAX)
        await self.app.start()
        assert self.app.updater is not None
        await self.app.updater.start_polling(allowed_updates=list(ALLOWED_UPDATES))
        log.info("telegram: polling as @%s", self.app.bot.username)
        try:
            await asyncio.Event().wait()
        finally:
            await self.app.updater.stop()
            await self.app.stop()
            await self.app.shutdown()

    # -- commands ----------------------------------------------------------------------------

    async def _command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, chat, user = update.effective_message, update.effective_chat, update.effective_user
        if message is None or chat is None or user is None or not message.text:
            return
        command = message.text.split()[0][1:].split("@")[0].lower()
        reply = await self.core.handle(
            command,
            _chat_ref(chat),
            list(context.args or []),
            self._admin_check(chat, user.id),
            user=str(user.id),
        )
        if reply is not None:
            await self._reply(message, reply)

    async def _button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query, chat = update.callback_query, update.effective_chat
        if query is None or chat is None:
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
    ) -> None:
        """One API call that sends a message, within the limits; a flood answer is waited out
        once (a second one is raised). The retry is paced too: it counts in the windows."""
        await self.pacer.wait(chat_id, is_group)
        try:
            await call()
        except RetryAfter as error:
            if not wait_out_flood:
                raise
            await asyncio.sleep(_seconds(error.retry_after))
            await self.pacer.wait(chat_id, is_group)
            await call()

    # -- chat membership -----------------------------------------------------------------------

    async def _membership(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change = update.my_chat_member
        if change is not None and change.new_chat_member.status in GONE:
            log.info("telegram: removed from chat %s", change.chat.id)
            self.on_chat_change(PLATFORM, str(change.chat.id), None)

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
                    int(chat_id), photo, caption=caption, parse_mode=ParseMode.HTML
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
            await self._paced(chat_id, chat_id.startswith("-"), send, wait_out_flood=False)
        except RetryAfter as error:
            raise DeliveryError(str(error), retry_after=_seconds(error.retry_after)) from None
        except ChatMigrated as error:
            raise DeliveryError(str(error), moved_to=str(error.new_chat_id)) from None
        except Forbidden as error:
            raise DeliveryError(str(error), chat_gone=True) from None
        except BadRequest as error:
            gone = "chat not found" in error.message.lower()
            raise DeliveryError(str(error), chat_gone=gone, permanent=True) from None
        except NetworkError as error:
            raise DeliveryError(f"network: {error}") from None
