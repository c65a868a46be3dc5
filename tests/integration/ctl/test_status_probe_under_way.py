"""`ctl status` while an excluded provider's recovery probe is out: no next
probe is due, and the text says one is under way."""

from __future__ import annotations

import aiohttp
import pytest

from coderouterd.ctl.render import render_status
from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_error
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

_REQUEST = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}


async def test_a_recovery_probe_under_way_is_not_shown_as_due_now(
    start_daemon: StartDaemon,
) -> None:
    failing = anthropic_error(503, "overloaded_error", "busy")
    async with FakeUpstream(default=Reply(hang=True)) as a:
        # Four failed attempts exclude it; the backend never answers its probe.
        a.script(*[failing] * 4)
        d = await start_daemon(
            "self_healing: {recovery_initial_interval_s: 0.05, recovery_jitter: 0,"
            " probe_timeout_s: 20}\n"
            + chain_yaml(
                provider_yaml("a", a.url),
                profiles="  - name: default\n    providers: [a]\n"
                "    backend_health_action: exclude\n    backend_health_threshold: 2\n",
            )
        )
        async with aiohttp.ClientSession() as http:
            for _ in range(4):
                async with http.post(f"{d.url}/v1/messages", json=_REQUEST) as r:
                    await r.read()
        book = d.daemon.healing.book
        assert book.health("a").excluded is not None
        await a.wait_for_requests(5, 10)
        await until(lambda: book.health("a").probing)
        status = d.daemon.status()
        [p] = status.providers
        text = render_status(status)
    assert p.healing.excluded
    assert p.healing.next_probe_in_s is None, p.healing
    assert "excluded (unhealthy), probing" in text, text
