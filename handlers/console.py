"""The console channel: alerts printed to stdout. It is what a new user sees first, when no
chat platform is configured."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.model import OutboxRow
from bot.outbox import DeliveryError, Progress

PLATFORM = "console"
CHAT_ID = "stdout"


class ConsoleSender:
    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream

    async def __call__(self, row: OutboxRow, progress: Progress) -> None:
        try:
            self.stream.write(f"{row.text}\n\n")
            self.stream.flush()
        except OSError as error:  # stdout closed (a pipe whose reader went away)
            raise DeliveryError(f"console: {error}", permanent=True) from None
