"""Settings: one TOML file (see config.example.toml), read once into frozen dataclasses.

Every problem in a file is collected and reported with its key, so `liqbot check-config` can
list them all at once instead of failing on the first.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.model import Thresholds
from bot.subscriptions import CONFIG_KEYS, thresholds_from_config
from bot.units import parse_duration
from bot.venues.catalog import VENUES

CONFIG_ENV = "LIQBOT_CONFIG"
DEFAULT_CONFIG_FILE = "config.toml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class ExchangeSettings:
    name: str
    enabled: bool
    ws_url: str  # "" for a venue without a stream (Hyperliquid)
    rest_url: str
    silence_timeout: float


@dataclass(frozen=True)
class StorageSettings:
    path: str = "liqbot.db"
    events_retention_days: float = 7
    rollups_retention_days: float = 90


@dataclass(frozen=True)
class CollectorSettings:
    funding_interval: float = 60
    open_interest_interval: float = 300
    instruments_interval: float = 3600
    reconnect_min: float = 1
    reconnect_max: float = 60
    recycle_after: float = 23 * 3600


@dataclass(frozen=True)
class OutboxSettings:
    max_age: float = 1800  # seconds: an alert undelivered this long is expired, not sent late


@dataclass(frozen=True)
class ChatPlatformSettings:
    """A chat platform's connection. `token` comes from the file or the environment and is a
    secret: never logged (see bot/logs.py)."""

    token: str | None
    api_url: str
    gateway_url: str | None = None
    paid_broadcast: bool = False  # Telegram: alerts sent with allow_paid_broadcast
    paid_broadcast_rate: int = 1000  # Telegram: messages a second while paid broadcast is on

    @property
    def enabled(self) -> bool:
        return bool(self.token)


TELEGRAM_API_URL = "https://api.telegram.org"
DISCORD_API_URL = "https://discord.com/api/v10"
TOKEN_ENV = {"telegram": "TELEGRAM_BOT_TOKEN", "discord": "DISCORD_BOT_TOKEN"}
# What @BotFather hands out: the bot's numeric id, a colon, then letters, digits, _ and -.
_TELEGRAM_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]+$", re.ASCII)


@dataclass(frozen=True)
class MetricsSettings:
    """`[metrics] listen = "host:port"`: the operator HTTP server (/metrics, /healthz,
    /readyz). Absent: off."""

    listen: tuple[str, int] | None = None


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings = field(default_factory=StorageSettings)
    exchanges: dict[str, ExchangeSettings] = field(default_factory=dict)
    collector: CollectorSettings = field(default_factory=CollectorSettings)
    log_level: str = "INFO"
    defaults: Thresholds = field(default_factory=Thresholds)
    telegram: ChatPlatformSettings = field(
        default_factory=lambda: ChatPlatformSettings(None, TELEGRAM_API_URL)
    )
    discord: ChatPlatformSettings = field(
        default_factory=lambda: ChatPlatformSettings(None, DISCORD_API_URL)
    )
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    charts_enabled: bool = True  # `[charts] enabled`: the operator's switch for every chart

    @property
    def secrets(self) -> list[str]:
        return [token for token in (self.telegram.token, self.discord.token) if token]

    @property
    def enabled_exchanges(self) -> list[ExchangeSettings]:
        return [exchange for exchange in self.exchanges.values() if exchange.enabled]


# Each venue's endpoints, from the catalog; a venue without a stream (Hyperliquid) has no ws_url.
EXCHANGE_DEFAULTS: dict[str, dict[str, Any]] = {
    venue.name: {"rest_url": venue.rest_url, "silence_timeout": venue.silence_timeout}
    | ({"ws_url": venue.ws_url} if venue.ws_url else {})
    for venue in VENUES.values()
}


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` lists each as "key: what is wrong"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# Sane ranges (seconds) for every duration `run` schedules or waits: a poll every millisecond
# floods the venues and the log, a year-long one never runs.
DURATION_RANGES: dict[str, tuple[float, float]] = {
    "funding_interval": (10, 86_400),
    "open_interest_interval": (10, 86_400),
    "instruments_interval": (60, 7 * 86_400),
    "reconnect_min": (0.01, 600),
    "reconnect_max": (0.1, 3600),
    "recycle_after": (60, 7 * 86_400),
    "silence_timeout": (1, 86_400),
    "max_age": (60, 86_400),
}
MAX_RETENTION_DAYS = 3650
# Telegram's paid broadcasts go up to 1,000 messages a second; below its free 30 they buy nothing.
PAID_BROADCAST_RATES = (30, 1000)
# Keys that belong in a table, for a helpful word when one is written at the top level.
HOME_TABLES = {
    "token": "[telegram] token (or [discord] token)",
    "api_url": "[telegram] api_url (or [discord] api_url)",
    "gateway_url": "[discord] gateway_url",
    "path": "[storage] path",
    "level": "[logging] level",
    "events_retention_days": "[storage] events_retention_days",
    "rollups_retention_days": "[storage] rollups_retention_days",
}


def _url(schemes: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        expected = f"expected a URL starting with {' or '.join(schemes)} and a host"
        if not isinstance(value, str) or not value.startswith(schemes):
            raise ValueError(expected)
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError:
            raise ValueError(f"{expected}: {value!r} is not a valid URL") from None
        if not parts.hostname or any(c.isspace() for c in value):
            raise ValueError(f"{expected}: {value!r} has no host")
        return value.rstrip("/")

    return check


def _duration(key: str) -> Callable[[Any], float]:
    low, high = DURATION_RANGES[key]

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError("expected a duration such as 30s, 5m, 2h or a number of seconds")
        seconds = parse_duration(value)
        if not (math.isfinite(seconds) and low <= seconds <= high):
            raise ValueError(f"expected from {_seconds_text(low)} to {_seconds_text(high)}")
        return seconds

    return check


def _seconds_text(seconds: float) -> str:
    for size, unit in ((86_400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _token(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected the bot token (it is blank)")
    if any(c.isspace() for c in value):
        raise ValueError("a bot token has no spaces or line breaks: copy it again")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _paid_rate(value: Any) -> int:
    low, high = PAID_BROADCAST_RATES
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"expected a whole number of messages a second from {low} to {high}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def _days(value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 1 <= value <= MAX_RETENTION_DAYS
    ):
        raise ValueError(f"expected a number of days from 1 to {MAX_RETENTION_DAYS}")
    return float(value)


def _listen(value: Any) -> tuple[str, int]:
    """ "host:port" ("[::1]:9108" for IPv6): a literal address or a name, and a port 1-65535."""
    host, colon, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isascii() or not port.isdigit():
        raise ValueError('expected "host:port", such as "127.0.0.1:9108"')
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port} is out of range (1-65535)")
    if any(char.isspace() or char in "/[]" for char in host):
        raise ValueError(f"{host!r} is not a host name or address")
    return host, int(port)


def _log_level(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return value.upper()


class _Reader:
    """Reads typed values out of the raw TOML tables, collecting problems as it goes."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def table(self, path: str, known: set[str]) -> Mapping[str, Any]:
        node: Any = self.raw
        for part in path.split("."):
            node = node.get(part, {}) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            self.problems.append(f"{path}: expected a table")
            return {}
        for key in sorted(set(node) - known):
            self.problems.append(f"{path}.{key}: unknown key (known: {', '.join(sorted(known))})")
        return node

    def value(
        self,
        table: Mapping[str, Any],
        path: str,
        key: str,
        check: Callable[[Any], Any],
        default: Any,
    ) -> Any:
        if key not in table:
            return default
        try:
            return check(table[key])
        except ValueError as error:
            self.problems.append(f"{path}.{key}: {error}")
            return default


def settings_from_dict(raw: Mapping[str, Any]) -> Settings:
    reader = _Reader(raw)
    tables = {
        "storage",
        "exchanges",
        "collector",
        "logging",
        "defaults",
        "telegram",
        "discord",
        "metrics",
        "charts",
        "outbox",
    }
    for key in sorted(set(raw) - tables):
        if key in HOME_TABLES:
            reader.problems.append(f"{key}: belongs in a table: write it as {HOME_TABLES[key]}")
        else:
            reader.problems.append(f"{key}: unknown table")

    storage_raw = reader.table(
        "storage", {"path", "events_retention_days", "rollups_retention_days"}
    )
    storage = StorageSettings(
        path=reader.value(storage_raw, "storage", "path", _text, StorageSettings.path),
        events_retention_days=reader.value(
            storage_raw, "storage", "events_retention_days", _days, 7.0
        ),
        rollups_retention_days=reader.value(
            storage_raw, "storage", "rollups_retention_days", _days, 90.0
        ),
    )

    collector_keys = {f.name for f in CollectorSettings.__dataclass_fields__.values()}
    collector_raw = reader.table("collector", collector_keys)
    collector = CollectorSettings(
        **{
            key: reader.value(
                collector_raw, "collector", key, _duration(key), getattr(CollectorSettings, key)
            )
            for key in collector_keys
        }
    )
    if collector.reconnect_min > collector.reconnect_max:
        reader.problems.append("collector.reconnect_min: must not exceed collector.reconnect_max")

    reader.table("exchanges", set(EXCHANGE_DEFAULTS))
    exchanges = {}
    for name, endpoints in EXCHANGE_DEFAULTS.items():
        path = f"exchanges.{name}"
        streams = "ws_url" in endpoints
        keys = {"enabled", "rest_url"} | ({"ws_url", "silence_timeout"} if streams else set())
        table = reader.table(path, keys)
        exchanges[name] = ExchangeSettings(
            name=name,
            enabled=reader.value(table, path, "enabled", _boolean, True),
            ws_url=reader.value(
                table, path, "ws_url", _url(("ws://", "wss://")), endpoints.get("ws_url", "")
            ),
            rest_url=reader.value(
                table, path, "rest_url", _url(("http://", "https://")), endpoints["rest_url"]
            ),
            silence_timeout=reader.value(
                table,
                path,
                "silence_timeout",
                _duration("silence_timeout"),
                endpoints["silence_timeout"],
            ),
        )
    if not any(exchange.enabled for exchange in exchanges.values()):
        reader.problems.append("exchanges: every exchange is disabled; enable at least one")

    logging_raw = reader.table("logging", {"level"})
    log_level = reader.value(logging_raw, "logging", "level", _log_level, "INFO")
    telegram = _chat_platform(reader, "telegram", TELEGRAM_API_URL, with_gateway=False)
    discord = _chat_platform(reader, "discord", DISCORD_API_URL, with_gateway=True)
    metrics_raw = reader.table("metrics", {"listen"})
    metrics = MetricsSettings(reader.value(metrics_raw, "metrics", "listen", _listen, None))
    charts_raw = reader.table("charts", {"enabled"})
    charts_enabled = reader.value(charts_raw, "charts", "enabled", _boolean, True)
    defaults_raw = reader.table("defaults", set(CONFIG_KEYS))
    defaults, problems = thresholds_from_config(defaults_raw)
    reader.problems += problems
    outbox_raw = reader.table("outbox", {"max_age"})
    outbox = OutboxSettings(
        reader.value(outbox_raw, "outbox", "max_age", _duration("max_age"), OutboxSettings.max_age)
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return Settings(
        storage,
        exchanges,
        collector,
        log_level,
        defaults,
        telegram,
        discord,
        metrics,
        outbox,
        charts_enabled=charts_enabled,
    )


def _chat_platform(
    reader: _Reader, name: str, api_url: str, with_gateway: bool
) -> ChatPlatformSettings:
    """`[telegram]` / `[discord]`: the token may also come from the environment."""
    keys = {"token", "api_url", "gateway_url"} if with_gateway else {"token", "api_url"}
    keys |= set() if with_gateway else {"paid_broadcast", "paid_broadcast_rate"}
    table = reader.table(name, keys)
    http = _url(("http://", "https://"))
    token, source = reader.value(table, name, "token", _token, None), f"{name}.token"
    env = TOKEN_ENV[name]
    if "token" not in table and os.environ.get(env):  # an empty variable is an unset one
        source = f"{env} (environment)"
        try:
            token = _token(os.environ[env])
        except ValueError as error:
            reader.problems.append(f"{source}: {error}")
    if token is not None and name == "telegram" and not _TELEGRAM_TOKEN.match(token):
        reader.problems.append(
            f"{source}: not a Telegram bot token (it reads <digits>:<letters>, as @BotFather "
            "gives it)"
        )
    return ChatPlatformSettings(
        token=token,
        api_url=reader.value(table, name, "api_url", http, api_url),
        gateway_url=reader.value(table, name, "gateway_url", _url(("ws://", "wss://")), None),
        paid_broadcast=reader.value(table, name, "paid_broadcast", _boolean, False),
        paid_broadcast_rate=reader.value(table, name, "paid_broadcast_rate", _paid_rate, 1000),
    )


def config_path(explicit: str | None) -> Path | None:
    """The file to read: --config, else $LIQBOT_CONFIG, else ./config.toml if present, else none
    (the built-in defaults, which run on the embedded SQLite store with no tokens)."""
    chosen = explicit or os.environ.get(CONFIG_ENV)
    if chosen:
        return Path(chosen)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.exists() else None


def load_settings(path: Path | None) -> Settings:
    if path is None:
        return settings_from_dict({})
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{path}: cannot read: {error}"]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"{path}: not valid TOML: {error}"]) from None
    return settings_from_dict(raw)
