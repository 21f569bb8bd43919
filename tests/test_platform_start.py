"""A chat platform that refuses liqbot's token ends `run` at start with one clear line naming the
platform and the cause (never the token); one that cannot be reached is retried."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import discord
import pytest

from bot.config import load_settings
from bot.errors import StartupError
from bot.main import App
from tests.fakes import FakeDiscord, FakeTelegram
from tests.harness import WAIT, Fakes, write_config
from tests.pacing import quicken
from tests.test_startup import ROOT, offline_config

WRONG_TELEGRAM = "123456:WRONG-secret-token"
TELEGRAM_REFUSED = (
    "telegram: the bot token was refused ({cause}): set a valid [telegram] token or "
    "TELEGRAM_BOT_TOKEN (from @BotFather)"
)
DISCORD_REFUSED = (
    "discord: the bot token was refused (401 Unauthorized): set a valid [discord] token or "
    "DISCORD_BOT_TOKEN (Developer Portal -> Bot -> Reset Token)"
)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def restore_discord_endpoints() -> Iterator[None]:
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE = base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


def with_table(config: Path, table: str) -> Path:
    config.write_text(config.read_text() + "\n" + table)
    return config


async def test_a_refused_telegram_token_ends_run_with_one_line_and_exit_1(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    config = with_table(
        offline_config(tmp_path),
        f'[telegram]\ntoken = "{WRONG_TELEGRAM}"\napi_url = "{telegram.base_url}"\n',
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(config),
        "run",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(WAIT * 3):
        out, err = await process.communicate()
    assert process.returncode == 1
    assert err.decode().splitlines()[-1] == "liqbot run: " + TELEGRAM_REFUSED.format(
        cause="Unauthorized"
    )
    assert "Traceback" not in err.decode()
    assert "WRONG-secret" not in (out + err).decode()


async def test_a_telegram_404_from_getme_is_a_refused_token(
    tmp_path: Path, fakes: Fakes, telegram: FakeTelegram
) -> None:
    telegram.fail_next(
        "getMe", 404, body={"ok": False, "error_code": 404, "description": "Not Found"}
    )
    config = with_table(
        write_config(tmp_path, fakes),
        f'[telegram]\ntoken = "{telegram.token}"\napi_url = "{telegram.base_url}"\n',
    )
    app = await App.open(load_settings(config))
    async with asyncio.timeout(WAIT):
        with pytest.raises(StartupError) as caught:
            await app.run(asyncio.Event())
    assert str(caught.value) == TELEGRAM_REFUSED.format(cause="Not Found")


async def discord_refusal(
    tmp_path: Path, fakes: Fakes, fake: FakeDiscord, token: str
) -> tuple[App, str]:
    """Run with `token` against `fake` until run stops; the app and the StartupError's line."""
    config = with_table(
        write_config(tmp_path, fakes),
        f'[discord]\ntoken = "{token}"\napi_url = "{fake.base_url}/api/v10"\n'
        f'gateway_url = "{fake.gateway_url}"\n',
    )
    app = await App.open(load_settings(config))
    async with asyncio.timeout(WAIT):
        with pytest.raises(StartupError) as caught:
            await app.run(asyncio.Event())
    return app, str(caught.value)


async def test_a_refused_discord_token_ends_run(
    tmp_path: Path, fakes: Fakes, restore_discord_endpoints: None
) -> None:
    async with FakeDiscord() as fake:
        _, refused = await discord_refusal(tmp_path, fakes, fake, "not-the-token")
    assert refused == DISCORD_REFUSED


async def test_a_token_the_discord_gateway_refuses_ends_run(
    tmp_path: Path, fakes: Fakes, restore_discord_endpoints: None
) -> None:
    async with FakeDiscord() as fake:
        fake.gateway_refuses_token = True  # REST logs in; IDENTIFY is closed with 4004
        app, refused = await discord_refusal(tmp_path, fakes, fake, fake.token)
    assert refused == (
        "discord: the gateway refused the bot token (4004 Authentication failed): set a valid "
        "[discord] token or DISCORD_BOT_TOKEN (Developer Portal -> Bot -> Reset Token)"
    )
    assert app.supervisor.restarts()["discord"] == 0


class RetryLog(logging.Handler):
    """Sets `done` once Telegram's "cannot connect; retrying" was logged `times` times."""

    def __init__(self, times: int) -> None:
        super().__init__(logging.WARNING)
        self.left = times
        self.done = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("telegram: cannot connect"):
            self.left -= 1
            if self.left == 0:
                self.done.set()


async def test_an_unreachable_telegram_is_retried_and_run_goes_on(
    tmp_path: Path, fakes: Fakes
) -> None:
    config = with_table(
        write_config(tmp_path, fakes),
        '[telegram]\ntoken = "123456:TEST-TOKEN"\napi_url = "http://127.0.0.1:9"\n',
    )
    app = quicken(await App.open(load_settings(config)))  # retries 1 s apart, then 2 s (scaled)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    retried = RetryLog(times=2)
    logging.getLogger("handlers.telegram").addHandler(retried)
    try:
        async with asyncio.timeout(WAIT):
            await retried.done.wait()
    finally:
        logging.getLogger("handlers.telegram").removeHandler(retried)
    assert not task.done()
    assert app.fatal is None
    stop.set()
    await task
