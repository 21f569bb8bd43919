"""Small constructors for message inputs, so golden tests read as the numbers that matter."""

from __future__ import annotations

from collections.abc import Mapping

from bot.messages import WindowView
from bot.model import FundingRate, Liquidation, Position
from bot.norms import Norm


def view(
    window: str = "1h",
    long_usd: float = 0.0,
    short_usd: float = 0.0,
    by_base: Mapping[str, float] | None = None,
    by_exchange: Mapping[str, float] | None = None,
    norm: Norm | None = None,
    count: int = 1,
) -> WindowView:
    """A window's liquidations; the total is longs plus shorts, as market totals compute it."""
    return WindowView(
        window=window,
        total_usd=long_usd + short_usd,
        long_usd=long_usd,
        short_usd=short_usd,
        count=count,
        by_base=dict(by_base or {}),
        by_exchange=dict(by_exchange or {}),
        norm=norm,
    )


def funding(
    base: str,
    rate: float,
    venue: str = "binance",
    interval_hours: float = 8.0,
    symbol: str | None = None,
) -> FundingRate:
    """A funding rate; `rate` is the fraction per funding interval."""
    return FundingRate(
        venue=venue,
        symbol=symbol or f"{base}USDT",
        base=base,
        rate=rate,
        interval_hours=interval_hours,
        mark_price=None,
        next_funding_time=None,
    )


def liquidation(
    base: str,
    position: Position,
    price: float,
    qty: float,
    venue: str = "binance",
    symbol: str | None = None,
    usd: float | None = None,
) -> Liquidation:
    """One liquidation; `usd` defaults to price times quantity."""
    return Liquidation(
        venue=venue,
        symbol=symbol or f"{base}USDT",
        base=base,
        position=position,
        price=price,
        qty=qty,
        usd=price * qty if usd is None else usd,
        ts=1_700_000_000_000,
        recv_ts=1_700_000_000_050,
    )
