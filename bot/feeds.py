"""Websocket connection loops for the liquidation streams.

One `Collector` per connection (one per venue; Bybit needs several) keeps it alive: it
subscribes, answers the venue's keep-alive, treats a connection that stays silent as broken (a
socket can be open while the feed is dead: Binance's old `/ws` base does exactly that),
reconnects with capped, jittered exponential backoff, and records every gap in which nothing
could be received. It counts malformed frames apart from the expected ones it ignores (acks,
pongs, notices), counts refused subscriptions and reconnects at once on a venue's notice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bot.clock import now_ms
from bot.config import CollectorSettings, ExchangeSettings
from bot.model import Gap, Liquidation, SourceHealth
from bot.rest import RestError
from bot.venues.common import MALFORMED, Control, Tally

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 8 * 1024 * 1024
CONNECT_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5)
# A connection that has lived this long proves the venue is back: backoff starts over.
HEALTHY_AFTER = 60.0


@dataclass(frozen=True)
class StreamSpec:
    """What differs between venues' liquidation streams; everything else is the Collector's."""

    venue: str
    url: str
    parse: Callable[[Any, int], list[Liquidation] | None]
    subscribe_frames: Callable[[], list[str]] = list
    prepare: Callable[[], Awaitable[None]] | None = None  # e.g. load instruments before connect
    # What the parser skipped inside frames it used (the parse function fills it).
    tally: Tally = field(default_factory=Tally)
    control: Callable[[Any], Control | None] | None = None  # refused subscriptions, notices
    symbols: Callable[[], int] = int  # instruments covered, for status
    # Reloads the instrument list when a push names instruments it lacks (`tally.unknown`).
    reload: Callable[[], Awaitable[None]] | None = None
    # A connection with no topics to subscribe waits for some instead of connecting (a Bybit
    # shard before new listings reach it).
    idle_without_topics: bool = False
    # A frame that proves the feed alive though it carries no liquidation (Deribit's ordinary
    # trades: its liquidations are rare flags on them). Without it only liquidations count.
    is_feed: Callable[[Any], bool] | None = None
    ping_frame: str | None = None
    ping_interval: float | None = None  # send ping_frame this often (Bybit)
    ping_when_idle: float | None = None  # send ping_frame after this long without input (OKX)
    pong_frame: str | None = None  # a plain-text (non-JSON) pong


class StreamSilent(Exception):
    pass


class VenueNotice(Exception):
    """The venue announced that it will cut the connection (OKX notice 64008)."""


class Collector:
    def __init__(
        self,
        spec: StreamSpec,
        session: aiohttp.ClientSession,
        exchange: ExchangeSettings,
        settings: CollectorSettings,
        on_events: Callable[[list[Liquidation]], None],
        on_gap: Callable[[Gap], None],
        gap_since: int | None = None,
    ) -> None:
        self.spec = spec
        self.session = session
        self.silence_timeout = exchange.silence_timeout
        self.settings = settings
        self.on_events = on_events
        self.on_gap = on_gap
        self.health = SourceHealth(spec.venue)
        self._gap_since = gap_since
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._parse_error_logged = False
        self._topics_added = asyncio.Event()
        self._replies: list[str] = []  # control frames asked for an answer (heartbeats)
        self.health_changed = asyncio.Event()  # set on every update of `health`; for waiters

    def current_health(self) -> SourceHealth:
        """`health`, with the instruments covered counted now (a list reload changes them)."""
        self.health.symbols = self.spec.symbols()
        return self.health

    async def send(self, frames: list[str]) -> None:
        """Send frames on the live connection (new subscriptions); while disconnected the next
        connection subscribes to everything anyway (and an idle one is woken to do so)."""
        self.health.symbols = self.spec.symbols()
        if frames:
            self._topics_added.set()
        if self._ws is not None and not self._ws.closed:
            for frame in frames:
                await self._ws.send_str(frame)

    async def run(self) -> None:
        """Keep the stream connected until cancelled."""
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                await self._connect_and_receive()
                reason = "connection recycled" if self._recycled(started) else "closed by venue"
            except StreamSilent:
                reason = f"silent for {self.silence_timeout:.0f} s"
            except VenueNotice as notice:
                log.warning("%s: %s; reconnecting now", self.spec.venue, notice)
                reason = "connection recycled"
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                reason = f"{type(error).__name__}: {error}"
            except RestError as error:
                reason = f"cannot load instruments: {error}"
            except MALFORMED as error:
                reason = f"unexpected instruments payload: {error!r}"
            finally:
                self._on_disconnect()
            if time.monotonic() - started >= HEALTHY_AFTER:
                attempt = 0
            if reason == "connection recycled":
                continue
            delay = self._backoff(attempt)
            attempt += 1
            self._on_retry(reason, delay)
            log.warning(
                "%s: %s; reconnecting in %.1f s (attempt %d)",
                self.spec.venue,
                reason,
                delay,
                attempt,
            )
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.settings.reconnect_max, self.settings.reconnect_min * 2**attempt)
        return float(ceiling * random.uniform(0.5, 1.0))

    def _recycled(self, started: float) -> bool:
        return time.monotonic() - started >= self.settings.recycle_after

    def _on_retry(self, reason: str, delay: float) -> None:
        health = self.health
        now = now_ms()
        if health.retrying_since is None:
            health.retrying_since = now
        health.last_error = reason
        health.next_attempt_at = now + int(delay * 1000)
        self.health_changed.set()

    def _on_disconnect(self) -> None:
        self._replies.clear()
        if self.health.connected:
            self.health.connected = False
            self._gap_since = now_ms()
        self._ws = None

    async def _connect_and_receive(self) -> None:
        if self.spec.prepare is not None:
            await self.spec.prepare()
        self.health.symbols = self.spec.symbols()
        while self.spec.idle_without_topics and not self.spec.subscribe_frames():
            self._topics_added.clear()
            await self._topics_added.wait()
        async with self.session.ws_connect(
            self.spec.url, autoping=True, max_msg_size=MAX_FRAME_BYTES, timeout=CONNECT_TIMEOUT
        ) as ws:
            self._ws = ws
            for frame in self.spec.subscribe_frames():
                await ws.send_str(frame)
            self._on_connect()
            await self._receive(ws)

    def _on_connect(self) -> None:
        health = self.health
        if self._gap_since is not None:
            self.on_gap(Gap(self.spec.venue, self._gap_since, now_ms()))
            health.reconnects += 1
        health.connected = True
        health.retrying_since = health.last_error = health.next_attempt_at = None
        self.health_changed.set()
        self._gap_since = None
        self._parse_error_logged = False
        log.info("%s: connected to %s", self.spec.venue, self.spec.url)

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        spec = self.spec
        # Liveness counts liquidations only: a server that answers pings while its feed is dead
        # (Binance's old /ws base does exactly that) must still be replaced.
        opened = last_input = last_data = last_ping = time.monotonic()
        recycle_at = opened + self.settings.recycle_after
        while True:
            now = time.monotonic()
            deadlines = [last_data + self.silence_timeout, recycle_at]
            if spec.ping_interval:
                deadlines.append(last_ping + spec.ping_interval)
            if spec.ping_when_idle:
                deadlines.append(max(last_input, last_ping) + spec.ping_when_idle)
            try:
                message = await ws.receive(timeout=max(0.0, min(deadlines) - now))
            except TimeoutError:
                message = None
            now = time.monotonic()
            if message is not None:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    if message.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.ERROR,
                    ):
                        return
                    continue
                last_input = now
                if self._handle_text(message.data):
                    last_data = now
                while self._replies:
                    await ws.send_str(self._replies.pop(0))
                if spec.tally.unknown and spec.reload is not None:
                    await spec.reload()  # a push named instruments newer than the list
            if now - last_data >= self.silence_timeout:
                raise StreamSilent
            if now >= recycle_at:
                return
            if spec.ping_frame and (
                (spec.ping_interval and now - last_ping >= spec.ping_interval)
                or (spec.ping_when_idle and now - max(last_input, last_ping) >= spec.ping_when_idle)
            ):
                await ws.send_str(spec.ping_frame)
                last_ping = now

    def _handle_text(self, text: str) -> bool:
        """Count and parse one frame; True when it carried liquidations (or, with `is_feed`, other
        feed data). Queues the replies a control frame asks for; raises VenueNotice when the
        venue announces a cut."""
        health = self.health
        spec = self.spec
        received = now_ms()
        self.health_changed.set()
        health.messages += 1
        health.last_message_at = received
        if text == spec.pong_frame:
            health.ignored += 1
            return False
        try:
            frame = orjson.loads(text)  # a third of json.loads' time (bench/ingest.py)
        except ValueError:
            self._on_malformed(text)
            return False
        tally = spec.tally
        events = spec.parse(frame, received)
        if tally.malformed or tally.ignored:
            health.parse_errors += tally.malformed
            health.ignored += tally.ignored
            tally.malformed = tally.ignored = 0
        elif events == []:
            health.ignored += 1
        if events is None:
            self._on_malformed(text)
            return False
        if not events:
            if spec.control is not None and isinstance(frame, dict):
                self._on_control(spec.control(frame))
            return spec.is_feed is not None and spec.is_feed(frame)
        self.on_events(events)
        return True

    def _on_malformed(self, text: str) -> None:
        self.health.parse_errors += 1
        if not self._parse_error_logged:
            self._parse_error_logged = True
            log.warning(
                "%s: skipped a malformed frame (further ones are counted, not logged): %.200s",
                self.spec.venue,
                text,
            )

    def _on_control(self, control: Control | None) -> None:
        if control is None:
            return
        if control.refused:
            self.health.refused += len(control.refused)
            log.error(
                "%s: the venue refused %d subscription(s): %.300s",
                self.spec.venue,
                len(control.refused),
                ", ".join(control.refused),
            )
        self._replies += control.reply
        if control.reconnect:
            raise VenueNotice(control.reconnect)


async def send_new(collectors: list[Collector], frames: list[list[str]]) -> None:
    """Hand each of a venue's connections its subscribe frames for new listings."""
    for collector, own in zip(collectors, frames, strict=True):
        await collector.send(own)
