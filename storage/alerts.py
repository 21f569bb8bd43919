"""Subscriptions, rule state and the outbox. An alert's decision (rule state) and its record
(outbox row) are written by the caller inside one `db.atomic()` block."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlite_utils import Database

from bot.alert import Alert, from_json, plain, to_json
from bot.model import (
    FAILED,
    HELD,
    MERGED,
    PENDING,
    SENT,
    OutboxItem,
    OutboxRow,
    RuleState,
    Story,
    Subscription,
    Thresholds,
)

EXPIRED = "expired"  # undelivered for longer than the outbox's max age: not sent late


_ROW = (
    "SELECT id, platform, chat_id, rule, asset, side, alerts, text, attempts, parts_sent,"
    " created_at FROM outbox"
)


def _rows(cursor: Iterable[tuple[Any, ...]]) -> list[OutboxRow]:
    """Rows as records; many chats get the same message, so each distinct one is decoded once."""
    decoded: dict[str, tuple[Alert, ...]] = {}
    rows = []
    for values in cursor:
        id_, platform, chat_id, rule, asset, side, stored, text, attempts, parts, created = values
        if stored is None:  # recorded before alerts were structured: only its text
            message: tuple[Alert, ...] = (plain(text, rule, side),)
        else:
            if stored not in decoded:
                decoded[stored] = from_json(stored)
            message = decoded[stored]
        rows.append(
            OutboxRow(id_, platform, chat_id, rule, asset, side, message, attempts, parts, created)
        )
    return rows


def _subscription_row(sub: Subscription) -> dict[str, Any]:
    t = sub.thresholds
    return {
        "platform": sub.platform,
        "chat_id": sub.chat_id,
        "active": int(sub.active),
        "window": t.window,
        "liq": t.liq,
        "side": t.side,
        "funding": t.funding,
        "oi": t.oi,
        "whale": t.whale,
        "spike": t.spike,
        "cooldown": t.cooldown,
        "escalation": t.escalation,
        "watch": ",".join(sorted(sub.watch)),
        "mute_until": sub.mute_until,
        "quiet_start": sub.quiet[0] if sub.quiet else None,
        "quiet_end": sub.quiet[1] if sub.quiet else None,
        "timezone": sub.timezone,
        "digest": sub.digest,
        "chart": int(sub.chart),
        "summary": int(sub.summary),
        "priority": sub.priority,
    }


def _subscription(row: dict[str, Any]) -> Subscription:
    quiet = (row["quiet_start"], row["quiet_end"]) if row["quiet_start"] is not None else None
    return Subscription(
        platform=row["platform"],
        chat_id=row["chat_id"],
        thresholds=Thresholds(
            window=row["window"],
            liq=row["liq"],
            side=row["side"],
            funding=row["funding"],
            oi=row["oi"],
            whale=row["whale"],
            spike=row["spike"],
            cooldown=row["cooldown"],
            escalation=row["escalation"],
        ),
        watch=frozenset(filter(None, row["watch"].split(","))),
        active=bool(row["active"]),
        mute_until=row["mute_until"],
        quiet=quiet,
        timezone=row["timezone"],
        digest=row["digest"],
        chart=bool(row["chart"]),
        summary=bool(row["summary"]),
        priority=row["priority"],
    )


_COLUMNS = [*_subscription_row(Subscription("", "")), "created_at", "updated_at"]
_CHANGED = [c for c in _COLUMNS if c not in ("platform", "chat_id", "created_at")]
_SAVE_SUBSCRIPTION = (
    f"INSERT INTO subscriptions ({', '.join(f'[{c}]' for c in _COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_COLUMNS))}) ON CONFLICT (platform, chat_id) DO UPDATE"
    f" SET {', '.join(f'[{c}] = excluded.[{c}]' for c in _CHANGED)}"
)


def save_subscription(db: Database, sub: Subscription, now: int) -> None:
    """Insert or update one chat's row in one statement (an existing row keeps `created_at`)."""
    db.execute(_SAVE_SUBSCRIPTION, [*_subscription_row(sub).values(), now, now])


def load_subscription(db: Database, platform: str, chat_id: str) -> Subscription | None:
    rows = list(
        db.query(
            "SELECT * FROM subscriptions WHERE platform = ? AND chat_id = ?", [platform, chat_id]
        )
    )
    return _subscription(rows[0]) if rows else None


def active_subscriptions(db: Database) -> list[Subscription]:
    return [_subscription(row) for row in db.query("SELECT * FROM subscriptions WHERE active = 1")]


def load_rule_states(db: Database) -> dict[tuple[str, str, str], RuleState]:
    return {
        (row[0], row[1], row[2]): RuleState(bool(row[3]), row[4], row[5])
        for row in db.execute(
            "SELECT chat, rule, asset, armed, last_fired_at, last_total FROM rule_state"
        )
    }


def save_rule_states(db: Database, states: dict[tuple[str, str, str], RuleState]) -> None:
    db.conn.executemany(
        "INSERT INTO rule_state (chat, rule, asset, armed, last_fired_at, last_total)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chat, rule, asset) DO UPDATE"
        " SET armed = excluded.armed, last_fired_at = excluded.last_fired_at,"
        " last_total = excluded.last_total",
        # A generator: each row is freed once bound, rather than a fresh deployment's 610,000
        # rows built as one list (70 MB) and freed in one go.
        ((*key, int(s.armed), s.last_fired_at, s.last_total) for key, s in states.items()),
    )


def load_stories(db: Database) -> dict[str, Story]:
    return {row["chat"]: Story(**row) for row in db.query("SELECT * FROM stories")}


def save_stories(db: Database, stories: Iterable[Story], closed: Iterable[str]) -> None:
    db.conn.executemany(
        "INSERT OR REPLACE INTO stories (chat, started_at, told_at, peak_usd, peak_long_usd, top,"
        " largest_usd, largest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                s.chat,
                s.started_at,
                s.told_at,
                s.peak_usd,
                s.peak_long_usd,
                s.top,
                s.largest_usd,
                s.largest,
            )
            for s in stories
        ],
    )
    db.conn.executemany("DELETE FROM stories WHERE chat = ?", [(chat,) for chat in closed])


def enqueue(db: Database, items: Iterable[OutboxItem], now: int) -> int:
    """Record alerts; an item whose key was recorded before is ignored. Returns how many are new.
    Many chats get the same alerts in a pass: each distinct message is encoded once. Each row
    takes its chat's delivery priority from the subscription (see `due`)."""
    encoded: dict[tuple[int, ...], str] = {}

    def stored(alerts: tuple[Alert, ...]) -> str:
        key = tuple(map(id, alerts))
        if key not in encoded:
            encoded[key] = to_json(alerts)
        return encoded[key]

    cursor = db.conn.executemany(
        "INSERT OR IGNORE INTO outbox (key, platform, chat_id, rule, asset, side, alerts, status,"
        " attempts, parts_sent, created_at, updated_at, priority)"
        f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, {_PRIORITY_OF_CHAT})",
        [
            (
                i.key,
                i.platform,
                i.chat_id,
                i.rule,
                i.asset,
                i.side,
                stored(i.alerts),
                i.status,
                now,
                now,
            )
            for i in items
        ],
    )
    return cursor.rowcount


# The chat's delivery priority, read from its subscription inside the INSERT (0 without one).
_PRIORITY_OF_CHAT = (
    "coalesce((SELECT s.priority FROM subscriptions s WHERE s.platform = ?2 AND s.chat_id = ?3), 0)"
)
# Due rows, the chats with the most readers first (bot/delivery_order.py), then the oldest.
DELIVERY_ORDER = "ORDER BY priority DESC, id"


def due(db: Database, platform: str, now: int, limit: int) -> list[OutboxRow]:
    """Each chat's oldest pending row, when it is due (never tried, or its retry time has come),
    the chats with the most readers first, then the oldest: one chat's backlog or failures
    never hold back the others'."""
    return _rows(
        db.execute(
            # Pending rows in delivery order (index on platform, status, priority, id), each
            # kept when no older pending row of its chat exists (a seek in the platform, status,
            # chat_id index).
            f"{_ROW} AS o WHERE platform = ? AND status = ?"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
            " AND NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.platform = o.platform"
            " AND p.status = o.status AND p.chat_id = o.chat_id AND p.id < o.id)"
            f" {DELIVERY_ORDER} LIMIT ?",
            [platform, PENDING, now, limit],
        )
    )


def next_attempt_at(db: Database, platform: str, now: int) -> int | None:
    """When the earliest retry after `now` is due (None: no pending row waits for one)."""
    row = db.execute(
        "SELECT MIN(next_attempt_at) FROM outbox WHERE platform = ? AND status = ?"
        " AND next_attempt_at > ?",
        [platform, PENDING, now],
    ).fetchone()
    return None if row[0] is None else int(row[0])


def mark_sent(db: Database, outbox_id: int, now: int) -> None:
    with db.atomic():
        db.execute(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, error = NULL,"
            " next_attempt_at = NULL, updated_at = ? WHERE id = ?",
            [SENT, now, outbox_id],
        )


def mark_failed(db: Database, outbox_id: int, now: int, error: str, retry_at: int | None) -> None:
    """A failed attempt: tried again at `retry_at` (ms), or given up (`retry_at` None)."""
    status = FAILED if retry_at is None else PENDING
    with db.atomic():
        db.execute(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, error = ?,"
            " next_attempt_at = ?, updated_at = ? WHERE id = ?",
            [status, error, retry_at, now, outbox_id],
        )


def mark_parts_sent(db: Database, outbox_id: int, parts: int, now: int) -> None:
    """Parts of a split message that arrived: a retry, even after a restart, sends the rest."""
    with db.atomic():
        db.execute(
            "UPDATE outbox SET parts_sent = ?, updated_at = ? WHERE id = ?",
            [parts, now, outbox_id],
        )


def expire(db: Database, platform: str, created_before: int, now: int) -> int:
    """Mark pending rows recorded before `created_before` expired; how many were. Ids follow
    recording time, so only the rows older than the oldest fresh one are visited: a sweep that
    finds nothing stale costs an index step, not a scan of every pending row."""
    with db.atomic():
        cursor = db.execute(
            "UPDATE outbox SET status = ?, error = 'expired undelivered', updated_at = ?"
            " WHERE platform = ? AND status = ? AND created_at < ? AND id < COALESCE("
            "(SELECT id FROM outbox WHERE platform = ? AND status = ? AND created_at >= ?"
            " ORDER BY id LIMIT 1), 9223372036854775807)",
            [EXPIRED, now, platform, PENDING, created_before, platform, PENDING, created_before],
        )
    return cursor.rowcount


def held(db: Database) -> dict[tuple[str, str], list[OutboxRow]]:
    """Alerts held back by quiet hours, by (platform, chat id)."""
    by_chat: dict[tuple[str, str], list[OutboxRow]] = {}
    for item in _rows(db.execute(f"{_ROW} WHERE status = ? ORDER BY id", [HELD])):
        by_chat.setdefault((item.platform, item.chat_id), []).append(item)
    return by_chat


def mark_merged(db: Database, ids: Iterable[int], now: int) -> None:
    """Held alerts now summarised in one message (call inside the summary's transaction)."""
    db.conn.executemany(
        "UPDATE outbox SET status = ?, updated_at = ? WHERE id = ?",
        [(MERGED, now, outbox_id) for outbox_id in ids],
    )


def set_active(db: Database, platform: str, chat_id: str, active: bool, now: int) -> bool:
    """Switch a chat's alerts on or off; False when the chat has no subscription."""
    with db.atomic():
        cursor = db.execute(
            "UPDATE subscriptions SET active = ?, updated_at = ?"
            " WHERE platform = ? AND chat_id = ?",
            [int(active), now, platform, chat_id],
        )
    return cursor.rowcount > 0


def move_chat(db: Database, platform: str, old_id: str, new_id: str, now: int) -> None:
    """A chat got a new id (a Telegram group became a supergroup): its subscription, rule state
    and undelivered alerts follow it."""
    with db.atomic():
        db.execute(
            "UPDATE subscriptions SET chat_id = ?, updated_at = ?"
            " WHERE platform = ? AND chat_id = ?",
            [new_id, now, platform, old_id],
        )
        db.execute(
            "UPDATE rule_state SET chat = ? WHERE chat = ?",
            [f"{platform}:{new_id}", f"{platform}:{old_id}"],
        )
        db.execute(
            "UPDATE outbox SET chat_id = ?, updated_at = ? WHERE platform = ? AND chat_id = ?"
            " AND status IN (?, ?)",
            [new_id, now, platform, old_id, PENDING, HELD],
        )
