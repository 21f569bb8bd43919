"""Every venue liqbot knows, as data: its name in config and status, its name for people, its
default endpoints and what its liquidation feed covers.

This module imports nothing from the rest of the bot, so config, status and messages can all read
it. A venue's code lives elsewhere (a parser module in bot/venues/, a source class registered in
bot/sources.py `SOURCE_TYPES`); see README "Adding a venue".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What a venue's public liquidation feed gives: every liquidation ("complete"), a sample of them
# so totals are lower bounds ("sampled"), or nothing ("none": funding and open interest only).
Feed = Literal["complete", "sampled", "none"]


@dataclass(frozen=True, slots=True)
class Venue:
    name: str  # config table and status key: [exchanges.<name>]
    title: str  # for people: alerts, /status
    rest_url: str  # the host; the adapter appends the paths
    ws_url: str | None  # the full URL the client connects to; None: the venue has no stream
    feed: Feed
    feed_note: str  # why the feed is complete or sampled, for /status
    # Seconds without a liquidation after which a connection counts as dead. A feed that can be
    # quiet for long in a calm market (Gate's) gets more, so calm is not read as an outage.
    silence_timeout: float = 300.0


VENUES: dict[str, Venue] = {
    venue.name: venue
    for venue in (
        Venue(
            "binance",
            "Binance",
            "https://fapi.binance.com",
            "wss://fstream.binance.com/market",
            "sampled",
            "at most the latest liquidation per symbol per second",
        ),
        Venue(
            "bybit",
            "Bybit",
            "https://api.bybit.com",
            "wss://stream.bybit.com/v5/public/linear",
            "complete",
            "allLiquidation is documented as complete",
        ),
        Venue(
            "okx",
            "OKX",
            "https://www.okx.com",
            "wss://ws.okx.com:8443/ws/v5/public",
            "sampled",
            "OKX says its feed does not represent the total",
        ),
        Venue(
            "gate",
            "Gate",
            "https://api.gateio.ws",
            "wss://fx-ws.gateio.ws/v4/ws/usdt",
            "complete",
            "since 2026-08-20 each push holds all of a contract's liquidation orders of the period",
            silence_timeout=900.0,  # about 2 liquidations a minute market-wide, quieter at night
        ),
        Venue(
            "bitget",
            "Bitget",
            "https://api.bitget.com",
            "wss://ws.bitget.com/v3/ws/public",
            "sampled",
            "only the largest long and the largest short per pair per second",
        ),
        Venue(
            "deribit",
            "Deribit",
            "https://www.deribit.com",
            "wss://www.deribit.com/ws/api/v2",
            "complete",
            "liquidations are flagged on every public trade",
        ),
        Venue(
            "hyperliquid",
            "Hyperliquid",
            "https://api.hyperliquid.xyz",
            None,
            "none",
            "no public market-wide liquidation feed",
        ),
    )
}


def title(name: str) -> str:
    """A venue's name for people ("OKX"); an unknown one as given."""
    venue = VENUES.get(name)
    return venue.title if venue else name
