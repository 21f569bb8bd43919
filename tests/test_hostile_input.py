"""How replies read under hostile or odd input: quoted input is cut, long replies split only
between lines (or words), prices keep a sensible number of digits, status names the side that
was liquidated more."""

from __future__ import annotations

from typing import Any

import pytest

from bot.formatting import echo, format_price, split_message
from bot.messages import whale_alert
from bot.status import render_status
from tests.builders import liquidation


def test_echo_cuts_long_input() -> None:
    assert echo("BTC") == "BTC"
    assert echo("x" * 32) == "x" * 32
    assert echo("x" * 5000) == "x" * 31 + "…"


def test_a_long_line_is_split_between_words_never_inside_one() -> None:
    symbols = [f"SYM{n:04d}" for n in range(1000)]
    text = "Watching " + ", ".join(symbols) + "."
    parts = split_message(text, 2000)
    assert all(len(part) <= 2000 for part in parts)
    words = " ".join(parts).split(" ")
    assert words == text.split(" ")  # every word whole, in order, none cut in two


def test_lines_are_kept_whole_when_they_fit() -> None:
    lines = [f"line {n} " + "y" * 50 for n in range(100)]
    parts = split_message("\n".join(lines), 1000)
    assert [line for part in parts for line in part.split("\n")] == lines


def test_a_word_longer_than_the_limit_is_cut_where_it_must() -> None:
    assert split_message("a " + "z" * 25, 10) == ["a", "z" * 10, "z" * 10, "z" * 5]


@pytest.mark.parametrize(
    ("price", "text"),
    [(2899.696, "2,899.7"), (97123.45, "97,123"), (0.000012345678, "0.000012346"), (150, "150")],
)
def test_prices_have_five_significant_digits(price: float, text: str) -> None:
    assert format_price(price) == text


def test_whale_alert_price_is_not_overly_precise() -> None:
    event = liquidation("ETH", "long", price=2899.696, qty=2000.0)
    assert whale_alert(event).text.splitlines()[1] == "ETHUSDT: 2,000 ETH at $2,899.7"


def _status(long_share: float) -> dict[str, Any]:
    window = {"total_usd": 5e6, "long_share": long_share, "count": 2}
    window |= {"by_symbol": {}, "by_exchange": {}}
    return {
        "generated_at": "2026-12-02T04:00:00Z",
        "liquidations": {"1h": window, "24h": window},
        "funding": [],
        "open_interest": [],
        "sources": {},
    }


@pytest.mark.parametrize(
    ("long_share", "side"), [(0.0, "100% shorts"), (0.3, "70% shorts"), (0.5, "50% longs")]
)
def test_status_names_the_side_liquidated_more(long_share: float, side: str) -> None:
    text = render_status(_status(long_share), windows=("1h",))
    assert f"    1h       $5M  {side}  (2 events)" in text.splitlines()
