"""Chart benchmark: render time per chart and the bot's peak memory with charts on.

Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/charts.py              # about 40 s
    .venv/bin/python bench/charts.py --renders 5  # quicker

It builds the real `App` (settings with Telegram and Discord configured, so their libraries
are loaded, and charts on) on a temporary SQLite file, fills its market with a busy day (about
100 liquidation keys a minute across venues, sides and 300 assets) and the per-minute
price/funding/open-interest history of 600 assets, then, through the app's ChartService,
collects and renders the three kinds of chart (whole market 24h, one asset 4h with its three
panes, a watch list 1h) `--renders` times each. It reports:

- render time per chart kind (median and worst, matplotlib in the worker thread; target
  <= 300 ms), the time the loop spent collecting the series (in slices that yield), and the
  loop's steps meanwhile and while the worker draws (a 1 ms ticker's lateness);
- peak RSS of the whole bot: its process plus the render worker process (target <= 250 MB),
  and as baselines (each in its own subprocess, same run) a bare Python, Python with only
  matplotlib imported, and the same app and data with charts off;
- the host speed (bench/machine.py), since a shared VM's speed drifts.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import cpu_check

ASSETS, HISTORY_ASSETS, KEYS_PER_MINUTE = 300, 600, 100
MINUTE = 60_000


def peak_rss_mb(pid: int | str = "self") -> float:
    """VmHWM: a process's peak resident set (unlike ru_maxrss, not inherited across exec)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def build_app(charts: bool) -> object:
    from bot.config import settings_from_dict
    from bot.main import App

    folder = Path(tempfile.mkdtemp(prefix="liqbot-bench-charts-"))
    settings = settings_from_dict(
        {
            "storage": {"path": str(folder / "bench.db")},
            "telegram": {"token": "123456:BENCH", "api_url": "http://127.0.0.1:9"},
            "discord": {"token": "bench", "api_url": "http://127.0.0.1:9"},
            "charts": {"enabled": charts},
        }
    )
    return asyncio.run(App.open(settings))


def fill(app: object) -> None:
    """A busy day of liquidations and the history the polls would have left."""
    from bot.main import App
    from bot.model import FundingRate, Liquidation

    assert isinstance(app, App)
    rng = random.Random(12)
    now = (time.time_ns() // 1_000_000) // MINUTE * MINUTE
    start = now - 1439 * MINUTE
    bases = ["BTC", "ETH", "SOL", *(f"A{i:03d}" for i in range(ASSETS - 3))]
    venues = ("binance", "bybit", "okx")
    market = app.market
    history = app.history
    for minute in range(1440):
        at = start + minute * MINUTE
        market.advance(at)
        for _ in range(KEYS_PER_MINUTE):
            base = bases[min(int(rng.expovariate(0.05)), ASSETS - 1)]
            usd = rng.lognormvariate(9, 1.5)
            position = "long" if rng.random() < 0.6 else "short"
            market.add(
                Liquidation(
                    rng.choice(venues), f"{base}USDT", base, position, 1.0, usd, usd, at, at
                )
            )
        rates = [
            FundingRate("binance", f"B{i}USDT", f"B{i}", 0.0001, 8, 100.0 + minute, None)
            for i in range(HISTORY_ASSETS)
        ]
        extremes = {rate.base: rate for rate in rates}
        history.record_funding(rates, extremes, at)
        history.record_open_interest({rate.base: 1e9 for rate in rates}, at)
        for base in ("BTC", "ETH"):
            price = FundingRate("binance", f"{base}USDT", base, 0.0001, 8, 90_000.0 - minute, None)
            history.record_funding([price], {base: price}, at)
            history.record_open_interest({base: 9e9 + minute * 1e6}, at)


async def ticker(done: asyncio.Event, steps: list[float]) -> None:
    """A 1 ms timer until `done`; records how late each tick was: the loop was blocked that
    long (a busy sleep(0) ticker would itself compete with the worker)."""
    while not done.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        steps.append(max(0.0, time.perf_counter() - started - 0.001))


async def measure(app: object, renders: int) -> dict[str, list[float]]:
    from bot.chart_data import ChartRequest, collect
    from bot.main import App

    assert isinstance(app, App) and app.charts is not None
    service = app.charts
    kinds = {
        "market 24h": ChartRequest(frozenset(), "24h"),
        "BTC 4h (3 panes)": ChartRequest(frozenset({"BTC"}), "4h"),
        "watch list 1h": ChartRequest(frozenset({"BTC", "ETH", "SOL"}), "1h"),
    }
    loop = asyncio.get_running_loop()
    results: dict[str, list[float]] = {}
    steps: list[float] = []
    render_steps: list[float] = []  # the loop's steps while the worker thread draws
    for name, request in kinds.items():
        times = results[name] = []
        collects = results[f"{name} collect"] = []
        for _ in range(renders):
            done = asyncio.Event()
            tick = asyncio.create_task(ticker(done, steps))
            started = time.perf_counter()
            series = await collect(request, service.market, service.norms, service.history)
            collects.append(time.perf_counter() - started)
            done.set()
            await tick
            done = asyncio.Event()
            tick = asyncio.create_task(ticker(done, render_steps))
            started = time.perf_counter()
            png = await loop.run_in_executor(service._worker, service.render_png, series)
            times.append(time.perf_counter() - started)
            done.set()
            await tick
            assert png.startswith(b"\x89PNG")
    results["loop step"] = steps
    results["render step"] = render_steps
    workers = list(getattr(service._worker, "_processes", {}) or {})  # the render process
    results["worker rss"] = [peak_rss_mb(pid) for pid in workers]
    return results


def rss_of(code: str) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{code}\nfrom bench.charts import peak_rss_mb\nprint(peak_rss_mb())",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=10)
    parser.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # a baseline: the same app and data, charts off, nothing rendered
        fill(build_app(charts=args.child == "on"))
        print(peak_rss_mb())
        return
    print(f"host: cpu_check {cpu_check():.1f} ms (lower is faster)")
    app = build_app(charts=True)
    fill(app)
    results = asyncio.run(measure(app, args.renders))
    print(f"{'chart':<20} {'render median':>14} {'render worst':>13} {'collect median':>15}")
    for name in ("market 24h", "BTC 4h (3 panes)", "watch list 1h"):
        times, collects = results[name], results[f"{name} collect"]
        print(
            f"{name:<20} {statistics.median(times) * 1000:>11.0f} ms {max(times) * 1000:>10.0f} ms"
            f" {statistics.median(collects) * 1000:>12.1f} ms"
        )
    for label, key in (("collecting", "loop step"), ("a render runs in the worker", "render step")):
        steps = sorted(results[key])
        print(
            f"loop steps while {label}: median {statistics.median(steps) * 1000:.2f} ms, "
            f"99th percentile {steps[int(len(steps) * 0.99)] * 1000:.1f} ms, "
            f"longest {steps[-1] * 1000:.1f} ms"
        )
    main_rss, worker_rss = peak_rss_mb(), sum(results["worker rss"])
    print(
        f"peak RSS with charts on, {3 * args.renders} renders: bot process {main_rss:.0f} MB + "
        f"render worker {worker_rss:.0f} MB = {main_rss + worker_rss:.0f} MB"
    )
    bare = rss_of("pass")
    mpl = rss_of("import matplotlib.figure, matplotlib.backends.backend_agg")
    script = str(Path(__file__).resolve())
    off = float(
        subprocess.run(
            [sys.executable, script, "--child", "off"], check=True, capture_output=True, text=True
        ).stdout.split()[-1]
    )
    print(
        f"baselines: bare Python {bare:.0f} MB; matplotlib imported {mpl:.0f} MB; "
        f"same bot and data, charts off, no render {off:.0f} MB"
    )


if __name__ == "__main__":
    main()
