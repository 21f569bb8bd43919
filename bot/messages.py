"""The text of every alert. The first line is the headline (a contract for window alerts:
"$352M liquidated in 1h, 90% longs"); the lines below give context."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bot.alert import Alert, Field, Line
from bot.derivatives import OpenInterestMove
from bot.formatting import format_number, format_percent, format_price, format_rate, format_usd
from bot.model import FundingRate, Liquidation, Story
from bot.norms import NORM_DAYS, Norm
from bot.venues.catalog import VENUES

VENUE_NAMES = {name: venue.title for name, venue in VENUES.items()}
AVERAGE_NAMES = {
    "5m": "5-minute",
    "15m": "15-minute",
    "1h": "hourly",
    "4h": "4-hour",
    "24h": "daily",
}
TOP = 3


@dataclass(frozen=True, slots=True)
class WindowView:
    """Liquidations in one window for one watch list, with what the message needs around them."""

    window: str
    total_usd: float
    long_usd: float
    short_usd: float
    count: int
    by_base: Mapping[str, float]
    by_exchange: Mapping[str, float]
    norm: Norm | None

    @property
    def dominant(self) -> str:
        return "long" if self.long_usd >= self.short_usd else "short"

    @property
    def dominant_share(self) -> float:
        if not self.total_usd:
            return 0.0
        return max(self.long_usd, self.short_usd) / self.total_usd


def venue_name(venue: str) -> str:
    return VENUE_NAMES.get(venue, venue)


def _percent(fraction: float) -> str:
    return format_percent(fraction)


def _ranked(values: Mapping[str, float]) -> str:
    ranked = sorted(values.items(), key=lambda item: -item[1])[:TOP]
    return ", ".join(f"{venue_name(key)} {format_usd(usd)}" for key, usd in ranked if usd > 0)


def headline(view: WindowView) -> str:
    side = "longs" if view.dominant == "long" else "shorts"
    return (
        f"{format_usd(view.total_usd)} liquidated in {view.window}, "
        f"{_percent(view.dominant_share)} {side}"
    )


def _norm_line(view: WindowView) -> str:
    norm = view.norm
    if norm is None:
        return "Not enough history yet for a 30-day comparison."
    days = _history_days(norm)
    parts = []
    if norm.average_usd > 0:
        parts.append(
            f"{view.total_usd / norm.average_usd:.1f}x the {days}-day "
            f"{AVERAGE_NAMES[view.window]} average"
        )
    if norm.long_share is not None:
        parts.append(f"longs usually {_percent(norm.long_share)}")
    plural = "s" if days > 1 else ""
    return "; ".join(parts) if parts else f"Nothing was liquidated in the last {days} day{plural}."


def _history_days(norm: Norm) -> int:
    """30, or the days of history there are while there are fewer."""
    return int(min(NORM_DAYS, max(1, round(norm.history_days))))


def _context_lines(
    by_usd: Mapping[str, float],
    funding: Mapping[str, FundingRate],
    open_interest: Mapping[str, float],
) -> list[str]:
    """Funding and open interest of the assets liquidated most."""
    bases = [base for base, _ in sorted(by_usd.items(), key=lambda item: -item[1])[:TOP]]
    rates = [f"{b} {format_rate(funding[b].rate_8h)}" for b in bases if b in funding]
    interest = [f"{b} {format_usd(open_interest[b])}" for b in bases if b in open_interest]
    lines = []
    if rates:
        lines.append("Funding per 8h: " + ", ".join(rates))
    if interest:
        lines.append("Open interest: " + ", ".join(interest))
    return lines


def _ranked_fields(view: WindowView) -> list[Line]:
    return [Field("Top assets", _ranked(view.by_base)), Field("Venues", _ranked(view.by_exchange))]


def _top_assets(view: WindowView) -> tuple[str, ...]:
    ranked = sorted(view.by_base.items(), key=lambda item: -item[1])[:TOP]
    return tuple(base for base, usd in ranked if usd > 0)


def _window_figures(view: WindowView) -> dict[str, float]:
    figures = {
        "total_usd": view.total_usd,
        "long_usd": view.long_usd,
        "short_usd": view.short_usd,
        "dominant_share": view.dominant_share,
        "count": float(view.count),
    }
    if view.norm is not None and view.norm.average_usd > 0:
        figures["average_usd"] = view.norm.average_usd
        figures["ratio"] = view.total_usd / view.norm.average_usd
    return figures


def window_alert(
    view: WindowView, funding: Mapping[str, FundingRate], open_interest: Mapping[str, float]
) -> Alert:
    lines = [
        *_ranked_fields(view),
        _norm_line(view),
        *_context_lines(view.by_base, funding, open_interest),
    ]
    return Alert(
        "window",
        _top_assets(view),
        view.dominant,
        headline(view),
        tuple(lines),
        _window_figures(view),
    )


def spike_alert(
    view: WindowView, funding: Mapping[str, FundingRate], open_interest: Mapping[str, float]
) -> Alert:
    assert view.norm is not None and view.norm.average_usd > 0
    ratio = view.total_usd / view.norm.average_usd
    first = (
        f"Liquidation spike: {format_usd(view.total_usd)} in {view.window}, {ratio:.1f}x the "
        f"{_history_days(view.norm)}-day {AVERAGE_NAMES[view.window]} average"
    )
    lines = [
        headline(view),
        *_ranked_fields(view),
        *_context_lines(view.by_base, funding, open_interest),
    ]
    return Alert(
        "spike", _top_assets(view), view.dominant, first, tuple(lines), _window_figures(view)
    )


def whale_alert(event: Liquidation) -> Alert:
    return Alert(
        "whale",
        (event.base,),
        event.position,
        f"Whale liquidation: {format_usd(event.usd)} {event.base} {event.position} on "
        f"{venue_name(event.venue)}",
        (
            f"{event.symbol}: {format_number(event.qty)} {event.base} at "
            f"${format_price(event.price)}",
        ),
        {"usd": event.usd, "qty": event.qty, "price": event.price},
    )


def funding_alert(rate: FundingRate) -> Alert:
    payer, receiver = ("longs", "shorts") if rate.rate_8h > 0 else ("shorts", "longs")
    interval = f"{rate.interval_hours:g}h"
    return Alert(
        "funding",
        (rate.base,),
        None,
        f"{rate.base} funding {format_rate(rate.rate_8h)} per 8h on {venue_name(rate.venue)}: "
        f"{payer} pay {receiver}",
        (f"{rate.symbol}: {format_rate(rate.rate)} every {interval} ({rate.apr * 100:+.0f}% APR)",),
        {
            "rate_8h": rate.rate_8h,
            "rate": rate.rate,
            "interval_hours": rate.interval_hours,
            "apr": rate.apr,
        },
    )


def open_interest_alert(move: OpenInterestMove, window: str) -> Alert:
    direction = "up" if move.change > 0 else "down"
    return Alert(
        "oi",
        (move.base,),
        None,
        f"{move.base} open interest {direction} {abs(move.change) * 100:.1f}% in {window} "
        f"to {format_usd(move.now_usd)}",
        (f"From {format_usd(move.before_usd)}, summed across venues",),
        {"change": move.change, "now_usd": move.now_usd, "before_usd": move.before_usd},
    )


def digest(
    title: str,
    views: list[WindowView],
    funding: Mapping[str, FundingRate],
    open_interest: Mapping[str, float],
) -> Alert:
    first = views[0]
    first_line = (
        f"{title}: {headline(first)}"
        if first.total_usd
        else f"{title}: no liquidations in {first.window}"
    )
    lines: list[Line] = []
    for view in views[1:]:
        lines.append(headline(view) if view.total_usd else f"No liquidations in {view.window}")
    if first.total_usd:
        lines += _ranked_fields(first)
    extremes = sorted(funding.values(), key=lambda r: -abs(r.rate_8h))[:TOP]
    if extremes:
        lines.append(
            "Funding extremes per 8h: "
            + ", ".join(
                f"{r.base} {format_rate(r.rate_8h)} ({venue_name(r.venue)})" for r in extremes
            )
        )
    largest = sorted(open_interest.items(), key=lambda item: -item[1])[:TOP]
    if largest:
        lines.append("Open interest: " + ", ".join(f"{b} {format_usd(u)}" for b, u in largest))
    return Alert(
        "digest", _top_assets(first), None, first_line, tuple(lines), _window_figures(first)
    )


def quiet_summary(first_lines: Sequence[str]) -> Alert:
    """The first lines of the alerts held back by quiet hours, as one alert."""
    count = f"{len(first_lines)} alerts were" if len(first_lines) != 1 else "1 alert was"
    lines = tuple(f"- {line}" for line in first_lines)
    return Alert("quiet", (), None, f"During quiet hours, {count} held back:", lines)


def with_spike(window: Alert, spike: Alert) -> Alert:
    """A window alert and a spike alert of one window in one pass (or a minute apart) tell one
    story: the window alert, its context line (the 30-day comparison) marked as a spike."""
    ratio = spike.figures.get("ratio")
    lines = tuple(
        f"Spike: {line}" if isinstance(line, str) and _is_norm_line(line) else line
        for line in window.lines
    )
    figures = dict(window.figures)
    if ratio is not None:
        figures["spike_ratio"] = ratio
    return replace(window, lines=lines, figures=figures)


def _is_norm_line(line: str) -> bool:
    return "-day" in line and "average" in line


def asset_lines(alerts: Sequence[Alert]) -> Alert:
    """Several open-interest (or funding) alerts of one pass for one chat as one message: a
    first line naming the assets, then a line per asset (its first line and its detail)."""
    if len(alerts) == 1:
        return alerts[0]
    first = alerts[0]
    bases = ", ".join(base for alert in alerts for base in alert.assets)
    title = "Open interest moves" if first.rule == "oi" else "Funding extremes"
    lines = tuple(
        f"{alert.first_line} ({alert.lines[0]})" if alert.lines else alert.first_line
        for alert in alerts
    )
    return Alert(
        first.rule,
        tuple(base for alert in alerts for base in alert.assets),
        first.side,
        f"{title}: {bases}",
        lines,
        {},
    )


def escalation_alert(
    view: WindowView,
    funding: Mapping[str, FundingRate],
    open_interest: Mapping[str, float],
    previous_usd: float,
    previous_at: int,
) -> Alert:
    """A window alert told again because the cascade grew: the same first line, then where it
    stood when last told ("Up from $352M at 12:30 UTC")."""
    alert = window_alert(view, funding, open_interest)
    at = datetime.fromtimestamp(previous_at / 1000, UTC)
    line = f"Up from {format_usd(previous_usd)} at {at:%H:%M} UTC"
    figures = {**alert.figures, "previous_usd": previous_usd}
    return replace(alert, lines=(line, *alert.lines), figures=figures)


def ranked_assets(view: WindowView) -> str:
    return _ranked(view.by_base)


def liquidation(event: Liquidation) -> str:
    return f"{format_usd(event.usd)} {event.base} {event.position} on {venue_name(event.venue)}"


def cascade_summary(window: str, story: Story, now: int) -> Alert:
    """The message that closes a cascade's story: "Cascade over: $705M liquidated in 1h at
    the peak (92% longs), 12:27-13:05 UTC"."""
    share = story.peak_long_usd / story.peak_usd if story.peak_usd else 0.0
    side, dominant = ("longs", share) if share >= 0.5 else ("shorts", 1 - share)
    start = datetime.fromtimestamp(story.started_at / 1000, UTC)
    end = datetime.fromtimestamp(now / 1000, UTC)
    lines: list[Line] = [f"Lasted {round((now - story.started_at) / 60_000)} min"]
    if story.top:
        lines.append(Field("Top assets at the peak", story.top))
    if story.largest:
        lines.append(Field("Largest liquidation", story.largest))
    return Alert(
        "summary",
        (),
        "long" if share >= 0.5 else "short",
        f"Cascade over: {format_usd(story.peak_usd)} liquidated in {window} at the peak "
        f"({_percent(dominant)} {side}), {start:%H:%M}-{end:%H:%M} UTC",
        tuple(lines),
        {"peak_usd": story.peak_usd, "peak_long_usd": story.peak_long_usd},
    )
