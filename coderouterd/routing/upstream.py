"""What the engine needs of a provider adapter, as protocols.

The adapters in `providers/` implement these with aiohttp; the routing core
depends only on the protocols, so it never imports an HTTP library.
"""

from __future__ import annotations

from typing import Protocol

from coderouterd.config.model import ProviderConfig
from coderouterd.routing.call import Call


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

    async def open(self, call: Call) -> UpstreamBody: ...
