"""The state commands' output into a pipe its reader closes early (`| head`):
they stop quietly, with the status of a command SIGPIPE ends."""

from __future__ import annotations

import asyncio
import os

import aiohttp

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import CLI, ServeProcess, StartServe, child_env
from tests.integration.state.test_state_process import cli_args, wait_committed

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
# 128 + SIGPIPE, as a shell reports `git log | head`.
EXIT_BROKEN_PIPE = 141


async def _daemon_with_requests(
    serve_process: StartServe, fake_upstream: FakeUpstream, count: int
) -> ServeProcess:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            async with http.post(f"{d.url}/v1/messages", json=BODY) as resp:
                assert resp.status == 200
                await resp.read()
    await wait_committed(d, count)
    return d


async def _run_into_pipe(d: ServeProcess, args: list[str], read: int) -> tuple[int, bytes]:
    """Run the command into a pipe whose reader takes `read` bytes (none:
    the pipe is closed before it starts) and closes it; its status and stderr."""
    read_fd, write_fd = os.pipe()
    if not read:
        os.close(read_fd)
        read_fd = -1
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, *cli_args(d),
        stdin=asyncio.subprocess.DEVNULL, stdout=write_fd,
        stderr=asyncio.subprocess.PIPE, env=child_env(d.root),
    )  # fmt: skip
    os.close(write_fd)
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(20):
            if read_fd >= 0:
                first = await asyncio.to_thread(os.read, read_fd, read)
                assert first.startswith(b"[")
                os.close(read_fd)
                read_fd = -1
            err = await proc.stderr.read()
            status = await proc.wait()
    finally:
        if read_fd >= 0:
            os.close(read_fd)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return status, err


async def test_a_long_listing_into_a_reader_that_stops_early_ends_quietly(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """More than a pipe holds: the write itself fails, mid-listing."""
    d = await _daemon_with_requests(serve_process, fake_upstream, 150)
    status, err = await _run_into_pipe(d, ["requests", "--json", "--limit", "1000"], read=1024)
    assert err == b"", err.decode(errors="replace")[-600:]
    assert status == EXIT_BROKEN_PIPE


async def test_a_short_listing_into_a_closed_pipe_ends_quietly(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """Less than the output buffer: it fails only when flushed at the end."""
    d = await _daemon_with_requests(serve_process, fake_upstream, 1)
    for args in (["requests", "--json"], ["usage"], ["replay", "list"]):
        status, err = await _run_into_pipe(d, args, read=0)
        assert err == b"", (args, err.decode(errors="replace")[-600:])
        assert status == EXIT_BROKEN_PIPE, args
