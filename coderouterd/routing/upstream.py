"""What the engine needs of a provider, as protocols.

The adapters in `providers/` implement the I/O side with aiohttp; codecs in
`translate/` implement the pure side (request bodies, stream transcoding).
The routing core depends only on these protocols, so it never imports an
HTTP library.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from coderouterd.config.model import ProviderConfig
from coderouterd.routing.call import Call
from coderouterd.translate.types import Degradation
from coderouterd.wire.usage import Usage


class UpstreamBody(Protocol):
    """A successful upstream response, read incrementally."""

    status: int
    content_type: str

    async def chunk(self) -> bytes: ...

    async def body(self) -> bytes: ...

    def release(self) -> None: ...

    def abort(self) -> None: ...


class Adapter(Protocol):
    name: str
    config: ProviderConfig

    async def open(self, call: Call, body: bytes) -> UpstreamBody: ...


class Out(NamedTuple):
    """One frame for the client, in the client's dialect."""

    raw: bytes
    # Content frames mark the commit point: once one is sent, no fallback.
    content: bool


class Transcoder(Protocol):
    """Pure state machine from upstream body bytes to client frames, for one attempt."""

    # Name of the upstream's terminal frame, for the error when it never came.
    final_event: str

    @property
    def repairs(self) -> int:
        """Tool calls lifted out of the model's text so far."""
        ...

    @property
    def usage_estimated(self) -> bool:
        """Whether the usage had to be estimated (the upstream reported none)."""
        ...

    def feed(self, chunk: bytes) -> list[Out]: ...

    def end(self) -> list[Out]:
        """The upstream body ended cleanly; flush what is left."""
        ...

    @property
    def finished(self) -> bool:
        """The stream's terminal frame (message_stop / [DONE]) was produced."""
        ...

    @property
    def upstream_error(self) -> str | None:
        """The error type of an error the upstream reported inside the stream."""
        ...

    @property
    def upstream_error_body(self) -> bytes:
        """That error event's own data (JSON), none of the stream before it."""
        ...

    @property
    def usage(self) -> Usage | None: ...


@runtime_checkable
class Holding(Protocol):
    """A transcoder whose output filters may hold back the upstream's content
    (a call printed as text until it is whole, reasoning until `</think>`):
    it tells when that content began, though no content frame went out yet.
    One that holds nothing need not say: its first content frame is the
    upstream's."""

    @property
    def produced(self) -> bool:
        """The upstream sent a content frame (text, reasoning, a tool call, a
        finish reason), whether or not it has gone out to the client yet."""
        ...


class Unary(NamedTuple):
    body: bytes
    content_type: str
    usage: Usage | None
    repairs: int = 0
    usage_estimated: bool = False


class Codec(Protocol):
    """How one client dialect talks to one provider: pure, no I/O."""

    def request(self, call: Call) -> tuple[bytes, list[Degradation]]: ...

    def transcoder(self, call: Call) -> Transcoder: ...

    def unary(self, body: bytes, call: Call) -> Unary: ...

    def error_body(self, status: int, body: bytes) -> bytes:
        """An upstream error body re-enveloped in the client's dialect."""
        ...


class ProviderRoute(NamedTuple):
    adapter: Adapter
    # Keyed by client dialect: "anthropic" or "openai".
    codecs: dict[str, Codec]
