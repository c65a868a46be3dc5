"""A whole reply goes out before the request's report and replay record,
which cannot fail it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from coderouterd.clock import SystemClock
from coderouterd.ingress.delivery import deliver
from coderouterd.routing.call import Call
from coderouterd.routing.plan import Plan
from coderouterd.routing.progress import Progress
from coderouterd.routing.records import BaseObserver, RequestSummary
from coderouterd.telemetry import events

# What runs once the reply is sent, given the request and the response: the
# report's observer, and the replay record.
Steps = Callable[[web.Request, web.Response], tuple[Callable[[], None], Callable[[], None]]]
Serve = Callable[[Steps], Awaitable[str]]


class Reported(BaseObserver):
    def __init__(self, step: Callable[[], None]) -> None:
        self._step = step

    def request_finished(self, summary: RequestSummary) -> None:
        self._step()


def progress_of(report: Callable[[], None]) -> Progress:
    call = Call("req", "anthropic", {}, {}, stream=False, requested_model="m", profile="p")
    progress = Progress(call, Plan("p", (), ()), SystemClock(), Reported(report))
    progress.finish(200)
    return progress


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(steps: Steps) -> str:
        async def handle(request: web.Request) -> web.StreamResponse:
            response = web.Response(body=b'{"ok":true}', content_type="application/json")
            report, record = steps(request, response)
            await deliver(
                request, response, wait_s=5.0, progress=progress_of(report), record=record
            )
            return response

        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_the_reply_is_sent_before_the_report_and_the_record(serve: Serve) -> None:
    seen: list[tuple[bool, int]] = []

    def steps(
        request: web.Request, response: web.Response
    ) -> tuple[Callable[[], None], Callable[[], None]]:
        def step() -> None:
            # Prepared and its body handed to the transport, all of it.
            transport = request.transport
            assert transport is not None
            seen.append((response.prepared, transport.get_write_buffer_size()))

        return step, step

    url = await serve(steps)
    async with aiohttp.ClientSession() as http, http.post(url, data=b"{}") as resp:
        assert resp.status == 200 and await resp.json() == {"ok": True}
    assert seen == [(True, 0), (True, 0)]


async def test_a_failing_report_is_logged_and_the_record_still_made(serve: Serve) -> None:
    ran: list[str] = []

    def steps(
        request: web.Request, response: web.Response
    ) -> tuple[Callable[[], None], Callable[[], None]]:
        def broken() -> None:
            raise RuntimeError("disk on fire")

        return broken, lambda: ran.append("after")

    url = await serve(steps)
    with capture_logs() as logs:
        async with aiohttp.ClientSession() as http, http.post(url, data=b"{}") as resp:
            assert resp.status == 200 and await resp.json() == {"ok": True}
            # The connection stays usable: nothing was written after the reply.
            async with http.post(url, data=b"{}") as again:
                assert again.status == 200 and await again.json() == {"ok": True}
    assert ran == ["after", "after"]
    failed = [e for e in logs if e["event"] == events.REQUEST_BOOKKEEPING_FAILED]
    assert len(failed) == 2 and failed[0]["log_level"] == "error"
    assert failed[0]["error"] == "RuntimeError('disk on fire')" and failed[0]["exc_info"]
