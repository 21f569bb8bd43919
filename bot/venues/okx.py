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

from bot.model import FundingRate, Liquidation, OpenInterest, Position
from bot.venues.common import MALFORMED, Control, Tally, base_asset, kept, positive

NAME = "okx"
SUBSCRIBE_FRAME = json.dumps(
    {"op": "subscribe", "args": [{"channel": "liquidation-orders", "instType": "SWAP"}]}
)
PING_FRAME = "ping"
PONG_FRAME = "pong"
PING_WHEN_IDLE = 20.0  # OKX drops a connection that has been quiet for 30 s
_MS_PER_HOUR = 3_600_000
# "The connection will soon be closed for a service upgrade. Please reconnect." (docs)
NOTICE_SERVICE_UPGRADE = "64008"
_POSITION_BY_ORDER_SIDE: dict[str, Position] = {"sell": "long", "buy": "short"}
_POSITIONS: dict[str, Position] = {"long": "long", "short": "short"}


@dataclass(slots=True, frozen=True)
class Contract:
    """What one contract of an instrument is worth: `ct_val` coin (linear) or USD (inverse)."""

    ct_val: float
    inverse: bool


def parse_liquidations(
    frame: Any, recv_ts: int, contracts: dict[str, Contract], tally: Tally | None = None
) -> list[Liquidation] | None:
    """Events in one frame (every `details` entry); [] for a control frame, another channel or
    empty data; None for a malformed frame. Entries for an instrument not in `contracts` yet are
    skipped and named in `tally.unknown` (the caller refreshes its list); malformed entries are
    skipped and counted, the good ones kept. A frame with no good entry at all is malformed."""
    if not isinstance(frame, dict):
        return None
    try:
        if "event" in frame:
            return []
        arg = frame.get("arg")
        if not isinstance(arg, dict) or arg.get("channel") != "liquidation-orders":
            return []
        items = frame["data"]
    except MALFORMED:
        return None
    events: list[Liquidation] = []
    bad = 0
    for item in items:
        try:
            inst_id = item["instId"]
            contract = contracts.get(inst_id)
            if contract is None:
                if tally is not None:
                    tally.unknown.add(inst_id)
                    tally.ignored += 1
                continue
            base = base_asset(inst_id)
            details = item["details"]
        except MALFORMED:
            bad += 1
            continue
        for detail in details:
            try:
                contracts_size = float(detail["sz"])
                price = float(detail["bkPx"])
                # `positive`, inlined: hot path
                if not (0.0 < contracts_size < inf and 0.0 < price < inf):
                    raise ValueError(detail)
                size = contracts_size * contract.ct_val
                usd, qty = (size, size / price) if contract.inverse else (size * price, size)
                position = (
                    _POSITIONS.get(detail.get("posSide", ""))
                    or _POSITION_BY_ORDER_SIDE[detail["side"]]
                )
                # Positional: three times cheaper than keywords. Order: venue, symbol, base,
                # position, price, qty, usd, ts, recv_ts.
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
                    )
                )
            except MALFORMED:
                bad += 1
    return kept(events, bad, tally)


def control(frame: Any) -> Control | None:
    """An `error` reply refuses a subscription; notice 64008 announces a cut for an upgrade."""
    event = frame.get("event")
    if event == "error":
        return Control(refused=(f"{frame.get('code')}: {frame.get('msg')}",))
    if event == "notice" and frame.get("code") == NOTICE_SERVICE_UPGRADE:
        return Control(reconnect=f"notice {NOTICE_SERVICE_UPGRADE}: {frame.get('msg')}")
    return None


def unwrap(payload: Any) -> Any:
    """The `data` of a v5 REST envelope; ValueError when OKX reports an error."""
    if payload.get("code") != "0":
        raise ValueError(f"okx error {payload.get('code')}: {payload.get('msg')}")
    return payload["data"]


def parse_instruments(data: Any) -> dict[str, Contract]:
    """Live perpetual swaps (`instType` SWAP, `state` live) and what one contract is worth.
    Linear swaps settle in USDT or USDC (valued at par); inverse ones are worth `ctVal` USD."""
    contracts: dict[str, Contract] = {}
    for item in data:
        try:
            if item["instType"] != "SWAP" or item["state"] != "live":
                continue
            contracts[item["instId"]] = Contract(
                ct_val=positive(float(item["ctVal"])), inverse=item["ctType"] == "inverse"
            )
        except MALFORMED:
            continue
    return contracts


def parse_funding_rates(data: Any, contracts: dict[str, Contract]) -> list[FundingRate]:
    """`funding-rate?instId=ANY`, for live swaps only: the answer also lists X-Perps (`instType`
    FUTURES). The interval is the gap between the next two settlements, as the docs advise."""
    rates: list[FundingRate] = []
    for item in data:
        try:
            inst_id = item["instId"]
            if item.get("instType", "SWAP") != "SWAP" or inst_id not in contracts:
                continue
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


def parse_open_interest(data: Any, contracts: dict[str, Contract]) -> list[OpenInterest]:
    interests: list[OpenInterest] = []
    for item in data:
        try:
            inst_id = item["instId"]
            if inst_id not in contracts:
                continue
            interests.append(
                OpenInterest(
                    NAME, inst_id, base_asset(inst_id), float(item["oiUsd"]), int(item["ts"])
                )
            )
        except MALFORMED:
            continue
    return interests
