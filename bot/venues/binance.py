"""Binance USDⓈ-M futures: liquidation stream frames and funding / open-interest REST payloads.

`forceOrder` reports the liquidation *order*: S=SELL closes a long position, S=BUY a short one.
Quantities are in coin, so the notional is filled quantity x average price.
"""

from __future__ import annotations

from math import inf
from typing import Any

from bot.events import FundingRate, Liquidation, OpenInterest, Position
from bot.venues.common import MALFORMED, base_asset, positive

NAME = "binance"
STREAM = "!forceOrder@arr"
DEFAULT_FUNDING_INTERVAL_HOURS = 8.0
_POSITION_BY_ORDER_SIDE: dict[str, Position] = {"SELL": "long", "BUY": "short"}


def stream_url(ws_base: str) -> str:
    """The all-market liquidation stream on the routed `/market` base (the plain `/ws` base is
    silent for these streams since 2026-04)."""
    return f"{ws_base.rstrip('/')}/ws/{STREAM}"


def parse_liquidations(frame: Any, recv_ts: int) -> list[Liquidation] | None:
    """Events in one frame; [] for a control reply; None for a malformed or unexpected frame."""
    try:
        if "stream" in frame:
            frame = frame["data"]
        elif "result" in frame and "id" in frame:
            return []
        if frame["e"] != "forceOrder":
            return None
        order = frame["o"]
        symbol = order["s"]
        qty = float(order["z"]) or float(order["q"])
        price = float(order["ap"]) or float(order["p"])
        if not (0.0 < qty < inf and 0.0 < price < inf):  # `positive`, inlined: hot path
            return None
        position = _POSITION_BY_ORDER_SIDE[order["S"]]
        # Positional: three times cheaper than keywords. Order: venue, symbol, base, position,
        # price, qty, usd, ts, recv_ts, raw.
        return [
            Liquidation(
                NAME,
                symbol,
                base_asset(symbol),
                position,
                price,
                qty,
                qty * price,
                int(order["T"]),
                recv_ts,
                frame,
            )
        ]
    except MALFORMED:
        return None


def parse_funding_intervals(payload: Any) -> dict[str, float]:
    """`/fapi/v1/fundingInfo`: only symbols whose interval differs from the default are listed."""
    intervals: dict[str, float] = {}
    for entry in payload:
        try:
            intervals[entry["symbol"]] = positive(float(entry["fundingIntervalHours"]))
        except MALFORMED:
            continue
    return intervals


def parse_premium_index(payload: Any, intervals: dict[str, float]) -> list[FundingRate]:
    """`/fapi/v1/premiumIndex` (all symbols); delivery contracts carry no funding: skipped."""
    rates: list[FundingRate] = []
    for entry in payload:
        try:
            symbol = entry["symbol"]
            rate_text = entry["lastFundingRate"]
            if not rate_text:
                continue
            rates.append(
                FundingRate(
                    venue=NAME,
                    symbol=symbol,
                    base=base_asset(symbol),
                    rate=float(rate_text),
                    interval_hours=intervals.get(symbol, DEFAULT_FUNDING_INTERVAL_HOURS),
                    mark_price=positive(float(entry["markPrice"])),
                    next_funding_time=int(entry["nextFundingTime"]) or None,
                )
            )
        except MALFORMED:
            continue
    return rates


def parse_open_interest(payload: Any, mark_price: float) -> OpenInterest | None:
    """`/fapi/v1/openInterest`: coin units, valued at the mark price."""
    try:
        symbol = payload["symbol"]
        return OpenInterest(
            venue=NAME,
            symbol=symbol,
            base=base_asset(symbol),
            usd=float(payload["openInterest"]) * mark_price,
            ts=int(payload["time"]),
        )
    except MALFORMED:
        return None
