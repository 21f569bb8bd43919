"""What the chart worker process runs. The bot's process sends it a `Series` (pickled) and gets
PNG bytes back; importing this module imports nothing heavy, so matplotlib is loaded only in
the worker, on its first chart."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.chart_data import Series


def render(series: Series) -> bytes:
    from bot import charts

    png = charts.render(series)
    # A figure is a web of reference cycles; left to the collector's schedule, a few dozen of
    # them pile up (the worker peaked at ~128 MB instead of ~80 MB over 100 charts).
    gc.collect()
    return png
