"""A reload that points a provider at another server or model: failures of
the old backend ending after it do not count against the new one, and the
streak of failures starts afresh; an exclusion in force stays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import RunningDaemon, StartDaemon, provider_yaml
from tests.fakes.transcripts import anthropic_error_body, anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply

pytestmark = pytest.mark.timeout(30)

BODY = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
DOWN = Reply(status=503, json=anthropic_error_body("api_error", "down"))
SLOW_DOWN = Reply(
    status=503, json=anthropic_error_body("api_error", "down"), delay_before_headers=1.0
)


def config(p_url: str, q: FakeUpstream, p_model: str = "p-model") -> str:
    """`p`, then `q` (which answers), in a profile that excludes `p` after 4 failures."""
    return (
        "providers:"
        + provider_yaml("p", p_url).replace("p-model", p_model)
        + provider_yaml("q", q.url)
        + "profiles:\n  - {name: default, providers: [p, q], backend_health_action: exclude,"
        " backend_health_threshold: 2}\n"
    )


async def reload(d: RunningDaemon, yaml: str) -> None:
    d.config_path.write_text(yaml)
    assert (await d.daemon.reload()).ok


async def post(d: RunningDaemon) -> tuple[str, str | None]:
    """Who answered, and why the providers before it were passed over."""
    async with aiohttp.ClientSession() as s, s.post(d.url + "/v1/messages", json=BODY) as r:
        await r.read()
        return (
            r.headers.get("x-coderouter-provider", ""),
            r.headers.get("x-coderouter-fallback-reason"),
        )


@pytest.fixture
async def q() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(default=Reply(json=anthropic_message("q"))) as upstream:
        yield upstream


@pytest.mark.parametrize("moved", ["base_url", "model"])
async def test_failures_of_the_old_backend_ending_after_a_reload_do_not_exclude_the_new_one(
    start_daemon: StartDaemon, q: FakeUpstream, moved: str
) -> None:
    """`p`'s backend is failing (slow 503s); four requests are on their way
    to it when the operator points `p` at a working server (or at another
    model of the same server) and reloads. The four failures, ending after
    the reload, reach 2 x threshold; counted, they would exclude `p` before
    its new backend was ever asked."""
    async with (
        FakeUpstream() as old,
        FakeUpstream(default=Reply(json=anthropic_message("new"))) as new,
    ):

        def by_model(request: Recorded) -> Reply:
            # The old server's other model answers.
            if request.json["model"] == "p-model":
                return SLOW_DOWN
            return Reply(json=anthropic_message("new model"))

        old.responder = by_model
        d = await start_daemon(config(old.url, q))
        running = [asyncio.create_task(post(d)) for _ in range(4)]
        await old.wait_for_requests(4, timeout=5)
        moved_to = config(new.url, q) if moved == "base_url" else config(old.url, q, "p-model-2")
        await reload(d, moved_to)
        # Sent under the old config: p's old backend failed them, q answered.
        assert [served for served, _ in await asyncio.gather(*running)] == ["q"] * 4
        assert d.daemon.healing.book.excluded() == frozenset()
        assert await post(d) == ("p", None)
        asked = new.requests if moved == "base_url" else old.requests[4:]
        assert [r.json["model"] for r in asked] == [
            "p-model" if moved == "base_url" else "p-model-2"
        ]


async def test_a_reload_that_moves_a_provider_starts_its_streak_afresh_and_keeps_its_exclusion(
    start_daemon: StartDaemon, q: FakeUpstream
) -> None:
    """Three failures of the old server, then the operator moves `p` to
    another server, failing too: it takes that one's own four failures (2 x
    threshold) to exclude `p`, not one. An exclusion in force outlives a
    reload that moves the provider again (README: exclusions in force
    survive a reload); its probes tell whether the new backend answers."""
    async with (
        FakeUpstream(default=DOWN) as first,
        FakeUpstream(default=DOWN) as second,
        FakeUpstream(default=Reply(json=anthropic_message("third"))) as third,
    ):
        d = await start_daemon(config(first.url, q))
        for _ in range(3):
            assert await post(d) == ("q", "p=http_503")
        await reload(d, config(second.url, q))
        assert await post(d) == ("q", "p=http_503")
        assert d.daemon.healing.book.excluded() == frozenset()
        for _ in range(3):
            assert await post(d) == ("q", "p=http_503")
        assert d.daemon.healing.book.excluded() == {"p"}
        assert (len(first.requests), len(second.requests)) == (3, 4)
        await reload(d, config(third.url, q))
        assert await post(d) == ("q", "p=excluded")
        assert third.requests == []
