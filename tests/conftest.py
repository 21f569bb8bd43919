"""Shared fixtures: frames saved in the venues' wire formats."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.harness import Fakes, started_fakes

FRAMES = Path(__file__).parent / "frames"


def load_frame(name: str) -> Any:
    return json.loads((FRAMES / name).read_text())


@pytest.fixture
def frame() -> Any:
    return load_frame


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async for started in started_fakes():
        yield started


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for tests that talk to the fakes directly."""
    async with aiohttp.ClientSession() as client:
        yield client
