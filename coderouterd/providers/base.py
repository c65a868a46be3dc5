"""The edge to upstream HTTP: aiohttp's client is used here and nowhere else.

Foreign errors (aiohttp, OSError) become coderouterd UpstreamErrors in this
module, once, so the engine only ever branches on our own tree.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.connector import Connection

from coderouterd.config.model import ProviderConfig
from coderouterd.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from coderouterd.routing.call import Call
from coderouterd.scrub import redact, sent_secrets
from coderouterd.wire.errors import error_type_of, mentions_memory_pressure
from coderouterd.wire.overflow import overflow_in
from coderouterd.wire.retry import retry_after_s

# An error body is read only to classify it and hand it back to the client;
# anything past this is dropped rather than buffered.
_MAX_ERROR_BODY = 256 * 1024
# A whole (non-streamed) answer past this is no answer a model gives (128k
# output tokens are a few MB) but a backend writing without end: the attempt
# fails rather than the daemon's memory filling up until total_s.
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class UpstreamResponse:
    """A successful (2xx) upstream response, read incrementally."""

    __slots__ = ("_done", "_headers", "_provider", "_resp", "_url", "content_type", "status")

    def __init__(
        self,
        provider: str,
        resp: aiohttp.ClientResponse,
        done: Callable[[], None],
        sent: tuple[str, Mapping[str, str]],
    ) -> None:
        self._provider = provider
        self._resp = resp
        # The request's URL and headers, for `redact`: the credentials in
        # them are looked for only when an error needs them.
        self._url, self._headers = sent
        # Tells the adapter this response no longer needs its session; once
        # only, though a caller may both release and abort.
        self._done: Callable[[], None] | None = done
        self.status = resp.status
        self.content_type = resp.headers.get("content-type", "application/json")

    async def chunk(self) -> bytes:
        """The next bytes of the body as they arrive; b"" at the end."""
        try:
            return await self._resp.content.readany()
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamProtocolError(
                self._provider, f"connection lost: {type(exc).__name__}"
            ) from exc

    async def body(self) -> bytes:
        """The whole body, up to MAX_ANSWER_BYTES: past that the connection
        is dropped and the attempt fails as a malformed answer does."""
        parts: list[bytes] = []
        size = 0
        while chunk := await self.chunk():
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                self.abort()
                raise UpstreamProtocolError(
                    self._provider, f"answer over the {MAX_ANSWER_BYTES >> 20} MiB cap"
                )
            parts.append(chunk)
        return b"".join(parts)

    def redact(self, data: bytes) -> bytes:
        """`data` (an error event of the stream) without the credentials the
        request was sent with, should the upstream quote them."""
        return redact(data, sent_secrets(self._headers, self._url))

    def release(self) -> None:
        """Hand the connection back to the pool (body fully read)."""
        self._resp.release()
        self._finish()

    def abort(self) -> None:
        """Drop the connection: used when we stop reading early or are cancelled."""
        self._resp.close()
        self._finish()

    def _finish(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()


class _Connector(aiohttp.TCPConnector):
    """A pool that never hands out a connection the upstream wrote on while
    it was idle (a second response to the last request, a proxy replaying
    one): aiohttp checks only that it is open, and the next request would
    be answered with those bytes. Such a connection's protocol holds them,
    so it says it should close; it is closed and the next one looked at."""

    async def _get(self, *args: Any, **kwargs: Any) -> Connection | None:
        while (conn := await super()._get(*args, **kwargs)) is not None:
            protocol = conn.protocol
            if protocol is None or not protocol.should_close:
                return conn
            conn.close()
        return None


class HttpAdapter(abc.ABC):
    """One provider's pooled client session plus the request/response mapping."""

    def __init__(self, config: ProviderConfig, *, api_key: str | None) -> None:
        self.config = config
        self.name = config.name
        self._api_key = api_key
        self._session: aiohttp.ClientSession | None = None
        # Requests sent whose response is not yet released or aborted: the
        # session must stay open while there is one.
        self._users = 0
        # Set once a reload retired this adapter: told each time it falls idle.
        self._on_idle: Callable[[HttpAdapter], None] | None = None

    @property
    def api_key(self) -> str | None:
        return self._api_key

    @property
    def has_credentials(self) -> bool:
        return self.config.api_key_env is None or bool(self._api_key)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            t = self.config.timeouts
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=t.connect_s, sock_connect=t.connect_s
                ),
                connector=_Connector(limit=0, enable_cleanup_closed=True),
                raise_for_status=False,
                # One session carries every client's requests: a cookie an
                # upstream set for one (a gateway's session) would go out with
                # the next client's, who would be served as the first.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    @abc.abstractmethod
    async def open(self, call: Call, body: bytes) -> UpstreamResponse:
        """Send one attempt's body; return once the upstream's 2xx headers arrived."""

    async def close(self) -> None:
        # Detached first: a request sent while the old session closes gets a
        # new one rather than "Session is closed".
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def retire(self, on_idle: Callable[[HttpAdapter], None]) -> None:
        """No new runtime uses this adapter: call `on_idle` now if no request
        does either, and again whenever the last one that does is done
        (a request begun under the old config may still send through it)."""
        self._on_idle = on_idle
        if not self._users:
            on_idle(self)

    async def close_if_idle(self) -> None:
        """Close the session unless a request sent since the check is using it."""
        if not self._users:
            await self.close()

    def _left(self) -> None:
        self._users -= 1
        if not self._users and self._on_idle is not None:
            self._on_idle(self)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> UpstreamResponse:
        """POST and wait for the response headers; a non-2xx status raises UpstreamStatusError.

        A redirect is not followed: the request, key and prompt, would go to
        whatever host it names (aiohttp keeps x-api-key across origins). It
        is the provider's failure, like any other status but 2xx."""
        self._users += 1
        try:
            resp = await self._client().post(
                _sendable(url, headers), data=body, headers=dict(headers), allow_redirects=False
            )
        except BaseException as exc:
            self._left()
            unsent = _not_sent(self.name, exc)
            if unsent is None:
                raise
            raise unsent from exc
        if 200 <= resp.status < 300:
            return UpstreamResponse(self.name, resp, self._left, (url, headers))
        try:
            raise await self._status_error(resp, url, headers)
        finally:
            self._left()

    async def _status_error(
        self, resp: aiohttp.ClientResponse, url: str, headers: Mapping[str, str]
    ) -> UpstreamError:
        try:
            body = await _error_body(resp)
        except (aiohttp.ClientError, OSError):
            body = b""
        finally:
            resp.close()
        # A gateway may quote the request's headers in its error, which goes
        # on to the client, the logs and the replay record.
        body = redact(body, sent_secrets(headers, url))
        failed = resp.status >= 400
        memory_pressure = failed and mentions_memory_pressure(body)
        return UpstreamStatusError(
            self.name,
            resp.status,
            body,
            resp.headers.get("content-type", "application/json"),
            error_type_of(body),
            memory_pressure=memory_pressure,
            # Out of memory first: a window too large to allocate is that.
            overflow=overflow_in(body) if failed and not memory_pressure else None,
            retry_after_s=retry_after_s(resp.headers, time.time()),
        )


def _sendable(url: str, headers: Mapping[str, str]) -> str:
    """`url` without its user and password when the request carries an
    Authorization of its own, a client's bearer token forwarded: one header
    cannot hold both, aiohttp would refuse to send the request, and the key
    the client chose to send is the one `forward_client_key` asks for. The
    loader refuses the combinations a config makes by itself (config/cross.py)."""
    if "@" not in url or not any(name.lower() == "authorization" for name in headers):
        return url
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


async def _error_body(resp: aiohttp.ClientResponse) -> bytes:
    """The error body up to _MAX_ERROR_BODY, however many pieces it comes
    in: `read(n)` gives only what is buffered."""
    parts: list[bytes] = []
    left = _MAX_ERROR_BODY
    while left and (piece := await resp.content.read(left)):
        parts.append(piece)
        left -= len(piece)
    return b"".join(parts)


def _not_sent(provider: str, exc: BaseException) -> UpstreamError | None:
    """The upstream error a failure to send, or to get the headers, is;
    None for anything else (a cancellation), raised as it is."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamTimeoutError(provider, "connect")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamConnectError(provider, type(exc).__name__)
    if isinstance(exc, ValueError):
        # aiohttp refuses to write a header holding a control character.
        # The loader refuses such an extra_headers value, but a config built
        # in code is not loaded: the attempt fails, the chain goes on.
        return UpstreamConnectError(provider, f"request not sent: {exc}")
    return None
