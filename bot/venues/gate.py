"""Gate USDT perpetuals: `futures.public_liquidates` frames and the contracts list, which also
carries funding and open interest.

A push's `size` is the signed size of the liquidation ORDER in contracts: negative sells, so a
long was liquidated. One contract is `quanto_multiplier` coin, so frames cannot be valued without
the contracts list. REST times are seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from math import inf
from typing import Any

from bot.model import FundingRate, Liquidation, OpenInterest
from bot.venues.common import MALFORMED, Control, Tally, base_asset, kept, positive

NAME = "gate"
CHANNEL = "futures.public_liquidates"
CONTRACTS_PATH = "/api/v4/futures/usdt/contracts"
_SECONDS_BEFORE_MS = 100_000_000_000  # a `time` below this is in seconds (pushes before 2026-08)


@dataclass(slots=True, frozen=True)
class Contract:
    multiplier: float  # coin per contract (`quanto_multiplier`)


def subscribe_frame(now_s: int) -> str:
    """Every USDT contract at once (`!all`); Gate wants the request's time in seconds."""
    return json.dumps(
        {"time": now_s, "channel": CHANNEL, "event": "subscribe", "payload": ["!all"]}
    )


def parse_liquidations(
    frame: Any, recv_ts: int, contracts: dict[str, Contract], tally: Tally | None = None
) -> list[Liquidation] | None:
    """Events in one push (it holds every liquidation order of one contract in the period);
    [] for acks, pongs, other channels and empty pushes; None for a malformed frame. Orders of a
    contract missing from `contracts` are ignored and named in `tally.unknown`."""
    if not isinstance(frame, dict):
        return None
    if frame.get("channel") != CHANNEL or frame.get("event") != "update":
        return []
    items = frame.get("result")
    if not isinstance(items, list):
        return None
    events: list[Liquidation] = []
    bad = 0
    for item in items:
        try:
            name = item["contract"]
            contract = contracts.get(name)
            if contract is None:
                if tally is not None:
                    tally.unknown.add(name)
                    tally.ignored += 1
                continue
            size = float(item["size"])
            price = float(item["price"])
            if not (size != 0.0 and abs(size) < inf and 0.0 < price < inf):
                raise ValueError(item)
            qty = abs(size) * contract.multiplier
            ts = int(item.get("time_ms") or item["time"])
            events.append(
                Liquidation(
                    NAME,
                    name,
                    base_asset(name),
                    "long" if size < 0 else "short",
                    price,
                    qty,
                    qty * price,
                    ts * 1000 if ts < _SECONDS_BEFORE_MS else ts,
                    recv_ts,
                )
            )
        except MALFORMED:
            bad += 1
    return kept(events, bad, tally)


def control(frame: Any) -> Control | None:
    """A subscribe reply carrying an error refuses the subscription."""
    error = frame.get("error")
    if frame.get("event") == "subscribe" and error:
        message = error.get("message", error) if isinstance(error, dict) else error
        return Control(refused=(f"{frame.get('channel')}: {message}",))
    return None


def _live(item: Any) -> bool:
    return not item.get("in_delisting") and item.get("status", "trading") == "trading"


def parse_contracts(payload: Any) -> dict[str, Contract]:
    """Contracts that trade (`in_delisting` false, `status` trading) and their multipliers."""
    contracts: dict[str, Contract] = {}
    for item in payload:
        try:
            if _live(item):
                contracts[item["name"]] = Contract(positive(float(item["quanto_multiplier"])))
        except MALFORMED:
            continue
    return contracts


def parse_funding(payload: Any, contracts: dict[str, Contract]) -> list[FundingRate]:
    """`funding_rate` is per interval; `funding_interval` is in SECONDS, next apply too."""
    rates: list[FundingRate] = []
    for item in payload:
        try:
            name = item["name"]
            if name not in contracts or not _live(item):
                continue
            next_apply = int(item.get("funding_next_apply") or 0)
            rates.append(
                FundingRate(
                    venue=NAME,
                    symbol=name,
                    base=base_asset(name),
                    rate=float(item["funding_rate"]),
                    interval_hours=positive(float(item["funding_interval"]) / 3600),
                    mark_price=positive(float(item["mark_price"])),
                    next_funding_time=next_apply * 1000 or None,
                )
            )
        except MALFORMED:
            continue
    return rates


def parse_open_interest(
    payload: Any, contracts: dict[str, Contract], now_ms: int
) -> list[OpenInterest]:
    """`position_size` is one side's open contracts: USD = size x multiplier x mark price."""
    interests: list[OpenInterest] = []
    for item in payload:
        try:
            contract = contracts.get(item["name"])
            if contract is None or not _live(item):
                continue
            usd = float(item["position_size"]) * contract.multiplier * float(item["mark_price"])
            interests.append(
                OpenInterest(NAME, item["name"], base_asset(item["name"]), usd, now_ms)
            )
        except MALFORMED:
            continue
    return interests
