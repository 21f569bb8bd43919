"""Writes bot/data/demo_cascade.jsonl.gz, the cascade `liqbot demo` replays.

The frames are synthesised (this machine cannot reach the venues), in each venue's exact wire
format: Binance `forceOrder`, Bybit `allLiquidation`, OKX `liquidation-orders`, plus Bybit
tickers and OKX instruments REST payloads. The market: a calm hour in which BTC falls from
91,000 to 84,000 between minutes 20 and 45, liquidating mostly longs, with two whales, a
funding extreme and open interest falling. Deterministic: the same file every run.

Run: .venv/bin/python bench/make_demo_cascade.py
"""

from __future__ import annotations

import gzip
import json
import math
import random
from pathlib import Path
from typing import Any

START = 1_793_707_200_000  # 2026-11-01T12:00:00Z
MINUTES = 70
OUT = Path(__file__).parent.parent / "bot" / "data" / "demo_cascade.jsonl.gz"
ASSETS = {  # base: (price at the start, share of liquidations)
    "BTC": (91_000.0, 0.55),
    "ETH": (3_050.0, 0.25),
    "SOL": (150.0, 0.12),
    "DOGE": (0.21, 0.08),
}
OPEN_INTEREST_USD = {"BTC": 6e9, "ETH": 3e9, "SOL": 1.2e9, "DOGE": 4e8}  # Bybit, one side
OKX_CT_VAL = {"BTC": 0.01, "ETH": 0.1, "SOL": 1.0, "DOGE": 1000.0}


def crash(minute: float) -> float:
    """How far into the fall the market is: 0 before minute 20, 1 after minute 45."""
    return min(1.0, max(0.0, (minute - 20) / 25))


def price(base: str, minute: float) -> float:
    return ASSETS[base][0] * (1 - 0.077 * crash(minute))


def usd_per_minute(minute: float) -> float:
    """Calm ~$0.6M a minute; up to ~$30M a minute at the worst of the fall."""
    intensity = math.exp(-(((minute - 33) / 6) ** 2))
    return 600_000 + 30_000_000 * intensity


def binance(base: str, side: str, usd: float, at: int, px: float) -> str:
    qty = f"{usd / px:.3f}"
    order = {
        "s": f"{base}USDT",
        "S": side,
        "o": "LIMIT",
        "f": "IOC",
        "q": qty,
        "p": f"{px * 0.995:.2f}",
        "ap": f"{px:.2f}",
        "X": "FILLED",
        "l": qty,
        "z": qty,
        "T": at,
    }
    return json.dumps({"e": "forceOrder", "E": at + 3, "o": order}, separators=(",", ":"))


def bybit(base: str, side: str, usd: float, at: int, px: float) -> str:
    entry = {"T": at, "s": f"{base}USDT", "S": side, "v": f"{usd / px:.3f}", "p": f"{px:.4f}"}
    frame = {
        "topic": f"allLiquidation.{base}USDT",
        "type": "snapshot",
        "ts": at + 200,
        "data": [entry],
    }
    return json.dumps(frame, separators=(",", ":"))


def okx(base: str, side: str, usd: float, at: int, px: float) -> str:
    contracts = max(1, round(usd / px / OKX_CT_VAL[base]))
    detail = {
        "side": side,
        "posSide": "net",
        "sz": str(contracts),
        "bkPx": f"{px:.4f}",
        "bkLoss": "0",
        "ccy": "",
        "ts": str(at),
    }
    inst = f"{base}-USDT-SWAP"
    frame = {
        "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
        "data": [
            {
                "instId": inst,
                "instType": "SWAP",
                "instFamily": f"{base}-USDT",
                "uly": f"{base}-USDT",
                "details": [detail],
            }
        ],
    }
    return json.dumps(frame, separators=(",", ":"))


def tickers(minute: int) -> dict[str, Any]:
    listing = []
    for base, (start_price, _) in ASSETS.items():
        px = price(base, minute)
        single = OPEN_INTEREST_USD[base] / start_price * (1 - 0.04 * crash(minute))
        funding = "0.0009" if base == "DOGE" else f"{0.0001 * (1 - 1.5 * crash(minute)):.6f}"
        listing.append(
            {
                "symbol": f"{base}USDT",
                "markPrice": f"{px:.4f}",
                "lastPrice": f"{px:.4f}",
                "indexPrice": f"{px:.4f}",
                "fundingRate": funding,
                "fundingIntervalHour": "8",
                "nextFundingTime": str(START + 4 * 3_600_000),
                "openInterest": f"{2 * single:.3f}",
                "openInterestValue": f"{2 * single * px:.2f}",
                "singleOpenInterest": f"{single:.3f}",
                "singleOpenInterestValue": f"{single * px:.2f}",
            }
        )
    return {
        "retCode": 0,
        "retMsg": "OK",
        "result": {"category": "linear", "list": listing},
        "time": START + minute * 60_000,
    }


def records() -> list[dict[str, Any]]:
    rng = random.Random(20261101)
    out: list[dict[str, Any]] = [
        {
            "at": START,
            "venue": "okx",
            "rest": "instruments",
            "payload": {
                "code": "0",
                "msg": "",
                "data": [
                    {
                        "instId": f"{b}-USDT-SWAP",
                        "instType": "SWAP",
                        "ctVal": str(v),
                        "ctType": "linear",
                        "ctValCcy": b,
                        "settleCcy": "USDT",
                        "state": "live",
                    }
                    for b, v in OKX_CT_VAL.items()
                ],
            },
        }
    ]
    for minute in range(0, MINUTES, 5):
        out.append(
            {
                "at": START + minute * 60_000,
                "venue": "bybit",
                "rest": "tickers",
                "payload": tickers(minute),
            }
        )
    writers = {
        "binance": (binance, ("SELL", "BUY")),
        "bybit": (bybit, ("Buy", "Sell")),
        "okx": (okx, ("sell", "buy")),
    }
    for second in range(MINUTES * 60):
        minute = second / 60
        budget = usd_per_minute(minute) / 60
        long_share = 0.5 + 0.42 * crash(minute + 5) if minute < 50 else 0.55
        while budget > 0:
            usd = min(budget, rng.lognormvariate(math.log(40_000), 1.1))
            budget -= usd
            base = rng.choices(list(ASSETS), [share for _, share in ASSETS.values()])[0]
            venue = rng.choices(list(writers), [0.45, 0.35, 0.20])[0]
            write, (long_side, short_side) = writers[venue]
            side = long_side if rng.random() < long_share else short_side
            at = START + second * 1000 + rng.randrange(1000)
            out.append(
                {"at": at, "venue": venue, "frame": write(base, side, usd, at, price(base, minute))}
            )
    for minute, base, venue, usd in (
        (31, "BTC", "binance", 8_400_000),
        (36, "ETH", "bybit", 5_600_000),
    ):
        at = START + minute * 60_000 + 500
        write, (long_side, _) = writers[venue]
        out.append(
            {
                "at": at,
                "venue": venue,
                "frame": write(base, long_side, usd, at, price(base, minute)),
            }
        )
    return sorted(out, key=lambda record: record["at"])


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record, separators=(",", ":")) for record in records()]
    with gzip.open(OUT, "wt", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    print(f"{OUT}: {len(lines)} records")


if __name__ == "__main__":
    main()
