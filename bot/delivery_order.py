"""The order in which one alert reaches its chats: the most readers first. Channels and groups
go before private chats, and bigger ones first where their size is known (Telegram's
getChatMemberCount). The value is kept with the subscription and copied into each outbox row,
whose pending query delivers the highest first (oldest first among equals)."""

from __future__ import annotations

PRIVATE = 0  # a private chat (or a direct message): one reader
UNKNOWN_SIZE = 1  # a group or channel of unknown size: still before every private chat


def delivery_priority(is_group: bool, audience: int | None = None) -> int:
    """Higher goes first. `audience`: the chat's members (a channel's subscribers), if known."""
    if not is_group:
        return PRIVATE
    return UNKNOWN_SIZE if audience is None else UNKNOWN_SIZE + max(0, audience)
