"""Latest funding and open interest in memory, with open interest kept per asset in 5-minute
snapshots for a day, so the rules can ask "how much did BTC open interest move in 1h?"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from bot.model import FundingRate, OpenInterest

OI_BUCKET_MS = 5 * 60_000
OI_HISTORY_MS = 24 * 3_600_000 + OI_BUCKET_MS


@dataclass(frozen=True, slots=True)
class OpenInterestMove:
    base: str
    before_usd: float
    now_usd: float

    @property
    def change(self) -> float:
        return self.now_usd / self.before_usd - 1


class Derivatives:
    def __init__(self) -> None:
        self.funding: dict[tuple[str, str], FundingRate] = {}
        self._interest: dict[tuple[str, str], OpenInterest] = {}
        self._snapshots: dict[int, dict[str, float]] = {}  # bucket start ms -> base -> usd
        self._by_base: dict[str, float] | None = None  # open interest by base, until an update

    def update_funding(self, rates: Iterable[FundingRate]) -> None:
        for rate in rates:
            self.funding[rate.venue, rate.symbol] = rate

    def update_open_interest(self, interests: Iterable[OpenInterest], now: int) -> None:
        for interest in interests:
            self._interest[interest.venue, interest.symbol] = interest
        self._by_base = None
        self._snapshots[now // OI_BUCKET_MS * OI_BUCKET_MS] = self.open_interest_by_base()
        for bucket in [b for b in self._snapshots if b < now - OI_HISTORY_MS]:
            del self._snapshots[bucket]

    def load_history(self, rows: Iterable[tuple[int, str, float]]) -> None:
        """Per-asset totals at past 5-minute buckets: (bucket ms, base, usd summed over venues)."""
        for bucket, base, usd in rows:
            self._snapshots.setdefault(bucket, {})[base] = usd

    def open_interests(self) -> list[OpenInterest]:
        """The latest open interest of every contract."""
        return list(self._interest.values())

    def open_interest_by_base(self) -> dict[str, float]:
        if self._by_base is None:
            totals: defaultdict[str, float] = defaultdict(float)
            for interest in self._interest.values():
                totals[interest.base] += interest.usd
            self._by_base = dict(totals)
        return dict(self._by_base)

    def open_interest_moves(self, window_ms: int, now: int) -> list[OpenInterestMove]:
        """Each asset's total now against the latest snapshot at least `window_ms` old."""
        cutoff = now - window_ms
        past = [bucket for bucket in self._snapshots if bucket <= cutoff]
        if not past:
            return []
        before = self._snapshots[max(past)]
        return [
            OpenInterestMove(base, before[base], usd)
            for base, usd in self.open_interest_by_base().items()
            if before.get(base, 0) > 0
        ]

    def extreme_funding_by_base(self) -> dict[str, FundingRate]:
        """For each asset, the venue rate furthest from zero (per 8 h)."""
        extremes: dict[str, FundingRate] = {}
        for rate in self.funding.values():
            best = extremes.get(rate.base)
            if best is None or abs(rate.rate_8h) > abs(best.rate_8h):
                extremes[rate.base] = rate
        return extremes
