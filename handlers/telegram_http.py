"""python-telegram-bot's HTTP transport on aiohttp instead of httpx, for the bot's method calls.

PTB lets an application bring its own transport (`BaseRequest`); PTB still builds every
request and turns every answer into its objects and errors (RetryAfter, Forbidden, ...). Why:
httpx/httpcore costs about 2.8 ms of CPU per sendMessage on this project's machine, aiohttp
about 0.2 ms (measured against the fake Bot API), and at paid-broadcast rates (up to 1,000
sends a second) the CPU per send is the limit. Long polling (getUpdates) keeps PTB's default.
"""

from __future__ import annotations

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

READ_TIMEOUT = 5.0  # seconds; PTB's HTTPXRequest defaults
WRITE_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
POOL_TIMEOUT = 1.0
CONNECTIONS = 256  # as PTB's pool for the bot's calls


class AiohttpRequest(BaseRequest):
    """A `BaseRequest` on one aiohttp session, opened by `initialize`, closed by `shutdown`."""

    def __init__(self, connections: int = CONNECTIONS) -> None:
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float:
        return READ_TIMEOUT

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections)
            self._session = aiohttp.ClientSession(connector=connector)

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized")
        read = _value(read_timeout, READ_TIMEOUT)
        connect = _value(connect_timeout, CONNECT_TIMEOUT)
        write = _value(write_timeout, WRITE_TIMEOUT)
        # aiohttp has no separate write timeout: a request may take connect + write + read.
        total = (
            None if None in (read, connect, write) else sum((read or 0, connect or 0, write or 0))
        )
        pool = _value(pool_timeout, POOL_TIMEOUT)
        # aiohttp's `connect` covers waiting for a pooled connection and opening a new one.
        acquire = None if pool is None or connect is None else pool + connect
        timeout = aiohttp.ClientTimeout(total=total, connect=acquire, sock_connect=connect)
        data = _body(request_data)
        headers = {"User-Agent": self.USER_AGENT}
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except TimeoutError as error:
            raise TimedOut from error
        except (aiohttp.ClientError, OSError) as error:
            raise NetworkError(f"aiohttp.{error.__class__.__name__}: {error}") from error


def _value(value: ODVInput[float], default: float) -> float | None:
    return default if isinstance(value, DefaultValue) else value


def _body(request_data: RequestData | None) -> aiohttp.FormData | dict[str, str] | None:
    """Form fields, as PTB's own transport sends them; multipart when there are files."""
    if request_data is None:
        return None
    if not request_data.contains_files:
        return request_data.json_parameters
    form = aiohttp.FormData(request_data.json_parameters)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form
