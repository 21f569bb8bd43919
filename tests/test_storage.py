"""The writer and the status read-back: what one process writes, another reads exactly."""

from __future__ import annotations

from pathlib import Path

from sqlite_utils import Database

from bot.clock import now_ms
from bot.config import settings_from_dict
from bot.market import MS_PER_MINUTE
from bot.model import FundingRate, Gap, Liquidation, OpenInterest, SourceHealth
from bot.recorder import Recorder
from bot.status import HEALTH_STALE_MS, build_status, render_status
from bot.writer import Writer
from storage import market_data, open_database
from storage.schema import migrations

NOW = 1_763_700_000_000 // MS_PER_MINUTE * MS_PER_MINUTE + 30_000
DAY = 86_400_000


def liq(venue: str, symbol: str, base: str, position: str, usd: float, ts: int) -> Liquidation:
    return Liquidation(venue, symbol, base, position, usd, 1.0, usd, ts, ts)  # type: ignore[arg-type]


async def test_flush_stores_events_rollups_funding_interest_gaps_and_health(tmp_path: Path) -> None:
    db = open_database(tmp_path / "liq.db")
    health = [
        SourceHealth(
            "binance",
            connected=True,
            last_message_at=NOW,
            reconnects=2,
            messages=10,
            parse_errors=1,
        )
    ]
    recorder = Recorder(Writer.inline(db), health=lambda: health)
    recorder.add_liquidations(
        [
            liq("binance", "BTCUSDT", "BTC", "long", 1_000.0, NOW - 1_000),
            liq("binance", "BTCUSDT", "BTC", "long", 500.0, NOW - 2_000),
            liq("okx", "BTC-USDT-SWAP", "BTC", "short", 250.0, NOW - 3_000),
        ]
    )
    recorder.add_funding([FundingRate("bybit", "BTCUSDT", "BTC", 0.0004, 4.0, 91_000.0, None)])
    recorder.add_open_interest([OpenInterest("okx", "BTC-USDT-SWAP", "BTC", 2.5e9, NOW)])
    recorder.add_gap(Gap("binance", NOW - 60_000, NOW - 30_000))
    await recorder.flush()

    reader = open_database(tmp_path / "liq.db")  # a second connection, as `liqbot status` uses
    assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 3
    minute = (NOW - 1_000) // MS_PER_MINUTE
    assert sorted(market_data.read_rollups(reader, 0)) == [
        (minute, "binance", "BTC", "long", 1_500.0, 2),
        (minute, "okx", "BTC", "short", 250.0, 1),
    ]
    status = build_status(reader, settings_from_dict({}), NOW)
    hour = status["liquidations"]["1h"]
    assert hour == {
        "total_usd": 1_750.0,
        "long_usd": 1_500.0,
        "short_usd": 250.0,
        "long_share": 1_500.0 / 1_750.0,
        "count": 3,
        "by_exchange": {
            "binance": 1_500.0,
            "bybit": 0.0,
            "okx": 250.0,
            "gate": 0.0,
            "bitget": 0.0,
            "deribit": 0.0,
        },
        "by_symbol": {"BTC": 1_750.0},
    }
    assert status["funding"] == [
        {
            "exchange": "bybit",
            "symbol": "BTCUSDT",
            "base": "BTC",
            "rate": 0.0004,
            "interval_hours": 4.0,
            "rate_8h": 0.0008,
            "apr": 0.0004 * 6 * 365,
        }
    ]
    assert status["open_interest"] == [
        {"exchange": "okx", "symbol": "BTC-USDT-SWAP", "base": "BTC", "usd": 2.5e9}
    ]
    binance = status["sources"]["binance"]
    assert (binance["reconnects"], binance["messages"], binance["parse_errors"]) == (2, 10, 1)
    assert binance["last_message_at"] == "2025-11-21T04:40:30Z"
    assert binance["gaps"] == [
        {"from": "2025-11-21T04:39:30Z", "to": "2025-11-21T04:40:00Z", "seconds": 30.0}
    ]
    assert status["sources"]["okx"]["connected"] is False  # never reported health
    text = render_status(status)
    assert "  1h    $1.75K  86% longs  (3 events)" in text
    assert "lower bounds" in text


async def test_second_flush_adds_to_the_same_minute(tmp_path: Path) -> None:
    db = open_database(tmp_path / "liq.db")
    recorder = Recorder(Writer.inline(db))
    for usd in (10.0, 20.0):
        recorder.add_liquidations([liq("bybit", "ETHUSDT", "ETH", "short", usd, NOW)])
        await recorder.flush()
    assert market_data.read_rollups(db, 0) == [
        (NOW // MS_PER_MINUTE, "bybit", "ETH", "short", 30.0, 2)
    ]


async def test_health_older_than_the_stale_limit_reads_as_disconnected(tmp_path: Path) -> None:
    db = open_database(tmp_path / "liq.db")
    await Recorder(
        Writer.inline(db), health=lambda: [SourceHealth("bybit", connected=True)]
    ).flush()
    settings = settings_from_dict({})
    assert build_status(db, settings, now_ms())["sources"]["bybit"]["connected"] is True
    later = build_status(db, settings, now_ms() + HEALTH_STALE_MS + 1)
    assert later["sources"]["bybit"]["connected"] is False


async def test_prune_keeps_rollups_longer_than_events(tmp_path: Path) -> None:
    db = open_database(tmp_path / "liq.db")
    recorder = Recorder(Writer.inline(db))
    recorder.add_liquidations(
        [
            liq("okx", "SOL-USDT-SWAP", "SOL", "long", 1.0, NOW - 10 * DAY),
            liq("okx", "SOL-USDT-SWAP", "SOL", "long", 2.0, NOW - 100 * DAY),
            liq("okx", "SOL-USDT-SWAP", "SOL", "long", 4.0, NOW),
        ]
    )
    await recorder.flush()
    with db.atomic():
        market_data.prune(db, NOW, events_days=7, rollups_days=90)
    assert [row[0] for row in db.execute("SELECT usd FROM events")] == [4.0]
    assert sorted(row[4] for row in market_data.read_rollups(db, 0)) == [1.0, 4.0]


def test_a_large_batch_is_stored_whole_and_in_order(tmp_path: Path) -> None:
    db = open_database(tmp_path / "liq.db")
    events = [liq("bybit", "ETHUSDT", "ETH", "short", float(n), NOW) for n in range(1_234)]
    with db.atomic():  # 1,000 + 2 x 100 + 34 single rows where SQLite allows 9,000 parameters
        market_data.save_liquidations(db, events)
    assert [row[0] for row in db.execute("SELECT usd FROM events ORDER BY rowid")] == [
        float(n) for n in range(1_234)
    ]
    assert market_data.read_rollups(db, 0) == [
        (NOW // MS_PER_MINUTE, "bybit", "ETH", "short", float(sum(range(1_234))), 1_234)
    ]


def test_groups_subscribed_before_delivery_order_start_above_private_chats() -> None:
    db = Database(memory=True)
    migrations.apply(db, stop_before="add_delivery_priority")
    for platform, chat_id in (("telegram", "-1001"), ("telegram", "7"), ("discord", "55")):
        row = {"platform": platform, "chat_id": chat_id, "active": 1, "watch": ""}
        db.table("subscriptions").insert(row)
    migrations.apply(db)
    rows = db.execute("SELECT chat_id, priority FROM subscriptions ORDER BY chat_id").fetchall()
    assert rows == [("-1001", 1), ("55", 0), ("7", 0)]
