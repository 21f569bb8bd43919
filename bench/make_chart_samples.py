"""Render the sample charts in docs/ from a synthetic day with a long cascade after midnight.

    .venv/bin/python bench/make_chart_samples.py

The numbers are made up (a seeded random walk, not venue data); the drawing is the bot's own
(bot/chart_data.py collects the series, bot/charts.py renders them).
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import charts  # noqa: E402
from bot.chart_data import ChartRequest, MarketHistory, collect  # noqa: E402
from bot.derivatives import Derivatives  # noqa: E402
from bot.market import MarketState  # noqa: E402
from bot.model import FundingRate, Liquidation  # noqa: E402
from bot.norms import Norms  # noqa: E402

NOW = 1_764_650_000_000 // 60_000 * 60_000  # 2025-12-02 04:33 UTC
SAMPLES = {
    "chart-market-24h.png": ChartRequest(frozenset(), "24h"),
    "chart-btc-4h.png": ChartRequest(frozenset({"BTC"}), "4h"),
    "chart-watchlist-1h.png": ChartRequest(frozenset({"ETH", "SOL"}), "1h"),
}


def simulate() -> tuple[MarketState, Norms, MarketHistory]:
    rng = random.Random(7)
    start = NOW - 1439 * 60_000
    norms = Norms()
    market = MarketState(start, on_minute_closed=norms.add_minute)
    history, derivatives = MarketHistory(), Derivatives()
    price, interest = 92_000.0, 9.1e9
    for minute in range(1440):
        at = start + minute * 60_000
        market.advance(at)
        cascade = 1_200 <= minute <= 1_300
        late = minute > 1_400
        price *= math.exp(rng.gauss(-0.003 if cascade else 0.0001, 0.001))
        interest *= math.exp(rng.gauss(-0.0015 if cascade else 0.00005, 0.0005))
        for i in range(rng.randint(3, 40 if cascade or late else 8)):
            share = 0.9 if cascade else 0.25 if late else 0.5
            position = "long" if rng.random() < share else "short"
            usd = rng.lognormvariate(10, 1.3) * (20 if cascade else 4 if late else 1)
            base = rng.choice(("BTC", "BTC", "ETH", "SOL"))
            venue = rng.choice(("binance", "bybit", "okx"))
            market.add(
                Liquidation(
                    venue, f"{base}USDT", base, position, price, usd / price, usd, at + i, at + i
                )
            )
        rate = FundingRate("binance", "BTCUSDT", "BTC", 0.0001 - 0.0002 * cascade, 8, price, None)
        derivatives.update_funding([rate])
        history.record_funding([rate], derivatives.extreme_funding_by_base(), at)
        history.record_open_interest({"BTC": interest}, at)
    return market, norms, history


def main() -> None:
    market, norms, history = simulate()
    for name, request in SAMPLES.items():
        series = asyncio.run(collect(request, market, norms, history))
        path = ROOT / "docs" / name
        path.write_bytes(charts.render(series))
        print(path.relative_to(ROOT), series.title)


if __name__ == "__main__":
    main()
