"""Helpers shared by the pure venue parsers."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache

from bot.model import Liquidation

# Longest first, so "FDUSD" is not read as "FD" + "USD".
_QUOTE_SUFFIXES = ("FDUSD", "USDT", "USDC", "BUSD", "PERP", "USD")
# Venues list small-priced coins per 1,000 (or more) units: 1000PEPEUSDT is PEPE.
_MULTIPLIER = re.compile(r"^(?:1000000|100000|10000|1000|1M)(?=[A-Z])")

# Errors a parser may meet on a frame of the wrong shape; each means "malformed frame".
MALFORMED = (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError)


@lru_cache(maxsize=8192)
def base_asset(symbol: str) -> str:
    """The traded coin of a symbol: BTCUSDT, BTC-USDT-SWAP, BTCPERP -> BTC; 1000PEPEUSDT -> PEPE.

    Assets from different venues merge on this name, so it must agree across venues.
    """
    head = symbol.upper().split("-", 1)[0].split("_", 1)[0]
    for quote in _QUOTE_SUFFIXES:
        if head.endswith(quote) and len(head) > len(quote):
            head = head[: -len(quote)]
            break
    return _MULTIPLIER.sub("", head) or head


def positive(value: float) -> float:
    """`value` if it is a finite number above zero; otherwise a ValueError (malformed frame)."""
    if value > 0 and math.isfinite(value):
        return value
    raise ValueError(f"expected a positive finite number, got {value!r}")


# Quote assets valued at 1 USD. Anything else (ETHBTC's BTC) needs its USD price.
USD_QUOTES = frozenset({"USDT", "USDC", "USD", "BUSD", "FDUSD"})


@dataclass(slots=True, frozen=True)
class Instrument:
    """One live perpetual swap of a venue's universe: its real base and quote assets."""

    symbol: str
    base: str
    quote: str


@dataclass(slots=True)
class Tally:
    """What a parser skipped inside a frame it otherwise used, for the collector to count:
    `malformed` entries (missing or non-numeric fields), `ignored` entries (outside the
    universe) and `unknown` instrument ids (newer than the instrument list)."""

    malformed: int = 0
    ignored: int = 0
    unknown: set[str] = field(default_factory=set)


def kept(events: list[Liquidation], bad: int, tally: Tally | None) -> list[Liquidation] | None:
    """A push's good entries, its `bad` ones counted as malformed in `tally`; None (the frame is
    malformed) when no entry was good."""
    if bad and not events:
        return None
    if bad and tally is not None:
        tally.malformed += bad
    return events


@dataclass(slots=True, frozen=True)
class Control:
    """What a control frame (an ack, an error reply, a notice, a heartbeat) asks of the
    collector."""

    refused: tuple[str, ...] = ()  # subscriptions the venue refused
    reconnect: str = ""  # non-empty: reconnect now, for this reason
    reply: tuple[str, ...] = ()  # frames to send back (Deribit's test_request wants public/test)
