"""Deribit: one JSON-RPC connection for the futures trades of each currency (liquidations are
flags on them), with Deribit's heartbeat answered; book summaries for funding and OI."""

from __future__ import annotations

from typing import Any

from bot.clock import now_ms
from bot.feeds import StreamSpec
from bot.model import FundingRate, Liquidation, OpenInterest
from bot.rest import RestClient
from bot.venues import deribit
from bot.venues.common import Tally


class DeribitSource:
    venue = deribit.NAME

    def __init__(self, rest: RestClient, ws_url: str) -> None:
        self.rest = rest
        self.ws_url = ws_url
        self.perpetuals = 0  # perpetuals in the last book summaries, for status
        self._tally = Tally()

    def streams(self) -> list[StreamSpec]:
        return [
            StreamSpec(
                self.venue,
                self.ws_url,
                self._parse,
                subscribe_frames=deribit.subscribe_frames,
                tally=self._tally,
                control=deribit.control,
                is_feed=deribit.is_feed,
                symbols=lambda: self.perpetuals,
            )
        ]

    def _parse(self, frame: Any, recv_ts: int) -> list[Liquidation] | None:
        return deribit.parse_liquidations(frame, recv_ts, self._tally)

    async def refresh_instruments(self) -> list[list[str]]:
        return [[]]  # the currency-wide channels already cover new listings

    async def _summaries(self) -> tuple[list[FundingRate], list[OpenInterest]]:
        rates: list[FundingRate] = []
        interests: list[OpenInterest] = []
        for currency in deribit.CURRENCIES:
            payload = await self.rest.get(
                deribit.BOOK_SUMMARY_PATH, {"currency": currency, "kind": "future"}
            )
            more_rates, more_interests = deribit.parse_book_summaries(
                deribit.unwrap(payload), now_ms()
            )
            rates += more_rates
            interests += more_interests
        self.perpetuals = len(interests)
        return rates, interests

    async def poll_funding(self) -> list[FundingRate]:
        return (await self._summaries())[0]

    async def poll_open_interest(self) -> list[OpenInterest]:
        return (await self._summaries())[1]
