"""Chat settings: what people may type for each threshold, the accepted ranges and the exact
refusals, `[defaults]` in the config file, watch lists and quiet hours."""

from __future__ import annotations

import contextlib
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import example, given

from bot.config import ConfigError, settings_from_dict
from bot.errors import UserError
from bot.market import WINDOWS
from bot.model import Subscription, Thresholds
from bot.subscriptions import (
    SETTING_KEYS,
    SETTINGS,
    is_quiet,
    local_minutes,
    parse_watch,
    set_threshold,
    thresholds_from_config,
)
from bot.units import is_off, parse_duration, parse_money, parse_multiple, parse_percent
from tests.strategies import any_text

DEFAULTS = Thresholds()

WINDOW_ERROR = "window must be one of 5m, 15m, 1h, 4h, 24h"
LIQ_ERROR = "liq must be from $10K to $100B, or off, e.g. 250m"
SIDE_ERROR = "side must be from 50% to 100%, or off, e.g. 80% (or any)"
FUNDING_ERROR = "funding must be from 0.001% to 5%, or off, e.g. 0.05%"
OI_ERROR = "oi must be from 0.5% to 100%, or off, e.g. 5%"
WHALE_ERROR = "whale must be from $10K to $100B, or off, e.g. 1m"
SPIKE_ERROR = "spike must be from 1.1x to 100x, or off, e.g. 3x"
COOLDOWN_ERROR = "cooldown must be from 1 min to 24 h, e.g. 30m"


# Letters that re.IGNORECASE without re.ASCII matches to a duration unit but that `.lower()`
# does not turn into one (long s, dotless i, dotted capital I).
CASE_FOLD_TRAPS = "\u017f\u0131\u0130"


def set_value(key: str, text: str) -> float | str:
    result = set_threshold(DEFAULTS, key, text)
    assert result == replace(DEFAULTS, **{key: getattr(result, key)}), "only `key` may change"
    value: float | str = getattr(result, key)
    return value


def refusal(key: str, text: str, original: Thresholds = DEFAULTS) -> str:
    snapshot = replace(original)
    with pytest.raises(UserError) as caught:
        set_threshold(original, key, text)
    assert original == snapshot
    return str(caught.value)


# -- accepted input forms ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("window", "5m", "5m"),
        ("window", "15m", "15m"),
        ("window", "1h", "1h"),
        ("window", "4h", "4h"),
        ("window", "24h", "24h"),
        ("window", " 4H ", "4h"),
        ("liq", "250m", 250_000_000.0),
        ("liq", "250M", 250_000_000.0),
        ("liq", "$1.2B", 1_200_000_000.0),
        ("liq", "1,000,000", 1_000_000.0),
        ("liq", "1_000_000", 1_000_000.0),
        ("liq", "100k", 100_000.0),
        ("liq", "$ 5 m", 5_000_000.0),
        ("liq", "5m usd", 5_000_000.0),
        ("liq", "2500000", 2_500_000.0),
        ("side", "80%", 0.8),
        ("side", "80 %", 0.8),
        ("side", "80", 0.8),
        ("side", "0.8", 0.8),
        ("side", "+80%", 0.8),
        ("side", "100%", 1.0),
        ("side", "1", 1.0),
        ("side", "any", 0.0),
        ("side", " ANY ", 0.0),
        ("funding", "0.05%", 0.0005),
        ("funding", "0.05 %", 0.0005),
        ("funding", "+0.05%", 0.0005),
        ("funding", "0.05", 0.0005),
        ("funding", "1%", 0.01),
        ("oi", "5%", 0.05),
        ("oi", "5", 0.05),
        ("oi", "12.5%", 0.125),
        ("whale", "1m", 1_000_000.0),
        ("whale", "$250K", 250_000.0),
        ("whale", "1,500,000", 1_500_000.0),
        ("whale", "100b", 1e11),
        ("spike", "3x", 3.0),
        ("spike", "3X", 3.0),
        ("spike", "3", 3.0),
        ("spike", "2.5 x", 2.5),
        ("cooldown", "30m", 1800.0),
        ("cooldown", "30min", 1800.0),
        ("cooldown", "2h", 7200.0),
        ("cooldown", "1.5h", 5400.0),
        ("cooldown", "90s", 90.0),
        ("cooldown", "120sec", 120.0),
        ("cooldown", "600", 600.0),
        ("cooldown", "1d", 86_400.0),
        ("cooldown", " 45 M ", 2700.0),
    ],
)
def test_accepted_forms(key: str, text: str, expected: float | str) -> None:
    value = set_value(key, text)
    if isinstance(expected, str):
        assert value == expected
    else:
        assert value == pytest.approx(expected, rel=1e-12)


def test_key_is_read_case_insensitively_and_trimmed() -> None:
    assert set_threshold(DEFAULTS, " LIQ ", "1m") == replace(DEFAULTS, liq=1_000_000.0)


def test_changes_build_on_the_thresholds_given() -> None:
    start = Thresholds(window="4h", liq=5e6, whale=1e6)
    assert set_threshold(start, "spike", "3x") == replace(start, spike=3.0)
    assert start == Thresholds(window="4h", liq=5e6, whale=1e6)


# -- range boundaries ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("liq", "10k", 10_000.0),
        ("liq", "$10,000", 10_000.0),
        ("liq", "100b", 100e9),
        ("liq", "100,000,000,000", 100e9),
        ("side", "50%", 0.5),
        ("side", "0.5", 0.5),
        ("side", "100%", 1.0),
        ("funding", "0.001%", 0.00001),
        ("funding", "5%", 0.05),
        ("oi", "0.5%", 0.005),
        ("oi", "100%", 1.0),
        ("whale", "10k", 10_000.0),
        ("spike", "1.1x", 1.1),
        ("spike", "100x", 100.0),
        ("cooldown", "1m", 60.0),
        ("cooldown", "60", 60.0),
        ("cooldown", "24h", 86_400.0),
        ("cooldown", "1440m", 86_400.0),
        ("cooldown", "86400", 86_400.0),
    ],
)
def test_just_inside_the_range_is_accepted(key: str, text: str, expected: float) -> None:
    assert set_value(key, text) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("liq", "9,999.99", LIQ_ERROR),
        ("liq", "9999", LIQ_ERROR),
        ("liq", "100,000,000,001", LIQ_ERROR),
        ("liq", "100.1b", LIQ_ERROR),
        ("side", "49.99%", SIDE_ERROR),
        ("side", "0.4999", SIDE_ERROR),
        ("side", "100.01%", SIDE_ERROR),
        ("side", "101", SIDE_ERROR),
        ("side", "-80%", SIDE_ERROR),
        ("funding", "0.00099%", FUNDING_ERROR),
        ("funding", "5.001%", FUNDING_ERROR),
        ("funding", "-0.05%", FUNDING_ERROR),
        ("oi", "0.499%", OI_ERROR),
        ("oi", "100.1%", OI_ERROR),
        ("oi", "-5%", OI_ERROR),
        ("whale", "9,999.99", WHALE_ERROR),
        ("whale", "$9K", WHALE_ERROR),
        ("spike", "1.09x", SPIKE_ERROR),
        ("spike", "100.01x", SPIKE_ERROR),
        ("cooldown", "59s", COOLDOWN_ERROR),
        ("cooldown", "59", COOLDOWN_ERROR),
        ("cooldown", "0.5m", COOLDOWN_ERROR),
        ("cooldown", "86401", COOLDOWN_ERROR),
        ("cooldown", "1441m", COOLDOWN_ERROR),
        ("cooldown", "25h", COOLDOWN_ERROR),
        ("window", "2h", WINDOW_ERROR),
        ("window", "60m", WINDOW_ERROR),
        ("window", "1d", WINDOW_ERROR),
        ("window", "", WINDOW_ERROR),
    ],
)
def test_just_outside_the_range_is_refused(key: str, text: str, message: str) -> None:
    assert refusal(key, text) == message


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("liq", "lots", f"'lots' is not understood: {LIQ_ERROR}"),
        ("liq", " lots ", f"'lots' is not understood: {LIQ_ERROR}"),
        ("liq", "-5m", f"'-5m' is not understood: {LIQ_ERROR}"),
        ("liq", "1e6", f"'1e6' is not understood: {LIQ_ERROR}"),
        ("liq", "5 million", f"'5 million' is not understood: {LIQ_ERROR}"),
        ("whale", "big", f"'big' is not understood: {WHALE_ERROR}"),
        ("side", "most", f"'most' is not understood: {SIDE_ERROR}"),
        ("funding", "high", f"'high' is not understood: {FUNDING_ERROR}"),
        ("oi", "5 pct", f"'5 pct' is not understood: {OI_ERROR}"),
        ("spike", "double", f"'double' is not understood: {SPIKE_ERROR}"),
        ("spike", "1e999", f"'1e999' is not understood: {SPIKE_ERROR}"),
        ("cooldown", "soon", f"'soon' is not understood: {COOLDOWN_ERROR}"),
        ("cooldown", "30 minutes", f"'30 minutes' is not understood: {COOLDOWN_ERROR}"),
    ],
)
def test_unreadable_values_say_what_is_accepted(key: str, text: str, message: str) -> None:
    assert refusal(key, text) == message


def test_unknown_key_lists_the_keys() -> None:
    assert refusal("bogus", "1") == (
        "unknown setting 'bogus': use one of window, liq, side, funding, oi, whale, spike, "
        "cooldown, escalation"
    )


def test_setting_keys() -> None:
    assert SETTING_KEYS == (
        "window",
        "liq",
        "side",
        "funding",
        "oi",
        "whale",
        "spike",
        "cooldown",
        "escalation",
    )


def test_escalation_is_a_multiple_from_1_5x_to_10x_or_off() -> None:
    assert set_threshold(Thresholds(), "escalation", "3x").escalation == 3.0
    assert set_threshold(Thresholds(), "escalation", "1.5").escalation == 1.5
    assert set_threshold(Thresholds(), "escalation", "off").escalation == 0.0
    for text in ("1.4x", "11x", "0.5x"):
        with pytest.raises(UserError) as refused:
            set_threshold(Thresholds(), "escalation", text)
        assert str(refused.value) == "escalation must be from 1.5x to 10x, or off, e.g. 2x"
    assert Thresholds().escalation == 2.0


def test_a_refused_value_leaves_custom_thresholds_as_they_were() -> None:
    custom = Thresholds(window="4h", liq=5e6, side=0.8, whale=1e6, spike=3.0, cooldown=600.0)
    for key, text in [("liq", "1"), ("side", "20%"), ("window", "2h"), ("nope", "1")]:
        refusal(key, text, custom)
    assert custom == Thresholds(
        window="4h", liq=5e6, side=0.8, whale=1e6, spike=3.0, cooldown=600.0
    )
    assert Thresholds() == DEFAULTS


# -- off -----------------------------------------------------------------------------------

OFF_KEYS = ["liq", "side", "funding", "oi", "whale", "spike"]


@pytest.mark.parametrize("word", ["off", "OFF", " Off ", "none", "0", "disable", "disabled", "no"])
@pytest.mark.parametrize("key", OFF_KEYS)
def test_off_words_switch_a_rule_off(key: str, word: str) -> None:
    start = replace(DEFAULTS, liq=5e6, side=0.8, whale=1e6, spike=3.0)
    assert set_threshold(start, key, word) == replace(start, **{key: 0.0})


@pytest.mark.parametrize(
    ("key", "text"),
    [("liq", "$0"), ("whale", "0k"), ("funding", "0%"), ("oi", "0.0"), ("spike", "0x")],
)
def test_a_zero_amount_is_off_too(key: str, text: str) -> None:
    assert set_value(key, text) == 0.0


@pytest.mark.parametrize("word", ["off", "none", "disabled", "0"])
def test_window_cannot_be_off(word: str) -> None:
    assert refusal("window", word) == WINDOW_ERROR


@pytest.mark.parametrize("word", ["off", "none", "disable", "no"])
def test_cooldown_cannot_be_off(word: str) -> None:
    assert refusal("cooldown", word) == f"{word!r} is not understood: {COOLDOWN_ERROR}"


def test_cooldown_zero_says_what_is_accepted() -> None:
    assert refusal("cooldown", "0") == f"'0' is not understood: {COOLDOWN_ERROR}"


def test_whale_refuses_an_amount_too_large_to_be_finite() -> None:
    assert parse_money("1" + "0" * 400) == math.inf
    assert refusal("whale", "1" + "0" * 400) == WHALE_ERROR


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("liq", "1" + "0" * 400, LIQ_ERROR),
        ("side", "nan", f"'nan' is not understood: {SIDE_ERROR}"),
        ("side", "inf", f"'inf' is not understood: {SIDE_ERROR}"),
        ("side", "-inf%", f"'-inf%' is not understood: {SIDE_ERROR}"),
    ],
)
def test_non_finite_values_are_refused(key: str, text: str, message: str) -> None:
    assert refusal(key, text) == message


# -- units ---------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["off", "OFF", " none ", "0", "disable", "disabled", "no"])
def test_is_off_words(word: str) -> None:
    assert is_off(word)


@pytest.mark.parametrize("word", ["", "on", "0.0", "nope", "false"])
def test_is_off_other_words(word: str) -> None:
    assert not is_off(word)


def test_parse_duration_takes_numbers_as_seconds() -> None:
    assert parse_duration(90) == 90.0
    assert parse_duration(1.5) == 1.5
    assert parse_duration("1.5") == 1.5


@pytest.mark.parametrize("value", [0, -1, "0", "0m", 0.0])
def test_parse_duration_refuses_zero_and_below(value: str | float) -> None:
    with pytest.raises(ValueError, match=r"^a duration must be above zero$"):
        parse_duration(value)


def test_parse_duration_refuses_booleans() -> None:
    with pytest.raises(ValueError, match=r"^expected a duration such as 30s, 5m, 2h"):
        parse_duration(True)


def test_parse_multiple_and_percent_direct() -> None:
    assert parse_multiple("4x") == 4.0
    assert parse_percent("-0.01%") == pytest.approx(-0.0001, rel=1e-12)
    assert parse_money("$1.5k") == 1500.0


@pytest.mark.parametrize("text", ["5\u017f", "5\u017fec", "30m\u0131n", "30M\u0130N"])
def test_duration_units_in_look_alike_letters(text: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(repr(text))} is not a duration: "):
        parse_duration(text)


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_money, "5\u041c"),  # Cyrillic capital em
        (parse_money, "5\u212a"),  # Kelvin sign, which IGNORECASE folds to k
        (parse_percent, "\u0665%"),  # Arabic-Indic digit five
        (parse_multiple, "3\u0445"),  # Cyrillic small ha
        (parse_multiple, "\u0663x"),  # Arabic-Indic digit three
        (parse_duration, "\u0663\u0660m"),  # Arabic-Indic digits thirty
    ],
)
def test_look_alike_letters_and_digits_are_not_understood(
    parse: Callable[[str], float], text: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(repr(text))} is not "):
        parse(text)


@pytest.mark.parametrize("letter", CASE_FOLD_TRAPS)
@pytest.mark.parametrize("key", ["liq", "side", "funding", "oi", "whale", "spike", "cooldown"])
def test_look_alike_letters_in_a_setting_are_not_understood(key: str, letter: str) -> None:
    assert refusal(key, f"5{letter}").startswith(f"'5{letter}' is not understood: {key} must be")


@given(any_text())
def test_parse_money_returns_a_float_or_raises_value_error(text: str) -> None:
    try:
        value = parse_money(text)
    except ValueError:
        return
    assert isinstance(value, float)
    assert value >= 0 or math.isnan(value)


@given(any_text())
def test_parse_percent_returns_a_float_or_raises_value_error(text: str) -> None:
    try:
        value = parse_percent(text)
    except ValueError:
        return
    assert isinstance(value, float)


@given(any_text())
@example("5\u017fec")
def test_parse_duration_returns_a_float_or_raises_value_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert isinstance(value, float)
    assert value > 0


@given(any_text())
@example("30m\u0131n")
@example("5\u017f")
@example("30M\u0130N")
def test_parse_duration_over_all_of_unicode(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("key", SETTING_KEYS)
@given(text=any_text())
@example(text="30m\u0131n")
@example(text="1" + "0" * 400)
@example(text="nan")
def test_set_threshold_returns_thresholds_or_raises_user_error(key: str, text: str) -> None:
    try:
        result = set_threshold(DEFAULTS, key, text)
    except UserError:
        return
    assert isinstance(result, Thresholds)
    value = getattr(result, key)
    assert result == replace(DEFAULTS, **{key: value})
    if key == "window":
        assert value in WINDOWS
    else:
        setting = SETTINGS[key]
        assert math.isfinite(value)
        assert (setting.off_allowed and value == 0) or setting.low <= value <= setting.high


# -- [defaults] in the config file ---------------------------------------------------------

GOOD_DEFAULTS = {
    "window": "4h",
    "min_liquidations_usd": 250_000_000,
    "min_side_share": 0.8,
    "funding_rate_8h": 0.001,
    "oi_change": 0.1,
    "single_liquidation_usd": 1_000_000,
    "spike": 3,
    "cooldown": "1h",
}
GOOD_THRESHOLDS = Thresholds(
    window="4h",
    liq=250_000_000.0,
    side=0.8,
    funding=0.001,
    oi=0.1,
    whale=1_000_000.0,
    spike=3.0,
    cooldown=3600.0,
)


def test_config_defaults_with_numbers() -> None:
    assert thresholds_from_config(GOOD_DEFAULTS) == (GOOD_THRESHOLDS, [])


def test_config_defaults_with_text_as_people_type_it() -> None:
    defaults = {
        "min_liquidations_usd": "250m",
        "min_side_share": "80%",
        "funding_rate_8h": "0.05%",
        "oi_change": "5%",
        "single_liquidation_usd": "off",
        "spike": "3x",
        "cooldown": 1800,
    }
    expected = Thresholds(liq=250e6, side=0.8, funding=0.0005, oi=0.05, whale=0.0, spike=3.0)
    assert thresholds_from_config(defaults) == (expected, [])


def test_config_defaults_zero_switches_rules_off() -> None:
    defaults = {"single_liquidation_usd": 0, "spike": 0, "min_side_share": 0, "oi_change": 0}
    assert thresholds_from_config(defaults) == (Thresholds(whale=0.0, spike=0.0, oi=0.0), [])


def test_config_defaults_at_the_boundaries() -> None:
    low = {
        "min_liquidations_usd": 10_000,
        "min_side_share": 0.5,
        "funding_rate_8h": 0.00001,
        "oi_change": 0.005,
        "single_liquidation_usd": 10_000,
        "spike": 1.1,
        "cooldown": 60,
    }
    high = {
        "min_liquidations_usd": 100e9,
        "min_side_share": 1,
        "funding_rate_8h": 0.05,
        "oi_change": 1,
        "spike": 100,
        "cooldown": 86_400,
    }
    assert thresholds_from_config(low) == (
        Thresholds(
            liq=10_000.0,
            side=0.5,
            funding=0.00001,
            oi=0.005,
            whale=10_000.0,
            spike=1.1,
            cooldown=60.0,
        ),
        [],
    )
    assert thresholds_from_config(high) == (
        Thresholds(liq=100e9, side=1.0, funding=0.05, oi=1.0, spike=100.0, cooldown=86_400.0),
        [],
    )


# In `[defaults]` a message names the config key, not the chat setting.
CONFIG_LIQ_ERROR = "min_liquidations_usd must be from $10K to $100B, or off, e.g. 250m"
CONFIG_SIDE_ERROR = "min_side_share must be from 50% to 100%, or off, e.g. 80% (or any)"
CONFIG_FUNDING_ERROR = "funding_rate_8h must be from 0.001% to 5%, or off, e.g. 0.05%"
CONFIG_OI_ERROR = "oi_change must be from 0.5% to 100%, or off, e.g. 5%"
CONFIG_WHALE_ERROR = "single_liquidation_usd must be from $10K to $100B, or off, e.g. 1m"

BAD_DEFAULTS = {
    "window": "2h",
    "min_liquidations_usd": 9_999,
    "min_side_share": 80,
    "funding_rate_8h": 0.0501,
    "oi_change": "lots",
    "single_liquidation_usd": True,
    "spike": [3],
    "cooldown": 0,
}
BAD_PROBLEMS = [
    f"defaults.window: {WINDOW_ERROR}",
    f"defaults.min_liquidations_usd: {CONFIG_LIQ_ERROR}",
    f"defaults.min_side_share: {CONFIG_SIDE_ERROR}",
    f"defaults.funding_rate_8h: {CONFIG_FUNDING_ERROR}",
    "defaults.oi_change: oi_change must be a fraction such as 0.05 (or text with %)",
    "defaults.single_liquidation_usd: single_liquidation_usd must be a number",
    "defaults.spike: spike must be a number",
    f"defaults.cooldown: {COOLDOWN_ERROR}",
]


def test_config_defaults_report_every_bad_value_with_its_key() -> None:
    assert thresholds_from_config(BAD_DEFAULTS) == (Thresholds(), BAD_PROBLEMS)


def test_config_defaults_just_outside_the_ranges() -> None:
    defaults = {
        "min_liquidations_usd": 100.1e9,
        "min_side_share": 0.49,
        "funding_rate_8h": 0.0000099,
        "oi_change": 1.01,
        "single_liquidation_usd": 9_999,
        "spike": 1.09,
        "cooldown": 86_401,
    }
    assert thresholds_from_config(defaults) == (
        Thresholds(),
        [
            f"defaults.min_liquidations_usd: {CONFIG_LIQ_ERROR}",
            f"defaults.min_side_share: {CONFIG_SIDE_ERROR}",
            f"defaults.funding_rate_8h: {CONFIG_FUNDING_ERROR}",
            f"defaults.oi_change: {CONFIG_OI_ERROR}",
            f"defaults.single_liquidation_usd: {CONFIG_WHALE_ERROR}",
            f"defaults.spike: {SPIKE_ERROR}",
            f"defaults.cooldown: {COOLDOWN_ERROR}",
        ],
    )


def test_config_defaults_text_problems_name_the_key() -> None:
    defaults = {
        "min_liquidations_usd": "lots",
        "min_side_share": "0.8",
        "funding_rate_8h": "0.05",
        "oi_change": "lots%",
        "single_liquidation_usd": "9k",
        "spike": "double",
        "cooldown": "0",
    }
    assert thresholds_from_config(defaults) == (
        Thresholds(),
        [
            f"defaults.min_liquidations_usd: 'lots' is not understood: {CONFIG_LIQ_ERROR}",
            "defaults.min_side_share: min_side_share must be a fraction such as 0.05 "
            "(or text with %)",
            "defaults.funding_rate_8h: funding_rate_8h must be a fraction such as 0.05 "
            "(or text with %)",
            f"defaults.oi_change: 'lots%' is not understood: {CONFIG_OI_ERROR}",
            f"defaults.single_liquidation_usd: {CONFIG_WHALE_ERROR}",
            f"defaults.spike: 'double' is not understood: {SPIKE_ERROR}",
            f"defaults.cooldown: '0' is not understood: {COOLDOWN_ERROR}",
        ],
    )


def test_config_defaults_refuse_non_finite_numbers() -> None:
    defaults = {
        "min_liquidations_usd": math.inf,
        "min_side_share": math.nan,
        "single_liquidation_usd": math.inf,
        "spike": -math.inf,
        "cooldown": math.nan,
    }
    assert thresholds_from_config(defaults) == (
        Thresholds(),
        [
            f"defaults.min_liquidations_usd: {CONFIG_LIQ_ERROR}",
            f"defaults.min_side_share: {CONFIG_SIDE_ERROR}",
            f"defaults.single_liquidation_usd: {CONFIG_WHALE_ERROR}",
            f"defaults.spike: {SPIKE_ERROR}",
            f"defaults.cooldown: {COOLDOWN_ERROR}",
        ],
    )


def test_config_defaults_refuse_off_for_window_and_cooldown() -> None:
    assert thresholds_from_config({"window": "off", "cooldown": "off"}) == (
        Thresholds(),
        [
            f"defaults.window: {WINDOW_ERROR}",
            f"defaults.cooldown: 'off' is not understood: {COOLDOWN_ERROR}",
        ],
    )


def test_config_defaults_keep_good_values_beside_bad_ones() -> None:
    defaults = {"window": "15m", "spike": 0.5, "cooldown": "10m"}
    assert thresholds_from_config(defaults) == (
        Thresholds(window="15m", cooldown=600.0),
        [f"defaults.spike: {SPIKE_ERROR}"],
    )


def test_settings_read_the_defaults_table() -> None:
    assert settings_from_dict({"defaults": GOOD_DEFAULTS}).defaults == GOOD_THRESHOLDS
    assert settings_from_dict({}).defaults == Thresholds()


def test_settings_read_defaults_from_toml() -> None:
    raw = tomllib.loads(
        """
        [defaults]
        window = "1h"
        min_liquidations_usd = 100_000_000
        min_side_share = 0
        funding_rate_8h = 0.0005
        oi_change = 0.05
        single_liquidation_usd = 0
        spike = 0
        cooldown = "30m"
        """
    )
    assert settings_from_dict(raw).defaults == Thresholds()


def test_settings_raise_config_error_with_the_defaults_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"defaults": BAD_DEFAULTS})
    assert caught.value.problems == BAD_PROBLEMS
    assert str(caught.value) == "\n".join(BAD_PROBLEMS)


def test_settings_report_unknown_defaults_keys_first() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"defaults": {"cooldwn": "5m", "spike": 200}})
    assert caught.value.problems == [
        "defaults.cooldwn: unknown key (known: cooldown, escalation, funding_rate_8h, "
        "min_liquidations_usd, min_side_share, oi_change, single_liquidation_usd, spike, window)",
        f"defaults.spike: {SPIKE_ERROR}",
    ]


def test_settings_defaults_must_be_a_table() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"defaults": "1h"})
    assert caught.value.problems == ["defaults: expected a table"]


# -- watch lists ---------------------------------------------------------------------------


@pytest.mark.parametrize("words", [[], ["all"], ["ALL"], ["All"]])
def test_watch_all_is_the_whole_market(words: list[str]) -> None:
    assert parse_watch(words) == frozenset()


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["BTC"], {"BTC"}),
        (["btc", "Eth", "sol"], {"BTC", "ETH", "SOL"}),
        (["BTC,", "ETH,", "SOL"], {"BTC", "ETH", "SOL"}),
        ([",", "btc", ","], {"BTC"}),
        (["btc", "BTC"], {"BTC"}),
        (["1000PEPE"], {"1000PEPE"}),
        (["A" * 20], {"A" * 20}),
    ],
)
def test_watch_assets(words: list[str], expected: set[str]) -> None:
    assert parse_watch(words) == frozenset(expected)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["BTC-USDT"], "not an asset symbol: BTC-USDT (use e.g. BTC ETH SOL, or all)"),
        (
            ["$btc", "eth", "a" * 21],
            f"not an asset symbol: $BTC, {'A' * 21} (use e.g. BTC ETH SOL, or all)",
        ),
        (["é"], "not an asset symbol: É (use e.g. BTC ETH SOL, or all)"),
    ],
)
def test_watch_refuses_what_is_not_a_symbol(words: list[str], message: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_watch(words)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "words", [["BTC,ETH,sol"], ["btc,eth", "SOL"], [",BTC,,ETH,", "sol,"], ["BTC,ETH,SOL,BTC"]]
)
def test_watch_splits_on_commas_inside_a_word(words: list[str]) -> None:
    assert parse_watch(words) == frozenset({"BTC", "ETH", "SOL"})


def test_watch_reports_a_bad_symbol_inside_a_comma_list() -> None:
    with pytest.raises(UserError) as caught:
        parse_watch(["BTC,BTC-USDT,eth"])
    assert str(caught.value) == "not an asset symbol: BTC-USDT (use e.g. BTC ETH SOL, or all)"


@pytest.mark.parametrize(
    "words", [["all", "BTC"], ["BTC", "all"], ["BTC,all"], ["ALL,eth"], ["all", "$btc"]]
)
def test_watch_refuses_all_mixed_with_assets(words: list[str]) -> None:
    with pytest.raises(UserError) as caught:
        parse_watch(words)
    assert str(caught.value) == "use /watch all on its own, or list assets such as BTC ETH SOL"


@pytest.mark.parametrize("words", [["all", "all"], ["all,all"], ["all,", ","]])
def test_watch_all_repeated_is_still_the_whole_market(words: list[str]) -> None:
    assert parse_watch(words) == frozenset()


# -- quiet hours ---------------------------------------------------------------------------

# 2024-01-15 is a Monday; Berlin is UTC+1 in January (CET) and UTC+2 in July (CEST).
JAN_15_2130_UTC = 1_705_354_200_000  # 1_704_067_200 (2024-01-01) + 14 d + 21:30
JAN_15_2330_UTC = 1_705_361_400_000
JUL_15_0530_UTC = 1_721_021_400_000  # 1_719_792_000 (2024-07-01) + 14 d + 05:30
JUL_15_0430_UTC = 1_721_017_800_000
MINUTE = 60_000
NIGHT = (22 * 60, 7 * 60)  # 22:00-07:00, wrapping midnight


def sub(quiet: tuple[int, int] | None, timezone: str = "Europe/Berlin") -> Subscription:
    return Subscription("telegram", "42", quiet=quiet, timezone=timezone)


def test_local_minutes_in_berlin() -> None:
    assert local_minutes(JAN_15_2130_UTC, "Europe/Berlin") == ("2024-01-15", 22 * 60 + 30)
    assert local_minutes(JAN_15_2330_UTC, "Europe/Berlin") == ("2024-01-16", 30)
    assert local_minutes(JUL_15_0530_UTC, "Europe/Berlin") == ("2024-07-15", 7 * 60 + 30)
    assert local_minutes(JAN_15_2130_UTC, "UTC") == ("2024-01-15", 21 * 60 + 30)


@pytest.mark.parametrize(
    ("now", "timezone", "quiet"),
    [
        (JAN_15_2130_UTC, "Europe/Berlin", True),  # 22:30 local
        (JAN_15_2130_UTC, "UTC", False),  # 21:30
        (JAN_15_2330_UTC, "Europe/Berlin", True),  # 00:30 the next day
        (JAN_15_2330_UTC, "UTC", True),  # 23:30
        (JUL_15_0530_UTC, "Europe/Berlin", False),  # 07:30 summer time
        (JUL_15_0530_UTC, "UTC", True),  # 05:30
        (JUL_15_0430_UTC, "Europe/Berlin", True),  # 06:30 summer time
        (JAN_15_2130_UTC - 30 * MINUTE, "Europe/Berlin", True),  # 22:00: start is inside
        (JAN_15_2130_UTC - 31 * MINUTE, "Europe/Berlin", False),  # 21:59
        (JUL_15_0430_UTC + 30 * MINUTE, "Europe/Berlin", False),  # 07:00: end is outside
        (JUL_15_0430_UTC + 29 * MINUTE, "Europe/Berlin", True),  # 06:59
    ],
)
def test_quiet_hours_wrapping_midnight(now: int, timezone: str, quiet: bool) -> None:
    assert is_quiet(sub(NIGHT, timezone), now) is quiet


@pytest.mark.parametrize(
    ("now", "quiet"),
    [
        (JAN_15_2130_UTC - 30 * MINUTE, True),  # 22:00 local
        (JAN_15_2130_UTC, True),  # 22:30
        (JAN_15_2130_UTC + 29 * MINUTE, True),  # 22:59
        (JAN_15_2130_UTC + 30 * MINUTE, False),  # 23:00
        (JAN_15_2130_UTC - 31 * MINUTE, False),  # 21:59
    ],
)
def test_quiet_hours_within_one_day(now: int, quiet: bool) -> None:
    assert is_quiet(sub((22 * 60, 23 * 60)), now) is quiet


def test_no_quiet_hours() -> None:
    assert not is_quiet(sub(None), JAN_15_2330_UTC)


# -- money settings: one parser, one range; ASCII digits for every key ----------------------


@pytest.mark.parametrize("key", ["liq", "whale"])
@pytest.mark.parametrize("text", ["1000000000000000000000000000000", "9" * 308, "101b", "1t"])
def test_every_money_setting_has_the_same_upper_bound(key: str, text: str) -> None:
    error = LIQ_ERROR if key == "liq" else WHALE_ERROR
    assert refusal(key, text) == error


def test_whale_and_liq_share_their_bounds_and_parser() -> None:
    assert set_threshold(DEFAULTS, "whale", "100b").whale == 100_000_000_000
    assert set_threshold(DEFAULTS, "liq", "100b").liq == 100_000_000_000
    assert refusal("whale", "10^30") == f"'10^30' is not understood: {WHALE_ERROR}"


TO_ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x660 + d) for d in range(10)))
ASCII_FORMS = {"liq": "50m", "side": "80%", "funding": "0.05%", "oi": "5%", "whale": "5m"}
ASCII_FORMS |= {"spike": "3x", "cooldown": "30m"}
ARABIC_INDIC = {key: text.translate(TO_ARABIC_INDIC) for key, text in ASCII_FORMS.items()}


@pytest.mark.parametrize(("key", "text"), ARABIC_INDIC.items())
def test_non_ascii_digits_are_refused_for_every_key(key: str, text: str) -> None:
    assert refusal(key, text).startswith(f"{text!r} is not understood: {key} must be")


@pytest.mark.parametrize("text", ["nan%", "1e0", "inf", "0x50"])
def test_a_share_reads_plain_numbers_only(text: str) -> None:
    assert refusal("side", text) == f"{text!r} is not understood: {SIDE_ERROR}"
