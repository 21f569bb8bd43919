"""What liqbot says when long polling fails: one clear line, not python-telegram-bot's default
traceback on every failed getUpdates (it retries by itself, up to every 30 s, for as long as
the fault lasts).

A 409 Conflict means another process polls with the same bot token (a second liqbot on another
database or machine, or another bot program): Telegram then hands each update to only one of
them, so chat commands are answered at random. That is an operator's mistake worth an error;
other failures (network, Telegram's 5xx) are warnings. While a fault lasts its line is
repeated every `repeat` seconds with the number of failures since, so a log stays readable."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from telegram.error import Conflict, TelegramError

log = logging.getLogger("handlers.telegram")

REPEAT = 600.0  # seconds between two lines about the same kind of polling failure


class PollingErrors:
    """The `error_callback` of `Updater.start_polling` (which must be a plain function)."""

    def __init__(
        self, repeat: float = REPEAT, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.repeat = repeat
        self.monotonic = monotonic
        self._said: dict[bool, float] = {}  # conflict or not -> when its last line was logged
        self._since: dict[bool, int] = {}  # failures of that kind not yet reported

    def __call__(self, error: TelegramError) -> None:
        conflict = isinstance(error, Conflict)
        now = self.monotonic()
        said = self._said.get(conflict)
        if said is not None and now - said < self.repeat:
            self._since[conflict] = self._since.get(conflict, 0) + 1
            return
        more = self._since.pop(conflict, 0)
        self._said[conflict] = now
        since = f" ({more} more since the last line)" if more else ""
        if conflict:
            log.error(
                "telegram: another process is polling with this bot token (%s)%s: run one "
                "liqbot per token, or give each its own bot from @BotFather",
                error,
                since,
            )
        else:
            log.warning("telegram: polling for updates failed (%s)%s; retrying", error, since)
