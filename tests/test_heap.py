"""Collector pauses: a bulk build runs without collections and ends out of the collector's sight."""

from __future__ import annotations

import gc
from typing import Any

from bot import heap


def test_a_bulk_build_runs_without_collections_and_is_frozen_after() -> None:
    frozen = gc.get_freeze_count()
    collections: list[int] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        with heap.bulk_build():
            built = [[number] for number in range(50_000)]  # would start collections
            assert not gc.isenabled()
        assert gc.isenabled()
    finally:
        gc.callbacks.remove(seen)
    assert collections == []
    assert gc.get_freeze_count() >= frozen + len(built)
