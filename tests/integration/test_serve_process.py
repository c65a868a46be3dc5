"""`coderouterd` as an operator runs it: a real process, its exit codes, logs and signals."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import msgspec
import pytest
from anthropic.types import Message, MessageParam

from coderouterd import __version__
from coderouterd.config import config_digest
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import LogLine, StartServe, child_env, render_config, run_cli

pytestmark = pytest.mark.timeout(20)

MESSAGES: list[MessageParam] = [{"role": "user", "content": "hello"}]
CHUNKS = ["one ", "two ", "three ", "four ", "five"]
# `shutdown_timeout` of the daemon's AppRunner (coderouterd/app.py, start_http).
# Ten events 0.15 s apart: about 1.4 s from first byte to message_stop.
PACED_STREAM = Reply(events=anthropic_text_stream(CHUNKS), delay_between_events=0.15)

BROKEN_CONFIG = """\
providers:
  - name: a
    kind: anthropic
    base_url: ftp://example.invalid
    model: a-model
    timeouts:
      connect_s: -1
profiles:
  - name: default
    providers: [a, missing]
"""


def sdk(url: str, api_key: str = "client-key") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key=api_key, max_retries=0, timeout=10)


async def ask(url: str) -> Message:
    async with sdk(url) as client:
        return await client.messages.create(model="m", max_tokens=10, messages=MESSAGES)


class StreamingClient:
    """One streamed request through the daemon, with a flag raised once text is arriving."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.request_id = ""
        self.mid_stream = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name="test:sdk-stream")

    async def _run(self) -> Message:
        async with (
            sdk(self.url) as client,
            client.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as stream,
        ):
            self.request_id = stream.response.headers["x-request-id"]
            async for event in stream:
                if event.type == "content_block_delta":
                    self.mid_stream.set()
            return await stream.get_final_message()

    async def wait_mid_stream(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        waiter = asyncio.create_task(self.mid_stream.wait(), name="test:mid-stream")
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait([waiter, self.task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self.task.done():
            self.task.result()  # raises what broke the stream
            raise AssertionError("the stream finished before the test got to it")


@contextlib.asynccontextmanager
async def streaming(url: str) -> AsyncIterator[StreamingClient]:
    client = StreamingClient(url)
    try:
        yield client
    finally:
        client.task.cancel()
        with contextlib.suppress(BaseException):
            await client.task


async def refused_connection(port: int, timeout: float = 1.0) -> None:  # noqa: ASYNC109
    """Connect until refused.

    The daemon closes its listener in the same loop step that logs
    `server.stopping`, so the first attempt is normally the refused one;
    retrying only covers the microseconds between that log write and the close.
    """
    async with asyncio.timeout(timeout):
        while True:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except (ConnectionRefusedError, ConnectionResetError):
                # A connect racing the listener's close may be reset instead.
                return
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.01)


def seconds_between(earlier: LogLine, later: LogLine) -> float:
    parse = datetime.datetime.fromisoformat
    return (parse(later["timestamp"]) - parse(earlier["timestamp"])).total_seconds()


def socket_mode(path: Path) -> tuple[bool, int]:
    mode = path.lstat().st_mode
    return stat.S_ISSOCK(mode), stat.S_IMODE(mode)


def line_of(data: bytes, needle: str) -> int:
    return next(i for i, line in enumerate(data.decode().splitlines(), 1) if needle in line)


async def test_check_lists_every_problem_with_file_line_and_field_path(short_dir: Path) -> None:
    broken, good = short_dir / "broken.yaml", short_dir / "good.yaml"
    broken.write_text(BROKEN_CONFIG)
    good.write_text(chain_yaml(provider_yaml("a", "http://127.0.0.1:9")))
    env = child_env(short_dir)
    bad_run, good_run = await asyncio.gather(
        run_cli("check", "--config", str(broken), env=env),
        run_cli("check", "--config", str(good), env=env),
    )
    assert bad_run.returncode == 2
    assert f"{broken}:4: providers[0].base_url: must start with http" in bad_run.stderr
    assert f"{broken}:7: providers[0].timeouts.connect_s: must be > 0" in bad_run.stderr
    assert f"{broken}:10: profiles[0].providers[1]: unknown provider 'missing'" in bad_run.stderr
    assert good_run.returncode == 0
    assert good_run.stdout.startswith(f"ok: {good} (sha256:")
    assert "self-healing:\n  a: never taken out automatically" in good_run.stdout


async def test_check_reads_the_capabilities_file_as_serve_would(short_dir: Path) -> None:
    config = chain_yaml(
        provider_yaml("a", "http://127.0.0.1:9"), top="capabilities_file: caps.yaml\n"
    )
    (short_dir / "bad").mkdir()
    (short_dir / "good").mkdir()
    (short_dir / "bad" / "caps.yaml").write_text("- {kind: any, model: 'qwen*', tools: false}\n")
    (short_dir / "good" / "caps.yaml").write_text("- {kind: '*', model: 'qwen*', tools: false}\n")
    for d in ("bad", "good"):
        (short_dir / d / "config.yaml").write_text(config)
    env = child_env(short_dir)
    bad, good = await asyncio.gather(
        *(
            run_cli("check", "--config", str(short_dir / d / "config.yaml"), env=env)
            for d in ("bad", "good")
        )
    )
    assert bad.returncode == 2
    assert f"{short_dir / 'bad' / 'caps.yaml'}:1: rules[0].kind: must be one of" in bad.stderr
    assert good.returncode == 0
    assert (
        f"capabilities: 1 rule from {short_dir / 'good' / 'caps.yaml'}, after the bundled"
        in good.stdout
    )


async def test_serve_with_a_broken_config_exits_2_without_binding(short_dir: Path) -> None:
    config = short_dir / "config.yaml"
    sock, state = short_dir / "ctl.sock", short_dir / "state"
    server = {"port": 0, "state_dir": str(state), "control_socket": str(sock)}
    data = render_config(server, BROKEN_CONFIG).encode()
    config.write_bytes(data)
    run = await run_cli("serve", "--config", str(config), env=child_env(short_dir))
    assert run.returncode == 2
    assert f"{config}:{line_of(data, 'base_url')}: providers[0].base_url" in run.stderr
    assert f"{config}:{line_of(data, 'missing')}: profiles[0].providers[1]" in run.stderr
    assert "server.started" not in run.stderr
    assert not sock.exists()
    assert not state.exists()


async def test_ctl_status_shows_the_daemon_and_the_stream_in_flight(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    # Slow enough that the stream outlasts two `ctl status` runs; it is cancelled after them.
    fake_upstream.script(Reply(events=anthropic_text_stream(CHUNKS), delay_between_events=0.5))
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    async with streaming(d.url) as stream:
        await stream.wait_mid_stream()
        sock, env = str(d.socket_path), child_env(d.root)
        as_json, as_text = await asyncio.gather(
            run_cli("ctl", "status", "--json", "--socket", sock, env=env),
            run_cli("ctl", "status", "--socket", sock, env=env),
        )
    assert as_json.returncode == 0, as_json.stderr
    status = msgspec.json.decode(as_json.stdout)
    assert status["version"] == __version__
    assert status["pid"] == d.pid
    assert status["listen"] == d.listen
    assert status["config_path"] == str(d.config_path)
    assert status["config_digest"].startswith("sha256:")
    assert status["config_digest"] == config_digest(d.config_path.read_bytes())
    assert [(p["name"], p["model"]) for p in status["providers"]] == [
        ("a", "a-model"),
        ("b", "b-model"),
    ]
    [request] = status["in_flight"]
    assert request["request_id"] == stream.request_id
    assert (request["provider"], request["profile"], request["stream"]) == ("a", "default", True)

    assert as_text.returncode == 0, as_text.stderr
    assert f"pid {d.pid}" in as_text.stdout
    assert "in flight (1)" in as_text.stdout
    assert stream.request_id in as_text.stdout
    assert socket_mode(d.socket_path) == (True, 0o600)


async def test_ctl_status_shows_the_failed_provider_and_the_one_that_answered(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        anthropic_error(503, "overloaded_error", "busy"), Reply(json=anthropic_message("ok"))
    )
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    await ask(d.url)
    sock, env = str(d.socket_path), child_env(d.root)
    as_json, as_text = await asyncio.gather(
        run_cli("ctl", "status", "--json", "--socket", sock, env=env),
        run_cli("ctl", "status", "--socket", sock, env=env),
    )
    assert as_json.returncode == 0, as_json.stderr
    status = msgspec.json.decode(as_json.stdout)
    assert status["uptime_s"] > 0
    providers = {p["name"]: p for p in status["providers"]}
    a, b = providers["a"], providers["b"]
    assert (a["state"], a["last_outcome"], a["last_status"]) == ("failing", "http_503", 503)
    assert a["consecutive_failures"] == 1
    assert (b["state"], b["last_outcome"], b["last_status"]) == ("ok", "ok", 200)
    assert b["consecutive_failures"] == 0
    assert status["in_flight"] == []
    assert as_text.returncode == 0, as_text.stderr
    rows = {line.split()[0]: line.split() for line in as_text.stdout.splitlines() if line.strip()}
    assert rows["a"][3:6] == ["failing", "http_503", "503"]
    assert rows["b"][3:6] == ["ok", "ok", "200"]


async def test_sigterm_drains_a_stream_in_flight_and_refuses_new_connections(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    grace_s = 5.0
    fake_upstream.script(PACED_STREAM)
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url)), server={"grace_period_s": grace_s}
    )
    async with streaming(d.url) as stream:
        await stream.wait_mid_stream()
        since = d.mark()
        d.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        stopping = await d.wait_for_event("server.stopping", since=since)
        await refused_connection(d.port)
        assert not stream.task.done(), "the stream ended before the refused connection"
        async with asyncio.timeout(5):
            message = await stream.task
    code = await d.wait(timeout=grace_s)
    assert code == 0
    assert time.monotonic() - signalled < grace_s
    assert message.content[0].type == "text"
    assert message.content[0].text == "".join(CHUNKS)
    assert message.stop_reason == "end_turn"
    assert stopping["in_flight"] == 1
    assert d.events("server.stopped")
    assert not d.events("server.drain_timed_out")


async def test_sigterm_gives_up_on_a_stream_after_the_grace_period(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    grace_s = 0.5
    # About 6 s of stream: far longer than the grace period.
    fake_upstream.script(Reply(events=anthropic_text_stream(["x"] * 16), delay_between_events=0.3))
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url)), server={"grace_period_s": grace_s}
    )
    async with streaming(d.url) as stream:
        await stream.wait_mid_stream()
        d.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = await d.wait(timeout=grace_s + 5.0)
        elapsed = time.monotonic() - signalled
        # The client is told in-stream why its answer stops, never a silent cut.
        with pytest.raises(anthropic.APIStatusError, match="shutting down"):
            await stream.task
    assert code == 0
    [stopping] = d.events("server.stopping")
    [timed_out] = d.events("server.drain_timed_out")
    [stopped] = d.events("server.stopped")
    assert timed_out["abandoned"] == 1
    # The daemon's own clock: the drain is given up when the grace period ends,
    # and the abandoned handler is cancelled at once rather than waited for
    # (the stream had about 5 s to go; the margins are for a loaded machine).
    assert grace_s <= seconds_between(stopping, timed_out) < grace_s + 1.0
    assert seconds_between(timed_out, stopped) < 1.5
    assert elapsed < grace_s + 2.0
    [done] = d.events("request.completed")
    assert done["client_disconnected"] is False
    assert done["status"] == 503 and done["error"] == "abandoned at shutdown"
    assert done["provider"] == "a"
    assert done["attempts"][-1]["outcome"] == "interrupted"


async def test_sighup_and_ctl_reload_swap_valid_configs_and_keep_the_old_on_error(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("hi"))
    body = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await serve_process(body)
    first_digest = config_digest(d.config_path.read_bytes())
    await ask(d.url)
    assert fake_upstream.requests[-1].json["model"] == "a-model"

    v2 = d.write_config(body.replace("a-model", "a-model-v2"))
    since = d.mark()
    d.send_signal(signal.SIGHUP)
    reloaded = await d.wait_for_event("config.reloaded", since=since)
    assert reloaded["digest"] == config_digest(v2)
    assert reloaded["previous_digest"] == first_digest
    await ask(d.url)
    assert fake_upstream.requests[-1].json["model"] == "a-model-v2"

    broken = d.write_config(body.replace("a-model", "a-model-v3") + "bogus_key: 1\n")
    problem = f"{d.config_path}:{line_of(broken, 'bogus_key')}: bogus_key: unknown key"
    since = d.mark()
    d.send_signal(signal.SIGHUP)
    rejected = await d.wait_for_event("config.reload_rejected", since=since)
    assert any(p.startswith(problem) for p in rejected["problems"]), rejected
    await ask(d.url)
    assert fake_upstream.requests[-1].json["model"] == "a-model-v2"

    sock, env = str(d.socket_path), child_env(d.root)
    refused = await run_cli("ctl", "reload", "--socket", sock, env=env)
    assert refused.returncode == 1
    assert "reload rejected" in refused.stdout
    assert problem in refused.stdout

    v3 = d.write_config(body.replace("a-model", "a-model-v3"))
    accepted = await run_cli("ctl", "reload", "--socket", sock, env=env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert f"reloaded: config digest {config_digest(v3)}" in accepted.stdout
    await ask(d.url)
    assert fake_upstream.requests[-1].json["model"] == "a-model-v3"


async def test_a_reload_asks_for_no_restart_over_settings_the_command_line_overrides(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    # The file names a port the daemon never binds: `--port 0` wins over it.
    body = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await serve_process(body, server={"port": 9}, args=["--port", "0"])
    assert d.port != 9
    sock, env = str(d.socket_path), child_env(d.root)

    async def reload() -> list[str]:
        run = await run_cli("ctl", "reload", "--json", "--socket", sock, env=env)
        assert run.returncode == 0, run.stdout + run.stderr
        reply = msgspec.json.decode(run.stdout)
        assert reply["config_digest"] == config_digest(d.config_path.read_bytes())
        return list(reply["restart_required"])

    assert await reload() == []
    # A restart under the same command line would bind port 0 again, whatever the file says.
    d.server_settings["port"] = 10
    d.write_config(body)
    assert await reload() == []
    # A restart-only setting the command line leaves alone is still named.
    d.server_settings["max_body_bytes"] = 4096
    d.write_config(body)
    assert await reload() == ["server.max_body_bytes"]


async def test_binding_beyond_loopback_warns_loudly(serve_process: StartServe) -> None:
    d = await serve_process(
        chain_yaml(provider_yaml("a", "http://127.0.0.1:9")),
        args=["--host", "0.0.0.0", "--port", "0"],  # noqa: S104 - the point of the test
    )
    [logged] = d.events("server.non_loopback_bind")
    assert logged["host"] == "0.0.0.0"  # noqa: S104
    d.send_signal(signal.SIGTERM)
    assert await d.wait() == 0


async def test_api_keys_reach_the_upstream_and_neither_keys_nor_bodies_reach_the_log(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    upstream_key = "sk-upstream-7f3a9c2e-distinctive-d1e5"
    client_key = "sk-client-4b8d0a61-distinctive-93fc"
    prompt = "prompt-0c5e77b2-distinctive-never-logged"
    streamed = "streamed-reply-91d4f0aa-distinctive"
    unary = "unary-reply-3b27e6c1-distinctive"
    refusal = "upstream-error-text-5fa8d3-distinctive"
    messages: list[MessageParam] = [{"role": "user", "content": prompt}]
    key_env = "api_key_env: TEST_UPSTREAM_KEY"
    fake_upstream.script(
        anthropic_error(529, "overloaded_error", refusal),
        Reply(events=anthropic_text_stream([streamed])),
        Reply(json=anthropic_message(unary)),
    )
    d = await serve_process(
        chain_yaml(
            provider_yaml("a", fake_upstream.url, extra=key_env),
            provider_yaml("b", fake_upstream.url, extra=key_env),
        ),
        env={"TEST_UPSTREAM_KEY": upstream_key},
        args=["--log-level", "debug"],
    )
    async with sdk(d.url, api_key=client_key) as client:
        async with client.messages.stream(model="m", max_tokens=10, messages=messages) as s:
            assert (await s.get_final_message()).content[0].text == streamed
        answer = await client.messages.create(model="m", max_tokens=10, messages=messages)
        assert answer.content[0].type == "text"
        assert answer.content[0].text == unary
    d.send_signal(signal.SIGTERM)
    assert await d.wait() == 0
    assert [r.headers["x-api-key"] for r in fake_upstream.requests] == [upstream_key] * 3
    assert all(prompt in r.body.decode() for r in fake_upstream.requests)
    assert len(d.events("request.completed")) == 2
    output = d.stderr_text + "\n".join(d.stdout_lines)
    for secret in (upstream_key, client_key, prompt, streamed, unary, refusal):
        assert secret not in output, secret


async def test_serve_without_a_config_runs_the_built_in_default(serve_process: StartServe) -> None:
    d = await serve_process(None)
    [started] = d.events("server.started")
    assert started["config_path"] is None
    assert started["state_dir"] == str(d.state_dir)
    assert socket_mode(d.socket_path) == (True, 0o600)
    # ctl finds the socket through the same default paths, with no flags at all.
    env = child_env(d.root)
    run = await run_cli("ctl", "status", "--json", env=env)
    assert run.returncode == 0, run.stderr
    status = msgspec.json.decode(run.stdout)
    assert status["config_path"] is None
    assert [(p["name"], p["base_url"]) for p in status["providers"]] == [
        ("ollama", "http://127.0.0.1:11434"),
        ("lmstudio", "http://127.0.0.1:1234"),
        ("llamacpp", "http://127.0.0.1:8080"),
    ]
    d.send_signal(signal.SIGTERM)
    assert await d.wait(timeout=5) == 0
    assert not d.socket_path.exists()
    run = await run_cli("ctl", "status", env=env)
    assert run.returncode == 1
    assert "not running" in run.stderr


async def test_a_port_in_use_is_named_and_exits_1(
    short_dir: Path, fake_upstream: FakeUpstream
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = {
            "port": port,
            "state_dir": str(short_dir / "state"),
            "control_socket": str(short_dir / "ctl.sock"),
        }
        config = short_dir / "config.yaml"
        config.write_text(render_config(server, chain_yaml(provider_yaml("a", fake_upstream.url))))
        run = await run_cli("serve", "--config", str(config), env=child_env(short_dir))
    assert run.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in run.stderr
    assert "Traceback" not in run.stderr
    # It gave up cleanly: the control socket it had bound is gone again.
    assert not (short_dir / "ctl.sock").exists()


async def test_a_state_dir_that_cannot_be_made_is_named_and_exits_1(
    short_dir: Path, fake_upstream: FakeUpstream
) -> None:
    blocker = short_dir / "a-file"
    blocker.write_text("")
    server = {"port": 0, "state_dir": str(blocker / "state")}
    config = short_dir / "config.yaml"
    config.write_text(render_config(server, chain_yaml(provider_yaml("a", fake_upstream.url))))
    run = await run_cli("serve", "--config", str(config), env=child_env(short_dir))
    assert run.returncode == 1
    assert f"cannot create the state directory {blocker / 'state'}" in run.stderr
    assert "Traceback" not in run.stderr


SLEEPING_RESTART = """
import os, sys, time
with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


async def test_sigterm_kills_a_restart_command_still_running(
    serve_process: StartServe, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.default = anthropic_error(503, "overloaded_error", "busy")
    pid_file = tmp_path / "restart.pid"
    argv = [sys.executable, "-c", SLEEPING_RESTART, str(pid_file)]
    body = chain_yaml(
        provider_yaml("a", fake_upstream.url, extra=f"restart_command: {json.dumps(argv)}"),
        profiles="  - name: default\n    providers: [a]\n    backend_health_action: exclude\n"
        "    backend_health_threshold: 2\n",
    )
    d = await serve_process(body, server={"grace_period_s": 1.0})
    for _ in range(4):
        with pytest.raises(anthropic.APIStatusError):
            await ask(d.url)
    async with asyncio.timeout(10):
        while not pid_file.exists() or not pid_file.read_text():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    command = int(pid_file.read_text())
    assert not _gone(command)

    d.send_signal(signal.SIGTERM)
    code = await d.wait(timeout=15)

    assert code == 0
    async with asyncio.timeout(10):
        while not _gone(command):  # noqa: ASYNC110 - another process's state
            await asyncio.sleep(0.02)
    [excluded] = d.events("provider.excluded")
    assert excluded["provider"] == "a"


async def test_ctl_exclude_and_restore_take_a_provider_out_of_every_profile_and_back(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    sock, env = str(d.socket_path), child_env(d.root)

    excluded = await run_cli("ctl", "exclude", "a", "--socket", sock, env=env)
    again = await run_cli("ctl", "exclude", "a", "--json", "--socket", sock, env=env)
    unknown = await run_cli("ctl", "exclude", "nope", "--socket", sock, env=env)

    assert excluded.returncode == 0, excluded.stderr
    assert excluded.stdout.strip() == "a: excluded: no profile tries it until `ctl restore`"
    assert msgspec.json.decode(again.stdout)["changed"] is False
    assert unknown.returncode == 1
    assert unknown.stdout.strip() == "nope: no provider 'nope' (configured: a, b)"
    # `default` is a `warn` profile: a manual exclusion skips the provider all the same.
    async with sdk(d.url) as client:
        raw = await client.messages.with_raw_response.create(
            model="m", max_tokens=10, messages=MESSAGES
        )
    assert raw.headers["x-coderouter-provider"] == "b"
    assert raw.headers["x-coderouter-fallback-reason"] == "a=excluded_manual"
    status = await run_cli("ctl", "status", "--socket", sock, env=env)
    [row_a] = [line.split() for line in status.stdout.splitlines() if line.split()[:1] == ["a"]]
    assert row_a[3:5] == ["excluded", "(manual)"]

    # A probe by hand says how the backend answers; it does not undo a manual exclusion.
    probed = await run_cli("ctl", "probe", "a", "--json", "--socket", sock, env=env)
    assert probed.returncode == 0, probed.stderr
    reply = msgspec.json.decode(probed.stdout)
    assert reply["message"].startswith("answered in ") and reply["message"].endswith("(status 200)")
    assert reply["changed"] is False
    assert fake_upstream.requests[-1].json["max_tokens"] == 1

    restored = await run_cli("ctl", "restore", "a", "--socket", sock, env=env)

    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.strip() == "a: restored"
    assert (await ask(d.url)).content[0].type == "text"
    [excluded_line] = d.events("provider.excluded")
    [restored_line] = d.events("provider.restored")
    assert (excluded_line["reason"], excluded_line["uid"]) == ("manual", os.getuid())
    assert (restored_line["via"], restored_line["uid"]) == ("manual", os.getuid())
    audit = await run_cli(
        "audit", "tail", "--json", "--config", str(d.root / "config.yaml"), env=env
    )
    events = [e["event"] for e in msgspec.json.decode(audit.stdout)]
    assert events.count("ctl.action") == 5
    assert "provider.excluded" in events and "provider.restored" in events


async def test_check_says_how_requests_will_be_routed(short_dir: Path) -> None:
    example = (Path(__file__).parents[2] / "config" / "example.yaml").read_text()
    plain, auto = short_dir / "plain.yaml", short_dir / "auto.yaml"
    plain.write_text(example)
    auto.write_text(
        example.replace("default_profile: local-first", "default_profile: auto").replace(
            "    context_action: skip\n", "    context_action: off\n"
        )
    )
    env = child_env(short_dir)
    runs = await asyncio.gather(
        *(run_cli("check", "--config", str(p), env=env) for p in (plain, auto))
    )
    assert [r.returncode for r in runs] == [0, 0]
    out = runs[0].stdout
    assert "default profile 'local-first'" in out
    assert "modes (x-coderouter-mode): fast -> local-first, careful -> with-cloud" in out
    assert "drift: normal sensitivity, window 20; local-first: demote, with-cloud: warn" in out
    assert "adaptive (slow providers tried one place later): local-first" in out
    # The example's llamacpp declares its window; the bundled rules know Claude's.
    assert (
        "context_action: skip in local-first; windows (tokens): anthropic 200000, llamacpp 32768"
        in out
    )
    assert "max_concurrent (busy: next provider, else wait): llamacpp 1" in out
    assert "context_action: off" not in out  # the default, learned, goes unsaid
    assert "auto router" not in out
    out = runs[1].stdout
    assert "default profile 'auto'" in out
    assert "context_action: off (windows never skipped) in local-first" in out
    assert "auto router (first match wins):\n  screenshots: has_image true -> with-cloud" in out
    assert "no rule matches -> local-first" in out
