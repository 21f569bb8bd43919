"""Binance USDⓈ-M futures: liquidation stream frames and funding / open-interest REST payloads.

`forceOrder` reports the liquidation *order*: S=SELL closes a long position, S=BUY a short one.
Quantities are in coin, so the notional is filled quantity x average price.
"""

from __future__ import annotations

from math import inf
from typing import Any

from bot.model import FundingRate, Liquidation, OpenInterest, Position
from bot.venues.common import MALFORMED, USD_QUOTES, Instrument, base_asset, positive

NAME = "binance"
STREAM = "!forceOrder@arr"
DEFAULT_FUNDING_INTERVAL_HOURS = 8.0
_MS_PER_HOUR = 3_600_000
_POSITION_BY_ORDER_SIDE: dict[str, Position] = {"SELL": "long", "BUY": "short"}


def stream_url(ws_base: str) -> str:
    """The all-market liquidation stream on the routed `/market` base (the plain `/ws` base is
    silent for these streams since 2026-04)."""
    return f"{ws_base.rstrip('/')}/ws/{STREAM}"


def parse_liquidations(frame: Any, recv_ts: int) -> list[Liquidation] | None:
    """Events in one frame; [] for a control reply or another event type; None for a
    malformed frame (a forceOrder whose fields are missing or not numbers)."""
    try:
        if "stream" in frame:
            frame = frame["data"]
        elif "result" in frame and "id" in frame:
            return []
        if frame.get("e") != "forceOrder":
            return []  # another event type, or none at all: not a liquidation
        order = frame["o"]
        symbol = order["s"]
        qty = float(order["z"]) or float(order["q"])
        price = float(order["ap"]) or float(order["p"])
        if not (0.0 < qty < inf and 0.0 < price < inf):  # `positive`, inlined: hot path
            return None
        position = _POSITION_BY_ORDER_SIDE[order["S"]]
        # Positional: three times cheaper than keywords. Order: venue, symbol, base, position,
        # price, qty, usd, ts, recv_ts.
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
            )
        ]
    except MALFORMED:
        return None


def parse_exchange_info(payload: Any) -> dict[str, Instrument]:
    """`/fapi/v1/exchangeInfo`: the perpetuals that trade now (`contractType` PERPETUAL,
    `status` TRADING). Delivery contracts, settling, pending and delisted symbols are left out.
    The base is normalised as everywhere (`baseAsset` 1000PEPE is PEPE)."""
    universe: dict[str, Instrument] = {}
    for entry in payload["symbols"]:
        try:
            if entry["contractType"] == "PERPETUAL" and entry["status"] == "TRADING":
                universe[entry["symbol"]] = Instrument(
                    entry["symbol"], base_asset(entry["baseAsset"]), entry["quoteAsset"]
                )
        except MALFORMED:
            continue
    return universe


def parse_funding_intervals(payload: Any) -> dict[str, float]:
    """`/fapi/v1/fundingInfo`: symbols with adjusted settings (their interval may be 8 h too)."""
    intervals: dict[str, float] = {}
    for entry in payload:
        try:
            intervals[entry["symbol"]] = positive(float(entry["fundingIntervalHours"]))
        except MALFORMED:
            continue
    return intervals


def funding_interval(next_funding_time: int, listed: float | None) -> float:
    """Hours between settlements: `fundingInfo`'s value (8 h when it lists none), halved while
    the next settlement time is off that grid. A symbol moved to 4 h that settles at 12:00 UTC
    cannot be on the 8 h grid, and reading it as 8 h would halve its `rate_8h`."""
    hours = listed or DEFAULT_FUNDING_INTERVAL_HOURS
    minute = round(next_funding_time / 60_000) * 60_000  # settlement times can be a few ms late
    while hours > 1 and minute % int(hours * _MS_PER_HOUR):
        hours /= 2
    return hours


def usd_prices(payload: Any) -> dict[str, float]:
    """USD price of each asset that has a USDT perpetual (BTC from BTCUSDT's mark price), for
    valuing pairs quoted in a coin."""
    prices = dict.fromkeys(USD_QUOTES, 1.0)
    for entry in payload:
        symbol = entry.get("symbol", "")
        if symbol.endswith("USDT") and "_" not in symbol:
            try:
                prices.setdefault(symbol[:-4], positive(float(entry["markPrice"])))
            except MALFORMED:
                continue
    return prices


def parse_premium_index(
    payload: Any, intervals: dict[str, float], universe: dict[str, Instrument]
) -> list[FundingRate]:
    """`/fapi/v1/premiumIndex` (all symbols), filtered through the universe: the all-symbol
    answer also lists delivery contracts (rate 0, `nextFundingTime` 0) and settling or delisted
    symbols. A rate of exactly 0 is kept: live perpetuals (BNBUSDT) do settle at 0.
    `mark_price` is in USD; a pair quoted in a coin whose price is unknown gets None."""
    prices = usd_prices(payload)
    rates: list[FundingRate] = []
    for entry in payload:
        try:
            instrument = universe.get(entry["symbol"])
            if instrument is None or not entry["lastFundingRate"]:
                continue
            next_time = int(entry["nextFundingTime"])
            quote_usd = prices.get(instrument.quote)
            rates.append(
                FundingRate(
                    venue=NAME,
                    symbol=instrument.symbol,
                    base=instrument.base,
                    rate=float(entry["lastFundingRate"]),
                    interval_hours=funding_interval(next_time, intervals.get(instrument.symbol)),
                    mark_price=positive(float(entry["markPrice"])) * quote_usd
                    if quote_usd
                    else None,
                    next_funding_time=next_time or None,
                )
            )
        except MALFORMED:
            continue
    return rates


def parse_open_interest(payload: Any, mark_price: float, base: str) -> OpenInterest | None:
    """`/fapi/v1/openInterest`: coin units, valued at the mark price (USD)."""
    try:
        symbol = payload["symbol"]
        return OpenInterest(
            venue=NAME,
            symbol=symbol,
            base=base,
            usd=float(payload["openInterest"]) * mark_price,
            ts=int(payload["time"]),
        )
    except MALFORMED:
        return None
