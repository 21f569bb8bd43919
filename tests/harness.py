"""Small pieces the network tests share: settings pointed at the fakes, and an event sink that
tests can wait on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from bot.config import CollectorSettings, ExchangeSettings
from bot.model import Gap, Liquidation
from bot.venues.catalog import VENUES
from tests.fakes import FakeBinance, FakeBybit, FakeOkx

FAST = CollectorSettings(reconnect_min=0.01, reconnect_max=0.05)
WAIT = 10.0  # seconds a test may wait for something that should happen at once


def exchange(name: str, ws_url: str, rest_url: str, silence: float = 5.0) -> ExchangeSettings:
    return ExchangeSettings(name, True, ws_url, rest_url, silence)


class Sink:
    """Collects what a collector emits; `wait_for` wakes on every emission."""

    def __init__(self) -> None:
        self.events: list[Liquidation] = []
        self.gaps: list[Gap] = []
        self._changed = asyncio.Event()

    def on_events(self, events: list[Liquidation]) -> None:
        self.events += events
        self._changed.set()

    def on_gap(self, gap: Gap) -> None:
        self.gaps.append(gap)
        self._changed.set()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


Fakes = tuple[FakeBinance, FakeBybit, FakeOkx]


async def started_fakes() -> AsyncIterator[Fakes]:
    """The three fake venues, started, with a few markets listed."""
    async with FakeBinance() as binance, FakeBybit() as bybit, FakeOkx() as okx:
        binance.set_market("BTCUSDT", "91000", "0.0001", "1000")
        binance.set_market("ETHUSDT", "3000", "0.0001", "100")  # liquidations outside the
        # instrument universe are ignored: every symbol a test pushes must be listed
        for symbol, base in (("BTCUSDT", "BTC"), ("SOLUSDT", "SOL"), ("ETHUSDT", "ETH")):
            bybit.add_instrument(symbol, base)
        bybit.set_ticker("SOLUSDT", "150", "-0.0007", "20000", funding_interval_hours=4)
        okx.add_instrument("BTC-USDT-SWAP", "0.01")
        okx.add_instrument("ETH-USDT-SWAP", "0.1")
        okx.set_funding("BTC-USDT-SWAP", "0.0002", 8 * 3_600_000, 16 * 3_600_000)
        okx.set_open_interest("BTC-USDT-SWAP", "10000", "100", "9000000")
        yield binance, bybit, okx


def venues_off(names: set[str]) -> list[str]:
    """Config tables disabling `names` (venues a test has no fake for: no real network)."""
    return [f"[exchanges.{name}]\nenabled = false\n" for name in sorted(names)]


def write_config(tmp_path: Path, fakes: Fakes, base_urls: tuple[str, str] | None = None) -> Path:
    binance, bybit, okx = fakes
    ws = {"binance": "/market", "bybit": "/v5/public/linear", "okx": "/ws/v5/public"}
    lines = [
        f'[storage]\npath = "{tmp_path / "liqbot.db"}"\n',
        '[collector]\nreconnect_min = "0.05s"\nreconnect_max = "0.2s"\n',
    ]
    for name, fake in (("binance", binance), ("bybit", bybit), ("okx", okx)):
        http, wsbase = base_urls or (fake.base_url, fake.ws_base)
        lines.append(f'[exchanges.{name}]\nws_url = "{wsbase}{ws[name]}"\nrest_url = "{http}"\n')
    lines += venues_off(set(VENUES) - set(ws))
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines))
    return path


def traceback_of(record: logging.LogRecord) -> str:
    """A logged traceback, as text: the redaction filter (when logging was configured by an
    earlier test) has already formatted it into `exc_text`."""
    if record.exc_text:
        return record.exc_text
    return logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
