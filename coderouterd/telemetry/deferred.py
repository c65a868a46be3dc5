"""Work on request summaries that need not happen on the request path.

Drift verdicts and the /metrics counters read every request's summary, but
nothing about them is urgent: the request path only appends the summary to
a list (each line of Python there costs a request several times its
microbenchmark at full load), and once a second, before /metrics or
`ctl status` is answered, before a reload swaps the config, and at
shutdown, the list is handed to each consumer in one batch. So every
summary in a batch finished under the config in force when it is counted:
its prices, its provider's model.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Sequence
from typing import Any

from coderouterd.routing.records import BaseObserver, RequestSummary
from coderouterd.tasks import cancel_and_wait, spawn
from coderouterd.telemetry import events

Consumer = Callable[[Sequence[RequestSummary]], None]

INTERVAL_S = 1.0
# Handed over at once past this many, so the list stays small even if the
# loop is held up.
_MAX_PENDING = 4096


class Deferred(BaseObserver):
    def __init__(self, consumers: Sequence[Consumer], log: Any) -> None:
        self._consumers = tuple(consumers)
        self._log = log
        self._pending: list[RequestSummary] = []
        self._task: asyncio.Task[None] | None = None

    def request_finished(self, summary: RequestSummary) -> None:
        self._pending.append(summary)
        if len(self._pending) >= _MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        """Hand what is queued to every consumer now.

        Whoever asks (a /metrics scrape, a request that filled the list) may
        have a request id bound for its log lines; the batch is no part of
        that request, so the consumers run in a context of their own, and
        what they log (a drift verdict) carries no request id.
        """
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        contextvars.Context().run(self._hand_over, batch)

    def _hand_over(self, batch: Sequence[RequestSummary]) -> None:
        for consume in self._consumers:
            try:
                consume(batch)
            except Exception as exc:  # one consumer's bug must not cost the others
                self._log.exception(events.TELEMETRY_DEFERRED_FAILED, error=repr(exc))

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._run(), name="telemetry:deferred")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL_S)
            self.flush()
