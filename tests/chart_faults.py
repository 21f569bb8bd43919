"""Renders that fail, for the chart worker process: in a module of their own, which the worker
imports by name to run one, so it does not import a whole test module (the bot, its platform
libraries) to get there."""

from __future__ import annotations


def broken(series: object) -> bytes:
    """A render that fails in the worker process."""
    raise ValueError("no fonts here")
