"""Renders for the chart worker process, real and failing: in a module of their own, which the
worker imports by name to run one, so it does not import a whole test module (the bot, its
platform libraries) to get there."""

from __future__ import annotations

import os

from bot.chart_data import Series


def render_in_worker(series: Series) -> bytes:
    """A real chart, prefixed with the process id that drew it."""
    from bot import charts  # matplotlib, in the worker process only

    return f"{os.getpid()}:".encode() + charts.render(series)


def die(series: Series) -> bytes:
    """The worker process killed mid-render (say, out of memory)."""
    os._exit(3)


def broken(series: object) -> bytes:
    """A render that fails in the worker process."""
    raise ValueError("no fonts here")
