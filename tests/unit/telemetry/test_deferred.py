"""Request summaries queued off the request path and handed over in batches."""

from __future__ import annotations

from collections.abc import Sequence

from structlog.testing import capture_logs

from coderouterd.routing.records import RequestSummary
from coderouterd.telemetry.deferred import Deferred
from coderouterd.telemetry.logging import get_logger


def summary(n: int) -> RequestSummary:
    return RequestSummary(
        request_id=f"r{n}",
        dialect="anthropic",
        profile="p",
        requested_model=None,
        provider=None,
        attempts=(),
        status=200,
        stream=False,
        ttfb_ms=None,
        total_ms=1.0,
        usage=None,
    )


async def test_batches_reach_every_consumer_even_when_one_fails() -> None:
    seen: list[list[str]] = []

    def broken(batch: Sequence[RequestSummary]) -> None:
        raise ValueError("bug")

    def keep(batch: Sequence[RequestSummary]) -> None:
        seen.append([s.request_id for s in batch])

    deferred = Deferred([broken, keep], get_logger())
    deferred.request_finished(summary(1))
    deferred.request_finished(summary(2))
    assert seen == []  # nothing on the request path
    with capture_logs() as logs:
        deferred.flush()
    assert seen == [["r1", "r2"]]
    assert [e["event"] for e in logs] == ["telemetry.deferred_failed"]
    deferred.flush()
    assert seen == [["r1", "r2"]]  # nothing new, nothing handed over
    deferred.start()
    deferred.request_finished(summary(3))
    await deferred.close()  # what is queued at shutdown is not lost
    assert seen == [["r1", "r2"], ["r3"]]


def test_a_long_queue_is_handed_over_at_once() -> None:
    seen: list[int] = []
    deferred = Deferred([lambda batch: seen.append(len(batch))], get_logger())
    for n in range(4096):
        deferred.request_finished(summary(n))
    assert seen == [4096]
