"""In-process fake exchange servers speaking each venue's public wire format."""

from .binance import FakeBinance, force_order
from .bybit import FakeBybit, all_liquidation
from .discord import FakeDiscord
from .okx import RATE_LIMITED, FakeOkx, detail, liquidation_orders
from .telegram import FakeTelegram, SentMessage

__all__ = [
    "RATE_LIMITED",
    "FakeBinance",
    "FakeBybit",
    "FakeDiscord",
    "FakeOkx",
    "FakeTelegram",
    "SentMessage",
    "all_liquidation",
    "detail",
    "force_order",
    "liquidation_orders",
]
