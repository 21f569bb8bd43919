"""Long polling that fails says so in one line, not a traceback per failed getUpdates: a 409
Conflict (another process polls with the same bot token) is an error naming the mistake, and
the bot goes on polling once it clears. A token revoked while running ends `run` with one line,
as a refused token does at start, instead of a bot that runs on deaf."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram.error import Conflict, NetworkError

from bot.config import load_settings
from bot.errors import StartupError
from bot.main import App
from handlers.telegram_polling import PollingErrors
from tests.fakes import FakeTelegram
from tests.fakes.telegram import OTHER_POLLER
from tests.harness import WAIT, Fakes
from tests.test_telegram import ALICE, config_with_telegram, say

CONFLICT_LINE = (
    f"telegram: another process is polling with this bot token ({OTHER_POLLER}){{since}}: run "
    "one liqbot per token, or give each its own bot from @BotFather"
)


class Records(logging.Handler):
    """Every record that reaches the root logger; `conflict` is set by liqbot's 409 line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.conflict = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if record.getMessage().startswith("telegram: another process"):
            self.conflict.set()


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, fakes: Fakes, telegram: FakeTelegram
) -> AsyncIterator[tuple[asyncio.Task[None], Records]]:
    """`liqbot run` against the fake Bot API, with every log record kept; stopped on exit (a
    run that ended by itself, with a StartupError, is what the test looks at)."""
    records = Records()
    logging.getLogger().addHandler(records)
    try:
        app = await App.open(load_settings(config_with_telegram(tmp_path, fakes, telegram)))
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        try:
            yield task, records
        finally:
            stop.set()
            async with asyncio.timeout(WAIT):
                with contextlib.suppress(StartupError):
                    await task
    finally:
        logging.getLogger().removeHandler(records)


async def test_another_poller_is_one_clear_error_and_polling_goes_on(
    tmp_path: Path, fakes: Fakes
) -> None:
    async with FakeTelegram() as telegram:
        telegram.other_polls = 1
        async with running(tmp_path, fakes, telegram) as (_, records), asyncio.timeout(WAIT):
            await records.conflict.wait()
            await say(telegram, ALICE, ALICE, "/help", "/start - ")  # polling goes on
    said = [r for r in records.records if r.getMessage().startswith("telegram: another")]
    assert [(r.levelno, r.getMessage()) for r in said] == [
        (logging.ERROR, CONFLICT_LINE.format(since=""))
    ]
    assert [r.getMessage() for r in records.records if r.exc_info] == []


async def test_a_token_revoked_while_running_ends_run_with_one_line(
    tmp_path: Path, fakes: Fakes
) -> None:
    async with FakeTelegram() as telegram, running(tmp_path, fakes, telegram) as (task, records):
        async with asyncio.timeout(WAIT):
            await say(telegram, ALICE, ALICE, "/help", "/start - ")
            telegram.revoke_token()
            with pytest.raises(StartupError) as caught:
                await asyncio.shield(task)  # run ends by itself (a deaf run is stopped on exit)
    assert str(caught.value) == (
        "telegram: the bot token was refused while running (Unauthorized): set a valid "
        "[telegram] token or TELEGRAM_BOT_TOKEN (from @BotFather)"
    )
    assert [r.getMessage() for r in records.records if r.exc_info] == []


def test_a_lasting_fault_is_repeated_every_ten_minutes_with_its_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    errors = PollingErrors(monotonic=lambda: now[0])
    caplog.set_level(logging.WARNING, "handlers.telegram")
    for at in (0.0, 1.0, 1.5, 300.0, 599.0, 600.0, 601.0):
        now[0] = at
        errors(Conflict(OTHER_POLLER))
    errors(NetworkError("httpx.ConnectError: All connection attempts failed"))
    now[0] = 700.0
    errors(NetworkError("httpx.ConnectError: All connection attempts failed"))
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", CONFLICT_LINE.format(since="")),
        ("ERROR", CONFLICT_LINE.format(since=" (4 more since the last line)")),
        (
            "WARNING",
            "telegram: polling for updates failed (httpx.ConnectError: All connection attempts "
            "failed); retrying",
        ),
    ]
