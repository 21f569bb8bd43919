"""Normalised market records. Every venue module produces these; nothing downstream needs to
know which venue a record came from to read it correctly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Position = Literal["long", "short"]


@dataclass(slots=True)
class Liquidation:
    """One liquidated position.

    `position` is the side of the position that was closed (Binance/OKX report the order side,
    Bybit the position side: the venue module has already turned either into this).
    Times are epoch milliseconds: `ts` from the venue, `recv_ts` from our clock.
    """

    venue: str
    symbol: str
    base: str
    position: Position
    price: float
    qty: float
    usd: float
    ts: int
    recv_ts: int
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(slots=True, frozen=True)
class FundingRate:
    """A perpetual's funding rate: `rate` is the fraction per funding interval."""

    venue: str
    symbol: str
    base: str
    rate: float
    interval_hours: float
    mark_price: float | None
    next_funding_time: int | None

    @property
    def rate_8h(self) -> float:
        return self.rate * 8 / self.interval_hours

    @property
    def apr(self) -> float:
        return self.rate * (24 / self.interval_hours) * 365


@dataclass(slots=True, frozen=True)
class OpenInterest:
    """Open interest of one contract, one side counted (as Binance and OKX count it)."""

    venue: str
    symbol: str
    base: str
    usd: float
    ts: int


@dataclass(slots=True, frozen=True)
class Gap:
    """A stretch of time in which a venue's liquidation stream was not being received."""

    venue: str
    start: int
    end: int


@dataclass(slots=True)
class SourceHealth:
    """Live state of one venue's liquidation stream, updated by its collector."""

    venue: str
    connected: bool = False
    last_message_at: int | None = None
    reconnects: int = 0
    messages: int = 0
    parse_errors: int = 0
