"""Parsing of the quantities people type: durations ("30m", "2h", "90s", "1d") for now."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | int | float) -> float:
    """Seconds in a duration: a number of seconds, or text such as "30m", "2h", "1d".

    Raises ValueError with a message that says what is accepted.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 2h or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if not match:
            raise ValueError(
                f"{value!r} is not a duration: use a number with s, m, h or d, such as 30m or 2h"
            )
        seconds = float(match[1]) * _SECONDS[(match[2] or "s").lower()]
    if seconds <= 0:
        raise ValueError("a duration must be above zero")
    return seconds
