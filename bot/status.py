"""`liqbot status`: a summary built from the database that `liqbot run` writes, so it works from
a second process while the bot runs."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlite_utils import Database

from bot.config import Settings
from bot.formatting import format_percent, format_rate, format_usd, iso_utc
from bot.market import HISTORY_MINUTES, MarketState, WindowTotals
from storage import market_data

STATUS_WINDOWS = ("5m", "1h", "4h", "24h")
# Health rows are rewritten every second by `run`; older ones mean `run` is not running.
HEALTH_STALE_MS = 15_000
GAPS_SINCE_MS = 24 * 3_600_000
THROTTLED_NOTE = (
    "Binance and OKX throttle their liquidation feeds (Binance sends at most one liquidation per "
    "symbol per second; OKX says its feed does not represent the total), so totals are lower "
    "bounds. Bybit's feed is complete."
)


def _window_json(totals: WindowTotals, venues: list[str]) -> dict[str, Any]:
    by_exchange = dict.fromkeys(venues, 0.0) | totals.by_exchange
    return {
        "total_usd": totals.total_usd,
        "long_usd": totals.long_usd,
        "short_usd": totals.short_usd,
        "long_share": totals.long_share,
        "count": totals.count,
        "by_exchange": by_exchange,
        "by_symbol": totals.by_base,
    }


def build_status(db: Database, settings: Settings, now: int) -> dict[str, Any]:
    market = MarketState(now)
    market.load_rollups(market_data.read_rollups(db, market.minute - HISTORY_MINUTES))
    venues = [exchange.name for exchange in settings.enabled_exchanges]
    gaps: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for gap in market_data.read_gaps(db, now - GAPS_SINCE_MS):
        gaps[gap["venue"]].append(
            {
                "from": iso_utc(gap["start_ts"]),
                "to": iso_utc(gap["end_ts"]),
                "seconds": round((gap["end_ts"] - gap["start_ts"]) / 1000, 3),
            }
        )
    health = {row["venue"]: row for row in market_data.read_health(db)}
    sources = {}
    for venue in venues:
        row = health.get(venue, {})
        fresh = now - (row.get("updated_at") or 0) <= HEALTH_STALE_MS
        sources[venue] = {
            "connected": bool(row.get("connected")) and fresh,
            "last_message_at": iso_utc(row.get("last_message_at")),
            "reconnects": row.get("reconnects", 0),
            "messages": row.get("messages", 0),
            "parse_errors": row.get("parse_errors", 0),
            "gaps": gaps.get(venue, []),
        }
    return {
        "generated_at": iso_utc(now),
        "liquidations": {w: _window_json(market.totals(w), venues) for w in STATUS_WINDOWS},
        "funding": [
            {
                key: row[key]
                for key in ("symbol", "base", "rate", "interval_hours", "rate_8h", "apr")
            }
            | {"exchange": row["venue"]}
            for row in market_data.read_funding(db)
        ],
        "open_interest": [
            {
                "exchange": row["venue"],
                "symbol": row["symbol"],
                "base": row["base"],
                "usd": row["usd"],
            }
            for row in market_data.read_open_interest(db)
        ],
        "sources": sources,
        "storage": _storage_json(market_data.read_storage_state(db), now),
    }


def _storage_json(row: dict[str, Any] | None, now: int) -> dict[str, Any]:
    """What `run`'s recorder last stored about storage. It cannot store anything while the
    database is not writable, so a stale `written_at` is what shows an outage in progress."""
    row = row or {}
    written = row.get("updated_at")
    return {
        "written_at": iso_utc(written),
        "fresh": written is not None and now - written <= HEALTH_STALE_MS,
        "last_error": row.get("last_error"),
        "last_error_from": iso_utc(row.get("outage_since")),
        "last_error_to": iso_utc(row.get("outage_until")),
        "dropped_rows": row.get("dropped") or 0,
    }


def _storage_lines(storage: dict[str, Any] | None) -> list[str]:
    """A line when storage has something to report: not written lately, or a past failure."""
    if not storage or storage["written_at"] is None:
        return []
    notes = []
    if not storage["fresh"]:
        notes.append(
            f"not written since {storage['written_at']} (`liqbot run` is stopped, or cannot"
            " write the database: see its log)"
        )
    if storage["last_error"]:
        notes.append(
            f"last write failure {storage['last_error_from']} to {storage['last_error_to']}:"
            f" {storage['last_error']}"
        )
    if storage["dropped_rows"]:
        notes.append(f"{storage['dropped_rows']} rows dropped")
    return ["", "Storage: " + "; ".join(notes)] if notes else []


def render_status(
    status: dict[str, Any], top: int = 5, windows: tuple[str, ...] = STATUS_WINDOWS
) -> str:
    """The human form: compact, one screen (the CLI's, and /status in chats with fewer windows)."""
    lines = [f"liqbot status at {status['generated_at']}", "", "Liquidations:"]
    for window in windows:
        totals = status["liquidations"][window]
        side = (
            f"{format_percent(totals['long_share'])} longs"
            if totals["total_usd"]
            else "no liquidations"
        )
        lines.append(
            f"  {window:>4}  {format_usd(totals['total_usd']):>8}  {side}"
            f"  ({totals['count']} events)"
        )
    day = status["liquidations"]["24h"]
    if day["by_symbol"]:
        lines.append(
            "  24h top assets: "
            + ", ".join(
                f"{base} {format_usd(usd)}" for base, usd in list(day["by_symbol"].items())[:top]
            )
        )
        lines.append(
            "  24h by venue: "
            + ", ".join(f"{venue} {format_usd(usd)}" for venue, usd in day["by_exchange"].items())
        )
    if status["funding"]:
        lines += ["", "Funding extremes (per 8h):"]
        lines += [
            f"  {row['base']:<8} {format_rate(row['rate_8h'])}  {row['exchange']}"
            f"  (APR {row['apr'] * 100:.0f}%)"
            for row in status["funding"][:top]
        ]
    if status["open_interest"]:
        by_base: defaultdict[str, float] = defaultdict(float)
        for row in status["open_interest"]:
            by_base[row["base"]] += row["usd"]
        largest = sorted(by_base.items(), key=lambda item: -item[1])[:top]
        lines += [
            "",
            "Open interest (all venues): "
            + ", ".join(f"{base} {format_usd(usd)}" for base, usd in largest),
        ]
    lines += ["", "Sources:"]
    for venue, source in status["sources"].items():
        state = "connected" if source["connected"] else "DISCONNECTED"
        lines.append(
            f"  {venue:<8} {state}, last message {source['last_message_at'] or 'never'}, "
            f"{source['reconnects']} reconnects, {len(source['gaps'])} gaps in 24h, "
            f"{source['parse_errors']} bad frames"
        )
    lines += _storage_lines(status.get("storage"))
    lines += ["", f"Note: {THROTTLED_NOTE}"]
    return "\n".join(lines)
