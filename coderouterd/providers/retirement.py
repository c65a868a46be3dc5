"""Adapters a reload replaced, each closed as soon as no request uses it.

Requests begun under the old config keep the adapters they started with, so
a retired adapter's session stays open while a response it opened is being
read; the adapter says when its last one is released or aborted. One such
request that sends through it only after that opens a new session, closed
the same way once it is done.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable

from coderouterd.providers.base import HttpAdapter
from coderouterd.tasks import spawn


class Retirement:
    def __init__(self) -> None:
        # Weak: a retired adapter matters only while something (an old
        # runtime a request runs under, a probe) can still send through it.
        self._retired: weakref.WeakSet[HttpAdapter] = weakref.WeakSet()
        self._closing: set[asyncio.Task[None]] = set()
        self._shut = False

    def retire(self, adapters: Iterable[HttpAdapter]) -> None:
        for adapter in adapters:
            self._retired.add(adapter)
            adapter.retire(self._idle)

    def _idle(self, adapter: HttpAdapter) -> None:
        if self._shut:
            return
        # Checked again when the task runs: a request may have taken the
        # session in between.
        task = spawn(adapter.close_if_idle(), name=f"adapter:close:{adapter.name}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """At shutdown: every retired adapter, in use or not."""
        self._shut = True
        # A close that failed must not keep the others open.
        await asyncio.gather(*self._closing, return_exceptions=True)
        for adapter in list(self._retired):
            await adapter.close()
