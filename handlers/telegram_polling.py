"""Long polling for Telegram updates, and what liqbot says when it fails.

liqbot polls by itself (`Poller`) instead of through python-telegram-bot's `Updater`: PTB's
polling loop stops for good when Telegram refuses the token while running (revoked or reset in
@BotFather), with a traceback and no public hook, and the bot would go on deaf to every command.
Here a refused token ends `run` with one clear line, as it does at start.

Other failures are retried. A 409 Conflict means another process polls with the same bot token
(a second liqbot on another database or machine, or another bot program): Telegram then hands
each update to only one of them, so chat commands are answered at random. That is an operator's
mistake worth an error; other failures (network, Telegram's 5xx) are warnings. While a fault
lasts its line is repeated every `repeat` seconds with the number of failures since, so a log
stays readable (`PollingErrors`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

from telegram import Bot, Update
from telegram.error import Conflict, InvalidToken, RetryAfter, TelegramError, TimedOut

from bot.errors import StartupError

log = logging.getLogger("handlers.telegram")

REPEAT = 600.0  # seconds between two lines about the same kind of polling failure
LONG_POLL = 10  # seconds Telegram holds a getUpdates open while nothing happens (as PTB's)
RETRY_FIRST, RETRY_MAX = 1.0, 30.0  # seconds between failed polls, growing by half (as PTB's)


def refused_token(cause: str, *, running: bool = False) -> StartupError:
    """The one line for a token Telegram refuses (401/404); `cause` is Telegram's own words."""
    when = " while running" if running else ""
    return StartupError(
        f"telegram: the bot token was refused{when} ({cause}): set a valid [telegram] token or "
        "TELEGRAM_BOT_TOKEN (from @BotFather)"
    )


def telegram_words(error: BaseException) -> str:
    """The innermost cause of a PTB error: Telegram's own description, never the token."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error)


class PollingErrors:
    """Says a failed poll in one line, repeated every `repeat` seconds while it lasts."""

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


class Poller:
    """Fetches updates into PTB's update queue, which the `Application` handles."""

    def __init__(
        self,
        bot: Bot,
        queue: asyncio.Queue[object],
        allowed_updates: Sequence[str],
        errors: Callable[[TelegramError], None],
        timescale: float = 1.0,
    ) -> None:
        self.bot = bot
        self.queue = queue
        self.allowed_updates = list(allowed_updates)
        self.errors = errors
        self.timescale = timescale  # tests shorten the waits between failed polls
        self.offset = 0  # the first update not yet fetched
        self.refused = False

    async def run(self) -> None:
        """Poll until cancelled; a refused token raises the StartupError that ends `run`."""
        retry = 0.0
        while True:
            try:
                updates: Sequence[Update] = await self.bot.get_updates(
                    offset=self.offset, timeout=LONG_POLL, allowed_updates=self.allowed_updates
                )
            except InvalidToken as error:
                self.refused = True
                raise refused_token(telegram_words(error), running=True) from None
            except RetryAfter as error:
                await asyncio.sleep(retry_seconds(error.retry_after) * self.timescale)
                continue
            except TimedOut:
                continue  # a long poll the network dropped: ask again at once
            except TelegramError as error:
                self.errors(error)
                retry = min(RETRY_MAX, retry * 1.5) if retry else RETRY_FIRST
                await asyncio.sleep(retry * self.timescale)
                continue
            retry = 0.0
            for update in updates:
                await self.queue.put(update)
            if updates:
                self.offset = updates[-1].update_id + 1

    async def confirm(self) -> None:
        """Tell Telegram the fetched updates are taken, so a restart does not fetch them again
        (nothing to tell once the token is refused)."""
        if self.refused or not self.offset:
            return
        try:
            await self.bot.get_updates(
                offset=self.offset, timeout=0, allowed_updates=self.allowed_updates
            )
        except TelegramError as error:
            log.warning(
                "telegram: could not confirm the last updates (%s); a restart may answer them "
                "again",
                error,
            )


def retry_seconds(value: int | timedelta) -> float:
    """A RetryAfter's wait, which PTB gives as seconds or as a timedelta."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
