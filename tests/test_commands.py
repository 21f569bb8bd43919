"""The command core, as every chat platform drives it: the exact reply to each command, what is
stored after it, refusals that change nothing, the group admin rule and the per-chat rate limit.
A real SQLite database and a fixed clock; no platform."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlite_utils import Database

from bot import commands
from bot.chats import ChatService, Outboxes
from bot.commands import (
    ADMIN_ONLY,
    COMMAND_RATE,
    PRESETS,
    SETTINGS_BUTTONS,
    Button,
    ChatRef,
    CommandCore,
    Reply,
)
from bot.model import Subscription, Thresholds
from bot.status import render_status
from bot.subscriptions import is_quiet, set_threshold
from bot.writer import Writer
from storage import alerts, open_database
from tests.clock import ManualClock

NOW = 1_736_942_400_000  # 2025-01-15 12:00:00 UTC
HOUR_MS = 3_600_000
DEFAULTS = Thresholds()
PRIVATE = ChatRef("telegram", "1001")
GROUP = ChatRef("telegram", "-2001", is_group=True)

DEFAULT_SETTINGS = """\
Alerts: on
window: 1h
liq: $100M in 1h, any side
funding: 0.05% per 8h
oi: 5% move in 1h
whale: off
spike: off
cooldown: 30 min
Watching: all assets
Muted: no
Quiet hours: off
Digest: off
Chart: off
escalation: again at 2x the last alert
Summary: on"""
BIG_SETTINGS = """\
Alerts: on
window: 1h
liq: $500M in 1h, any side
funding: 0.1% per 8h
oi: 10% move in 1h
whale: $10M
spike: off
cooldown: 60 min
Watching: all assets
Muted: no
Quiet hours: off
Digest: off
Chart: off
escalation: again at 2x the last alert
Summary: on"""
EVERYTHING_SETTINGS = """\
Alerts: on
window: 1h
liq: $10M in 1h, any side
funding: 0.03% per 8h
oi: 3% move in 1h
whale: $1M
spike: 3x the 30-day average
cooldown: 15 min
Watching: all assets
Muted: no
Quiet hours: off
Digest: off
Chart: off
escalation: again at 2x the last alert
Summary: on"""
PRESET_SETTINGS = {
    "big": BIG_SETTINGS,
    "balanced": DEFAULT_SETTINGS,
    "everything": EVERYTHING_SETTINGS,
}
START_TEXT = (
    "liqbot watches liquidations, funding and open interest on Binance, Bybit, OKX, Gate, "
    "Bitget, Deribit and Hyperliquid and "
    'tells this chat when they cross its thresholds, e.g. "$352M liquidated in 1h, 90% longs".'
    "\n\nPick a preset to subscribe (change anything later with /set), or see /help."
)
NOT_SUBSCRIBED = "This chat is not subscribed. /subscribe first."
ADMINS_ONLY = "Only the chat's administrators can change liqbot here."
TOO_MANY = "Too many commands: wait a minute and try again."
KEYS = "window, liq, side, funding, oi, whale, spike, cooldown, escalation"
SET_USAGE = f"usage: /set <key> <value>, keys: {KEYS}"
MUTE_USAGE = "usage: /mute <duration> from 1m to 30d, e.g. /mute 2h"
QUIET_USAGE = "usage: /quiet HH:MM-HH:MM [timezone], e.g. /quiet 23:00-07:00 Europe/Berlin"
DIGEST_USAGE = "usage: /digest daily HH:MM, /digest hourly or /digest off"
LIQ_ACCEPTED = "liq must be from $10K to $100B, or off, e.g. 250m"

# A chat with every setting away from its default, so a refusal that touched anything shows.
CUSTOM = Subscription(
    "telegram",
    PRIVATE.chat_id,
    Thresholds(window="4h", liq=250e6, side=0.8, whale=5e6, spike=3.0, cooldown=3600),
    watch=frozenset({"BTC", "ETH"}),
    mute_until=NOW + HOUR_MS,
    quiet=(23 * 60, 7 * 60),
    timezone="Europe/Berlin",
    digest="daily 08:00",
)


def _window(total: float) -> dict[str, Any]:
    return {"total_usd": total, "long_share": 0.9, "count": 3, "by_symbol": {}, "by_exchange": {}}


STATUS: dict[str, Any] = {
    "generated_at": "2025-01-15T12:00:00Z",
    "liquidations": {"1h": _window(352e6), "24h": _window(1.2e9)},
    "funding": [],
    "open_interest": [],
    "sources": {},
}


class AdminCheck:
    """The adapter's is-admin callable; records how often the core asked."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        return self.answer


def preset_thresholds(name: str) -> Thresholds:
    """A preset's thresholds; "balanced" is the operator's [defaults]."""
    return PRESETS[name].thresholds or DEFAULTS


class Bench:
    """A CommandCore on a real database and chats service; it stands in for the alert engine
    and counts the changes the service tells it of."""

    def __init__(self, db: Database, defaults: Thresholds = DEFAULTS) -> None:
        self.db = db
        self.changes = 0
        chats = ChatService(db, Writer.inline(db), self, Outboxes(), ManualClock(NOW))
        self.core = CommandCore(chats, defaults, lambda: STATUS, clock=lambda: NOW)

    def subscription_changed(self, sub: Subscription) -> None:
        self.changes += 1

    async def maybe(
        self, line: str, chat: ChatRef = PRIVATE, admin: AdminCheck | None = None
    ) -> Reply | None:
        """`line` as typed, e.g. "/set liq 250m" (arguments split on whitespace, as PTB does)."""
        command, *args = line.removeprefix("/").split()
        return await self.core.handle(command, chat, args, admin or AdminCheck(True))

    async def run(
        self, line: str, chat: ChatRef = PRIVATE, admin: AdminCheck | None = None
    ) -> Reply:
        reply = await self.maybe(line, chat, admin)
        assert reply is not None
        return reply

    async def refused(self, line: str, chat: ChatRef = PRIVATE) -> str:
        reply = await self.run(line, chat)
        assert reply.refusal, reply.text
        return reply.text

    async def ok(self, line: str, chat: ChatRef = PRIVATE) -> str:
        reply = await self.run(line, chat)
        assert not reply.refusal, reply.text
        return reply.text

    def stored(self, chat: ChatRef = PRIVATE) -> Subscription | None:
        return alerts.load_subscription(self.db, chat.platform, chat.chat_id)

    def save(self, sub: Subscription) -> None:
        alerts.save_subscription(self.db, sub, NOW - HOUR_MS)

    def rows(self) -> list[dict[str, Any]]:
        """Every stored subscription row, timestamps included."""
        return list(self.db["subscriptions"].rows)


@pytest.fixture
def bench() -> Bench:
    return Bench(open_database(None))  # in memory: the same schema, a tenth of the time


def settings_with(**lines: str) -> str:
    """DEFAULT_SETTINGS with some lines replaced, by their label."""
    out = []
    for line in DEFAULT_SETTINGS.splitlines():
        label = line.split(":")[0].replace(" ", "_")
        out.append(lines.get(label, line))
    return "\n".join(out)


# -- reading ---------------------------------------------------------------------------------


async def test_start_text_and_preset_buttons(bench: Bench) -> None:
    reply = await bench.run("/start")
    assert reply == Reply(
        START_TEXT,
        (
            (Button("Big events only", "preset:big"),),
            (Button("Balanced", "preset:balanced"),),
            (Button("Everything", "preset:everything"),),
        ),
    )
    assert bench.stored() is None
    assert bench.changes == 0


async def test_help_lists_the_commands_then_the_settings(bench: Bench) -> None:
    lines = (await bench.ok("/help")).splitlines()
    assert lines[:4] == [
        "/start - What liqbot does; subscribe with a preset",
        "/help - Commands and settings",
        "/subscribe - Send alerts to this chat",
        "/unsubscribe - Stop alerts in this chat",
    ]
    assert lines[6:13] == [
        "/set - Change a threshold: /set <key> <value>",
        "/watch - Assets to watch: /watch BTC ETH, or /watch all",
        "/mute - Pause alerts: /mute 2h",
        "/unmute - Resume alerts",
        "/quiet - Quiet hours: /quiet 23:00-07:00 Europe/Berlin, or /quiet off",
        "/digest - Summary: /digest daily 08:00, /digest hourly, /digest off",
        "/chart - A chart: /chart [asset] [window], e.g. /chart BTC 4h",
    ]
    assert lines[13] == ""
    assert lines[14].startswith("Settings for /set: window (5m, 15m, 1h, 4h, 24h); liq (USD")
    assert lines[14].endswith(
        "; chart (on: window, spike and digest alerts come with a chart; off)."
    )
    assert len(lines) == 15
    assert bench.changes == 0


async def test_status_renders_the_status_source_for_1h_and_24h(bench: Bench) -> None:
    text = await bench.ok("/status")
    assert text == render_status(STATUS, windows=("1h", "24h"))
    assert text.splitlines()[:5] == [
        "liqbot status at 2025-01-15T12:00:00Z",
        "",
        "Liquidations:",
        "    1h     $352M  90% longs  (3 events)",
        "   24h     $1.2B  90% longs  (3 events)",
    ]
    assert bench.changes == 0


async def test_settings_before_subscribing(bench: Bench) -> None:
    reply = await bench.run("/settings")
    assert reply == Reply("This chat is not subscribed. /subscribe to start.")
    assert bench.stored() is None


async def test_settings_describes_every_setting_with_buttons(bench: Bench) -> None:
    bench.save(CUSTOM)
    reply = await bench.run("/settings")
    assert reply.text == (
        "Alerts: on\n"
        "window: 4h\n"
        "liq: $250M in 4h, one side at least 80%\n"
        "funding: 0.05% per 8h\n"
        "oi: 5% move in 4h\n"
        "whale: $5M\n"
        "spike: 3x the 30-day average\n"
        "cooldown: 60 min\n"
        "Watching: BTC, ETH\n"
        "Muted: until 2025-01-15 13:00 UTC\n"
        "Quiet hours: 23:00-07:00 Europe/Berlin\n"
        "Digest: daily 08:00\n"
        "Chart: off\n"
        "escalation: again at 2x the last alert\n"
        "Summary: on"
    )
    assert reply.buttons == SETTINGS_BUTTONS
    assert not reply.refusal
    assert bench.changes == 0


async def test_settings_of_an_expired_mute_and_an_unsubscribed_chat(bench: Bench) -> None:
    bench.save(replace(CUSTOM, mute_until=NOW, active=False))
    lines = (await bench.ok("/settings")).splitlines()
    assert lines[0] == "Alerts: off (/subscribe to resume)"
    assert lines[9] == "Muted: no"


async def test_unknown_command(bench: Bench) -> None:
    admin = AdminCheck(False)
    reply = await bench.run("/frobnicate now", GROUP, admin)
    assert reply == Reply("Unknown command /frobnicate. Try /help.", refusal=True)
    assert admin.calls == 0
    assert bench.rows() == []


# -- subscribing -----------------------------------------------------------------------------


async def test_subscribe_with_the_defaults(bench: Bench) -> None:
    reply = await bench.run("/subscribe")
    assert reply == Reply("Subscribed.\n\n" + DEFAULT_SETTINGS, SETTINGS_BUTTONS)
    assert bench.stored() == Subscription("telegram", "1001", Thresholds())
    assert bench.changes == 1


async def test_subscribe_uses_the_configured_defaults() -> None:
    defaults = Thresholds(window="5m", liq=40_000, funding=0, oi=0)
    bench = Bench(open_database(None), defaults)
    text = await bench.ok("/subscribe")
    assert text.splitlines()[4:7] == ["liq: $40K in 5m, any side", "funding: off", "oi: off"]
    assert bench.stored() == Subscription("telegram", "1001", defaults)


@pytest.mark.parametrize("name", list(PRESETS))
async def test_subscribe_with_a_preset(bench: Bench, name: str) -> None:
    reply = await bench.run(f"/subscribe {name.upper()}")
    assert reply == Reply("Subscribed.\n\n" + PRESET_SETTINGS[name], SETTINGS_BUTTONS)
    assert bench.stored() == Subscription("telegram", "1001", preset_thresholds(name))
    assert bench.changes == 1


@pytest.mark.parametrize("name", list(PRESETS))
async def test_preset_button_subscribes(bench: Bench, name: str) -> None:
    reply = await bench.run(f"/button preset:{name}")
    assert reply == Reply("Subscribed.\n\n" + PRESET_SETTINGS[name], SETTINGS_BUTTONS)
    assert bench.stored() == Subscription("telegram", "1001", preset_thresholds(name))
    assert bench.changes == 1


async def test_preset_replaces_thresholds_and_keeps_the_rest(bench: Bench) -> None:
    bench.save(replace(CUSTOM, active=False))
    await bench.ok("/subscribe big")
    assert bench.stored() == replace(CUSTOM, thresholds=PRESETS["big"].thresholds)


async def test_changes_are_in_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "liqbot.db"
    bench = Bench(open_database(path))
    await bench.ok("/subscribe big")
    await bench.ok("/quiet 22:00-06:00 America/New_York")
    reopened = Bench(open_database(path))
    assert reopened.stored() == Subscription(
        "telegram",
        "1001",
        PRESETS["big"].thresholds,
        quiet=(22 * 60, 6 * 60),
        timezone="America/New_York",
    )
    assert (await reopened.ok("/settings")).splitlines()[10] == (
        "Quiet hours: 22:00-06:00 America/New_York"
    )
    (row,) = reopened.rows()
    assert (row["created_at"], row["updated_at"]) == (NOW, NOW)


async def test_unsubscribe_then_subscribe_keeps_the_settings(bench: Bench) -> None:
    bench.save(CUSTOM)
    reply = await bench.run("/unsubscribe")
    assert reply == Reply("Unsubscribed: no more alerts here. /subscribe brings them back.")
    assert bench.stored() == replace(CUSTOM, active=False)
    assert bench.changes == 1

    reply = await bench.run("/subscribe")
    assert reply.text.startswith("Subscribed.\n\nAlerts: on\nwindow: 4h\nliq: $250M in 4h")
    assert bench.stored() == CUSTOM
    assert bench.changes == 2


async def test_unsubscribe_when_not_subscribed_changes_nothing(bench: Bench) -> None:
    assert await bench.run("/unsubscribe") == Reply("This chat is not subscribed.")
    bench.save(replace(CUSTOM, active=False))
    before = bench.rows()
    assert await bench.run("/unsubscribe") == Reply("This chat is not subscribed.")
    assert bench.rows() == before
    assert bench.changes == 0


@pytest.mark.parametrize(
    "line",
    [
        "/set liq 250m",
        "/watch BTC",
        "/mute 2h",
        "/unmute",
        "/quiet 23:00-07:00",
        "/quiet off",
        "/digest hourly",
        "/button set:liq:250m",
    ],
)
@pytest.mark.parametrize("unsubscribed", [False, True], ids=["never", "unsubscribed"])
async def test_changes_before_subscribing_are_refused(
    bench: Bench, line: str, unsubscribed: bool
) -> None:
    if unsubscribed:
        bench.save(replace(CUSTOM, active=False))
    before = bench.rows()
    assert await bench.run(line) == Reply(NOT_SUBSCRIBED, refusal=True)
    assert bench.rows() == before
    assert bench.changes == 0


# -- changing settings -----------------------------------------------------------------------


async def test_set_replies_with_the_new_settings(bench: Bench) -> None:
    bench.save(Subscription("telegram", "1001"))
    reply = await bench.run("/set liq 250m")
    assert reply == Reply("Saved.\n\n" + settings_with(liq="liq: $250M in 1h, any side"))
    assert bench.stored() == Subscription("telegram", "1001", Thresholds(liq=250e6))
    assert bench.changes == 1


@pytest.mark.parametrize(
    ("line", "changed", "lines"),
    [
        ("window 4h", {"window": "4h"}, {"window": "window: 4h"}),
        ("side 80 %", {"side": 0.8}, {"liq": "liq: $100M in 1h, one side at least 80%"}),
        ("side any", {"side": 0.0}, {}),
        ("funding 0.1%", {"funding": 0.001}, {"funding": "funding: 0.1% per 8h"}),
        ("funding off", {"funding": 0.0}, {"funding": "funding: off"}),
        ("oi 10%", {"oi": 0.1}, {"oi": "oi: 10% move in 1h"}),
        ("whale $5M", {"whale": 5e6}, {"whale": "whale: $5M"}),
        ("spike 3x", {"spike": 3.0}, {"spike": "spike: 3x the 30-day average"}),
        ("cooldown 2h", {"cooldown": 7200.0}, {"cooldown": "cooldown: 120 min"}),
        ("COOLDOWN 90s", {"cooldown": 90.0}, {"cooldown": "cooldown: 1.5 min"}),
    ],
)
async def test_set_each_key(
    bench: Bench, line: str, changed: dict[str, Any], lines: dict[str, str]
) -> None:
    bench.save(Subscription("telegram", "1001"))
    text = await bench.ok(f"/set {line}")
    expected = settings_with(**lines)
    if "window" in changed:
        expected = expected.replace(" in 1h", " in 4h")
    assert text == "Saved.\n\n" + expected
    assert bench.stored() == Subscription("telegram", "1001", Thresholds(**changed))
    assert bench.changes == 1


async def test_settings_of_liq_off_read_off(bench: Bench) -> None:
    bench.save(Subscription("telegram", "1001", Thresholds(liq=0)))
    assert (await bench.ok("/settings")).splitlines()[2] == "liq: off"


@pytest.mark.parametrize("button", [b for row in SETTINGS_BUTTONS for b in row])
async def test_every_settings_button_sets_what_it_says(bench: Bench, button: Button) -> None:
    custom = Thresholds(window="5m", liq=40e6, whale=2e6)  # no button's value
    bench.save(Subscription("telegram", "1001", custom))
    _, key, value = button.data.split(":")
    reply = await bench.run(f"/button {button.data}")
    assert not reply.refusal, reply.text
    assert reply.text.startswith("Saved.\n\nAlerts: on\n")
    expected = set_threshold(custom, key, value)
    assert expected != custom
    assert bench.stored() == Subscription("telegram", "1001", expected)
    assert bench.changes == 1


async def test_settings_button_liq_250m(bench: Bench) -> None:
    bench.save(Subscription("telegram", "1001"))
    reply = await bench.run("/button set:liq:250m")
    assert reply == Reply(
        "Saved.\n\n" + settings_with(liq="liq: $250M in 1h, any side"), SETTINGS_BUTTONS
    )
    assert bench.stored() == Subscription("telegram", "1001", Thresholds(liq=250e6))


async def test_watch_assets_then_all(bench: Bench) -> None:
    bench.save(Subscription("telegram", "1001"))
    assert await bench.run("/watch btc ETH,sol") == Reply("Watching BTC, ETH, SOL.")
    assert bench.stored() == Subscription(
        "telegram", "1001", watch=frozenset({"BTC", "ETH", "SOL"})
    )
    assert (await bench.ok("/settings")).splitlines()[8] == "Watching: BTC, ETH, SOL"
    assert await bench.run("/watch all") == Reply("Watching all assets.")
    assert bench.stored() == Subscription("telegram", "1001")
    assert bench.changes == 2


async def test_mute_and_unmute(bench: Bench) -> None:
    bench.save(Subscription("telegram", "1001"))
    assert await bench.run("/mute 2h") == Reply(
        "Muted until 2025-01-15 14:00 UTC. /unmute to resume."
    )
    assert bench.stored() == Subscription("telegram", "1001", mute_until=NOW + 2 * HOUR_MS)
    assert (await bench.ok("/settings")).splitlines()[9] == "Muted: until 2025-01-15 14:00 UTC"
    assert await bench.run("/unmute") == Reply("Alerts resumed.")
    assert bench.stored() == Subscription("telegram", "1001")
    assert bench.changes == 2


@pytest.mark.parametrize(
    ("duration", "until"),
    [
        ("1m", "2025-01-15 12:01 UTC"),
        ("60s", "2025-01-15 12:01 UTC"),
        ("2 h", "2025-01-15 14:00 UTC"),
        ("30d", "2025-02-14 12:00 UTC"),
        ("720h", "2025-02-14 12:00 UTC"),
    ],
)
async def test_mute_range_accepted(bench: Bench, duration: str, until: str) -> None:
    bench.save(Subscription("telegram", "1001"))
    assert await bench.run(f"/mute {duration}") == Reply(f"Muted until {until}. /unmute to resume.")
    stored = bench.stored()
    assert stored is not None and stored.mute_until is not None
    assert stored.mute_until > NOW


@pytest.mark.parametrize("duration", ["59s", "0.5m", "31d", "721h", "43201m"])
async def test_mute_range_refused(bench: Bench, duration: str) -> None:
    bench.save(Subscription("telegram", "1001"))
    assert await bench.run(f"/mute {duration}") == Reply(MUTE_USAGE, refusal=True)
    assert bench.stored() == Subscription("telegram", "1001")
    assert bench.changes == 0


async def test_mute_zero_says_the_accepted_range(bench: Bench) -> None:
    bench.save(Subscription("telegram", "1001"))
    reply = await bench.run("/mute 0")
    assert reply.refusal
    assert "1m to 30d" in reply.text


async def test_quiet_hours_with_a_timezone_wrap_past_midnight(bench: Bench) -> None:
    bench.save(Subscription("telegram", "1001"))
    reply = await bench.run("/quiet 23:00-07:00 Europe/Berlin")
    assert reply == Reply(
        "Quiet hours 23:00-07:00 Europe/Berlin: alerts are held and summarised after."
    )
    stored = bench.stored()
    assert stored == Subscription(
        "telegram", "1001", quiet=(23 * 60, 7 * 60), timezone="Europe/Berlin"
    )
    assert (await bench.ok("/settings")).splitlines()[
        10
    ] == "Quiet hours: 23:00-07:00 Europe/Berlin"
    # Berlin is UTC+1 in January: quiet from 22:00 to 06:00 UTC, across midnight.
    day = NOW - 12 * HOUR_MS  # 2025-01-15 00:00 UTC
    minute = 60_000
    assert not is_quiet(stored, day + 22 * HOUR_MS - minute)
    assert is_quiet(stored, day + 22 * HOUR_MS)
    assert is_quiet(stored, day + 24 * HOUR_MS)
    assert is_quiet(stored, day + 30 * HOUR_MS - minute)
    assert not is_quiet(stored, day + 30 * HOUR_MS)
    assert bench.changes == 1


async def test_quiet_keeps_the_timezone_and_off_clears_the_hours(bench: Bench) -> None:
    bench.save(Subscription("telegram", "1001", timezone="Asia/Tokyo"))
    assert await bench.run("/quiet 1:30-05:00") == Reply(
        "Quiet hours 1:30-05:00 Asia/Tokyo: alerts are held and summarised after."
    )
    assert bench.stored() == Subscription(
        "telegram", "1001", quiet=(90, 300), timezone="Asia/Tokyo"
    )
    assert await bench.run("/quiet OFF") == Reply("Quiet hours off.")
    assert bench.stored() == Subscription("telegram", "1001", timezone="Asia/Tokyo")
    assert bench.changes == 2


@pytest.mark.parametrize(
    ("line", "stored", "text"),
    [
        ("/digest daily 8:00", "daily 08:00", "Digest: daily 08:00 (Europe/Berlin)."),
        ("/digest DAILY 23:59", "daily 23:59", "Digest: daily 23:59 (Europe/Berlin)."),
        ("/digest hourly", "hourly", "Digest: hourly."),
        ("/digest off", "off", "Digest: off."),
    ],
)
async def test_digest(bench: Bench, line: str, stored: str, text: str) -> None:
    bench.save(Subscription("telegram", "1001", timezone="Europe/Berlin", digest="hourly"))
    assert await bench.run(line) == Reply(text)
    assert bench.stored() == Subscription(
        "telegram", "1001", timezone="Europe/Berlin", digest=stored
    )
    assert (await bench.ok("/settings")).splitlines()[11] == f"Digest: {stored}"
    assert bench.changes == 1


# -- refusals change nothing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("/subscribe huge", "unknown preset 'huge': use big, balanced, everything"),
        ("/set", SET_USAGE),
        ("/set liq", SET_USAGE),
        ("/set colour red", f"unknown setting 'colour': use one of {KEYS}"),
        ("/set liq lots", f"'lots' is not understood: {LIQ_ACCEPTED}"),
        ("/set liq 5k", LIQ_ACCEPTED),
        ("/set liq 200b", LIQ_ACCEPTED),
        ("/set window 2h", "window must be one of 5m, 15m, 1h, 4h, 24h"),
        ("/set window off", "window must be one of 5m, 15m, 1h, 4h, 24h"),
        ("/set side 40%", "side must be from 50% to 100%, or off, e.g. 80% (or any)"),
        ("/set funding 6%", "funding must be from 0.001% to 5%, or off, e.g. 0.05%"),
        ("/set oi 0.1%", "oi must be from 0.5% to 100%, or off, e.g. 5%"),
        ("/set whale 5k", "whale must be from $10K to $100B, or off, e.g. 1m"),
        ("/set spike 1x", "spike must be from 1.1x to 100x, or off, e.g. 3x"),
        (
            "/set cooldown off",
            "'off' is not understood: cooldown must be from 1 min to 24 h, e.g. 30m",
        ),
        ("/set cooldown 2d", "cooldown must be from 1 min to 24 h, e.g. 30m"),
        ("/watch", "usage: /watch BTC ETH SOL, or /watch all"),
        ("/watch BTC-USD", "not an asset symbol: BTC-USD (use e.g. BTC ETH SOL, or all)"),
        ("/watch all BTC", "use /watch all on its own, or list assets such as BTC ETH SOL"),
        ("/mute", MUTE_USAGE),
        ("/mute 30s", MUTE_USAGE),
        ("/mute soon", MUTE_USAGE),
        ("/quiet", QUIET_USAGE),
        ("/quiet 23:00", QUIET_USAGE),
        ("/quiet 23:00 - 07:00", QUIET_USAGE),
        ("/quiet 24:00-07:00", QUIET_USAGE),
        ("/quiet 23:00-07:60", QUIET_USAGE),
        ("/quiet 11pm-7am", QUIET_USAGE),
        ("/quiet 23:00-23:00", "quiet hours must not start and end at the same time"),
        (
            "/quiet 23:00-07:00 Mars/Olympus",
            "unknown timezone 'Mars/Olympus': use a name such as UTC or Europe/Berlin",
        ),
        (
            "/quiet 23:00-07:00 ../../etc/passwd",
            "unknown timezone '../../etc/passwd': use a name such as UTC or Europe/Berlin",
        ),
        ("/digest", DIGEST_USAGE),
        ("/digest weekly", DIGEST_USAGE),
        ("/digest daily", DIGEST_USAGE),
        ("/digest daily 8am", DIGEST_USAGE),
        ("/digest daily 24:00", DIGEST_USAGE),
        ("/digest hourly 08:00", DIGEST_USAGE),
        ("/button", "that button is no longer valid"),
        ("/button nonsense", "that button is no longer valid"),
        ("/button preset:huge", "unknown preset 'huge': use big, balanced, everything"),
        ("/button set:liq:lots", f"'lots' is not understood: {LIQ_ACCEPTED}"),
        ("/button set:colour:red", f"unknown setting 'colour': use one of {KEYS}"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(bench: Bench, line: str, text: str) -> None:
    bench.save(CUSTOM)
    before = bench.rows()
    assert await bench.run(line) == Reply(text, refusal=True)
    assert bench.rows() == before
    assert bench.stored() == CUSTOM
    assert bench.changes == 0


@pytest.mark.parametrize("zone", ["Europe", "America", "x" * 300])
async def test_a_timezone_that_is_not_a_zone_file_is_refused(bench: Bench, zone: str) -> None:
    bench.save(CUSTOM)
    before = bench.rows()
    reply = await bench.run(f"/quiet 23:00-07:00 {zone}")
    shown = zone if len(zone) <= 32 else "x" * 31 + "…"  # long input is cut when quoted
    assert reply == Reply(
        f"unknown timezone {shown!r}: use a name such as UTC or Europe/Berlin", refusal=True
    )
    assert bench.rows() == before


# -- the group admin rule ------------------------------------------------------------------

ADMIN_COMMANDS = {
    "subscribe": "/subscribe big",
    "unsubscribe": "/unsubscribe",
    "set": "/set liq 250m",
    "watch": "/watch BTC",
    "mute": "/mute 2h",
    "unmute": "/unmute",
    "quiet": "/quiet 23:00-07:00",
    "digest": "/digest hourly",
    "button": "/button preset:everything",
}
GROUP_SUB = Subscription("telegram", GROUP.chat_id, mute_until=NOW + HOUR_MS)


def test_every_admin_only_command_is_covered() -> None:
    assert set(ADMIN_COMMANDS) == ADMIN_ONLY


@pytest.mark.parametrize("line", ADMIN_COMMANDS.values(), ids=list(ADMIN_COMMANDS))
async def test_group_non_admins_are_refused_and_nothing_is_stored(bench: Bench, line: str) -> None:
    admin = AdminCheck(False)
    assert await bench.run(line, GROUP, admin) == Reply(ADMINS_ONLY, refusal=True)
    assert bench.rows() == []

    bench.save(GROUP_SUB)
    before = bench.rows()
    assert await bench.run(line, GROUP, admin) == Reply(ADMINS_ONLY, refusal=True)
    assert bench.rows() == before
    assert admin.calls == 2
    assert bench.changes == 0


@pytest.mark.parametrize("line", ADMIN_COMMANDS.values(), ids=list(ADMIN_COMMANDS))
async def test_group_admins_may_change_settings(bench: Bench, line: str) -> None:
    bench.save(GROUP_SUB)
    before = bench.rows()
    admin = AdminCheck(True)
    reply = await bench.run(line, GROUP, admin)
    assert not reply.refusal, reply.text
    assert admin.calls == 1
    assert bench.rows() != before
    assert bench.changes == 1


@pytest.mark.parametrize("line", ["/start", "/help", "/settings", "/status"])
async def test_group_non_admins_may_read(bench: Bench, line: str) -> None:
    bench.save(GROUP_SUB)
    admin = AdminCheck(False)
    reply = await bench.run(line, GROUP, admin)
    assert not reply.refusal
    assert reply.text != ADMINS_ONLY
    assert admin.calls == 0


@pytest.mark.parametrize("line", ADMIN_COMMANDS.values(), ids=list(ADMIN_COMMANDS))
async def test_private_chats_never_ask_who_is_admin(bench: Bench, line: str) -> None:
    bench.save(replace(GROUP_SUB, chat_id=PRIVATE.chat_id))
    admin = AdminCheck(False)
    reply = await bench.run(line, PRIVATE, admin)
    assert not reply.refusal, reply.text
    assert admin.calls == 0
    assert bench.changes == 1


# -- subscription_changed --------------------------------------------------------------------------


async def test_engine_told_once_per_successful_change_and_never_for_reads(bench: Bench) -> None:
    counts = []
    for line in [
        "/subscribe",
        "/settings",
        "/set liq lots",
        "/set liq 250m",
        "/status",
        "/watch BTC ETH",
        "/mute 1h",
        "/help",
    ]:
        await bench.run(line)
        counts.append(bench.changes)
    assert counts == [1, 1, 1, 2, 2, 3, 4, 4]


# -- the rate limit ------------------------------------------------------------------------


async def test_rate_limit_warns_once_then_ignores(bench: Bench) -> None:
    for _ in range(COMMAND_RATE - 1):
        assert (await bench.run("/help")).text.startswith("/start - ")
    assert (await bench.run("/subscribe")).text.startswith("Subscribed.")  # the 10th
    stored = bench.stored()
    assert await bench.maybe("/unsubscribe") == Reply(TOO_MANY, refusal=True)  # the 11th
    assert await bench.maybe("/unsubscribe") is None
    assert await bench.maybe("/help") is None
    assert bench.stored() == stored
    assert bench.changes == 1
    # Other chats have their own allowance, as does the same id on another platform.
    assert not (await bench.run("/help", GROUP)).refusal
    assert not (await bench.run("/help", replace(PRIVATE, platform="discord"))).refusal


async def test_rate_limit_refusal_does_not_ask_who_is_admin(bench: Bench) -> None:
    for _ in range(COMMAND_RATE):
        await bench.run("/help", GROUP)
    admin = AdminCheck(False)
    assert await bench.maybe("/subscribe", GROUP, admin) == Reply(TOO_MANY, refusal=True)
    assert await bench.maybe("/subscribe", GROUP, admin) is None
    assert admin.calls == 0
    assert bench.rows() == []


async def test_rate_limit_allows_again_after_a_minute(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    fake_time = SimpleNamespace(
        monotonic=lambda: clock[0], strftime=time.strftime, gmtime=time.gmtime
    )
    monkeypatch.setattr(commands, "time", fake_time)
    for _ in range(COMMAND_RATE):
        assert not (await bench.run("/help")).refusal
    assert await bench.maybe("/help") == Reply(TOO_MANY, refusal=True)
    clock[0] += 59
    assert await bench.maybe("/help") is None
    clock[0] += 60.5  # a minute after the last attempt, every earlier one has expired
    assert not (await bench.run("/help")).refusal


# -- fairness and hostile input ------------------------------------------------------------


async def test_a_member_spamming_a_group_never_spends_the_admins_budget(bench: Bench) -> None:
    member, admin = AdminCheck(False), AdminCheck(True)
    for _ in range(COMMAND_RATE):
        reply = await bench.core.handle("subscribe", GROUP, [], member, user="502")
        assert reply == Reply(ADMINS_ONLY, refusal=True)
    assert await bench.core.handle("help", GROUP, [], member, user="502") == Reply(
        TOO_MANY, refusal=True
    )
    assert await bench.core.handle("help", GROUP, [], member, user="502") is None
    subscribed = await bench.core.handle("subscribe", GROUP, [], admin, user="501")
    assert subscribed is not None and subscribed.text.startswith("Subscribed.")
    saved = await bench.core.handle("set", GROUP, ["liq", "250m"], admin, user="501")
    assert saved is not None and saved.text.startswith("Saved.")
    assert bench.stored(GROUP).thresholds.liq == 250_000_000  # type: ignore[union-attr]


async def test_a_long_argument_is_cut_when_quoted_back(bench: Bench) -> None:
    await bench.ok("/subscribe")
    long = "x" * 5000
    for line, reply in [
        (f"/set liq {long}", f"'{'x' * 31}…' is not understood: {LIQ_ACCEPTED}"),
        (f"/set {long} 5", f"unknown setting '{'x' * 31}…': use one of {KEYS}"),
        (f"/subscribe {long}", f"unknown preset '{'x' * 31}…': use big, balanced, everything"),
        (f"/{long}", f"Unknown command /{'x' * 31}…. Try /help."),
    ]:
        assert await bench.run(line) == Reply(reply, refusal=True)


async def test_watch_is_bounded_to_50_assets_and_bad_ones_are_listed_briefly(
    bench: Bench,
) -> None:
    await bench.ok("/subscribe")
    before = bench.rows()
    many = " ".join(f"A{n}" for n in range(1000))
    assert await bench.run(f"/watch {many}") == Reply(
        "at most 50 assets can be watched (1000 given), or /watch all for the whole market",
        refusal=True,
    )
    assert await bench.run("/watch " + "$$$ " * 3 + "B-1 C_2 D.3 E+4") == Reply(
        "not an asset symbol: $$$, B-1, C_2 and 2 more (use e.g. BTC ETH SOL, or all)",
        refusal=True,
    )
    assert bench.rows() == before
    fifty = [f"A{n}" for n in range(50)]
    assert (await bench.ok("/watch " + " ".join(fifty))).startswith("Watching A0, A1, A10")
    assert bench.stored().watch == frozenset(fifty)  # type: ignore[union-attr]


async def test_set_summary_on_or_off(bench: Bench) -> None:
    await bench.ok("/subscribe")
    assert (await bench.ok("/set summary off")).endswith("\nSummary: off")
    assert (await bench.ok("/set summary on")).endswith("\nSummary: on")
    assert await bench.refused("/set summary maybe") == (
        "summary must be on or off, e.g. /set summary off"
    )


async def test_set_escalation_is_validated(bench: Bench) -> None:
    await bench.ok("/subscribe")
    assert "\nescalation: again at 3x the last alert\n" in await bench.ok("/set escalation 3x")
    assert "\nescalation: off\n" in await bench.ok("/set escalation off")
    assert await bench.refused("/set escalation 12x") == (
        "escalation must be from 1.5x to 10x, or off, e.g. 2x"
    )
