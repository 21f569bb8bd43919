"""`liqbot status`: a summary built from the database that `liqbot run` writes, so it works from
a second process while the bot runs."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlite_utils import Database

from bot.config import Settings
from bot.formatting import format_percent, format_rate, format_usd, iso_utc
from bot.market import HISTORY_MINUTES, MarketState, WindowTotals
from storage import market_data, runtime

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


def _merged_gaps(rows: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """Gaps per venue with overlapping ones merged: each of Bybit's connections records its own
    gap when the venue goes away, and one outage should read as one gap."""
    merged: list[tuple[str, int, int]] = []
    last: dict[str, int] = {}  # venue -> index in `merged` of its latest gap
    for row in sorted(rows, key=lambda r: (r["venue"], r["start_ts"])):
        venue, start, end = row["venue"], row["start_ts"], row["end_ts"]
        index = last.get(venue)
        if index is not None and start <= merged[index][2]:
            merged[index] = (venue, merged[index][1], max(end, merged[index][2]))
        else:
            last[venue] = len(merged)
            merged.append((venue, start, end))
    return sorted(merged, key=lambda gap: gap[1])


def build_status(db: Database, settings: Settings, now: int) -> dict[str, Any]:
    market = MarketState(now)
    market.load_rollups(market_data.read_rollups(db, market.minute - HISTORY_MINUTES))
    venues = [exchange.name for exchange in settings.enabled_exchanges]
    gaps: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for venue, start, end in _merged_gaps(market_data.read_gaps(db, now - GAPS_SINCE_MS)):
        gaps[venue].append(
            {"from": iso_utc(start), "to": iso_utc(end), "seconds": round((end - start) / 1000, 3)}
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
            "ignored": row.get("ignored") or 0,
            "symbols": row.get("symbols") or 0,
            "refused_subscriptions": row.get("refused") or 0,
            "retrying_since": iso_utc(row.get("retrying_since")) if fresh else None,
            "last_error": row.get("last_error") if fresh else None,
            "next_attempt_at": iso_utc(row.get("next_attempt_at")) if fresh else None,
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
        "runtime": runtime_json(db, now),
    }


def runtime_json(db: Database, now: int) -> dict[str, Any]:
    """The running process as its runtime row says (last 5 minutes of loop lag); `running` is
    false once `run` stopped or its row went stale (killed), and then the rest is empty. The
    outbox backlog is counted here, so it is right whether `run` runs or not."""
    row = runtime.read_runtime(db)
    running = row is not None and row.stopped_at is None and now - row.updated_at <= HEALTH_STALE_MS
    live = row if running else None
    return {
        "running": running,
        "started_at": iso_utc(live.started_at) if live else None,
        "uptime_s": round((now - live.started_at) / 1000) if live else None,
        "updated_at": iso_utc(row.updated_at) if row else None,
        "loop_lag_ms": {
            "p50": live.loop_lag_p50_ms if live else None,
            "p99": live.loop_lag_p99_ms if live else None,
            "max": live.loop_lag_max_ms if live else None,
        },
        "outbox_pending": runtime.count_pending(db),
        "tasks": dict(live.tasks) if live else {},
    }


def _uptime(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def render_runtime(status: dict[str, Any]) -> str:
    """One line: uptime, loop lag p99, outbox backlog, tasks not running."""
    info = status["runtime"]
    pending = f"outbox {info['outbox_pending']} pending"
    if not info["running"]:
        seen = info["updated_at"]
        return f"Runtime: not running (last seen {seen or 'never'}), {pending}"
    p99 = info["loop_lag_ms"]["p99"]
    lag = f"loop lag p99 {p99:.1f} ms" if p99 is not None else "loop lag not sampled yet"
    stuck = [f"{name} {state}" for name, state in info["tasks"].items() if state != "running"]
    tasks = f"not running: {', '.join(stuck)}" if stuck else "all tasks running"
    return f"Runtime: up {_uptime(info['uptime_s'])}, {lag}, {pending}, {tasks}"


def _dominant_side(totals: dict[str, Any]) -> str:
    """ "62% longs" or "100% shorts": the side that was liquidated more, never "0% longs"."""
    share = totals["long_share"]
    return (
        f"{format_percent(share)} longs" if share >= 0.5 else f"{format_percent(1 - share)} shorts"
    )


def render_status(
    status: dict[str, Any],
    top: int = 5,
    windows: tuple[str, ...] = STATUS_WINDOWS,
    with_runtime: bool = False,
) -> str:
    """The human form: compact, one screen (the CLI's, and /status in chats with fewer windows).
    `with_runtime` (the CLI's) puts the runtime line under the first."""
    lines = [f"liqbot status at {status['generated_at']}", "", "Liquidations:"]
    if with_runtime:
        lines.insert(1, render_runtime(status))
    for window in windows:
        totals = status["liquidations"][window]
        side = _dominant_side(totals) if totals["total_usd"] else "no liquidations"
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
            f"  {venue:<8} {state}, {source['symbols']} symbols, "
            f"last message {source['last_message_at'] or 'never'}, "
            f"{source['reconnects']} reconnects, {len(source['gaps'])} gaps in 24h, "
            f"{source['parse_errors']} bad frames, {source['ignored']} ignored"
        )
        if source["refused_subscriptions"]:
            lines.append(
                f"           {source['refused_subscriptions']} subscriptions REFUSED by the venue"
            )
        if source["retrying_since"]:
            lines.append(
                f"           retrying since {source['retrying_since']}: {source['last_error']};"
                f" next attempt {source['next_attempt_at']}"
            )
    lines += ["", f"Note: {THROTTLED_NOTE}"]
    return "\n".join(lines)
