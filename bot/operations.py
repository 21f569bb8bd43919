"""The operator side of `liqbot run`, built once in the composition root: the loop-lag sampler
(started by `App.open`, so it has start-up's samples), the runtime row (supervised tasks), and
the HTTP server when `[metrics] listen` is set."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bot.config import MetricsSettings
from bot.core import Core
from bot.loop_lag import LoopLag
from bot.metrics import LiqbotCollector, registry
from bot.model import SourceHealth
from bot.operator_http import OperatorServer
from bot.runtime import Runtime
from bot.supervisor import Supervisor
from bot.writer import Writer


class Operations:
    def __init__(
        self,
        settings: MetricsSettings,
        supervisor: Supervisor,
        core: Core,
        health: Callable[[], Iterable[SourceHealth]],
        writer: Writer,
        lag: LoopLag,
    ) -> None:
        self.lag = lag
        self.runtime = Runtime(
            supervisor,
            health,
            core.recorder,
            self.lag,
            writer,
            list(core.workers),
            supervisor.clock,
        )
        self.server: OperatorServer | None = None
        if settings.listen is not None:
            collector = LiqbotCollector(
                health,
                core.liquidation_counts,
                core.engine.decided,
                core.workers,
                self.lag,
                self.runtime,
            )
            self.server = OperatorServer(settings.listen, registry(collector), self.runtime)
        supervisor.add("loop-lag", self.lag.run)
        supervisor.add("runtime", self.runtime.run)

    async def start(self) -> None:
        """Before the supervisor starts: a bad listen address stops `run` at once."""
        if self.server is not None:
            await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
