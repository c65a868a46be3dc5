"""An OpenAI client's `response_format` reaches Claude, which has no such
field, as an instruction in its system prompt: the openai SDK's `parse`
gets the object it asked for."""

from __future__ import annotations

import json

import pydantic
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import dropped
from tests.integration.clients import o_sdk as sdk


class City(pydantic.BaseModel):
    city_name: str
    population_estimate: int


async def test_a_json_schema_response_format_reaches_claude_and_parse_gets_its_object(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    answer = {"city_name": "Paris", "population_estimate": 2100000}
    fake_upstream.default = Reply(json=anthropic_message(json.dumps(answer)))
    config = chain_yaml(provider_yaml("claude", fake_upstream.url))
    d = await start_daemon(config)
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            completion = await client.chat.completions.parse(
                model="m",
                messages=[
                    {"role": "system", "content": "You know geography."},
                    {"role": "user", "content": "Biggest city of France?"},
                ],
                response_format=City,
            )
    assert completion.choices[0].message.parsed == City(**answer)
    system = fake_upstream.requests[0].json["system"]
    assert system.startswith("You know geography.\n\nAnswer with a single JSON object")
    schema = json.loads(system.split("JSON Schema (City):\n", 1)[1])
    assert schema["required"] == ["city_name", "population_estimate"]
    assert [x.split(":")[0] for x in dropped(logs)] == ["response_format"]


async def test_a_json_object_response_format_asks_claude_for_one_object(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message('{"ok": true}'))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    async with sdk(d.url) as client:
        await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "status as JSON"}],
            response_format={"type": "json_object"},
        )
    sent = fake_upstream.requests[0].json
    assert sent["system"].startswith("Answer with a single JSON object and nothing else")
    assert "response_format" not in sent
