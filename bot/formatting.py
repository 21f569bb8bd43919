"""How numbers read in messages: money with three significant digits and K/M/B, rates as
percentages."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))
PRICE_DIGITS = 5
ECHO_LIMIT = 32  # characters of someone's input quoted back in a refusal


def round_half_up(value: float, exponent: int = 0) -> float:
    """`value` rounded to a multiple of 10**exponent, halves away from zero (as people round:
    62.5% -> 63%, $2.125M -> $2.13M), not to the even neighbour as round() does."""
    step = Decimal(1).scaleb(exponent)
    return float(Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_UP))


def _three_significant(value: float) -> float:
    if value == 0:
        return 0.0
    return round_half_up(value, math.floor(math.log10(abs(value))) - 2)


def format_usd(value: float) -> str:
    """$352M, $1.23B, $45.6K, $950; three significant digits."""
    sign = "-" if value < 0 else ""
    rounded = _three_significant(abs(value))
    for size, unit in _UNITS:
        if rounded >= size:
            return f"{sign}${_trim(rounded / size)}{unit}"
    return f"{sign}${rounded:.0f}" if rounded >= 100 else f"{sign}${_trim(rounded)}"


def _trim(value: float) -> str:
    """Three significant digits without a trailing ".0": 352 -> "352", 1.2 -> "1.2"."""
    text = f"{value:.{max(0, 2 - math.floor(math.log10(value)))}f}" if value else "0"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_number(value: float, significant: int = 6) -> str:
    """A quantity or price for people: comma-grouped, never in exponent form, trailing zeros
    dropped: 81,000,000,000; 1,931.24; 0.00001234."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    decimals = max(0, significant - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_price(value: float) -> str:
    """A price to five significant digits, as traders quote it: 2,899.7; 91,235; 0.000012345."""
    return format_number(value, significant=PRICE_DIGITS)


def format_percent(fraction: float, decimals: int = 0) -> str:
    return f"{round_half_up(fraction * 100, -decimals):.{decimals}f}%"


def format_rate(fraction: float) -> str:
    """A funding rate as a signed percentage with enough digits to read: 0.0007 -> +0.0700%."""
    return f"{fraction * 100:+.4f}%"


def echo(text: str, limit: int = ECHO_LIMIT) -> str:
    """What someone typed, cut to `limit` characters for quoting back in a reply."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iso_utc(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def split_message(text: str, limit: int) -> list[str]:
    """Parts of at most `limit` characters, split between lines, so each part reads on its own.
    Only a line longer than the limit is cut, after its last space that fits (a word longer than
    the limit is cut where it must)."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            cut = line.rfind(" ", 1, limit + 1)
            cut = cut if cut > 0 else limit
            parts.append(line[:cut])
            line = line[cut:].lstrip(" ")
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current or not parts:
        parts.append(current)
    return parts
