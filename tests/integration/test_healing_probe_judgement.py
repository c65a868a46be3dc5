"""A probe's answer is judged as a real request's would be."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.conftest import RunningDaemon, StartDaemon, provider_yaml, until
from tests.fakes.transcripts import anthropic_message, openai_completion, openai_error
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello"}]
OPENAI_BUSY = openai_error(503, "busy")
# What OpenRouter sends, with status 200, for an error met once the model started.
ERROR_IN_200 = Reply(
    status=200,
    dialect="openai",
    json={"error": {"message": "Provider returned error", "code": 502}},
)
# What OpenAI's o-series says to a body with `max_tokens`, as a probe's is.
MAX_TOKENS_REFUSED = openai_error(
    400,
    "Unsupported parameter: 'max_tokens' is not supported with this model.",
    error_type="invalid_request_error",
)


def openai_a_then_b(a: str, b: str, healing: str = "") -> str:
    """`a` (OpenAI-compatible) then `b`; `a` excluded after 4 failures, probed every 0.2 s."""
    return (
        "self_healing: {recovery_initial_interval_s: 0.2, recovery_max_interval_s: 0.2,"
        f" recovery_jitter: 0, probe_timeout_s: 2{healing}}}\n"
        f"providers:{provider_yaml('a', a + '/v1', kind='openai_compat')}"
        f"{provider_yaml('b', b)}"
        "profiles:\n"
        "  - {name: default, providers: [a, b], backend_health_action: exclude, "
        "backend_health_threshold: 2}\n"
    )


def probes(requests: list[Any]) -> int:
    return sum(1 for r in requests if (r.json or {}).get("max_tokens") == 1)


def failed_probes(d: RunningDaemon) -> int:
    excluded = d.daemon.healing.book.health("a").excluded
    return 0 if excluded is None else excluded.probes_failed


async def ask(d: RunningDaemon) -> int:
    body = {"model": "m", "max_tokens": 10, "messages": MESSAGES}
    async with aiohttp.ClientSession() as http, http.post(f"{d.url}/v1/messages", json=body) as r:
        await r.read()
        return r.status


async def excluded_a(start_daemon: StartDaemon, a: FakeUpstream, b: FakeUpstream) -> RunningDaemon:
    d = await start_daemon(openai_a_then_b(a.url, b.url))
    for _ in range(4):
        assert await ask(d) == 200
    assert d.daemon.healing.book.excluded() == {"a"}
    return d


async def test_a_probe_answered_200_with_an_error_body_does_not_restore(
    start_daemon: StartDaemon,
) -> None:
    """An excluded OpenAI-compatible backend answering 200 with `{"error": ...}`
    (OpenRouter) fails a real request; it fails a probe too, and stays out."""
    async with (
        FakeUpstream(default=OPENAI_BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        d = await excluded_a(start_daemon, a, b)
        book = d.daemon.healing.book
        a.default = ERROR_IN_200
        # Judged, not only sent: the upstream sees a probe before its outcome is noted.
        await until(lambda: not book.excluded() or failed_probes(d) >= 3, timeout=10)

        assert book.excluded() == {"a"}
        assert failed_probes(d) >= 3
        # The same backend answering a completion is restored.
        a.default = Reply(json=openai_completion("pong"), dialect="openai")
        await until(lambda: not book.excluded(), timeout=10)


async def test_continuous_probes_refused_as_bad_requests_do_not_exclude_a_live_backend(
    start_daemon: StartDaemon,
) -> None:
    """A live backend that refuses the probe's body with a 400 (as a real
    request's 400 goes back to its client, it says nothing of the backend's
    health): however many continuous probes it refuses, it stays in service."""
    async with (
        FakeUpstream(default=MAX_TOKENS_REFUSED) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        d = await start_daemon(openai_a_then_b(a.url, b.url, ", continuous_probe_interval_s: 0.05"))
        await until(lambda: probes(a.requests) >= 6, timeout=10)
        await asyncio.sleep(0.1)

        book = d.daemon.healing.book
        assert book.excluded() == frozenset()
        assert book.health("a").streak == 0
        # Nor does the board count them as failures.
        [status_a, _] = d.daemon.status().providers
        assert status_a.consecutive_failures == 0


async def test_a_recovery_probe_refused_as_a_bad_request_restores_the_backend(
    start_daemon: StartDaemon,
) -> None:
    """An excluded backend that comes back, but refuses the probe's body with
    a 400: it answers, as it would a real request, so it is up and restored,
    rather than kept out for good by the probe's own body."""
    async with (
        FakeUpstream(default=OPENAI_BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        d = await excluded_a(start_daemon, a, b)
        book = d.daemon.healing.book
        a.default = MAX_TOKENS_REFUSED

        await until(lambda: not book.excluded(), timeout=10)


async def test_an_anthropic_backend_probed_into_an_error_envelope_in_a_200_stays_out(
    start_daemon: StartDaemon,
) -> None:
    """An excluded Anthropic-kind backend behind a gateway that answers 200
    with Anthropic's own error envelope fails a real request (it falls
    through); it fails a probe too, and is restored only by a message."""
    config = (
        "self_healing: {recovery_initial_interval_s: 0.2, recovery_max_interval_s: 0.2,"
        " recovery_jitter: 0, probe_timeout_s: 2}\n"
        f"providers:{provider_yaml('a', '{a}')}{provider_yaml('b', '{b}')}"
        "profiles:\n"
        "  - {name: default, providers: [a, b], backend_health_action: exclude, "
        "backend_health_threshold: 2}\n"
    )
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    async with (
        FakeUpstream(default=Reply(status=503, json=overloaded)) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        d = await start_daemon(config.replace("{a}", a.url).replace("{b}", b.url))
        for _ in range(4):
            assert await ask(d) == 200
        book = d.daemon.healing.book
        assert book.excluded() == {"a"}
        a.default = Reply(status=200, json=overloaded)
        await until(lambda: not book.excluded() or failed_probes(d) >= 3, timeout=10)

        assert book.excluded() == {"a"}
        assert failed_probes(d) >= 3
        a.default = Reply(json=anthropic_message("pong"))
        await until(lambda: not book.excluded(), timeout=10)
