"""The operator HTTP server (`[metrics] listen`): /metrics for Prometheus, /healthz for a
liveness probe, /readyz for a readiness probe. Handlers only read in-memory state: a probe
never waits on SQLite."""

from __future__ import annotations

import logging
import os

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from bot.errors import StartupError
from bot.runtime import Runtime

log = logging.getLogger(__name__)


class OperatorServer:
    def __init__(self, listen: tuple[str, int], registry: CollectorRegistry, runtime: Runtime):
        self.listen = listen
        self.registry = registry
        self.runtime = runtime
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    @property
    def port(self) -> int:
        """The port listened on (the OS picks one for port 0)."""
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        """Listen, or stop the process with one line: a probe address that cannot be served is
        a misconfiguration, not something to run without."""
        host, port = self.listen
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError as error:
            await self._runner.cleanup()
            # asyncio wraps the bind error's text; name resolution errors have errno < 0
            code = error.errno or 0
            cause = os.strerror(code) if code > 0 else error.strerror or str(error)
            raise StartupError(f"metrics.listen: cannot listen on {host}:{port}: {cause}") from None
        log.info("operator endpoints on http://%s:%d (/metrics, /healthz, /readyz)", host, port)

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        """The text format Prometheus asks for in Accept (OpenMetrics or classic text)."""
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(self.registry), headers={"Content-Type": content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        """Answered by the event loop itself: an answer proves the process and its loop run."""
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        body = self.runtime.readiness_json()
        return web.json_response(body, status=200 if body["ready"] else 503)
