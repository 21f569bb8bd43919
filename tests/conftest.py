"""Shared fixtures: frames saved in the venues' wire formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FRAMES = Path(__file__).parent / "frames"


def load_frame(name: str) -> Any:
    return json.loads((FRAMES / name).read_text())


@pytest.fixture
def frame() -> Any:
    return load_frame
