"""Event-loop lag: how late the loop wakes a task that asked to sleep a fixed interval. A step
that blocks the loop for 300 ms shows up as one sample of about 0.3 s.

Samples feed a histogram (cumulative since start, for Prometheus) and a window of the last
five minutes (p50, p99 and max, for `status`)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass

from bot.clock import SYSTEM, Clock

INTERVAL = 0.1  # seconds between samples
WINDOW = 300.0  # seconds the percentiles cover
# Upper bounds (seconds) of the histogram's buckets; +Inf is implied.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class LagSummary:
    """Milliseconds, over the samples of the window."""

    p50: float
    p99: float
    max: float


class LoopLag:
    def __init__(
        self, clock: Clock = SYSTEM, interval: float = INTERVAL, window: float = WINDOW
    ) -> None:
        self.clock = clock
        self.interval = interval
        self.window = window
        self.bucket_counts = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative; last: +Inf
        self.count = 0
        self.sum = 0.0
        self._recent: deque[tuple[float, float]] = deque()  # (monotonic time, lag seconds)

    async def run(self) -> None:
        """Sample until cancelled."""
        clock = self.clock
        while True:
            asked = clock.monotonic()
            await clock.sleep(self.interval)
            woke = clock.monotonic()
            self.observe(max(0.0, woke - asked - self.interval), woke)

    def observe(self, lag: float, at: float) -> None:
        self.bucket_counts[bisect_left(BUCKETS, lag)] += 1  # the first bound >= lag
        self.count += 1
        self.sum += lag
        recent = self._recent
        recent.append((at, lag))
        while recent[0][0] < at - self.window:
            recent.popleft()

    def summary(self) -> LagSummary | None:
        """p50, p99 (nearest rank) and max of the last `window` seconds; None before any."""
        horizon = self.clock.monotonic() - self.window
        lags = sorted(lag for at, lag in self._recent if at >= horizon)
        if not lags:
            return None

        def rank(share: float) -> float:
            return round(lags[max(0, math.ceil(share * len(lags)) - 1)] * 1000, 3)

        return LagSummary(rank(0.50), rank(0.99), round(lags[-1] * 1000, 3))
