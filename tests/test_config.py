"""Settings files: defaults, every problem reported with its key, the check-config command."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, load_settings, settings_from_dict

EXAMPLE = Path(__file__).parent.parent / "config.example.toml"


def test_example_file_is_valid_and_matches_the_built_in_defaults() -> None:
    assert load_settings(EXAMPLE) == settings_from_dict({})


def test_contract_keys_and_defaults() -> None:
    settings = settings_from_dict({"storage": {"path": "/tmp/x.db"}})
    assert settings.storage.path == "/tmp/x.db"
    binance = settings.exchanges["binance"]
    assert (binance.enabled, binance.ws_url, binance.rest_url) == (
        True,
        "wss://fstream.binance.com/market",
        "https://fapi.binance.com",
    )
    assert settings.exchanges["bybit"].ws_url == "wss://stream.bybit.com/v5/public/linear"
    assert settings.exchanges["okx"].rest_url == "https://www.okx.com"
    assert settings.collector.funding_interval == 60
    assert settings.collector.open_interest_interval == 300


def test_durations_accept_text_and_seconds() -> None:
    settings = settings_from_dict(
        {"collector": {"funding_interval": "2m", "open_interest_interval": 90}}
    )
    assert (settings.collector.funding_interval, settings.collector.open_interest_interval) == (
        120,
        90,
    )


def test_every_problem_is_reported_with_its_key() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(
            {
                "storage": {"path": ""},
                "exchanges": {"binance": {"enabled": "yes", "ws_url": "https://x"}, "kraken": {}},
                "collector": {"funding_interval": "soon"},
                "telegramm": {},
            }
        )
    assert caught.value.problems == [
        "telegramm: unknown table",
        "storage.path: expected a non-empty string",
        "collector.funding_interval: 'soon' is not a duration: use a number with s, m, h or d, "
        "such as 30m or 2h",
        "exchanges.kraken: unknown key (known: binance, bybit, okx)",
        "exchanges.binance.enabled: expected true or false",
        "exchanges.binance.ws_url: expected a URL starting with ws:// or wss:// and a host",
    ]


def test_all_exchanges_disabled_is_a_problem() -> None:
    with pytest.raises(ConfigError, match="enable at least one"):
        settings_from_dict(
            {"exchanges": {name: {"enabled": False} for name in ("binance", "bybit", "okx")}}
        )


def test_check_config_exits_non_zero_listing_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[storage]\npath = 3\n[logging]\nlevel = "LOUD"\n')
    assert main(["--config", str(bad), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "storage.path: expected a non-empty string" in err
    assert "logging.level: expected one of DEBUG, INFO, WARNING, ERROR" in err


def test_check_config_reads_liqbot_config_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[storage]\npath = "x.db"\n')
    monkeypatch.setenv("LIQBOT_CONFIG", str(good))
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out == f"{good}: OK\n"


def test_invalid_toml_and_missing_file_are_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[storage\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken)
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "missing.toml")
