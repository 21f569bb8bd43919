"""Websocket connection loops for the liquidation streams.

One `Collector` per venue keeps one connection alive: it subscribes, answers the venue's
keep-alive, treats a connection that stays silent as broken (a socket can be open while the feed
is dead: Binance's old `/ws` base does exactly that), reconnects with capped, jittered
exponential backoff, and records every gap in which nothing could be received.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from bot.config import CollectorSettings, ExchangeSettings
from bot.events import Gap, Liquidation, SourceHealth
from bot.recorder import now_ms
from bot.rest import RestError
from bot.venues.common import MALFORMED

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
    ping_frame: str | None = None
    ping_interval: float | None = None  # send ping_frame this often (Bybit)
    ping_when_idle: float | None = None  # send ping_frame after this long without input (OKX)
    pong_frame: str | None = None  # a plain-text (non-JSON) pong


class StreamSilent(Exception):
    pass


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

    async def send(self, frames: list[str]) -> None:
        """Send frames on the live connection (new subscriptions); no-op while disconnected:
        the next connection subscribes to everything anyway."""
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

    def _on_disconnect(self) -> None:
        if self.health.connected:
            self.health.connected = False
            self._gap_since = now_ms()
        self._ws = None

    async def _connect_and_receive(self) -> None:
        if self.spec.prepare is not None:
            await self.spec.prepare()
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
        """Count and parse one frame; True when it carried liquidations."""
        health = self.health
        received = now_ms()
        health.messages += 1
        health.last_message_at = received
        if text == self.spec.pong_frame:
            return False
        try:
            frame = orjson.loads(text)  # a third of json.loads' time (bench/ingest.py)
        except ValueError:
            events = None
        else:
            events = self.spec.parse(frame, received)
        if events is None:
            health.parse_errors += 1
            if not self._parse_error_logged:
                self._parse_error_logged = True
                log.warning(
                    "%s: skipped a malformed or unexpected frame (further ones are "
                    "counted, not logged): %.200s",
                    self.spec.venue,
                    text,
                )
            return False
        if events:
            self.on_events(events)
        return bool(events)
