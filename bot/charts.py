"""A chart as a PNG: liquidation bars (longs above zero, shorts below) with the mark price on a
second axis, and for one asset funding and open interest in small panes below.

matplotlib's object API with the Agg canvas, in memory: no pyplot, no display, no global
figure state, so a worker thread can call `render` while the loop runs. One look for both of
Telegram's themes: the image brings its own dark card, so it reads the same on either.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime

from matplotlib import dates as mdates
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from bot.chart_data import BUCKET_MINUTES, Point, Series
from bot.formatting import format_number, format_usd
from bot.market import MS_PER_MINUTE

WIDTH_IN, DPI = 7.2, 150  # 1080 px wide (Telegram shows photos up to 1280 px)
HEIGHT_IN = {1: 4.05, 3: 5.8}  # one pane (608 px), or liquidations + funding + OI (870 px)
BACKGROUND, PANE = "#17212b", "#1d2733"
TEXT, MUTED, GRID = "#e8edf3", "#9aa7b5", "#2e3b49"
LONGS, SHORTS = "#f0616d", "#2fbf8f"  # longs liquidated red (price fell), shorts green
PRICE, FUNDING, INTEREST = "#f5c542", "#7aa2f7", "#c3a6ff"
PNG_LEVEL = 1  # zlib level: 6 (the default) costs ~60 ms more per chart for ~25% smaller files
MS_PER_DAY = 86_400_000
MAX_PNG_BYTES = 10 * 1024 * 1024  # Telegram's photo limit; Discord's default upload limit


def _escape(text: str) -> str:
    """Tick labels go through mathtext: a lone "$" is fine, two would start math."""
    return text.replace("$", r"\$")


def _day(ms: int) -> float:
    """Epoch ms as matplotlib's date number (days since 1970): no datetime per point."""
    return ms / MS_PER_DAY


def _times(points: list[Point]) -> list[float]:
    return [ms / MS_PER_DAY for ms, _ in points]


def _bars(ax: Axes, lefts: list[float], width: float, heights: list[float], colour: str) -> None:
    """Bars as one collection: ax.bar makes an artist per bar, ten times slower to draw."""
    boxes = [
        ((x, 0.0), (x, h), (x + width, h), (x + width, 0.0))
        for x, h in zip(lefts, heights, strict=True)
        if h
    ]
    ax.add_collection(PolyCollection(boxes, facecolors=colour, edgecolors="none"))


def _style(ax: Axes) -> None:
    ax.set_facecolor(PANE)
    ax.tick_params(colors=MUTED, labelsize=11, length=0)
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _usd_tick(value: float, _: object = None) -> str:
    return _escape(format_usd(abs(float(value)))) if math.isfinite(value) else ""


def _usd_axis(ax: Axes) -> None:
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_formatter(FuncFormatter(_usd_tick))


def _liquidations(ax: Axes, series: Series) -> None:
    bucket = BUCKET_MINUTES[series.request.window] * MS_PER_MINUTE / MS_PER_DAY
    lefts = [_day(ms) + bucket * 0.1 for ms in series.starts]
    _bars(ax, lefts, bucket * 0.8, series.longs, LONGS)
    _bars(ax, lefts, bucket * 0.8, [-v for v in series.shorts], SHORTS)
    ax.axhline(0, color=MUTED, linewidth=0.8)
    top = max([*series.longs, *series.shorts, 1.0])
    ax.set_ylim(-top * 1.15, top * 1.15)  # zero in the middle: the sides compare at a glance
    _usd_axis(ax)
    handles: list[Artist] = [Patch(color=LONGS), Patch(color=SHORTS)]
    labels = ["Longs liquidated", "Shorts liquidated"]
    if series.price:
        price_ax = ax.twinx()
        price_ax.plot(_times(series.price), [v for _, v in series.price], color=PRICE, lw=2)
        price_ax.tick_params(colors=PRICE, labelsize=11, length=0)
        price_ax.yaxis.set_major_locator(MaxNLocator(4))
        price_ax.yaxis.set_major_formatter(
            FuncFormatter(lambda v, _: _escape(f"${format_number(float(v), significant=5)}"))
        )
        for spine in price_ax.spines.values():
            spine.set_visible(False)
        (line,) = price_ax.get_lines()
        handles.append(line)
        labels.append(f"{series.price_base} mark price")
    legend = ax.legend(
        handles,
        labels,
        loc="lower left",
        bbox_to_anchor=(-0.01, 1.0),
        fontsize=11,
        frameon=False,
        ncols=len(labels),
        borderaxespad=0.2,
        handlelength=1.4,
    )
    for text in legend.get_texts():
        text.set_color(TEXT)


def _line_pane(ax: Axes, points: list[Point], colour: str, label: str, percent: bool) -> None:
    values = [v * 100 if percent else v for _, v in points]
    if points:
        ax.plot(_times(points), values, color=colour, lw=2, drawstyle="steps-post")
    else:
        ax.text(
            0.5,
            0.5,
            "no data yet",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color=MUTED,
            fontsize=11,
        )
        ax.set_yticks([])
    ax.text(
        0.005,
        0.92,
        label,
        transform=ax.transAxes,
        va="top",
        color=colour,
        fontsize=11,
        zorder=5,
        bbox={"facecolor": PANE, "edgecolor": "none", "alpha": 0.85, "pad": 2},
    )
    ax.yaxis.set_major_locator(MaxNLocator(3))
    if percent:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+.3f}%"))
    else:
        _usd_axis(ax)


def render(series: Series) -> bytes:
    """The chart of `series` as PNG bytes."""
    panes = 3 if len(series.request.bases) == 1 else 1
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN[panes]), dpi=DPI, facecolor=BACKGROUND)
    FigureCanvasAgg(figure)
    ratios = [3, 1, 1][:panes]
    axes = figure.subplots(panes, 1, sharex=True, squeeze=False, height_ratios=ratios)[:, 0]
    for ax in axes:
        _style(ax)
    _liquidations(axes[0], series)
    if panes == 3:
        _line_pane(axes[1], series.funding, FUNDING, "Funding per 8h", percent=True)
        _line_pane(axes[2], series.interest, INTEREST, "Open interest", percent=False)
    end = datetime.fromtimestamp(series.end_ms / 1000, UTC)
    last = axes[-1]
    last.set_xlim(_day(series.starts[0]), _day(series.end_ms))
    last.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=7))  # type: ignore[no-untyped-call]
    last.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
    bar = BUCKET_MINUTES[series.request.window]
    figure.text(
        0.012,
        0.975,
        series.title,
        color=TEXT,
        fontsize=16,
        fontweight="bold",
        va="top",
        parse_math=False,
    )
    figure.text(
        0.012,
        0.905 if panes == 1 else 0.93,
        f"{series.request.label} · last {series.request.window} · {bar}-minute bars · "
        f"times UTC, to {end:%d %b %H:%M}",
        color=MUTED,
        fontsize=11,
        va="top",
        parse_math=False,
    )
    figure.text(0.99, 0.012, "liqbot", color=MUTED, fontsize=9, ha="right", alpha=0.8)
    top = 0.79 if panes == 1 else 0.85
    figure.subplots_adjust(
        left=0.11, right=0.875, top=top, bottom=0.08 if panes == 1 else 0.06, hspace=0.12
    )
    buffer = io.BytesIO()
    figure.savefig(
        buffer, format="png", facecolor=BACKGROUND, pil_kwargs={"compress_level": PNG_LEVEL}
    )
    return buffer.getvalue()
