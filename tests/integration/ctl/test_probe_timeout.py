"""`ctl probe` waits as long as the daemon's probe may take, and the daemon bounds it."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe, child_env, run_cli

pytestmark = pytest.mark.timeout(60)


async def test_ctl_probe_of_a_hanging_backend_prints_the_probe_timeout(
    serve_process: StartServe,
) -> None:
    """A probe_timeout_s over the control socket's usual 5 s (the default is
    10): the command line waits for the probe's verdict and exits 0."""
    async with FakeUpstream(default=Reply(hang=True)) as a:
        d = await serve_process(
            "self_healing: {probe_timeout_s: 7}\n" + chain_yaml(provider_yaml("a", a.url))
        )
        run = await run_cli(
            "ctl", "probe", "a", "--socket", str(d.socket_path), env=child_env(d.root), timeout=30
        )
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert "did not answer" not in run.stderr
    assert "failed after" in run.stdout and "timeout" in run.stdout


async def test_a_probe_by_hand_waits_for_a_slot_no_longer_than_the_probe_timeout(
    start_daemon: StartDaemon,
) -> None:
    """Every slot of a max_concurrent provider is held by a request the
    backend never answers: the probe gives up on the slot after
    probe_timeout_s, says the provider is busy, and notes nothing."""
    async with FakeUpstream(default=Reply(hang=True)) as a:
        d = await start_daemon(
            "self_healing: {probe_timeout_s: 0.5}\n"
            + chain_yaml(provider_yaml("a", a.url, extra="max_concurrent: 1"))
        )
        async with aiohttp.ClientSession() as http:
            held = asyncio.ensure_future(
                http.post(
                    f"{d.url}/v1/messages",
                    json={
                        "model": "m",
                        "max_tokens": 5,
                        "messages": [{"role": "user", "content": "x"}],
                    },
                )
            )
            gate = d.daemon.slots.gate("a")
            assert gate is not None
            await until(lambda: gate.in_use == 1)

            async with asyncio.timeout(5):
                reply = await d.daemon.provider_action("probe", "a", None)
            held.cancel()

    assert reply.ok and not reply.changed
    assert reply.message.startswith("failed after") and reply.message.endswith(": busy")
    assert d.daemon.healing.book.health("a").last_probe_ok is None
    assert d.daemon.board.get("a").state == "unknown"
