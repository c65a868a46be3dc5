"""GET /v1/models pages as Anthropic's list does: `limit` (1 to 1000),
`after_id`, `before_id`, with `has_more`, `first_id` and `last_id` of the
page; the Anthropic SDK pages through it, and a bad value is a 400 naming
its parameter."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import pytest

from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream

# Four ids in the list: default, other (profiles), then a, b (providers).
PROFILES = """\
  - name: default
    providers: [a]
  - name: other
    providers: [b]
"""
EVERYTHING = ["default", "other", "a", "b"]


async def daemon(start_daemon: StartDaemon, fake: FakeUpstream) -> RunningDaemon:
    return await start_daemon(
        chain_yaml(provider_yaml("a", fake.url), provider_yaml("b", fake.url), profiles=PROFILES)
    )


async def test_the_anthropic_sdk_pages_through_the_models_list(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await daemon(start_daemon, fake_upstream)
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        assert [m.id async for m in client.models.list()] == EVERYTHING
        page = await client.models.list(limit=2)
        assert [m.id for m in page.data] == ["default", "other"]
        assert (page.has_more, page.first_id, page.last_id) == (True, "default", "other")
        # Auto-paging through pages of 2 yields each model once.
        assert [m.id async for m in client.models.list(limit=2)] == EVERYTHING
        after = await client.models.list(after_id="other")
        assert [m.id for m in after.data] == ["a", "b"]
        assert after.has_more is False
        before = await client.models.list(before_id="b", limit=2)
        assert [m.id for m in before.data] == ["other", "a"]
        # More lie before the page, the way it pages.
        assert before.has_more is True


async def query(d: RunningDaemon, params: dict[str, str]) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{d.url}/v1/models", params=params) as resp,
    ):
        return resp.status, json.loads(await resp.read())


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "two"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"after_id": "nobody"}, "after_id"),
        ({"before_id": "nobody"}, "before_id"),
        ({"after_id": "a", "before_id": "b"}, "before_id"),
    ],
)
async def test_a_bad_page_query_is_a_400_naming_its_parameter(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, params: dict[str, str], field: str
) -> None:
    d = await daemon(start_daemon, fake_upstream)
    status, body = await query(d, params)
    assert status == 400
    assert body["type"] == "error"
    error = body["error"]
    assert isinstance(error, dict)
    assert (error["type"], error["field"]) == ("invalid_request_error", field)


async def test_a_page_at_the_largest_limit_holds_the_whole_list(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await daemon(start_daemon, fake_upstream)
    status, body = await query(d, {"limit": "1000", "after_id": "default"})
    assert status == 200
    assert isinstance(data := body["data"], list)
    assert [m["id"] for m in data] == EVERYTHING[1:]
    assert (body["has_more"], body["first_id"], body["last_id"]) == (False, "other", "b")
