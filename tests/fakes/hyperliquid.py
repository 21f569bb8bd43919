"""Fake Hyperliquid info API: ``POST /info {"type": "metaAndAssetCtxs"}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .server import JSON, FakeVenue, json_response


class FakeHyperliquid(FakeVenue):
    """Hyperliquid fake: ``/info`` answers ``metaAndAssetCtxs`` with ``[meta, assetCtxs]``
    aligned by index (delisted assets stay listed, flagged ``isDelisted``); any other body gets
    Hyperliquid's 422. Requests are logged as ``("/info", {"type": ...})``."""

    def __init__(self) -> None:
        super().__init__()
        self.universe: list[JSON] = []
        self.contexts: list[JSON] = []
        self._add_post("/info", self._info)

    def add_asset(
        self, name: str, mark_px: str, funding: str, open_interest: str, delisted: bool = False
    ) -> None:
        asset: JSON = {"name": name, "szDecimals": 2, "maxLeverage": 10}
        if delisted:
            asset["isDelisted"] = True
        self.universe.append(asset)
        self.contexts.append(
            {
                "funding": funding,
                "openInterest": open_interest,
                "markPx": mark_px,
                "oraclePx": mark_px,
                "midPx": mark_px,
                "prevDayPx": mark_px,
                "premium": "0.0",
                "dayNtlVlm": "0.0",
                "dayBaseVlm": "0.0",
                "impactPxs": [mark_px, mark_px],
            }
        )

    def _info(self, body: Any) -> web.Response:
        if not isinstance(body, dict) or body.get("type") != "metaAndAssetCtxs":
            return web.Response(
                status=422, text="Failed to deserialize the JSON body into the target type"
            )
        return json_response([{"universe": self.universe}, self.contexts])
