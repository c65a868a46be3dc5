"""`server.grace_period_s` changed by a reload: no restart asked for, and the
next shutdown drains for the grace period then in force."""

from __future__ import annotations

import signal

import anthropic
import msgspec
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli
from tests.integration.test_serve_process import (
    CHUNKS,
    PACED_STREAM,
    seconds_between,
    streaming,
)

pytestmark = pytest.mark.timeout(30)


async def reload_grace(d: ServeProcess, body: str, grace_s: float) -> None:
    d.server_settings["grace_period_s"] = grace_s
    d.write_config(body)
    run = await run_cli(
        "ctl", "reload", "--json", "--socket", str(d.socket_path), env=child_env(d.root)
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # Only host, port, state_dir, control_socket and max_body_bytes wait for a restart.
    assert msgspec.json.decode(run.stdout)["restart_required"] == []


async def test_a_longer_grace_period_reloaded_lets_a_stream_finish_at_shutdown(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    body = chain_yaml(provider_yaml("a", fake_upstream.url))
    # The grace period it starts with is far shorter than the stream.
    d = await serve_process(body, server={"grace_period_s": 0.1})
    await reload_grace(d, body, 10.0)
    fake_upstream.script(PACED_STREAM)
    async with streaming(d.url) as stream:
        await stream.wait_mid_stream()
        d.send_signal(signal.SIGTERM)
        message = await stream.task
        code = await d.wait(timeout=10)
    assert code == 0
    assert message.content[0].type == "text"
    assert message.content[0].text == "".join(CHUNKS)
    [stopping] = d.events("server.stopping")
    assert stopping["grace_period_s"] == 10.0
    assert not d.events("server.drain_timed_out")


async def test_a_shorter_grace_period_reloaded_ends_the_drain_sooner(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    body = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await serve_process(body, server={"grace_period_s": 20.0})
    await reload_grace(d, body, 0.3)
    # About 5 s of stream: far past the new grace period, well within the old one.
    fake_upstream.script(Reply(events=anthropic_text_stream(["x"] * 16), delay_between_events=0.3))
    async with streaming(d.url) as stream:
        await stream.wait_mid_stream()
        d.send_signal(signal.SIGTERM)
        code = await d.wait(timeout=4)
        with pytest.raises(anthropic.APIStatusError, match="shutting down"):
            await stream.task
    assert code == 0
    [stopping] = d.events("server.stopping")
    [timed_out] = d.events("server.drain_timed_out")
    assert stopping["grace_period_s"] == 0.3
    assert 0.3 <= seconds_between(stopping, timed_out) < 0.6
