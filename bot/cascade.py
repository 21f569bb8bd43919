"""The closing summary: a cascade that produced a window alert is a story; when it subsides (the
window total below half the chat's `liq`, or 30 minutes without a new window alert or
escalation) one message closes it, with the peak, its long share, the time it lasted, the top
assets at the peak and the largest single liquidation seen while it was open.

A story opens only with a window alert sent to the chat, so a summary never comes without one.
The engine keeps the open stories in memory and records them with the pass that opens, tells
or closes them (a restart keeps them); the peak seen between two alerts is kept in memory."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace

from bot import messages
from bot.alert import Alert
from bot.model import Liquidation, Story, Subscription
from bot.snapshot import Snapshot

SUBSIDED_SHARE = 0.5  # of the chat's `liq`: below it the cascade is over
QUIET_MS = 30 * 60_000  # or this long without a new window alert
SLICE_STORIES = 250  # open stories followed between two yields to the loop (a story may cost a
# summary: 2,000 of them were a 100 ms step)


def told(story: Story | None, chat: str, alert: Alert, now: int) -> Story:
    """The story after a window alert `alert` was sent to `chat` (opened by the first)."""
    total = alert.figures.get("total_usd", 0.0)
    top = next((line.value for line in alert.fields if line.name == "Top assets"), "")
    if story is None:
        return Story(chat, now, now, total, alert.figures.get("long_usd", 0.0), top)
    story = replace(story, told_at=now)
    return _peak(story, total, alert.figures.get("long_usd", 0.0), top)


def _peak(story: Story, total: float, long_usd: float, top: str) -> Story:
    if total <= story.peak_usd:
        return story
    return replace(story, peak_usd=total, peak_long_usd=long_usd, top=top)


class Largest:
    """This pass's largest liquidation per base, and the largest of them all: what a chat
    watches is found without walking every base for every chat (4,000 stories opening in a
    cascade over 300 bases took 70 ms on the loop)."""

    def __init__(self, by_base: Mapping[str, Liquidation]) -> None:
        self.by_base = by_base
        self.overall = max(by_base.values(), key=_usd, default=None)

    def watched_by(self, sub: Subscription) -> Liquidation | None:
        """The largest liquidation the chat watches (ties: the first base by name)."""
        if not sub.watch:
            return self.overall
        by_base = self.by_base
        watched = (by_base[base] for base in sorted(sub.watch) if base in by_base)
        return max(watched, key=_usd, default=None)


def _usd(event: Liquidation) -> float:
    return event.usd


def with_largest(story: Story, event: Liquidation | None) -> Story:
    """The story with `event` (the largest liquidation of this pass the chat watches), if it
    is larger than the story's."""
    if event is None or event.usd <= story.largest_usd:
        return story
    return replace(story, largest_usd=event.usd, largest=messages.liquidation(event))


def follow_steps(
    stories: Mapping[str, Story],
    subs: Mapping[str, Subscription],
    snap: Snapshot,
    largest: Largest,
    followed: dict[str, Story],
    closed: list[tuple[Subscription, Story, Alert]],
) -> Iterator[None]:
    """Follow each open story through this pass: its new peak and largest liquidation go to
    `followed`; the stories that subsided go to `closed`, with their summary (the chat's
    `summary` setting and mute are the engine's to apply). Yields every few stories."""
    tops: dict[tuple[str, frozenset[str]], str] = {}  # ranked once per window and watch list
    for number, (chat, story) in enumerate(list(stories.items())):
        if number % SLICE_STORIES == SLICE_STORIES - 1:
            yield
        sub = subs.get(chat)
        if sub is None:
            continue
        t = sub.thresholds
        long_usd, short_usd = snap.sides(t.window, sub.watch)
        total = long_usd + short_usd
        now = story
        if total > story.peak_usd:
            top = tops.get((t.window, sub.watch))
            if top is None:
                top = messages.ranked_assets(snap.view(t.window, sub.watch))
                tops[t.window, sub.watch] = top
            now = _peak(now, total, long_usd, top)
        now = with_largest(now, largest.watched_by(sub))
        if total < SUBSIDED_SHARE * t.liq or snap.now - now.told_at >= QUIET_MS:
            closed.append((sub, now, messages.cascade_summary(t.window, now, snap.now)))
        elif now is not story:
            followed[chat] = now
