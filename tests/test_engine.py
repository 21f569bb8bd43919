"""The alert engine end to end on a SQLite file: events in through Core, explicit clock, outbox
drained to a recording sender. Each test asserts exactly which chats got which messages."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.engine_builders import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    T0,
    Bot,
    hourly_history,
    interest,
    liq,
    outbox,
    rate,
    rule_states,
    seed_history,
    sub,
)

WHALE_BTC = "Whale liquidation: $2M BTC long on Binance"
WHALE_ETH = "Whale liquidation: $2M ETH long on Binance"
NEW_YORK = "America/New_York"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "x.db"


# Rules: each fires for exactly the chats whose thresholds are crossed.


async def test_window_rule_fires_for_the_chats_whose_total_and_side_share_are_crossed(
    path: Path,
) -> None:
    bot = Bot(path, T0)
    bot.subscribe(
        sub("any", liq=400_000),
        sub("higher", liq=500_000),
        sub("side80", liq=400_000, side=0.8),
        sub("side75", liq=400_000, side=0.75),
        sub("alts", liq=100_000, watch={"ETH", "SOL"}),
        sub("btc", liq=300_000, side=1.0, watch={"BTC"}),
        sub("doge", liq=10_000, watch={"DOGE"}),
        sub("five", liq=450_000, window="5m"),
        sub("off", liq=0, side=0.5),
    )
    bot.liquidate(
        liq("BTC", "long", 300_000, T0),
        liq("ETH", "short", 100_000, T0, venue="bybit"),
        liq("SOL", "long", 50_000, T0, venue="okx"),
    )

    assert await bot.step(T0 + SECOND) == {
        "any": ["$450K liquidated in 1h, 78% longs"],
        "side75": ["$450K liquidated in 1h, 78% longs"],
        "alts": ["$150K liquidated in 1h, 67% shorts"],
        "btc": ["$300K liquidated in 1h, 100% longs"],
        "five": ["$450K liquidated in 5m, 78% longs"],
    }
    assert bot.sent.texts("alts") == [
        "$150K liquidated in 1h, 67% shorts\n"
        "Top assets: ETH $100K, SOL $50K\n"
        "Venues: Bybit $100K, OKX $50K\n"
        "Not enough history yet for a 30-day comparison."
    ]


async def test_whale_rule_fires_per_chat_threshold_and_watch_list(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(
        sub("big", whale=1_000_000),
        sub("small", whale=500_000),
        sub("eth", whale=500_000, watch={"ETH"}),
        sub("huge", whale=3_000_000),
        sub("sol", whale=10_000, watch={"SOL"}),
        sub("solbig", whale=50_000, watch={"SOL"}),
        sub("off", whale=0),
    )
    bot.liquidate(
        liq("BTC", "long", 2_000_000, T0),
        liq("ETH", "short", 600_000, T0, venue="bybit"),
        liq("SOL", "long", 20_000, T0, venue="okx"),
    )

    eth = "Whale liquidation: $600K ETH short on Bybit"
    assert await bot.step(T0 + SECOND) == {
        "big": [WHALE_BTC],
        "small": [f"{WHALE_BTC} | {eth}"],  # one message per chat and rule in a pass
        "eth": [eth],
        "sol": ["Whale liquidation: $20K SOL long on OKX"],
    }


async def test_funding_rule_takes_each_assets_most_extreme_venue_and_the_watch_list(
    path: Path,
) -> None:
    bot = Bot(path, T0)
    bot.subscribe(
        sub("all", funding=0.0005),
        sub("high", funding=0.001),
        sub("eth", funding=0.0005, watch={"ETH"}),
        sub("btc", funding=0.0005, watch={"BTC", "ETH"}),
        sub("off", funding=0),
    )
    bot.core.on_funding(
        [
            rate("BTC", 0.0001),
            rate("BTC", 0.0006, venue="okx"),
            rate("SOL", -0.0007, venue="bybit", interval_hours=4),
            rate("ETH", 0.0002),
        ]
    )
    btc = "BTC funding +0.0600% per 8h on OKX: longs pay shorts"
    sol = "SOL funding -0.1400% per 8h on Bybit: shorts pay longs"

    assert await bot.step(T0) == {
        "all": ["Funding extremes: BTC, SOL"],
        "high": [sol],
        "btc": [btc],
    }
    # One story, one message: a line per asset (golden text).
    assert bot.sent.texts("all") == [
        "Funding extremes: BTC, SOL\n"
        f"{btc} (BTCUSDT: +0.0600% every 8h (+66% APR))\n"
        f"{sol} (SOLUSDT: -0.0700% every 4h (-153% APR))"
    ]


async def test_open_interest_rule_sums_venues_over_the_window_and_filters_by_watch_list(
    path: Path,
) -> None:
    bot = Bot(path, T0 - HOUR)
    bot.subscribe(
        sub("all", oi=0.05),
        sub("ten", oi=0.1),
        sub("btc", oi=0.05, watch={"BTC"}),
        sub("four", oi=0.05, window="4h"),
        sub("off", oi=0),
    )
    bot.core.on_open_interest(
        [
            interest("BTC", 100e6, T0 - HOUR),
            interest("BTC", 100e6, T0 - HOUR, venue="okx"),
            interest("ETH", 50e6, T0 - HOUR),
        ],
        T0 - HOUR,
    )
    # Binance BTC alone moves 12%; summed across venues BTC moves 6%.
    bot.core.on_open_interest(
        [
            interest("BTC", 112e6, T0),
            interest("BTC", 100e6, T0, venue="okx"),
            interest("ETH", 40e6, T0),
        ],
        T0,
    )
    btc = "BTC open interest up 6.0% in 1h to $212M"
    eth = "ETH open interest down 20.0% in 1h to $40M"

    assert await bot.step(T0) == {
        "all": ["Open interest moves: BTC, ETH"],
        "ten": [eth],
        "btc": [btc],
    }
    # One story, one message: a line per asset (golden text).
    assert bot.sent.texts("all") == [
        "Open interest moves: BTC, ETH\n"
        f"{btc} (From $200M, summed across venues)\n"
        f"{eth} (From $50M, summed across venues)"
    ]
    assert bot.sent.texts("btc")[0].splitlines()[1] == "From $200M, summed across venues"


async def test_a_rule_switched_off_never_fires(path: Path) -> None:
    bot = Bot(path, T0 - HOUR)
    bot.subscribe(
        sub("off"),
        sub("on", liq=1_000_000, whale=1_000_000, funding=0.0005, oi=0.05),
    )
    bot.core.on_open_interest([interest("BTC", 100e6, T0 - HOUR)], T0 - HOUR)
    bot.core.on_open_interest([interest("BTC", 120e6, T0)], T0)
    bot.core.on_funding([rate("BTC", 0.001)])
    bot.liquidate(liq("BTC", "long", 2_000_000, T0))

    assert await bot.step(T0) == {
        "on": [
            "$2M liquidated in 1h, 100% longs",
            WHALE_BTC,
            "BTC funding +0.1000% per 8h on Binance: longs pay shorts",
            "BTC open interest up 20.0% in 1h to $120M",
        ]
    }
    assert {chat for chat, _, _ in rule_states(path)} == {"telegram:on"}


# Hygiene: hysteresis, cooldown, mute, quiet hours.


async def test_a_value_staying_above_the_threshold_does_not_repeat_after_the_cooldown(
    path: Path,
) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("h", window="5m", liq=100_000, cooldown=60))
    bot.liquidate(liq("BTC", "long", 150_000, T0))

    assert await bot.step(T0) == {"h": ["$150K liquidated in 5m, 100% longs"]}
    assert await bot.step(T0 + 2 * MINUTE) == {}
    assert await bot.step(T0 + 4 * MINUTE + 59 * SECOND) == {}
    assert rule_states(path) == {("telegram:h", "window", "*"): False}


async def test_a_rule_rearms_below_80_percent_and_then_fires_again(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("h", window="5m", liq=100_000, cooldown=60))
    bot.liquidate(liq("BTC", "long", 150_000, T0))
    assert await bot.step(T0) == {"h": ["$150K liquidated in 5m, 100% longs"]}

    assert await bot.step(T0 + 5 * MINUTE) == {}  # the event left the window: value 0
    assert rule_states(path) == {("telegram:h", "window", "*"): True}
    bot.liquidate(liq("BTC", "short", 120_000, T0 + 5 * MINUTE + SECOND))
    assert await bot.step(T0 + 5 * MINUTE + 2 * SECOND) == {
        "h": ["$120K liquidated in 5m, 100% shorts"]
    }


async def test_a_value_hovering_between_80_and_100_percent_does_not_repeat(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("h", window="5m", liq=100_000, cooldown=60))
    bot.liquidate(liq("BTC", "long", 15_000, T0))
    bot.liquidate(liq("BTC", "long", 90_000, T0 + MINUTE))
    assert await bot.step(T0 + MINUTE + SECOND) == {"h": ["$105K liquidated in 5m, 100% longs"]}

    assert await bot.step(T0 + 5 * MINUTE) == {}  # 90K: 90% of the threshold
    bot.liquidate(liq("BTC", "long", 15_000, T0 + 5 * MINUTE + SECOND))
    assert await bot.step(T0 + 5 * MINUTE + 2 * SECOND) == {}  # 105K again, 4 min later
    assert rule_states(path) == {("telegram:h", "window", "*"): False}

    assert await bot.step(T0 + 6 * MINUTE) == {}  # 15K: below 80%, re-armed
    bot.liquidate(liq("BTC", "long", 90_000, T0 + 6 * MINUTE + SECOND))
    assert await bot.step(T0 + 6 * MINUTE + 2 * SECOND) == {
        "h": ["$105K liquidated in 5m, 100% longs"]
    }


async def test_hysteresis_is_per_chat_among_chats_sharing_a_window(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(
        sub("lo", window="5m", liq=100_000, cooldown=60),
        sub("hi", window="5m", liq=200_000, cooldown=60),
    )
    bot.liquidate(liq("BTC", "long", 180_000, T0), liq("BTC", "long", 120_000, T0 + MINUTE))
    fired = "$300K liquidated in 5m, 100% longs"
    assert await bot.step(T0 + MINUTE + SECOND) == {"lo": [fired], "hi": [fired]}

    # 120K re-arms hi (below 160K) but not lo (above 80K).
    assert await bot.step(T0 + 5 * MINUTE) == {}
    bot.liquidate(liq("BTC", "long", 130_000, T0 + 5 * MINUTE + SECOND))
    assert await bot.step(T0 + 5 * MINUTE + 2 * SECOND) == {
        "hi": ["$250K liquidated in 5m, 100% longs"]
    }


async def test_a_new_chat_in_the_same_window_leaves_the_others_disarmed(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("a", window="5m", liq=200_000, cooldown=60))
    bot.liquidate(liq("BTC", "long", 180_000, T0), liq("BTC", "long", 120_000, T0 + MINUTE))
    fired = "$300K liquidated in 5m, 100% longs"
    assert await bot.step(T0 + MINUTE + SECOND) == {"a": [fired]}

    bot.subscribe(sub("b", window="5m", liq=100_000, cooldown=60))  # first in the ladder now
    assert await bot.step(T0 + 3 * MINUTE) == {"b": [fired]}
    assert await bot.step(T0 + 5 * MINUTE) == {}  # 120K: a re-arms, b does not
    bot.liquidate(liq("BTC", "long", 130_000, T0 + 5 * MINUTE + SECOND))
    assert await bot.step(T0 + 5 * MINUTE + 2 * SECOND) == {
        "a": ["$250K liquidated in 5m, 100% longs"]
    }


async def test_a_raised_threshold_re_arms_against_the_new_threshold(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("a", window="5m", liq=200_000, cooldown=60))
    bot.liquidate(liq("BTC", "long", 50_000, T0), liq("BTC", "long", 250_000, T0 + MINUTE))
    assert await bot.step(T0 + MINUTE + SECOND) == {"a": ["$300K liquidated in 5m, 100% longs"]}

    bot.subscribe(sub("a", window="5m", liq=400_000, cooldown=60))
    assert await bot.step(T0 + 5 * MINUTE) == {}  # 250K: below 80% of 400K, re-armed
    bot.liquidate(liq("BTC", "long", 200_000, T0 + 5 * MINUTE + SECOND))
    assert await bot.step(T0 + 5 * MINUTE + 2 * SECOND) == {
        "a": ["$450K liquidated in 5m, 100% longs"]
    }


async def test_funding_hysteresis_is_per_asset(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("f", funding=0.0005, cooldown=60))
    btc = "BTC funding +0.0600% per 8h on Binance: longs pay shorts"
    eth = "ETH funding +0.0600% per 8h on Binance: longs pay shorts"

    async def funding_at(now: int, btc_rate: float, eth_rate: float) -> dict[str, list[str]]:
        bot.core.on_funding([rate("BTC", btc_rate), rate("ETH", eth_rate)])
        return await bot.step(now)

    assert await funding_at(T0, 0.0006, 0.0001) == {"f": [btc]}
    assert await funding_at(T0 + 2 * MINUTE, 0.00045, 0.0006) == {"f": [eth]}
    assert await funding_at(T0 + 4 * MINUTE, 0.0006, 0.0006) == {}
    assert await funding_at(T0 + 6 * MINUTE, 0.00039, 0.0006) == {}
    assert await funding_at(T0 + 8 * MINUTE, 0.0006, 0.0006) == {"f": [btc]}


async def test_cooldown_is_per_chat_rule_and_asset(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(
        sub("a", whale=1_000_000, liq=1_000_000, cooldown=60),
        sub("b", whale=1_000_000, cooldown=600),
    )

    async def whale_at(now: int, base: str) -> dict[str, list[str]]:
        bot.liquidate(liq(base, "long", 2_000_000, now))
        return await bot.step(now)

    assert await whale_at(T0, "BTC") == {
        "a": ["$2M liquidated in 1h, 100% longs", WHALE_BTC],
        "b": [WHALE_BTC],
    }
    assert await whale_at(T0 + SECOND, "ETH") == {"a": [WHALE_ETH], "b": [WHALE_ETH]}
    assert await whale_at(T0 + 30 * SECOND, "BTC") == {}
    assert await whale_at(T0 + 61 * SECOND, "BTC") == {"a": [WHALE_BTC]}
    assert await whale_at(T0 + 601 * SECOND, "BTC") == {"a": [WHALE_BTC], "b": [WHALE_BTC]}


async def test_a_muted_chat_gets_nothing_until_the_mute_ends(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(
        sub("muted", liq=1_000_000, whale=1_000_000, mute_until=T0 + 10 * MINUTE),
        sub("open", liq=1_000_000, whale=1_000_000),
    )
    bot.liquidate(liq("BTC", "long", 2_000_000, T0))
    assert await bot.step(T0) == {"open": ["$2M liquidated in 1h, 100% longs", WHALE_BTC]}
    bot.liquidate(liq("ETH", "long", 2_000_000, T0 + 5 * MINUTE))
    assert await bot.step(T0 + 5 * MINUTE) == {"open": [WHALE_ETH]}

    # Whales seen while muted are gone; the window total still stands when the mute ends.
    assert await bot.step(T0 + 10 * MINUTE) == {"muted": ["$4M liquidated in 1h, 100% longs"]}
    assert await bot.step(T0 + 12 * MINUTE) == {}


async def test_quiet_hours_hold_alerts_and_send_one_summary_when_they_end(path: Path) -> None:
    night = T0 - 8 * HOUR  # 23:00 in New York; quiet from 22:00 to 07:00 (= T0)
    bot = Bot(path, night)
    bot.subscribe(
        sub("night", liq=1_000_000, whale=1_000_000, quiet=(22 * 60, 7 * 60), timezone=NEW_YORK),
        sub("day", liq=1_000_000, whale=1_000_000),
    )
    bot.liquidate(liq("BTC", "long", 2_000_000, night))
    assert await bot.step(night) == {"day": ["$2M liquidated in 1h, 100% longs", WHALE_BTC]}
    assert await bot.schedule(night + HOUR) == {}
    bot.liquidate(liq("ETH", "long", 2_000_000, night + 2 * HOUR))
    assert await bot.step(night + 2 * HOUR) == {"day": [WHALE_ETH]}
    assert [status for chat, _, status in outbox(path) if chat == "night"] == ["held"] * 3

    assert await bot.schedule(T0 - MINUTE) == {}  # 06:59 in New York
    assert await bot.schedule(T0) == {"night": ["During quiet hours, 3 alerts were held back:"]}
    assert bot.sent.texts("night") == [
        "During quiet hours, 3 alerts were held back:\n"
        "- $2M liquidated in 1h, 100% longs\n"
        f"- {WHALE_BTC}\n"
        f"- {WHALE_ETH}"
    ]
    assert await bot.schedule(T0 + MINUTE) == {}
    assert await bot.schedule(T0 + 2 * HOUR) == {}
    assert [(rule, status) for chat, rule, status in outbox(path) if chat == "night"] == [
        ("window", "merged"),
        ("whale", "merged"),
        ("whale", "merged"),
        ("quiet", "sent"),
    ]


# Digests.


async def test_digests_are_sent_once_at_local_time_daily_and_hourly(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(
        sub("ny", digest="daily 08:00", timezone=NEW_YORK),  # 13:00 UTC
        sub("kolkata", digest="hourly", timezone="Asia/Kolkata"),  # hours start at :30 UTC
        sub("utc", digest="daily 08:00"),
        sub("off"),
    )
    bot.liquidate(liq("BTC", "long", 300_000, T0), liq("ETH", "short", 100_000, T0))
    hourly = "Hourly digest: $400K liquidated in 1h, 75% longs"

    assert await bot.schedule(T0 + 29 * MINUTE) == {}
    assert await bot.schedule(T0 + 30 * MINUTE) == {"kolkata": [hourly]}
    for minute in (31, 35, 39, 40, 59):
        assert await bot.schedule(T0 + minute * MINUTE) == {}, minute
    assert await bot.schedule(T0 + HOUR) == {
        "ny": ["Daily digest: $400K liquidated in 24h, 75% longs"]
    }
    assert bot.sent.texts("ny")[0].splitlines()[1] == "No liquidations in 1h"
    for minute in (61, 65, 69, 70):
        assert await bot.schedule(T0 + minute * MINUTE) == {}, minute
    assert await bot.schedule(T0 + 90 * MINUTE) == {
        "kolkata": ["Hourly digest: no liquidations in 1h"]
    }
    assert await bot.schedule(T0 + DAY + HOUR) == {"ny": ["Daily digest: no liquidations in 24h"]}
    assert await bot.schedule(T0 + DAY + HOUR + 5 * MINUTE) == {}


async def test_a_daily_digest_just_before_midnight_is_still_sent_just_after_it(
    path: Path,
) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("late", digest="daily 12:05"))  # T0 is 12:00 UTC: due 5 minutes later
    assert await bot.schedule(T0 + 4 * MINUTE) == {}
    bot2 = Bot(path, T0)
    bot2.subscribe(sub("late", digest="daily 23:55"))
    # The call at 23:55 was missed (a restart); 00:02 the next day is still within the grace.
    assert await bot2.schedule(T0 + 12 * HOUR + 2 * MINUTE) == {
        "late": ["Daily digest: no liquidations in 24h"]
    }
    assert await bot2.schedule(T0 + 12 * HOUR + 4 * MINUTE) == {}


async def test_a_muted_chat_gets_no_digest(path: Path) -> None:
    bot = Bot(path, T0)
    bot.subscribe(sub("muted", digest="hourly", mute_until=T0 + 2 * HOUR))
    assert await bot.schedule(T0 + HOUR) == {}
    assert await bot.schedule(T0 + 2 * HOUR) == {"muted": ["Hourly digest: no liquidations in 1h"]}


# Spikes against the 30-day norm.


@pytest.mark.parametrize("hours", [0, 23], ids=["no-history", "23h-history"])
async def test_a_spike_never_fires_without_a_day_of_history(path: Path, hours: int) -> None:
    seed_history(path, hourly_history(hours, 1_000_000))
    bot = Bot(path, T0)
    bot.subscribe(sub("spike", spike=1.1), sub("window", liq=10_000_000))
    bot.liquidate(liq("BTC", "long", 50_000_000, T0))

    assert await bot.step(T0) == {"window": ["$50M liquidated in 1h, 100% longs"]}
    assert bot.sent.texts("window")[0].splitlines()[-1] == (
        "Not enough history yet for a 30-day comparison."
    )
    assert await bot.step(T0 + 10 * MINUTE) == {}


async def test_a_spike_fires_at_its_multiple_of_the_30_day_average(path: Path) -> None:
    seed_history(path, hourly_history(30 * 24, 1_000_000))  # about $1M an hour
    bot = Bot(path, T0)
    bot.subscribe(
        sub("x3", spike=3),
        sub("x4", spike=4),
        sub("eth", spike=1.1, watch={"ETH"}),
        sub("off", spike=0),
    )
    bot.liquidate(liq("BTC", "long", 2_900_000, T0))
    assert await bot.step(T0 + SECOND) == {}
    bot.liquidate(liq("BTC", "long", 600_000, T0 + 2 * SECOND))

    assert await bot.step(T0 + 3 * SECOND) == {
        "x3": ["Liquidation spike: $3.5M in 1h, 3.5x the 30-day hourly average"]
    }
    assert bot.sent.texts("x3")[0].splitlines()[1] == "$3.5M liquidated in 1h, 100% longs"
    assert await bot.step(T0 + 10 * MINUTE) == {}


# One aggregate per (window, watch list) per pass.


def count_aggregates(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[Any, ...]]:
    """Counts market aggregates computed: by window, and by (window, watch list)."""
    market = bot.core.market
    calls: Counter[tuple[Any, ...]] = Counter()
    sides_by_base, totals = market.sides_by_base, market.totals

    def counted_sides(window: str) -> dict[str, list[float]]:
        calls["sides_by_base", window] += 1
        return sides_by_base(window)

    def counted_totals(window: str, bases: frozenset[str] | None = None) -> Any:
        calls["totals", window, bases or frozenset()] += 1
        return totals(window, bases)

    monkeypatch.setattr(market, "sides_by_base", counted_sides)
    monkeypatch.setattr(market, "totals", counted_totals)
    return calls


async def test_each_window_and_watch_list_is_aggregated_once_per_pass(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = Bot(path, T0)
    bot.subscribe(
        *[sub(f"all{i}", liq=100_000 * (i + 1)) for i in range(5)],
        *[sub(f"btc{i}", liq=100_000 * (i + 1), watch={"BTC"}) for i in range(5)],
        *[sub(f"five{i}", liq=100_000 * (i + 1), window="5m") for i in range(5)],
    )
    calls = count_aggregates(bot, monkeypatch)
    bot.liquidate(liq("BTC", "long", 1_000_000, T0), liq("ETH", "short", 200_000, T0))
    await bot.engine.evaluate(T0)

    assert calls == {
        ("sides_by_base", "1h"): 1,
        ("sides_by_base", "5m"): 1,
        ("totals", "1h", frozenset()): 1,
        ("totals", "1h", frozenset({"BTC"})): 1,
        ("totals", "5m", frozenset()): 1,
    }
    assert len(await bot.deliver()) == 15


async def test_window_and_spike_firing_together_share_one_aggregate(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_history(path, hourly_history(30 * 24, 1_000_000))
    bot = Bot(path, T0)
    bot.subscribe(sub("both", liq=1_000_000, spike=1.5))
    calls = count_aggregates(bot, monkeypatch)
    bot.liquidate(liq("BTC", "long", 3_500_000, T0))
    await bot.engine.evaluate(T0)

    assert calls[("totals", "1h", frozenset())] == 1
    # One story, one message: the window alert, its 30-day comparison marked as the spike.
    assert bot.sent.texts("both") == [] and await bot.deliver() == {
        "both": ["$3.5M liquidated in 1h, 100% longs"]
    }
    assert bot.sent.texts("both") == [
        "$3.5M liquidated in 1h, 100% longs\n"
        "Top assets: BTC $3.5M\n"
        "Venues: Binance $3.5M\n"
        "Spike: 3.5x the 30-day hourly average; longs usually 100%"
    ]


async def test_a_spike_a_minute_after_the_window_alert_is_not_told_again(path: Path) -> None:
    seed_history(path, hourly_history(30 * 24, 1_000_000))
    bot = Bot(path, T0)
    bot.subscribe(sub("both", liq=1_000_000, spike=3))
    bot.liquidate(liq("BTC", "long", 1_200_000, T0))
    assert await bot.step(T0 + SECOND) == {"both": ["$1.2M liquidated in 1h, 100% longs"]}
    bot.liquidate(liq("BTC", "long", 2_300_000, T0 + 50 * SECOND))
    assert await bot.step(T0 + 55 * SECOND) == {}  # within a minute: the same story
    assert rule_states(path)["telegram:both", "spike", "*"] is False  # recorded as told


async def test_digests_due_together_share_one_aggregate_per_watch_list(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = Bot(path, T0)
    bot.subscribe(*[sub(f"d{i}", digest="hourly") for i in range(5)])
    calls = count_aggregates(bot, monkeypatch)
    bot.liquidate(liq("BTC", "long", 300_000, T0))

    assert len(await bot.schedule(T0 + MINUTE)) == 5
    assert calls[("totals", "1h", frozenset())] == 1


# Persistence across a restart.


async def test_a_restart_does_not_refire_an_alert_already_recorded(path: Path) -> None:
    first = Bot(path, T0)
    first.subscribe(sub("a", liq=100_000, whale=1_000_000, cooldown=60))
    first.liquidate(liq("BTC", "long", 2_000_000, T0))
    assert await first.step(T0) == {"a": ["$2M liquidated in 1h, 100% longs", WHALE_BTC]}
    await first.core.recorder.flush()

    second = Bot(path, T0 + 2 * MINUTE)  # past the cooldown, the total still above
    assert second.core.market.totals("1h").total_usd == 2_000_000
    assert await second.step(T0 + 2 * MINUTE) == {}
    second.liquidate(liq("ETH", "long", 2_000_000, T0 + 3 * MINUTE))
    assert await second.step(T0 + 3 * MINUTE) == {"a": [WHALE_ETH]}
    assert outbox(path) == [("a", "window", "sent"), ("a", "whale", "sent"), ("a", "whale", "sent")]
    assert rule_states(path)[("telegram:a", "window", "*")] is False


async def test_alerts_held_before_a_restart_are_summarised_after_it(path: Path) -> None:
    night = T0 - 8 * HOUR
    first = Bot(path, night)
    first.subscribe(sub("night", whale=1_000_000, quiet=(22 * 60, 7 * 60), timezone=NEW_YORK))
    first.liquidate(liq("BTC", "long", 2_000_000, night))
    assert await first.step(night) == {}

    second = Bot(path, T0)
    assert await second.schedule(T0) == {"night": ["During quiet hours, 1 alert was held back:"]}
    assert await second.schedule(T0 + MINUTE) == {}
