"""Config files nobody meant to write, as `check`, `serve`, a reload and a request meet them:
each is refused with `file:line` problems (exit 2), a reload keeps the running config, and
a header that still cannot be sent fails one attempt, not the whole request."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import anthropic
import msgspec
import pytest

from coderouterd.app import build_daemon, start_http
from coderouterd.clock import SystemClock
from coderouterd.config import LoadedConfig, load_config
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe, child_env, run_cli
from tests.unit.config.test_load import MINIMAL

pytestmark = pytest.mark.timeout(30)

ASK = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def with_provider_line(line: str) -> str:
    """MINIMAL with `line` added to its provider, as line 5."""
    return MINIMAL.replace("model: qwen", f"model: qwen\n    {line}")


def with_base_url(url: str) -> str:
    return MINIMAL.replace("http://127.0.0.1:11434/v1", url)


# (file, line of its problem, a fragment of that problem)
HOSTILE: list[tuple[str, int, str]] = [
    (MINIMAL + "? {a: 1}\n: x\n", 8, "keys must be strings"),
    (with_provider_line("? {a: 1}\n    : x"), 5, "providers[0]: keys must be strings"),
    (with_provider_line("extra_headers: {? {a: 1} : x}"), 5, "providers[0].extra_headers"),
    (MINIMAL + "extra: " + "[" * 2000 + "]" * 2000 + "\n", 8, "nested more than"),
    (MINIMAL + "default_profile: ma\x00in\n", 8, "unacceptable character #x0000"),
    (MINIMAL + "extra: 2024-02-30\n", 8, "not a valid timestamp"),
    (with_provider_line('extra_headers: {x-team: "a\\nb"}'), 5, "providers[0].extra_headers"),
    (with_provider_line("extra_headers: {'x team': v}"), 5, "is not a header name"),
    (with_base_url("http://127.0.0.1:99999/v1"), 3, "providers[0].base_url: port must be"),
    (with_base_url("'http://exa mple'"), 3, "providers[0].base_url: must not contain spaces"),
    (with_base_url("http://:80"), 3, "providers[0].base_url: has no host"),
]


async def test_check_reports_each_hostile_file_as_a_problem_at_its_line(tmp_path: Path) -> None:
    paths = [tmp_path / f"config-{i}.yaml" for i in range(len(HOSTILE))]
    for path, (text, _, _) in zip(paths, HOSTILE, strict=True):
        path.write_text(text)
    env = child_env(tmp_path)
    runs = await asyncio.gather(*(run_cli("check", "--config", str(p), env=env) for p in paths))
    for path, run, (_, line, fragment) in zip(paths, runs, HOSTILE, strict=True):
        assert "Traceback" not in run.stderr, run.stderr
        assert run.returncode == 2, (path.read_bytes()[:200], run.stderr)
        assert f"{path}:{line}: " in run.stderr, run.stderr
        assert fragment in run.stderr, run.stderr


async def test_check_reports_a_capabilities_file_that_is_not_utf8_at_its_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "caps.yaml").write_bytes(b'- kind: "*"\n  model: "qwen*"\n  vision: "caf\xe9"\n')
    config = tmp_path / "config.yaml"
    config.write_text(MINIMAL + "capabilities_file: caps.yaml\n")
    run = await run_cli("check", "--config", str(config), env=child_env(tmp_path))
    assert run.returncode == 2, run.stderr
    assert f"{tmp_path / 'caps.yaml'}:3: the file is not valid UTF-8" in run.stderr


async def test_an_empty_coderouterd_config_is_the_same_as_none(tmp_path: Path) -> None:
    unset, empty, missing = await asyncio.gather(
        run_cli("check", env=child_env(tmp_path)),
        run_cli("check", env=child_env(tmp_path, {"CODEROUTERD_CONFIG": ""})),
        run_cli("check", env=child_env(tmp_path, {"CODEROUTERD_CONFIG": str(tmp_path / "no")})),
    )
    assert unset.returncode == 0, unset.stderr
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout == unset.stdout
    assert empty.stdout.startswith("ok: built-in default")
    # A file the variable does name must exist.
    assert missing.returncode == 2
    assert "cannot read file" in missing.stderr


async def test_a_reload_of_a_file_the_loader_once_crashed_on_keeps_the_running_config(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    good = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await start_daemon(good)
    running = d.daemon.holder.current.loaded.digest
    for last_line in (
        "? {a: 1}\n: x\n",
        "x: " + "[" * 2000 + "]" * 2000 + "\n",
        # A lone surrogate, echoed in a problem, could be neither logged nor sent as JSON.
        'default_profile: "\\ud800"\n',
    ):
        d.config_path.write_text(good + last_line)
        reply = await d.daemon.reload()
        msgspec.json.encode(reply)  # as `ctl reload` gets it
        assert not reply.ok
        assert reply.config_digest == running
        [problem] = reply.problems
        assert problem.startswith(f"{d.config_path}:{len(good.splitlines()) + 1}: "), problem
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        message = await client.messages.create(**ASK)
    assert message.content[0].text == "ok"


async def test_sighup_on_a_file_the_loader_once_crashed_on_is_a_rejected_reload(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("still here"))
    body = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await serve_process(body)
    broken = d.write_config(body + "? {a: 1}\n: x\n")
    since = d.mark()
    d.send_signal(signal.SIGHUP)
    rejected = await d.wait_for_event("config.reload_rejected", since=since)
    line = len(broken.decode().splitlines()) - 1
    assert rejected["problems"] == [f"{d.config_path}:{line}: keys must be strings, got a mapping"]
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        message = await client.messages.create(**ASK)
    assert message.content[0].text == "still here"
    assert d.returncode is None


async def test_a_header_that_cannot_be_sent_fails_its_attempt_and_the_next_provider_answers(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    # `check` refuses such a header; one that slips past it (a config built in
    # code) must still cost one attempt, not a bare 500 for the whole chain.
    fake_upstream.default = Reply(json=anthropic_message("from good"))
    path = tmp_path / "config.yaml"
    path.write_text(
        chain_yaml(
            provider_yaml("bad", fake_upstream.url), provider_yaml("good", fake_upstream.url)
        )
    )
    loaded = load_config(path)
    bad = msgspec.structs.replace(loaded.config.providers[0], extra_headers={"x-team": "a\nb"})
    config = msgspec.structs.replace(loaded.config, providers=(bad, loaded.config.providers[1]))
    daemon = build_daemon(
        LoadedConfig(config=config, path=str(path), digest=loaded.digest),
        clock=SystemClock(),
        env={},
    )
    runner, _site = await start_http(daemon, "127.0.0.1", 0)
    try:
        url = f"http://{daemon.listen}"
        async with anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0) as client:
            raw = await client.messages.with_raw_response.create(**ASK)
        assert (await raw.parse()).content[0].text == "from good"
        assert raw.headers["x-coderouter-provider"] == "good"
        assert raw.headers["x-coderouter-fallback-reason"] == "bad=connect_error"
        assert [r.headers.get("x-team") for r in fake_upstream.requests] == [None]
    finally:
        await runner.cleanup()
