"""The closing summary (issue 15): a cascade that produced a window alert is closed by one
message when it subsides; never without an opening alert."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import cascade
from bot.model import Story
from tests.engine_builders import MINUTE, SECOND, T0, Bot, liq, outbox, sub

COOLDOWN = 1800  # seconds


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "x.db"


async def test_thirty_minutes_without_a_new_alert_close_the_story(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("a", liq=1_000_000, cooldown=COOLDOWN, escalation=2.0, summary=True))
    bot.liquidate(liq("BTC", "long", 900_000, T0), liq("ETH", "short", 300_000, T0))
    assert await bot.step(T0 + SECOND) == {"a": ["$1.2M liquidated in 1h, 75% longs"]}
    bot.liquidate(liq("BTC", "long", 1_300_000, T0 + 5 * MINUTE, venue="bybit"))
    assert await bot.step(T0 + 5 * MINUTE) == {"a": ["$2.5M liquidated in 1h, 88% longs"]}
    bot.liquidate(liq("SOL", "long", 100_000, T0 + 10 * MINUTE))
    assert await bot.step(T0 + 10 * MINUTE) == {}
    assert await bot.step(T0 + 35 * MINUTE - SECOND) == {}

    summary = "Cascade over: $2.6M liquidated in 1h at the peak (88% longs), 12:00-12:35 UTC"
    assert await bot.step(T0 + 35 * MINUTE) == {"a": [summary]}
    assert bot.sent.texts("a")[-1] == (
        f"{summary}\n"
        "Lasted 35 min\n"
        "Top assets at the peak: BTC $2.2M, ETH $300K, SOL $100K\n"
        "Largest liquidation: $1.3M BTC long on Bybit"
    )
    assert await bot.step(T0 + 60 * MINUTE) == {}  # once


async def test_a_total_below_half_the_threshold_closes_the_story(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(
        sub("a", liq=1_000_000, window="5m", summary=True),
        sub("off", liq=1_000_000, window="5m", summary=False),
    )
    bot.liquidate(liq("BTC", "short", 1_000_000, T0))
    assert len(await bot.step(T0 + SECOND)) == 2
    bot.liquidate(liq("BTC", "short", 400_000, T0 + 5 * MINUTE))
    assert await bot.step(T0 + 5 * MINUTE + SECOND) == {
        "a": ["Cascade over: $1M liquidated in 5m at the peak (100% shorts), 12:00-12:05 UTC"]
    }
    assert outbox(path) == [
        ("a", "window", "sent"),
        ("off", "window", "sent"),
        ("a", "summary", "sent"),
    ]


async def test_the_open_story_survives_a_restart(path: Path) -> None:
    first = Bot(path, T0)
    first.subscribe(sub("a", liq=1_000_000, cooldown=COOLDOWN, summary=True))
    first.liquidate(liq("BTC", "long", 1_000_000, T0))
    assert await first.step(T0 + SECOND) == {"a": ["$1M liquidated in 1h, 100% longs"]}
    await first.core.recorder.flush()

    second = Bot(path, T0 + 31 * MINUTE)
    assert await second.step(T0 + 31 * MINUTE) == {
        "a": ["Cascade over: $1M liquidated in 1h at the peak (100% longs), 12:00-12:31 UTC"]
    }


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.integers(1, 240), st.integers(0, 2_000_000)), min_size=1, max_size=12
    )
)
async def test_a_summary_never_comes_without_an_opening_alert(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, int]]
) -> None:
    bot = Bot(tmp_path_factory.mktemp("p") / "x.db", T0)
    bot.subscribe(sub("a", liq=1_000_000, window="5m", summary=True, escalation=2.0))
    now = T0
    for seconds, usd in steps:
        now += seconds * 10 * SECOND
        if usd:
            bot.liquidate(liq("BTC", "long", usd, now))
        await bot.step(now)
    rules = [row.rule for row in bot.sent.rows]
    opened = False
    for rule in rules:
        if rule == "summary":
            assert opened  # a window alert opened the story this summary closes
            opened = False
        elif rule == "window":
            opened = True
    bot.db.close()


def test_a_chat_s_largest_liquidation_is_the_largest_it_watches() -> None:
    btc, eth = liq("BTC", "long", 1_300_000, T0), liq("ETH", "short", 2_000_000, T0)
    sol = liq("SOL", "long", 500_000, T0)
    largest = cascade.Largest({"BTC": btc, "ETH": eth, "SOL": sol})
    assert largest.watched_by(sub("market")) == eth
    assert largest.watched_by(sub("alts", watch=("SOL", "BTC"))) == btc
    assert largest.watched_by(sub("doge", watch=("DOGE",))) is None
    assert cascade.Largest({}).watched_by(sub("market")) is None
    story = Story("telegram:1", T0, T0, 2e6, 1e6, "BTC", largest_usd=1_500_000)
    assert cascade.with_largest(story, btc) is story  # not larger than the story's
    assert cascade.with_largest(story, None) is story
    assert cascade.with_largest(story, eth) == replace(
        story, largest_usd=2_000_000, largest="$2M ETH short on Binance"
    )
