"""Fake Gate futures v4 (USDT settle): `futures.public_liquidates` over WS, contracts by REST."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from .server import JSON, Connection, FakeVenue, json_response, parse_object

CHANNEL = "futures.public_liquidates"
ALL = f"{CHANNEL}:!all"
"""How the all-contract subscription is named in ``subscribed_topics()``."""


def liquidate(contract: str, size: str, price: str, time_ms: int) -> JSON:
    """One liquidation order: ``size`` in contracts, negative = a sell (a long liquidated)."""
    return {"price": price, "size": size, "time": time_ms, "contract": contract}


def public_liquidates(orders: list[JSON], time_ms: int) -> JSON:
    """A push: since 2026-08-20 all of one contract's liquidation orders of the period."""
    return {
        "channel": CHANNEL,
        "event": "update",
        "time": time_ms // 1000,
        "time_ms": time_ms,
        "result": orders,
    }


class FakeGate(FakeVenue):
    """Gate futures fake.

    WS ``/v4/ws/usdt``: ``{"channel": "futures.public_liquidates", "event": "subscribe",
    "payload": [...]}`` is acked with ``result.status`` success; any other channel gets an
    ``error`` reply. ``futures.ping`` gets ``futures.pong`` (counted in ``pings_received``).
    The server's keep-alive is websocket PINGs: ``ping_clients()``, answers counted in
    ``pongs_received``.

    REST ``/api/v4/futures/usdt/contracts``: every contract added, with funding and one-side
    open interest (``position_size``); times in seconds, as Gate sends them.
    """

    def __init__(self, idle_timeout: float | None = None) -> None:
        super().__init__(idle_timeout)
        self.contracts: dict[str, JSON] = {}
        self.pings_received = 0
        self.app.router.add_get("/v4/ws/usdt", self._serve_ws)
        self._add_rest("/api/v4/futures/usdt/contracts", self._contracts)

    def add_contract(
        self,
        name: str,
        multiplier: str,
        mark_price: str,
        funding_rate: str = "0.0001",
        funding_interval_s: int = 28_800,
        position_size: int = 0,
        in_delisting: bool = False,
    ) -> None:
        self.contracts[name] = {
            "name": name,
            "type": "direct",
            "quanto_multiplier": multiplier,
            "mark_price": mark_price,
            "funding_rate": funding_rate,
            "funding_interval": funding_interval_s,
            "funding_next_apply": (self.clock() // 1000 // funding_interval_s + 1)
            * funding_interval_s,
            "position_size": position_size,
            "in_delisting": in_delisting,
            "status": "delisting" if in_delisting else "trading",
        }

    def _topic(self, frame: JSON) -> str | None:
        return ALL if frame.get("channel") == CHANNEL else None

    async def _on_text(self, conn: Connection, text: str) -> None:
        request = parse_object(text)
        if request is None:
            return
        now = self.clock()
        header = {"time": now // 1000, "time_ms": now, "channel": request.get("channel")}
        if request.get("channel") == "futures.ping":
            self.pings_received += 1
            await self._reply(
                conn, {**header, "channel": "futures.pong", "event": "", "result": None}
            )
            return
        if request.get("event") != "subscribe":
            return
        if request.get("channel") == CHANNEL:
            conn.topics |= {f"{CHANNEL}:{c}" for c in request.get("payload", [])}
            ack = {**header, "event": "subscribe", "error": None, "result": {"status": "success"}}
            await self._reply(conn, ack)
        else:
            error = {"code": 1, "message": f"unknown channel {request.get('channel')}"}
            await self._reply(
                conn, {**header, "event": "subscribe", "error": error, "result": None}
            )

    def _contracts(self, query: Mapping[str, str]) -> web.Response:
        return json_response(list(self.contracts.values()))
