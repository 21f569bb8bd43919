"""Charts, tested on their data: the series handed to matplotlib (bucket sums equal the window
totals exactly), the price/funding/OI history, the captions, the PNG (valid, phone-sized, well
under the upload limits), one render shared by every chat, the fallback to text when drawing
fails, and the /chart and /set chart commands with their refusals."""

from __future__ import annotations

import asyncio
import os
import random
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from sqlite_utils import Database

from bot.alert import plain
from bot.chart_data import (
    BUCKET_MINUTES,
    FUNDING,
    INTEREST,
    PRICE,
    ChartRequest,
    MarketHistory,
    Series,
    caption,
    collect,
    parse_chart_args,
)
from bot.chart_service import ChartService
from bot.chats import ChatService, Outboxes
from bot.commands import ChatRef, CommandCore, Reply
from bot.errors import UserError
from bot.market import WINDOWS, MarketState
from bot.model import OutboxRow, Subscription, Thresholds
from bot.norms import Norms
from bot.writer import Writer
from storage import alerts, open_database
from tests.builders import funding, liquidation
from tests.chart_faults import die, render_in_worker
from tests.clock import ManualClock
from tests.pacing import warm_chart_worker

NOW = 1_736_942_400_000  # 2025-01-15T12:00:00Z, a minute boundary
MINUTE = 60_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def busy_market(seed: int = 1, minutes: int = 1440) -> MarketState:
    """A day of liquidations on three venues and five assets, in whole dollars (so every sum is
    exact in binary floating point, whichever order it is added in), some of them late."""
    rng = random.Random(seed)
    market = MarketState(NOW - minutes * MINUTE)
    venues = ("binance", "bybit", "okx")
    for minute in range(minutes):
        now = NOW - (minutes - minute) * MINUTE
        market.advance(now)
        for _ in range(rng.randint(0, 12)):
            base = rng.choice(("BTC", "ETH", "SOL", "DOGE", "PEPE"))
            event = liquidation(
                base,
                rng.choice(("long", "short")),
                1.0,
                1.0,
                venue=rng.choice(venues),
                usd=float(rng.randint(1_000, 5_000_000)),
            )
            late = rng.random() < 0.1 and minute > 3
            ts = now - (2 * MINUTE if late else 0) + rng.randint(0, 59_000)
            market.add(replace(event, ts=ts, recv_ts=now + 59_000))
    market.advance(NOW)
    return market


def series_of(market: MarketState, request: ChartRequest, history: MarketHistory) -> Series:
    return asyncio.run(collect(request, market, Norms(), history))


@pytest.fixture
def render() -> Callable[[Series], bytes]:
    """`bot.charts.render`, imported by the tests that draw in this process: matplotlib costs an
    xdist worker over a second to import, and at module level every worker would pay it while
    collecting, whether or not it runs these tests."""
    from bot import charts

    return charts.render


# -- the series ------------------------------------------------------------------------------


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("bases", [frozenset(), frozenset({"BTC"}), frozenset({"ETH", "SOL"})])
def test_bucket_sums_equal_the_window_totals_exactly(window: str, bases: frozenset[str]) -> None:
    market = busy_market()
    series = series_of(market, ChartRequest(bases, window), MarketHistory())
    totals = market.totals(window, bases or None)

    assert totals.total_usd > 0
    assert sum(series.longs) == totals.long_usd
    assert sum(series.shorts) == totals.short_usd
    assert series.view.total_usd == totals.total_usd
    assert len(series.starts) == WINDOWS[window] // BUCKET_MINUTES[window]
    width = BUCKET_MINUTES[window] * MINUTE
    assert series.starts[0] == NOW - (WINDOWS[window] - 1) * MINUTE  # the window's first minute
    assert series.end_ms == NOW + MINUTE  # to the end of the current minute
    assert all(b - a == width for a, b in zip(series.starts, series.starts[1:], strict=False))


def test_each_bucket_holds_its_own_minutes() -> None:
    market = MarketState(NOW - 10 * MINUTE)
    for minutes_ago, position, usd in ((9, "long", 100.0), (5, "short", 30.0), (5, "long", 7.0)):
        event = liquidation("BTC", position, 1.0, 1.0, usd=usd)  # type: ignore[arg-type]
        ts = NOW - minutes_ago * MINUTE
        market.advance(ts)
        market.add(replace(event, ts=ts, recv_ts=ts))
    market.advance(NOW)
    series = series_of(market, ChartRequest(frozenset(), "15m"), MarketHistory())

    assert series.longs[14 - 9] == 100.0 and series.longs[14 - 5] == 7.0
    assert series.shorts[14 - 5] == 30.0
    assert sum(series.longs) == 107.0 and sum(series.shorts) == 30.0
    assert series.title == "$137 liquidated in 15m, 78% longs"


def test_reading_a_day_yields_to_the_loop_between_slices() -> None:
    market = busy_market(minutes=300)
    request = ChartRequest(frozenset(), "24h")
    yields = 0

    async def count_yields() -> Series:
        nonlocal yields
        task = asyncio.create_task(collect(request, market, Norms(), MarketHistory(), 60))
        while not task.done():
            yields += 1
            await asyncio.sleep(0)
        return task.result()

    series = asyncio.run(count_yields())
    assert yields >= 1440 // 60 - 1
    assert sum(series.longs) == market.totals("24h").long_usd


def test_history_keeps_per_minute_price_funding_and_interest_for_a_day() -> None:
    history = MarketHistory()
    btc = replace(funding("BTC", 0.0001), mark_price=97_000.0)
    pepe = replace(funding("PEPE", 0.0002, symbol="1000PEPEUSDT"), mark_price=0.011)
    okx = replace(funding("BTC", 0.0003, venue="okx", symbol="BTC-USDT-SWAP"), mark_price=None)
    extremes = {"BTC": okx, "PEPE": pepe}
    history.record_funding([btc, pepe, okx], extremes, NOW)
    history.record_open_interest({"BTC": 9.5e9}, NOW + 30_000)
    history.record_funding([replace(btc, mark_price=96_000.0)], {}, NOW + MINUTE)
    minute = NOW // MINUTE

    assert history.points(PRICE, "BTC", minute - 5, minute + 1) == [
        (NOW, 97_000.0),
        (NOW + MINUTE, 96_000.0),
    ]
    assert history.points(PRICE, "PEPE", minute, minute) == []  # priced per 1,000 coins
    assert history.points(FUNDING, "BTC", minute, minute) == [(NOW, pytest.approx(0.0003))]
    # float32 slots: 7 significant digits, plenty for a line on a chart, half the memory
    assert history.points(INTEREST, "BTC", minute, minute + 1) == [(NOW, 9_500_000_256.0)]
    # A day later the slot is reused: the old minute is gone, not shown as today's.
    history.record_open_interest({"BTC": 1e9}, NOW + 1440 * MINUTE)
    assert history.points(PRICE, "BTC", minute, minute) == []
    assert history.points(INTEREST, "BTC", minute + 1440, minute + 1440) == [
        (NOW + 1440 * MINUTE, 1_000_000_000.0)
    ]


def test_a_single_asset_chart_carries_its_price_funding_and_interest() -> None:
    market = busy_market(minutes=120)
    history = MarketHistory()
    for minute in range(60):
        at = NOW - minute * MINUTE
        rate = replace(funding("BTC", 0.0001), mark_price=90_000.0 + minute)
        history.record_funding([rate], {"BTC": rate}, at)
        history.record_open_interest({"BTC": 9e9}, at)
    one = series_of(market, ChartRequest(frozenset({"BTC"}), "1h"), history)
    whole = series_of(market, ChartRequest(frozenset(), "1h"), history)
    pair = series_of(market, ChartRequest(frozenset({"BTC", "ETH"}), "1h"), history)

    assert [p for _, p in one.price] == [90_000.0 + m for m in range(59, -1, -1)]
    assert one.price_base == "BTC" and len(one.funding) == 60 and len(one.interest) == 60
    assert whole.price_base == "BTC" and whole.price == one.price  # the market's price line
    assert whole.funding == [] and whole.interest == []
    assert pair.price_base is None and pair.price == []


# -- rendering -------------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def png_chunks_are_valid(data: bytes) -> bool:
    """Every chunk's CRC matches, and the file ends with IEND."""
    offset = 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        crc = int.from_bytes(data[offset + 8 + length : offset + 12 + length], "big")
        if zlib.crc32(kind + body) != crc:
            return False
        offset += 12 + length
        if kind == b"IEND":
            return offset == len(data)
    return False


@pytest.mark.parametrize(
    ("request_", "size"),
    [
        (ChartRequest(frozenset(), "24h"), (1080, 607)),
        (ChartRequest(frozenset({"BTC"}), "4h"), (1080, 870)),
        (ChartRequest(frozenset({"ETH", "SOL"}), "5m"), (1080, 607)),
    ],
)
def test_the_png_is_valid_phone_sized_and_small(
    request_: ChartRequest, size: tuple[int, int], render: Callable[[Series], bytes]
) -> None:
    history = MarketHistory()
    history.record_funding([replace(funding("BTC", 0.0001), mark_price=97_000.0)], {}, NOW)
    png = render(series_of(busy_market(minutes=300), request_, history))

    assert png_size(png) == size
    width, height = size
    assert width >= 1000 and height >= 560
    assert png_chunks_are_valid(png)
    assert 10_000 < len(png) < 400_000  # a real picture, far below the 10 MB upload limits


def test_an_empty_market_still_draws(render: Callable[[Series], bytes]) -> None:
    series = series_of(MarketState(NOW), ChartRequest(frozenset({"BTC"}), "1h"), MarketHistory())
    assert series.title == "No liquidations in 1h"
    assert png_chunks_are_valid(render(series))


# -- captions and commands -----------------------------------------------------------------


def test_captions_say_what_the_chart_shows() -> None:
    assert caption(ChartRequest(frozenset(), "24h")) == (
        "All assets: liquidations in the last 24h, longs above zero, shorts below. Times in UTC."
    )
    assert caption(ChartRequest(frozenset({"BTC"}), "4h")) == (
        "BTC: liquidations in the last 4h, longs above zero, shorts below; mark price, funding "
        "per 8h and open interest where liqbot has them. Times in UTC."
    )


KNOWN = ("BTC", "ETH", "SOL")
USAGE = (
    "use /chart [asset] [window], e.g. /chart BTC 4h; the window is one of 5m, 15m, 1h, 4h, 24h "
    "(default 24h)"
)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ChartRequest(frozenset(), "24h")),
        (["btc"], ChartRequest(frozenset({"BTC"}), "24h")),
        (["4H"], ChartRequest(frozenset(), "4h")),
        (["1h", "eth"], ChartRequest(frozenset({"ETH"}), "1h")),
        (["SOL", "5m"], ChartRequest(frozenset({"SOL"}), "5m")),
    ],
)
def test_chart_arguments(args: list[str], expected: ChartRequest) -> None:
    assert parse_chart_args(args, KNOWN, frozenset()) == expected


def test_chart_defaults_to_the_watch_list() -> None:
    watch = frozenset({"BTC", "ETH"})
    assert parse_chart_args(["1h"], KNOWN, watch) == ChartRequest(watch, "1h")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["banana"], f"'banana' is neither an asset liqbot has data for nor a window: {USAGE}"),
        (["BTC", "7y"], f"'7y' is neither an asset liqbot has data for nor a window: {USAGE}"),
        (["BTC", "ETH"], f"one asset and one window at most: {USAGE}"),
        (["1h", "4h"], f"one asset and one window at most: {USAGE}"),
    ],
)
def test_chart_refusals_say_what_is_accepted(args: list[str], message: str) -> None:
    with pytest.raises(UserError) as raised:
        parse_chart_args(args, KNOWN, frozenset())
    assert str(raised.value) == message


CHAT = ChatRef("telegram", "7001")


class NoEngine:
    """The chats service's engine, for tests of commands alone."""

    def subscription_changed(self, sub: Subscription) -> None:
        pass


def core(db: Database, chart_assets: Callable[[], list[str]] | None) -> CommandCore:
    chats = ChatService(db, Writer.inline(db), NoEngine(), Outboxes(), ManualClock(NOW))
    return CommandCore(
        chats, Thresholds(), status=dict, clock=lambda: NOW, chart_assets=chart_assets
    )


async def allowed() -> bool:
    return True


async def test_the_chart_command_replies_with_a_chart_or_a_refusal() -> None:
    db = open_database(":memory:")
    commands = core(db, lambda: list(KNOWN))
    reply = await commands.handle("chart", CHAT, ["BTC", "4h"], allowed)
    assert reply == Reply(
        caption(ChartRequest(frozenset({"BTC"}), "4h")),
        chart=ChartRequest(frozenset({"BTC"}), "4h"),
    )
    refused = await commands.handle("chart", CHAT, ["banana"], allowed)
    expected = f"'banana' is neither an asset liqbot has data for nor a window: {USAGE}"
    assert refused == Reply(expected, refusal=True)

    off = await core(db, None).handle("chart", CHAT, [], allowed)
    assert off == Reply("Charts are switched off on this liqbot.", refusal=True)


async def test_set_chart_on_and_off() -> None:
    db = open_database(":memory:")
    commands = core(db, lambda: list(KNOWN))
    await commands.handle("subscribe", CHAT, [], allowed)
    reply = await commands.handle("set", CHAT, ["chart", "on"], allowed)
    assert reply is not None and "\nChart: on\n" in reply.text
    assert alerts.load_subscription(db, "telegram", "7001") == Subscription(
        "telegram", "7001", chart=True
    )
    bad = await commands.handle("set", CHAT, ["chart", "maybe"], allowed)
    assert bad == Reply("chart must be on or off, e.g. /set chart on", refusal=True)
    await commands.handle("set", CHAT, ["CHART", "OFF"], allowed)
    stored = alerts.load_subscription(db, "telegram", "7001")
    assert stored is not None and not stored.chart

    disabled = await core(db, None).handle("set", CHAT, ["chart", "on"], allowed)
    assert disabled == Reply("Charts are switched off on this liqbot.", refusal=True)
    stored = alerts.load_subscription(db, "telegram", "7001")
    assert stored is not None and not stored.chart


# -- the service: who gets a chart, one render shared, failures as text ---------------------


def row(chat_id: str, rule: str = "window", row_id: int = 1) -> OutboxRow:
    alert = plain("headline\nmore", rule, "long")
    return OutboxRow(row_id, "telegram", chat_id, rule, "*", "long", (alert,), 0, 0, 0)


def service(db: Database, render: Callable[[Series], bytes] | None = None) -> ChartService:
    """The real worker process, or a thread when the test brings its own render function."""
    market, history = busy_market(minutes=60), MarketHistory()
    if render is None:
        return ChartService(db, market, Norms(), history)
    return ChartService(db, market, Norms(), history, render, lambda: ThreadPoolExecutor(1))


def subscribe(db: Database, chat_id: str, **changes: object) -> None:
    sub = replace(Subscription("telegram", chat_id), **changes)  # type: ignore[arg-type]
    alerts.save_subscription(db, sub, NOW)


def test_which_alerts_carry_which_chart() -> None:
    db = open_database(":memory:")
    subscribe(db, "1", chart=True, thresholds=Thresholds(window="4h"), watch=frozenset({"BTC"}))
    subscribe(db, "2", chart=False)
    subscribe(db, "3", chart=True, digest="hourly")
    subscribe(db, "4", chart=True, digest="daily 08:00")
    charts_ = service(db)

    assert charts_.request_for(row("1")) == ChartRequest(frozenset({"BTC"}), "4h")
    assert charts_.request_for(row("1", "spike")) == ChartRequest(frozenset({"BTC"}), "4h")
    assert charts_.request_for(row("1", "whale")) is None
    assert charts_.request_for(row("1", "funding")) is None
    assert charts_.request_for(row("2")) is None  # charts off (the default)
    assert charts_.request_for(row("9")) is None  # no such subscription
    assert charts_.request_for(row("3", "digest")) == ChartRequest(frozenset(), "1h")
    assert charts_.request_for(row("4", "digest")) == ChartRequest(frozenset(), "24h")
    charts_.close()


async def test_five_thousand_chats_share_one_render_drawn_in_the_worker_process() -> None:
    db = open_database(":memory:")
    charts_ = ChartService(db, busy_market(minutes=60), Norms(), MarketHistory(), render_in_worker)
    with db.atomic():
        for chat in range(5000):
            subscribe(db, str(chat), chart=True)
    results = await asyncio.gather(*(charts_.chart_for(row(str(c))) for c in range(5000)))

    assert charts_.renders == 1
    assert {id(r) for r in results} == {id(results[0])}
    assert results[0] is not None
    pid, _, png = results[0].png.partition(b":")
    assert int(pid) != os.getpid() and png.startswith(PNG_SIGNATURE)
    other = await charts_.chart(ChartRequest(frozenset({"BTC"}), "1h"))
    assert other is not None and charts_.renders == 2
    charts_.close()


async def test_a_chart_that_cannot_be_drawn_is_none_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = open_database(":memory:")
    subscribe(db, "1", chart=True)

    def broken(series: Series) -> bytes:
        raise RuntimeError("no fonts")

    charts_ = service(db, broken)
    assert await charts_.chart_for(row("1")) is None
    assert await charts_.chart_for(row("1", row_id=2)) is None  # not drawn again this minute
    assert (charts_.renders, charts_.failures) == (0, 1)
    assert "charts: cannot draw All assets 1h" in caplog.text and "no fonts" in caplog.text
    charts_.close()


async def test_a_dead_worker_is_replaced_and_its_alert_goes_as_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = open_database(":memory:")
    market, history = busy_market(minutes=60), MarketHistory()
    charts_ = ChartService(db, market, Norms(), history, die, warm_chart_worker)
    assert await charts_.chart(ChartRequest(frozenset(), "1h")) is None
    assert charts_.failures == 1 and "the render worker died" in caplog.text
    charts_.render_png = render_in_worker
    drawn = await charts_.chart(ChartRequest(frozenset({"BTC"}), "1h"))
    assert drawn is not None and charts_.renders == 1
    charts_.close()
