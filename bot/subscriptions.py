"""What a chat asked for: its thresholds, watch list and quiet settings, and how they are set.

Every value is validated here, once, for config `[defaults]` and for chat commands alike; a bad
value raises `UserError` saying what is accepted, and nothing changes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.errors import UserError
from bot.formatting import echo, format_usd
from bot.market import WINDOWS
from bot.model import Subscription, Thresholds
from bot.units import is_off, parse_duration, parse_money, parse_multiple, parse_percent

# Every money setting (liq, whale): one parser, one range.
MIN_USD, MAX_USD = 10_000.0, 100_000_000_000.0
MIN_SIDE, MAX_SIDE = 0.5, 1.0
MIN_FUNDING, MAX_FUNDING = 0.00001, 0.05
MIN_OI, MAX_OI = 0.005, 1.0
MIN_SPIKE, MAX_SPIKE = 1.1, 100.0
MIN_ESCALATION, MAX_ESCALATION = 1.5, 10.0
MIN_COOLDOWN, MAX_COOLDOWN = 60.0, 86_400.0
MAX_WATCH = 50  # assets in one chat's watch list
_ASSET = re.compile(r"^[A-Z0-9]{1,20}$", re.ASCII)
_SHARE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(%)?\s*$", re.ASCII)


@dataclass(frozen=True)
class Setting:
    """How one threshold is read from what people type, and which values are accepted."""

    parse: Callable[[str], float]
    low: float
    high: float
    describe: Callable[[float], str]
    example: str
    off_allowed: bool = True

    def check(self, name: str, value: float) -> float:
        if self.off_allowed and value == 0:
            return 0.0
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise UserError(self.accepted(name))
        return value

    def read(self, name: str, text: str) -> float:
        if self.off_allowed and is_off(text):
            return 0.0
        try:
            value = self.parse(text)
        except ValueError:
            raise UserError(
                f"{echo(text.strip())!r} is not understood: {self.accepted(name)}"
            ) from None
        return self.check(name, value)

    def accepted(self, name: str) -> str:
        """What the setting accepts, said the way people type it."""
        accepted = f"from {self.describe(self.low)} to {self.describe(self.high)}"
        off = ", or off" if self.off_allowed else ""
        return f"{name} must be {accepted}{off}, e.g. {self.example}"


def _share(text: str) -> float:
    """ "80%", "80" or "0.8"; "any" means either side."""
    if text.strip().lower() == "any":
        return 0.0
    match = _SHARE.match(text)  # ASCII digits, as every other setting: no "nan", "1e0", "٨٠"
    if not match:
        raise ValueError(f"{text!r} is not a share: use e.g. 80% or any")
    value = float(match[1])
    return value / 100 if match[2] or value > 1 else value


def _percent(decimals: int) -> Callable[[float], str]:
    def describe(value: float) -> str:
        text = f"{value * 100:.{decimals}f}"
        return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"

    return describe


def _duration_text(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds < 3600 else f"{seconds / 3600:g} h"


SETTINGS: dict[str, Setting] = {
    "liq": Setting(parse_money, MIN_USD, MAX_USD, format_usd, "250m"),
    "side": Setting(_share, MIN_SIDE, MAX_SIDE, _percent(0), "80% (or any)"),
    "funding": Setting(parse_percent, MIN_FUNDING, MAX_FUNDING, _percent(3), "0.05%"),
    "oi": Setting(parse_percent, MIN_OI, MAX_OI, _percent(1), "5%"),
    "whale": Setting(parse_money, MIN_USD, MAX_USD, format_usd, "1m"),
    "spike": Setting(parse_multiple, MIN_SPIKE, MAX_SPIKE, lambda v: f"{v:g}x", "3x"),
    "cooldown": Setting(
        parse_duration, MIN_COOLDOWN, MAX_COOLDOWN, _duration_text, "30m", off_allowed=False
    ),
    "escalation": Setting(
        parse_multiple, MIN_ESCALATION, MAX_ESCALATION, lambda v: f"{v:g}x", "2x"
    ),
}
SETTING_KEYS = ("window", *SETTINGS)


def _window(text: str) -> str:
    value = text.strip().lower()
    if value not in WINDOWS:
        raise UserError(f"window must be one of {', '.join(WINDOWS)}")
    return value


def set_threshold(thresholds: Thresholds, key: str, text: str) -> Thresholds:
    """`thresholds` with `key` set from what a user typed; UserError if key or value is bad."""
    name = key.strip().lower()
    if name == "window":
        return replace(thresholds, window=_window(text))
    if name not in SETTINGS:
        raise UserError(f"unknown setting {echo(key)!r}: use one of {', '.join(SETTING_KEYS)}")
    changes: dict[str, Any] = {name: SETTINGS[name].read(name, text)}
    return replace(thresholds, **changes)


# `[defaults]` keys (a contract), the threshold each sets; numbers there are USD, fractions,
# multiples, or durations (text such as "30m", or seconds).
CONFIG_KEYS = {
    "window": "window",
    "min_liquidations_usd": "liq",
    "min_side_share": "side",
    "funding_rate_8h": "funding",
    "oi_change": "oi",
    "single_liquidation_usd": "whale",
    "spike": "spike",
    "cooldown": "cooldown",
    "escalation": "escalation",
}


def thresholds_from_config(defaults: Mapping[str, Any]) -> tuple[Thresholds, list[str]]:
    """Thresholds from `[defaults]`, and the problems found there, each with its key."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, name in CONFIG_KEYS.items():
        if key in defaults:
            try:
                values[name] = _config_value(key, name, defaults[key])
            except UserError as error:
                problems.append(f"defaults.{key}: {error}")
    return Thresholds(**values), problems


FRACTIONS = frozenset({"side", "funding", "oi"})


def _config_value(key: str, name: str, value: Any) -> Any:
    """A `[defaults]` value: numbers in the units the key names (fractions for shares and rates),
    or text as typed in chats ("250m", "30m", "0.05%")."""
    if name == "window":
        return _window(str(value))
    setting = SETTINGS[name]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return setting.check(key, float(value))
    if isinstance(value, str) and (name not in FRACTIONS or "%" in value):
        return setting.read(key, value)
    unit = "a fraction such as 0.05 (or text with %)" if name in FRACTIONS else "a number"
    raise UserError(f"{key} must be {unit}")


def parse_watch(words: list[str]) -> frozenset[str]:
    """Assets from `/watch BTC eth,SOL` (or `all` for the whole market)."""
    assets = {part.upper() for word in words for part in word.split(",") if part.strip()}
    if "ALL" in assets:
        if len(assets) > 1:
            raise UserError("use /watch all on its own, or list assets such as BTC ETH SOL")
        return frozenset()
    bad = sorted(a for a in assets if not _ASSET.match(a))
    if bad:
        shown = ", ".join(echo(a) for a in bad[:3]) + (
            f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        )
        raise UserError(f"not an asset symbol: {shown} (use e.g. BTC ETH SOL, or all)")
    if len(assets) > MAX_WATCH:
        raise UserError(
            f"at most {MAX_WATCH} assets can be watched ({len(assets)} given), "
            "or /watch all for the whole market"
        )
    return frozenset(assets)


def local_minutes(now: int, timezone: str) -> tuple[str, int]:
    """(local date, minutes after local midnight) at epoch ms `now` in `timezone`."""
    local = datetime.fromtimestamp(now / 1000, ZoneInfo(timezone))
    return local.date().isoformat(), local.hour * 60 + local.minute


def is_quiet(sub: Subscription, now: int) -> bool:
    """Inside the chat's quiet hours (a range that may wrap past midnight)."""
    if sub.quiet is None:
        return False
    start, end = sub.quiet
    _, minute = local_minutes(now, sub.timezone)
    return start <= minute < end if start <= end else minute >= start or minute < end
