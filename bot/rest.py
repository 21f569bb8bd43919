"""REST calls to the venues with their rate limits honoured.

A venue that answers 429 or 418 (Binance's ban), 403 (Bybit's and Binance's firewall) or OKX's
error code 50011 is left alone until its Retry-After (or a default pause) has passed; calls in
that time fail at once with `RateLimited` instead of making the ban longer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=15)
# Pause when the venue gives no Retry-After, by HTTP status.
DEFAULT_PAUSE = {429: 30.0, 418: 120.0, 403: 600.0}
OKX_RATE_LIMIT_CODE = "50011"
OKX_DEFAULT_PAUSE = 2.0


class RestError(Exception):
    """A failed REST call; the message says which venue, path and why."""


class RateLimited(RestError):
    def __init__(self, venue: str, pause: float) -> None:
        super().__init__(f"{venue}: rate limited, REST calls paused for {pause:.0f} s")
        self.pause = pause


class RestClient:
    def __init__(self, session: aiohttp.ClientSession, venue: str, base_url: str) -> None:
        self.session = session
        self.venue = venue
        self.base_url = base_url.rstrip("/")
        self._paused_until = 0.0
        self.last_headers: Mapping[str, str] = {}

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return await self._request("GET", path, params=params)

    async def post(self, path: str, body: Any) -> Any:
        """POST a JSON body (Hyperliquid's /info takes its queries so)."""
        return await self._request("POST", path, body=body)

    async def _request(
        self, method: str, path: str, params: Mapping[str, str] | None = None, body: Any = None
    ) -> Any:
        if self.paused_for:
            raise RateLimited(self.venue, self.paused_for)
        try:
            async with self.session.request(
                method, self.base_url + path, params=params, json=body, timeout=REQUEST_TIMEOUT
            ) as response:
                status, headers = response.status, response.headers
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RestError(
                f"{self.venue}: {method} {path} failed: {type(error).__name__}: {error}"
            ) from None
        self.last_headers = headers
        if status in DEFAULT_PAUSE:
            okx_limit = f'"{OKX_RATE_LIMIT_CODE}"' in text
            raise self._pause(
                headers.get("Retry-After"),
                OKX_DEFAULT_PAUSE if okx_limit else DEFAULT_PAUSE[status],
            )
        if status >= 400:
            raise RestError(f"{self.venue}: {method} {path} answered {status}: {text[:200]}")
        try:
            payload = json.loads(text)
        except ValueError:
            raise RestError(
                f"{self.venue}: {method} {path} answered non-JSON: {text[:200]}"
            ) from None
        if isinstance(payload, dict) and payload.get("code") == OKX_RATE_LIMIT_CODE:
            raise self._pause(headers.get("Retry-After"), OKX_DEFAULT_PAUSE)
        return payload

    def _pause(self, retry_after: str | None, default: float) -> RateLimited:
        try:
            pause = float(retry_after) if retry_after else default
        except ValueError:
            pause = default
        self._paused_until = time.monotonic() + pause
        log.warning(
            "%s: rate limited by the venue; pausing REST calls for %.0f s", self.venue, pause
        )
        return RateLimited(self.venue, pause)
