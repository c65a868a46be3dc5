"""A whole reply goes out before the request's bookkeeping, which cannot fail it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from coderouterd.ingress.messages import _send_first
from coderouterd.telemetry import events

Steps = Callable[[web.Request, web.Response], list[Callable[[], None]]]
Serve = Callable[[Steps], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(steps: Steps) -> str:
        async def handle(request: web.Request) -> web.StreamResponse:
            response = web.Response(body=b'{"ok":true}', content_type="application/json")
            await _send_first(request, response, steps(request, response))
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


async def test_the_reply_is_sent_before_any_step_runs(serve: Serve) -> None:
    seen: list[tuple[bool, int]] = []

    def steps(request: web.Request, response: web.Response) -> list[Callable[[], None]]:
        def step() -> None:
            # Prepared and its body handed to the transport, all of it.
            transport = request.transport
            assert transport is not None
            seen.append((response.prepared, transport.get_write_buffer_size()))

        return [step, step]

    url = await serve(steps)
    async with aiohttp.ClientSession() as http, http.post(url, data=b"{}") as resp:
        assert resp.status == 200 and await resp.json() == {"ok": True}
    assert seen == [(True, 0), (True, 0)]


async def test_a_failing_step_is_logged_and_the_others_still_run(serve: Serve) -> None:
    ran: list[str] = []

    def steps(request: web.Request, response: web.Response) -> list[Callable[[], None]]:
        def broken() -> None:
            raise RuntimeError("disk on fire")

        return [broken, lambda: ran.append("after")]

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
