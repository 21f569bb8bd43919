"""Normalised market records. Every venue module produces these; nothing downstream needs to
know which venue a record came from to read it correctly."""

from __future__ import annotations

from collections.abc import Iterable
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
    """Live state of one venue's liquidation stream (or of one of its connections), updated by
    its collector.

    `parse_errors` counts only what is truly malformed: text that is not JSON, or a liquidation
    entry whose required fields are missing or not numbers. `ignored` counts what a real feed
    sends besides liquidations: acks, pongs, notices, other event types, empty pushes and
    entries outside the instrument universe. `symbols` is how many instruments the stream
    covers; `refused` how many subscriptions the venue refused. While the venue is being retried,
    `retrying_since`, `last_error` and `next_attempt_at` say since when, why and when next.
    """

    venue: str
    connected: bool = False
    last_message_at: int | None = None
    reconnects: int = 0
    messages: int = 0
    parse_errors: int = 0
    ignored: int = 0
    symbols: int = 0
    refused: int = 0
    retrying_since: int | None = None
    last_error: str | None = None
    next_attempt_at: int | None = None


def merge_health(parts: Iterable[SourceHealth]) -> list[SourceHealth]:
    """One SourceHealth per venue from the health of each of its connections (Bybit shards its
    topics over several). A venue is connected when every connection that carries topics is."""
    merged: dict[str, SourceHealth] = {}
    states: dict[str, list[tuple[int, bool]]] = {}
    for part in parts:
        total = merged.get(part.venue)
        if total is None:
            total = merged[part.venue] = SourceHealth(part.venue)
        states.setdefault(part.venue, []).append((part.symbols, part.connected))
        total.last_message_at = max(
            (t for t in (total.last_message_at, part.last_message_at) if t is not None),
            default=None,
        )
        total.reconnects += part.reconnects
        total.messages += part.messages
        total.parse_errors += part.parse_errors
        total.ignored += part.ignored
        total.symbols += part.symbols
        total.refused += part.refused
        if part.retrying_since is not None and (
            total.retrying_since is None or part.retrying_since < total.retrying_since
        ):
            total.retrying_since = part.retrying_since
            total.last_error = part.last_error
            total.next_attempt_at = part.next_attempt_at
    for venue, total in merged.items():
        carriers = [connected for symbols, connected in states[venue] if symbols]
        total.connected = all(carriers) if carriers else any(c for _, c in states[venue])
    return list(merged.values())
