"""Prometheus metrics, read at scrape time from the plain counters the hot path keeps (see
bot/counters.py): ingest pays no metrics library call per event.

Names and labels are a contract (README "Operating liqbot"): `exchange` is the config name,
`side` is `long`/`short` (the side of the position that was liquidated)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bot.counters import LiquidationCounts
from bot.loop_lag import BUCKETS, LoopLag
from bot.model import SourceHealth
from bot.outbox import OutboxWorker
from bot.runtime import Runtime

SIDES = ("long", "short")


class LiqbotCollector(Collector):
    def __init__(
        self,
        health: Callable[[], Iterable[SourceHealth]],
        liquidations: LiquidationCounts,
        decided: Mapping[str, int],
        workers: Mapping[str, OutboxWorker],
        lag: LoopLag,
        runtime: Runtime,
    ) -> None:
        self.health = health  # one per venue (merged over its connections)
        self.liquidations = liquidations
        self.decided = decided
        self.workers = workers
        self.lag = lag
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        sources = list(self.health())
        yield from self._liquidations(sources)
        yield from self._sources(sources)
        alerts = CounterMetricFamily(
            "liqbot_alerts_total",
            "Alerts decided (recorded for delivery), by rule.",
            labels=["rule"],
        )
        for rule, count in sorted(self.decided.items()):
            alerts.add_metric([rule], count)
        yield alerts
        sent = CounterMetricFamily(
            "liqbot_messages_sent_total",
            "Alert messages delivered, by platform.",
            labels=["platform"],
        )
        for platform, worker in self.workers.items():
            sent.add_metric([platform], worker.sent)
        yield sent
        restarts = CounterMetricFamily(
            "liqbot_task_restarts_total", "Restarts of supervised tasks.", labels=["task"]
        )
        for task, count in self.runtime.supervisor.restarts().items():
            restarts.add_metric([task], count)
        yield restarts
        yield GaugeMetricFamily(
            "liqbot_outbox_pending",
            "Outbox rows waiting to be sent (counted every second).",
            value=self.runtime.outbox_pending,
        )
        yield self._lag()

    def _liquidations(self, sources: list[SourceHealth]) -> Iterator[Metric]:
        count = CounterMetricFamily(
            "liqbot_liquidations_total",
            "Liquidation events received, by exchange and liquidated side.",
            labels=["exchange", "side"],
        )
        usd = CounterMetricFamily(
            "liqbot_liquidations_usd_total",
            "Notional USD of the liquidations received, by exchange and liquidated side.",
            labels=["exchange", "side"],
        )
        for source in sources:
            for side in SIDES:
                events, notional = self.liquidations.get(source.venue, side)
                count.add_metric([source.venue, side], events)
                usd.add_metric([source.venue, side], notional)
        yield count
        yield usd

    def _sources(self, sources: list[SourceHealth]) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "liqbot_ws_connected",
            "1 while the exchange's stream is connected.",
            labels=["exchange"],
        )
        reconnects = CounterMetricFamily(
            "liqbot_ws_reconnects_total", "Stream reconnections.", labels=["exchange"]
        )
        errors = CounterMetricFamily(
            "liqbot_parse_errors_total",
            "Frames that were not valid JSON or held a malformed liquidation "
            "(status --json: sources.<exchange>.parse_errors).",
            labels=["exchange"],
        )
        for source in sources:
            connected.add_metric([source.venue], int(source.connected))
            reconnects.add_metric([source.venue], source.reconnects)
            errors.add_metric([source.venue], source.parse_errors)
        yield connected
        yield reconnects
        yield errors

    def _lag(self) -> Metric:
        lag = self.lag
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip((*BUCKETS, float("inf")), lag.bucket_counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        return HistogramMetricFamily(
            "liqbot_event_loop_lag_seconds",
            "How late the event loop woke a task sleeping a fixed interval.",
            buckets=buckets,
            sum_value=lag.sum,
        )


def registry(collector: LiqbotCollector) -> CollectorRegistry:
    """A registry of its own (not the global one: tests build several apps in one process),
    with the usual process_* and python_info metrics next to liqbot's."""
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
