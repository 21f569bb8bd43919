"""Golden tests: the exact text of every alert, digest and summary, and how money reads."""

from __future__ import annotations

from typing import Any

import discord
import pytest

from bot import messages
from bot.alert import Alert, Field, from_json, text_of, to_json
from bot.derivatives import OpenInterestMove
from bot.formatting import format_percent, format_rate, format_usd, iso_utc
from bot.messages import headline
from bot.model import OutboxRow
from bot.norms import Norm
from handlers.discord import alert_embeds
from handlers.telegram import alert_parts
from tests.builders import funding, liquidation, view


# The golden texts below are each alert's plain text: what the console prints and what Telegram
# shows (HTML-escaped, first line bold). The builders return structured alerts.
def window_alert(*args: Any) -> str:
    return messages.window_alert(*args).text


def spike_alert(*args: Any) -> str:
    return messages.spike_alert(*args).text


def whale_alert(*args: Any) -> str:
    return messages.whale_alert(*args).text


def funding_alert(*args: Any) -> str:
    return messages.funding_alert(*args).text


def open_interest_alert(*args: Any) -> str:
    return messages.open_interest_alert(*args).text


def digest(*args: Any) -> str:
    return messages.digest(*args).text


def quiet_summary(alerts: list[Alert]) -> str:
    return messages.quiet_summary([alert.first_line for alert in alerts]).text


# $351.6M in 1h, 90% longs, against a 30-day hourly average of $73.25M (4.8x).
BIG_HOUR = view(
    "1h",
    long_usd=316_440_000,
    short_usd=35_160_000,
    by_base={"BTC": 200e6, "ETH": 100e6, "SOL": 40e6, "DOGE": 11.6e6},
    by_exchange={"binance": 180e6, "bybit": 120e6, "okx": 51.6e6},
    norm=Norm(average_usd=73_250_000, long_share=0.52, history_days=30.0),
)
FUNDING = {
    "BTC": funding("BTC", 0.0001),
    "ETH": funding("ETH", -0.00005, venue="okx", symbol="ETH-USDT-SWAP"),
    "SOL": funding("SOL", 0.0002, venue="bybit", interval_hours=4),
    "DOGE": funding("DOGE", 0.001, venue="bybit", interval_hours=4),
}
OPEN_INTEREST = {"BTC": 30e9, "SOL": 4.2e9, "DOGE": 1.1e9}


# -- headline ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "long_usd", "short_usd", "expected"),
    [
        ("1h", 316_440_000, 35_160_000, "$352M liquidated in 1h, 90% longs"),
        ("5m", 896_000, 104_000, "$1M liquidated in 5m, 90% longs"),  # 89.6%
        ("15m", 894_000, 106_000, "$1M liquidated in 15m, 89% longs"),  # 89.4%
        ("4h", 104_000, 896_000, "$1M liquidated in 4h, 90% shorts"),
        ("24h", 500_000, 500_000, "$1M liquidated in 24h, 50% longs"),  # a tie reads as longs
        ("1h", 499_000, 501_000, "$1M liquidated in 1h, 50% shorts"),
        ("1h", 1_234_567_890, 0, "$1.23B liquidated in 1h, 100% longs"),
        ("1h", 0, 45_600, "$45.6K liquidated in 1h, 100% shorts"),
    ],
)
def test_headline(window: str, long_usd: float, short_usd: float, expected: str) -> None:
    assert headline(view(window, long_usd, short_usd)) == expected


def test_headline_total_of_351_6m_reads_352m() -> None:
    assert BIG_HOUR.total_usd == 351_600_000
    assert headline(BIG_HOUR) == "$352M liquidated in 1h, 90% longs"


def test_headline_rounds_half_a_percent_up() -> None:
    assert headline(view("1h", 625_000, 375_000)) == "$1M liquidated in 1h, 63% longs"
    assert headline(view("1h", 875_000, 125_000)) == "$1M liquidated in 1h, 88% longs"
    assert headline(view("1h", 375_000, 625_000)) == "$1M liquidated in 1h, 63% shorts"


# -- window alert --------------------------------------------------------------------------


def test_window_alert_with_norm_and_context() -> None:
    assert window_alert(BIG_HOUR, FUNDING, OPEN_INTEREST) == (
        "$352M liquidated in 1h, 90% longs\n"
        "Top assets: BTC $200M, ETH $100M, SOL $40M\n"
        "Venues: Binance $180M, Bybit $120M, OKX $51.6M\n"
        "4.8x the 30-day hourly average; longs usually 52%\n"
        "Funding per 8h: BTC +0.0100%, ETH -0.0050%, SOL +0.0400%\n"
        "Open interest: BTC $30B, SOL $4.2B"
    )


def test_window_alert_without_context() -> None:
    assert window_alert(BIG_HOUR, {}, {}) == (
        "$352M liquidated in 1h, 90% longs\n"
        "Top assets: BTC $200M, ETH $100M, SOL $40M\n"
        "Venues: Binance $180M, Bybit $120M, OKX $51.6M\n"
        "4.8x the 30-day hourly average; longs usually 52%"
    )


def test_window_alert_context_only_for_the_top_assets() -> None:
    only_doge = {"DOGE": FUNDING["DOGE"]}
    assert window_alert(BIG_HOUR, only_doge, {"DOGE": 1.1e9}) == window_alert(BIG_HOUR, {}, {})


def test_window_alert_with_funding_only() -> None:
    assert window_alert(BIG_HOUR, {"ETH": FUNDING["ETH"]}, {}).splitlines()[4:] == [
        "Funding per 8h: ETH -0.0050%"
    ]


def test_window_alert_without_norm() -> None:
    alert = window_alert(
        view("1h", 316_440_000, 35_160_000, BIG_HOUR.by_base, BIG_HOUR.by_exchange), {}, {}
    )
    assert alert == (
        "$352M liquidated in 1h, 90% longs\n"
        "Top assets: BTC $200M, ETH $100M, SOL $40M\n"
        "Venues: Binance $180M, Bybit $120M, OKX $51.6M\n"
        "Not enough history yet for a 30-day comparison."
    )


def test_window_alert_shorts_dominant() -> None:
    four_hours = view(
        "4h",
        long_usd=12_000_000,
        short_usd=108_000_000,
        by_base={"ETH": 70e6, "BTC": 50e6},
        by_exchange={"bybit": 95e6, "binance": 25e6},
        norm=Norm(average_usd=40_000_000, long_share=0.61, history_days=30.0),
    )
    assert window_alert(four_hours, {"ETH": FUNDING["ETH"]}, {"ETH": 12e9, "BTC": 30e9}) == (
        "$120M liquidated in 4h, 90% shorts\n"
        "Top assets: ETH $70M, BTC $50M\n"
        "Venues: Bybit $95M, Binance $25M\n"
        "3.0x the 30-day 4-hour average; longs usually 61%\n"
        "Funding per 8h: ETH -0.0050%\n"
        "Open interest: ETH $12B, BTC $30B"
    )


@pytest.mark.parametrize(
    ("window", "line"),
    [
        ("5m", "0.5x the 30-day 5-minute average; longs usually 50%"),
        ("15m", "0.5x the 30-day 15-minute average; longs usually 50%"),
        ("1h", "0.5x the 30-day hourly average; longs usually 50%"),
        ("4h", "0.5x the 30-day 4-hour average; longs usually 50%"),
        ("24h", "0.5x the 30-day daily average; longs usually 50%"),
    ],
)
def test_norm_line_names_the_window(window: str, line: str) -> None:
    below = view(window, 1e6, 0, {"BTC": 1e6}, {"okx": 1e6}, Norm(2e6, 0.5, 30.0))
    assert window_alert(below, {}, {}).splitlines()[3] == line


def test_window_alert_when_nothing_was_liquidated_in_the_period() -> None:
    quiet_month = view("1h", 1e6, 0, {"BTC": 1e6}, {"okx": 1e6}, Norm(0.0, None, 30.0))
    assert window_alert(quiet_month, {}, {}).splitlines()[:3] == [
        "$1M liquidated in 1h, 100% longs",
        "Top assets: BTC $1M",
        "Venues: OKX $1M",
    ]


@pytest.mark.parametrize(
    ("history_days", "line"),
    [
        (30.0, "Nothing was liquidated in the last 30 days."),
        (2.0, "Nothing was liquidated in the last 2 days."),
    ],
)
def test_norm_line_when_nothing_was_liquidated_in_the_period(
    history_days: float, line: str
) -> None:
    quiet = view("1h", 1e6, 0, {"BTC": 1e6}, {"okx": 1e6}, Norm(0.0, None, history_days))
    assert window_alert(quiet, {}, {}).splitlines()[3:] == [line]


def test_norm_line_names_a_shorter_history() -> None:
    young = view("1h", 4.8e6, 0, {"BTC": 4.8e6}, {"okx": 4.8e6}, Norm(1e6, 0.52, 2.0))
    assert window_alert(young, {}, {}).splitlines()[3] == (
        "4.8x the 2-day hourly average; longs usually 52%"
    )


@pytest.mark.parametrize(
    ("history_days", "days"),
    [(0.2, 1), (1.0, 1), (1.4, 1), (1.6, 2), (7.0, 7), (29.4, 29), (29.6, 30), (45.0, 30)],
)
def test_norm_line_history_is_whole_days_from_1_to_30(history_days: float, days: int) -> None:
    young = view("4h", 3e6, 0, {"BTC": 3e6}, {"okx": 3e6}, Norm(1e6, None, history_days))
    assert window_alert(young, {}, {}).splitlines()[3] == f"3.0x the {days}-day 4-hour average"


def test_window_alert_context_follows_the_largest_assets_whatever_the_order() -> None:
    unsorted = view(
        "1h",
        long_usd=351_600_000,
        by_base={"DOGE": 11.6e6, "SOL": 40e6, "ETH": 100e6, "BTC": 200e6},
        by_exchange={"binance": 351.6e6},
        norm=None,
    )
    assert window_alert(unsorted, FUNDING, OPEN_INTEREST).splitlines()[4:] == [
        "Funding per 8h: BTC +0.0100%, ETH -0.0050%, SOL +0.0400%",
        "Open interest: BTC $30B, SOL $4.2B",
    ]


# -- spike ---------------------------------------------------------------------------------


# The first line of a spike alert is pinned in test_spike_alert_first_line; these pin the rest.


def test_spike_alert() -> None:
    assert spike_alert(BIG_HOUR, FUNDING, OPEN_INTEREST).splitlines()[1:] == [
        "$352M liquidated in 1h, 90% longs",
        "Top assets: BTC $200M, ETH $100M, SOL $40M",
        "Venues: Binance $180M, Bybit $120M, OKX $51.6M",
        "Funding per 8h: BTC +0.0100%, ETH -0.0050%, SOL +0.0400%",
        "Open interest: BTC $30B, SOL $4.2B",
    ]


def test_spike_alert_without_context() -> None:
    five_minutes = view(
        "5m", 2e6, 18e6, {"ETH": 20e6}, {"bybit": 20e6}, Norm(1_250_000, 0.55, 30.0)
    )
    assert spike_alert(five_minutes, {}, {}).splitlines()[1:] == [
        "$20M liquidated in 5m, 90% shorts",
        "Top assets: ETH $20M",
        "Venues: Bybit $20M",
    ]


@pytest.mark.parametrize(
    ("window", "history_days", "line"),
    [
        ("1h", 30.0, "Liquidation spike: $352M in 1h, 4.8x the 30-day hourly average"),
        ("1h", 2.0, "Liquidation spike: $352M in 1h, 4.8x the 2-day hourly average"),
        ("5m", 30.0, "Liquidation spike: $352M in 5m, 4.8x the 30-day 5-minute average"),
    ],
)
def test_spike_alert_first_line(window: str, history_days: float, line: str) -> None:
    norm = Norm(average_usd=73_250_000, long_share=0.52, history_days=history_days)
    spike = view(window, 316_440_000, 35_160_000, BIG_HOUR.by_base, BIG_HOUR.by_exchange, norm)
    assert spike_alert(spike, {}, {}).splitlines()[0] == line


# -- whale ---------------------------------------------------------------------------------


def test_whale_alert_long() -> None:
    event = liquidation("BTC", "long", price=97_123.45, qty=12.5, venue="bybit")
    assert whale_alert(event) == (
        "Whale liquidation: $1.21M BTC long on Bybit\nBTCUSDT: 12.5 BTC at $97,123"
    )


def test_whale_alert_short_with_a_small_quantity() -> None:
    event = liquidation(
        "ETH", "short", 3_456.789, 0.000123456789, venue="okx", symbol="ETH-USDT-SWAP"
    )
    assert whale_alert(event) == (
        "Whale liquidation: $0.427 ETH short on OKX\nETH-USDT-SWAP: 0.000123457 ETH at $3,456.8"
    )


def test_whale_alert_names_an_unknown_venue_as_given() -> None:
    event = liquidation("SOL", "long", 150.0, 10_000, venue="kraken")
    assert whale_alert(event) == (
        "Whale liquidation: $1.5M SOL long on kraken\nSOLUSDT: 10,000 SOL at $150"
    )


def test_whale_alert_names_the_new_venues_for_people() -> None:
    event = liquidation("SOL", "long", 150.0, 10_000, venue="deribit")
    assert whale_alert(event).startswith("Whale liquidation: $1.5M SOL long on Deribit\n")


def test_whale_alert_for_a_low_priced_coin_avoids_exponents() -> None:
    event = liquidation("PEPE", "short", 0.00001234, 81_000_000_000, venue="binance")
    assert whale_alert(event) == (
        "Whale liquidation: $1M PEPE short on Binance\nPEPEUSDT: 81,000,000,000 PEPE at $0.00001234"
    )


# -- funding -------------------------------------------------------------------------------


def test_funding_alert_positive_longs_pay() -> None:
    assert funding_alert(FUNDING["BTC"]) == (
        "BTC funding +0.0100% per 8h on Binance: longs pay shorts\n"
        "BTCUSDT: +0.0100% every 8h (+11% APR)"
    )


def test_funding_alert_negative_shorts_pay() -> None:
    assert funding_alert(FUNDING["ETH"]) == (
        "ETH funding -0.0050% per 8h on OKX: shorts pay longs\n"
        "ETH-USDT-SWAP: -0.0050% every 8h (-5% APR)"
    )


def test_funding_alert_4h_interval_shows_the_interval_rate_and_apr() -> None:
    assert funding_alert(FUNDING["DOGE"]) == (
        "DOGE funding +0.2000% per 8h on Bybit: longs pay shorts\n"
        "DOGEUSDT: +0.1000% every 4h (+219% APR)"
    )


def test_funding_alert_1h_interval() -> None:
    assert funding_alert(funding("ARB", -0.00005, interval_hours=1)) == (
        "ARB funding -0.0400% per 8h on Binance: shorts pay longs\n"
        "ARBUSDT: -0.0050% every 1h (-44% APR)"
    )


# -- open interest -------------------------------------------------------------------------


def test_open_interest_alert_up() -> None:
    assert open_interest_alert(OpenInterestMove("BTC", 30e9, 31.5e9), "1h") == (
        "BTC open interest up 5.0% in 1h to $31.5B\nFrom $30B, summed across venues"
    )


def test_open_interest_alert_down() -> None:
    assert open_interest_alert(OpenInterestMove("ETH", 12e9, 11.4e9), "4h") == (
        "ETH open interest down 5.0% in 4h to $11.4B\nFrom $12B, summed across venues"
    )


def test_open_interest_alert_large_move() -> None:
    assert open_interest_alert(OpenInterestMove("WIF", 250e6, 612.6e6), "24h") == (
        "WIF open interest up 145.0% in 24h to $613M\nFrom $250M, summed across venues"
    )


# -- digest --------------------------------------------------------------------------------


def test_digest_with_liquidations() -> None:
    day = view("24h", 600e6, 600e6)
    interest = {"BTC": 30e9, "SOL": 4.2e9, "DOGE": 1.1e9, "ETH": 12e9}
    assert digest("Hourly digest", [BIG_HOUR, day], FUNDING, interest) == (
        "Hourly digest: $352M liquidated in 1h, 90% longs\n"
        "$1.2B liquidated in 24h, 50% longs\n"
        "Top assets: BTC $200M, ETH $100M, SOL $40M\n"
        "Venues: Binance $180M, Bybit $120M, OKX $51.6M\n"
        "Funding extremes per 8h: DOGE +0.2000% (Bybit), SOL +0.0400% (Bybit), "
        "BTC +0.0100% (Binance)\n"
        "Open interest: BTC $30B, ETH $12B, SOL $4.2B"
    )


def test_digest_without_liquidations() -> None:
    assert digest("Daily digest", [view("1h"), view("24h")], {}, {}) == (
        "Daily digest: no liquidations in 1h\nNo liquidations in 24h"
    )


def test_digest_without_liquidations_still_shows_funding_and_interest() -> None:
    assert digest("Daily digest", [view("24h")], {"ETH": FUNDING["ETH"]}, {"BTC": 30e9}) == (
        "Daily digest: no liquidations in 24h\n"
        "Funding extremes per 8h: ETH -0.0050% (OKX)\n"
        "Open interest: BTC $30B"
    )


def test_digest_quiet_hour_in_a_busy_day() -> None:
    day = view("24h", 0, 45_600_000, {"ETH": 45.6e6}, {"okx": 45.6e6})
    assert digest("Hourly digest", [view("1h"), day], {}, {}) == (
        "Hourly digest: no liquidations in 1h\n$45.6M liquidated in 24h, 100% shorts"
    )


# -- quiet summary and merging -------------------------------------------------------------


def test_quiet_summary_one_alert() -> None:
    assert quiet_summary([messages.window_alert(BIG_HOUR, {}, {})]) == (
        "During quiet hours, 1 alert was held back:\n- $352M liquidated in 1h, 90% longs"
    )


def test_quiet_summary_three_alerts() -> None:
    alerts = [
        messages.window_alert(BIG_HOUR, {}, {}),
        messages.funding_alert(FUNDING["DOGE"]),
        messages.open_interest_alert(OpenInterestMove("BTC", 30e9, 31.5e9), "1h"),
    ]
    assert quiet_summary(alerts) == (
        "During quiet hours, 3 alerts were held back:\n"
        "- $352M liquidated in 1h, 90% longs\n"
        "- DOGE funding +0.2000% per 8h on Bybit: longs pay shorts\n"
        "- BTC open interest up 5.0% in 1h to $31.5B"
    )


def test_merged_alert_of_one_is_that_alert() -> None:
    alert = messages.funding_alert(FUNDING["BTC"])
    assert text_of([alert]) == alert.text


def test_merged_alert_separates_alerts_with_a_blank_line() -> None:
    both = [messages.funding_alert(FUNDING["BTC"]), messages.funding_alert(FUNDING["ETH"])]
    assert text_of(both) == (
        "BTC funding +0.0100% per 8h on Binance: longs pay shorts\n"
        "BTCUSDT: +0.0100% every 8h (+11% APR)\n"
        "\n"
        "ETH funding -0.0050% per 8h on OKX: shorts pay longs\n"
        "ETH-USDT-SWAP: -0.0050% every 8h (-5% APR)"
    )


# -- formatting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usd", "expected"),
    [
        (0, "$0"),
        (-0.0, "$0"),
        (0.5, "$0.5"),
        (12.345, "$12.3"),
        (99.94, "$99.9"),
        (99.95, "$100"),
        (950, "$950"),
        (999, "$999"),
        (999.49, "$999"),
        (999.5, "$1K"),
        (1_000, "$1K"),
        (1_234, "$1.23K"),
        (10_000, "$10K"),
        (45_600, "$45.6K"),
        (99_950, "$100K"),
        (123_456.7, "$123K"),
        (999_499, "$999K"),
        (999_500, "$1M"),
        (999_999, "$1M"),
        (1_000_000, "$1M"),
        (51_600_000, "$51.6M"),
        (351_600_000, "$352M"),
        (999_500_000, "$1B"),
        (1_234_567_890, "$1.23B"),
        (100e9, "$100B"),
        (999.5e9, "$1T"),
        (1.5e12, "$1.5T"),
        (-950, "-$950"),
        (-1_234_567, "-$1.23M"),
        (-999_500, "-$1M"),
    ],
)
def test_format_usd(usd: float, expected: str) -> None:
    assert format_usd(usd) == expected


def test_format_usd_rounds_halves_up() -> None:
    assert (format_usd(2_125_000), format_usd(2_135_000)) == ("$2.13M", "$2.14M")
    assert (format_usd(-2_125_000), format_usd(12.25), format_usd(0.1235)) == (
        "-$2.13M",
        "$12.3",
        "$0.124",
    )


def test_format_percent_rounds_halves_up() -> None:
    assert (format_percent(0.625), format_percent(0.125), format_percent(0.005)) == (
        "63%",
        "13%",
        "1%",
    )
    assert (format_percent(0.12345, 1), format_percent(0.00125, 1)) == ("12.3%", "0.1%")


def test_format_rate_percent_and_time() -> None:
    assert format_rate(0.0007) == "+0.0700%"
    assert format_rate(-0.0001) == "-0.0100%"
    assert format_rate(0) == "+0.0000%"
    assert format_percent(0.123) == "12%"
    assert format_percent(0.1234, 1) == "12.3%"
    assert iso_utc(1_700_000_000_123) == "2023-11-14T22:13:20Z"
    assert iso_utc(None) is None


# -- structured alerts ---------------------------------------------------------------------


def test_a_window_alert_carries_its_rule_assets_side_figures_and_fields() -> None:
    alert = messages.window_alert(BIG_HOUR, {"ETH": FUNDING["ETH"]}, {})
    assert (alert.rule, alert.assets, alert.side) == ("window", ("BTC", "ETH", "SOL"), "long")
    assert alert.first_line == "$352M liquidated in 1h, 90% longs"
    assert alert.fields == [
        Field("Top assets", "BTC $200M, ETH $100M, SOL $40M"),
        Field("Venues", "Binance $180M, Bybit $120M, OKX $51.6M"),
    ]
    assert alert.plain_lines == [
        "4.8x the 30-day hourly average; longs usually 52%",
        "Funding per 8h: ETH -0.0050%",
    ]
    assert alert.figures == {
        "total_usd": 351_600_000,
        "long_usd": 316_440_000,
        "short_usd": 35_160_000,
        "dominant_share": 0.9,
        "count": 1.0,
        "average_usd": 73_250_000,
        "ratio": 351_600_000 / 73_250_000,
    }


def test_a_whale_alert_carries_its_asset_side_and_figures() -> None:
    event = liquidation("ETH", "short", 2_150.5, 2_500, venue="bybit")
    alert = messages.whale_alert(event)
    assert (alert.rule, alert.assets, alert.side, alert.fields) == ("whale", ("ETH",), "short", [])
    assert alert.figures == {"usd": 2_150.5 * 2_500, "qty": 2_500, "price": 2_150.5}


def test_alerts_survive_their_json_column_unchanged() -> None:
    stored = (
        messages.window_alert(BIG_HOUR, FUNDING, OPEN_INTEREST),
        messages.funding_alert(FUNDING["ETH"]),
        messages.quiet_summary(["$352M liquidated in 1h, 90% longs"]),
    )
    assert from_json(to_json(stored)) == stored


def test_telegram_renders_an_alert_as_html_with_a_bold_escaped_first_line() -> None:
    alert = Alert("window", (), None, "$1M liquidated in 1h <b>&", (Field("Venues", "A<B"), "x"))
    row = OutboxRow(1, "telegram", "1", "window", "*", None, (alert,), 0, 0, 0)
    assert alert_parts(row) == ["<b>$1M liquidated in 1h &lt;b&gt;&amp;</b>\nVenues: A&lt;B\nx"]


def test_discord_builds_its_embed_from_the_alerts_data_not_from_their_text() -> None:
    window = messages.window_alert(BIG_HOUR, {"ETH": FUNDING["ETH"]}, {})
    funding_ = messages.funding_alert(FUNDING["BTC"])
    row = OutboxRow(1, "discord", "1", "window", "*", "long", (window, funding_), 0, 0, 0)
    [embed] = alert_embeds(row)
    assert embed.description == (
        "$352M liquidated in 1h, 90% longs\n"
        "4.8x the 30-day hourly average; longs usually 52%\n"
        "Funding per 8h: ETH -0.0050%\n"
        "\n"
        "BTC funding +0.0100% per 8h on Binance: longs pay shorts\n"
        "BTCUSDT: +0.0100% every 8h (+11% APR)"
    )
    assert [(f.name, f.value) for f in embed.fields] == [
        ("Top assets", "BTC $200M, ETH $100M, SOL $40M"),
        ("Venues", "Binance $180M, Bybit $120M, OKX $51.6M"),
    ]
    assert embed.colour == discord.Colour.red()  # longs liquidated
