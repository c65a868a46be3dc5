"""An OpenAI-compatible backend's error, as an Anthropic client reads it.

Anthropic's `error.type` is a closed set its SDKs and Claude Code dispatch
on, each naming a status. A backend of the other dialect words its errors
in its own types (OpenAI: `insufficient_quota`, `invalid_request_error` for
a bad key; vLLM: `BadRequestError`, with no `error` object at all), so the
daemon types them by status, and keeps the backend's message.
"""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk

HELLO: list[Any] = [{"role": "user", "content": "hello"}]


def openai_error(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


async def refusal(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, reply: Reply, *, stream: bool
) -> tuple[anthropic.APIStatusError, dict[str, Any]]:
    """The error an Anthropic client gets when the one backend answers `reply`,
    and its body's `error`."""
    fake_upstream.script(reply)
    d = await start_daemon(
        chain_yaml(provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"))
    )
    async with a_sdk(d.url) as client:
        try:
            if stream:
                async with client.messages.stream(model="m", max_tokens=100, messages=HELLO) as s:
                    await s.get_final_message()
            else:
                await client.messages.create(model="m", max_tokens=100, messages=HELLO)
        except anthropic.APIStatusError as exc:
            assert isinstance(exc.body, dict)
            return exc, exc.body["error"]
    raise AssertionError("the backend's error did not reach the client")


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_a_spent_openai_quota_reaches_an_anthropic_client_as_a_permission_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    body = openai_error(
        "You exceeded your current quota", "insufficient_quota", "insufficient_quota"
    )
    exc, error = await refusal(
        start_daemon, fake_upstream, Reply(status=403, json=body), stream=stream
    )
    assert isinstance(exc, anthropic.PermissionDeniedError)
    assert error["type"] == "permission_error"
    assert error["message"] == "You exceeded your current quota"


async def test_a_bad_key_at_an_openai_backend_reaches_an_anthropic_client_as_an_authentication_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # OpenAI's own answer to a bad key: typed as a bad request.
    body = openai_error("Incorrect API key provided", "invalid_request_error", "invalid_api_key")
    exc, error = await refusal(
        start_daemon, fake_upstream, Reply(status=401, json=body), stream=False
    )
    assert isinstance(exc, anthropic.AuthenticationError)
    assert error["type"] == "authentication_error"
    assert error["message"] == "Incorrect API key provided"


async def test_spent_credits_at_an_openai_backend_reach_an_anthropic_client_as_a_billing_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # OpenRouter's 402: no type at all.
    body = {"error": {"code": 402, "message": "Insufficient credits"}}
    exc, error = await refusal(
        start_daemon, fake_upstream, Reply(status=402, json=body), stream=False
    )
    assert exc.status_code == 402
    assert error == {"type": "billing_error", "message": "Insufficient credits"}


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_a_vllm_refusal_reaches_an_anthropic_client_with_its_message(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    said = "'temperature' must be between 0 and 2"
    body = {
        "object": "error",
        "message": said,
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    exc, error = await refusal(
        start_daemon, fake_upstream, Reply(status=400, json=body), stream=stream
    )
    assert isinstance(exc, anthropic.BadRequestError)
    assert error == {"type": "invalid_request_error", "message": said}
