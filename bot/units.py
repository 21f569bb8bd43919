"""Parsing of the quantities people type: money ("250m", "$1.2B", "1,000,000"), percentages
("0.05%", "5%"), multiples ("3x") and durations ("30m", "2h"). Errors say what is accepted."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE | re.ASCII)
_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_MONEY = re.compile(
    r"^\s*\$?\s*(\d[\d,_]*(?:\.\d+)?)\s*([kmbt])?\s*(?:usd)?\s*$", re.IGNORECASE | re.ASCII
)
_MONEY_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_PERCENT = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(%)?\s*$", re.ASCII)
_MULTIPLE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x?\s*$", re.IGNORECASE | re.ASCII)
OFF_WORDS = frozenset({"off", "none", "0", "disable", "disabled", "no"})


def is_off(text: str) -> bool:
    return text.strip().lower() in OFF_WORDS


def parse_duration(value: str | int | float) -> float:
    """Seconds in a duration: a number of seconds, or text such as "30m", "2h", "1d"."""
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


def parse_money(text: str) -> float:
    """USD in "250m", "$1.2B", "1,000,000", "100k"."""
    match = _MONEY.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an amount: use e.g. 250m, $1.2B, 100k or 1,000,000")
    number = float(match[1].replace(",", "").replace("_", ""))
    return number * _MONEY_SCALE[match[2].lower()] if match[2] else number


def parse_percent(text: str) -> float:
    """A fraction from "5%", "0.05%" or a bare number read as percent ("5" -> 0.05)."""
    match = _PERCENT.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a percentage: use e.g. 5% or 0.05%")
    return float(match[1]) / 100


def parse_multiple(text: str) -> float:
    """A multiple from "3x" or "3"."""
    match = _MULTIPLE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a multiple: use e.g. 3x")
    return float(match[1])
