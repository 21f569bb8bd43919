"""Bitget USDT-M perpetuals: the v3 (UTA) socket's `liquidation` topic, and the v2 mix REST
contracts, tickers and funding intervals.

The topic carries, each second, the largest long and the largest short liquidation per pair:
a sample, so totals are lower bounds. `side` is the POSITION side (buy = a long liquidated) and
`amount` the USDT value, not a quantity: in recorded pushes amount / price is a whole lot
(13.70319 / 0.1649 = 83.1 APE) while amount itself is not (see tests/data/bitget/PROVENANCE).
"""

from __future__ import annotations

import json
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

NAME = "bitget"
TOPIC = "liquidation"
INST_TYPE = "usdt-futures"
PRODUCT_TYPE = "USDT-FUTURES"  # the v2 REST name of the same market
SUBSCRIBE_FRAME = json.dumps({"op": "subscribe", "args": [{"instType": INST_TYPE, "topic": TOPIC}]})
PING_FRAME = "ping"
PONG_FRAME = "pong"
PING_INTERVAL = 25.0  # Bitget wants a text ping every 30 s
DEFAULT_FUNDING_INTERVAL_HOURS = 8.0
_POSITION_BY_SIDE: dict[str, Position] = {"buy": "long", "sell": "short"}


def parse_liquidations(
    frame: Any, recv_ts: int, universe: dict[str, Instrument], tally: Tally | None = None
) -> list[Liquidation] | None:
    """Events in one push; [] for acks, errors, pongs, other topics and empty pushes; None for a
    malformed frame. Pairs outside `universe` are ignored and named in `tally.unknown` (the
    caller reloads its list)."""
    if not isinstance(frame, dict):
        return None
    arg = frame.get("arg")
    if "event" in frame or not isinstance(arg, dict) or arg.get("topic") != TOPIC:
        return []
    items = frame.get("data")
    if not isinstance(items, list):
        return None
    events: list[Liquidation] = []
    bad = 0
    for item in items:
        try:
            instrument = universe.get(item["symbol"])
            if instrument is None:
                if tally is not None:
                    tally.unknown.add(item["symbol"])
                    tally.ignored += 1
                continue
            usd = float(item["amount"])
            price = float(item["price"])
            if not (0.0 < usd < inf and 0.0 < price < inf):
                raise ValueError(item)
            events.append(
                Liquidation(
                    NAME,
                    instrument.symbol,
                    instrument.base,
                    _POSITION_BY_SIDE[item["side"]],
                    price,
                    usd / price,
                    usd,
                    int(item["ts"]),
                    recv_ts,
                )
            )
        except MALFORMED:
            bad += 1
    return kept(events, bad, tally)


def control(frame: Any) -> Control | None:
    """`{"event": "error", "code": ..., "msg": ...}` refuses the subscription."""
    if frame.get("event") == "error":
        return Control(refused=(f"{frame.get('code')}: {frame.get('msg')}",))
    return None


def unwrap(payload: Any) -> Any:
    """The `data` of a v2 REST envelope; ValueError when Bitget reports an error."""
    if payload.get("code") != "00000":
        raise ValueError(f"bitget error {payload.get('code')}: {payload.get('msg')}")
    return payload["data"]


def parse_contracts(data: Any) -> dict[str, Instrument]:
    """Perpetuals (`symbolType` perpetual) that trade (`symbolStatus` normal); delivery
    contracts are left out."""
    universe: dict[str, Instrument] = {}
    for item in data:
        try:
            if item["symbolType"] == "perpetual" and item.get("symbolStatus", "normal") == "normal":
                universe[item["symbol"]] = Instrument(
                    item["symbol"], base_asset(item["baseCoin"]), item["quoteCoin"]
                )
        except MALFORMED:
            continue
    return universe


def parse_funding_intervals(data: Any) -> dict[str, float]:
    """`current-fund-rate` rows: `fundingRateInterval` is in hours."""
    intervals: dict[str, float] = {}
    for item in data:
        try:
            intervals[item["symbol"]] = positive(float(item["fundingRateInterval"]))
        except MALFORMED:
            continue
    return intervals


def parse_tickers(
    data: Any, universe: dict[str, Instrument], intervals: dict[str, float], now_ms: int
) -> tuple[list[FundingRate], list[OpenInterest]]:
    """Funding (`fundingRate` per interval) and open interest (`holdingAmount`, in coin, times
    `markPrice`) of the universe's pairs from one tickers call."""
    rates: list[FundingRate] = []
    interests: list[OpenInterest] = []
    for item in data:
        try:
            instrument = universe.get(item["symbol"])
            if instrument is None or instrument.quote not in USD_QUOTES:
                continue
            mark = positive(float(item["markPrice"]))
            rates.append(
                FundingRate(
                    venue=NAME,
                    symbol=instrument.symbol,
                    base=instrument.base,
                    rate=float(item["fundingRate"]),
                    interval_hours=intervals.get(instrument.symbol, DEFAULT_FUNDING_INTERVAL_HOURS),
                    mark_price=mark,
                    next_funding_time=None,
                )
            )
            usd = float(item["holdingAmount"]) * mark
            interests.append(OpenInterest(NAME, instrument.symbol, instrument.base, usd, now_ms))
        except MALFORMED:
            continue
    return rates, interests
