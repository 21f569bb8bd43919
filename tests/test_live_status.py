"""A chat's /status inside `liqbot run` comes from the market held in memory and says exactly
what `liqbot status` (another process, reading the database) says."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import settings_from_dict
from bot.core import Core, read_start
from bot.model import FundingRate, OpenInterest, SourceHealth
from bot.status import LiveStatus, build_live_status, build_status
from storage import market_data, open_database
from tests.engine_builders import HOUR, MINUTE, T0, liq, seed_history


async def test_the_live_status_equals_the_one_read_from_the_database(tmp_path: Path) -> None:
    path = tmp_path / "liqbot.db"
    seed_history(
        path, [liq("BTC", "long", 2e6, T0 - 5 * HOUR), liq("ETH", "short", 7e5, T0 - 3 * HOUR)]
    )
    health = [SourceHealth("binance", connected=True, last_message_at=T0, messages=4)]
    db = open_database(path)
    core = Core(db, read_start(db, T0), channels={}, health=lambda: health)
    core.on_liquidations(
        [liq("SOL", "long", 3e5, T0 - 2 * MINUTE), liq("BTC", "short", 1e6, T0 - MINUTE, "okx")]
    )
    core.on_funding(
        [
            FundingRate("bybit", "BTCUSDT", "BTC", 0.0004, 4.0, 91_000.0, None),
            FundingRate("binance", "ETHUSDT", "ETH", -0.0009, 8.0, 3_000.0, None),
            FundingRate("okx", "BTC-USDT-SWAP", "BTC", 0.0001, 8.0, None, None),
        ]
    )
    core.on_open_interest(
        [
            OpenInterest("okx", "BTC-USDT-SWAP", "BTC", 2.5e9, T0),
            OpenInterest("binance", "ETHUSDT", "ETH", 1.1e9, T0),
        ],
        T0,
    )
    await core.recorder.flush()
    settings = settings_from_dict({})
    core.market.advance(T0)

    live = build_live_status(core.db, settings, core.market, core.derivatives, T0)
    stored = build_status(open_database(path), settings, T0)
    assert live == stored
    assert live["liquidations"]["24h"]["total_usd"] == 4e6
    assert [row["base"] for row in live["funding"]] == ["ETH", "BTC", "BTC"]


def test_the_live_status_does_not_read_the_market_back_from_sql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_database(tmp_path / "liqbot.db")
    core = Core(db, read_start(db, T0), channels={})
    for name in ("read_rollups", "read_funding", "read_open_interest"):
        monkeypatch.setattr(market_data, name, pytest.fail)
    status = build_live_status(core.db, settings_from_dict({}), core.market, core.derivatives, T0)
    assert status["liquidations"]["1h"]["count"] == 0


def test_a_burst_of_status_builds_it_once_a_second(tmp_path: Path) -> None:
    db = open_database(tmp_path / "liqbot.db")
    core = Core(db, read_start(db, T0), channels={})
    live = LiveStatus(core.db, settings_from_dict({}), core.market, core.derivatives)
    first = live.build(T0)
    assert live.build(T0 + 999 - T0 % 1000) is first
    core.on_liquidations([liq("BTC", "long", 5e5, T0)])
    later = live.build(T0 + 1000)
    assert later is not first
    assert later["liquidations"]["1h"]["total_usd"] == 5e5
