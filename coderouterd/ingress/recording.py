"""The replay record of a routed request: the response its client got.

Made once, however the request ends: answered, answered by no provider,
cut short by its client leaving or by the shutdown (with what was sent
until then).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from coderouterd.ingress.inflight import InFlightEntry
from coderouterd.routing.call import Call
from coderouterd.state.replay import ResponseCapture
from coderouterd.telemetry import events
from coderouterd.telemetry.logging import get_logger

if TYPE_CHECKING:
    from coderouterd.daemon import Daemon

_log = get_logger()


class ReplayRecording:
    """`capture` is None when the request's profile keeps no records; the
    provider recorded is the one the request's report names (`entry`), so
    it is read once the engine has made that report."""

    def __init__(
        self,
        daemon: Daemon,
        call: Call,
        headers: Mapping[str, str],
        capture: ResponseCapture | None,
        entry: InFlightEntry,
    ) -> None:
        self._daemon = daemon
        self._call = call
        self._headers = headers
        self.capture = capture
        self._entry = entry
        self._done = False
        # Made just before the engine starts timing the request: the record's
        # time is taken from it as the request row's is from the engine's.
        self._started = daemon.clock.monotonic() if capture is not None else 0.0

    def done(self, rest: bytes = b"") -> None:
        """Record the request with the response captured, and `rest` after it
        (a whole reply the capture did not see). Nothing of it may fail the
        request: an error is logged."""
        if self.capture is None or self._done:
            return
        self._done = True
        try:
            if rest:
                self.capture.add(rest)
            self._daemon.record_replay(
                self._call,
                self._headers,
                self.capture,
                self._entry.answered,
                started=self._started,
            )
        except Exception as exc:
            _log.exception(events.REQUEST_BOOKKEEPING_FAILED, error=repr(exc))
