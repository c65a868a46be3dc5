"""Self-healing through a real daemon: a failing provider is excluded, probed,
restarted and restored; exclusions survive a restart of the daemon."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from pathlib import Path

import anthropic

from coderouterd.state.audit import tail
from coderouterd.state.db import open_db
from coderouterd.state.reads import exclusions
from tests.conftest import TEST_API_KEY, RunningDaemon, StartDaemon, provider_yaml, until
from tests.fakes.transcripts import (
    anthropic_error,
    anthropic_error_body,
    anthropic_message,
    anthropic_text_stream,
    openai_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello"}]
BUSY = anthropic_error(503, "overloaded_error", "busy")
# The restart command: records its argv and environment, prints, exits 0.
RESTART_SCRIPT = """
import json, os, sys
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"argv": sys.argv[2:], "env": dict(os.environ)}) + "\\n")
print("restarted", os.environ["CODEROUTERD_PROVIDER"])
"""


def config(
    a: str, b: str | None, *, restart: list[str] | None = None, action: str = "exclude"
) -> str:
    extra = f"restart_command: {json.dumps(restart)}" if restart else ""
    providers = provider_yaml("a", a, extra=extra) + (provider_yaml("b", b) if b else "")
    chain = "[a, b]" if b else "[a]"
    return (
        "self_healing: {recovery_initial_interval_s: 0.3, recovery_jitter: 0, probe_timeout_s: 5}\n"
        f"providers:{providers}"
        "profiles:\n"
        f"  - {{name: default, providers: {chain}, backend_health_action: {action}, "
        "backend_health_threshold: 2}\n"
    )


async def ask(d: RunningDaemon, profile: str | None = None) -> tuple[str, dict[str, str]]:
    """One request (through `profile`, if given); the provider that answered
    and the response headers."""
    headers = {"x-coderouter-mode": profile} if profile else {}
    async with anthropic.AsyncAnthropic(
        base_url=d.url, api_key="client-key", max_retries=0, timeout=10
    ) as client:
        raw = await client.messages.with_raw_response.create(
            model="m", max_tokens=10, messages=MESSAGES, extra_headers=headers
        )
    return raw.headers["x-coderouter-provider"], dict(raw.headers)


async def audit_events(d: RunningDaemon, prefix: str = "provider.") -> list[tuple[str, dict]]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        return [(r.event, r.fields) for r in await tail(conn, 200) if r.event.startswith(prefix)]
    finally:
        await conn.close()


async def stored_exclusions(d: RunningDaemon) -> list[str]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        return [e.provider for e in await exclusions(conn)]
    finally:
        await conn.close()


async def test_a_failing_provider_is_excluded_probed_and_restored(
    start_daemon: StartDaemon,
) -> None:
    async with FakeUpstream() as a, FakeUpstream(default=Reply(json=anthropic_message("b"))) as b:
        a.script(BUSY, BUSY, BUSY, BUSY)
        d = await start_daemon(config(a.url, b.url))
        for _ in range(4):
            assert (await ask(d))[0] == "b"
        assert d.daemon.healing.book.excluded() == {"a"}

        # Excluded: the next request goes straight to b, and says why.
        provider, headers = await ask(d)
        assert provider == "b"
        assert headers["x-coderouter-fallback-reason"] == "a=excluded"
        assert len(a.requests) == 4
        [status_a, _] = d.daemon.status().providers
        assert status_a.state == "excluded (unhealthy)"
        assert status_a.healing.excluded and status_a.healing.threshold == 2
        assert await stored_exclusions(d) == ["a"]

        # The first probe fails (a is still busy); the second gets an answer.
        a.script(BUSY, Reply(json=anthropic_message("pong")))
        await until(lambda: not d.daemon.healing.book.excluded())

        probes = a.requests[4:]
        assert len(probes) == 2
        assert probes[0].json == {
            "model": "a-model",
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "ping"}],
            "stream": False,
        }
        assert await stored_exclusions(d) == []
        a.script(Reply(json=anthropic_message("a is back")))
        assert (await ask(d))[0] == "a"
        [status_a, _] = d.daemon.status().providers
        assert status_a.state == "ok"
        assert status_a.healing.last_probe_ok is True

    events = await audit_events(d)
    assert [e for e, _ in events] == ["provider.excluded", "provider.restored"]
    excluded, restored = (f for _, f in events)
    assert excluded["consecutive_failures"] == 4
    assert excluded["last_reason"] == "http_503"
    assert restored["via"] == "probe"
    assert restored["probes_failed"] == 1
    assert restored["episode"] == excluded["episode"]


async def test_exclusions_never_leave_a_chain_empty(start_daemon: StartDaemon) -> None:
    async with FakeUpstream() as a:
        a.script(BUSY, BUSY, BUSY, BUSY, Reply(json=anthropic_message("still here")))
        d = await start_daemon(
            config(a.url, None).replace(
                "recovery_initial_interval_s: 0.3", "recovery_initial_interval_s: 60"
            )
        )
        for _ in range(4):
            try:
                await ask(d)
            except anthropic.APIStatusError as exc:
                assert exc.status_code == 503
        assert d.daemon.healing.book.excluded() == {"a"}

        provider, _ = await ask(d)

        assert provider == "a"
        assert len(a.requests) == 5
        # It answered: restored by the request itself.
        assert d.daemon.healing.book.excluded() == frozenset()
    assert [f["via"] for e, f in await audit_events(d) if e == "provider.restored"] == ["request"]


async def test_restart_command_runs_without_shell_or_keys_and_is_audited(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    script = tmp_path / "restart.py"
    script.write_text(RESTART_SCRIPT)
    marker = tmp_path / "restarts.jsonl"
    argv = [sys.executable, str(script), str(marker), "a;b", "$(touch pwned)"]
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        d = await start_daemon(
            config(a.url, b.url, restart=argv),
            env={"PATH": os.environ["PATH"], "ANTHROPIC_API_KEY": TEST_API_KEY},
        )
        for _ in range(4):
            await ask(d)
        await until(lambda: d.daemon.healing.book.health("a").restarts == 1)

    [run] = [json.loads(line) for line in marker.read_text().splitlines()]
    assert run["argv"] == ["a;b", "$(touch pwned)"]
    assert run["env"]["CODEROUTERD_PROVIDER"] == "a"
    assert TEST_API_KEY not in json.dumps(run["env"])
    assert not (tmp_path / "pwned").exists()
    [(_, audited)] = [(e, f) for e, f in await audit_events(d) if e == "provider.restart_command"]
    assert audited["argv"] == argv
    assert audited["exit_status"] == 0
    assert audited["timed_out"] is False
    assert audited["output_tail"] == "restarted a\n"
    # The whole output is in the provider's log in the state directory.
    assert d.daemon.state is not None
    log = d.daemon.state.path.parent / "restart" / "a.log"
    assert audited["log"] == str(log)
    assert log.read_text() == "restarted a\n"


async def test_an_exclusion_survives_a_restart_without_running_the_command_again(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    script = tmp_path / "restart.py"
    script.write_text(RESTART_SCRIPT)
    marker = tmp_path / "restarts.jsonl"
    state_dir = tmp_path / "state"
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        yaml = config(a.url, b.url, restart=[sys.executable, str(script), str(marker)])
        first = await start_daemon(yaml, state_dir=state_dir)
        for _ in range(4):
            await ask(first)
        await until(lambda: first.daemon.healing.book.health("a").restarts == 1)
        since = first.daemon.status().providers[0].healing.since_wall
        await first.runner.cleanup()
        await first.state.close()

        second = await start_daemon(yaml, state_dir=state_dir)

        [status_a, _] = second.daemon.status().providers
        assert status_a.state == "excluded (unhealthy)"
        assert status_a.healing.since_wall == since
        assert status_a.healing.next_probe_in_s is not None
        assert status_a.healing.next_probe_in_s <= 0.3
        assert (await ask(second))[0] == "b"
        # Probed soon after the start (a is still busy), never restarted at start-up.
        await until(lambda: second.daemon.healing.book.health("a").last_probe_ok is False)
        assert len(marker.read_text().splitlines()) == 1
    assert await stored_exclusions(second) == ["a"]


async def test_a_demote_profile_tries_an_excluded_provider_last(start_daemon: StartDaemon) -> None:
    async with FakeUpstream() as a, FakeUpstream(default=Reply(json=anthropic_message("b"))) as b:
        # `default` (exclude, listed first) excludes a; `other` only demotes it.
        yaml = (
            config(a.url, b.url)
            + "  - {name: other, providers: [a, b], backend_health_action: demote}\n"
        )
        a.script(BUSY, BUSY, BUSY, BUSY)
        d = await start_daemon(yaml)
        for _ in range(4):
            await ask(d)
        assert d.daemon.healing.book.excluded() == {"a"}
        provider, headers = await ask(d, "other")
        # b answered first; a, excluded, would have come after it, not skipped.
        assert provider == "b"
        assert "x-coderouter-fallback-reason" not in headers
        assert len(a.requests) == 4


async def test_a_demote_profile_alone_moves_a_failing_provider_last_until_it_recovers(
    start_daemon: StartDaemon,
) -> None:
    ok_a, ok_b = Reply(json=anthropic_message("a")), Reply(json=anthropic_message("b"))
    async with FakeUpstream(default=ok_a) as a, FakeUpstream(default=ok_b) as b:
        a.script(BUSY, BUSY, BUSY, BUSY)
        # Probes wait long enough for the demoted order to be seen.
        yaml = config(a.url, b.url, action="demote").replace(
            "recovery_initial_interval_s: 0.3", "recovery_initial_interval_s: 1.5"
        )
        d = await start_daemon(yaml)
        # Each request falls back to b; the 4th failure in a row (2 x 2) excludes a.
        assert [(await ask(d))[0] for _ in range(4)] == ["b"] * 4
        assert d.daemon.healing.book.excluded() == {"a"}
        provider, headers = await ask(d)
        assert (provider, len(a.requests)) == ("b", 4)
        assert "x-coderouter-fallback-reason" not in headers
        # The recovery probe finds a answering: it is first again.
        await until(lambda: not d.daemon.healing.book.excluded())
        assert (await ask(d))[0] == "a"


async def test_continuous_probes_exclude_a_dead_backend_before_a_client_meets_it(
    start_daemon: StartDaemon,
) -> None:
    async with FakeUpstream(default=Reply(json=anthropic_message("b"))) as b:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        yaml = config(dead, b.url).replace(
            "probe_timeout_s: 5}", "probe_timeout_s: 5, continuous_probe_interval_s: 0.1}"
        )
        d = await start_daemon(yaml)

        await until(lambda: d.daemon.healing.book.excluded() == {"a"})
        # b is probed too, and stays in service.
        await until(lambda: d.daemon.healing.book.health("b").last_probe_ok is True)
        provider, headers = await ask(d)

        assert provider == "b"
        assert headers["x-coderouter-fallback-reason"] == "a=excluded"
        assert d.daemon.healing.book.excluded() == {"a"}
    [(_, excluded)] = [(e, f) for e, f in await audit_events(d) if e == "provider.excluded"]
    assert excluded["last_reason"] == "connect_error"


async def test_a_provider_using_the_clients_key_recovers_on_a_probe_answered_401(
    start_daemon: StartDaemon,
) -> None:
    async with FakeUpstream() as a, FakeUpstream(default=Reply(json=anthropic_message("b"))) as b:
        a.script(BUSY, BUSY, BUSY, BUSY, anthropic_error(401, "authentication_error", "no key"))
        yaml = config(a.url, b.url).replace(
            "    model: a-model\n", "    model: a-model\n    forward_client_key: true\n"
        )
        d = await start_daemon(yaml)
        for _ in range(4):
            await ask(d)
        assert d.daemon.healing.book.excluded() == {"a"}

        await until(lambda: not d.daemon.healing.book.excluded())

        # The probe went without a key: it has none to send.
        probe = a.requests[4]
        assert "x-api-key" not in probe.headers and "authorization" not in probe.headers


async def test_a_probe_answered_401_with_our_own_key_is_no_recovery(
    start_daemon: StartDaemon,
) -> None:
    async with FakeUpstream() as a, FakeUpstream(default=Reply(json=anthropic_message("b"))) as b:
        a.script(BUSY, BUSY, BUSY, BUSY, anthropic_error(401, "authentication_error", "bad key"))
        yaml = config(a.url, b.url).replace(
            "    model: a-model\n", "    model: a-model\n    api_key_env: A_KEY\n"
        )
        d = await start_daemon(yaml, env={"A_KEY": TEST_API_KEY})
        for _ in range(4):
            await ask(d)

        await until(lambda: d.daemon.healing.book.health("a").last_probe_ok is False)

        assert d.daemon.healing.book.excluded() == {"a"}
        assert a.requests[4].headers["x-api-key"] == TEST_API_KEY


OUT_OF_MEMORY = anthropic_error(
    500, "api_error", "model requires more system memory (5.2 GiB) than is available (3.1 GiB)"
)


async def test_a_backend_out_of_memory_cools_down_in_skip_profiles_only(
    start_daemon: StartDaemon,
) -> None:
    async with FakeUpstream() as a, FakeUpstream(default=Reply(json=anthropic_message("b"))) as b:
        a.script(OUT_OF_MEMORY, Reply(json=anthropic_message("a fits again")))
        yaml = (
            f"providers:{provider_yaml('a', a.url)}{provider_yaml('b', b.url)}"
            "profiles:\n"
            "  - {name: default, providers: [a, b], memory_pressure_action: skip, "
            "memory_pressure_cooldown_s: 300}\n"
            "  - {name: patient, providers: [a, b]}\n"
        )
        d = await start_daemon(yaml)

        provider, headers = await ask(d)
        assert (provider, headers["x-coderouter-fallback-reason"]) == ("b", "a=memory_pressure")
        assert d.daemon.healing.book.cooling() == {"a"}
        # While it cools down, `default` leaves it alone ...
        provider, headers = await ask(d)
        assert (provider, headers["x-coderouter-fallback-reason"]) == ("b", "a=memory_pressure")
        assert len(a.requests) == 1
        [status_a, _] = d.daemon.status().providers
        assert status_a.state == "excluded (memory_pressure)"
        assert status_a.healing.ends_in_s is not None
        assert 290 < status_a.healing.ends_in_s <= 300
        await d.state.writer.flush()
        conn = await open_db(d.state.path, readonly=True)
        try:
            [row] = await exclusions(conn)
        finally:
            await conn.close()
        assert (row.provider, row.reason) == ("a", "memory_pressure")
        assert row.until is not None and row.until - row.since == 300
        until = row.until

        # ... `patient` (warn, the default) still asks it, and its answer ends the cooldown.
        assert (await ask(d, "patient"))[0] == "a"
        assert d.daemon.healing.book.cooling() == frozenset()

    events = await audit_events(d)
    assert [(e, f.get("reason"), f.get("via")) for e, f in events] == [
        ("provider.excluded", "memory_pressure", None),
        ("provider.restored", None, "request"),
    ]
    assert events[0][1]["until"] == until


async def test_a_stream_whose_first_event_says_out_of_memory_falls_back_and_cools_down(
    start_daemon: StartDaemon,
) -> None:
    oom_event = Reply(
        events=[
            (
                "error",
                anthropic_error_body("api_error", "CUDA out of memory. Tried to allocate 2.00 GiB"),
            ),
        ]
    )
    other_error = Reply(events=[("error", anthropic_error_body("api_error", "something broke"))])
    async with (
        FakeUpstream() as a,
        FakeUpstream(default=Reply(events=anthropic_text_stream(["from b"]))) as b,
    ):
        a.script(other_error, oom_event)
        yaml = (
            f"providers:{provider_yaml('a', a.url)}{provider_yaml('b', b.url)}"
            "profiles:\n  - {name: default, providers: [a, b], memory_pressure_action: skip}\n"
        )
        d = await start_daemon(yaml)
        async with anthropic.AsyncAnthropic(
            base_url=d.url, api_key="k", max_retries=0, timeout=10
        ) as client:
            for expected in ("a=protocol_error", "a=memory_pressure"):
                async with client.messages.stream(
                    model="m", max_tokens=10, messages=MESSAGES
                ) as stream:
                    message = await stream.get_final_message()
                    reason = stream.response.headers["x-coderouter-fallback-reason"]
                assert message.content[0].type == "text"
                assert reason == expected
        assert d.daemon.healing.book.cooling() == {"a"}


def said_then(error: str, *, dialect: str) -> Reply:
    """Text in which the model itself names memory, then the backend's error event."""
    text = "I ran out of memory last time; "
    if dialect == "openai":
        body = {"error": {"message": error, "type": "api_error"}}
        return Reply(dialect="openai", events=[*openai_text_stream([text])[:2], ("", body)])
    events = anthropic_text_stream([text])[:3]
    return Reply(events=[*events, ("error", anthropic_error_body("api_error", error))])


async def test_only_the_error_events_own_words_name_memory_before_or_after_content(
    start_daemon: StartDaemon,
) -> None:
    async with (
        FakeUpstream() as local,
        FakeUpstream() as claude,
        FakeUpstream(default=Reply(events=anthropic_text_stream(["from b"]))) as b,
    ):
        # Held back by the output filters, the text is no content yet: the next
        # provider answers. Forwarded as it comes, it is: the stream ends in error.
        local.script(
            said_then("model runner stopped", dialect="openai"),
            said_then("CUDA error: out of memory", dialect="openai"),
        )
        claude.script(
            said_then("model runner stopped", dialect="anthropic"),
            said_then("CUDA error: out of memory", dialect="anthropic"),
        )
        yaml = (
            f"providers:{provider_yaml('local', local.url + '/v1', kind='openai_compat')}"
            f"{provider_yaml('claude', claude.url)}{provider_yaml('b', b.url)}"
            "profiles:\n"
            "  - {name: default, providers: [local, b], memory_pressure_action: skip}\n"
            "  - {name: direct, providers: [claude, b], memory_pressure_action: skip}\n"
        )
        d = await start_daemon(yaml)
        book = d.daemon.healing.book
        served, cooling = [], []
        async with anthropic.AsyncAnthropic(
            base_url=d.url, api_key="k", max_retries=0, timeout=10
        ) as client:
            for profile in ("default", "default", "direct", "direct", "direct"):
                raw = await client.messages.with_raw_response.create(
                    model="m",
                    max_tokens=10,
                    messages=MESSAGES,
                    stream=True,
                    extra_headers={"x-coderouter-profile": profile},
                )
                with contextlib.suppress(anthropic.APIError):
                    async for _ in await raw.parse():
                        pass
                served.append(raw.headers["x-coderouter-provider"])
                cooling.append(sorted(book.cooling()))
    assert served == ["b", "b", "claude", "claude", "b"]
    assert cooling == [[], ["local"], ["local"], ["claude", "local"], ["claude", "local"]]


async def test_a_probe_by_hand_restores_a_provider_self_healing_excluded(
    start_daemon: StartDaemon,
) -> None:
    async with FakeUpstream() as a, FakeUpstream(default=Reply(json=anthropic_message("b"))) as b:
        a.script(BUSY, BUSY, BUSY, BUSY, Reply(json=anthropic_message("pong")))
        d = await start_daemon(
            config(a.url, b.url).replace(
                "recovery_initial_interval_s: 0.3", "recovery_initial_interval_s: 60"
            )
        )
        for _ in range(4):
            await ask(d)
        assert d.daemon.healing.book.excluded() == {"a"}

        reply = await d.daemon.provider_action("probe", "a", 1000)

        assert reply.ok and reply.changed
        assert reply.message.endswith("(status 200); restored")
        assert d.daemon.healing.book.excluded() == frozenset()
    restored = [f for e, f in await audit_events(d) if e == "provider.restored"]
    assert [(f["via"], f["uid"]) for f in restored] == [("probe", 1000)]
