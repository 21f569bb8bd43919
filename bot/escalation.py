"""Escalation: a cascade that keeps growing is told again. A chat's window rule, once it fired,
is disarmed (hysteresis) and cooling down; while it stays disarmed its story is open, and when
the window total reaches the chat's `escalation` multiple of the total its last alert told, a
new window alert goes out, inside the cooldown. Re-arming (the total fell back) closes the story.

Only open stories are looked at: a calm market with no story open costs nothing here."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from bot import messages
from bot.model import RuleState
from bot.rulebook import MARKET, RuleBook, StateKey
from bot.rules import Trigger
from bot.snapshot import Snapshot

SLICE_STORIES = 2000  # open stories looked at between two yields to the loop


def escalates(state: RuleState, total: float, multiple: float) -> bool:
    """Whether `total` is a new chapter of the story `state` tells (multiple 0: off)."""
    return multiple > 0 and state.last_total > 0 and total >= multiple * state.last_total


def escalation_steps(
    open_chats: Iterable[str],
    book: RuleBook,
    snap: Snapshot,
    states: Mapping[StateKey, RuleState],
    out: list[Trigger],
) -> Iterator[None]:
    """Append to `out` a window trigger for each open story that escalates, yielding every
    few stories. Mute silences; the chat's side share applies as for the window rule."""
    for number, chat in enumerate(open_chats):
        if number % SLICE_STORIES == SLICE_STORIES - 1:
            yield
        sub = book.by_key.get(chat)
        state = states.get((chat, "window", MARKET))
        if sub is None or state is None or state.armed:
            continue
        t = sub.thresholds
        if t.liq <= 0 or (sub.mute_until is not None and snap.now < sub.mute_until):
            continue
        long_usd, short_usd = snap.sides(t.window, sub.watch)
        total = long_usd + short_usd
        if not escalates(state, total, t.escalation):
            continue
        if max(long_usd, short_usd) / total < t.side:
            continue
        view = snap.view(t.window, sub.watch)
        alert = messages.escalation_alert(
            view, snap.funding(), snap.open_interest(), state.last_total, state.last_fired_at
        )
        out.append(Trigger(sub, "window", MARKET, alert))
