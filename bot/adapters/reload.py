"""Reloading a venue's instrument list when a push names instruments it lacks."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from bot.rest import RestError
from bot.venues.common import MALFORMED, Tally

log = logging.getLogger(__name__)


class ReloadOnUnknown:
    """A `StreamSpec.reload`: reloads through `refresh` at most every `cooldown` seconds (an
    instrument that stays unknown, say a suspended one, must not cause a reload storm)."""

    def __init__(
        self,
        venue: str,
        tally: Tally,
        refresh: Callable[[], Awaitable[object]],
        cooldown: float = 60.0,
    ) -> None:
        self.venue = venue
        self.tally = tally
        self.refresh = refresh
        self.cooldown = cooldown
        self._reloaded_at = float("-inf")

    async def __call__(self) -> None:
        unknown = sorted(self.tally.unknown)
        self.tally.unknown.clear()
        if time.monotonic() - self._reloaded_at < self.cooldown:
            return
        self._reloaded_at = time.monotonic()
        log.info(
            "%s: %s not in the instrument list; reloading it", self.venue, ", ".join(unknown[:10])
        )
        try:
            await self.refresh()
        except (RestError, *MALFORMED) as error:
            log.warning("%s: reloading instruments failed: %s", self.venue, error)
