"""Escalation (issue 15): inside the cooldown, a window alert again when the cascade reaches the
chat's multiple of the total its last window alert told; the story survives a restart."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.escalation import escalates
from bot.model import RuleState
from tests.engine_builders import MINUTE, SECOND, T0, Bot, liq, outbox, sub

COOLDOWN = 1800  # seconds


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "x.db"


async def test_a_cascade_that_doubles_is_told_again_inside_the_cooldown(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("a", liq=1_000_000, cooldown=COOLDOWN, escalation=2.0))
    bot.liquidate(liq("BTC", "long", 1_200_000, T0))
    assert await bot.step(T0 + SECOND) == {"a": ["$1.2M liquidated in 1h, 100% longs"]}
    bot.liquidate(liq("ETH", "long", 1_100_000, T0 + 5 * MINUTE))
    assert await bot.step(T0 + 5 * MINUTE) == {}  # $2.3M: short of 2x $1.2M
    bot.liquidate(liq("SOL", "short", 200_000, T0 + 10 * MINUTE, venue="okx"))

    assert await bot.step(T0 + 10 * MINUTE) == {"a": ["$2.5M liquidated in 1h, 92% longs"]}
    assert bot.sent.texts("a")[-1] == (
        "$2.5M liquidated in 1h, 92% longs\n"
        "Up from $1.2M at 12:00 UTC\n"
        "Top assets: BTC $1.2M, ETH $1.1M, SOL $200K\n"
        "Venues: Binance $2.3M, OKX $200K\n"
        "Not enough history yet for a 30-day comparison."
    )
    bot.liquidate(liq("BTC", "long", 2_000_000, T0 + 11 * MINUTE))
    assert await bot.step(T0 + 11 * MINUTE) == {}  # $4.5M: short of 2x $2.5M


async def test_escalation_off_or_muted_stays_silent_in_the_cooldown(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(
        sub("off", liq=1_000_000, cooldown=COOLDOWN, escalation=0.0),
        sub("muted", liq=1_000_000, cooldown=COOLDOWN, escalation=2.0),
    )
    bot.liquidate(liq("BTC", "long", 1_200_000, T0))
    assert len(await bot.step(T0 + SECOND)) == 2
    bot.subscribe(
        sub("muted", liq=1_000_000, cooldown=COOLDOWN, escalation=2.0, mute_until=T0 + 20 * MINUTE)
    )
    bot.engine.reload_subscriptions()
    bot.liquidate(liq("BTC", "long", 5_000_000, T0 + 5 * MINUTE))
    assert await bot.step(T0 + 5 * MINUTE) == {}


async def test_the_story_survives_a_restart(path: Path) -> None:
    first = Bot(path, T0)
    first.subscribe(sub("a", liq=1_000_000, cooldown=COOLDOWN, escalation=3.0))
    first.liquidate(liq("BTC", "long", 1_000_000, T0))
    assert await first.step(T0 + SECOND) == {"a": ["$1M liquidated in 1h, 100% longs"]}
    await first.core.recorder.flush()

    second = Bot(path, T0 + 2 * MINUTE)
    second.liquidate(liq("BTC", "long", 1_900_000, T0 + 2 * MINUTE))
    assert await second.step(T0 + 2 * MINUTE) == {}  # $2.9M: short of 3x $1M
    second.liquidate(liq("BTC", "long", 100_000, T0 + 3 * MINUTE))
    assert await second.step(T0 + 3 * MINUTE) == {"a": ["$3M liquidated in 1h, 100% longs"]}
    assert outbox(path) == [("a", "window", "sent"), ("a", "window", "sent")]


def test_escalates_needs_an_open_story_and_the_multiple() -> None:
    told = RuleState(False, T0, 100.0)
    assert escalates(told, 200.0, 2.0) and not escalates(told, 199.0, 2.0)
    assert not escalates(told, 1e9, 0.0)  # off
    assert not escalates(RuleState(False, T0), 1e9, 2.0)  # no story open (primed)


# Property: one chat never gets two window alerts within the cooldown unless each later one is an
# escalation of at least the multiple.

amounts = st.lists(
    st.tuples(st.integers(1, 120), st.integers(50_000, 3_000_000)), min_size=1, max_size=12
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=amounts, multiple=st.sampled_from([1.5, 2.0, 3.0]))
async def test_window_alerts_inside_the_cooldown_are_escalations(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, int]], multiple: float
) -> None:
    path = tmp_path_factory.mktemp("p") / "x.db"
    bot = Bot(path, T0)
    bot.subscribe(sub("a", liq=1_000_000, cooldown=COOLDOWN, escalation=multiple))
    now = T0
    told: list[tuple[int, float]] = []  # (time, total) of each window alert sent
    seen = 0
    for seconds, usd in steps:
        now += seconds * 10 * SECOND
        bot.liquidate(liq("BTC", "long", usd, now))
        await bot.step(now)
        rows, seen = bot.sent.rows[seen:], len(bot.sent.rows)
        told += [(now, row.alerts[0].figures["total_usd"]) for row in rows if row.rule == "window"]
    for (at, total), (later_at, later_total) in itertools.pairwise(told):
        if later_at - at < COOLDOWN * 1000:
            assert later_total >= multiple * total
    bot.db.close()
