"""Deribit perpetuals over JSON-RPC 2.0: liquidations flagged on public trades, and funding and
open interest from the book summaries.

Deribit has no liquidation channel. A trade's optional `liquidation` says who was liquidated:
"T" the taker (whose side is `direction`), "M" the maker (the other side), "MT" both (a long
and a short). A liquidated seller closed a long. `amount` is USD on the inverse perpetuals
(BTC-PERPETUAL) and coin on the linear USDC ones (SOL_USDC-PERPETUAL).
"""

from __future__ import annotations

import json
from math import inf
from typing import Any

from bot.model import FundingRate, Liquidation, OpenInterest, Position
from bot.venues.common import MALFORMED, Control, Tally, base_asset, kept, positive

NAME = "deribit"
# One channel per currency for all its futures; unauthenticated `.raw` channels are refused, and
# so is every other channel of the request that names one.
CURRENCIES = ("BTC", "ETH", "USDC")
CHANNELS = tuple(f"trades.future.{currency}.100ms" for currency in CURRENCIES)
HEARTBEAT_SECONDS = 15  # Deribit's minimum is 10
BOOK_SUMMARY_PATH = "/api/v2/public/get_book_summary_by_currency"
PERPETUAL = "-PERPETUAL"
_TAKER: dict[str, Position] = {"sell": "long", "buy": "short"}  # a liquidated seller was long
_MAKER: dict[str, Position] = {"buy": "long", "sell": "short"}  # the maker took the other side
TEST_FRAME = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "public/test", "params": {}})


def subscribe_frames() -> list[str]:
    """Ask for heartbeats first (every test_request must be answered), then the trades."""
    return [
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "public/set_heartbeat",
                "params": {"interval": HEARTBEAT_SECONDS},
            }
        ),
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "public/subscribe",
                "params": {"channels": list(CHANNELS)},
            }
        ),
    ]


def inverse(instrument: str) -> bool:
    """BTC-PERPETUAL is inverse (USD amounts); BTC_USDC-PERPETUAL is linear (coin amounts)."""
    return "_" not in instrument


def is_feed(frame: Any) -> bool:
    """Any trades push proves the feed alive: liquidations are rare flags on trades."""
    return isinstance(frame, dict) and frame.get("method") == "subscription"


def parse_liquidations(
    frame: Any, recv_ts: int, tally: Tally | None = None
) -> list[Liquidation] | None:
    """Liquidations flagged on the perpetuals' trades in one push; [] for heartbeats, replies and
    trades without the flag; None for a malformed frame. Flagged trades of dated futures are
    ignored (counted in `tally`)."""
    if not isinstance(frame, dict):
        return None
    if frame.get("method") != "subscription":
        return []
    try:
        params = frame["params"]
        if not str(params["channel"]).startswith("trades."):
            return []
        trades = params["data"]
    except MALFORMED:
        return None
    events: list[Liquidation] = []
    bad = 0
    for trade in trades:
        try:
            flag = trade.get("liquidation")
            if not flag:
                continue
            name = trade["instrument_name"]
            if not name.endswith(PERPETUAL):
                if tally is not None:
                    tally.ignored += 1
                continue
            amount = float(trade["amount"])
            price = float(trade["price"])
            if not (0.0 < amount < inf and 0.0 < price < inf):
                raise ValueError(trade)
            usd, qty = (amount, amount / price) if "_" not in name else (amount * price, amount)
            direction = trade["direction"]
            ts = int(trade["timestamp"])
            base = base_asset(name)
            # Positional: three times cheaper than keywords. Order: venue, symbol, base,
            # position, price, qty, usd, ts, recv_ts.
            if flag == "T" or flag == "MT":
                position = _TAKER[direction]
                events.append(Liquidation(NAME, name, base, position, price, qty, usd, ts, recv_ts))
            if flag == "M" or flag == "MT":
                position = _MAKER[direction]
                events.append(Liquidation(NAME, name, base, position, price, qty, usd, ts, recv_ts))
            elif flag != "T":
                raise ValueError(flag)
        except MALFORMED:
            bad += 1
    return kept(events, bad, tally)


def control(frame: Any) -> Control | None:
    """A `test_request` heartbeat wants `public/test` back; an error reply refuses the request."""
    if frame.get("method") == "heartbeat":
        params = frame.get("params")
        if isinstance(params, dict) and params.get("type") == "test_request":
            return Control(reply=(TEST_FRAME,))
        return None
    error = frame.get("error")
    if isinstance(error, dict):
        return Control(refused=(f"{error.get('code')}: {error.get('message')}",))
    return None


def unwrap(payload: Any) -> Any:
    """The `result` of a JSON-RPC answer; ValueError when Deribit reports an error."""
    if "result" not in payload:
        raise ValueError(f"deribit error: {payload.get('error')}")
    return payload["result"]


def parse_book_summaries(result: Any, now_ms: int) -> tuple[list[FundingRate], list[OpenInterest]]:
    """The perpetuals' rows of `get_book_summary_by_currency` (dated futures and options left
    out): `funding_8h` is the rate per 8 h; `open_interest` is USD on inverse perpetuals and coin
    on linear ones (valued at `mark_price`)."""
    rates: list[FundingRate] = []
    interests: list[OpenInterest] = []
    for row in result:
        try:
            name = row["instrument_name"]
            if not name.endswith(PERPETUAL):
                continue
            base = base_asset(name)
            mark = positive(float(row["mark_price"]))
            if row.get("funding_8h") is not None:
                rates.append(
                    FundingRate(NAME, name, base, float(row["funding_8h"]), 8.0, mark, None)
                )
            oi = float(row["open_interest"])
            interests.append(
                OpenInterest(NAME, name, base, oi if inverse(name) else oi * mark, now_ms)
            )
        except MALFORMED:
            continue
    return rates, interests
