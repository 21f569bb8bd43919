"""A fake Discord (REST API v10 and gateway) that the real discord.py 2.7 runs against.

Point discord.py at it, and keep ``guild_ready_timeout`` small (on_ready waits that
long after the last GUILD_CREATE; the default is 2 s)::

    discord.http.Route.BASE = f"{fake.base_url}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

``discord.Client`` connects straight to DEFAULT_GATEWAY (only AutoShardedClient asks
``GET /gateway/bot``) with ``?v=10&encoding=json&compress=zlib-stream`` (``zstd-stream``
when zstandard is installed). zlib-stream is spoken as Discord does; for anything else
frames go as text, which discord.py reads uncompressed. ``fail_next(path_suffix, ...)``
matches any REST path ending with ``path_suffix``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
import uuid
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .server import JSON, Connection, FakeVenue, dumps, json_response, parse_object

API_PREFIX = "/api/v10"
EPHEMERAL = 1 << 6
MANAGE_CHANNELS = 1 << 4
# VIEW_CHANNEL, SEND_MESSAGES, READ_MESSAGE_HISTORY, USE_APPLICATION_COMMANDS
EVERYONE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 31)
BOT_PERMISSIONS = EVERYONE_PERMISSIONS | (1 << 14)  # + EMBED_LINKS
ATTACHMENT_SIZE_LIMIT = 10 << 20  # bytes per upload without server boosts
_FILE_FIELD = re.compile(r"files\[(\d+)\]")
_EPOCH_MS = 1_420_070_400_000  # Discord's snowflake epoch
_GUILD_LISTS = "features emojis stickers threads voice_states presences stage_instances"
_GUILD_LISTS += " guild_scheduled_events soundboard_sounds"
_GUILD_ZEROS = "verification_level default_message_notifications explicit_content_filter"
_GUILD_ZEROS += " mfa_level nsfw_level premium_tier system_channel_flags"
_MESSAGE_LISTS = "attachments mentions mention_roles"
_MESSAGE_FALSE = "mention_everyone pinned tts"


@dataclass(frozen=True)
class Call:
    """One REST call: the request, the path's named groups, the JSON body."""

    request: web.Request
    args: dict[str, str]
    body: JSON


Handler = Callable[[Call], Awaitable[object]]


class DiscordError(Exception):
    """An API error answer: ``{"message", "code"}`` with an HTTP status."""

    def __init__(self, status: int, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.status, self.body = status, {"message": message, "code": code}


@dataclass(frozen=True)
class ChannelMessage:
    """A message the bot posted with ``POST /channels/{id}/messages``."""

    id: int
    channel_id: int
    content: str
    embeds: list[JSON]
    payload: JSON  # the request body as sent


@dataclass(frozen=True)
class Upload:
    """A file of a multipart message: form field ``files[n]``, described by ``attachments``."""

    path: str
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class InteractionReply:
    """An interaction "callback", or a webhook edit of the "original" or "followup"."""

    kind: str
    interaction_id: int
    token: str
    type: int | None  # callback type: 4 message, 5 deferred, 8 autocomplete; None for webhooks
    data: JSON  # callback ``data`` or webhook body: content, embeds, flags, choices

    @property
    def content(self) -> str | None:
        return self.data.get("content")

    @property
    def embeds(self) -> list[JSON]:
        return list(self.data.get("embeds") or [])

    @property
    def ephemeral(self) -> bool:
        return bool(int(self.data.get("flags") or 0) & EPHEMERAL)


@dataclass
class FakeGuild:
    id: int
    name: str
    channel_ids: list[int]
    bot_role_id: int
    everyone_permissions: int = EVERYONE_PERMISSIONS
    bot_permissions: int = BOT_PERMISSIONS  # of the bot's managed role


@dataclass
class _Session:
    conn: Connection
    deflate: Any  # a zlib compressobj for zlib-stream, else None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    seq: int = 0
    session_id: str | None = None  # set by IDENTIFY or RESUME


def user_payload(user_id: int, name: str, *, bot: bool = False) -> JSON:
    user = {"id": str(user_id), "username": name, "global_name": name, "discriminator": "0"}
    return user | {"avatar": None, "bot": bot, "public_flags": 0}


def _option_type(value: object) -> int:
    """STRING 3, INTEGER 4, BOOLEAN 5, NUMBER 10."""
    if isinstance(value, bool):
        return 5
    return 4 if isinstance(value, int) else 10 if isinstance(value, float) else 3


class FakeDiscord(FakeVenue):
    """Fake Discord; see the module docstring for wiring discord.py to it."""

    def __init__(self, token: str = "fake-discord-token", heartbeat_interval_ms: int = 41250):
        super().__init__()
        self.token, self.heartbeat_interval_ms = token, heartbeat_interval_ms
        self.gateway_refuses_token = False  # IDENTIFY closed 4004 although REST accepts it
        self._ids = itertools.count((int(time.time() * 1000) - _EPOCH_MS) << 22)
        self.bot_id = self.application_id = self.snowflake()
        self.owner_id, self.user_id = self.snowflake(), self.snowflake()
        self.application_flags = 0
        self.guilds: dict[int, FakeGuild] = {}
        self.commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.messages: list[ChannelMessage] = []
        self.uploads: list[Upload] = []
        self.interaction_responses: list[InteractionReply] = []
        self.rejected_429 = self.identifies = self.resumes = self.heartbeats = 0
        self.gateway_params: list[dict[str, str]] = []  # query of each gateway connection
        self.forbidden_channels: set[int] = set()
        # Discord's limits, answered with 429 when `enforce_limits` is set: 50 requests a second
        # per bot (the global limit) and 5 messages per 5 s in a channel.
        self.enforce_limits = False
        self.global_per_second, self.channel_messages = 50, (5, 5.0)
        self._recent: deque[float] = deque()  # authorised REST requests, the last second
        self._channel_posts: dict[int, deque[float]] = {}
        self._interactions: dict[str, JSON] = {}  # token -> INTERACTION_CREATE payload
        self._originals: dict[str, JSON] = {}  # token -> original response message ({}: none)
        self._sessions: dict[web.WebSocketResponse, _Session] = {}
        self._session_ids: set[str] = set()
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        app, hook = r"/applications/\d+", r"/webhooks/\d+/(?P<token>[^/]+)"
        self._route("GET", "/users/@me", self._me)
        self._route("GET", "/oauth2/applications/@me", self._app_info)
        self._route("GET", "/gateway(?:/bot)?", self._gateway_info)
        for method in ("GET", "PUT"):
            self._route(method, app + "/commands", self._commands)
            self._route(method, app + r"/guilds/(?P<guild_id>\d+)/commands", self._commands)
        callback = r"/interactions/(?P<id>\d+)/(?P<token>[^/]+)/callback"
        self._route("POST", callback, self._callback, auth=False)
        for method in ("GET", "PATCH", "DELETE"):
            self._route(method, hook + "/messages/@original", self._webhook, auth=False)
        self._route("POST", hook, self._webhook, auth=False)
        self._route("POST", r"/channels/(?P<channel_id>\d+)/messages", self._send_message)
        self._route("GET", r"/channels/(?P<channel_id>\d+)", self._get_channel)
        self.app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self.app.router.add_get("/gateway", self._gateway)

    @property
    def gateway_url(self) -> str:
        return f"{self.ws_base}/gateway"

    def snowflake(self) -> int:
        return next(self._ids)

    # -- scenario ------------------------------------------------------------------

    def add_guild(
        self, guild_id: int, name: str = "Guild", channel_ids: Sequence[int] = ()
    ) -> None:
        """A guild the bot is in, with text channels; sent in GUILD_CREATE after READY."""
        self.guilds[guild_id] = FakeGuild(guild_id, name, list(channel_ids), self.snowflake())

    async def join_guild(
        self, guild_id: int, name: str = "Guild", channel_ids: Sequence[int] = ()
    ) -> None:
        """The bot is added to a guild while connected (discord.py fires on_guild_join)."""
        self.add_guild(guild_id, name, channel_ids)
        payload = self.guild_payload(self.guilds[guild_id])
        del payload["unavailable"]  # present and false would mean "became available"
        await self.dispatch("GUILD_CREATE", payload)

    async def remove_guild(self, guild_id: int) -> None:
        """The bot is removed from a guild (discord.py fires on_guild_remove)."""
        self.guilds.pop(guild_id, None)
        await self.dispatch("GUILD_DELETE", {"id": str(guild_id)})

    def forbid_channel(self, channel_id: int) -> None:
        """REST calls on the channel answer 403 Missing Access (code 50001)."""
        self.forbidden_channels.add(channel_id)

    def delete_channel(self, channel_id: int) -> None:
        """REST calls on the channel answer 404 Unknown Channel (code 10003)."""
        for guild in self.guilds.values():
            if channel_id in guild.channel_ids:
                guild.channel_ids.remove(channel_id)

    def rate_limit_next(
        self, path_suffix: str, retry_after: float = 0.2, global_: bool = False
    ) -> None:
        """The next REST call whose path ends with ``path_suffix`` answers 429."""
        headers = {"Retry-After": str(max(1, round(retry_after))), "X-RateLimit-Limit": "5"}
        headers |= {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": f"{retry_after}"}
        headers |= {"X-RateLimit-Reset": f"{time.time() + retry_after:.3f}"}
        headers |= {"X-RateLimit-Bucket": f"fake{abs(hash(path_suffix)):x}"}
        headers |= {"X-RateLimit-Scope": "global" if global_ else "user"}
        headers |= {"Via": "1.1 google"}  # discord.py takes a 429 without Via for a CF ban
        headers |= {"X-RateLimit-Global": "true"} if global_ else {}
        body = {"message": "You are being rate limited.", "retry_after": retry_after}
        self.fail_next(path_suffix, 429, headers=headers, body=body | {"global": global_})

    def messages_to(self, channel_id: int) -> list[ChannelMessage]:
        return [m for m in self.messages if m.channel_id == channel_id]

    def responses_to(self, interaction: JSON) -> list[InteractionReply]:
        """Replies (callback, edits, followups) to an interaction from ``inject_interaction``."""
        return [r for r in self.interaction_responses if r.token == interaction["token"]]

    async def inject_interaction(
        self,
        name: str,
        options: Mapping[str, object] | None = None,
        *,
        guild_id: int | None = None,
        channel_id: int | None = None,
        dm: bool = False,
        user_id: int | None = None,
        permissions: int = EVERYONE_PERMISSIONS,
        app_permissions: int = BOT_PERMISSIONS,
        locale: str = "en-US",
        focused: str | None = None,
    ) -> JSON:
        """Send INTERACTION_CREATE for slash command ``name``; returns the payload.

        Defaults to the first guild and its first channel; ``dm=True`` comes from a DM.
        ``permissions`` is the member's bitfield. ``focused`` names an option and makes
        this an autocomplete (type 4).
        """
        user = user_payload(user_id or self.user_id, "alice")
        opts = [
            {"name": k, "type": _option_type(v), "value": v} for k, v in (options or {}).items()
        ]
        for opt in opts:
            opt |= {"focused": True} if opt["name"] == focused else {}
        payload: JSON = {"id": str(self.snowflake()), "application_id": str(self.application_id)}
        payload |= {"type": 4 if focused else 2, "token": f"itoken-{uuid.uuid4().hex}"}
        payload |= {"version": 1, "locale": locale, "app_permissions": str(app_permissions)}
        payload |= {"attachment_size_limit": ATTACHMENT_SIZE_LIMIT, "entitlements": []}
        command: JSON = {"name": name, "type": 1, "options": opts}
        if dm:
            channel_id = channel_id or self.snowflake()
            payload["channel"] = {"id": str(channel_id), "type": 1, "recipients": [user]}
            payload |= {"user": user, "context": 1}
            payload["authorizing_integration_owners"] = {"1": user["id"]}
            synced = self.commands
        else:
            guild = self.guilds[guild_id] if guild_id else next(iter(self.guilds.values()))
            channel_id = channel_id or guild.channel_ids[0]
            payload["channel"] = {"id": str(channel_id), "type": 0, "guild_id": str(guild.id)}
            payload |= {"guild_id": str(guild.id), "guild_locale": "en-US", "context": 0}
            payload["authorizing_integration_owners"] = {"0": str(guild.id)}
            member = self._member(user, [], joined="2024-01-01T00:00:00+00:00")
            payload["member"] = member | {"permissions": str(permissions)}
            synced = self.guild_commands.get(guild.id, [])
            if any(c["name"] == name for c in synced):
                command["guild_id"] = str(guild.id)
            else:
                synced = self.commands
        known = next((c for c in synced if c["name"] == name), None)
        command["id"] = known["id"] if known else str(self.snowflake())
        payload |= {"data": command, "channel_id": str(channel_id)}
        self._interactions[payload["token"]] = payload
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def inject_autocomplete(
        self, name: str, options: Mapping[str, object], focused: str, **kw: Any
    ) -> JSON:
        return await self.inject_interaction(name, options, focused=focused, **kw)

    # -- gateway -------------------------------------------------------------------

    async def dispatch(self, event: str, data: JSON) -> int:
        """Send a DISPATCH (op 0) to every identified session; return how many got it."""
        sessions = [s for s in self._sessions.values() if s.session_id is not None]
        for session in sessions:
            await self._send(session, {"op": 0, "t": event, "d": data}, sequenced=True)
        await self._notify()
        return len(sessions)

    async def _send(self, session: _Session, payload: JSON, sequenced: bool = False) -> None:
        async with session.lock:  # keeps seq and the zlib stream in send order
            if sequenced:
                session.seq += 1
                payload["s"] = session.seq
            ws, text = session.conn.ws, dumps(payload)
            with contextlib.suppress(ConnectionError):
                if ws.closed:
                    return
                if session.deflate is None:
                    await ws.send_str(text)
                else:  # one zlib stream per connection, each frame ends in 00 00 ff ff
                    data = session.deflate.compress(text.encode())
                    await ws.send_bytes(data + session.deflate.flush(zlib.Z_SYNC_FLUSH))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=0)
        await ws.prepare(request)
        self.gateway_params.append(dict(request.query))
        deflate = zlib.compressobj() if request.query.get("compress") == "zlib-stream" else None
        session = _Session(Connection(ws, uuid.uuid4().hex), deflate)
        self._connections[ws], self._sessions[ws] = session.conn, session
        self.connections_accepted += 1
        hello = {"heartbeat_interval": self.heartbeat_interval_ms}
        await self._send(session, {"op": 10, "d": hello})
        await self._notify()
        try:
            while (msg := await self._receive(ws)) is not None:
                await self._dispatch(session.conn, msg)
        finally:
            del self._connections[ws], self._sessions[ws]
            await self._notify()
        return ws

    async def _on_text(self, conn: Connection, text: str) -> None:
        session, frame = self._sessions[conn.ws], parse_object(text) or {}
        op, d = frame.get("op"), frame.get("d")
        d = d if isinstance(d, dict) else {}
        if op == 1:
            self.heartbeats += 1
            await self._send(session, {"op": 11})
        elif op in (2, 6) and (self.gateway_refuses_token or d.get("token") != self.token):
            await conn.ws.close(code=4004, message=b"Authentication failed.")
        elif op == 2:
            await self._identify(session)
        elif op == 6 and d.get("session_id") in self._session_ids:
            self.resumes += 1
            session.session_id, session.seq = str(d["session_id"]), int(d.get("seq") or 0)
            await self._send(session, {"op": 0, "t": "RESUMED", "d": {}}, sequenced=True)
        elif op == 6:
            await self._send(session, {"op": 9, "d": False})  # not resumable: IDENTIFY anew
        elif op == 8 and int(d.get("guild_id") or 0) in self.guilds:
            chunk = {"guild_id": d["guild_id"], "members": [self._member(self._bot_user(), [])]}
            chunk |= {"chunk_index": 0, "chunk_count": 1, "not_found": [], "nonce": d.get("nonce")}
            event = {"op": 0, "t": "GUILD_MEMBERS_CHUNK", "d": chunk}
            await self._send(session, event, sequenced=True)

    async def _identify(self, session: _Session) -> None:
        self.identifies += 1
        session.session_id = uuid.uuid4().hex
        self._session_ids.add(session.session_id)
        ready: JSON = {"v": 10, "user": self._bot_user(), "session_id": session.session_id}
        ready["guilds"] = [{"id": str(g), "unavailable": True} for g in self.guilds]
        ready |= {"resume_gateway_url": self.gateway_url, "private_channels": [], "shard": [0, 1]}
        ready["application"] = {"id": str(self.application_id), "flags": self.application_flags}
        await self._send(session, {"op": 0, "t": "READY", "d": ready}, sequenced=True)
        for guild in list(self.guilds.values()):
            event = {"op": 0, "t": "GUILD_CREATE", "d": self.guild_payload(guild)}
            await self._send(session, event, sequenced=True)

    # -- payloads ------------------------------------------------------------------

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock() / 1000, UTC).isoformat()

    def _bot_user(self) -> JSON:
        return user_payload(self.bot_id, "liqbot", bot=True) | {"verified": True, "flags": 0}

    def _member(self, user: JSON, roles: list[int], joined: str | None = None) -> JSON:
        member = {"user": user, "roles": [str(r) for r in roles], "nick": None, "flags": 0}
        return member | {"joined_at": joined or self._now(), "deaf": False, "mute": False}

    @staticmethod
    def _role(role_id: int, name: str, permissions: int, position: int) -> JSON:
        role = {"id": str(role_id), "name": name, "permissions": str(permissions), "color": 0}
        return role | {"position": position, "hoist": False, "mentionable": False, "flags": 0}

    @staticmethod
    def channel_payload(guild_id: int, channel_id: int, position: int = 0) -> JSON:
        channel: JSON = {"id": str(channel_id), "type": 0, "guild_id": str(guild_id)}
        channel |= {"name": f"channel-{channel_id}", "position": position, "nsfw": False}
        channel |= {"permission_overwrites": [], "rate_limit_per_user": 0}
        return channel | dict.fromkeys(("parent_id", "topic", "last_message_id"))

    def guild_payload(self, guild: FakeGuild) -> JSON:
        """The GUILD_CREATE data of ``guild``: @everyone and bot roles, channels, bot member."""
        payload: JSON = dict.fromkeys(_GUILD_ZEROS.split(), 0)
        payload |= {k: [] for k in _GUILD_LISTS.split()}
        payload |= {"id": str(guild.id), "name": guild.name, "owner_id": str(self.owner_id)}
        payload |= {"unavailable": False, "member_count": 2, "large": False, "icon": None}
        payload |= {"joined_at": self._now(), "afk_timeout": 300, "preferred_locale": "en-US"}
        payload["roles"] = [
            self._role(guild.id, "@everyone", guild.everyone_permissions, 0),
            self._role(guild.bot_role_id, "liqbot", guild.bot_permissions, 1) | {"managed": True},
        ]
        channels = enumerate(guild.channel_ids)
        payload["channels"] = [self.channel_payload(guild.id, c, i) for i, c in channels]
        payload["members"] = [self._member(self._bot_user(), [guild.bot_role_id])]
        return payload | {"system_channel_id": None}

    def _message(self, channel_id: int, body: JSON, flags: int = 0, type_: int = 0) -> JSON:
        message: JSON = dict.fromkeys(_MESSAGE_FALSE.split(), False)
        message |= {k: [] for k in _MESSAGE_LISTS.split()}
        message |= {"id": str(self.snowflake()), "channel_id": str(channel_id), "type": type_}
        message |= {"author": self._bot_user(), "content": body.get("content") or ""}
        message |= {"attachments": body.get("attachments") or []}
        message |= {"embeds": body.get("embeds") or [], "components": body.get("components") or []}
        return message | {"flags": flags, "timestamp": self._now(), "edited_timestamp": None}

    # -- REST ----------------------------------------------------------------------

    def _route(self, method: str, pattern: str, handler: Handler, auth: bool = True) -> None:
        self._routes.append((method, re.compile(pattern), handler, auth))

    async def _rest(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        try:
            response = await self._answer(request, request.path.removeprefix(API_PREFIX))
        except DiscordError as exc:
            response = json_response(exc.body, exc.status)
        if response.content_type == "application/json":
            response.charset = None  # discord.py decodes JSON only for exactly this type
        await self._notify()
        return response

    async def _answer(self, request: web.Request, path: str) -> web.Response:
        routes = ((p.fullmatch(path), h, a) for m, p, h, a in self._routes if m == request.method)
        match, handler, auth = next(((m, h, a) for m, h, a in routes if m), (None, None, False))
        if match is None or handler is None:
            raise DiscordError(404, "404: Not Found")
        if auth and request.headers.get("Authorization") != f"Bot {self.token}":
            raise DiscordError(401, "401: Unauthorized")
        for suffix, faults in self._faults.items():
            if faults and request.path.endswith(suffix):
                fault = faults.popleft()
                self.rejected_429 += fault.status == 429
                return fault.response()
        if auth and self.enforce_limits and (refused := self._over_limit(request.method, match)):
            self.rejected_429 += 1
            return refused
        body: object = {}
        if request.content_type == "application/json":
            body = await request.json()
        elif request.content_type.startswith("multipart/"):  # files: JSON in payload_json
            form = await request.post()
            body = json.loads(str(form.get("payload_json") or "{}"))
            body["attachments"] = self._attachments(request.path, form, body)
        call = Call(request, match.groupdict(), body if isinstance(body, dict) else {})
        result = await handler(call)
        return web.Response(status=204) if result is None else json_response(result)

    def _attachments(self, path: str, form: Mapping[str, object], body: JSON) -> list[JSON]:
        """Check and keep a message's files as Discord does: each part is ``files[n]`` and
        ``attachments`` in ``payload_json`` names it by id n; each is within the size limit."""
        described = {str(a.get("id")): a for a in body.get("attachments") or []}
        attachments = []
        for name, value in form.items():
            if name == "payload_json":
                continue
            match = _FILE_FIELD.fullmatch(name)
            if not isinstance(value, web.FileField) or match is None:
                raise DiscordError(400, f"Invalid form body: unexpected field {name!r}", 50035)
            if match[1] not in described:
                raise DiscordError(400, f"Invalid form body: {name} not in attachments", 50035)
            data = value.file.read()
            if len(data) > ATTACHMENT_SIZE_LIMIT:
                raise DiscordError(413, "Request entity too large", 40005)
            upload = Upload(path, name, value.filename, value.content_type, data)
            self.uploads.append(upload)
            attachment_id = str(self.snowflake())
            url = f"https://cdn.discordapp.com/attachments/0/{attachment_id}/{value.filename}"
            attachments.append(
                {"id": attachment_id, "filename": value.filename, "size": len(data)}
                | {"url": url, "proxy_url": url, "content_type": value.content_type}
            )
        return attachments

    def _over_limit(self, method: str, match: re.Match[str]) -> web.Response | None:
        """A 429 as Discord answers it if this request breaks a limit; else count it."""
        now = time.monotonic()
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.global_per_second:
            return _too_many(self._recent[0] + 1.0 - now, global_=True)
        channel = match.groupdict().get("channel_id")
        if method == "POST" and channel is not None:
            count, seconds = self.channel_messages
            posts = self._channel_posts.setdefault(int(channel), deque())
            while posts and posts[0] <= now - seconds:
                posts.popleft()
            if len(posts) >= count:
                return _too_many(posts[0] + seconds - now, global_=False)
            posts.append(now)
        self._recent.append(now)
        return None

    async def _me(self, call: Call) -> object:
        return self._bot_user()

    async def _app_info(self, call: Call) -> object:
        info: JSON = {"id": str(self.application_id), "name": "liqbot", "description": ""}
        info |= {"icon": None, "bot_public": True, "bot_require_code_grant": False}
        info |= {
            "owner": user_payload(self.owner_id, "owner"),
            "team": None,
            "verify_key": "0" * 64,
        }
        return info | {"flags": self.application_flags, "bot": self._bot_user()}

    async def _gateway_info(self, call: Call) -> object:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return {"url": self.gateway_url, "shards": 1, "session_start_limit": limit}

    async def _commands(self, call: Call) -> object:
        guild_id = int(call.args["guild_id"]) if call.args.get("guild_id") else None
        old = self.commands if guild_id is None else self.guild_commands.get(guild_id, [])
        if call.request.method == "GET":
            return old
        ids, new = {c["name"]: c["id"] for c in old}, []
        for cmd in await call.request.json():  # a bulk overwrite: the list replaces the old one
            cmd = {"type": 1, "description": "", "options": [], "nsfw": False} | cmd
            cmd |= {"id": ids.get(cmd["name"]) or str(self.snowflake())}
            cmd |= {"application_id": str(self.application_id), "version": str(self.snowflake())}
            new.append(cmd | ({"guild_id": str(guild_id)} if guild_id else {}))
        if guild_id is None:
            self.commands = new
        else:
            self.guild_commands[guild_id] = new
        return new

    def _interaction(
        self, token: str, code: int = 10062, error: str = "Unknown interaction"
    ) -> JSON:
        if token not in self._interactions:
            raise DiscordError(404, error, code)
        return self._interactions[token]

    async def _callback(self, call: Call) -> object:
        token, body = call.args["token"], call.body
        interaction = self._interaction(token)
        if interaction["id"] != call.args["id"]:
            raise DiscordError(404, "Unknown interaction", 10062)
        if token in self._originals:
            raise DiscordError(400, "Interaction has already been acknowledged.", 40060)
        kind, data = int(body.get("type") or 0), dict(body.get("data") or {})
        reply = InteractionReply("callback", int(interaction["id"]), token, kind, data)
        self.interaction_responses.append(reply)
        flags = int(data.get("flags") or 0) | (128 if kind == 5 else 0)  # 128: LOADING
        message = self._message(int(interaction["channel_id"]), data, flags, type_=20)
        self._originals[token] = message if kind in (4, 5) else {}
        callback = {"id": interaction["id"], "type": interaction["type"]}
        if "with_response" not in call.request.query:
            return None
        if kind not in (4, 5):
            return {"interaction": callback}
        callback |= {"response_message_id": message["id"], "response_message_loading": kind == 5}
        callback["response_message_ephemeral"] = reply.ephemeral
        return {"interaction": callback, "resource": {"type": kind, "message": message}}

    async def _webhook(self, call: Call) -> object:
        """Followups (POST) and the original response (GET, PATCH, DELETE) of an interaction."""
        token, body, method = call.args["token"], call.body, call.request.method
        interaction = self._interaction(token, 10015, "Unknown Webhook")
        if method == "DELETE":
            if not self._originals.get(token):
                raise DiscordError(404, "Unknown Message", 10008)
            self._originals[token] = {}
            reply = InteractionReply("deleted", int(interaction["id"]), token, None, {})
            self.interaction_responses.append(reply)
            return None
        if method != "GET":
            kind = "followup" if method == "POST" else "original"
            reply = InteractionReply(kind, int(interaction["id"]), token, None, body)
            self.interaction_responses.append(reply)
        app_id = str(self.application_id)
        if method == "POST":
            if call.request.query.get("wait") not in ("true", "1", "True"):
                return None
            message = self._message(int(interaction["channel_id"]), body, body.get("flags") or 0)
            return message | {"webhook_id": app_id, "application_id": app_id}
        if not self._originals.get(token):
            raise DiscordError(404, "Unknown Message", 10008)
        edits = {k: v for k, v in body.items() if k in ("content", "embeds", "components")}
        self._originals[token] |= edits | {"flags": self._originals[token]["flags"] & ~128}
        return self._originals[token] | {"webhook_id": app_id, "application_id": app_id}

    def _channel(self, channel_id: int) -> FakeGuild:
        if channel_id in self.forbidden_channels:
            raise DiscordError(403, "Missing Access", 50001)
        for guild in self.guilds.values():
            if channel_id in guild.channel_ids:
                return guild
        raise DiscordError(404, "Unknown Channel", 10003)

    async def _send_message(self, call: Call) -> object:
        channel_id = int(call.args["channel_id"])
        self._channel(channel_id)
        message = self._message(channel_id, call.body)
        embeds = list(call.body.get("embeds") or [])
        content = message["content"]
        self.messages.append(
            ChannelMessage(int(message["id"]), channel_id, content, embeds, call.body)
        )
        return message

    async def _get_channel(self, call: Call) -> object:
        channel_id = int(call.args["channel_id"])
        guild = self._channel(channel_id)
        return self.channel_payload(guild.id, channel_id, guild.channel_ids.index(channel_id))


def _too_many(retry_after: float, global_: bool) -> web.Response:
    headers = {"X-RateLimit-Scope": "global" if global_ else "user", "Via": "1.1 google"}
    headers |= {"X-RateLimit-Global": "true"} if global_ else {}
    body = {"message": "You are being rate limited.", "retry_after": round(retry_after, 3)}
    response = json_response(body | {"global": global_}, 429)
    response.headers.update(headers)
    return response
