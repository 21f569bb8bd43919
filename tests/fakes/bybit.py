"""Fake Bybit v5 linear: ``allLiquidation`` over WS, instruments-info and tickers over REST."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Literal
from urllib.parse import unquote

from aiohttp import web

from .server import (
    JSON,
    Connection,
    FakeVenue,
    json_response,
    next_settlement_ms,
    parse_object,
)

TOPIC_PREFIX = "allLiquidation."
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
ARGS_LIMIT = 21_000
"""Docs: "for one public connection, you cannot have length of "args" array over
21,000 characters"; counted here as the summed length of the topics."""

Side = Literal["Buy", "Sell"]
Entry = tuple[Side, str, str, int]
"""One extra liquidation: (side, size, price, ts_ms)."""


def all_liquidation(
    symbol: str, side: Side, size: str, price: str, ts_ms: int, more: Iterable[Entry] = ()
) -> JSON:
    """An ``allLiquidation`` push; ``Buy`` means a long was liquidated.

    ``more`` adds entries to ``data``; the push ``ts`` is the latest entry time.
    """
    entries = [(side, size, price, ts_ms), *more]
    return {
        "topic": TOPIC_PREFIX + symbol,
        "type": "snapshot",
        "ts": max(entry[3] for entry in entries),
        "data": [{"T": t, "s": symbol, "S": s, "v": v, "p": p} for s, v, p, t in entries],
    }


def _cursor(offset: int) -> str:
    """An opaque, already percent-encoded cursor, shaped like Bybit's."""
    return f"offset%3D{offset}"


def _cursor_offset(cursor: str) -> int:
    """Inverse of ``_cursor``, whether or not the client's encoding decoded it once more."""
    return int(unquote(cursor).removeprefix("offset=")) if cursor else 0


class FakeBybit(FakeVenue):
    """Bybit v5 linear fake.

    WS ``/v5/public/linear``: ``subscribe`` accepts ``allLiquidation.<SYMBOL>``
    for symbols added with ``add_instrument`` and rejects anything else
    (including the deprecated ``liquidation.<SYMBOL>``) with ``success: false``;
    a request that would take the connection's args past ``ARGS_LIMIT``
    characters is refused whole (``refused_for_length`` counts them).
    ``{"op":"ping"}`` is answered and counted in ``pings_received``.

    REST ``/v5/market/instruments-info`` (cursor-paginated; like the real venue
    it returns only ``Trading`` symbols unless ``status`` asks for others, dated
    ``LinearFutures`` included) and ``/v5/market/tickers``, category ``linear``
    only, in the v5 envelope.
    """

    def __init__(self) -> None:
        super().__init__()
        self.instruments: dict[str, JSON] = {}
        self.tickers: dict[str, JSON] = {}
        self.pings_received = 0
        self.refused_for_length = 0
        self._args_chars: dict[str, int] = {}
        self.app.router.add_get("/v5/public/linear", self._serve_ws)
        self._add_rest("/v5/market/instruments-info", self._instruments_info)
        self._add_rest("/v5/market/tickers", self._tickers)

    def add_instrument(
        self,
        symbol: str,
        base: str,
        quote: str = "USDT",
        contract_type: str = "LinearPerpetual",
        status: str = "Trading",
    ) -> None:
        self.instruments[symbol] = {
            "symbol": symbol,
            "contractType": contract_type,
            "status": status,
            "baseCoin": base,
            "quoteCoin": quote,
            "settleCoin": quote,
            "fundingInterval": 480,
        }

    def set_ticker(
        self,
        symbol: str,
        mark_price: str,
        funding_rate: str,
        single_open_interest: str,
        funding_interval_hours: int = 8,
        next_funding_time_ms: int | None = None,
        open_interest: str | None = None,
        single_side_fields: bool = True,
    ) -> None:
        """Add or replace a ticker.

        ``open_interest`` (both sides) defaults to twice ``single_open_interest``;
        values are in quote currency at ``mark_price``; last and index price
        equal the mark price; the next funding time defaults to the next settlement.
        Without ``single_side_fields`` the row lacks ``singleOpenInterest*``, as
        rows recorded before 2026-06 do.
        """
        single = Decimal(single_open_interest)
        both = Decimal(open_interest) if open_interest is not None else 2 * single
        mark = Decimal(mark_price)
        if next_funding_time_ms is None:
            next_funding_time_ms = next_settlement_ms(self.clock(), funding_interval_hours)
        self.tickers[symbol] = {
            "symbol": symbol,
            "lastPrice": mark_price,
            "markPrice": mark_price,
            "indexPrice": mark_price,
            "fundingRate": funding_rate,
            "nextFundingTime": str(next_funding_time_ms),
            "fundingIntervalHour": str(funding_interval_hours),
            "openInterest": str(both),
            "openInterestValue": str(both * mark),
            "singleOpenInterest": str(single),
            "singleOpenInterestValue": str(single * mark),
        }
        if not single_side_fields:
            del self.tickers[symbol]["singleOpenInterest"]
            del self.tickers[symbol]["singleOpenInterestValue"]

    def _topic(self, frame: JSON) -> str | None:
        topic = frame.get("topic")
        return topic if isinstance(topic, str) else None

    async def _on_text(self, conn: Connection, text: str) -> None:
        request = parse_object(text)
        if request is None:
            return
        reply: JSON = {"success": True, "ret_msg": "", "conn_id": conn.conn_id}
        if "req_id" in request:
            reply["req_id"] = request["req_id"]
        if request.get("op") == "ping":
            self.pings_received += 1
            reply["ret_msg"] = "pong"
        elif request.get("op") == "subscribe":
            args = [str(topic) for topic in request.get("args", [])]
            used = self._args_chars.get(conn.conn_id, 0) + sum(map(len, args))
            known = {TOPIC_PREFIX + symbol for symbol in self.instruments}
            unknown = [topic for topic in args if topic not in known]
            if used > ARGS_LIMIT:
                self.refused_for_length += 1
                reply["success"] = False
                reply["ret_msg"] = f"error:args over {ARGS_LIMIT} characters,topic:" + ",".join(
                    args
                )
            else:
                self._args_chars[conn.conn_id] = used
                conn.topics.update(topic for topic in args if topic in known)
            if unknown and used <= ARGS_LIMIT:
                reply["success"] = False
                reply["ret_msg"] = "error:handler not found,topic:" + ",".join(unknown)
        else:
            return
        reply["op"] = request["op"]
        await self._reply(conn, reply)

    def _envelope(self, result: JSON, code: int = 0, message: str = "OK") -> web.Response:
        return json_response(
            {
                "retCode": code,
                "retMsg": message,
                "result": result,
                "retExtInfo": {},
                "time": self.clock(),
            }
        )

    def _params_error(self, detail: str) -> web.Response:
        return self._envelope({}, 10001, f"params error: {detail}")

    def _instruments_info(self, query: Mapping[str, str]) -> web.Response:
        if query.get("category") != "linear":
            return self._params_error("category is invalid")
        try:
            limit = min(int(query.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
            start = _cursor_offset(query.get("cursor", ""))
        except ValueError:
            return self._params_error("limit or cursor is invalid")
        status = query.get("status", "Trading")
        items = [item for item in self.instruments.values() if item["status"] == status]
        end = start + limit
        return self._envelope(
            {
                "category": "linear",
                "list": items[start:end],
                "nextPageCursor": _cursor(end) if end < len(items) else "",
            }
        )

    def _tickers(self, query: Mapping[str, str]) -> web.Response:
        if query.get("category") != "linear":
            return self._params_error("category is invalid")
        tickers = [t for s, t in self.tickers.items() if query.get("symbol", s) == s]
        return self._envelope({"category": "linear", "list": tickers})
