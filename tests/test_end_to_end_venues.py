"""The real app against all seven fake venues: `liqbot status --json` merges every venue by base
asset, lists funding and open interest of the new ones and says what each figure covers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from bot.clock import now_ms
from bot.config import load_settings
from bot.main import App
from tests.fakes import (
    FakeBitget,
    FakeDeribit,
    FakeGate,
    FakeHyperliquid,
    all_liquidation,
    liquidate,
    liquidation_push,
    public_liquidates,
    trade,
    trades,
)
from tests.fakes.bitget import TOPIC as BITGET_TOPIC
from tests.fakes.gate import ALL as GATE_ALL
from tests.harness import WAIT, Fakes, write_config
from tests.test_end_to_end import count, liqbot


def config_for_all(tmp_path: Path, fakes: Fakes, more: dict[str, tuple[str, str]]) -> Path:
    """The three first venues' config, with the new ones pointed at their fakes instead."""
    path = write_config(tmp_path, fakes)
    text = path.read_text()
    for name, (ws_url, rest_url) in more.items():
        stream = f'ws_url = "{ws_url}"\n' if ws_url else ""
        text = text.replace(
            f"[exchanges.{name}]\nenabled = false\n",
            f'[exchanges.{name}]\n{stream}rest_url = "{rest_url}"\n',
        )
    path.write_text(text)
    return path


async def test_seven_venues_merge_by_base_asset_and_status_says_what_figures_cover(
    tmp_path: Path, fakes: Fakes
) -> None:
    bybit = fakes[1]
    async with (
        FakeGate() as gate,
        FakeBitget() as bitget,
        FakeDeribit() as deribit,
        FakeHyperliquid() as hyperliquid,
    ):
        gate.add_contract("BTC_USDT", "0.0001", "91000", "0.0001", 28_800, position_size=2_000_000)
        bitget.add_contract("BTCUSDT", "BTC")
        bitget.set_ticker("BTCUSDT", "91000", "0.0002", "500", interval_h=4)
        deribit.add_summary("BTC", "BTC-PERPETUAL", 91000.0, 700_000_000.0, 0.0003)
        deribit.add_summary("USDC", "BTC_USDC-PERPETUAL", 91000.0, 100.0, 0.0001)
        hyperliquid.add_asset("BTC", "91000", "0.0000125", "20000")
        config = config_for_all(
            tmp_path,
            fakes,
            {
                "gate": (gate.ws_base + "/v4/ws/usdt", gate.base_url),
                "bitget": (bitget.ws_base + "/v3/ws/public", bitget.base_url),
                "deribit": (deribit.ws_base + "/ws/api/v2", deribit.base_url),
                "hyperliquid": ("", hyperliquid.base_url),
            },
        )
        app = await App.open(load_settings(config))
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        async with asyncio.timeout(WAIT):
            await bybit.wait_for_subscribed({"allLiquidation.BTCUSDT"})
            await gate.wait_for_subscribed({GATE_ALL})
            await bitget.wait_for_subscribed({BITGET_TOPIC})
            await deribit.wait_for_subscribed(
                {"trades.future.BTC.100ms", "trades.future.USDC.100ms"}
            )
            ts = now_ms()
            await bybit.push(all_liquidation("BTCUSDT", "Buy", "1", "91000", ts))
            await gate.push(public_liquidates([liquidate("BTC_USDT", "-10000", "90000", ts)], ts))
            await bitget.push(liquidation_push("BTCUSDT", "sell", "91000", "45500", ts))
            await deribit.push(
                trades(
                    "trades.future.BTC.100ms",
                    [trade("BTC-PERPETUAL", "sell", 30_000, 90_000, ts, liquidation="T")],
                )
            )
            await deribit.push(
                trades(
                    "trades.future.USDC.100ms",
                    [trade("BTC_USDC-PERPETUAL", "buy", 0.5, 92_000, ts, liquidation="T")],
                )
            )
            await app.recorder.wait_for(
                lambda: (
                    count(app, "events") == 5
                    and count(app, "funding") == 9
                    and count(app, "open_interest") == 9
                )
            )
            code, out, err = await liqbot("--config", str(config), "status", "--json")
            assert code == 0, err
            text_code, text, _ = await liqbot("--config", str(config), "status")
        stop.set()
        await task
    status: dict[str, Any] = json.loads(out)
    hour = status["liquidations"]["1h"]
    assert hour["by_exchange"] == {
        "binance": 0.0,
        "bybit": 91_000.0,
        "okx": 0.0,
        "gate": 90_000.0,
        "bitget": 45_500.0,
        "deribit": 30_000.0 + 46_000.0,
    }
    assert hour["by_symbol"] == {"BTC": 91_000.0 + 90_000.0 + 45_500.0 + 76_000.0}
    assert (hour["long_usd"], hour["short_usd"]) == (91_000.0 + 90_000.0 + 30_000.0, 91_500.0)
    funding = {(f["exchange"], f["symbol"]): f for f in status["funding"]}
    assert funding["hyperliquid", "BTC"]["interval_hours"] == 1.0
    assert funding["hyperliquid", "BTC"]["rate_8h"] == 0.0000125 * 8
    assert funding["gate", "BTC_USDT"]["interval_hours"] == 8.0
    assert funding["bitget", "BTCUSDT"]["rate_8h"] == 0.0004
    assert funding["deribit", "BTC-PERPETUAL"]["rate_8h"] == 0.0003
    new = ("gate", "bitget", "deribit", "hyperliquid")
    assert {f["base"] for f in status["funding"] if f["exchange"] in new} == {"BTC"}
    interest = {(i["exchange"], i["symbol"]): i["usd"] for i in status["open_interest"]}
    assert {
        key: interest[key] for key in interest if key[0] not in ("binance", "bybit", "okx")
    } == {
        ("gate", "BTC_USDT"): 2_000_000 * 0.0001 * 91000.0,
        ("bitget", "BTCUSDT"): 500 * 91000.0,
        ("deribit", "BTC-PERPETUAL"): 700_000_000.0,
        ("deribit", "BTC_USDC-PERPETUAL"): 100 * 91000.0,
        ("hyperliquid", "BTC"): 20000 * 91000.0,
    }
    sources = status["sources"]
    assert set(sources) == {"binance", "bybit", "okx", "gate", "bitget", "deribit", "hyperliquid"}
    assert {venue: s["liquidation_feed"] for venue, s in sources.items()} == {
        "binance": "sampled",
        "bybit": "complete",
        "okx": "sampled",
        "gate": "complete",
        "bitget": "sampled",
        "deribit": "complete",
        "hyperliquid": "none",
    }
    assert all(sources[v]["connected"] for v in ("gate", "bitget", "deribit"))
    assert status["coverage"] == {
        "liquidations": ["binance", "bybit", "okx", "gate", "bitget", "deribit"],
        "sampled": ["binance", "okx", "bitget"],
        "funding": ["binance", "bybit", "okx", "gate", "bitget", "deribit", "hyperliquid"],
        "open_interest": ["binance", "bybit", "okx", "gate", "bitget", "deribit", "hyperliquid"],
    }
    assert text_code == 0
    assert "  Liquidation totals: Binance, Bybit, OKX, Gate, Bitget, Deribit\n" in text
    assert "  Sampled, so totals are lower bounds: Binance: " in text
    assert "Bitget: only the largest long and the largest short per pair per second" in text
    assert (
        "  Funding and open interest: Binance, Bybit, OKX, Gate, Bitget, Deribit, Hyperliquid"
        in text
    )
    assert "  hyperliquid no liquidation feed: funding and open interest by REST" in text
