"""Fake OKX v5: ``liquidation-orders`` over WS, instruments, funding and open interest over REST."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Literal

from aiohttp import web

from .server import JSON, Connection, FakeVenue, json_response, parse_object

CHANNEL = "liquidation-orders"
SWAP_ARG = {"channel": CHANNEL, "instType": "SWAP"}
RATE_LIMITED: JSON = {"code": "50011", "msg": "Too Many Requests", "data": []}
UPGRADE_NOTICE = "The connection will soon be closed for a service upgrade. Please reconnect."
"""Body of OKX's HTTP 429, for ``fail_next(path, 429, body=RATE_LIMITED)``."""


def topic_key(arg: Mapping[str, object]) -> str:
    """How subscriptions are named in ``subscribed_topics()``: ``channel:instType``."""
    return f"{arg.get('channel')}:{arg.get('instType')}"


def detail(
    side: Literal["buy", "sell"],
    pos_side: Literal["long", "short", "net"],
    sz: str,
    bk_px: str,
    ts_ms: int,
    bk_loss: str = "0",
) -> JSON:
    """One entry of a push's ``details``; ``sz`` is in contracts (see ``ctVal``)."""
    return {
        "side": side,
        "posSide": pos_side,
        "sz": sz,
        "bkPx": bk_px,
        "bkLoss": bk_loss,
        "ccy": "",
        "ts": str(ts_ms),
    }


def liquidation_orders(inst_id: str, details: list[JSON]) -> JSON:
    """A ``liquidation-orders`` push for one SWAP instrument."""
    family = inst_id.removesuffix("-SWAP")
    return {
        "arg": dict(SWAP_ARG),
        "data": [
            {
                "instId": inst_id,
                "instType": "SWAP",
                "instFamily": family,
                "uly": family,
                "details": details,
            }
        ],
    }


class FakeOkx(FakeVenue):
    """OKX v5 fake.

    WS ``/ws/v5/public``: text ``ping`` gets ``pong`` (counted in
    ``pings_received``); subscribing to ``liquidation-orders`` is acked per
    arg, any other channel gets error 60018. With ``idle_timeout`` set, a
    connection that sent nothing for that long is closed with code 4004
    (OKX does so after 30 s; tests pass a fraction of a second).

    ``announce_upgrade`` sends notice 64008 to every client and cuts the
    connections that are still open after a delay, as OKX does before a
    service upgrade.

    REST ``/api/v5/public/instruments`` (SWAP, any ``state``), ``funding-rate``
    (``instId=ANY`` for all: X-Perps ``FUTURES`` rows added with ``add_x_perp``
    come along, as on the real venue) and ``open-interest``, in the
    ``{"code","msg","data"}`` envelope.
    """

    def __init__(self, idle_timeout: float | None = None) -> None:
        super().__init__(idle_timeout)
        self.instruments: dict[str, JSON] = {}
        self.funding: dict[str, JSON] = {}
        self.open_interest: dict[str, JSON] = {}
        self.pings_received = 0
        self._cuts: set[asyncio.Task[None]] = set()
        self.app.router.add_get("/ws/v5/public", self._serve_ws)
        self._add_rest("/api/v5/public/instruments", self._instruments)
        self._add_rest("/api/v5/public/funding-rate", self._funding_rate)
        self._add_rest("/api/v5/public/open-interest", self._open_interest)

    def add_instrument(
        self,
        inst_id: str,
        ct_val: str,
        ct_type: Literal["linear", "inverse"] = "linear",
        state: str = "live",
    ) -> None:
        """Add a swap such as ``BTC-USDT-SWAP`` (linear) or ``BTC-USD-SWAP`` (inverse)."""
        base, quote = inst_id.split("-")[:2]
        linear = ct_type == "linear"
        self.instruments[inst_id] = {
            "instId": inst_id,
            "instType": "SWAP",
            "uly": f"{base}-{quote}",
            "instFamily": f"{base}-{quote}",
            "ctVal": ct_val,
            "ctMult": "1",
            "ctValCcy": base if linear else quote,
            "ctType": ct_type,
            "settleCcy": quote if linear else base,
            "state": state,
        }

    def add_x_perp(self, inst_id: str, rate: str, funding_time_ms: int, next_ms: int) -> None:
        """An X-Perps futures row (``instType`` FUTURES) in ``funding-rate?instId=ANY``."""
        self.set_funding(inst_id, rate, funding_time_ms, next_ms)
        self.funding[inst_id]["instType"] = "FUTURES"

    async def announce_upgrade(self, cut_after: float) -> None:
        """Send notice 64008 to every client; close the connections then open (the
        ones that did not reconnect) ``cut_after`` seconds later."""
        notice = {"event": "notice", "code": "64008", "msg": UPGRADE_NOTICE}
        warned = list(self._connections.values())
        for conn in warned:
            await self._reply(conn, {**notice, "connId": conn.conn_id})

        async def cut() -> None:
            await asyncio.sleep(cut_after)
            for conn in warned:
                await conn.ws.close(code=1001, message=b"service upgrade")

        task = asyncio.create_task(cut())
        self._cuts.add(task)
        task.add_done_callback(self._cuts.discard)

    def set_funding(
        self, inst_id: str, rate: str, funding_time_ms: int, next_funding_time_ms: int
    ) -> None:
        self.funding[inst_id] = {
            "instId": inst_id,
            "instType": "SWAP",
            "fundingRate": rate,
            "fundingTime": str(funding_time_ms),
            "nextFundingTime": str(next_funding_time_ms),
            "method": "current_period",
        }

    def set_open_interest(self, inst_id: str, oi: str, oi_ccy: str, oi_usd: str) -> None:
        self.open_interest[inst_id] = {
            "instId": inst_id,
            "instType": "SWAP",
            "oi": oi,
            "oiCcy": oi_ccy,
            "oiUsd": oi_usd,
        }

    async def stop(self) -> None:
        for task in list(self._cuts):
            task.cancel()
        await asyncio.gather(*self._cuts, return_exceptions=True)
        await super().stop()

    def _topic(self, frame: JSON) -> str | None:
        arg = frame.get("arg")
        return topic_key(arg) if isinstance(arg, dict) else None

    async def _on_text(self, conn: Connection, text: str) -> None:
        if text == "ping":
            self.pings_received += 1
            await self._reply(conn, "pong")
            return
        request = parse_object(text)
        if request is None or request.get("op") != "subscribe":
            return
        for arg in request.get("args", []):
            if arg.get("channel") == CHANNEL:
                conn.topics.add(topic_key(arg))
                await self._reply(conn, {"event": "subscribe", "arg": arg, "connId": conn.conn_id})
            else:
                message = (
                    f"Wrong URL or channel:{arg.get('channel')},instType:{arg.get('instType')}"
                    " doesn't exist. Please use the correct URL, channel and parameters"
                    " referring to API document."
                )
                error = {"event": "error", "code": "60018", "msg": message}
                await self._reply(conn, {**error, "connId": conn.conn_id})

    def _envelope(self, data: list[JSON]) -> web.Response:
        return json_response({"code": "0", "msg": "", "data": data})

    def _stamped(self, entries: Mapping[str, JSON], inst_id: str = "ANY") -> list[JSON]:
        """Entries (all, or one instId) with the response time ``ts``."""
        ts = str(self.clock())
        return [{**e, "ts": ts} for i, e in entries.items() if inst_id in ("ANY", i)]

    def _instruments(self, query: Mapping[str, str]) -> web.Response:
        swaps = query.get("instType") == "SWAP"
        return self._envelope(list(self.instruments.values()) if swaps else [])

    def _funding_rate(self, query: Mapping[str, str]) -> web.Response:
        return self._envelope(self._stamped(self.funding, query.get("instId", "")))

    def _open_interest(self, query: Mapping[str, str]) -> web.Response:
        swaps = query.get("instType") == "SWAP"
        return self._envelope(self._stamped(self.open_interest) if swaps else [])
