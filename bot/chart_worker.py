"""What the chart worker process runs. The bot's process sends it a `Series` (pickled) and gets
PNG bytes back; importing this module imports nothing heavy, so matplotlib is loaded only in
the worker, on its first chart."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.chart_data import Series


def render(series: Series) -> bytes:
    from bot import charts

    return charts.render(series)
