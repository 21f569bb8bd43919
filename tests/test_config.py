"""Settings files: defaults, every problem reported with its key, the check-config command."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import EXCHANGE_DEFAULTS, ConfigError, load_settings, settings_from_dict

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


def test_new_venues_contract_defaults_enabled_with_the_real_endpoints() -> None:
    exchanges = settings_from_dict({}).exchanges
    endpoints = {
        name: (e.enabled, e.ws_url, e.rest_url)
        for name, e in exchanges.items()
        if name in {"gate", "bitget", "deribit", "hyperliquid"}
    }
    assert endpoints == {
        "gate": (True, "wss://fx-ws.gateio.ws/v4/ws/usdt", "https://api.gateio.ws"),
        "bitget": (True, "wss://ws.bitget.com/v3/ws/public", "https://api.bitget.com"),
        "deribit": (True, "wss://www.deribit.com/ws/api/v2", "https://www.deribit.com"),
        "hyperliquid": (True, "", "https://api.hyperliquid.xyz"),
    }
    silence = {name: e.silence_timeout for name, e in exchanges.items()}
    assert (silence["gate"], silence["bitget"], silence["deribit"]) == (900.0, 300.0, 300.0)


def test_hyperliquid_has_no_stream_so_no_ws_url_key() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(
            {"exchanges": {"hyperliquid": {"ws_url": "wss://api.hyperliquid.xyz/ws"}}}
        )
    assert caught.value.problems == [
        "exchanges.hyperliquid.ws_url: unknown key (known: enabled, rest_url)"
    ]


def test_durations_accept_text_and_seconds() -> None:
    settings = settings_from_dict(
        {"collector": {"funding_interval": "2m", "open_interest_interval": 90}}
    )
    assert (settings.collector.funding_interval, settings.collector.open_interest_interval) == (
        120,
        90,
    )


def test_outbox_max_age_defaults_to_30_minutes_and_takes_a_duration() -> None:
    assert settings_from_dict({}).outbox.max_age == 1800
    assert settings_from_dict({"outbox": {"max_age": "2h"}}).outbox.max_age == 7200
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"outbox": {"max_age": "30s", "retries": 3}})
    assert caught.value.problems == [
        "outbox.retries: unknown key (known: max_age)",
        "outbox.max_age: expected from 1m to 1d",
    ]


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
        "exchanges.kraken: unknown key (known: binance, bitget, bybit, deribit, gate, hyperliquid, "
        "okx)",
        "exchanges.binance.enabled: expected true or false",
        "exchanges.binance.ws_url: expected a URL starting with ws:// or wss:// and a host",
    ]


def test_all_exchanges_disabled_is_a_problem() -> None:
    with pytest.raises(ConfigError, match="enable at least one"):
        settings_from_dict({"exchanges": {name: {"enabled": False} for name in EXCHANGE_DEFAULTS}})


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


# -- every value `run` would choke on is caught here ----------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            {"storage": {"events_retention_days": 1e308}},
            "storage.events_retention_days: expected a number of days from 1 to 3650",
        ),
        (
            {"storage": {"rollups_retention_days": 0.01}},
            "storage.rollups_retention_days: expected a number of days from 1 to 3650",
        ),
        (
            {"collector": {"funding_interval": "0.001s"}},
            "collector.funding_interval: expected from 10s to 1d",
        ),
        (
            {"collector": {"open_interest_interval": 1e308}},
            "collector.open_interest_interval: expected from 10s to 1d",
        ),
        (
            {"collector": {"instruments_interval": "1s"}},
            "collector.instruments_interval: expected from 1m to 7d",
        ),
        (
            {"exchanges": {"okx": {"silence_timeout": "0.01s"}}},
            "exchanges.okx.silence_timeout: expected from 1s to 1d",
        ),
        (
            {"exchanges": {"binance": {"rest_url": "http://"}}},
            "exchanges.binance.rest_url: expected a URL starting with http:// or https:// and a "
            "host: 'http://' has no host",
        ),
        (
            {"exchanges": {"bybit": {"ws_url": "wss://:443/x"}}},
            "exchanges.bybit.ws_url: expected a URL starting with ws:// or wss:// and a host: "
            "'wss://:443/x' has no host",
        ),
        (
            {"telegram": {"api_url": "https://host:port"}},
            "telegram.api_url: expected a URL starting with http:// or https:// and a host: "
            "'https://host:port' is not a valid URL",
        ),
        ({"telegram": {"token": ""}}, "telegram.token: expected the bot token (it is blank)"),
        ({"discord": {"token": "  \t"}}, "discord.token: expected the bot token (it is blank)"),
        (
            {"discord": {"token": "abc def"}},
            "discord.token: a bot token has no spaces or line breaks: copy it again",
        ),
        (
            {"telegram": {"token": "not a token"}},
            "telegram.token: a bot token has no spaces or line breaks: copy it again",
        ),
        (
            {"telegram": {"token": "just-letters"}},
            "telegram.token: not a Telegram bot token (it reads <digits>:<letters>, as "
            "@BotFather gives it)",
        ),
        ({"storage": {"path": "   "}}, "storage.path: expected a non-empty string"),
        (
            {"token": "123456:ABC"},
            "token: belongs in a table: write it as [telegram] token (or [discord] token)",
        ),
        ({"path": "x.db"}, "path: belongs in a table: write it as [storage] path"),
    ],
)
def test_values_run_would_choke_on_are_problems(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(raw)
    assert caught.value.problems == [problem]


def test_a_blank_token_in_the_environment_is_a_problem_and_an_empty_one_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "   ")
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({})
    assert caught.value.problems == [
        "TELEGRAM_BOT_TOKEN (environment): expected the bot token (it is blank)"
    ]
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "")
    assert not settings_from_dict({}).telegram.enabled


def test_check_config_never_prints_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[telegram]\ntoken = "secret-without-an-id"\n')
    assert main(["--config", str(bad), "check-config"]) == 2
    out, err = capsys.readouterr()
    assert "secret" not in out + err
    assert "telegram.token: not a Telegram bot token" in err


def test_the_ranges_keep_the_example_and_the_test_harness_valid() -> None:
    settings = settings_from_dict(
        {"collector": {"reconnect_min": "0.05s", "reconnect_max": "0.2s", "funding_interval": 10}}
    )
    assert (settings.collector.reconnect_min, settings.collector.funding_interval) == (0.05, 10)


KEYS_BY_TABLE = {
    "storage": ["path", "events_retention_days", "rollups_retention_days"],
    "collector": [
        "funding_interval",
        "open_interest_interval",
        "instruments_interval",
        "reconnect_min",
        "reconnect_max",
        "recycle_after",
    ],
    "exchanges.okx": ["enabled", "ws_url", "rest_url", "silence_timeout"],
    "logging": ["level"],
    "telegram": ["token", "api_url", "paid_broadcast", "paid_broadcast_rate"],
    "discord": ["token", "api_url", "gateway_url"],
    "defaults": [
        "window",
        "min_liquidations_usd",
        "min_side_share",
        "funding_rate_8h",
        "oi_change",
        "single_liquidation_usd",
        "spike",
        "cooldown",
    ],
}
EVERY_KEY = [(table, key) for table, keys in KEYS_BY_TABLE.items() for key in keys]


@pytest.mark.parametrize(("table", "key"), EVERY_KEY)
@pytest.mark.parametrize(
    "value",
    ["[1]", "{ a = 1 }", "1979-05-27T07:32:00Z", "nan", "-inf", "1e308", '" "', "-1"],
)
def test_every_key_reports_a_wrong_value_as_a_problem_never_a_crash(
    table: str, key: str, value: str
) -> None:
    raw = tomllib.loads(f"[{table}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(raw)
    [problem] = caught.value.problems
    assert problem.startswith(f"{table}.{key}: ")


def test_paid_broadcast_is_off_by_default_and_its_rate_is_bounded() -> None:
    telegram = settings_from_dict({}).telegram
    assert (telegram.paid_broadcast, telegram.paid_broadcast_rate) == (False, 1000)
    on = settings_from_dict({"telegram": {"paid_broadcast": True, "paid_broadcast_rate": 500}})
    assert (on.telegram.paid_broadcast, on.telegram.paid_broadcast_rate) == (True, 500)
    for rate in (29, 1001, 100.5, True):
        with pytest.raises(ConfigError) as caught:
            settings_from_dict({"telegram": {"paid_broadcast_rate": rate}})
        assert caught.value.problems == [
            "telegram.paid_broadcast_rate: expected a whole number of messages a second "
            "from 30 to 1000"
        ]
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"discord": {"paid_broadcast": True}})
    assert caught.value.problems[0].startswith("discord.paid_broadcast: unknown key")
