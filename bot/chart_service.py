"""Charts for the chat adapters: which alert gets which chart, rendered once per distinct
(asset set, window, alert minute) in one worker process and shared by every chat that gets it.

The loop only collects the series (in slices that yield) and awaits the worker; matplotlib never
runs in the bot's process. A thread was not enough: matplotlib's C parts (text layout, PNG
encoding) hold the GIL, and the loop stalled for up to 90 ms during a render (bench/charts.py).
A chart that cannot be drawn yields None and the adapter sends the text: a chart never costs an
alert.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from sqlite_utils import Database

from bot import chart_worker
from bot.chart_data import ChartRequest, MarketHistory, Series, collect
from bot.market import MarketState
from bot.model import OutboxRow
from bot.norms import Norms
from storage import alerts

log = logging.getLogger(__name__)

CHART_RULES = frozenset({"window", "spike", "digest"})
DIGEST_WINDOWS = {"hourly": "1h"}  # a daily digest's chart shows its first window, 24h
CACHE_SIZE = 32  # charts kept (about 100 KB each): a cascade needs a handful
WORKER_CHARTS = 500  # charts a worker draws before a fresh one takes over (no slow growth)
ChartKey = tuple[frozenset[str], str, int]  # assets, window, minute


@dataclass(frozen=True, slots=True)
class Chart:
    key: ChartKey  # the same image for every chat with this key (Telegram reuses its file_id)
    png: bytes


Render = Callable[[Series], bytes]


def worker() -> Executor:
    """One spawned process (not forked: the bot has threads, and a fork copies its memory)."""
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        max_tasks_per_child=WORKER_CHARTS,
    )


class ChartService:
    def __init__(
        self,
        db: Database,
        market: MarketState,
        norms: Norms,
        history: MarketHistory,
        render: Render = chart_worker.render,
        executor: Callable[[], Executor] = worker,
    ) -> None:
        self.db = db
        self.market = market
        self.norms = norms
        self.history = history
        self.render_png = render
        self.renders = 0  # images drawn
        self.failures = 0  # images that could not be drawn (their alerts went as text)
        self._new_worker = executor
        self._worker = executor()
        self._charts: OrderedDict[ChartKey, asyncio.Task[Chart | None]] = OrderedDict()

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    def use_workers(self, executor: Callable[[], Executor]) -> None:
        """Draw in workers from `executor` from now on (tests: workers that start warm)."""
        self._worker.shutdown(wait=False)
        self._new_worker = executor
        self._worker = executor()

    def request_for(self, row: OutboxRow) -> ChartRequest | None:
        """The chart a delivered alert carries: window, spike and digest alerts to chats that
        switched charts on, for the chat's watch list and window (digests: the digest's)."""
        if row.rule not in CHART_RULES:
            return None
        sub = alerts.load_subscription(self.db, row.platform, row.chat_id)
        if sub is None or not sub.chart:
            return None
        if row.rule == "digest":
            return ChartRequest(sub.watch, DIGEST_WINDOWS.get(sub.digest, "24h"))
        return ChartRequest(sub.watch, sub.thresholds.window)

    async def chart_for(self, row: OutboxRow) -> Chart | None:
        request = self.request_for(row)
        return None if request is None else await self.chart(request)

    async def chart(self, request: ChartRequest) -> Chart | None:
        """The chart of `request` as of this minute: drawn by the first caller, awaited by the
        others (a cascade that alerts 5,000 chats draws a handful of images)."""
        key = (request.bases, request.window, self.market.minute)
        task = self._charts.get(key)
        if task is None:
            task = self._charts[key] = asyncio.create_task(self._draw(key, request))
            while len(self._charts) > CACHE_SIZE:
                self._charts.popitem(last=False)
        else:
            self._charts.move_to_end(key)
        return await asyncio.shield(task)

    async def _draw(self, key: ChartKey, request: ChartRequest) -> Chart | None:
        series = await collect(request, self.market, self.norms, self.history)
        loop = asyncio.get_running_loop()
        try:
            png = await loop.run_in_executor(self._worker, self.render_png, series)
        except BrokenProcessPool:  # the worker died (killed, out of memory): start another
            self.failures += 1
            log.error("charts: the render worker died; starting a new one, sending text")
            self._worker.shutdown(wait=False)
            self._worker = self._new_worker()
            return None
        except Exception:  # any fault in drawing: logged with its traceback, the text goes out
            self.failures += 1
            log.exception(
                "charts: cannot draw %s %s at minute %d; sending text",
                request.label,
                request.window,
                key[2],
            )
            return None
        self.renders += 1
        return Chart(key, png)
