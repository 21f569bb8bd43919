"""The schema, as an ordered list of migrations. Add a new function for every change; never edit
one that has shipped."""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("liqbot")


@migrations()
def create_market_tables(db: Database) -> None:
    db.table("events").create(
        {
            "ts": int,
            "recv_ts": int,
            "venue": str,
            "symbol": str,
            "base": str,
            "position": str,
            "price": float,
            "qty": float,
            "usd": float,
        }
    )
    db.table("events").create_index(["ts"])
    db.table("rollups").create(
        {"minute": int, "venue": str, "base": str, "position": str, "usd": float, "count": int},
        pk=("minute", "venue", "base", "position"),
    )
    db.table("funding").create(
        {
            "venue": str,
            "symbol": str,
            "base": str,
            "rate": float,
            "interval_hours": float,
            "rate_8h": float,
            "apr": float,
            "mark_price": float,
            "next_funding_time": int,
            "updated_at": int,
        },
        pk=("venue", "symbol"),
    )
    db.table("funding_history").create(
        {"hour": int, "venue": str, "symbol": str, "rate_8h": float},
        pk=("hour", "venue", "symbol"),
    )
    db.table("open_interest").create(
        {"venue": str, "symbol": str, "base": str, "usd": float, "updated_at": int},
        pk=("venue", "symbol"),
    )
    db.table("oi_history").create(
        {"bucket": int, "venue": str, "base": str, "usd": float},
        pk=("bucket", "venue", "base"),
    )
    db.table("gaps").create({"id": int, "venue": str, "start_ts": int, "end_ts": int}, pk="id")
    db.table("gaps").create_index(["end_ts"])
    db.table("sources").create(
        {
            "venue": str,
            "connected": int,
            "last_message_at": int,
            "reconnects": int,
            "messages": int,
            "parse_errors": int,
            "updated_at": int,
        },
        pk="venue",
    )


@migrations()
def create_alert_tables(db: Database) -> None:
    db.table("subscriptions").create(
        {
            "platform": str,
            "chat_id": str,
            "active": int,
            "window": str,
            "liq": float,
            "side": float,
            "funding": float,
            "oi": float,
            "whale": float,
            "spike": float,
            "cooldown": float,
            "watch": str,
            "mute_until": int,
            "quiet_start": int,
            "quiet_end": int,
            "timezone": str,
            "digest": str,
            "created_at": int,
            "updated_at": int,
        },
        pk=("platform", "chat_id"),
    )
    db.table("rule_state").create(
        {"chat": str, "rule": str, "asset": str, "armed": int, "last_fired_at": int},
        pk=("chat", "rule", "asset"),
    )
    db.table("outbox").create(
        {
            "id": int,
            "key": str,
            "platform": str,
            "chat_id": str,
            "rule": str,
            "asset": str,
            "side": str,
            "text": str,
            "status": str,
            "attempts": int,
            "error": str,
            "created_at": int,
            "updated_at": int,
        },
        pk="id",
    )
    db.table("outbox").create_index(["key"], unique=True)
    db.table("outbox").create_index(["platform", "status"])


@migrations()
def drop_events_ts_index(db: Database) -> None:
    """Events are pruned by rowid (see market_data.prune); the index cost every insert ~1 µs."""
    db.execute("DROP INDEX IF EXISTS idx_events_ts")


@migrations()
def add_source_coverage_and_retry_columns(db: Database) -> None:
    """Source health: frames ignored (not malformed), instruments covered, refused
    subscriptions, and the retry state of a venue that cannot be reached."""
    sources = db.table("sources")
    for name, kind in (
        ("ignored", int),
        ("symbols", int),
        ("refused", int),
        ("retrying_since", int),
        ("last_error", str),
        ("next_attempt_at", int),
    ):
        sources.add_column(name, kind)


@migrations()
def create_runtime_table(db: Database) -> None:
    """One row that `run` rewrites every second, so `liqbot status` (another process) can show
    how the running process is doing; `tasks` is a JSON object of task states."""
    db.table("runtime").create(
        {
            "id": int,
            "started_at": int,
            "updated_at": int,
            "stopped_at": int,
            "loop_lag_p50_ms": float,
            "loop_lag_p99_ms": float,
            "loop_lag_max_ms": float,
            "tasks": str,
        },
        pk="id",
    )


@migrations()
def structure_outbox(db: Database) -> None:
    """Alerts as data (JSON, rendered per platform at delivery), retry times, the parts of a
    split message already delivered, and indexes that find each chat's oldest pending row and
    the next retry without a scan of the pending ones."""
    outbox = db.table("outbox")
    outbox.add_column("alerts", str)
    outbox.add_column("next_attempt_at", int)
    outbox.add_column("parts_sent", int, not_null_default=0)
    outbox.create_index(["platform", "status", "chat_id"])
    # Only rows waiting for a retry have a next attempt: new rows cost this index nothing.
    db.execute(
        "CREATE INDEX idx_outbox_retries ON outbox (platform, status, next_attempt_at)"
        " WHERE next_attempt_at IS NOT NULL"
    )


@migrations()
def create_storage_health(db: Database) -> None:
    """The recorder's storage state (its last outage, the rows it dropped), for `status`."""
    db.table("storage_health").create(
        {
            "id": int,
            "last_error": str,
            "outage_since": int,
            "outage_until": int,
            "dropped": int,
            "updated_at": int,
        },
        pk="id",
    )


@migrations()
def add_chart_setting(db: Database) -> None:
    """`/set chart on|off`: alerts with a chart (off until a chat asks)."""
    db.table("subscriptions").add_column("chart", int, not_null_default=0)


@migrations()
def add_delivery_priority(db: Database) -> None:
    """Delivery order (bot/delivery_order.py): a priority per subscription, copied into each
    outbox row, and an index that serves pending rows highest first without sorting. Telegram
    groups and channels (negative ids) subscribed before this start above private chats."""
    db.execute("ALTER TABLE subscriptions ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
    db.execute(
        "UPDATE subscriptions SET priority = 1 WHERE platform = 'telegram' AND chat_id LIKE '-%'"
    )
    db.execute("CREATE INDEX idx_outbox_delivery ON outbox (platform, status, priority DESC, id)")


@migrations()
def add_escalation(db: Database) -> None:
    """Escalation (issue 15): a chat's multiple (`/set escalation`, 0 = off), and with each
    window rule's state the total its last alert told, so a restart keeps the story open."""
    db.execute("ALTER TABLE subscriptions ADD COLUMN escalation REAL NOT NULL DEFAULT 2.0")
    db.execute("ALTER TABLE rule_state ADD COLUMN last_total REAL NOT NULL DEFAULT 0")


@migrations()
def add_cascade_summary(db: Database) -> None:
    """The closing summary (issue 15): `/set summary on|off` (default on), and each chat's open
    cascade story, recorded with the pass that opens, tells or closes it."""
    db.execute("ALTER TABLE subscriptions ADD COLUMN summary INTEGER NOT NULL DEFAULT 1")
    db.table("stories").create(
        {
            "chat": str,
            "started_at": int,
            "told_at": int,
            "peak_usd": float,
            "peak_long_usd": float,
            "top": str,
            "largest_usd": float,
            "largest": str,
        },
        pk="chat",
    )
