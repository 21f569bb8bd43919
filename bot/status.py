"""Status: liquidation totals, funding, open interest and source health. `liqbot status` builds it
from the database that `liqbot run` writes, so it works from a second process while the bot runs
(`build_status`); a chat's /status inside `liqbot run` reads the market the bot holds in memory
(`build_live_status`: no rebuild from SQL on the event loop)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlite_utils import Database

from bot.config import Settings
from bot.derivatives import Derivatives
from bot.formatting import format_percent, format_rate, format_usd, iso_utc
from bot.market import HISTORY_MINUTES, MarketState, WindowTotals
from storage import market_data

STATUS_WINDOWS = ("5m", "1h", "4h", "24h")
# Health rows are rewritten every second by `run`; older ones mean `run` is not running.
HEALTH_STALE_MS = 15_000
GAPS_SINCE_MS = 24 * 3_600_000
LIVE_STATUS_MS = 1_000  # a chat's /status is at most this old
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
    """The status from the database alone (another process than `liqbot run`)."""
    market = MarketState(now)
    market.load_rollups(market_data.read_rollups(db, market.minute - HISTORY_MINUTES))
    return _status(
        db,
        settings,
        market,
        [
            {
                key: row[key]
                for key in ("symbol", "base", "rate", "interval_hours", "rate_8h", "apr")
            }
            | {"exchange": row["venue"]}
            for row in market_data.read_funding(db)
        ],
        [
            {
                "exchange": row["venue"],
                "symbol": row["symbol"],
                "base": row["base"],
                "usd": row["usd"],
            }
            for row in market_data.read_open_interest(db)
        ],
        now,
    )


def build_live_status(
    db: Database, settings: Settings, market: MarketState, derivatives: Derivatives, now: int
) -> dict[str, Any]:
    """The same status inside `liqbot run`, from the market state it holds in memory (only
    the few source health and gap rows are read from the database)."""
    rates = sorted(derivatives.funding.values(), key=lambda r: (-abs(r.rate_8h), r.venue, r.symbol))
    interests = sorted(derivatives.open_interests(), key=lambda i: (-i.usd, i.venue, i.symbol))
    return _status(
        db,
        settings,
        market,
        [
            {
                "symbol": r.symbol,
                "base": r.base,
                "rate": r.rate,
                "interval_hours": r.interval_hours,
                "rate_8h": r.rate_8h,
                "apr": r.apr,
                "exchange": r.venue,
            }
            for r in rates
        ],
        [
            {"exchange": i.venue, "symbol": i.symbol, "base": i.base, "usd": i.usd}
            for i in interests
        ],
        now,
    )


class LiveStatus:
    """`build_live_status` for chats, built at most once a second: a burst of /status costs
    one build, not one each."""

    def __init__(
        self, db: Database, settings: Settings, market: MarketState, derivatives: Derivatives
    ) -> None:
        self._args = (db, settings, market, derivatives)
        self._built: tuple[int, dict[str, Any]] | None = None

    def build(self, now: int) -> dict[str, Any]:
        second = now // LIVE_STATUS_MS
        if self._built is None or self._built[0] != second:
            self._built = (second, build_live_status(*self._args, now))
        return self._built[1]


def _status(
    db: Database,
    settings: Settings,
    market: MarketState,
    funding: list[dict[str, Any]],
    open_interest: list[dict[str, Any]],
    now: int,
) -> dict[str, Any]:
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
        "funding": funding,
        "open_interest": open_interest,
        "sources": sources,
    }


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
    lines += ["", f"Note: {THROTTLED_NOTE}"]
    return "\n".join(lines)
