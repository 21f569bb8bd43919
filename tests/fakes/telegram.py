"""A fake Telegram Bot API server that python-telegram-bot talks to unmodified.

It speaks the Bot API wire format (``/bot<token>/<method>``; parameters as
query, JSON, form fields or multipart; answers ``{"ok": true, "result": ...}``
or an error object) and answers floods, blocks, unknown chats and group
migrations the way Telegram does, so the adapter meets PTB's own RetryAfter,
Forbidden, BadRequest and ChatMigrated. Give PTB ``base_url=f"{fake.base_url}/bot"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import re
from collections import deque
from dataclasses import dataclass
from html import unescape
from typing import Any

from aiohttp import web

from .server import JSON, FakeVenue, _Fault, json_response

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # sendPhoto: at most 10 MB, width + height <= 10000, ratio <= 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MEMBER_STATUSES = ("creator", "administrator", "member", "left", "kicked")

# Form values arrive as strings: PTB sends str parameters raw and JSON-encodes the rest.
_INT_FIELDS = {"chat_id", "user_id", "message_id", "offset", "limit", "timeout"}
_JSON_FIELDS = {"reply_markup", "commands", "allowed_updates", "link_preview_options", "scope"}
_JSON_FIELDS |= {"entities", "drop_pending_updates", "disable_web_page_preview", "show_alert"}
_JSON_FIELDS |= {"allow_paid_broadcast"}
_HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "a", "code"}
_HTML_TAGS |= {"pre", "blockquote", "tg-spoiler", "tg-emoji"}
_TAG = re.compile(r"<(/?)([A-Za-z][\w-]*)(?:\s[^<>]*)?>")
_RIGHTS = "manage_chat delete_messages manage_video_chats restrict_members promote_members"
_RIGHTS += " change_info invite_users post_stories edit_stories delete_stories"
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a content and reply markup of the current message"
)
_GIFTS = "unlimited_gifts limited_gifts unique_gifts premium_subscription gifts_from_channels"


# Telegram's answer to getUpdates while another connection polls with the same token.
OTHER_POLLER = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)


class ApiError(Exception):
    """A Bot API error answer, raised by method handlers and rendered by the endpoint."""

    def __init__(self, code: int, description: str, **parameters: int) -> None:
        super().__init__(description)
        self.body: JSON = {"ok": False, "error_code": code, "description": description}
        self.body.update({"parameters": parameters} if parameters else {})
        self.code = code


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request, as it arrived."""

    field: str
    filename: str | None
    content_type: str
    data: bytes


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; 400 as Telegram answers for a non-image."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@dataclass(frozen=True)
class SentMessage:
    """A message the bot sent (sendMessage, sendPhoto) or edited (editMessageText)."""

    method: str
    chat_id: int
    message_id: int
    text: str  # a photo's caption; the visible text when parse_mode is HTML
    parse_mode: str | None
    reply_markup: JSON | None
    time: float  # seconds on the fake's clock
    photo: str | None = None  # file_id or URL, or "upload:<filename>" for a multipart upload
    link_preview_options: JSON | None = None


def html_visible_text(text: str) -> str:
    """The text Telegram shows for ``parse_mode=HTML``, or its 400 for bad markup.

    An unescaped ``<`` or an unknown or unbalanced tag is rejected as Telegram
    does, which catches the classic bug of interpolating unescaped text.
    """
    stack: list[str] = []
    parts: list[str] = []
    pos = 0
    for tag in _TAG.finditer(text):
        parts.append(text[pos : tag.start()])
        pos, closing, name = tag.end(), tag.group(1), tag.group(2).lower()
        if name not in _HTML_TAGS:
            raise _parse_error(f'Unsupported start tag "{name}" at byte offset {tag.start()}')
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            raise _parse_error(f'Unmatched end tag "{name}" at byte offset {tag.start()}')
    visible = "".join([*parts, text[pos:]])
    if stack:
        raise _parse_error(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    if "<" in visible:
        raise _parse_error(f"Unsupported start tag at byte offset {visible.index('<')}")
    return unescape(visible)


def _parse_error(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {detail}")


def _decode(key: str, value: object) -> object:
    if isinstance(value, web.FileField):
        return f"upload:{value.filename}"
    if not isinstance(value, str):
        return value
    if key in _INT_FIELDS and value.lstrip("-").isdigit():
        return int(value)
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(400, f"Bad Request: can't parse {key} JSON object") from None
    return value


async def _params(request: web.Request) -> JSON:
    raw: dict[str, object] = dict(request.query)
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON") from None
        raw.update(body if isinstance(body, dict) else {})
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raw.update(await request.post())
    params = {key: _decode(key, value) for key, value in raw.items()}
    files = {
        key: Upload(key, value.filename, value.content_type, value.file.read())
        for key, value in raw.items()
        if isinstance(value, web.FileField)
    }
    return params | ({"_uploads": files} if files else {})


def _visible(params: JSON, key: str) -> str:
    text = str(params.get(key) or "")
    return html_visible_text(text) if params.get("parse_mode") == "HTML" else text


class FakeTelegram(FakeVenue):
    """The Bot API of one bot; ``fail_next`` takes a method name such as "sendMessage".

    API methods are the ``_api_<method>`` coroutines. Flood limits count accepted
    sendMessage/sendPhoto calls over rolling windows of 1 s and 60 s, both times
    ``window_scale``; ``retry_after`` is in unscaled seconds, as Telegram would say
    it. Time is the base class's ``clock`` (ms), which tests may freeze.

    Paid broadcasts (Bot API 7.11): a send with ``allow_paid_broadcast`` is not held
    to the free ``global_per_second``; it is refused only when ``paid_per_second``
    sends of any kind were accepted in the last second. Free sends count only free
    sends against ``global_per_second``. Flagged sends are counted in ``paid_sent``.
    The 1-a-second chat and 20-a-minute group limits hold for both.

    Channels: ``channel_post`` builds a post as Telegram delivers it (``sender_chat``
    is the channel, no ``from``), and ``my_chat_member(..., chat_type="channel")``
    also sets the bot's status there: a bot that is not an administrator allowed to
    post gets the answers Telegram gives (403 when it was removed, 400 otherwise).
    """

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        *,
        enforce_limits: bool = True,
        global_per_second: int = 30,
        group_per_minute: int = 20,
        chat_per_second: int = 1,
        paid_per_second: int = 1000,
        window_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.token = token
        self.enforce_limits = enforce_limits
        self.global_per_second = global_per_second
        self.group_per_minute = group_per_minute
        self.chat_per_second = chat_per_second
        self.paid_per_second = paid_per_second
        self.window_scale = window_scale
        bot_id = int(token.split(":")[0])
        self.bot_user: JSON = {"id": bot_id, "is_bot": True, "first_name": "liqbot test"}
        self.bot_user.update(username="liqbot_test_bot", can_join_groups=True)
        self.commands: list[JSON] = []
        self.sent: list[SentMessage] = []
        self.edits: list[SentMessage] = []
        self.answered: list[JSON] = []  # answerCallbackQuery parameters
        self.calls: list[tuple[str, JSON]] = []  # (method, decoded parameters), in order
        self.pending: list[JSON] = []  # updates not yet confirmed by a getUpdates offset
        self.other_polls = 0  # the next getUpdates calls answered 409, as when another polls
        self.rejected_429 = 0
        self.photos: dict[str, bytes] = {}  # file_id -> the uploaded image
        self.paid_sent = 0  # accepted sends that carried allow_paid_broadcast
        self.member_counts: dict[int, int] = {}  # getChatMemberCount answers (default 2)
        self._update_ids = itertools.count(1)
        self._callback_ids = itertools.count(4_000_000_001)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._messages: dict[tuple[int, int], JSON] = {}  # the bot's, by (chat, message id)
        self._chat_types: dict[int, str] = {}
        self._users: dict[int, JSON] = {}
        self._members: dict[tuple[int, int], str] = {}
        self._blocked: set[int] = set()
        self._forgotten: set[int] = set()
        self._migrated: dict[int, int] = {}
        self._free_sends: deque[float] = deque()  # accepted unflagged sends, last window
        self._all_sends: deque[float] = deque()  # every accepted send, last window
        self._chat_sends: dict[int, deque[float]] = {}  # per chat, the last minute
        self._bot_status: dict[int, tuple[str, bool]] = {}  # channel -> (status, can post)
        self._chat_faults: dict[int, _Fault] = {}  # every send to the chat answered this way
        self.send_attempts: list[tuple[float, int]] = []  # (time, chat) of every send call
        self._closing = False
        self._wakers: set[asyncio.Task[None]] = set()
        self.app.router.add_route("*", "/bot{token}/{method}", self._endpoint)

    async def stop(self) -> None:
        self._closing = True  # ends open long polls now rather than at their timeout
        await self._notify()
        await super().stop()

    # -- test controls ---------------------------------------------------------------

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """getChatMember's status for the pair; unset pairs are "member", as in Telegram."""
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        self._members[chat_id, user_id] = status

    def block_chat(self, chat_id: int) -> None:
        self._blocked.add(chat_id)

    def forget_chat(self, chat_id: int) -> None:
        self._forgotten.add(chat_id)

    def migrate_chat(self, old_id: int, new_id: int) -> None:
        self._migrated[old_id] = new_id
        self._chat_types[new_id] = "supergroup"

    def fail_chat(self, chat_id: int, status: int, body: str | JSON) -> None:
        """Answer every sendMessage to ``chat_id`` with ``status`` and ``body`` (a JSON error
        object, or text such as a proxy's HTML page) until ``heal_chat``."""
        self._chat_faults[chat_id] = _Fault(status, {}, body)

    def heal_chat(self, chat_id: int) -> None:
        self._chat_faults.pop(chat_id, None)

    def revoke_token(self) -> None:
        """As when the owner revokes the token in @BotFather: every later call is answered 401,
        and a long poll under way ends (empty) now rather than at its timeout."""
        self.token = f"{self.token}-revoked"
        self._wake()

    def enqueue(self, update: JSON) -> int:
        """Queue an update for getUpdates under the next update_id, which is returned."""
        update_id = next(self._update_ids)
        self.pending.append({**update, "update_id": update_id})
        self._wake()
        return update_id

    def _wake(self) -> None:
        """Wake the long polls and waiters from a plain function (a test control)."""
        with contextlib.suppress(RuntimeError):  # no running loop: no long poll to wake
            task = asyncio.get_running_loop().create_task(self._notify())
            self._wakers.add(task)
            task.add_done_callback(self._wakers.discard)

    async def wait_for_sent(self, n: int) -> None:
        await self.wait_until(lambda: len(self.sent) >= n)

    def messages_to(self, chat_id: int) -> list[str]:
        return [m.text for m in self.sent if m.chat_id == chat_id]

    # -- update builders: each returns an update for enqueue -----------------------------

    def text_message(
        self, chat_id: int, user_id: int, text: str, chat_type: str = "private", username: str = ""
    ) -> JSON:
        self._chat_types[chat_id] = chat_type
        return {"message": self._message(chat_id, self._user(user_id, username), text=text)}

    def command(
        self, chat_id: int, user_id: int, text: str, chat_type: str = "private", username: str = ""
    ) -> JSON:
        """A message opening with the bot_command entity that CommandHandler looks for."""
        update = self.text_message(chat_id, user_id, text, chat_type, username)
        length = len(text.split()[0].encode("utf-16-le")) // 2  # entities count UTF-16 units
        update["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return update

    def callback(self, chat_id: int, user_id: int, data: str, message_id: int = 0) -> JSON:
        """A button press on the bot's message ``message_id`` (0: its latest in the chat)."""
        message_id = message_id or max((m for c, m in self._messages if c == chat_id), default=0)
        if (chat_id, message_id) not in self._messages:
            raise LookupError(f"the bot sent no message {message_id} to chat {chat_id}")
        query = {"id": str(next(self._callback_ids)), "from": self._user(user_id)}
        query.update(message=self._messages[chat_id, message_id], chat_instance=str(chat_id))
        return {"callback_query": {**query, "data": data}}

    def my_chat_member(
        self,
        chat_id: int,
        old_status: str,
        new_status: str,
        chat_type: str = "group",
        can_post: bool = True,
    ) -> JSON:
        """The bot was added, removed, promoted, or (private chat, "kicked") blocked. In a
        channel an administrator has ``can_post_messages`` (``can_post``), and the change
        takes effect for sends at once."""
        self._chat_types[chat_id] = chat_type
        bot, actor = self.bot_user, self._user(abs(chat_id) % 10**9)
        change: JSON = {"chat": self._chat(chat_id), "from": actor, "date": self._now_s()}
        change["old_chat_member"] = self._member(bot, old_status, chat_type)
        change["new_chat_member"] = self._member(bot, new_status, chat_type, can_post)
        if chat_type == "channel":
            self._bot_status[chat_id] = (new_status, can_post)
        return {"my_chat_member": change}

    def channel_post(self, chat_id: int, text: str, signature: str = "") -> JSON:
        """A post in a channel, as Telegram sends it to an administrator bot: the channel is
        both ``chat`` and ``sender_chat``; there is no ``from``. A leading /command gets its
        bot_command entity."""
        self._chat_types[chat_id] = "channel"
        channel = self._chat(chat_id)
        post = self._message(chat_id, channel, text=text)
        post.update({"author_signature": signature} if signature else {})
        if text.startswith("/"):
            length = len(text.split()[0].encode("utf-16-le")) // 2
            post["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return {"channel_post": post}

    def migrate(self, old_chat_id: int, new_chat_id: int, user_id: int = 1) -> JSON:
        """The service message in the old group; call ``migrate_chat`` too for sends."""
        self._chat_types[old_chat_id] = "group"
        user = self._user(user_id)
        return {"message": self._message(old_chat_id, user, migrate_to_chat_id=new_chat_id)}

    # -- Bot API -----------------------------------------------------------------------

    async def _endpoint(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            params = await _params(request)
            self.calls.append((method, params))
            await self._notify()  # tests may wait for a call, e.g. a long poll begun
            if method == "sendMessage":
                self.send_attempts.append((self._now(), params.get("chat_id") or 0))
                if fault := self._chat_faults.get(params.get("chat_id") or 0):
                    return fault.response()
            if faults := self._faults.get(method):
                return faults.popleft().response()
            handler = getattr(self, f"_api_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found")
            return json_response({"ok": True, "result": await handler(params)})
        except ApiError as error:
            return json_response(error.body, error.code)
        finally:
            await self._notify()

    async def _api_getMe(self, params: JSON) -> JSON:
        return self.bot_user

    async def _api_deleteWebhook(self, params: JSON) -> bool:
        if params.get("drop_pending_updates"):
            self.pending.clear()
        return True

    async def _api_setMyCommands(self, params: JSON) -> bool:
        self.commands = list(params.get("commands") or [])
        return True

    async def _api_getUpdates(self, params: JSON) -> list[JSON]:
        """Confirm updates below ``offset``; long-poll up to ``timeout`` s if none are left."""
        if self.other_polls > 0:
            self.other_polls -= 1
            raise ApiError(409, OTHER_POLLER)
        if (offset := params.get("offset") or 0) > 0:  # negative offsets are not modelled
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        if not self.pending and (timeout := params.get("timeout") or 0) > 0:
            token = self.token

            def answer_now() -> bool:
                return bool(self.pending) or self._closing or self.token != token

            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout), self._changed:
                    await self._changed.wait_for(answer_now)
        return self.pending[: params.get("limit") or 100]

    async def _api_sendMessage(self, params: JSON) -> JSON:
        chat_id, text = self._target(params, sending=True), _visible(params, "text")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        self._check_limits(chat_id, paid=params.get("allow_paid_broadcast") is True)
        if params.get("disable_web_page_preview") and "link_preview_options" not in params:
            params = {**params, "link_preview_options": {"is_disabled": True}}
        message = self._message(chat_id, self.bot_user, text=text)
        return self._record(self.sent, "sendMessage", message, params)

    async def _api_sendPhoto(self, params: JSON) -> JSON:
        chat_id, caption = self._target(params, sending=True), _visible(params, "caption")
        photo = params.get("photo")
        if not photo:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        if len(caption) > MAX_CAPTION:
            raise ApiError(400, "Bad Request: message caption is too long")
        upload = params.get("_uploads", {}).get("photo")
        if upload is not None:
            data = upload.data
            if len(data) > MAX_PHOTO_BYTES:
                raise ApiError(413, "Request Entity Too Large")
            width, height = png_size(data) if not data.startswith(b"\xff\xd8") else (800, 600)
            if width + height > 10_000 or max(width, height) > 20 * min(width, height):
                raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        elif str(photo) in self.photos:
            data = self.photos[str(photo)]
            width, height = png_size(data)
        elif str(photo).startswith(("http://", "https://")):  # Telegram fetches it itself
            data, width, height = b"", 800, 600
        else:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        self._check_limits(chat_id)
        sizes = []
        for side in (90, 320, 800, max(width, height)):  # Telegram's thumbnails, then the photo
            scale = min(1.0, side / max(width, height))
            file_id = f"AgACAgIAAx{len(self.photos)}-{side}"
            self.photos[file_id] = data
            size = {"file_id": file_id, "file_unique_id": f"AQAD{len(self.photos)}"}
            sizes.append(size | {"width": round(width * scale), "height": round(height * scale)})
        message = self._message(chat_id, self.bot_user, photo=sizes, caption=caption)
        return self._record(self.sent, "sendPhoto", message, params)

    async def _api_editMessageText(self, params: JSON) -> JSON:
        chat_id, text = self._target(params, sending=True), _visible(params, "text")
        old = self._messages.get((chat_id, params.get("message_id") or 0))
        if old is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if text == old.get("text") and _inline(params) == old.get("reply_markup"):
            raise ApiError(400, _NOT_MODIFIED)
        message = {k: v for k, v in old.items() if k != "reply_markup"}
        message.update(text=text, edit_date=self._now_s())
        return self._record(self.edits, "editMessageText", message, params)

    async def _api_answerCallbackQuery(self, params: JSON) -> bool:
        self.answered.append(params)
        return True

    async def _api_getChatMember(self, params: JSON) -> JSON:
        chat_id, user_id = self._target(params, sending=False), params.get("user_id")
        if not isinstance(user_id, int):
            raise ApiError(400, "Bad Request: invalid user_id specified")
        user = self.bot_user if user_id == self.bot_user["id"] else self._user(user_id)
        return self._member(user, self._members.get((chat_id, user_id), "member"))

    async def _api_getChatMemberCount(self, params: JSON) -> int:
        chat_id = self._target(params, sending=False)
        return self.member_counts.get(chat_id, 1 if chat_id > 0 else 2)

    async def _api_getChat(self, params: JSON) -> JSON:
        chat = self._chat(self._target(params, sending=False))
        chat.update(accent_color_id=0, max_reaction_count=11)
        return {**chat, "accepted_gift_types": dict.fromkeys(_GIFTS.split(), False)}

    # -- helpers -----------------------------------------------------------------------

    def _target(self, params: JSON, *, sending: bool) -> int:
        """The chat_id parameter, or the error Telegram answers for that chat."""
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        if not isinstance(chat_id, int) or chat_id in self._forgotten:
            raise ApiError(400, "Bad Request: chat not found")
        if new_id := self._migrated.get(chat_id):
            description = "Bad Request: group chat was upgraded to a supergroup chat"
            raise ApiError(400, description, migrate_to_chat_id=new_id)
        if sending and chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        status, can_post = self._bot_status.get(chat_id, ("administrator", True))
        if sending and status in ("left", "kicked"):
            raise ApiError(403, "Forbidden: bot is not a member of the channel chat")
        if sending and not (status == "creator" or (status == "administrator" and can_post)):
            raise ApiError(400, "Bad Request: need administrator rights in the channel chat")
        return chat_id

    def _check_limits(self, chat_id: int, paid: bool = False) -> None:
        """Answer 429 if one more send to ``chat_id`` now would break a flood limit."""
        if not self.enforce_limits:
            self.paid_sent += paid
            return
        now, second, minute = self._now(), self.window_scale, 60 * self.window_scale
        for stamps in (self._free_sends, self._all_sends):
            while stamps and stamps[0] <= now - second:
                stamps.popleft()
        chat = self._chat_sends.setdefault(chat_id, deque())
        while chat and chat[0] <= now - minute:
            chat.popleft()
        in_second = [t for t in chat if t > now - second]
        rules = [
            (self._all_sends, self.paid_per_second, second)
            if paid
            else (self._free_sends, self.global_per_second, second),
            (in_second, self.chat_per_second, second),
        ]
        if chat_id < 0:
            rules.append((chat, self.group_per_minute, minute))
        # A slot frees when the send that filled the window leaves it.
        waits = [ts[len(ts) - cap] + window - now for ts, cap, window in rules if len(ts) >= cap]
        if waits:
            retry_after = max(1, math.ceil(max(waits) / self.window_scale - 1e-9))
            self.rejected_429 += 1
            log.warning("fake telegram: 429 for chat %s, retry after %s s", chat_id, retry_after)
            description = f"Too Many Requests: retry after {retry_after}"
            raise ApiError(429, description, retry_after=retry_after)
        for stamps in (chat, self._all_sends, *(() if paid else (self._free_sends,))):
            stamps.append(now)
        self.paid_sent += paid

    def _record(self, into: list[SentMessage], method: str, message: JSON, params: JSON) -> JSON:
        """Keep the bot's message (for edits and callbacks) and log the call in ``into``."""
        message.update({"reply_markup": markup} if (markup := _inline(params)) else {})
        chat_id, message_id = message["chat"]["id"], message["message_id"]
        self._messages[chat_id, message_id] = message
        photo = params.get("photo")
        entry = SentMessage(
            method=method,
            chat_id=chat_id,
            message_id=message_id,
            text=str(message.get("text", message.get("caption", ""))),
            parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"),
            time=self._now(),
            photo=None if photo is None else str(photo),
            link_preview_options=params.get("link_preview_options"),
        )
        into.append(entry)
        return message

    def _message(self, chat_id: int, sender: JSON, **fields: Any) -> JSON:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        chat, date = self._chat(chat_id), self._now_s()
        # In a channel a message is sent on behalf of the channel: `sender_chat`, no `from`.
        who = "sender_chat" if chat["type"] == "channel" else "from"
        sender = chat if who == "sender_chat" else sender
        return {"message_id": next(counter), "date": date, "chat": chat, who: sender, **fields}

    def _chat(self, chat_id: int) -> JSON:
        default = "private" if chat_id > 0 else "supergroup" if chat_id < -(10**12) else "group"
        chat_type = self._chat_types.get(chat_id, default)
        if chat_type == "private":
            return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        return {"id": chat_id, "type": chat_type, "title": f"Chat {chat_id}"}

    def _user(self, user_id: int, username: str = "") -> JSON:
        user = self._users.setdefault(user_id, {"id": user_id, "is_bot": False})
        user.setdefault("first_name", f"User{user_id}")
        user.update({"username": username} if username else {})
        return dict(user)

    @staticmethod
    def _member(user: JSON, status: str, chat_type: str = "group", can_post: bool = True) -> JSON:
        """A ChatMember with the fields PTB requires for ``status``; a channel administrator
        also has the channel-only rights (posting and editing posts)."""
        member: JSON = {"status": status, "user": user}
        if status in ("creator", "administrator"):
            member["is_anonymous"] = False
        if status == "administrator":
            member.update({f"can_{right}": True for right in _RIGHTS.split()}, can_be_edited=False)
            if chat_type == "channel":
                member.update(can_post_messages=can_post, can_edit_messages=True)
        if status == "kicked":
            member["until_date"] = 0
        return member

    def _now(self) -> float:
        return self.clock() / 1000

    def _now_s(self) -> int:
        return int(self._now())


def _inline(params: JSON) -> JSON | None:
    """The reply_markup, if an inline keyboard: only those come back in the Message."""
    markup = params.get("reply_markup")
    return markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
