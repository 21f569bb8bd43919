"""What a chart shows, as plain numbers: liquidation buckets over a window, and for one asset
its mark price, funding and open interest. Rendering is bot/charts.py's job; this module only
collects and checks the data, so tests can assert the series exactly.

`MarketHistory` is the light per-minute history the funding and open-interest polls feed: one
slot per minute of the last day for each asset, in fixed-size arrays (about 23 KB an asset).
"""

from __future__ import annotations

import asyncio
import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from bot.errors import UserError
from bot.market import HISTORY_MINUTES, MS_PER_MINUTE, WINDOWS, MarketState
from bot.messages import WindowView, headline
from bot.model import FundingRate
from bot.norms import Norms

# Bar width per window: per minute up to an hour, then 48 bars (5 and 30 minutes).
BUCKET_MINUTES = {"5m": 1, "15m": 1, "1h": 1, "4h": 5, "24h": 30}
DEFAULT_WINDOW = "24h"
MARKET_PRICE = "BTC"  # the price line of a whole-market chart
SLICE_MINUTES = 30  # minutes of buckets read between two yields to the loop (~1 ms each)
PRICE, FUNDING, INTEREST = 0, 1, 2
Point = tuple[int, float]  # epoch ms, value


@dataclass(frozen=True, slots=True)
class ChartRequest:
    """One chart: the assets (empty: the whole market) and the window."""

    bases: frozenset[str]
    window: str

    @property
    def label(self) -> str:
        return ", ".join(sorted(self.bases)) if self.bases else "All assets"


@dataclass(frozen=True, slots=True)
class Series:
    """The numbers one chart is drawn from. Bucket i covers minutes from starts[i] for
    BUCKET_MINUTES[window] minutes; longs and shorts are USD liquidated in it."""

    request: ChartRequest
    end_ms: int  # the end of the last minute shown
    starts: list[int]
    longs: list[float]
    shorts: list[float]
    view: WindowView  # the window's totals and 30-day norm, for the title
    price_base: str | None = None  # whose mark price `price` is (BTC for the whole market)
    price: list[Point] = field(default_factory=list)
    funding: list[Point] = field(default_factory=list)  # per 8 h, as a fraction
    interest: list[Point] = field(default_factory=list)  # USD, all venues

    @property
    def title(self) -> str:
        text = (
            headline(self.view) if self.view.total_usd else f"No liquidations in {self.view.window}"
        )
        norm = self.view.norm
        if norm is not None and norm.average_usd > 0 and self.view.total_usd:
            days = int(min(30, max(1, round(norm.history_days))))
            text += f" · {self.view.total_usd / norm.average_usd:.1f}x the {days}-day average"
        return text


class _Asset:
    """One asset's last day: per-minute slots for mark price, funding and open interest."""

    __slots__ = ("minutes", "values")

    def __init__(self) -> None:
        self.minutes = array("i", [-1]) * HISTORY_MINUTES
        self.values = [array("f", [math.nan]) * HISTORY_MINUTES for _ in range(3)]

    def set(self, kind: int, minute: int, value: float) -> None:
        slot = minute % HISTORY_MINUTES
        if self.minutes[slot] != minute:  # a new minute: what the slot held is a day old
            self.minutes[slot] = minute
            for values in self.values:
                values[slot] = math.nan
        self.values[kind][slot] = value

    def points(self, kind: int, first: int, last: int) -> list[Point]:
        values, minutes = self.values[kind], self.minutes
        points = []
        for minute in range(max(first, last - HISTORY_MINUTES + 1), last + 1):
            slot = minute % HISTORY_MINUTES
            if minutes[slot] == minute and not math.isnan(values[slot]):
                points.append((minute * MS_PER_MINUTE, float(values[slot])))
        return points


class MarketHistory:
    """Per-minute mark price, funding (per 8 h) and open interest of each asset, for a day.

    Kept in memory only: after a restart the lines start again (liquidations come back from
    the stored rollups). Prices come from symbols quoted per one coin: `1000PEPEUSDT` is
    skipped, as its mark price is per 1,000 coins."""

    def __init__(self) -> None:
        self._assets: dict[str, _Asset] = {}

    def _asset(self, base: str) -> _Asset:
        asset = self._assets.get(base)
        if asset is None:
            asset = self._assets[base] = _Asset()
        return asset

    def record_funding(
        self, rates: Iterable[FundingRate], extremes: Mapping[str, FundingRate], now: int
    ) -> None:
        """A funding poll: its mark prices, and each asset's funding furthest from zero."""
        minute = now // MS_PER_MINUTE
        for rate in rates:
            if rate.mark_price is not None and rate.symbol.startswith(rate.base):
                self._asset(rate.base).set(PRICE, minute, rate.mark_price)
        for base, rate in extremes.items():
            self._asset(base).set(FUNDING, minute, rate.rate_8h)

    def record_open_interest(self, by_base: Mapping[str, float], now: int) -> None:
        minute = now // MS_PER_MINUTE
        for base, usd in by_base.items():
            self._asset(base).set(INTEREST, minute, usd)

    def points(self, kind: int, base: str, first_minute: int, last_minute: int) -> list[Point]:
        asset = self._assets.get(base)
        return [] if asset is None else asset.points(kind, first_minute, last_minute)

    def bases(self) -> set[str]:
        return set(self._assets)


async def collect(
    request: ChartRequest,
    market: MarketState,
    norms: Norms,
    history: MarketHistory,
    slice_minutes: int = SLICE_MINUTES,
) -> Series:
    """The series for `request` up to the market's current minute. Reads the minute buckets in
    slices, yielding to the loop between them (a day of a busy market is ~100k bucket keys)."""
    last = market.minute
    length = WINDOWS[request.window]
    first = last - length + 1
    bases = request.bases or None
    rows: list[tuple[int, float, float]] = []
    for start in range(first, last + 1, slice_minutes):
        rows += market.minute_sides(start, min(start + slice_minutes - 1, last), bases)
        if start + slice_minutes <= last:
            await asyncio.sleep(0)
    return build_series(request, last, rows, market, norms, history)


def build_series(
    request: ChartRequest,
    last_minute: int,
    rows: list[tuple[int, float, float]],
    market: MarketState,
    norms: Norms,
    history: MarketHistory,
) -> Series:
    width = BUCKET_MINUTES[request.window]
    length = WINDOWS[request.window]
    first = last_minute - length + 1
    count = length // width
    longs, shorts = [0.0] * count, [0.0] * count
    for minute, long_usd, short_usd in rows:
        index = (minute - first) // width
        longs[index] += long_usd
        shorts[index] += short_usd
    totals = market.totals(request.window, request.bases or None)
    view = WindowView(
        request.window,
        totals.total_usd,
        totals.long_usd,
        totals.short_usd,
        totals.count,
        totals.by_base,
        totals.by_exchange,
        norms.norm(length, request.bases or None),
    )
    series = Series(
        request,
        (last_minute + 1) * MS_PER_MINUTE,
        [(first + i * width) * MS_PER_MINUTE for i in range(count)],
        longs,
        shorts,
        view,
    )
    price_base = next(iter(request.bases)) if len(request.bases) == 1 else None
    if not request.bases:
        price_base = MARKET_PRICE
    price = history.points(PRICE, price_base, first, last_minute) if price_base else []
    series = replace(series, price_base=price_base if price else None, price=price)
    if len(request.bases) == 1:
        (base,) = request.bases
        series.funding.extend(history.points(FUNDING, base, first, last_minute))
        series.interest.extend(history.points(INTEREST, base, first, last_minute))
    return series


def parse_chart_args(args: list[str], known: Iterable[str], watch: frozenset[str]) -> ChartRequest:
    """`/chart [asset] [window]`, in either order; the asset defaults to the chat's watch list
    (or the whole market), the window to 24h. UserError says what is accepted."""
    usage = (
        f"use /chart [asset] [window], e.g. /chart BTC 4h; the window is one of "
        f"{', '.join(WINDOWS)} (default {DEFAULT_WINDOW})"
    )
    window: str | None = None
    asset: str | None = None
    assets = {name.upper() for name in known}
    for word in args:
        lowered, upper = word.strip().lower(), word.strip().upper()
        if lowered in WINDOWS and window is None:
            window = lowered
        elif upper in assets and asset is None:
            asset = upper
        elif lowered in WINDOWS or upper in assets:
            raise UserError(f"one asset and one window at most: {usage}")
        else:
            raise UserError(
                f"{word!r} is neither an asset liqbot has data for nor a window: {usage}"
            )
    return ChartRequest(frozenset({asset}) if asset else watch, window or DEFAULT_WINDOW)


def caption(request: ChartRequest) -> str:
    """What a /chart photo shows, in one or two short lines."""
    what = f"{request.label}: liquidations in the last {request.window}"
    panes = (
        "; mark price, funding per 8h and open interest where liqbot has them"
        if len(request.bases) == 1
        else ""
    )
    return f"{what}, longs above zero, shorts below{panes}. Times in UTC."
