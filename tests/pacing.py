"""The chat platforms' time, scaled in one place for the bot and the fakes: tests run Telegram's
and Discord's limits and waits at `SCALE` times their length, so Telegram's "one message a
second in a chat" is checked by the fake, with exact counts, as one per 0.1 s (which the bot
holds as one per 0.2 s: its 0.1 s margin is kept, see below).

The bot's pace, its flood waits and connection retries, and the outbox's waits between attempts
are scaled; so are the fakes' windows (`window_scale`). What allows for latency is not: the
margin a limit keeps (`Limit.margin`) and the least spacing between two sends, since requests
take as long to arrive as they do at full scale. A platform's `retry_after` stays in the
platform's seconds, as it says it; the bot scales it when it waits. Durations in the platform
tests' assertions are written as `SCALE * <the real figure>`; allowances for latency are not."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor

from bot.chart_service import WORKER_CHARTS
from bot.main import App
from handlers import telegram
from tests.fakes import FakeDiscord, FakeTelegram

SCALE = 0.1
# The least time between two messages to one Telegram chat: its 1 s scaled, plus the margin for
# latency, which is not scaled (latency does not shrink with the windows): 0.2 s.
TELEGRAM_CHAT_PACE = telegram.PACER_LIMITS[1].scaled(SCALE).seconds


def warm_chart_worker() -> Executor:
    """A chart worker forked from a server process that has matplotlib loaded: the server
    starts (and imports it) once per test process, each worker then in well under a second,
    where a spawned one takes seconds to import matplotlib for its first chart."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["bot.charts"])
    return ProcessPoolExecutor(max_workers=1, mp_context=context, max_tasks_per_child=WORKER_CHARTS)


def quicken(app: App) -> App:
    """`app`'s platforms and their outbox workers at `SCALE`, its charts drawn by workers that
    start warm (before `app.run`)."""
    if app.charts is not None:
        app.charts.use_workers(warm_chart_worker)
    if app.telegram is not None:
        app.telegram.scale_time(SCALE)
    if app.discord is not None:
        app.discord.scale_time(SCALE)
    for worker in app.core.workers.values():
        worker.timescale = SCALE
    return app


def fake_telegram(token: str = "123456:TEST-TOKEN") -> FakeTelegram:
    """A fake Bot API enforcing Telegram's limits over windows scaled by `SCALE`."""
    return FakeTelegram(token, window_scale=SCALE)


def fake_discord() -> FakeDiscord:
    """A fake Discord enforcing Discord's limits over windows scaled by `SCALE`."""
    fake = FakeDiscord(window_scale=SCALE)
    fake.enforce_limits = True
    return fake
