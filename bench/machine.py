"""What every benchmark prints about the host it ran on."""

from __future__ import annotations

import math
import time


def cpu_check() -> float:
    """Milliseconds for a fixed pure-Python loop, best of five: how fast this host runs right
    now (a shared VM's speed can drift by half from one minute to the next; lower is faster)."""
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return best * 1000
