"""OKX v5 perpetual swaps: `liquidation-orders` frames, instruments, funding and open interest.

OKX reports the closing order's side (sell closes a long) and sizes in contracts: a contract is
worth `ctVal` coin on linear swaps and `ctVal` USD on inverse ones, so frames cannot be valued
without the instrument list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from math import inf
from typing import Any

from bot.events import FundingRate, Liquidation, OpenInterest, Position
from bot.venues.common import MALFORMED, base_asset, positive

NAME = "okx"
SUBSCRIBE_FRAME = json.dumps(
    {"op": "subscribe", "args": [{"channel": "liquidation-orders", "instType": "SWAP"}]}
)
PING_FRAME = "ping"
PONG_FRAME = "pong"
PING_WHEN_IDLE = 20.0  # OKX drops a connection that has been quiet for 30 s
_MS_PER_HOUR = 3_600_000
_POSITION_BY_ORDER_SIDE: dict[str, Position] = {"sell": "long", "buy": "short"}
_POSITIONS: dict[str, Position] = {"long": "long", "short": "short"}


@dataclass(slots=True, frozen=True)
class Contract:
    """What one contract of an instrument is worth: `ct_val` coin (linear) or USD (inverse)."""

    ct_val: float
    inverse: bool


def parse_liquidations(
    frame: Any, recv_ts: int, contracts: dict[str, Contract]
) -> list[Liquidation] | None:
    """Events in one frame (every `details` entry); [] for a control reply; None for a malformed
    or unexpected frame, or one for an instrument whose contract value is not known yet."""
    try:
        if "event" in frame:
            return [] if frame["event"] in ("subscribe", "unsubscribe") else None
        if frame["arg"]["channel"] != "liquidation-orders":
            return None
        events = []
        for item in frame["data"]:
            inst_id = item["instId"]
            contract = contracts[inst_id]
            base = base_asset(inst_id)
            for detail in item["details"]:
                contracts_size = float(detail["sz"])
                price = float(detail["bkPx"])
                # `positive`, inlined: hot path
                if not (0.0 < contracts_size < inf and 0.0 < price < inf):
                    return None
                size = contracts_size * contract.ct_val
                usd, qty = (size, size / price) if contract.inverse else (size * price, size)
                position = (
                    _POSITIONS.get(detail.get("posSide", ""))
                    or _POSITION_BY_ORDER_SIDE[detail["side"]]
                )
                # Positional: three times cheaper than keywords. Order: venue, symbol, base,
                # position, price, qty, usd, ts, recv_ts, raw.
                events.append(
                    Liquidation(
                        NAME,
                        inst_id,
                        base,
                        position,
                        price,
                        qty,
                        usd,
                        int(detail["ts"]),
                        recv_ts,
                        detail,
                    )
                )
        return events
    except MALFORMED:
        return None


def unwrap(payload: Any) -> Any:
    """The `data` of a v5 REST envelope; ValueError when OKX reports an error."""
    if payload.get("code") != "0":
        raise ValueError(f"okx error {payload.get('code')}: {payload.get('msg')}")
    return payload["data"]


def parse_instruments(data: Any) -> dict[str, Contract]:
    contracts: dict[str, Contract] = {}
    for item in data:
        try:
            contracts[item["instId"]] = Contract(
                ct_val=positive(float(item["ctVal"])), inverse=item["ctType"] == "inverse"
            )
        except MALFORMED:
            continue
    return contracts


def parse_funding_rates(data: Any) -> list[FundingRate]:
    """`funding-rate?instId=ANY`; the interval is the gap between the next two settlements."""
    rates: list[FundingRate] = []
    for item in data:
        try:
            inst_id = item["instId"]
            funding_time = int(item["fundingTime"])
            next_time = int(item.get("nextFundingTime") or 0)
            interval = (next_time - funding_time) / _MS_PER_HOUR if next_time else 8.0
            rates.append(
                FundingRate(
                    venue=NAME,
                    symbol=inst_id,
                    base=base_asset(inst_id),
                    rate=float(item["fundingRate"]),
                    interval_hours=positive(interval),
                    mark_price=None,
                    next_funding_time=funding_time,
                )
            )
        except MALFORMED:
            continue
    return rates


def parse_open_interest(data: Any) -> list[OpenInterest]:
    interests: list[OpenInterest] = []
    for item in data:
        try:
            inst_id = item["instId"]
            interests.append(
                OpenInterest(
                    NAME, inst_id, base_asset(inst_id), float(item["oiUsd"]), int(item["ts"])
                )
            )
        except MALFORMED:
            continue
    return interests
