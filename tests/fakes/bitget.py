"""Fake Bitget: the v3 public socket's ``liquidation`` topic, v2 mix REST."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from aiohttp import web

from .server import JSON, Connection, FakeVenue, json_response, parse_object

TOPIC = "liquidation:usdt-futures"
"""How the USDT-M liquidation subscription is named in ``subscribed_topics()``."""


def liquidation_push(
    symbol: str, side: Literal["buy", "sell"], price: str, amount: str, ts_ms: int
) -> JSON:
    """A push: ``side`` is the position side, ``amount`` the USDT value."""
    return {
        "action": "update",
        "arg": {"instType": "usdt-futures", "topic": "liquidation"},
        "data": [
            {"symbol": symbol, "side": side, "price": price, "amount": amount, "ts": str(ts_ms)}
        ],
        "ts": ts_ms + 10,
    }


class FakeBitget(FakeVenue):
    """Bitget fake.

    WS ``/v3/ws/public``: text ``ping`` gets ``pong`` (counted in ``pings_received``);
    subscribing to ``{"instType": "usdt-futures", "topic": "liquidation"}`` is acked, any other
    arg gets an ``error`` event. With ``idle_timeout`` set, a client that sent nothing for that
    long is dropped (Bitget drops clients that stop pinging).

    REST ``/api/v2/mix/market/contracts``, ``current-fund-rate`` and ``tickers`` for
    ``productType=USDT-FUTURES``, in the ``{"code": "00000", ...}`` envelope.
    """

    def __init__(self, idle_timeout: float | None = None) -> None:
        super().__init__(idle_timeout)
        self.contracts: dict[str, JSON] = {}
        self.tickers: dict[str, JSON] = {}
        self.intervals: dict[str, JSON] = {}
        self.pings_received = 0
        self.app.router.add_get("/v3/ws/public", self._serve_ws)
        self._add_rest("/api/v2/mix/market/contracts", self._contracts)
        self._add_rest("/api/v2/mix/market/current-fund-rate", self._fund_rate)
        self._add_rest("/api/v2/mix/market/tickers", self._tickers)

    def add_contract(
        self, symbol: str, base: str, symbol_type: str = "perpetual", status: str = "normal"
    ) -> None:
        self.contracts[symbol] = {
            "symbol": symbol,
            "productType": "USDT-FUTURES",
            "symbolType": symbol_type,
            "symbolStatus": status,
            "baseCoin": base,
            "quoteCoin": "USDT",
        }

    def set_ticker(
        self, symbol: str, mark_price: str, funding_rate: str, holding: str, interval_h: int = 8
    ) -> None:
        self.tickers[symbol] = {
            "symbol": symbol,
            "markPrice": mark_price,
            "fundingRate": funding_rate,
            "holdingAmount": holding,
            "ts": str(self.clock()),
        }
        self.intervals[symbol] = {
            "symbol": symbol,
            "fundingRate": funding_rate,
            "fundingRateInterval": str(interval_h),
        }

    def _topic(self, frame: JSON) -> str | None:
        arg = frame.get("arg") or {}
        return f"{arg.get('topic')}:{arg.get('instType')}"

    async def _on_text(self, conn: Connection, text: str) -> None:
        if text == "ping":
            self.pings_received += 1
            await self._reply(conn, "pong")
            return
        request = parse_object(text)
        if request is None or request.get("op") != "subscribe":
            return
        for arg in request.get("args", []):
            if arg == {"instType": "usdt-futures", "topic": "liquidation"}:
                conn.topics.add(TOPIC)
                await self._reply(conn, {"event": "subscribe", "arg": arg})
            else:
                message = f"instType:{arg.get('instType')},topic:{arg.get('topic')} doesn't exist"
                await self._reply(
                    conn, {"event": "error", "arg": arg, "code": 30001, "msg": message}
                )

    def _envelope(self, query: Mapping[str, str], rows: list[JSON]) -> web.Response:
        data = rows if query.get("productType") == "USDT-FUTURES" else []
        return json_response(
            {"code": "00000", "msg": "success", "requestTime": self.clock(), "data": data}
        )

    def _contracts(self, query: Mapping[str, str]) -> web.Response:
        return self._envelope(query, list(self.contracts.values()))

    def _fund_rate(self, query: Mapping[str, str]) -> web.Response:
        return self._envelope(query, list(self.intervals.values()))

    def _tickers(self, query: Mapping[str, str]) -> web.Response:
        return self._envelope(query, list(self.tickers.values()))
