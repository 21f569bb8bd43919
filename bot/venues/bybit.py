"""Bybit v5 linear: `allLiquidation` frames, instruments and tickers.

Bybit reports the *position* side: S=Buy means a long position was liquidated (the opposite of
Binance and OKX, which report the closing order). `v` is in coin for linear contracts.
"""

from __future__ import annotations

import json
import re
from math import inf
from typing import Any

from bot.model import FundingRate, Liquidation, OpenInterest, Position
from bot.venues.common import (
    MALFORMED,
    USD_QUOTES,
    Control,
    Instrument,
    Tally,
    base_asset,
    kept,
    positive,
)

NAME = "bybit"
TOPIC_PREFIX = "allLiquidation."
PING_FRAME = '{"op":"ping"}'
PING_INTERVAL = 20.0
# "For one public connection, you cannot have length of "args" array over 21,000 characters"
# (docs, wss-authentication). Measured here as the JSON text of all args of one connection,
# quotes and commas included: longer than the bare topic names, so on the safe side.
ARGS_LIMIT = 21_000
# Topics per subscribe request: keeps each request well under Bybit's frame-size limits.
SUBSCRIBE_BATCH = 100
_POSITION_BY_SIDE: dict[str, Position] = {"Buy": "long", "Sell": "short"}
_TOPIC = re.compile(r"[A-Za-z]+\.[A-Za-z0-9.]+")


def topic(symbol: str) -> str:
    return TOPIC_PREFIX + symbol


def args_length(topics: list[str]) -> int:
    """What `topics` add to a connection's args length (see ARGS_LIMIT)."""
    return sum(len(t) + 3 for t in topics)  # the quotes and the comma


def subscribe_frames(symbols: list[str], req_prefix: str = "") -> list[str]:
    """Subscribe requests for every symbol's `allLiquidation` topic (Bybit has no wildcard)."""
    topics = [topic(symbol) for symbol in sorted(symbols)]
    return [
        json.dumps(
            {
                "op": "subscribe",
                "args": topics[i : i + SUBSCRIBE_BATCH],
                "req_id": f"{req_prefix}{i}",
            }
        )
        for i in range(0, len(topics), SUBSCRIBE_BATCH)
    ]


def parse_liquidations(
    frame: Any, recv_ts: int, tally: Tally | None = None
) -> list[Liquidation] | None:
    """Events in one frame; [] for a control reply, another topic or empty data; None for a
    malformed frame. Entries with missing or non-numeric fields are skipped (counted in `tally`)
    and the good ones kept; a frame with no good entry at all is malformed."""
    if not isinstance(frame, dict):
        return None
    try:
        if "op" in frame:
            return []
        if not str(frame.get("topic", "")).startswith(TOPIC_PREFIX):
            return []
        items = frame["data"]
    except MALFORMED:
        return None
    events = []
    bad = 0
    for item in items:
        try:
            symbol = item["s"]
            qty = float(item["v"])
            price = float(item["p"])
            if not (0.0 < qty < inf and 0.0 < price < inf):  # `positive`, inlined: hot path
                raise ValueError(item)
            position = _POSITION_BY_SIDE[item["S"]]
            # Positional: three times cheaper than keywords. Order: venue, symbol, base,
            # position, price, qty, usd, ts, recv_ts.
            events.append(
                Liquidation(
                    NAME,
                    symbol,
                    base_asset(symbol),
                    position,
                    price,
                    qty,
                    qty * price,
                    int(item["T"]),
                    recv_ts,
                )
            )
        except MALFORMED:
            bad += 1
    return kept(events, bad, tally)


def control(frame: Any) -> Control | None:
    """A refused subscription (`success: false`), named by the topics in `ret_msg`."""
    if frame.get("op") == "subscribe" and frame.get("success") is False:
        message = str(frame.get("ret_msg", ""))
        return Control(refused=tuple(_TOPIC.findall(message)) or (message or "subscribe",))
    return None


def unwrap(payload: Any) -> Any:
    """The `result` of a v5 REST envelope; ValueError when Bybit reports an error."""
    if payload.get("retCode") != 0:
        raise ValueError(f"bybit error {payload.get('retCode')}: {payload.get('retMsg')}")
    return payload["result"]


def parse_instruments_page(result: Any) -> tuple[list[Instrument], str]:
    """Trading linear perpetuals on one instruments-info page (dated `LinearFutures` and
    `PreLaunch` pre-market contracts left out), and the cursor of the next page ("" = last)."""
    instruments = []
    for item in result["list"]:
        try:
            if item["contractType"] == "LinearPerpetual" and item["status"] == "Trading":
                instruments.append(
                    Instrument(item["symbol"], base_asset(item["baseCoin"]), item["quoteCoin"])
                )
        except MALFORMED:
            continue
    return instruments, result.get("nextPageCursor") or ""


def parse_tickers(
    result: Any, now_ms: int, universe: dict[str, Instrument] | None = None
) -> tuple[list[FundingRate], list[OpenInterest]]:
    """Funding and open interest of the universe's symbols from one tickers call (every row
    when no universe is given: the demo's recorded tickers). Linear perpetuals are quoted in
    USDT or USDC, valued at par; any other quote is left out."""
    rates: list[FundingRate] = []
    interests: list[OpenInterest] = []
    for item in result["list"]:
        try:
            symbol = item["symbol"]
            instrument = (
                Instrument(symbol, base_asset(symbol), "USDT")
                if universe is None
                else universe.get(symbol)
            )
            if instrument is None or instrument.quote not in USD_QUOTES:
                continue
            symbol, base = instrument.symbol, instrument.base
            if item.get("fundingRate"):
                rates.append(
                    FundingRate(
                        venue=NAME,
                        symbol=symbol,
                        base=base,
                        rate=float(item["fundingRate"]),
                        interval_hours=positive(float(item.get("fundingIntervalHour") or 8)),
                        mark_price=positive(float(item["markPrice"])),
                        next_funding_time=int(item.get("nextFundingTime") or 0) or None,
                    )
                )
            usd = open_interest_usd(item)
            if usd is not None:
                interests.append(OpenInterest(NAME, symbol, base, usd, now_ms))
        except MALFORMED:
            continue
    return rates, interests


def open_interest_usd(item: Any) -> float | None:
    """One side's open interest in USD. `singleOpenInterestValue` (added 2026-06) is one side;
    rows without it fall back to half of `openInterestValue`, which Bybit documents as "Open
    interest value (both sides)", so the figure compares with Binance's and OKX's."""
    if item.get("singleOpenInterestValue"):
        return float(item["singleOpenInterestValue"])
    if item.get("openInterestValue"):
        return float(item["openInterestValue"]) / 2
    return None
