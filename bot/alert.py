"""What an alert says, as data: the rule, the assets, the dominant side, its figures, the first
line (a contract: "$352M liquidated in 1h, 90% longs") and the lines below it. The outbox stores
this record (as JSON) and each platform renders it at delivery: plain text for the console and
Telegram (`text`), an embed with fields on Discord. Nobody parses rendered text back apart."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Field:
    """A labelled context line ("Top assets: BTC $200M"); Discord shows it as an embed field."""

    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


Line = str | Field


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    assets: tuple[str, ...]
    side: str | None  # "long" / "short": the side that dominates (Discord's colour)
    first_line: str
    lines: tuple[Line, ...] = ()  # context, in display order
    figures: Mapping[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The alert as plain text (console, Telegram before HTML escaping)."""
        return "\n".join([self.first_line, *map(str, self.lines)])

    @property
    def fields(self) -> list[Field]:
        return [line for line in self.lines if isinstance(line, Field)]

    @property
    def plain_lines(self) -> list[str]:
        return [line for line in self.lines if isinstance(line, str)]


def plain(text: str, rule: str = "", side: str | None = None) -> Alert:
    """An alert known only by its text (rows recorded before alerts were structured)."""
    first, *rest = text.split("\n")
    return Alert(rule, (), side, first, tuple(rest))


def text_of(alerts: Sequence[Alert]) -> str:
    """Several alerts of one rule for one chat in one pass, as one message."""
    return "\n\n".join(alert.text for alert in alerts)


def to_json(alerts: Sequence[Alert]) -> str:
    return json.dumps(
        [_encode(alert) for alert in alerts], ensure_ascii=False, separators=(",", ":")
    )


def from_json(stored: str) -> tuple[Alert, ...]:
    return tuple(_decode(item) for item in json.loads(stored))


def _encode(alert: Alert) -> dict[str, Any]:
    return {
        "rule": alert.rule,
        "assets": list(alert.assets),
        "side": alert.side,
        "first_line": alert.first_line,
        "lines": [
            [line.name, line.value] if isinstance(line, Field) else line for line in alert.lines
        ],
        "figures": dict(alert.figures),
    }


def _decode(item: dict[str, Any]) -> Alert:
    return Alert(
        rule=item["rule"],
        assets=tuple(item["assets"]),
        side=item["side"],
        first_line=item["first_line"],
        lines=tuple(line if isinstance(line, str) else Field(*line) for line in item["lines"]),
        figures=item["figures"],
    )
