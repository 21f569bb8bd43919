"""The operator endpoints of a real `liqbot run` (a subprocess, as operators run it) against the
fake venues, read with a real HTTP client and Prometheus' own text parser: metric values equal
what the fakes sent, readiness follows the venues down and up, liveness holds throughout."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlite_utils import Database

from bot.cli import main
from bot.clock import now_ms
from storage.runtime import RuntimeRow, read_runtime
from tests.fakes import all_liquidation, detail, force_order, liquidation_orders
from tests.harness import WAIT, Fakes, write_config

T = TypeVar("T")
POLL = 0.02  # seconds between probe reads while waiting for a state another process reaches
VENUES = ("binance", "bybit", "okx")
# Whale alerts only (one $182K liquidation fires one); funding and OI rules off.
DEFAULTS = (
    "[defaults]\nsingle_liquidation_usd = 100000\nfunding_rate_8h = 0\noi_change = 0\n"
    "min_liquidations_usd = 100000000000\n"
)

# Some of the tasks `liqbot run` supervises (collectors are numbered per venue connection).
SUPERVISED = {
    "recorder",
    "chats",
    "engine",
    "outbox-console",
    "collector-binance-0",
    "collector-okx-0",
    "binance-funding",
    "bybit-oi",
    "okx-instruments",
    "clock",
    "prune",
    "digests",
    "loop-lag",
    "runtime",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def operator_config(tmp_path: Path, fakes: Fakes, port: int) -> Path:
    path = write_config(tmp_path, fakes)
    path.write_text(f'{path.read_text()}\n[metrics]\nlisten = "127.0.0.1:{port}"\n\n{DEFAULTS}')
    return path


class Run:
    """`liqbot run` in a subprocess; its stdout (console alerts) and stderr (logs) are read
    continuously so that neither pipe fills."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.out: list[str] = []
        self.err: list[str] = []
        self.changed = asyncio.Event()
        assert process.stdout is not None and process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(process.stdout, self.out)),
            asyncio.create_task(self._read(process.stderr, self.err)),
        ]

    async def _read(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode())
            self.changed.set()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        while not condition():
            assert self.process.returncode is None, "".join(self.err)
            self.changed.clear()
            await self.changed.wait()

    async def wait_listening(self) -> None:
        await self.wait_for(lambda: any("operator endpoints on" in line for line in self.err))

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await self.process.wait()
        await asyncio.gather(*self._readers)
        return code


@contextlib.asynccontextmanager
async def liqbot_run(config: Path) -> AsyncIterator[Run]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(config),
        "run",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    run = Run(process)
    try:
        yield run
    finally:
        if process.returncode is None:
            process.kill()
        await run.stop()


async def liqbot_status(config: Path, *args: str) -> str:
    """`liqbot status` run by this process (the CLI's own entry point) on the database the
    `run` subprocess writes: a reader in another process, without a Python start per read."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--config", str(config), "status", *args])
    assert code == 0, err.getvalue()
    return out.getvalue()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(session: aiohttp.ClientSession, base: str) -> Samples:
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


async def probe(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with session.get(url) as response:
        return response.status, await response.json()


async def eventually(read: Callable[[], Awaitable[T]], condition: Callable[[T], bool]) -> T:
    """Read until `condition` holds: the state is another process's, so it is polled."""
    while True:
        result = await read()
        if condition(result):
            return result
        await asyncio.sleep(POLL)


async def wait_until_probe(session: aiohttp.ClientSession, url: str, status: int) -> dict[str, Any]:
    """Read `url` until it answers `status`; its body."""
    _, body = await eventually(lambda: probe(session, url), lambda answer: answer[0] == status)
    return body


async def wait_until_scraped(
    session: aiohttp.ClientSession, base: str, condition: Callable[[Samples], bool]
) -> Samples:
    return await eventually(lambda: scrape(session, base), condition)


async def status_json(config: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(await liqbot_status(config, "--json"))
    return result


def readme_metric_names() -> set[str]:
    """Every metric the README's "Operating liqbot" section (and its alert rules) names."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("\n## Operating liqbot\n")[1].split("\n## ")[0]
    names = set(re.findall(r"\bliqbot_[a-z_]+", section))
    assert len(names) >= 10
    return names


def exposed_names(samples: Samples) -> set[str]:
    names = {name for name, _ in samples}
    return names | {name.removesuffix("_bucket") for name in names if name.endswith("_bucket")}


async def test_metrics_readiness_and_liveness_of_a_real_run(
    tmp_path: Path, fakes: Fakes, session: aiohttp.ClientSession
) -> None:
    binance, bybit, okx = fakes
    port = free_port()
    config = operator_config(tmp_path, fakes, port)
    base = f"http://127.0.0.1:{port}"
    async with liqbot_run(config) as run, asyncio.timeout(4 * WAIT):
        await run.wait_listening()
        await binance.wait_for_connections(1)
        await bybit.wait_for_subscribed({"allLiquidation.BTCUSDT", "allLiquidation.SOLUSDT"})
        await okx.wait_for_subscribed({"liquidation-orders:SWAP"})
        ready = await wait_until_probe(session, f"{base}/readyz", 200)
        tasks = ready.pop("tasks")
        assert ready == {
            "ready": True,
            "reasons": [],
            "storage": {"writable": True, "error": None},
            "venues": dict.fromkeys(VENUES, True),
        }
        assert set(tasks.values()) == {"running"}  # every long-running task is supervised
        assert set(tasks) >= SUPERVISED

        ts = now_ms()
        await binance.push(force_order("BTCUSDT", "SELL", "2", "91000", ts))  # long, $182K
        await binance.push(force_order("ETHUSDT", "BUY", "10", "3000", ts))  # short, $30K
        await bybit.push(all_liquidation("SOLUSDT", "Sell", "100", "150", ts))  # short, $15K
        await bybit.push(all_liquidation("BTCUSDT", "Buy", "0.5", "90000", ts))  # long, $45K
        await okx.push(  # 100 contracts of 0.01 BTC: long, $90K
            liquidation_orders("BTC-USDT-SWAP", [detail("sell", "long", "100", "90000", ts)])
        )
        await okx.push("{broken")
        samples = await wait_until_scraped(
            session,
            base,
            lambda s: (
                sum(v for (name, _), v in s.items() if name == "liqbot_liquidations_total") == 5
                and value(s, "liqbot_parse_errors_total", exchange="okx") == 1
                and value(s, "liqbot_messages_sent_total", platform="console") == 1
                and value(s, "liqbot_outbox_pending") == 0
            ),
        )
        expected_events = {
            ("binance", "long"): (1, 182_000.0),
            ("binance", "short"): (1, 30_000.0),
            ("bybit", "long"): (1, 45_000.0),
            ("bybit", "short"): (1, 15_000.0),
            ("okx", "long"): (1, 90_000.0),
            ("okx", "short"): (0, 0.0),
        }
        for (exchange, side), (events, usd) in expected_events.items():
            labels = {"exchange": exchange, "side": side}
            assert value(samples, "liqbot_liquidations_total", **labels) == events
            assert value(samples, "liqbot_liquidations_usd_total", **labels) == usd
        for exchange in VENUES:
            assert value(samples, "liqbot_ws_connected", exchange=exchange) == 1
            assert value(samples, "liqbot_ws_reconnects_total", exchange=exchange) == 0
        assert value(samples, "liqbot_alerts_total", rule="whale") == 1
        assert [name for name, _ in samples if name == "liqbot_alerts_total"] == [
            "liqbot_alerts_total"
        ]
        assert any("$182K" in line for line in run.out)  # the alert the console sent
        for task in SUPERVISED:
            assert value(samples, "liqbot_task_restarts_total", task=task) == 0
        assert readme_metric_names() <= exposed_names(samples)
        openmetrics = {"Accept": "application/openmetrics-text; version=1.0.0"}
        async with session.get(f"{base}/metrics", headers=openmetrics) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert (await response.text()).endswith("# EOF\n")
        lag_count = value(samples, "liqbot_event_loop_lag_seconds_count")
        assert lag_count > 0
        assert value(samples, "liqbot_event_loop_lag_seconds_bucket", le="+Inf") == lag_count

        # The parse-error counter is the one `status --json` reports (once `run` has written
        # its health row, at most a second later), venue by venue.
        status = await eventually(
            lambda: status_json(config), lambda s: s["sources"]["okx"]["parse_errors"] == 1
        )
        samples = await scrape(session, base)
        for exchange in VENUES:
            assert (
                value(samples, "liqbot_parse_errors_total", exchange=exchange)
                == status["sources"][exchange]["parse_errors"]
            )

        # Every venue goes down: not ready, still alive.
        for fake in fakes:
            await fake.stop()
        down = await wait_until_probe(session, f"{base}/readyz", 503)
        assert down["ready"] is False
        assert down["reasons"] == ["no venue connected (binance, bybit, okx)"]
        assert down["venues"] == dict.fromkeys(VENUES, False)
        assert await probe(session, f"{base}/healthz") == (200, {"alive": True})
        samples = await scrape(session, base)
        assert [value(samples, "liqbot_ws_connected", exchange=e) for e in VENUES] == [0, 0, 0]

        # They come back (same ports): ready again, every reconnection counted once, as
        # `status --json` counts them (Bybit's topics are spread over several connections).
        for fake in fakes:
            await fake.start()
        back = await wait_until_probe(session, f"{base}/readyz", 200)
        assert back["reasons"] == []
        status = await eventually(
            lambda: status_json(config),
            lambda s: all(
                s["sources"][e]["connected"] and s["sources"][e]["reconnects"] for e in VENUES
            ),
        )
        samples = await scrape(session, base)
        for exchange in VENUES:
            assert value(samples, "liqbot_ws_connected", exchange=exchange) == 1
            reconnects = value(samples, "liqbot_ws_reconnects_total", exchange=exchange)
            assert reconnects == status["sources"][exchange]["reconnects"] >= 1
        assert value(samples, "liqbot_ws_reconnects_total", exchange="binance") == 1
        assert await probe(session, f"{base}/healthz") == (200, {"alive": True})
        assert await run.stop() == 0


async def test_status_shows_the_runtime_of_a_real_run_and_its_end(
    tmp_path: Path, fakes: Fakes, session: aiohttp.ClientSession
) -> None:
    port = free_port()
    config = operator_config(tmp_path, fakes, port)
    async with liqbot_run(config) as run, asyncio.timeout(2 * WAIT):
        await run.wait_listening()
        await wait_until_probe(session, f"http://127.0.0.1:{port}/readyz", 200)
        database = Database(tmp_path / "liqbot.db")  # a reader, as `status` is

        async def lag_recorded() -> RuntimeRow | None:
            return read_runtime(database)

        await eventually(
            lag_recorded, lambda row: row is not None and row.loop_lag_p99_ms is not None
        )
        status = await status_json(config)
        runtime = status["runtime"]
        assert runtime["running"] is True
        assert set(runtime["tasks"]) >= SUPERVISED
        assert set(runtime["tasks"].values()) == {"running"}
        assert runtime["outbox_pending"] == 0
        lag = runtime["loop_lag_ms"]
        assert 0 <= lag["p50"] <= lag["p99"] <= lag["max"]
        assert runtime["started_at"] <= status["generated_at"]
        text = await liqbot_status(config)
        assert text.splitlines()[1].startswith("Runtime: up ")
        assert text.splitlines()[1].endswith(", outbox 0 pending, all tasks running")
        assert await run.stop() == 0
    runtime = json.loads(await liqbot_status(config, "--json"))["runtime"]
    assert (runtime["running"], runtime["tasks"], runtime["started_at"]) == (False, {}, None)
    text = await liqbot_status(config)
    assert text.splitlines()[1].startswith("Runtime: not running (last seen ")


async def test_a_listen_address_in_use_stops_run_with_one_line(
    tmp_path: Path, fakes: Fakes
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = operator_config(tmp_path, fakes, port)
        async with liqbot_run(config) as run, asyncio.timeout(WAIT):
            code = await run.process.wait()
    assert code == 1
    assert run.err[-1] == (
        f"liqbot run: metrics.listen: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )
    assert not any("Traceback" in line for line in run.err), run.err


@pytest.mark.parametrize(
    ("listen", "problem"),
    [
        ("9108", 'expected "host:port", such as "127.0.0.1:9108"'),
        (9108, 'expected "host:port", such as "127.0.0.1:9108"'),
        (":9108", 'expected "host:port", such as "127.0.0.1:9108"'),
        ("localhost:http", 'expected "host:port", such as "127.0.0.1:9108"'),
        ("localhost:0", "port 0 is out of range (1-65535)"),
        ("localhost:70000", "port 70000 is out of range (1-65535)"),
        ("local host:9108", "'local host' is not a host name or address"),
    ],
)
def test_listen_must_be_host_and_port(listen: object, problem: str) -> None:
    from bot.config import ConfigError, settings_from_dict

    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"metrics": {"listen": listen}})
    assert caught.value.problems == [f"metrics.listen: {problem}"]


def test_listen_is_off_unless_set_and_takes_ipv6_in_brackets() -> None:
    from bot.config import settings_from_dict

    assert settings_from_dict({}).metrics.listen is None
    assert settings_from_dict({"metrics": {"listen": "0.0.0.0:9108"}}).metrics.listen == (
        "0.0.0.0",
        9108,
    )
    assert settings_from_dict({"metrics": {"listen": "[::1]:9108"}}).metrics.listen == ("::1", 9108)
