"""Gate USDT perpetuals: one all-contract liquidation stream, and the contracts list (polled
for funding and open interest too)."""

from __future__ import annotations

import time
from typing import Any

from bot.adapters.reload import ReloadOnUnknown
from bot.clock import now_ms
from bot.feeds import StreamSpec
from bot.model import FundingRate, Liquidation, OpenInterest
from bot.rest import RestClient
from bot.venues import gate
from bot.venues.common import Tally


class GateSource:
    venue = gate.NAME

    def __init__(self, rest: RestClient, ws_url: str) -> None:
        self.rest = rest
        self.ws_url = ws_url
        self.contracts: dict[str, gate.Contract] = {}
        self._tally = Tally()

    def streams(self) -> list[StreamSpec]:
        return [
            StreamSpec(
                self.venue,
                self.ws_url,
                self._parse,
                # Keep-alive: Gate's server sends websocket pings, which aiohttp answers.
                subscribe_frames=lambda: [gate.subscribe_frame(int(time.time()))],
                prepare=self._ensure_contracts,
                tally=self._tally,
                control=gate.control,
                symbols=lambda: len(self.contracts),
                reload=ReloadOnUnknown(self.venue, self._tally, self.refresh_instruments),
            )
        ]

    def _parse(self, frame: Any, recv_ts: int) -> list[Liquidation] | None:
        return gate.parse_liquidations(frame, recv_ts, self.contracts, self._tally)

    async def _ensure_contracts(self) -> None:
        if not self.contracts:
            await self.refresh_instruments()

    async def _contracts_payload(self) -> Any:
        payload = await self.rest.get(gate.CONTRACTS_PATH)
        self.contracts = gate.parse_contracts(payload)
        return payload

    async def refresh_instruments(self) -> list[list[str]]:
        await self._contracts_payload()
        return [[]]  # `!all` already covers new listings

    async def poll_funding(self) -> list[FundingRate]:
        return gate.parse_funding(await self._contracts_payload(), self.contracts)

    async def poll_open_interest(self) -> list[OpenInterest]:
        payload = await self._contracts_payload()
        return gate.parse_open_interest(payload, self.contracts, now_ms())
