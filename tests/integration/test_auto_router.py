"""default_profile: auto through a real daemon: Claude Code's side requests on the cheap tier,
images to a profile that sees them, an explicit profile still winning."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from structlog.testing import capture_logs

from coderouterd.ctl.render import render_status
from coderouterd.status import status_of
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_metrics import at, scrape

PROFILES = """\
  - {name: main, providers: [big]}
  - {name: cheap, providers: [small]}
  - {name: vision, providers: [big]}
"""
AUTO = """\
default_profile: auto
auto_router:
  default_rule_profile: main
  rules:
    - {id: screenshots, profile: vision, match: {has_image: true}}
    - {id: side-requests, profile: cheap, match: {model_pattern: "claude-(3-5-)?haiku.*"}}
"""
PNG = "iVBORw0KGgo="


async def test_requests_are_placed_by_what_they_hold_unless_they_choose(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    providers = (provider_yaml("big", fake_upstream.url), provider_yaml("small", fake_upstream.url))
    d = await start_daemon(chain_yaml(*providers, profiles=PROFILES, top=AUTO))
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    with capture_logs() as logs:
        async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
            msgs = client.messages
            # A title for the session, as Claude Code asks its small fast model.
            side = await msgs.with_raw_response.create(
                model="claude-haiku-4-5-20251001",
                max_tokens=50,
                messages=[{"role": "user", "content": "Title for: fix the parser"}],
            )
            main = await msgs.with_raw_response.create(
                model="claude-sonnet-4-5",
                max_tokens=50,
                messages=[{"role": "user", "content": "fix the parser"}],
            )
            chosen = await msgs.with_raw_response.create(
                model="claude-haiku-4-5-20251001",
                max_tokens=50,
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-coderouter-mode": "main"},
            )
            looked = await msgs.with_raw_response.create(
                model="claude-haiku-4-5-20251001",
                max_tokens=50,
                messages=[{"role": "user", "content": [image, {"type": "text", "text": "what?"}]}],
            )
        async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as oai:
            await oai.chat.completions.create(
                model="gpt-4o",
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this?"},
                            {
                                "type": "image_url",
                                "image_url": {"url": f"data:image/png;base64,{PNG}"},
                            },
                        ],
                    }
                ],
            )
    served = [r.headers["x-coderouter-provider"] for r in (side, main, chosen, looked)]
    assert served == ["small", "big", "big", "big"]
    assert [r.json["model"] for r in fake_upstream.requests[:2]] == ["small-model", "big-model"]
    profiles = [e["profile"] for e in logs if e["event"] == "request.completed"]
    assert profiles == ["cheap", "main", "main", "vision", "vision"]
    status = status_of(d.daemon)
    assert status.default_profile == "auto"
    assert status.auto_router is not None
    assert [(r.id, r.matched) for r in status.auto_router.rules] == [
        ("screenshots", 2),
        ("side-requests", 1),
    ]
    # The request that chose its profile was not the router's to count.
    assert status.auto_router.unmatched == 1
    assert "rule side-requests" in render_status(status)


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "spaced"])
async def test_the_users_message_is_looked_for_among_the_last_100_however_spaced(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, compact: bool
) -> None:
    """The user's own message 121 messages back is out of the router's sight,
    whether the body is compact JSON (read through its message bounds) or
    spaced (decoded whole)."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    rules = '    - {id: marked, profile: cheap, match: {content_contains: "SECRET"}}\n'
    top = f"default_profile: auto\nauto_router:\n  default_rule_profile: main\n  rules:\n{rules}"
    d = await start_daemon(
        chain_yaml(
            provider_yaml("big", fake_upstream.url),
            provider_yaml("small", fake_upstream.url),
            profiles=PROFILES,
            top=top,
        )
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "SECRET please"}]
    for i in range(60):
        call = {"type": "tool_use", "id": f"t{i}", "name": "Read", "input": {}}
        result = {"type": "tool_result", "tool_use_id": f"t{i}", "content": "ok"}
        messages += [
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]},
        ]
    body = {"model": "m", "max_tokens": 10, "messages": messages}
    data = json.dumps(body, separators=(",", ":") if compact else None).encode()
    with capture_logs() as logs:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                d.url + "/v1/messages", data=data, headers={"content-type": "application/json"}
            ) as resp,
        ):
            assert resp.status == 200
    [done] = [e for e in logs if e["event"] == "request.completed"]
    assert done["profile"] == "main"


async def test_a_rules_requests_stay_with_the_profile_they_went_to_across_a_reload(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    rules = '    - {id: side, profile: cheap, match: {model_pattern: "claude-.*haiku.*"}}\n'
    top = f"default_profile: auto\nauto_router:\n  default_rule_profile: main\n  rules:\n{rules}"
    config = chain_yaml(
        provider_yaml("big", fake_upstream.url),
        provider_yaml("small", fake_upstream.url),
        profiles=PROFILES,
        top=top,
    )
    d = await start_daemon(config)
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
        for _ in range(2):
            await c.messages.create(
                model="claude-haiku", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
            )
    d.config_path.write_text(config.replace("profile: cheap", "profile: vision"))
    assert (await d.daemon.reload()).ok
    _, samples, _ = await scrape(d.url)
    assert at(samples, "auto_router_requests_total", rule="side", profile="cheap") == 2
    assert at(samples, "auto_router_requests_total", rule="side", profile="vision") == 0
    status = status_of(d.daemon)
    assert status.auto_router is not None
    [side] = status.auto_router.rules
    assert (side.profile, side.matched) == ("vision", 0)
