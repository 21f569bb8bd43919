"""The plain records every layer shares: market data from the venues, source health,
what a chat asked for, rule state and outbox items. Only data and small derived values;
no I/O, no validation (bot/subscriptions.py validates settings)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from bot.alert import Alert, text_of

Position = Literal["long", "short"]


@dataclass(slots=True)
class Liquidation:
    """One liquidated position.

    `position` is the side of the position that was closed (Binance/OKX report the order side,
    Bybit the position side: the venue module has already turned either into this).
    Times are epoch milliseconds: `ts` from the venue, `recv_ts` from our clock. The record
    keeps no reference to the frame it came from: events wait in the engine and the recorder,
    and a parsed frame held alive by each would be garbage the collector walks.
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


# A chat across platforms: "<platform>:<chat id>" (Subscription.key, rule state's chat).
ChatKey = str
RuleName = Literal["window", "spike", "whale", "funding", "oi", "digest", "quiet"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A chat's rule thresholds; 0 switches a rule off (side: 0 = either side)."""

    window: str = "1h"
    liq: float = 100_000_000.0  # USD in the window
    side: float = 0.0  # dominant side's share, 0..1
    funding: float = 0.0005  # |rate| per 8 h, as a fraction
    oi: float = 0.05  # |open interest change| over the window, as a fraction
    whale: float = 0.0  # USD of one liquidation
    spike: float = 0.0  # multiple of the 30-day average for the window
    cooldown: float = 1800.0  # seconds between alerts of one rule and asset
    escalation: float = 2.0  # a window alert inside the cooldown at this multiple of the last


@dataclass(frozen=True, slots=True)
class Subscription:
    platform: str
    chat_id: str
    thresholds: Thresholds = field(default_factory=Thresholds)
    watch: frozenset[str] = frozenset()  # base assets; empty = the whole market
    active: bool = True
    mute_until: int | None = None  # epoch ms
    quiet: tuple[int, int] | None = None  # minutes after midnight: start, end
    timezone: str = "UTC"
    digest: str = "off"  # "off", "hourly" or "daily HH:MM"
    chart: bool = False  # window, spike and digest alerts as a photo with a chart
    summary: bool = True  # a closing summary when a cascade that was alerted subsides
    priority: int = 0  # delivery order: see bot/delivery_order.py
    # "platform:chat_id", made once: rule states, stories and the index are keyed by it, and a
    # pass looks it up for every chat a rule reaches.
    key: ChatKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.platform}:{self.chat_id}")


PENDING, HELD, SENT, FAILED, MERGED = "pending", "held", "sent", "failed", "merged"


@dataclass(frozen=True, slots=True)
class RuleState:
    """Per (chat, rule, asset): disarmed after firing until the value falls back (hysteresis)."""

    armed: bool
    last_fired_at: int
    last_total: float = 0.0  # window rule: the total the last alert told (0: no story open)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    key: str  # idempotency key: one trigger is recorded (and delivered) once
    platform: str
    chat_id: str
    rule: str
    asset: str
    side: str | None
    alerts: tuple[Alert, ...]  # one message: several alerts of one rule in one pass
    status: str = PENDING


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    platform: str
    chat_id: str
    rule: RuleName
    asset: str
    side: str | None
    alerts: tuple[Alert, ...]
    attempts: int
    parts_sent: int  # parts of a split message already delivered
    created_at: int

    @property
    def text(self) -> str:
        """The message as plain text (console; Telegram before escaping)."""
        return text_of(self.alerts)


@dataclass(frozen=True, slots=True)
class Story:
    """A cascade told to one chat by window alerts, open until it subsides (bot/cascade.py)."""

    chat: str
    started_at: int  # the first window alert
    told_at: int  # the last window alert (or escalation)
    peak_usd: float
    peak_long_usd: float
    top: str  # "BTC $114M, ETH $48.2M, SOL $25.3M" at the peak
    largest_usd: float = 0.0
    largest: str = ""  # "$8.4M BTC long on Binance"
