"""How numbers read in messages: money with three significant digits and K/M/B, rates as
percentages."""

from __future__ import annotations

import math
from datetime import UTC, datetime

_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def _three_significant(value: float) -> float:
    if value == 0:
        return 0.0
    digits = 3 - math.floor(math.log10(abs(value))) - 1
    return round(value, digits)


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


def format_percent(fraction: float, decimals: int = 0) -> str:
    return f"{fraction * 100:.{decimals}f}%"


def format_rate(fraction: float) -> str:
    """A funding rate as a signed percentage with enough digits to read: 0.0007 -> +0.0700%."""
    return f"{fraction * 100:+.4f}%"


def iso_utc(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )
