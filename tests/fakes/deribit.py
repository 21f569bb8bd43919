"""Fake Deribit: JSON-RPC 2.0 over WS (trades channels, heartbeats) and book summaries over REST."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .server import JSON, Connection, FakeVenue, json_response, parse_object

RAW_REFUSED = {
    "code": 13778,
    "message": "raw_subscriptions_not_available_for_unauthorized",
}
TEST_REQUEST = {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}


def trade(
    instrument: str,
    direction: str,
    amount: float,
    price: float,
    ts_ms: int,
    liquidation: str | None = None,
) -> JSON:
    """One public trade; ``liquidation`` is "M", "T", "MT" or absent."""
    row: JSON = {
        "trade_seq": 1,
        "trade_id": "1",
        "timestamp": ts_ms,
        "tick_direction": 0,
        "price": price,
        "mark_price": price,
        "index_price": price,
        "instrument_name": instrument,
        "direction": direction,
        "amount": amount,
    }
    if liquidation:
        row["liquidation"] = liquidation
    return row


def trades(channel: str, rows: list[JSON]) -> JSON:
    return {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": channel, "data": rows},
    }


class FakeDeribit(FakeVenue):
    """Deribit fake.

    WS ``/ws/api/v2``: ``public/set_heartbeat`` turns heartbeats on for the connection;
    ``send_test_requests()`` sends a ``test_request`` to every such connection, and each
    ``public/test`` answer is counted in ``tests_answered``. ``public/subscribe`` subscribes to
    every channel named, unless one of them is a ``.raw`` channel: then the whole request is
    refused with error 13778, as Deribit refuses unauthenticated raw subscriptions.

    REST ``/api/v2/public/get_book_summary_by_currency?currency=&kind=future``: the rows added
    for that currency, in the JSON-RPC envelope.
    """

    def __init__(self, idle_timeout: float | None = None) -> None:
        super().__init__(idle_timeout)
        self.summaries: dict[str, list[JSON]] = {}
        self.tests_answered = 0
        self.refused_requests = 0
        self._heartbeats: set[web.WebSocketResponse] = set()  # connections that asked for them
        self.app.router.add_get("/ws/api/v2", self._serve_ws)
        self._add_rest("/api/v2/public/get_book_summary_by_currency", self._book_summary)

    def add_summary(
        self,
        currency: str,
        instrument: str,
        mark_price: float,
        open_interest: float,
        funding_8h: float,
    ) -> None:
        self.summaries.setdefault(currency, []).append(
            {
                "instrument_name": instrument,
                "mark_price": mark_price,
                "open_interest": open_interest,
                "funding_8h": funding_8h,
                "current_funding": funding_8h / 8,
                "base_currency": instrument.split("-")[0].split("_")[0],
                "quote_currency": "USD",
                "creation_timestamp": self.clock(),
            }
        )

    async def send_test_requests(self) -> int:
        """Send a heartbeat test_request to each connection that asked for heartbeats."""
        live = [
            c for ws, c in self._connections.items() if ws in self._heartbeats and not ws.closed
        ]
        for conn in live:
            await self._reply(conn, TEST_REQUEST)
        return len(live)

    def _topic(self, frame: JSON) -> str | None:
        params = frame.get("params") or {}
        return str(params.get("channel"))

    async def _on_text(self, conn: Connection, text: str) -> None:
        request = parse_object(text)
        if request is None:
            return
        method, params, id_ = request.get("method"), request.get("params") or {}, request.get("id")
        now_us = self.clock() * 1000
        envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "usIn": now_us, "usOut": now_us}
        if method == "public/set_heartbeat":
            self._heartbeats.add(conn.ws)
            await self._reply(conn, {**envelope, "result": "ok"})
        elif method == "public/test":
            self.tests_answered += 1
            await self._reply(conn, {**envelope, "result": {"version": "1.2.26"}})
        elif method == "public/subscribe":
            channels = list(params.get("channels", []))
            if any(channel.endswith(".raw") for channel in channels):
                self.refused_requests += 1
                await self._reply(conn, {**envelope, "error": RAW_REFUSED})
                return
            conn.topics |= set(channels)
            await self._reply(conn, {**envelope, "result": channels})

    def _book_summary(self, query: Mapping[str, str]) -> web.Response:
        rows = (
            self.summaries.get(query.get("currency", ""), [])
            if query.get("kind") == "future"
            else []
        )
        return json_response({"jsonrpc": "2.0", "result": rows, "usIn": 0, "usOut": 0, "usDiff": 0})
