"""Hyperliquid perpetuals: funding and open interest from `metaAndAssetCtxs`.

There is no public market-wide liquidation feed (fills are per user), so this venue has no
stream. The answer is `[meta, assetCtxs]`, aligned by index: `meta.universe[i]` names the asset
of `assetCtxs[i]`. Funding is HOURLY; `openInterest` is one side, in coin.
"""

from __future__ import annotations

from typing import Any

from bot.model import FundingRate, OpenInterest
from bot.venues.common import MALFORMED, base_asset, positive

NAME = "hyperliquid"
INFO_PATH = "/info"
QUERY = {"type": "metaAndAssetCtxs"}
# Hyperliquid allows 1200 request weight a minute per IP; this query weighs 20.
QUERY_WEIGHT = 20
FUNDING_INTERVAL_HOURS = 1.0


def base(name: str) -> str:
    """Hyperliquid lists small coins per thousand with a lowercase k: kPEPE is PEPE."""
    if len(name) > 1 and name[0] == "k" and name[1:].isupper():
        name = name[1:]
    return base_asset(name)


def parse(payload: Any, now_ms: int) -> tuple[list[FundingRate], list[OpenInterest]]:
    """Funding and open interest (coin x `markPx`) of every listed asset; delisted ones
    (`isDelisted`) are left out."""
    meta, contexts = payload
    rates: list[FundingRate] = []
    interests: list[OpenInterest] = []
    for asset, context in zip(meta["universe"], contexts, strict=False):
        try:
            if asset.get("isDelisted"):
                continue
            name = asset["name"]
            coin = base(name)
            mark = positive(float(context["markPx"]))
            rates.append(
                FundingRate(
                    NAME, name, coin, float(context["funding"]), FUNDING_INTERVAL_HOURS, mark, None
                )
            )
            interests.append(
                OpenInterest(NAME, name, coin, float(context["openInterest"]) * mark, now_ms)
            )
        except MALFORMED:
            continue
    return rates, interests
