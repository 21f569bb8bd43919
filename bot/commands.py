"""The chat commands, once for every platform. Input: which chat, who (an admin check the
adapter provides), the arguments. Output: a `Reply` the adapter renders. Bad input raises nothing
past here: it becomes a reply that says what is accepted, and nothing changes."""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.chart_data import ChartRequest, caption, parse_chart_args
from bot.chats import ChatService
from bot.clock import now_ms
from bot.delivery_order import delivery_priority
from bot.errors import UserError
from bot.formatting import echo, format_usd
from bot.model import Subscription, Thresholds
from bot.status import render_status
from bot.subscriptions import SETTING_KEYS, parse_watch, set_threshold
from bot.units import parse_duration
from bot.venues.catalog import VENUES

log = logging.getLogger(__name__)

VENUE_TITLES = [venue.title for venue in VENUES.values()]

COMMAND_RATE = 10  # commands per person in a chat per minute
MAX_MUTE_SECONDS = 30 * 86_400
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")

# name, description: the command list shown by the platforms (a contract: these names).
COMMANDS = (
    ("start", "What liqbot does; subscribe with a preset"),
    ("help", "Commands and settings"),
    ("subscribe", "Send alerts to this chat"),
    ("unsubscribe", "Stop alerts in this chat"),
    ("status", "Liquidations, funding, open interest and source health now"),
    ("settings", "This chat's thresholds"),
    ("set", "Change a threshold: /set <key> <value>"),
    ("watch", "Assets to watch: /watch BTC ETH, or /watch all"),
    ("mute", "Pause alerts: /mute 2h"),
    ("unmute", "Resume alerts"),
    ("quiet", "Quiet hours: /quiet 23:00-07:00 Europe/Berlin, or /quiet off"),
    ("digest", "Summary: /digest daily 08:00, /digest hourly, /digest off"),
    ("chart", "A chart: /chart [asset] [window], e.g. /chart BTC 4h"),
)
# Commands that change what a chat receives: group admins only.
ADMIN_ONLY = frozenset(
    {"subscribe", "unsubscribe", "set", "watch", "mute", "unmute", "quiet", "digest", "button"}
)


@dataclass(frozen=True, slots=True)
class ChatRef:
    platform: str
    chat_id: str
    is_group: bool = False  # a group, a server channel or a Telegram channel: many readers
    is_channel: bool = False  # a Telegram channel: replies are posts its readers see
    audience: int | None = None  # members (a channel's subscribers), when the platform says


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    data: str  # what pressing it runs: "preset:<name>" or "set:<key>:<value>"


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    refusal: bool = False  # adapters may show it only to the caller (Discord: ephemeral)
    chart: ChartRequest | None = None  # send this chart, with `text` as its caption


@dataclass(frozen=True, slots=True)
class Preset:
    label: str
    thresholds: Thresholds | None  # None: the operator's [defaults]


PRESETS = {
    "big": Preset(
        "Big events only",
        Thresholds(
            window="1h", liq=500_000_000, funding=0.001, oi=0.1, whale=10_000_000, cooldown=3600
        ),
    ),
    "balanced": Preset("Balanced", None),
    "everything": Preset(
        "Everything",
        Thresholds(
            window="1h",
            liq=10_000_000,
            funding=0.0003,
            oi=0.03,
            whale=1_000_000,
            spike=3.0,
            cooldown=900,
        ),
    ),
}
SETTINGS_BUTTONS = (
    (
        Button("Window 1h", "set:window:1h"),
        Button("4h", "set:window:4h"),
        Button("24h", "set:window:24h"),
    ),
    (
        Button("Liq $50M", "set:liq:50m"),
        Button("$250M", "set:liq:250m"),
        Button("$1B", "set:liq:1b"),
    ),
    (Button("Whales $5M", "set:whale:5m"), Button("Whales off", "set:whale:off")),
)


@dataclass
class _Limiter:
    """At most COMMAND_RATE commands per minute for each person in each chat; one warning,
    then silence. Counted per (chat, user), so a member who spams a group spends only their own
    allowance, never the administrator's."""

    recent: defaultdict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    pruned_at: float = 0.0

    def allow(self, key: str) -> bool | None:
        """True: go on; False: refuse with a warning; None: ignore silently."""
        now = time.monotonic()
        if now - self.pruned_at > 60:  # forget people quiet for a minute: no growth over months
            self.pruned_at = now
            for idle in [c for c, s in self.recent.items() if not s or now - s[-1] > 60]:
                del self.recent[idle]
        stamps = self.recent[key]
        while stamps and now - stamps[0] > 60:
            stamps.popleft()
        stamps.append(now)
        if len(stamps) <= COMMAND_RATE:
            return True
        return False if len(stamps) == COMMAND_RATE + 1 else None


class CommandCore:
    def __init__(
        self,
        chats: ChatService,
        defaults: Thresholds,
        status: Callable[[], dict[str, Any]],
        clock: Callable[[], int] = now_ms,
        chart_assets: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        """`chart_assets`: the assets a chart can show; None when the operator switched charts
        off (`[charts] enabled = false`)."""
        self.chats = chats
        self.defaults = defaults
        self.status_source = status
        self.clock = clock
        self.chart_assets = chart_assets
        self._saves: list[Awaitable[None]] = []  # staged by the running command, see _save
        self._limiter = _Limiter()
        self._handlers: dict[str, Callable[[ChatRef, list[str]], Reply]] = {
            "start": self.start,
            "help": self.help,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "status": self.status,
            "settings": self.settings,
            "set": self.set,
            "watch": self.watch,
            "mute": self.mute,
            "unmute": self.unmute,
            "quiet": self.quiet,
            "digest": self.digest,
            "button": self.button,
            "chart": self.chart,
        }

    async def handle(
        self,
        command: str,
        chat: ChatRef,
        args: list[str],
        is_admin: Callable[[], Awaitable[bool]],
        user: str = "",
        as_chat: bool = False,
    ) -> Reply | None:
        """Run a command from `user` (the platform's user id); None when that user is over the
        rate limit in this chat and was already told.

        `as_chat`: the command was posted on behalf of the chat itself (a channel post, or an
        anonymous group administrator). Only a chat's administrators can do that, so it counts
        as an administrator's command without asking the platform."""
        allowed = self._limiter.allow(f"{chat.platform}:{chat.chat_id}:{user}")
        if allowed is None:
            return None
        if not allowed:
            return Reply("Too many commands: wait a minute and try again.", refusal=True)
        handler = self._handlers.get(command)
        if handler is None:
            return Reply(f"Unknown command /{echo(command)}. Try /help.", refusal=True)
        if command in ADMIN_ONLY and chat.is_group and not as_chat and not await is_admin():
            return Reply("Only the chat's administrators can change liqbot here.", refusal=True)
        try:
            reply = handler(chat, args)
        except UserError as error:
            reply = Reply(str(error), refusal=True)
        finally:
            saved = await self._commit(chat)
        if not saved:
            return Reply("liqbot cannot save settings right now; try again in a few minutes.")
        # A channel's readers cannot use buttons (a press would come from any of them).
        return replace(reply, buttons=()) if chat.is_channel else reply

    async def _commit(self, chat: ChatRef) -> bool:
        """Commit what the command staged (nothing else runs between a synchronous command
        and this call); False if storage refused it."""
        saves, self._saves = self._saves, []
        saved = True
        for save in saves:
            try:
                await save
            except sqlite3.OperationalError as error:
                log.error("%s: settings of %s not saved: %s", chat.platform, chat.chat_id, error)
                saved = False
        return saved

    # -- reading ---------------------------------------------------------------------------

    def start(self, chat: ChatRef, args: list[str]) -> Reply:
        if chat.is_channel:
            return Reply(
                "liqbot posts liquidation, funding and open-interest alerts from Binance, Bybit "
                "and OKX. To turn them on here, post /subscribe (or /subscribe big, balanced or "
                "everything)."
            )
        text = (
            "liqbot watches liquidations, funding and open interest on "
            f"{', '.join(VENUE_TITLES[:-1])} and {VENUE_TITLES[-1]} "
            'and tells this chat when they cross its thresholds, e.g. "$352M liquidated in 1h, '
            '90% longs".\n\nPick a preset to subscribe (change anything later with /set), or '
            "see /help."
        )
        buttons = tuple((Button(p.label, f"preset:{name}"),) for name, p in PRESETS.items())
        return Reply(text, buttons)

    def help(self, chat: ChatRef, args: list[str]) -> Reply:
        lines = [f"/{name} - {description}" for name, description in COMMANDS]
        lines += [
            "",
            "Settings for /set: window (5m, 15m, 1h, 4h, 24h); liq (USD in the window, e.g. "
            "250m); side (the dominant side's share, e.g. 80%, or any); funding (per 8h, e.g. "
            "0.05%); oi (open-interest move, e.g. 5%); whale (one liquidation, e.g. 5m, or off); "
            "spike (x the 30-day average, e.g. 3x, or off); cooldown (e.g. 30m); escalation (a "
            "window alert inside the cooldown when the total reaches this multiple of the last "
            "one, 1.5x to 10x, e.g. 2x, or off); summary (on: a closing message when a cascade "
            "that was alerted subsides; off); chart (on: "
            "window, spike and digest alerts come with a chart; off).",
        ]
        return Reply("\n".join(lines))

    def status(self, chat: ChatRef, args: list[str]) -> Reply:
        return Reply(render_status(self.status_source(), windows=("1h", "24h")))

    def chart(self, chat: ChatRef, args: list[str]) -> Reply:
        if self.chart_assets is None:
            raise UserError("Charts are switched off on this liqbot.")
        sub = self._load(chat)
        watch = sub.watch if sub is not None and sub.active else frozenset()
        request = parse_chart_args(args, self.chart_assets(), watch)
        return Reply(caption(request), chart=request)

    def settings(self, chat: ChatRef, args: list[str]) -> Reply:
        sub = self._load(chat)
        if sub is None:
            return Reply("This chat is not subscribed. /subscribe to start.")
        return Reply(describe(sub, self.clock()), SETTINGS_BUTTONS)

    # -- changing ----------------------------------------------------------------------------

    def subscribe(self, chat: ChatRef, args: list[str]) -> Reply:
        sub = self._load(chat)
        preset = PRESETS.get(args[0].lower()) if args else None
        if args and preset is None:
            raise UserError(f"unknown preset {echo(args[0])!r}: use {', '.join(PRESETS)}")
        if sub is None:
            sub = Subscription(chat.platform, chat.chat_id, self.defaults)
        if preset is not None:
            sub = replace(sub, thresholds=preset.thresholds or self.defaults)
        priority = delivery_priority(chat.is_group, chat.audience)
        sub = replace(sub, active=True, priority=priority)
        self._save(sub)
        if chat.is_channel:
            return Reply("liqbot alerts are on in this channel.\n\n" + for_readers(sub))
        return Reply("Subscribed.\n\n" + describe(sub, self.clock()), SETTINGS_BUTTONS)

    def unsubscribe(self, chat: ChatRef, args: list[str]) -> Reply:
        sub = self._load(chat)
        if sub is None or not sub.active:
            return Reply("This chat is not subscribed.")
        self._save(replace(sub, active=False))
        if chat.is_channel:
            return Reply("liqbot alerts are off in this channel.")
        return Reply("Unsubscribed: no more alerts here. /subscribe brings them back.")

    def set(self, chat: ChatRef, args: list[str]) -> Reply:
        if len(args) < 2:
            raise UserError(f"usage: /set <key> <value>, keys: {', '.join(SETTING_KEYS)}")
        sub = self._subscribed(chat)
        if args[0].lower() == "chart":
            return self._set_chart(sub, args[1:])
        if args[0].lower() == "summary":
            return self._set_summary(sub, args[1:])
        thresholds = set_threshold(sub.thresholds, args[0], " ".join(args[1:]))
        sub = replace(sub, thresholds=thresholds)
        self._save(sub)
        if chat.is_channel:  # a brief confirmation: the channel's readers see it too
            key = "liq" if args[0].lower() == "side" else args[0].lower()
            line = next(
                x for x in describe(sub, self.clock()).split("\n") if x.startswith(f"{key}:")
            )
            return Reply(f"Saved: {line}")
        return Reply("Saved.\n\n" + describe(sub, self.clock()))

    def _set_chart(self, sub: Subscription, args: list[str]) -> Reply:
        value = " ".join(args).strip().lower()
        if value not in ("on", "off"):
            raise UserError("chart must be on or off, e.g. /set chart on")
        if value == "on" and self.chart_assets is None:
            raise UserError("Charts are switched off on this liqbot.")
        sub = replace(sub, chart=value == "on")
        self._save(sub)
        return Reply("Saved.\n\n" + describe(sub, self.clock()))

    def _set_summary(self, sub: Subscription, args: list[str]) -> Reply:
        value = " ".join(args).strip().lower()
        if value not in ("on", "off"):
            raise UserError("summary must be on or off, e.g. /set summary off")
        sub = replace(sub, summary=value == "on")
        self._save(sub)
        return Reply("Saved.\n\n" + describe(sub, self.clock()))

    def watch(self, chat: ChatRef, args: list[str]) -> Reply:
        if not args:
            raise UserError("usage: /watch BTC ETH SOL, or /watch all")
        sub = replace(self._subscribed(chat), watch=parse_watch(args))
        self._save(sub)
        return Reply(f"Watching {_watching(sub)}.")

    def mute(self, chat: ChatRef, args: list[str]) -> Reply:
        usage = "usage: /mute <duration> from 1m to 30d, e.g. /mute 2h"
        try:
            seconds = parse_duration(" ".join(args)) if args else 0
        except ValueError:
            raise UserError(usage) from None
        if not 60 <= seconds <= MAX_MUTE_SECONDS:
            raise UserError(usage)
        until = self.clock() + int(seconds * 1000)
        self._save(replace(self._subscribed(chat), mute_until=until))
        return Reply(f"Muted until {_utc(until)}. /unmute to resume.")

    def unmute(self, chat: ChatRef, args: list[str]) -> Reply:
        self._save(replace(self._subscribed(chat), mute_until=None))
        return Reply("Alerts resumed.")

    def quiet(self, chat: ChatRef, args: list[str]) -> Reply:
        sub = self._subscribed(chat)
        if args and args[0].lower() == "off":
            self._save(replace(sub, quiet=None))
            return Reply("Quiet hours off.")
        usage = "usage: /quiet HH:MM-HH:MM [timezone], e.g. /quiet 23:00-07:00 Europe/Berlin"
        if not args or "-" not in args[0]:
            raise UserError(usage)
        start_text, end_text = args[0].split("-", 1)
        start, end = _clock_minutes(start_text, usage), _clock_minutes(end_text, usage)
        if start == end:
            raise UserError("quiet hours must not start and end at the same time")
        timezone = _timezone(args[1]) if len(args) > 1 else sub.timezone
        sub = replace(sub, quiet=(start, end), timezone=timezone)
        self._save(sub)
        return Reply(f"Quiet hours {args[0]} {timezone}: alerts are held and summarised after.")

    def digest(self, chat: ChatRef, args: list[str]) -> Reply:
        usage = "usage: /digest daily HH:MM, /digest hourly or /digest off"
        words = [word.lower() for word in args]
        if words in (["off"], ["hourly"]):
            value = words[0]
        elif len(words) == 2 and words[0] == "daily":
            minutes = _clock_minutes(words[1], usage)
            value = f"daily {minutes // 60:02d}:{minutes % 60:02d}"
        else:
            raise UserError(usage)
        sub = replace(self._subscribed(chat), digest=value)
        self._save(sub)
        where = f" ({sub.timezone})" if value.startswith("daily") else ""
        return Reply(f"Digest: {value}{where}.")

    def button(self, chat: ChatRef, args: list[str]) -> Reply:
        """A pressed button: its data, as made by `start` and `settings`."""
        kind, _, rest = (args[0] if args else "").partition(":")
        if kind == "preset":
            return self.subscribe(chat, [rest])
        if kind == "set":
            key, _, value = rest.partition(":")
            return replace(self.set(chat, [key, value]), buttons=SETTINGS_BUTTONS)
        raise UserError("that button is no longer valid")

    # -- storage -----------------------------------------------------------------------------

    def _load(self, chat: ChatRef) -> Subscription | None:
        return self.chats.load(chat.platform, chat.chat_id)

    def _subscribed(self, chat: ChatRef) -> Subscription:
        sub = self._load(chat)
        if sub is None or not sub.active:
            raise UserError("This chat is not subscribed. /subscribe first.")
        return sub

    def _save(self, sub: Subscription) -> None:
        """Stage `sub`; `handle` commits it once the (synchronous) command has replied."""
        self._saves.append(self.chats.save(sub))


def _clock_minutes(text: str, usage: str) -> int:
    match = _CLOCK.match(text.strip())
    if not match:
        raise UserError(usage)
    return int(match[1]) * 60 + int(match[2])


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder, not a zone
        raise UserError(
            f"unknown timezone {echo(name)!r}: use a name such as UTC or Europe/Berlin"
        ) from None
    return name


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def _watching(sub: Subscription) -> str:
    return ", ".join(sorted(sub.watch)) if sub.watch else "all assets"


def _off_or(value: float, text: str) -> str:
    return "off" if value == 0 else text


def for_readers(sub: Subscription) -> str:
    """What a channel will be sent, as its readers would want to read it."""
    t = sub.thresholds
    side = "" if t.side == 0 else f" with one side at least {round(t.side * 100)}%"
    lines = []
    if t.liq:
        lines.append(f"- liquidations reaching {format_usd(t.liq)} in {t.window}{side}")
    if t.spike:
        lines.append(f"- liquidation spikes of {t.spike:g}x the 30-day average")
    if t.whale:
        lines.append(f"- single liquidations of {format_usd(t.whale)} or more")
    if t.funding:
        lines.append(f"- funding at {t.funding * 100:g}% per 8h or beyond")
    if t.oi:
        lines.append(f"- open-interest moves of {t.oi * 100:g}% in {t.window}")
    watching = f" for {_watching(sub)}" if sub.watch else ""
    return f"Alerts{watching}:\n" + "\n".join(lines or ["- none (every rule is off)"])


def describe(sub: Subscription, now: int) -> str:
    """A chat's settings, as /settings shows them."""
    t = sub.thresholds
    side = "any side" if t.side == 0 else f"one side at least {round(t.side * 100)}%"
    quiet = "off"
    if sub.quiet:
        (start, end) = sub.quiet
        quiet = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d} {sub.timezone}"
    muted = f"until {_utc(sub.mute_until)}" if sub.mute_until and sub.mute_until > now else "no"
    lines = [
        f"Alerts: {'on' if sub.active else 'off (/subscribe to resume)'}",
        f"window: {t.window}",
        f"liq: {_off_or(t.liq, f'{format_usd(t.liq)} in {t.window}, {side}')}",
        f"funding: {_off_or(t.funding, f'{t.funding * 100:g}% per 8h')}",
        f"oi: {_off_or(t.oi, f'{t.oi * 100:g}% move in {t.window}')}",
        f"whale: {_off_or(t.whale, format_usd(t.whale))}",
        f"spike: {_off_or(t.spike, f'{t.spike:g}x the 30-day average')}",
        f"cooldown: {t.cooldown / 60:g} min",
        f"Watching: {_watching(sub)}",
        f"Muted: {muted}",
        f"Quiet hours: {quiet}",
        f"Digest: {sub.digest}",
        f"Chart: {'on' if sub.chart else 'off'}",
        f"escalation: {_off_or(t.escalation, f'again at {t.escalation:g}x the last alert')}",
        f"Summary: {'on' if sub.summary else 'off'}",
    ]
    return "\n".join(lines)
