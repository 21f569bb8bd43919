"""Rolling windows: exact totals as minutes pass, late events, restarts from rollups."""

from __future__ import annotations

from bot.market import MS_PER_MINUTE, MarketState
from bot.model import Liquidation, Position

T0 = 1_763_700_000_000 // MS_PER_MINUTE * MS_PER_MINUTE  # a minute boundary


def liq(venue: str, base: str, position: Position, usd: float, ts: int) -> Liquidation:
    return Liquidation(venue, base + "USDT", base, position, usd, 1.0, usd, ts, ts)


def test_window_totals_split_by_side_venue_and_asset() -> None:
    state = MarketState(T0)
    state.add(liq("binance", "BTC", "long", 900_000, T0 + 1_000))
    state.add(liq("bybit", "BTC", "long", 50_000, T0 + 2_000))
    state.add(liq("okx", "ETH", "short", 50_000, T0 + 3_000))
    totals = state.totals("5m")
    assert (totals.total_usd, totals.long_usd, totals.short_usd, totals.count) == (
        1_000_000,
        950_000,
        50_000,
        3,
    )
    assert totals.long_share == 0.95
    assert totals.by_exchange == {"binance": 900_000, "bybit": 50_000, "okx": 50_000}
    assert totals.by_base == {"BTC": 950_000, "ETH": 50_000}


def test_minutes_leave_each_window_when_it_ends() -> None:
    state = MarketState(T0)
    state.add(liq("binance", "BTC", "long", 100, T0))
    state.advance(T0 + 4 * MS_PER_MINUTE)  # 5 minutes covered: T0 .. T0+4
    state.add(liq("binance", "BTC", "short", 10, T0 + 4 * MS_PER_MINUTE))
    assert state.totals("5m").total_usd == 110
    state.advance(T0 + 5 * MS_PER_MINUTE)
    assert state.totals("5m").total_usd == 10
    assert state.totals("5m").by_base == {"BTC": 10}
    assert state.totals("1h").total_usd == 110
    state.advance(T0 + 60 * MS_PER_MINUTE)
    assert state.totals("1h").count == 1
    state.advance(T0 + 1444 * MS_PER_MINUTE)
    assert state.totals("24h").total_usd == 0
    assert state.totals("24h").by_exchange == {}


def test_late_event_counts_in_the_windows_that_hold_its_minute() -> None:
    state = MarketState(T0 + 10 * MS_PER_MINUTE)
    state.add(liq("okx", "SOL", "long", 7, T0 + 3 * MS_PER_MINUTE))
    assert state.totals("5m").total_usd == 0
    assert state.totals("15m").total_usd == 7
    state.advance(T0 + 18 * MS_PER_MINUTE)  # the minute leaves the 15m window
    assert state.totals("15m").total_usd == 0
    assert state.totals("1h").total_usd == 7


def test_event_ahead_of_our_clock_moves_it_no_further_than_a_minute_past_receipt() -> None:
    state = MarketState(T0)
    event = liq("binance", "BTC", "long", 5, T0 + 3 * MS_PER_MINUTE)
    event.recv_ts = T0 + 10
    state.add(event)
    assert state.minute == T0 // MS_PER_MINUTE + 1
    assert state.totals("5m").total_usd == 5


def test_rebuilt_from_rollups_reads_like_the_live_state() -> None:
    live = MarketState(T0)
    rows = []
    for minute_offset, usd in ((0, 1.0), (30, 2.0), (200, 4.0), (1000, 8.0)):
        ts = T0 + minute_offset * MS_PER_MINUTE
        live.add(liq("bybit", "ETH", "short", usd, ts))
        rows.append((ts // MS_PER_MINUTE, "bybit", "ETH", "short", usd, 1))
    now = T0 + 1000 * MS_PER_MINUTE + 5_000
    live.advance(now)
    rebuilt = MarketState(now)
    rebuilt.load_rollups(rows)
    for window in ("5m", "15m", "1h", "4h", "24h"):
        assert rebuilt.totals(window) == live.totals(window)
    assert [live.totals(w).total_usd for w in ("5m", "1h", "4h", "24h")] == [8, 8, 8, 15]
