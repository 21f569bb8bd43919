"""Shared machinery for the in-process fake exchange servers.

Each fake is an aiohttp application on 127.0.0.1 with an OS-chosen port. The
base class owns everything the venues have in common: the server lifecycle,
websocket bookkeeping and broadcasting, the REST request log, fault
injection, and one asyncio.Condition that is notified on every state change,
so tests wait on events (``wait_until``) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

JSON = dict[str, Any]
"""A decoded JSON object."""

RestHandler = Callable[[Mapping[str, str]], web.Response]
"""Answers one REST call from its query parameters."""

_CLOSE_TIMEOUT = 2.0
"""Seconds the server waits for a client's close reply (aiohttp's default is 10)."""


def dumps(payload: object) -> str:
    """Compact JSON, as the exchanges send it."""
    return json.dumps(payload, separators=(",", ":"))


def parse_object(text: str) -> JSON | None:
    """A client's JSON object, or None for anything else (ignored, not crashed on)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def next_settlement_ms(now_ms: int, interval_hours: int) -> int:
    """The first funding settlement after ``now_ms`` on an ``interval_hours`` grid."""
    period = interval_hours * 3_600_000
    return (now_ms // period + 1) * period


def json_response(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        text=dumps(payload),
        status=status,
        content_type="application/json",
    )


@dataclass
class Connection:
    """Server-side state of one websocket client."""

    ws: web.WebSocketResponse
    conn_id: str
    topics: set[str] = field(default_factory=set)
    wrap: Callable[[JSON], JSON] | None = None
    """Envelope applied to every pushed frame (Binance combined streams)."""


@dataclass(frozen=True)
class _Fault:
    status: int
    headers: Mapping[str, str]
    body: str | JSON | None

    def response(self) -> web.Response:
        if isinstance(self.body, dict):
            response = json_response(self.body, self.status)
        else:
            response = web.Response(status=self.status, text=self.body or "")
        response.headers.update(self.headers)
        return response


class FakeVenue:
    """Base of the venue fakes; subclasses add routes in ``__init__``.

    Attributes tests may read or set:
      silent: accept websocket connections and track subscriptions, but never
        send application data (no pushes, acks or app-level pongs).
      connections_accepted: websocket handshakes completed, ever.
      pongs_received: websocket PONG control frames received (see ping_clients).
      requests: every REST call as (path, query), in arrival order.
      clock: milliseconds "now" used in REST payloads; replace for determinism.
      wait_timeout: seconds the ``wait_*`` methods wait before TimeoutError.
    """

    def __init__(self, idle_timeout: float | None = None) -> None:
        self.app = web.Application()
        self.silent = False
        self.connections_accepted = 0
        self.pongs_received = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.clock: Callable[[], int] = lambda: int(time.time() * 1000)
        self.wait_timeout = 5.0
        self._idle_timeout = idle_timeout
        self._connections: dict[web.WebSocketResponse, Connection] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Listen on an OS-chosen port; after ``stop``, on the same port again (an outage)."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=_CLOSE_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port or 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self.drop_clients()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._started_port()}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self._started_port()}"

    def _started_port(self) -> int:
        if self._port is None:
            raise RuntimeError("fake venue not started")
        return self._port

    # -- waiting ---------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; it is re-checked on every state change.

        Gives up with TimeoutError after ``wait_timeout`` seconds; for a shorter
        limit wrap the call in ``asyncio.timeout``.
        """
        async with asyncio.timeout(self.wait_timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_for_connections(self, n: int) -> None:
        """Wait until ``n`` websocket connections were accepted in total."""
        await self.wait_until(lambda: self.connections_accepted >= n)

    async def wait_for_subscribed(self, topics: Iterable[str]) -> None:
        """Wait until live connections are subscribed to all ``topics`` together."""
        wanted = set(topics)
        await self.wait_until(lambda: wanted <= self.subscribed_topics())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- websocket -------------------------------------------------------------

    @property
    def clients(self) -> set[web.WebSocketResponse]:
        """Open server-side websockets."""
        return set(self._connections)

    def subscribed_topics(self) -> set[str]:
        """Union of the topics of all live connections."""
        return set().union(*(c.topics for c in self._connections.values()))

    async def push(self, frame: JSON | str) -> int:
        """Send ``frame`` to each live client subscribed to it; return how many got it.

        A dict goes as JSON to connections subscribed to its topic (see
        ``_topic``); a str goes verbatim to every connection with any
        subscription, for malformed-frame tests.
        """
        if self.silent:
            return 0
        sent = 0
        for conn in list(self._connections.values()):
            text = self._render(conn, frame)
            if text is None or conn.ws.closed:
                continue
            try:
                await conn.ws.send_str(text)
            except ConnectionError:
                continue
            sent += 1
        return sent

    async def ping_clients(self) -> None:
        """Send a websocket PING control frame to every client."""
        for ws in self.clients:
            if not ws.closed:
                await ws.ping()

    async def drop_clients(self) -> None:
        """Close every websocket connection from the server side."""
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"bye") for ws in self.clients)
        )

    def _topic(self, frame: JSON) -> str | None:
        """The topic a pushed frame belongs to, or None to reach every subscriber."""
        raise NotImplementedError

    def _render(self, conn: Connection, frame: JSON | str) -> str | None:
        if not conn.topics:
            return None
        if isinstance(frame, str):
            return frame
        topic = self._topic(frame)
        if topic is not None and topic not in conn.topics:
            return None
        return dumps(conn.wrap(frame) if conn.wrap else frame)

    async def _serve_ws(
        self,
        request: web.Request,
        topics: Iterable[str] = (),
        wrap: Callable[[JSON], JSON] | None = None,
    ) -> web.WebSocketResponse:
        """Run one websocket connection until either side closes it.

        autoping is off so that PONGs reach us (to count them); PINGs from the
        client are answered here instead, silent or not, as a real server's
        protocol layer would.
        """
        ws = web.WebSocketResponse(autoping=False, timeout=_CLOSE_TIMEOUT)
        await ws.prepare(request)
        conn = Connection(ws, uuid.uuid4().hex[:20], set(topics), wrap)
        self._connections[ws] = conn
        self.connections_accepted += 1
        await self._notify()
        try:
            while (msg := await self._receive(ws)) is not None:
                await self._dispatch(conn, msg)
        finally:
            del self._connections[ws]
            await self._notify()
        return ws

    async def _receive(self, ws: web.WebSocketResponse) -> WSMessage | None:
        """Next message, or None once the connection is over (or idled out)."""
        try:
            msg = await ws.receive(timeout=self._idle_timeout)
        except TimeoutError:
            await ws.close(code=4004, message=b"No data received in 30s.")
            return None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None
        return msg

    async def _dispatch(self, conn: Connection, msg: WSMessage) -> None:
        if msg.type is WSMsgType.PING:
            await conn.ws.pong(msg.data)
        elif msg.type is WSMsgType.PONG:
            self.pongs_received += 1
        elif msg.type is WSMsgType.TEXT:
            await self._on_text(conn, msg.data)
        await self._notify()

    async def _on_text(self, conn: Connection, text: str) -> None:
        """Handle a text frame from a client; the default ignores it."""

    async def _reply(self, conn: Connection, message: JSON | str) -> None:
        """Answer a client (ack, pong) unless the venue is silent."""
        if self.silent or conn.ws.closed:
            return
        await conn.ws.send_str(message if isinstance(message, str) else dumps(message))

    # -- REST --------------------------------------------------------------------

    def fail_next(
        self,
        path: str,
        status: int,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: str | JSON | None = None,
    ) -> None:
        """Make the next ``times`` calls to ``path`` answer ``status`` instead.

        ``body`` is sent as JSON if a dict, verbatim if a str, empty if None.
        Calls queue up: two fail_next on one path fail the next two calls.
        """
        fault = _Fault(status, dict(headers or {}), body)
        self._faults.setdefault(path, deque()).extend([fault] * times)

    def _add_rest(self, path: str, handler: RestHandler) -> None:
        """Route GET ``path`` through the request log and fault injection."""

        async def endpoint(request: web.Request) -> web.Response:
            self.requests.append((request.path, dict(request.query)))
            faults = self._faults.get(request.path)
            response = faults.popleft().response() if faults else handler(request.query)
            self._on_rest_response(request, response)
            await self._notify()
            return response

        self.app.router.add_get(path, endpoint)

    def _on_rest_response(self, request: web.Request, response: web.Response) -> None:
        """Hook to decorate every REST response, injected faults included."""
