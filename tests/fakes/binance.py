"""Fake Binance USDⓈ-M futures: the liquidation stream and the fapi REST calls liqbot uses.

WS and REST share one port here, so point both the ``fstream`` and the
``fapi`` base URLs of the collector at the same fake.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiohttp import web

from .server import JSON, FakeVenue, json_response, next_settlement_ms

STREAM = "!forceOrder@arr"
DEFAULT_INTERVAL_HOURS = 8
RECORDED_OPEN_INTEREST = "1"

_WEIGHTS = {
    "/fapi/v1/premiumIndex": 10,
    "/fapi/v1/fundingInfo": 1,
    "/fapi/v1/openInterest": 1,
    "/fapi/v1/exchangeInfo": 1,
}
RECORDED = Path(__file__).parent.parent / "data" / "binance"
"""Real exchangeInfo and premiumIndex dumps (see PROVENANCE there)."""
_INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}
_MISSING_SYMBOL = {
    "code": -1102,
    "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
}


def force_order(
    symbol: str,
    side: Literal["BUY", "SELL"],
    qty: str,
    avg_price: str,
    ts_ms: int,
    price: str | None = None,
) -> JSON:
    """A ``forceOrder`` event; SELL means a long was liquidated. ``E`` equals ``T``."""
    return {
        "e": "forceOrder",
        "E": ts_ms,
        "o": {
            "s": symbol,
            "S": side,
            "o": "LIMIT",
            "f": "IOC",
            "q": qty,
            "p": price if price is not None else avg_price,
            "ap": avg_price,
            "X": "FILLED",
            "l": qty,
            "z": qty,
            "T": ts_ms,
        },
    }


def _combined(frame: JSON) -> JSON:
    return {"stream": STREAM, "data": frame}


@dataclass
class Market:
    mark_price: str
    funding_rate: str
    open_interest: str
    interval_hours: int
    next_funding_time_ms: int
    contract_type: str = "PERPETUAL"
    status: str = "TRADING"
    base: str = ""
    quote: str = "USDT"


class FakeBinance(FakeVenue):
    """Binance USDⓈ-M fake.

    WS: ``/market/ws/!forceOrder@arr`` (bare events) and
    ``/market/stream?streams=!forceOrder@arr`` (``{"stream","data"}`` envelope)
    get pushes; the pre-2026 ``/ws/<stream>`` path accepts connections and
    then stays silent forever (trap 1). Binance has no app-level ping: the
    server sends control PINGs via ``ping_clients`` and counts PONGs.

    REST: exchangeInfo, premiumIndex, fundingInfo, openInterest, each answering
    with ``X-MBX-USED-WEIGHT-1M`` = ``used_weight`` (assign 0 to reset the
    window). Like the real venue, every listed symbol is in exchangeInfo and
    premiumIndex whatever its contract type or status (delivery contracts get
    rate 0 and nextFundingTime 0), and openInterest answers for each of them.
    ``serve_recorded_universe`` adds the real dumps of tests/data/binance.
    """

    def __init__(self) -> None:
        super().__init__()
        self.markets: dict[str, Market] = {}
        self.recorded_symbols: list[JSON] = []
        self.recorded_premium: list[JSON] = []
        self.used_weight = 0
        self.app.router.add_get(f"/market/ws/{STREAM}", self._raw_stream)
        self.app.router.add_get("/market/stream", self._combined_stream)
        self.app.router.add_get("/ws/{stream}", self._legacy_stream)
        self._add_rest("/fapi/v1/premiumIndex", self._premium_index)
        self._add_rest("/fapi/v1/fundingInfo", self._funding_info)
        self._add_rest("/fapi/v1/openInterest", self._open_interest)
        self._add_rest("/fapi/v1/exchangeInfo", self._exchange_info)

    def serve_recorded_universe(self) -> None:
        """List the 647 symbols of the real exchangeInfo dump and the 521 rows of the real
        premiumIndex dump (markets set with ``set_market`` take precedence). Recorded symbols
        answer openInterest with ``RECORDED_OPEN_INTEREST`` coins."""
        self.recorded_symbols = json.loads((RECORDED / "exchange_info.json").read_text())["symbols"]
        self.recorded_premium = json.loads((RECORDED / "premium_index_all.json").read_text())

    def set_market(
        self,
        symbol: str,
        mark_price: str,
        funding_rate: str,
        open_interest: str,
        interval_hours: int = DEFAULT_INTERVAL_HOURS,
        next_funding_time_ms: int | None = None,
        contract_type: str = "PERPETUAL",
        status: str = "TRADING",
        quote: str = "USDT",
    ) -> None:
        """Add or replace a symbol; the next funding time defaults to the next settlement.

        A delivery contract (``contract_type`` other than PERPETUAL) gets rate
        "0.00000000" and nextFundingTime 0 in premiumIndex, as on the real venue.
        """
        perpetual = contract_type == "PERPETUAL"
        if next_funding_time_ms is None:
            next_funding_time_ms = next_settlement_ms(self.clock(), interval_hours)
        self.markets[symbol] = Market(
            mark_price,
            funding_rate if perpetual else "0.00000000",
            open_interest,
            interval_hours,
            next_funding_time_ms if perpetual else 0,
            contract_type,
            status,
            symbol.split("_")[0].removesuffix(quote),
            quote,
        )

    def _topic(self, frame: JSON) -> str:
        return STREAM

    async def _raw_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._serve_ws(request, [STREAM])

    async def _combined_stream(self, request: web.Request) -> web.StreamResponse:
        streams = [s for s in request.query.get("streams", "").split("/") if s]
        return await self._serve_ws(request, streams, wrap=_combined)

    async def _legacy_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._serve_ws(request)

    def _on_rest_response(self, request: web.Request, response: web.Response) -> None:
        single = request.path == "/fapi/v1/premiumIndex" and "symbol" in request.query
        self.used_weight += 1 if single else _WEIGHTS[request.path]
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(self.used_weight)

    def _premium_entry(self, symbol: str, market: Market) -> JSON:
        return {
            "symbol": symbol,
            "markPrice": market.mark_price,
            "indexPrice": market.mark_price,
            "estimatedSettlePrice": market.mark_price,
            "lastFundingRate": market.funding_rate,
            "interestRate": "0.00010000",
            "nextFundingTime": market.next_funding_time_ms,
            "time": self.clock(),
        }

    def _premium_index(self, query: Mapping[str, str]) -> web.Response:
        if "symbol" not in query:
            recorded = [e for e in self.recorded_premium if e["symbol"] not in self.markets]
            return json_response(
                [self._premium_entry(s, m) for s, m in self.markets.items()] + recorded
            )
        market = self.markets.get(query["symbol"])
        if market is None:
            return json_response(_INVALID_SYMBOL, 400)
        return json_response(self._premium_entry(query["symbol"], market))

    def _funding_info(self, query: Mapping[str, str]) -> web.Response:
        return json_response(
            [
                {
                    "symbol": symbol,
                    "adjustedFundingRateCap": "0.02500000",
                    "adjustedFundingRateFloor": "-0.02500000",
                    "fundingIntervalHours": market.interval_hours,
                    "disclaimer": False,
                }
                for symbol, market in self.markets.items()
                if market.interval_hours != DEFAULT_INTERVAL_HOURS
            ]
        )

    def _open_interest(self, query: Mapping[str, str]) -> web.Response:
        symbol = query.get("symbol")
        if not symbol:
            return json_response(_MISSING_SYMBOL, 400)
        market = self.markets.get(symbol)
        if market is not None:
            amount = market.open_interest
        elif any(row["symbol"] == symbol for row in self.recorded_symbols):
            amount = RECORDED_OPEN_INTEREST
        else:
            return json_response(_INVALID_SYMBOL, 400)
        return json_response({"symbol": symbol, "openInterest": amount, "time": self.clock()})

    def _exchange_info(self, query: Mapping[str, str]) -> web.Response:
        listed = [
            {
                "symbol": symbol,
                "pair": symbol.split("_")[0],
                "contractType": market.contract_type,
                "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000,
                "status": market.status,
                "baseAsset": market.base,
                "quoteAsset": market.quote,
                "marginAsset": market.quote,
                "underlyingType": "COIN",
            }
            for symbol, market in self.markets.items()
        ]
        recorded = [row for row in self.recorded_symbols if row["symbol"] not in self.markets]
        return json_response(
            {
                "timezone": "UTC",
                "serverTime": self.clock(),
                "futuresType": "U_MARGINED",
                "symbols": listed + recorded,
            }
        )
