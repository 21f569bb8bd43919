"""The supervisor: crashes are logged, counted and restarted with backoff; repeated failures
mark a task failed; Fatal ends the run; stop cancels and awaits everything."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.supervisor import MAX_CONSECUTIVE_FAILURES, Fatal, Supervisor
from tests.clock import ManualClock


async def test_a_crashed_task_is_logged_counted_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    runs: list[int] = []
    second_run = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("boom mid-flight")
        second_run.set()
        await asyncio.Event().wait()

    supervisor = Supervisor(clock)
    supervisor.add("flaky", flaky)
    with caplog.at_level(logging.WARNING, "bot.supervisor"):
        supervisor.start()
        await clock.advance(0)
        assert supervisor.states() == {"flaky": "restarting"}
        assert supervisor.restarts() == {"flaky": 1}
        await clock.advance(1.3)  # the first backoff is 1 s +- 20%
        await asyncio.wait_for(second_run.wait(), 1)
    assert supervisor.states() == {"flaky": "running"}
    crash = next(r for r in caplog.records if r.message == "task flaky crashed")
    # The traceback travels as exc_info, or as text once the redaction filter formatted it.
    traceback = crash.exc_text or logging.Formatter().formatException(crash.exc_info)  # type: ignore[arg-type]
    assert traceback.endswith("RuntimeError: boom mid-flight")
    await supervisor.stop()


async def test_a_task_that_keeps_failing_is_marked_failed() -> None:
    clock = ManualClock()
    attempts = 0

    async def broken() -> None:
        nonlocal attempts
        attempts += 1
        raise OSError("no")

    supervisor = Supervisor(clock)
    supervisor.add("broken", broken)
    supervisor.start()
    await clock.advance(600)
    assert attempts == MAX_CONSECUTIVE_FAILURES
    assert supervisor.states() == {"broken": "failed"}
    assert supervisor.restarts() == {"broken": MAX_CONSECUTIVE_FAILURES - 1}
    await supervisor.stop()


async def test_fatal_is_reported_and_stop_cancels_the_rest() -> None:
    clock = ManualClock()
    cancelled = asyncio.Event()

    async def steady() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def storage() -> None:
        raise Fatal("storage: liqbot.db is not writable")

    supervisor = Supervisor(clock)
    supervisor.add("steady", steady)
    supervisor.add("storage", storage)
    supervisor.start()
    fatal = await asyncio.wait_for(supervisor.wait_fatal(), 1)
    assert str(fatal) == "storage: liqbot.db is not writable"
    assert supervisor.states() == {"steady": "running", "storage": "failed"}
    await supervisor.stop()
    assert cancelled.is_set()


def test_names_are_unique() -> None:
    supervisor = Supervisor()

    async def task() -> None:
        return None

    supervisor.add("x", task)
    with pytest.raises(ValueError, match="'x' is supervised already"):
        supervisor.add("x", task)
