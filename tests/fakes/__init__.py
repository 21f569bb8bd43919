"""In-process fake exchange servers speaking each venue's public wire format."""

from .binance import FakeBinance, force_order
from .bitget import FakeBitget, liquidation_push
from .bybit import FakeBybit, all_liquidation
from .deribit import FakeDeribit, trade, trades
from .discord import FakeDiscord
from .gate import FakeGate, liquidate, public_liquidates
from .hyperliquid import FakeHyperliquid
from .okx import RATE_LIMITED, FakeOkx, detail, liquidation_orders
from .telegram import FakeTelegram, SentMessage

__all__ = [
    "RATE_LIMITED",
    "FakeBinance",
    "FakeBitget",
    "FakeBybit",
    "FakeDeribit",
    "FakeDiscord",
    "FakeGate",
    "FakeHyperliquid",
    "FakeOkx",
    "FakeTelegram",
    "SentMessage",
    "all_liquidation",
    "detail",
    "force_order",
    "liquidate",
    "liquidation_orders",
    "liquidation_push",
    "public_liquidates",
    "trade",
    "trades",
]
